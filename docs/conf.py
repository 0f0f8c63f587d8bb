"""Sphinx configuration for flask_maestrano."""

import importlib
import os
import sys

sys.path.insert(0, os.path.abspath(".."))

from flask_maestrano import __version__  # noqa: E402

project = "flask_maestrano"
author = "flask_maestrano developers"
release = version = __version__
extensions = ["sphinx.ext.autodoc", "sphinx.ext.intersphinx", "sphinx.ext.viewcode"]
intersphinx_mapping = {}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
html_theme = "alabaster"
exclude_patterns = ["_build"]

# Every cross-reference must resolve (make docs runs with -W): a broken one fails the build.
nitpicky = True
# The docs build offline, without intersphinx inventories: names of the standard library and
# of the libraries the API takes or returns (Flask, requests, ...) stay plain text in
# signatures. Everything of flask_maestrano must resolve.
nitpick_ignore_regex = [
    (
        "py:class",
        r"(collections\.abc|datetime|decimal|os|concurrent\.futures|typing|sqlite3|flask|werkzeug"
        r"|requests|urllib3|sqlalchemy|blinker|lxml|onelogin|openid|rq|celery)(\..+)?",
    ),
    # private classes in signatures (python3-saml's response subclass...)
    ("py:class", r"flask_maestrano\.[\w.]*\._\w+"),
    ("py:class", r"Flask"),
    # type variables of decorators and of the account API's generic resources; the
    # (connect, read) seconds alias of flask_maestrano.http
    ("py:class", r"flask_maestrano\.\w+\.[FT]"),
    ("py:class", r"Timeout"),
    # the sync engine's structural type of a Connec! client, and SQLAlchemy's Engine, as
    # annotations name them unqualified
    ("py:class", r"ConnecLike|Engine"),
    # python3-saml's settings and pathlib's Path, as the SSO validation modules' annotations
    # name them unqualified
    ("py:class", r"OneLogin_Saml2_Settings|Path"),
    ("py:class", r"Queue"),  # rq.Queue, in the RQ executor's signature
    ("py:class", r"Celery"),  # celery.Celery, in register_import_task's signature
]


def resolve_reexport(app, env, node, contnode):
    """``flask_maestrano.Preset`` -> ``flask_maestrano.presets.Preset``: names re-exported by a
    package resolve to where they are documented (their defining module)."""
    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "")
    if not target.startswith("flask_maestrano."):
        return None
    parts = target.split(".")
    for split in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        rest = parts[split:]
        break
    else:
        return None
    first = getattr(obj, rest[0], None)
    module, qualname = getattr(first, "__module__", None), getattr(first, "__qualname__", None)
    if not module or not qualname:
        return None
    canonical = ".".join([module, qualname, *rest[1:]])
    if canonical == target:
        return None
    domain = env.get_domain("py")
    return domain.resolve_xref(env, node["refdoc"], app.builder, node["reftype"], canonical, node, contnode)


def setup(app):
    app.connect("missing-reference", resolve_reexport)
