"""The host app factory an RQ worker builds (``tests.support.rq_app:create_app``).

It reads the fake platform's URL and the Redis URL from ``JOB_TEST_PLATFORM`` and
``JOB_TEST_REDIS``; the store and the RQ queue share that Redis server.
"""

from __future__ import annotations

import os

from flask import Flask
from redis import Redis
from rq import Queue

from flask_maestrano import Maestrano
from flask_maestrano.contrib.rq import RQExecutor

from .job_apps import job_app_config

QUEUE = "maestrano-test"
#: the extension, initialised on every app the factory builds
maestrano = Maestrano()


def create_app() -> Flask:
    app = Flask("rq_app")
    queue = Queue(QUEUE, connection=Redis.from_url(os.environ["JOB_TEST_REDIS"]))
    app.config.update(
        job_app_config(RQExecutor(queue, "tests.support.rq_app:create_app", retry_interval=[0]))
    )
    maestrano.init_app(app)
    return app
