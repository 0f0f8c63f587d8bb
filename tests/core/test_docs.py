"""The documentation builds without a warning in nitpicky mode and documents every public name.

``make docs`` runs Sphinx with ``-W`` and ``docs/conf.py`` turns nitpicky mode on, so a
reference to an undocumented object fails the build; these tests build the docs the same
way, check that every name in a module's ``__all__`` is in the API reference, and that a
broken reference does fail a build with this configuration.
"""

from __future__ import annotations

import importlib
import pkgutil
import posixpath
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import flask_maestrano

DOCS = Path(__file__).resolve().parents[2] / "docs"


def sphinx(source: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "-q", "-b", "html", str(source), str(out)],
        capture_output=True,
        text=True,
        timeout=110,
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("docs") / "html"
    result = sphinx(DOCS, out)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""
    return out


def test_every_public_name_is_in_the_api_reference(built: Path) -> None:
    from sphinx.util.inventory import InventoryFile

    with open(built / "objects.inv", "rb") as handle:
        inventory = InventoryFile.load(handle, "", posixpath.join)
    documented = {name for entries in inventory.values() for name in entries}
    missing = []
    for module_info in pkgutil.walk_packages(flask_maestrano.__path__, "flask_maestrano."):
        module = importlib.import_module(module_info.name)
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name)
            where = f"{getattr(obj, '__module__', module_info.name)}.{getattr(obj, '__qualname__', name)}"
            if f"{module_info.name}.{name}" not in documented and where not in documented:
                missing.append(f"{module_info.name}.{name}")
    assert missing == []


def test_a_broken_reference_fails_the_build(tmp_path: Path) -> None:
    source = tmp_path / "docs"
    source.mkdir()
    shutil.copy(DOCS / "conf.py", source / "conf.py")
    (source / "index.rst").write_text(
        "Broken\n======\n\nSee :class:`flask_maestrano.NoSuchThing`.\n", encoding="utf-8"
    )
    result = sphinx(source, tmp_path / "html")
    assert result.returncode != 0
    assert "flask_maestrano.NoSuchThing" in result.stderr
