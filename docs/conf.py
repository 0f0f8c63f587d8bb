"""Sphinx configuration for flask_maestrano."""

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
nitpicky = False
