"""Every ``MAESTRANO_*`` setting with its default, set once by ``init_app``.

``docs/config.rst`` has one entry per key; keep the two in step.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

DEFAULTS: Mapping[str, Any] = MappingProxyType(
    {
        # presets and the developer platform
        "MAESTRANO_PRESETS": {},
        "MAESTRANO_DEFAULT_PRESET": None,
        "MAESTRANO_AUTO_CONFIGURE": False,
        "MAESTRANO_DEV_PLATFORM_FILE": None,
        "MAESTRANO_DEV_PLATFORM_CACHE": None,
        "MAESTRANO_DEV_PLATFORM_TIMEOUT": 10.0,
        # server-side state
        "MAESTRANO_STORE": None,
        # single sign-on and single logout
        "MAESTRANO_SSO_MAX_SIZE": 256 * 1024,
        "MAESTRANO_SSO_ERROR": "redirect",
        "MAESTRANO_SSO_REQUEST_TTL": 600.0,
        "MAESTRANO_SSO_DEFAULT_NEXT": "/",
        "MAESTRANO_SESSION_CHECK_TIMEOUT": 5.0,
        "MAESTRANO_SESSION_CHECK_FAIL_OPEN": False,
        "MAESTRANO_SESSION_CHECK_RETRY": 60.0,
        # outbound calls to the platform (account API, Connec!)
        "MAESTRANO_HTTP_CONNECT_TIMEOUT": 10.0,
        "MAESTRANO_HTTP_READ_TIMEOUT": 60.0,
        "MAESTRANO_HTTP_RETRIES": 3,
        "MAESTRANO_HTTP_BACKOFF": 0.5,
        "MAESTRANO_HTTP_RETRY_AFTER_MAX": 30.0,
        "MAESTRANO_HTTP_POOL_SIZE": 10,
        "MAESTRANO_HTTP_PROXIES": None,
        # initial Connec! import on a company's first login
        "MAESTRANO_IMPORT_ON_FIRST_LOGIN": True,
        "MAESTRANO_IMPORT_COLLECTIONS": None,
        "MAESTRANO_IMPORT_PAGE_SIZE": 100,
        "MAESTRANO_IMPORT_EXECUTOR": None,
        "MAESTRANO_IMPORT_WORKERS": 2,
        "MAESTRANO_IMPORT_CONCURRENCY": 4,
        "MAESTRANO_IMPORT_STATUS_STORE": None,
        # inbound calls from the platform
        "MAESTRANO_WEBHOOK_MAX_SIZE": 16 * 1024 * 1024,
    }
)


def apply_defaults(config: Any) -> None:
    """``setdefault`` every key on a Flask config."""
    for key, value in DEFAULTS.items():
        config.setdefault(key, value.copy() if isinstance(value, dict) else value)
