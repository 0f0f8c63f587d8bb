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
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery import Celery  # type: ignore[import-untyped]

from .worker import ImportIncomplete, import_task

__all__ = ["TASK_NAME", "CeleryExecutor", "register_import_task"]

#: the name the import task is registered under
TASK_NAME = "flask_maestrano.import_group"


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

    return import_group


class CeleryExecutor:
    """``MAESTRANO_IMPORT_EXECUTOR`` that sends ``task`` (from :func:`register_import_task`);
    ``submit`` returns Celery's ``AsyncResult``."""

    def __init__(self, task: Any) -> None:
        self.task = task

    def submit(self, fn: Callable[..., Any], app: Any, preset: str, group_id: str, collections: Any) -> Any:
        return self.task.delay(preset, group_id, list(collections) if collections is not None else None)
