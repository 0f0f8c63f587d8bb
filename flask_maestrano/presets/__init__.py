"""Presets: one immutable configuration per marketplace (tenant).

A preset is the object the developer platform returns for one marketplace (``app``,
``api``, ``sso``, ``connec``, ``webhooks``). The old SDKs' names are accepted too: the
``webhook`` key with ``groups_path``/``group_users_path``/``notifications_path``, flat legacy
names such as ``app_id`` or ``sso_x509_certificate`` (PLATFORM.md 1.4), and dotted keys
such as ``"api.id"``.

Resolution of every value: the preset's own value, then the built-in defaults of its
``environment`` (:data:`~flask_maestrano.environments.ENVIRONMENTS`), then the derived
defaults (``sso.idm`` from ``app.host`` and so on). Anything missing or malformed raises
:class:`~flask_maestrano.errors.ConfigurationError` naming the preset and the key.

The package: ``names`` (the known keys, their defaults, the old SDKs' names),
``certificates`` (fingerprints), ``model`` (:class:`Preset` and how it is built from a
mapping) and ``registry`` (:func:`load_presets`, :func:`find_preset_by_credentials`).
"""

from __future__ import annotations

from .certificates import certificate_fingerprint
from .model import ApiSettings, AppSettings, ConnecSettings, Preset, SsoSettings, WebhookSettings
from .names import ALIASES as ALIASES
from .names import CREATION_MODES as CREATION_MODES
from .names import DEFAULTS as DEFAULTS
from .names import IGNORED_KEYS as IGNORED_KEYS
from .names import KNOWN_KEYS as KNOWN_KEYS
from .names import MAPPING_KEYS as MAPPING_KEYS
from .names import MIGRATION_POLICIES as MIGRATION_POLICIES
from .names import PRESET_NAME as PRESET_NAME
from .names import PROTOCOLS as PROTOCOLS
from .names import legacy_param_to_new
from .registry import find_preset_by_credentials, load_presets

__all__ = [
    "ApiSettings",
    "AppSettings",
    "ConnecSettings",
    "Preset",
    "SsoSettings",
    "WebhookSettings",
    "certificate_fingerprint",
    "find_preset_by_credentials",
    "legacy_param_to_new",
    "load_presets",
]
