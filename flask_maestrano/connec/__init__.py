"""Connec!, the platform's data sharing: the client, entities and the import engine.

Plain Python, no Flask: :mod:`~flask_maestrano.connec.client` (the API client of one group),
:mod:`~flask_maestrano.connec.entities` (what a notification or a page holds) and
:mod:`~flask_maestrano.connec.importer` (the initial import). The Flask side -- the
notification view and the per-app wiring -- lives in ``flask_maestrano.webhooks``,
``flask_maestrano.entities`` and :mod:`flask_maestrano.importer`.

The client's names stay importable from here (``from flask_maestrano.connec import ConnecClient``).
"""

from __future__ import annotations

from .client import JSON_API as JSON_API
from .client import ConnecClient as ConnecClient
from .client import Page as Page
from .client import query_params as query_params
from .client import read_page as read_page
