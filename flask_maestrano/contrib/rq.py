"""Connec! imports on `RQ <https://python-rq.org>`_ workers.

Install ``flask-maestrano[rq]``. In the host's app factory, give the extension an
:class:`RQExecutor` on a queue of the same Redis server (or another one) and the import path
of that factory, so the worker builds the app itself::

    from redis import Redis
    from rq import Queue
    from flask_maestrano.contrib.rq import RQExecutor

    def create_app():
        app = Flask(__name__)
        app.config["MAESTRANO_STORE"] = "redis://127.0.0.1:6379/0"
        queue = Queue("maestrano", connection=Redis.from_url("redis://127.0.0.1:6379/1"))
        app.config["MAESTRANO_IMPORT_EXECUTOR"] = RQExecutor(queue, "myapp:create_app")
        maestrano.init_app(app)
        return app

and run a worker on that queue (its working directory must be able to import ``myapp``)::

    rq worker --url redis://127.0.0.1:6379/1 maestrano

A task whose import failed or was interrupted raises, and RQ retries it (``retries`` times,
waiting ``retry_interval``: give the worker ``--with-scheduler`` when an interval is not 0);
each retry resumes where the import stopped. One import per group runs whatever the number of
tasks: the others return the running one's status.

With sync mappings declared (:doc:`/sync`), the executor also queues the synchronization
jobs (``submit_sync``): platform start calls, first logins, stored Connec! notifications and
the pushes of ``sync_on_commit(..., background=True)`` (the group's outbox) run as
:func:`~flask_maestrano.contrib.worker.sync_task` on the same queue.
:func:`schedule_syncs` queues a synchronization of every group with sync on at a fixed
interval (RQ's scheduler: run the worker with ``--with-scheduler``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from rq import Queue, Repeat, Retry

from .worker import import_task, sync_all_task, sync_task

__all__ = ["RQExecutor", "import_task", "schedule_syncs", "sync_all_task", "sync_task"]


class RQExecutor:
    """``MAESTRANO_IMPORT_EXECUTOR`` that enqueues :func:`~flask_maestrano.contrib.worker.import_task`
    on ``queue``; ``submit`` returns the RQ job."""

    def __init__(
        self,
        queue: Queue,
        factory: str,
        *,
        retries: int = 3,
        retry_interval: Sequence[int] = (0, 60, 300),
        job_timeout: int = 3600,
    ) -> None:
        self.queue = queue
        self.factory = factory
        self.retries = retries
        self.retry_interval = list(retry_interval)
        self.job_timeout = job_timeout

    def submit(self, fn: Callable[..., Any], app: Any, preset: str, group_id: str, collections: Any) -> Any:
        retry = Retry(max=self.retries, interval=self.retry_interval) if self.retries else None
        return self.queue.enqueue(
            import_task,
            self.factory,
            preset,
            group_id,
            list(collections) if collections is not None else None,
            retry=retry,
            job_timeout=self.job_timeout,
        )

    def submit_sync(self, preset: str, group_id: str, options: dict[str, Any]) -> Any:
        """Enqueue :func:`~flask_maestrano.contrib.worker.sync_task` (one sync job of a group);
        returns the RQ job. Not retried by RQ: the run history records a failure."""
        return self.queue.enqueue(
            sync_task, self.factory, preset, group_id, dict(options), job_timeout=self.job_timeout
        )


def schedule_syncs(queue: Queue, factory: str, *, every: int = 3600, times: int | None = None) -> Any:
    """Enqueue :func:`~flask_maestrano.contrib.worker.sync_all_task` now and again every
    ``every`` seconds (``times`` more times; ``None``: for as long as RQ allows, about a
    year of hourly runs), with RQ's :class:`rq.Repeat`; each run queues a synchronization of
    every group with sync on. The worker must run with ``--with-scheduler`` for the
    repetitions. Returns the RQ job.

    >>> schedule_syncs(Queue("maestrano", connection=redis), "myapp:create_app")  # doctest: +SKIP
    """
    if every < 1:
        raise ValueError(f"every must be at least 1 second, got {every}")
    count = times if times is not None else max(1, (365 * 24 * 3600) // every)
    return queue.enqueue(sync_all_task, factory, repeat=Repeat(times=count, interval=every))
