"""The preset model: one immutable configuration per marketplace (tenant), and how it is
built from a mapping (the resolution order is in :mod:`flask_maestrano.presets`)."""

from __future__ import annotations

import hmac
import logging
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from ..environments import ENVIRONMENTS
from ..errors import ConfigurationError
from .certificates import certificate_fingerprint, normalise_fingerprint
from .names import (
    CREATION_MODES,
    DEFAULTS,
    IGNORED_KEYS,
    KNOWN_KEYS,
    MIGRATION_POLICIES,
    PRESET_NAME,
    PROTOCOLS,
    canonical,
    flatten,
)

log = logging.getLogger("flask_maestrano")


# ---------------------------------------------------------------------------------------
# The typed, frozen model


@dataclass(frozen=True, slots=True)
class AppSettings:
    """``app.*``: the host application."""

    host: str
    synchronization_start_path: str | None = None
    synchronization_toggle_path: str | None = None
    synchronization_status_path: str | None = None


@dataclass(frozen=True, slots=True)
class ApiSettings:
    """``api.*``: the app's credentials and the account API location."""

    id: str
    key: str = field(repr=False)
    host: str
    base: str
    verify_ssl_certs: bool = True
    group_id: str | None = None

    @property
    def token(self) -> str:
        """``"<api.id>:<api.key>"``, the HTTP Basic pair of every platform call."""
        return f"{self.id}:{self.key}"


@dataclass(frozen=True, slots=True)
class SsoSettings:
    """``sso.*``: single sign-on and single logout."""

    enabled: bool
    slo_enabled: bool
    creation_mode: str
    init_path: str
    consume_path: str
    name_id_format: str
    idm: str
    idp: str
    x509_certificates: tuple[str, ...]
    x509_fingerprint: str | None
    idp_initiated: bool = False
    #: migration of existing accounts by email (``"off"``, ``"confirm"``, ``"auto"``);
    #: ``None`` follows :data:`MAESTRANO_SSO_MIGRATION`
    migration: str | None = None
    #: ``"saml"`` (SAML 2.0, the default) or ``"openid"`` (OpenID 2.0, PLATFORM.md 3)
    protocol: str = "saml"
    openid_init_path: str = "/maestrano/auth/openid/init"
    openid_consume_path: str = "/maestrano/auth/openid/consume"

    @property
    def saml_enabled(self) -> bool:
        """Single sign-on is on and goes through SAML 2.0."""
        return self.enabled and self.protocol == "saml"

    @property
    def openid_enabled(self) -> bool:
        """Single sign-on is on and goes through OpenID 2.0."""
        return self.enabled and self.protocol == "openid"

    @property
    def x509_certificate(self) -> str | None:
        """The first trusted certificate (the one the old SDKs had)."""
        return self.x509_certificates[0] if self.x509_certificates else None


@dataclass(frozen=True, slots=True)
class ConnecSettings:
    """``connec.*``: the Connec! data-sharing API."""

    enabled: bool
    host: str | None
    base_path: str
    v2_path: str
    reports_path: str
    timeout: float


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    """``webhooks.*``: the paths the platform calls on the app."""

    group_path: str
    group_user_path: str
    notification_path: str
    external_ids: bool
    initialization_path: str | None
    # a mapping is not hashable: left out of the hash (kept in ==) so presets can be dict keys
    subscriptions: Mapping[str, bool] = field(hash=False)


@dataclass(frozen=True, slots=True)
class Preset:
    """The configuration of one marketplace. Immutable; build it with :meth:`from_dict`.

    >>> preset = Preset.from_dict("production", {
    ...     "app": {"host": "https://myapp.example"},
    ...     "api": {"id": "app-1", "key": "secret"},
    ... })
    >>> preset.consume_url
    'https://myapp.example/maestrano/auth/saml/consume'
    """

    name: str
    environment: str
    app: AppSettings
    api: ApiSettings
    sso: SsoSettings
    connec: ConnecSettings
    webhooks: WebhookSettings
    source: str = "config"
    nid: str | None = None
    marketplace: str | None = None
    _params: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    # -- construction ---------------------------------------------------------------

    @classmethod
    def from_dict(
        cls, name: str, data: Mapping[str, Any], *, source: str = "config", strict: bool = True
    ) -> Preset:
        """Build a preset from a developer-platform marketplace object or an old-style dict.

        With ``strict`` (the default) an unknown key is an error, which catches typos;
        the developer-platform loader passes ``strict=False`` so new platform fields do
        not stop an app from booting.
        """
        return _build(name, data, source=source, strict=strict)

    # -- helpers of the old SDKs ----------------------------------------------------

    def param(self, name: str) -> Any:
        """Read a parameter by dotted or legacy name (``"api.id"``, ``"app_id"``...)."""
        key = canonical(name)
        if key == "api.token":
            return self.api.token
        if key not in self._params:
            raise ConfigurationError("no such configuration parameter", preset=self.name, key=name)
        return self._params[key]

    def authenticate(self, app_id: str | None, api_key: str | None) -> bool:
        """Whether ``app_id``/``api_key`` are this preset's credentials (constant time)."""
        if not app_id or not api_key:
            return False
        id_ok = hmac.compare_digest(app_id.encode(), self.api.id.encode())
        key_ok = hmac.compare_digest(api_key.encode(), self.api.key.encode())
        return id_ok & key_ok

    @staticmethod
    def unmask_user(user_uid: str) -> str:
        """The real user uid of a real or virtual uid: ``usr-1.cld-2`` -> ``usr-1``."""
        return user_uid.split(".", 1)[0]

    def mask_user(self, user_uid: str, group_uid: str) -> str:
        """The uid the app knows a user by, per this preset's creation mode (PLATFORM.md 2.7)."""
        real = self.unmask_user(user_uid)
        return f"{real}.{group_uid}" if self.sso.creation_mode == "virtual" else real

    # -- URLs -----------------------------------------------------------------------

    @property
    def init_url(self) -> str:
        """Where the marketplace sends users to log in: ``sso.idm + sso.init_path``, or
        ``sso.idm + sso.openid_init_path`` for a preset that uses OpenID."""
        if self.sso.protocol == "openid":
            return self.openid_init_url
        return self.sso.idm + self.sso.init_path

    @property
    def openid_init_url(self) -> str:
        """``sso.idm + sso.openid_init_path``: the OpenID login start."""
        return self.sso.idm + self.sso.openid_init_path

    @property
    def openid_return_to(self) -> str:
        """``sso.idm + sso.openid_consume_path``: the OpenID ``return_to`` URL."""
        return self.sso.idm + self.sso.openid_consume_path

    @property
    def openid_provider_url(self) -> str:
        """The OpenID provider endpoint: ``api.host + '/api/openid/provider/' + api.id`` (PLATFORM.md 3)."""
        return f"{self.api.host}/api/openid/provider/{quote(self.api.id, safe='')}"

    @property
    def consume_url(self) -> str:
        """``sso.idm + sso.consume_path``: the assertion consumer service URL."""
        return self.sso.idm + self.sso.consume_path

    @property
    def audience(self) -> str:
        """The Audience the platform's IdP puts in assertions: ``scheme://host[:port]/`` of the ACS."""
        parts = urlsplit(self.consume_url)
        return f"{parts.scheme}://{parts.netloc}/"

    @property
    def idp_url(self) -> str:
        """The IdP's single sign-on endpoint: ``api.host + api.base + 'auth/saml'``."""
        return f"{self.api.host}{self.api.base}auth/saml"

    def session_check_url(self, user_uid: str, session_token: str) -> str:
        """The single-logout check URL of a user's marketplace session."""
        return f"{self.idp_url}/{quote(user_uid, safe='')}?{urlencode({'session': session_token})}"

    def logout_url(self, user_uid: str | None = None) -> str:
        """The platform page that ends the marketplace session."""
        url = f"{self.api.host}/app_logout"
        return f"{url}?{urlencode({'user_uid': user_uid})}" if user_uid else url

    @property
    def unauthorized_url(self) -> str:
        """The platform page shown when access is refused."""
        return f"{self.api.host}/app_access_unauthorized"

    @property
    def account_api_url(self) -> str:
        """Base URL of the account API, e.g. ``https://maestrano.com/api/v1/``."""
        return f"{self.api.host}{self.api.base}"

    # -- serialisation --------------------------------------------------------------

    def to_dict(self, *, include_secrets: bool = False) -> dict[str, Any]:
        """The preset as a developer-platform marketplace object.

        ``api.key`` is masked unless ``include_secrets`` is true.
        """
        return {
            "marketplace": self.marketplace or self.name,
            "environment": self.environment,
            "nid": self.nid,
            "app": {
                "host": self.app.host,
                "synchronization_start_path": self.app.synchronization_start_path,
                "synchronization_toggle_path": self.app.synchronization_toggle_path,
                "synchronization_status_path": self.app.synchronization_status_path,
            },
            "api": {
                "id": self.api.id,
                "key": self.api.key if include_secrets else "********",
                "host": self.api.host,
                "base": self.api.base,
                "verify_ssl_certs": self.api.verify_ssl_certs,
                "group_id": self.api.group_id,
            },
            "sso": {
                "enabled": self.sso.enabled,
                "slo_enabled": self.sso.slo_enabled,
                "creation_mode": self.sso.creation_mode,
                "init_path": self.sso.init_path,
                "consume_path": self.sso.consume_path,
                "idm": self.sso.idm,
                "idp": self.sso.idp,
                "name_id_format": self.sso.name_id_format,
                "idp_initiated": self.sso.idp_initiated,
                "migration": self.sso.migration,
                "protocol": self.sso.protocol,
                "openid_init_path": self.sso.openid_init_path,
                "openid_consume_path": self.sso.openid_consume_path,
                "x509_fingerprint": self.sso.x509_fingerprint,
                "x509_certificates": list(self.sso.x509_certificates),
            },
            "connec": {
                "enabled": self.connec.enabled,
                "host": self.connec.host,
                "base_path": self.connec.base_path,
                "v2_path": self.connec.v2_path,
                "reports_path": self.connec.reports_path,
                "timeout": self.connec.timeout,
            },
            "webhooks": {
                "account": {
                    "group_path": self.webhooks.group_path,
                    "group_user_path": self.webhooks.group_user_path,
                },
                "connec": {
                    "notification_path": self.webhooks.notification_path,
                    "external_ids": self.webhooks.external_ids,
                    "initialization_path": self.webhooks.initialization_path,
                    "subscriptions": dict(self.webhooks.subscriptions),
                },
            },
        }

    def to_metadata(self, version: str) -> dict[str, Any]:
        """What the metadata endpoint serves (PLATFORM.md 1.8): no key, token or secret.

        Both the developer-platform names (``webhooks``) and the old ones (``webhook``,
        ``groups_path``...) are present, so old and new fetchers find what they read.
        """
        data = self.to_dict()
        data["api"] = {
            "id": self.api.id,
            "host": self.api.host,
            "base": self.api.base,
            "verify_ssl_certs": self.api.verify_ssl_certs,
            "version": version,
            "lang": "python",
            "lang_version": sys.version.split()[0],
        }
        data["sso"]["x509_certificate"] = self.sso.x509_certificate
        data["webhook"] = {
            "account": {
                "groups_path": self.webhooks.group_path,
                "group_users_path": self.webhooks.group_user_path,
            },
            "connec": {
                "notifications_path": self.webhooks.notification_path,
                "initialization_path": self.webhooks.initialization_path,
                "subscriptions": dict(self.webhooks.subscriptions),
            },
        }
        return data


# ---------------------------------------------------------------------------------------
# Building and validating


class _Resolver:
    """Reads values for one preset: explicit > environment table > defaults."""

    def __init__(self, name: str, explicit: Mapping[str, Any], environment: str) -> None:
        self.name = name
        self.explicit = explicit
        self.environment = environment
        self.table = ENVIRONMENTS.get(environment, {})
        self.used: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        value = self.explicit.get(key)
        if value is None:
            value = self.table.get(key)
        if value is None:
            value = DEFAULTS.get(key, default)
        self.used[key] = value
        return value

    def fail(self, key: str, message: str) -> ConfigurationError:
        return ConfigurationError(message, preset=self.name, key=key)

    def required_str(self, key: str) -> str:
        value = self.get(key)
        if value is None or value == "":
            return self._missing(key)
        if not isinstance(value, str):
            raise self.fail(key, f"must be a string, got {type(value).__name__}")
        return value

    def _missing(self, key: str) -> str:
        if self.table or self.environment in ENVIRONMENTS:
            raise self.fail(key, "is required but missing")
        known = ", ".join(ENVIRONMENTS)
        raise self.fail(
            key,
            f"is required but missing (environment {self.environment!r} has no built-in "
            f"defaults; those with defaults are: {known})",
        )

    def optional_str(self, key: str) -> str | None:
        value = self.get(key)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise self.fail(key, f"must be a string, got {type(value).__name__}")
        return value

    def boolean(self, key: str) -> bool:
        value = self.get(key)
        if isinstance(value, str) and value.lower() in ("true", "false"):
            value = value.lower() == "true"
        if not isinstance(value, bool):
            raise self.fail(key, f"must be true or false, got {value!r}")
        self.used[key] = value
        return value

    def url(self, key: str, value: str | None = None) -> str:
        value = value if value is not None else self.required_str(key)
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise self.fail(key, f"must be an http(s) URL like https://example.com, got {value!r}")
        if parts.query or parts.fragment:
            raise self.fail(key, f"must not carry a query or fragment, got {value!r}")
        try:
            parts.port  # noqa: B018 - raises on a malformed port
        except ValueError:
            raise self.fail(key, f"has an invalid port: {value!r}") from None
        value = value.rstrip("/")
        self.used[key] = value
        return value

    def path(self, key: str, *, optional: bool = False) -> str:
        value = self.optional_str(key) if optional else self.required_str(key)
        if value is None:
            return ""
        if not value.startswith("/"):
            raise self.fail(key, f"must be a path starting with '/', got {value!r}")
        return value


def _certificates(res: _Resolver) -> tuple[str, ...]:
    from cryptography import x509

    raw: list[Any] = []
    for key in ("sso.x509_certificates", "sso.x509_certificate"):
        value = res.explicit.get(key)
        if value:
            raw.extend(value if isinstance(value, list | tuple) else [value])
    certificates: list[str] = []
    for value in raw:
        if not isinstance(value, str):
            raise res.fail("sso.x509_certificate", "must be a PEM string or a list of PEM strings")
        pem = value.strip()
        if "BEGIN CERTIFICATE" not in pem:
            body = "".join(pem.split())
            pem = f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----"
        try:
            x509.load_pem_x509_certificate(pem.encode())
        except ValueError as exc:
            raise res.fail("sso.x509_certificate", f"is not a valid PEM certificate ({exc})") from None
        certificates.append(pem + "\n")
    if not raw and res.table.get("sso.x509_certificate"):
        table_pem = res.table["sso.x509_certificate"]
        # A fingerprint of its own means another IdP: the environment's certificate is not it.
        own = res.explicit.get("sso.x509_fingerprint")
        if not own or normalise_fingerprint(own) == certificate_fingerprint(table_pem):
            certificates.append(table_pem)
    res.used["sso.x509_certificate"] = certificates[0] if certificates else None
    res.used["sso.x509_certificates"] = tuple(certificates)
    return tuple(certificates)


def _fingerprint(res: _Resolver, certificates: tuple[str, ...]) -> str | None:
    # Without a fingerprint of its own, the preset's is that of its first certificate.
    value = res.optional_str("sso.x509_fingerprint") if res.explicit.get("sso.x509_fingerprint") else None
    if value is None and certificates:
        value = certificate_fingerprint(certificates[0])
    res.used["sso.x509_fingerprint"] = value
    if value is None:
        return None
    normalised = normalise_fingerprint(value)
    if normalised is None:
        raise res.fail("sso.x509_fingerprint", "must be a SHA-1 fingerprint (40 hex digits)")
    if certificates and normalised not in {certificate_fingerprint(c) for c in certificates}:
        log.warning(
            "Maestrano preset %r: sso.x509_fingerprint matches none of the configured "
            "certificates; the certificates are trusted and the fingerprint is ignored",
            res.name,
        )
    res.used["sso.x509_fingerprint"] = normalised
    return normalised


def _subscriptions(res: _Resolver) -> Mapping[str, bool]:
    value = res.get("webhooks.connec.subscriptions") or {}
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, bool) for k, v in value.items()
    ):
        raise res.fail("webhooks.connec.subscriptions", "must map collection names to true/false")
    return MappingProxyType(dict(value))


def _timeout(res: _Resolver) -> float:
    value = res.get("connec.timeout")
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise res.fail("connec.timeout", f"must be a positive number of seconds, got {value!r}")
    return float(value)


def _expand(template: str | None, marketplace: str) -> str | None:
    return template.replace("%{marketplace}", marketplace) if template else template


def _build(name: str, data: Mapping[str, Any], *, source: str, strict: bool) -> Preset:
    if not isinstance(name, str) or not PRESET_NAME.match(name):
        raise ConfigurationError(
            "a preset name is letters, digits, '.', '_' or '-' (it appears in URLs)", preset=str(name)
        )
    if not isinstance(data, Mapping):
        raise ConfigurationError(f"must be a mapping, got {type(data).__name__}", preset=name)
    explicit: dict[str, Any] = {}
    for raw_key, value in flatten(data).items():
        key = canonical(raw_key)
        if key in IGNORED_KEYS:
            continue
        if key not in KNOWN_KEYS:
            if strict:
                raise ConfigurationError("unknown configuration key", preset=name, key=raw_key)
            log.debug("Maestrano preset %r: ignoring unknown key %r", name, raw_key)
            continue
        explicit[key] = value
    marketplace = explicit.get("marketplace") or name
    for key, value in list(explicit.items()):
        if isinstance(value, str) and key.endswith("_path"):
            explicit[key] = _expand(value, marketplace)

    environment = explicit.get("environment") or DEFAULTS["environment"]
    if explicit.get("nid"):
        # a developer-platform marketplace object: its environment names the platform's, not
        # a defaults table; auto-configuration uses the marketplace name, so the same object
        # in MAESTRANO_PRESETS must too (DESIGN: the three ways are the same data)
        environment = marketplace
    if not isinstance(environment, str):
        raise ConfigurationError("must be a string", preset=name, key="environment")
    res = _Resolver(name, explicit, environment)
    res.used["environment"] = environment

    app = AppSettings(
        host=res.url("app.host"),
        synchronization_start_path=res.optional_str("app.synchronization_start_path"),
        synchronization_toggle_path=res.optional_str("app.synchronization_toggle_path"),
        synchronization_status_path=res.optional_str("app.synchronization_status_path"),
    )
    api_base = res.path("api.base")
    if not api_base.endswith("/"):
        api_base += "/"
    res.used["api.base"] = api_base
    verify = res.boolean("api.verify_ssl_certs")
    if not verify:
        log.warning("Maestrano preset %r: TLS certificate verification is OFF", name)
    api = ApiSettings(
        id=res.required_str("api.id"),
        key=res.required_str("api.key"),
        host=res.url("api.host"),
        base=api_base,
        verify_ssl_certs=verify,
        group_id=res.optional_str("api.group_id"),
    )

    sso_enabled = res.boolean("sso.enabled")
    protocol = res.required_str("sso.protocol")
    if protocol not in PROTOCOLS:
        raise res.fail("sso.protocol", f"must be 'saml' or 'openid', got {protocol!r}")
    saml = sso_enabled and protocol == "saml"
    creation_mode = res.required_str("sso.creation_mode")
    if creation_mode not in CREATION_MODES:
        raise res.fail("sso.creation_mode", f"must be 'real' or 'virtual', got {creation_mode!r}")
    migration = res.optional_str("sso.migration")
    if migration is not None and migration not in MIGRATION_POLICIES:
        raise res.fail("sso.migration", f"must be 'off', 'confirm' or 'auto', got {migration!r}")
    idm = res.optional_str("sso.idm")
    certificates = _certificates(res)
    fingerprint = _fingerprint(res, certificates)
    if saml and not certificates and not fingerprint:
        raise res.fail("sso.x509_certificate", "is required when sso.enabled (the IdP certificate)")
    if saml and not certificates:
        log.warning(
            "Maestrano preset %r trusts the IdP by SHA-1 fingerprint only (legacy); "
            "configure sso.x509_certificate instead",
            name,
        )
    sso = SsoSettings(
        enabled=sso_enabled,
        slo_enabled=res.boolean("sso.slo_enabled") and sso_enabled,
        creation_mode=creation_mode,
        init_path=res.path("sso.init_path"),
        consume_path=res.path("sso.consume_path"),
        name_id_format=res.required_str("sso.name_id_format"),
        idm=res.url("sso.idm", idm) if idm else app.host,
        idp=res.url("sso.idp"),
        x509_certificates=certificates,
        x509_fingerprint=fingerprint,
        idp_initiated=res.boolean("sso.idp_initiated"),
        migration=migration,
        protocol=protocol,
        openid_init_path=res.path("sso.openid_init_path"),
        openid_consume_path=res.path("sso.openid_consume_path"),
    )
    res.used["sso.idm"] = sso.idm
    res.used["sso.slo_enabled"] = sso.slo_enabled

    connec_enabled = res.boolean("connec.enabled")
    connec_host = res.optional_str("connec.host")
    if connec_enabled and not connec_host:
        raise res.fail("connec.host", "is required when connec.enabled (or set connec.enabled false)")
    connec = ConnecSettings(
        enabled=connec_enabled,
        host=res.url("connec.host", connec_host) if connec_host else None,
        base_path=res.path("connec.base_path").rstrip("/"),
        v2_path=res.path("connec.v2_path"),
        reports_path=res.path("connec.reports_path"),
        timeout=_timeout(res),
    )
    webhooks = WebhookSettings(
        group_path=res.path("webhooks.account.group_path"),
        group_user_path=res.path("webhooks.account.group_user_path"),
        notification_path=res.path("webhooks.connec.notification_path"),
        external_ids=res.boolean("webhooks.connec.external_ids"),
        initialization_path=res.path("webhooks.connec.initialization_path", optional=True) or None,
        subscriptions=_subscriptions(res),
    )
    nid = explicit.get("nid")
    res.used["nid"] = str(nid) if nid is not None else None
    res.used["marketplace"] = explicit.get("marketplace")
    return Preset(
        name=name,
        environment=environment,
        app=app,
        api=api,
        sso=sso,
        connec=connec,
        webhooks=webhooks,
        source=source,
        nid=str(nid) if nid is not None else None,
        marketplace=explicit.get("marketplace"),
        _params=MappingProxyType(dict(res.used)),
    )
