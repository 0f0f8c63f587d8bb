"""The package declaration covers every file it ships, so installing prints no setuptools warning.

setuptools warns ("Package 'flask_maestrano.sandbox.templates.sandbox' is absent from the
`packages` configuration") for every data folder that is not a declared package; here the
discovery setup.cfg asks for is run and every shipped file must be in a declared package and
matched by its package data.
"""

from __future__ import annotations

import configparser
import fnmatch
from pathlib import Path

from setuptools import find_namespace_packages, find_packages

ROOT = Path(__file__).resolve().parents[2]


def _listed(value: str) -> list[str]:
    return [item.strip() for item in value.replace("\n", ",").split(",") if item.strip()]


def test_every_shipped_file_is_in_a_declared_package_and_its_data() -> None:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg", encoding="utf-8")
    options = config["options"]
    find = config["options.packages.find"]
    finder = find_namespace_packages if options["packages"].strip() == "find_namespace:" else find_packages
    packages = set(
        finder(
            where=str(ROOT),
            include=_listed(find.get("include", "*")),
            exclude=_listed(find.get("exclude", "")),
        )
    )
    data = {name: _listed(patterns) for name, patterns in config["options.package_data"].items()}
    problems = []
    for path in sorted((ROOT / "flask_maestrano").rglob("*")):
        if path.is_dir() or "__pycache__" in path.parts:
            continue
        package = ".".join(path.parent.relative_to(ROOT).parts)
        if package not in packages:
            problems.append(f"{package} (holding {path.name}) is not a declared package")
        elif path.suffix != ".py" and not any(fnmatch.fnmatch(path.name, p) for p in data.get(package, [])):
            problems.append(f"{path.relative_to(ROOT)} is not package data")
    assert problems == []
    assert "build/" in (ROOT / ".gitignore").read_text(encoding="utf-8").split()
