"""Every ``MAESTRANO_*`` setting with its default, set once by ``init_app``.

The settings are declared in :class:`flask_maestrano.settings.Settings` (one line each);
``docs/config.rst`` has one entry per key, and a test keeps the three in step.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from .settings import keys

DEFAULTS: Mapping[str, Any] = MappingProxyType(keys())


def apply_defaults(config: Any) -> None:
    """``setdefault`` every key on a Flask config."""
    for key, value in DEFAULTS.items():
        config.setdefault(key, value.copy() if isinstance(value, dict) else value)
