"""Connec! imports on `Celery <https://docs.celeryq.dev>`_ workers.

Install ``flask-maestrano[celery]``. Register the import task on the host's Celery app with
the import path of the host's app factory (the worker builds the app itself, once per worker
process), and give the extension a :class:`CeleryExecutor`::

    # myapp/tasks.py
    from celery import Celery
    from flask_maestrano.contrib.celery import register_import_task

    celery = Celery("myapp", broker="redis://127.0.0.1:6379/1")
    import_group = register_import_task(celery, "myapp:create_app")

    # myapp/__init__.py, in create_app()
    from flask_maestrano.contrib.celery import CeleryExecutor
    from myapp.tasks import import_group
    app.config["MAESTRANO_STORE"] = "redis://127.0.0.1:6379/0"
    app.config["MAESTRANO_IMPORT_EXECUTOR"] = CeleryExecutor(import_group)

and run a worker::

    celery -A myapp.tasks:celery worker --concurrency 2

A task whose import failed or was interrupted raises
:class:`~flask_maestrano.contrib.worker.ImportIncomplete` and Celery retries it
(``max_retries`` times, ``retry_delay`` seconds apart); each retry resumes where the import
stopped. One import per group runs whatever the number of tasks.

:func:`register_import_task` also registers the synchronization tasks
(:func:`register_sync_tasks`), so with sync mappings declared (:doc:`/sync`) the executor
queues platform start calls, first logins, stored Connec! notifications and the pushes of
``sync_on_commit(..., background=True)`` (the group's outbox) on Celery too.
:func:`schedule_syncs` adds a Celery beat entry that queues a synchronization of every group
with sync on, periodically::

    schedule_syncs(celery, every=3600)   # then: celery -A myapp.tasks:celery beat
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery import Celery  # type: ignore[import-untyped]

from .worker import ImportIncomplete, import_task, sync_all_task, sync_task

__all__ = [
    "SYNC_ALL_TASK_NAME",
    "SYNC_TASK_NAME",
    "TASK_NAME",
    "CeleryExecutor",
    "register_import_task",
    "register_sync_tasks",
    "schedule_syncs",
]

#: the name the import task is registered under
TASK_NAME = "flask_maestrano.import_group"
#: the name of the task that runs one sync job of a group
SYNC_TASK_NAME = "flask_maestrano.sync_group"
#: the name of the task that queues a synchronization of every group with sync on (schedules)
SYNC_ALL_TASK_NAME = "flask_maestrano.sync_all"


def register_import_task(
    celery: Celery, factory: str, *, max_retries: int = 5, retry_delay: float = 60.0
) -> Any:
    """Register on ``celery`` the task that runs one import in the app built by ``factory``
    (``"module:function"``); returns the task."""

    @celery.task(  # type: ignore[untyped-decorator]
        name=TASK_NAME,
        autoretry_for=(ImportIncomplete,),
        max_retries=max_retries,
        default_retry_delay=retry_delay,
    )
    def import_group(preset: str, group_id: str, collections: list[str] | None) -> dict[str, Any]:
        return import_task(factory, preset, group_id, collections)

    register_sync_tasks(celery, factory)
    return import_group


def register_sync_tasks(celery: Celery, factory: str) -> tuple[Any, Any]:
    """Register on ``celery`` the task that runs one sync job of a group
    (:data:`SYNC_TASK_NAME`, :func:`~flask_maestrano.contrib.worker.sync_task`) and the one
    that queues a synchronization of every group with sync on (:data:`SYNC_ALL_TASK_NAME`),
    in the app built by ``factory``; returns both (already registered ones are reused)."""
    if SYNC_TASK_NAME not in celery.tasks:

        @celery.task(name=SYNC_TASK_NAME, shared=False)  # type: ignore[untyped-decorator]
        def sync_group(preset: str, group_id: str, options: dict[str, Any]) -> dict[str, Any] | None:
            return sync_task(factory, preset, group_id, options)

    if SYNC_ALL_TASK_NAME not in celery.tasks:

        @celery.task(name=SYNC_ALL_TASK_NAME, shared=False)  # type: ignore[untyped-decorator]
        def sync_all() -> list[list[str]]:
            return sync_all_task(factory)

    return celery.tasks[SYNC_TASK_NAME], celery.tasks[SYNC_ALL_TASK_NAME]


def schedule_syncs(
    celery: Celery, *, every: float = 3600.0, name: str = SYNC_ALL_TASK_NAME
) -> dict[str, Any]:
    """Add to ``celery.conf.beat_schedule`` an entry (``name``) that runs
    :data:`SYNC_ALL_TASK_NAME` every ``every`` seconds (register the tasks first:
    :func:`register_import_task` or :func:`register_sync_tasks`); returns the entry. Run
    ``celery beat`` next to the workers."""
    if SYNC_ALL_TASK_NAME not in celery.tasks:
        raise RuntimeError("register the sync tasks first: register_import_task or register_sync_tasks")
    if every <= 0:
        raise ValueError(f"every must be a positive number of seconds, got {every}")
    entry = {"task": SYNC_ALL_TASK_NAME, "schedule": float(every), "args": ()}
    schedule = dict(celery.conf.beat_schedule or {})
    schedule[name] = entry
    celery.conf.beat_schedule = schedule
    return entry


class CeleryExecutor:
    """``MAESTRANO_IMPORT_EXECUTOR`` that sends ``task`` (from :func:`register_import_task`);
    ``submit`` returns Celery's ``AsyncResult``. ``submit_sync`` sends the sync task
    registered on the same Celery app (:data:`SYNC_TASK_NAME`)."""

    def __init__(self, task: Any) -> None:
        self.task = task

    def submit_sync(self, preset: str, group_id: str, options: dict[str, Any]) -> Any:
        """Send one sync job of ``group_id`` (:data:`SYNC_TASK_NAME`); returns the ``AsyncResult``."""
        task = self.task.app.tasks.get(SYNC_TASK_NAME)
        if task is None:
            raise RuntimeError(f"no {SYNC_TASK_NAME} task on the Celery app: call register_sync_tasks")
        return task.delay(preset, group_id, dict(options))

    def submit(self, fn: Callable[..., Any], app: Any, preset: str, group_id: str, collections: Any) -> Any:
        return self.task.delay(preset, group_id, list(collections) if collections is not None else None)
