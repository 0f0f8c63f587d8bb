"""The import graph of flask_maestrano points one way (docs/architecture.rst).

``make lint`` runs import-linter's contracts (setup.cfg); these tests check what the
contracts cannot say: no circle anywhere in the graph, no import hidden inside a function,
no module loaded by name, and a core that works without an app.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import grimp

PACKAGE = Path(__file__).resolve().parents[2] / "flask_maestrano"
OURS = "flask_maestrano"


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def test_the_import_graph_has_no_circle() -> None:
    graph = grimp.build_graph("flask_maestrano", exclude_type_checking_imports=True)
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_circle(tmp_path: Path) -> None:
    package = tmp_path / "circular_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from . import b\n")
    (package / "b.py").write_text("from . import a\n")
    sys.path.insert(0, str(tmp_path))
    try:
        graph = grimp.build_graph("circular_pkg", cache_dir=None)
    finally:
        sys.path.remove(str(tmp_path))
    assert _cycles(graph) == [["circular_pkg.a", "circular_pkg.b"]]


def test_no_import_hides_inside_a_function_and_no_module_is_loaded_by_name() -> None:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        relative = str(path.relative_to(PACKAGE))
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(function):
                # third-party imports may wait until used (cryptography, the optional redis)
                if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith(OURS)):
                    found.append(f"{relative}:{node.lineno} imports {node.module or '.'}")
                elif isinstance(node, ast.Import) and any(a.name.startswith(OURS) for a in node.names):
                    found.append(f"{relative}:{node.lineno} imports {node.names[0].name}")
                elif isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "import_module":
                    argument = node.args[0] if node.args else None
                    # xmlsec is a compiled module imported by name to keep mypy off its stubs; a
                    # task-queue worker loads the host's app factory (not ours) from its import path
                    xmlsec = isinstance(argument, ast.Constant) and argument.value == "xmlsec"
                    if not xmlsec and relative != "contrib/worker.py":
                        found.append(f"{relative}:{node.lineno} loads a module by name")
    assert found == []


def test_the_core_runs_without_flask_installed() -> None:
    """The account and Connec! clients, the import engine and the SAML logic import with
    ``flask`` unimportable."""
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('flask', 'flask_login', 'werkzeug'):\n"
        "            raise ImportError('no ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import types, importlib.util, pathlib\n"
        "root = pathlib.Path(sys.argv[1])\n"
        # the package's __init__ builds the Flask extension: load the core modules without it
        "pkg = types.ModuleType('flask_maestrano'); pkg.__path__ = [str(root)]\n"
        "sys.modules['flask_maestrano'] = pkg\n"
        "import flask_maestrano.connec.importer, flask_maestrano.account.billing\n"
        "import flask_maestrano.devplatform, flask_maestrano.saml_idp\n"
        "sso = types.ModuleType('flask_maestrano.sso'); sso.__path__ = [str(root / 'sso')]\n"
        "sys.modules['flask_maestrano.sso'] = sso\n"
        "import flask_maestrano.sso.saml\n"
        "assert 'flask' not in sys.modules\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(PACKAGE)], capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "ok", result.stderr
