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
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from rq import Queue, Retry

from .worker import import_task

__all__ = ["RQExecutor", "import_task"]


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
