"""Preset data for tests."""

from __future__ import annotations

from typing import Any

APP_HOST = "http://127.0.0.1:5000"


def preset_data(**overrides: Any) -> dict[str, Any]:
    """A minimal valid preset (environment 'local' supplies hosts and the IdP certificate)."""
    data: dict[str, Any] = {
        "environment": "local",
        "app": {"host": APP_HOST},
        "api": {"id": "app-test", "key": "test-secret-key"},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return data


#: the sandbox's seeded user
JANE_EMAIL = "jane.doe@example.com"
