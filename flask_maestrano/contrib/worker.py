"""What a task-queue worker runs: the host's app, built from its factory, and one import or
one synchronization job.

Shared by :mod:`flask_maestrano.contrib.rq` and :mod:`flask_maestrano.contrib.celery`: a task
carries the import path of the host's app factory (``"myapp:create_app"``) and plain values,
so the worker process builds its own app -- once per process -- and runs the job in its app
context.
"""

from __future__ import annotations

import importlib
import threading
from typing import Any

from flask import Flask

from .. import syncing
from ..connec.importer import FAILED, INTERRUPTED
from ..state import get_state

_apps: dict[str, Flask] = {}
_lock = threading.Lock()


class ImportIncomplete(Exception):
    """Raised by a task whose import failed or was interrupted, so the queue retries it (the
    retry resumes at the page that failed)."""


def load_app(factory: str) -> Flask:
    """The app built by ``factory`` (``"package.module:function"``, called without arguments),
    once per process."""
    with _lock:
        app = _apps.get(factory)
        if app is None:
            module_name, sep, attr = factory.partition(":")
            if not sep or not module_name or not attr:
                raise ValueError(f"the app factory must be 'module:function', got {factory!r}")
            built = getattr(importlib.import_module(module_name), attr)()
            if not isinstance(built, Flask):
                raise TypeError(f"{factory} returned a {type(built).__name__}, not a Flask app")
            app = _apps[factory] = built
    return app


def import_task(factory: str, preset: str, group_id: str, collections: Any = None) -> dict[str, Any]:
    """Run the import of ``group_id`` in the app of ``factory``; returns its final status as a
    dict. Raises :class:`ImportIncomplete` when it failed or was interrupted. When another
    run holds the group, returns that run's status (nothing to retry)."""
    app = load_app(factory)
    with app.app_context():
        imports = get_state(app).imports
        status = imports.run(get_state(app).preset(preset), group_id, collections)
    if status.state in (FAILED, INTERRUPTED):
        raise ImportIncomplete(f"import of {group_id} ({preset}) {status.state}: {status.error}")
    return status.to_dict()


def sync_task(factory: str, preset: str, group_id: str, options: dict[str, Any]) -> dict[str, Any] | None:
    """Run one queued sync job of ``group_id`` in the app of ``factory``
    (:func:`flask_maestrano.syncing.run_job`): a synchronization with ``options``
    (``full``, ``only``, ``forced``, ``preemption``), the group's stored notifications
    with ``{"notifications": true}``, or the push of the group's outbox (the local changes
    ``sync_on_commit(..., background=True)`` committed) with ``{"outbox": true}``. Returns
    the run as a dict (``None`` when it was skipped: sync off, another run holding the
    group, recovery mode). Not retried by the queue: a failed run is recorded in the run
    history and the next start runs again; outbox rows Connec! did not answer stay for the
    next drain."""
    return syncing.run_job(load_app(factory), preset, group_id, options)


def sync_all_task(factory: str) -> list[list[str]]:
    """Queue a synchronization of every group with sync on (:func:`flask_maestrano.syncing.start_all`),
    in the app of ``factory``: what a periodic schedule runs. Returns the ``[preset, group]``
    pairs queued."""
    app = load_app(factory)
    with app.app_context():
        return [list(pair) for pair in syncing.start_all(app)]
