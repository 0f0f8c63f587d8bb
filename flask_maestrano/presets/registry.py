"""The presets of an app: built from ``MAESTRANO_PRESETS``, found by credentials."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import ConfigurationError
from .model import Preset


def load_presets(
    data: Mapping[str, Mapping[str, Any]] | Iterable[Preset], *, source: str = "config"
) -> dict[str, Preset]:
    """Build ``{name: Preset}`` from ``MAESTRANO_PRESETS`` (or pass presets through).

    >>> presets = load_presets({"production": {
    ...     "app": {"host": "https://myapp.example"}, "api": {"id": "app-1", "key": "secret"}}})
    >>> presets["production"].api.host
    'https://maestrano.com'
    """
    if isinstance(data, Mapping):
        return {name: Preset.from_dict(name, value, source=source) for name, value in data.items()}
    if isinstance(data, str | bytes) or not isinstance(data, Iterable):
        raise ConfigurationError(
            f"must map preset names to preset objects, got {type(data).__name__}", key="MAESTRANO_PRESETS"
        )
    presets: dict[str, Preset] = {}
    for preset in data:
        if not isinstance(preset, Preset):
            raise ConfigurationError(
                f"expected Preset objects, got {type(preset).__name__}", key="MAESTRANO_PRESETS"
            )
        presets[preset.name] = preset
    return presets


def find_preset_by_credentials(
    presets: Iterable[Preset], app_id: str | None, api_key: str | None
) -> Preset | None:
    """The preset whose ``api.id``/``api.key`` are these credentials, else ``None``.

    Like the Ruby SDK's ``find_by_app_id_and_app_key``, but it returns the preset and
    compares every preset in constant time (no early exit), so timing does not reveal
    which credentials exist.

    >>> presets = load_presets({"production": {
    ...     "app": {"host": "https://myapp.example"}, "api": {"id": "app-1", "key": "secret"}}})
    >>> find_preset_by_credentials(presets.values(), "app-1", "secret").name
    'production'
    >>> find_preset_by_credentials(presets.values(), "app-1", "wrong") is None
    True
    """
    found: Preset | None = None
    for preset in presets:
        if preset.authenticate(app_id, api_key) and found is None:
            found = preset
    return found
