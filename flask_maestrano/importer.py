"""The initial Connec! import of a Flask app, through its
:class:`~flask_maestrano.connec.importer.ImportService`.

When a login creates a group and ``MAESTRANO_IMPORT_ON_FIRST_LOGIN`` is on, the SSO login
code starts the import of the group's subscribed collections (``MAESTRANO_IMPORT_COLLECTIONS``,
else the preset's ``webhooks.connec.subscriptions`` set to true) off the request, page by
page; every page goes to the host through the same path as notifications
(``source="import"``), so one ``on_entities`` callback handles both.

Progress and failures are recorded per group as an :class:`ImportStatus`, by default in the
job store of :mod:`flask_maestrano.jobs` (in Redis when ``MAESTRANO_STORE`` is a Redis URL, so
every process sees the same status; ``MAESTRANO_IMPORT_STATUS_STORE`` takes any object with
``get``/``put``). One import per preset and group runs at a time wherever the job store is
shared; a failed or interrupted import keeps what it delivered, and running it again (the
next login, ``flask maestrano jobs resume``, a task queue's retry) resumes where it stopped.

The engine is plain Python (:mod:`flask_maestrano.connec.importer`); the functions here take
the app and use its service.

>>> status = maestrano.run_import("cld-1")  # doctest: +SKIP
>>> status.state, status.counts  # doctest: +SKIP
('succeeded', {'organizations': 120, 'people': 310})
"""

from __future__ import annotations

from typing import Any

from flask import Flask

from . import jobs
from .connec.client import ConnecClient
from .connec.importer import FAILED as FAILED
from .connec.importer import INTERRUPTED as INTERRUPTED
from .connec.importer import JOB_KIND as JOB_KIND
from .connec.importer import QUEUED as QUEUED
from .connec.importer import RUNNING as RUNNING
from .connec.importer import SUCCEEDED as SUCCEEDED
from .connec.importer import ImportService as ImportService
from .connec.importer import ImportStatus as ImportStatus
from .connec.importer import ImportStatusStore as ImportStatusStore
from .connec.importer import JobImportStatusStore as JobImportStatusStore
from .connec.importer import MemoryImportStatusStore as MemoryImportStatusStore
from .connec.importer import OnPage
from .presets import Preset
from .state import get_state


def status_store(app: Flask) -> ImportStatusStore:
    """The app's :class:`ImportStatusStore`: ``MAESTRANO_IMPORT_STATUS_STORE``, else a
    :class:`JobImportStatusStore` on :func:`job_backend`."""
    return get_state(app).imports.statuses


def job_backend(app: Flask) -> jobs.JobBackend:
    """The app's job locks and statuses: on the Redis server of ``MAESTRANO_STORE`` when it is
    one, else in this process."""
    return get_state(app).imports.backend


def read_status(app: Flask, preset_name: str, group_id: str) -> ImportStatus | None:
    """The group's status as every process sees it (a dead run's ``running`` reads ``interrupted``)."""
    return get_state(app).imports.status(preset_name, group_id)


def resume_imports(app: Flask) -> list[ImportStatus]:
    """Run now every import of the job store that did not succeed and is not running or
    queued (``flask maestrano jobs resume``): :meth:`ImportService.resume
    <flask_maestrano.connec.importer.ImportService.resume>` of ``app``."""
    return get_state(app).imports.resume()


def executor(app: Flask) -> Any:
    """The app's import executor: ``MAESTRANO_IMPORT_EXECUTOR``, else its thread pool."""
    return get_state(app).imports.executor


def connec_client(app: Flask, preset: Preset, group_id: str, **options: Any) -> ConnecClient:
    """A :class:`~flask_maestrano.connec.ConnecClient` over the app's pooled session for ``preset``."""
    return get_state(app).imports.client(preset, group_id, **options)


def import_collections(app: Flask, preset: Preset) -> tuple[str, ...]:
    """What an import reads: ``MAESTRANO_IMPORT_COLLECTIONS``, else the preset's subscriptions set to true."""
    return get_state(app).imports.collections(preset)


def run_import(
    app: Flask,
    preset: Preset,
    group_id: str,
    collections: Any = None,
    *,
    restart: bool = False,
    on_page: OnPage | None = None,
) -> ImportStatus:
    """Import ``group_id`` now, in this thread: :meth:`ImportService.run
    <flask_maestrano.connec.importer.ImportService.run>` of ``app`` (failures recorded, a
    failed import resumed unless ``restart``)."""
    return get_state(app).imports.run(preset, group_id, collections, restart=restart, on_page=on_page)


def start_import(app: Flask, preset: Preset, group_id: str, collections: Any = None) -> Any:
    """Queue the import of ``group_id`` on the app's executor: :meth:`ImportService.start
    <flask_maestrano.connec.importer.ImportService.start>` of ``app``."""
    return get_state(app).imports.start(preset, group_id, collections)
