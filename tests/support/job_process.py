"""An app process that runs Connec! imports, for the single-run and lease tests.

``python -m tests.support.job_process PLATFORM_URL REDIS_URL MODE LEASE`` builds an app whose
preset reads Connec! at ``PLATFORM_URL`` and whose ``MAESTRANO_STORE`` is ``REDIS_URL``, then:

- ``run``: prints ``ready``, waits for a line on stdin (so that several processes start together), runs the
  import of ``cld-1`` in this thread and prints its final state;
- ``start``: starts the import on the default executor (daemon threads), prints ``page`` after
  each delivered page, and then waits until it is stopped: SIGTERM exits the way gunicorn's
  workers do (``sys.exit``), SIGKILL kills it.
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any

from flask import Flask

from flask_maestrano import Maestrano

from .fake_platform import platform_preset_data

SUBSCRIPTIONS = {"organizations": True, "people": True}


def build(platform_url: str, redis_url: str, lease: float) -> tuple[Flask, Maestrano]:
    maestrano = Maestrano()

    @maestrano.on_entities
    def on_entities(preset: Any, group_id: str, collection: str, entities: Any, source: str) -> None:
        print("page", flush=True)

    app = Flask("job_process")
    app.config.update(
        SECRET_KEY="test-secret",
        MAESTRANO_PRESETS={
            "production": platform_preset_data(
                platform_url, webhooks={"connec": {"subscriptions": SUBSCRIPTIONS}}
            )
        },
        MAESTRANO_STORE=redis_url,
        MAESTRANO_JOB_LEASE=lease,
        MAESTRANO_IMPORT_PAGE_SIZE=5,
        MAESTRANO_HTTP_RETRIES=0,
    )
    maestrano.init_app(app)
    return app, maestrano


def main(platform_url: str, redis_url: str, mode: str, lease: str) -> None:
    app, maestrano = build(platform_url, redis_url, float(lease))
    with app.app_context():
        if mode == "run":
            print("ready", flush=True)
            sys.stdin.readline()
            status = maestrano.run_import("cld-1")
            print(f"state {status.state}", flush=True)
            return
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        maestrano.start_import("cld-1")
        threading.Event().wait()  # until a signal ends the process


if __name__ == "__main__":
    main(*sys.argv[1:5])
