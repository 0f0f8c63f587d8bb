"""What the job-worker test apps (rq_app.py, celery_app.py) share: their configuration."""

from __future__ import annotations

import os
from typing import Any

from .fake_platform import platform_preset_data


def job_app_config(executor: Any) -> dict[str, Any]:
    """The config of a host app whose imports go to ``executor``; the fake platform, the Redis
    server and the lease come from ``JOB_TEST_PLATFORM``, ``JOB_TEST_REDIS``, ``JOB_TEST_LEASE``."""
    return {
        "SECRET_KEY": "test-secret",
        "MAESTRANO_PRESETS": {
            "production": platform_preset_data(
                os.environ["JOB_TEST_PLATFORM"],
                webhooks={"connec": {"subscriptions": {"organizations": True, "people": True}}},
            )
        },
        "MAESTRANO_STORE": os.environ["JOB_TEST_REDIS"],
        "MAESTRANO_JOB_LEASE": float(os.environ.get("JOB_TEST_LEASE", "30")),
        "MAESTRANO_IMPORT_PAGE_SIZE": 5,
        "MAESTRANO_HTTP_RETRIES": 0,
        "MAESTRANO_IMPORT_EXECUTOR": executor,
    }
