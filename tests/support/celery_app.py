"""The host's Celery app and app factory for the Celery worker tests.

The broker and the store are the Redis server of ``JOB_TEST_REDIS`` (read at import), the
platform the fake one at ``JOB_TEST_PLATFORM``. The worker runs
``celery -A tests.support.celery_app:celery worker``.
"""

from __future__ import annotations

import os

from celery import Celery  # type: ignore[import-untyped]
from flask import Flask

from flask_maestrano import Maestrano
from flask_maestrano.contrib.celery import CeleryExecutor, register_import_task

from .job_apps import job_app_config

celery = Celery("celery_app", broker=os.environ["JOB_TEST_REDIS"])
celery.conf.update(broker_connection_retry_on_startup=True, worker_hijack_root_logger=False)
import_group = register_import_task(celery, "tests.support.celery_app:create_app", retry_delay=0)
#: the extension, initialised on every app the factory builds
maestrano = Maestrano()


def create_app() -> Flask:
    app = Flask("celery_app")
    app.config.update(job_app_config(CeleryExecutor(import_group)))
    maestrano.init_app(app)
    return app
