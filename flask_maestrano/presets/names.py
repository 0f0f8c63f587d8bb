"""The keys a preset may have: the known keys, their defaults and the old SDKs' names."""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from ..environments import NAMEID_PERSISTENT
from ..errors import ConfigurationError

PRESET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
CREATION_MODES = ("real", "virtual")
MIGRATION_POLICIES = ("off", "confirm", "auto")
#: the single sign-on protocols a preset may use (``sso.protocol``)
PROTOCOLS = ("saml", "openid")

# Every key a preset may carry, in its canonical dotted form.
KNOWN_KEYS = frozenset(
    {
        "environment",
        "nid",
        "marketplace",
        "app.host",
        "app.synchronization_start_path",
        "app.synchronization_toggle_path",
        "app.synchronization_status_path",
        "api.id",
        "api.key",
        "api.host",
        "api.base",
        "api.verify_ssl_certs",
        "api.group_id",
        "sso.enabled",
        "sso.slo_enabled",
        "sso.creation_mode",
        "sso.init_path",
        "sso.consume_path",
        "sso.name_id_format",
        "sso.idm",
        "sso.idp",
        "sso.x509_fingerprint",
        "sso.x509_certificate",
        "sso.x509_certificates",
        "sso.idp_initiated",
        "sso.migration",
        "sso.protocol",
        "sso.openid_init_path",
        "sso.openid_consume_path",
        "connec.enabled",
        "connec.host",
        "connec.base_path",
        "connec.v2_path",
        "connec.reports_path",
        "connec.timeout",
        "webhooks.account.group_path",
        "webhooks.account.group_user_path",
        "webhooks.connec.notification_path",
        "webhooks.connec.external_ids",
        "webhooks.connec.initialization_path",
        "webhooks.connec.subscriptions",
    }
)
# Keys the old SDKs computed or forced; accepted and ignored so an old config loads.
IGNORED_KEYS = frozenset({"api.token", "api.version", "api.lang", "api.lang_version"})
# Keys whose value is itself a mapping (not flattened further).
MAPPING_KEYS = frozenset({"webhooks.connec.subscriptions", "webhook.connec.subscriptions"})

# Old SDK and camelCase spellings -> canonical dotted key.
ALIASES: Mapping[str, str] = MappingProxyType(
    {
        "webhook.account.groups_path": "webhooks.account.group_path",
        "webhook.account.group_path": "webhooks.account.group_path",
        "webhook.account.group_users_path": "webhooks.account.group_user_path",
        "webhook.account.group_user_path": "webhooks.account.group_user_path",
        "webhooks.account.groups_path": "webhooks.account.group_path",
        "webhooks.account.group_users_path": "webhooks.account.group_user_path",
        "webhook.connec.notifications_path": "webhooks.connec.notification_path",
        "webhook.connec.notification_path": "webhooks.connec.notification_path",
        "webhooks.connec.notifications_path": "webhooks.connec.notification_path",
        "webhook.connec.subscriptions": "webhooks.connec.subscriptions",
        "webhook.connec.initialization_path": "webhooks.connec.initialization_path",
        "webhook.connec.external_ids": "webhooks.connec.external_ids",
        "connec.external_ids": "webhooks.connec.external_ids",
    }
)

DEFAULTS: Mapping[str, Any] = MappingProxyType(
    {
        "environment": "production",
        "api.base": "/api/v1/",
        "api.verify_ssl_certs": True,
        "sso.enabled": True,
        "sso.slo_enabled": True,
        "sso.creation_mode": "real",
        "sso.init_path": "/maestrano/auth/saml/init",
        "sso.consume_path": "/maestrano/auth/saml/consume",
        "sso.name_id_format": NAMEID_PERSISTENT,
        "sso.idp_initiated": False,
        "sso.protocol": "saml",
        "sso.openid_init_path": "/maestrano/auth/openid/init",
        "sso.openid_consume_path": "/maestrano/auth/openid/consume",
        "connec.enabled": True,
        "connec.base_path": "/api/v2",
        "connec.v2_path": "/v2",
        "connec.reports_path": "/reports",
        "connec.timeout": 60,
        "webhooks.account.group_path": "/maestrano/account/groups/:id",
        "webhooks.account.group_user_path": "/maestrano/account/groups/:group_id/users/:id",
        "webhooks.connec.notification_path": "/maestrano/connec/notifications",
        "webhooks.connec.external_ids": False,
    }
)


def legacy_param_to_new(name: str) -> str:
    """Translate a legacy parameter name into its dotted form (PLATFORM.md 1.4).

    >>> legacy_param_to_new("app_id")
    'api.id'
    >>> legacy_param_to_new("sso_app_init_path")
    'sso.init_path'
    """
    if name == "user_creation_mode":
        return "sso.creation_mode"
    if name == "verify_ssl_certs":
        return "api.verify_ssl_certs"
    if name == "app_id":
        return "api.id"
    for prefix, group in (("app_", "app"), ("api_", "api"), ("sso_app_", "sso"), ("sso_", "sso")):
        if name.startswith(prefix):  # sso_app_ is tried before sso_
            return f"{group}.{name[len(prefix) :]}"
    return ALIASES.get(name, name)


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if not isinstance(key, str):
            raise ConfigurationError(f"configuration keys must be strings, got {key!r}")
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and dotted not in MAPPING_KEYS:
            flat.update(flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def canonical(key: str) -> str:
    if "." not in key:
        key = legacy_param_to_new(key)
    return ALIASES.get(key, key)
