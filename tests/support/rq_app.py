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

from .fake_platform import platform_preset_data

QUEUE = "maestrano-test"
#: the extension, initialised on every app the factory builds
maestrano = Maestrano()


def create_app() -> Flask:
    redis_url = os.environ["JOB_TEST_REDIS"]
    app = Flask("rq_app")
    app.config.update(
        SECRET_KEY="test-secret",
        MAESTRANO_PRESETS={
            "production": platform_preset_data(
                os.environ["JOB_TEST_PLATFORM"],
                webhooks={"connec": {"subscriptions": {"organizations": True, "people": True}}},
            )
        },
        MAESTRANO_STORE=redis_url,
        MAESTRANO_JOB_LEASE=float(os.environ.get("JOB_TEST_LEASE", "30")),
        MAESTRANO_IMPORT_PAGE_SIZE=5,
        MAESTRANO_HTTP_RETRIES=0,
        MAESTRANO_IMPORT_EXECUTOR=RQExecutor(
            Queue(QUEUE, connection=Redis.from_url(redis_url)),
            "tests.support.rq_app:create_app",
            retry_interval=[0],
        ),
    )
    maestrano.init_app(app)
    return app
