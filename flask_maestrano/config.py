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
        # inbound calls from the platform
        "MAESTRANO_WEBHOOK_MAX_SIZE": 16 * 1024 * 1024,
    }
)


def apply_defaults(config: Any) -> None:
    """``setdefault`` every key on a Flask config."""
    for key, value in DEFAULTS.items():
        config.setdefault(key, value.copy() if isinstance(value, dict) else value)
