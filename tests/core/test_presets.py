"""Presets: environment defaults, legacy names, derived defaults and the helpers of a preset."""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import logging
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from flask_maestrano.environments import ENVIRONMENTS, NAMEID_PERSISTENT
from flask_maestrano.errors import ConfigurationError
from flask_maestrano.presets import (
    Preset,
    certificate_fingerprint,
    find_preset_by_credentials,
    legacy_param_to_new,
    load_presets,
)

APP = {"host": "https://myapp.example"}
API = {"id": "app-1", "key": "the-api-secret"}


def make(name: str = "production", **data: Any) -> Preset:
    base: dict[str, Any] = {"app": dict(APP), "api": dict(API)}
    base.update(data)
    return Preset.from_dict(name, base)


def self_signed_pem(common_name: str = "test-idp") -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def sha1_fingerprint(pem: str) -> str:
    der = x509.load_pem_x509_certificate(pem.encode()).public_bytes(serialization.Encoding.DER)
    return ":".join(f"{b:02x}" for b in hashlib.sha1(der).digest())


# -- environment defaults (PLATFORM.md 1.3) -------------------------------------------------

LOCAL_FP = "01:06:15:89:25:7d:78:12:28:a6:69:c7:de:63:ed:74:21:f9:f5:36"
UAT_FP = "8a:1e:2e:76:c4:67:80:68:6c:81:18:f7:d3:29:5d:77:f8:79:54:2f"
PRODUCTION_FP = "2f:57:71:e4:40:19:57:37:a6:2c:f0:c5:82:52:2f:2e:41:b7:9d:7e"

EXPECTED_ENVIRONMENTS = {
    "local": ("http://localhost:3001", "http://connec.maestrano.io", 60.0, LOCAL_FP),
    "uat": ("https://uat.maestrano.io", "https://api-connec-uat.maestrano.io", 180.0, UAT_FP),
    "maestrano-uat": ("https://uat.maestrano.io", "https://api-connec-uat.maestrano.io", 180.0, UAT_FP),
    "production": ("https://maestrano.com", "https://api-connec.maestrano.com", 180.0, PRODUCTION_FP),
    "maestrano-production": (
        "https://maestrano.com",
        "https://api-connec.maestrano.com",
        180.0,
        PRODUCTION_FP,
    ),
}


def test_every_builtin_environment_is_covered() -> None:
    assert set(ENVIRONMENTS) == set(EXPECTED_ENVIRONMENTS)


@pytest.mark.parametrize("environment", sorted(EXPECTED_ENVIRONMENTS))
def test_environment_supplies_hosts_paths_and_idp_certificate(environment: str) -> None:
    api_host, connec_host, timeout, fingerprint = EXPECTED_ENVIRONMENTS[environment]
    preset = make(environment=environment)
    assert preset.environment == environment
    assert preset.api.host == api_host
    assert preset.api.base == "/api/v1/"
    assert preset.sso.idp == api_host
    assert preset.sso.name_id_format == NAMEID_PERSISTENT
    assert preset.connec.enabled is True
    assert preset.connec.host == connec_host
    assert preset.connec.base_path == "/api/v2"
    assert preset.connec.v2_path == "/v2"
    assert preset.connec.reports_path == "/reports"
    assert preset.connec.timeout == timeout
    assert preset.sso.x509_fingerprint == fingerprint
    assert len(preset.sso.x509_certificates) == 1
    assert preset.idp_url == f"{api_host}/api/v1/auth/saml"


@pytest.mark.parametrize("environment", sorted(EXPECTED_ENVIRONMENTS))
def test_builtin_certificate_fingerprint_is_the_published_one(environment: str) -> None:
    pem = ENVIRONMENTS[environment]["sso.x509_certificate"]
    expected = EXPECTED_ENVIRONMENTS[environment][3]
    assert sha1_fingerprint(pem) == expected
    assert certificate_fingerprint(pem) == expected
    assert ENVIRONMENTS[environment]["sso.x509_fingerprint"] == expected
    cert = x509.load_pem_x509_certificate(pem.encode())
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "maestrano.com"


def test_environment_defaults_to_production() -> None:
    preset = make()
    assert preset.environment == "production"
    assert preset.api.host == "https://maestrano.com"


def test_own_values_win_over_environment_defaults() -> None:
    preset = make(
        environment="uat",
        api={**API, "host": "https://api-hub-uat.maestrano.io", "base": "/api/v2"},
        connec={"host": "https://connec.example", "timeout": 300},
        sso={"idp": "https://idp.example"},
    )
    assert preset.api.host == "https://api-hub-uat.maestrano.io"
    assert preset.api.base == "/api/v2/"
    assert preset.connec.host == "https://connec.example"
    assert preset.connec.timeout == 300.0
    assert preset.sso.idp == "https://idp.example"


# -- derived defaults (PLATFORM.md 1.2 post_initialize) -------------------------------------


def test_derived_defaults() -> None:
    preset = make(environment="local")
    assert preset.sso.idm == "https://myapp.example"
    assert preset.sso.name_id_format == NAMEID_PERSISTENT
    assert preset.sso.enabled is True
    assert preset.sso.slo_enabled is True
    assert preset.sso.creation_mode == "real"
    assert preset.sso.init_path == "/maestrano/auth/saml/init"
    assert preset.sso.consume_path == "/maestrano/auth/saml/consume"
    assert preset.sso.idp_initiated is False
    assert preset.connec.base_path == "/api/v2"
    assert preset.connec.timeout == 60.0
    assert preset.api.token == "app-1:the-api-secret"
    assert preset.api.verify_ssl_certs is True
    assert preset.webhooks.group_path == "/maestrano/account/groups/:id"
    assert preset.webhooks.group_user_path == "/maestrano/account/groups/:group_id/users/:id"
    assert preset.webhooks.notification_path == "/maestrano/connec/notifications"
    assert preset.webhooks.external_ids is False
    assert preset.webhooks.initialization_path is None
    assert dict(preset.webhooks.subscriptions) == {}


def test_idm_follows_app_host_unless_set() -> None:
    assert make(app={"host": "https://other.example/"}).sso.idm == "https://other.example"
    assert make(sso={"idm": "https://idm.example"}).sso.idm == "https://idm.example"


def test_single_logout_is_off_when_sso_is_off() -> None:
    preset = make(sso={"enabled": False, "slo_enabled": True})
    assert preset.sso.enabled is False
    assert preset.sso.slo_enabled is False
    assert preset.param("sso.slo_enabled") is False


def test_connec_base_path_loses_its_trailing_slash_and_api_base_gains_one() -> None:
    preset = make(api={**API, "base": "/api/v1"}, connec={"base_path": "/api/v2/"})
    assert preset.api.base == "/api/v1/"
    assert preset.connec.base_path == "/api/v2"
    assert preset.account_api_url == "https://maestrano.com/api/v1/"


def test_string_booleans_are_accepted() -> None:
    preset = make(sso={"enabled": "false"}, api={**API, "verify_ssl_certs": "True"})
    assert preset.sso.enabled is False
    assert preset.api.verify_ssl_certs is True


# -- legacy names (PLATFORM.md 1.4) ----------------------------------------------------------

LEGACY_ROWS = [
    ("user_creation_mode", "sso.creation_mode", "virtual"),
    ("verify_ssl_certs", "api.verify_ssl_certs", False),
    ("app_id", "api.id", "app-legacy"),
    ("app_host", "app.host", "https://legacy.example"),
    ("api_key", "api.key", "legacy-secret"),
    ("api_host", "api.host", "https://api.legacy.example"),
    ("api_base", "api.base", "/api/legacy/"),
    ("sso_app_init_path", "sso.init_path", "/legacy/init"),
    ("sso_app_consume_path", "sso.consume_path", "/legacy/consume"),
    ("sso_enabled", "sso.enabled", False),
    ("sso_idp", "sso.idp", "https://idp.legacy.example"),
    ("sso_creation_mode", "sso.creation_mode", "virtual"),
]


@pytest.mark.parametrize(("legacy", "dotted", "value"), LEGACY_ROWS)
def test_legacy_name_translates(legacy: str, dotted: str, value: Any) -> None:
    assert legacy_param_to_new(legacy) == dotted


@pytest.mark.parametrize(("legacy", "dotted", "value"), LEGACY_ROWS)
def test_legacy_name_is_accepted_by_from_dict_and_param(legacy: str, dotted: str, value: Any) -> None:
    data: dict[str, Any] = {"app_host": "https://myapp.example", "app_id": "app-1", "api_key": "k"}
    data[legacy] = value
    preset = Preset.from_dict("production", data)
    assert preset.param(legacy) == value
    assert preset.param(dotted) == value


def test_legacy_sso_x509_certificate_name() -> None:
    pem = self_signed_pem()
    preset = Preset.from_dict(
        "production",
        {"app_host": "https://a.example", "app_id": "app-1", "api_key": "k", "sso_x509_certificate": pem},
    )
    assert preset.sso.x509_certificates == (pem.strip() + "\n",)
    assert preset.param("sso_x509_certificate") == pem.strip() + "\n"
    assert preset.param("sso_x509_fingerprint") == sha1_fingerprint(pem)


def test_legacy_computed_keys_are_accepted_and_api_token_is_forced() -> None:
    preset = make(api={**API, "token": "ignored", "version": "0.9", "lang": "ruby", "lang_version": "x"})
    assert preset.param("api_token") == "app-1:the-api-secret"
    assert preset.param("api.token") == "app-1:the-api-secret"


def test_other_names_are_unchanged() -> None:
    assert legacy_param_to_new("environment") == "environment"
    assert legacy_param_to_new("connec.host") == "connec.host"
    assert make().param("environment") == "production"


def test_dotted_keys_are_accepted() -> None:
    preset = Preset.from_dict(
        "production", {"app.host": "https://dotted.example", "api.id": "app-9", "api.key": "k9"}
    )
    assert preset.app.host == "https://dotted.example"
    assert preset.api.id == "app-9"


def test_param_knows_every_resolved_key() -> None:
    preset = make(nid="env-1", marketplace="production")
    assert preset.param("nid") == "env-1"
    assert preset.param("marketplace") == "production"
    assert preset.param("connec.timeout") == 180
    assert preset.param("sso.idm") == "https://myapp.example"
    assert preset.param("sso.x509_fingerprint") == PRODUCTION_FP
    with pytest.raises(ConfigurationError, match="no such configuration parameter"):
        preset.param("sso.nonsense")


def test_old_webhook_key_and_names() -> None:
    preset = make(
        webhook={
            "account": {
                "groups_path": "/mno/groups/:id",
                "group_users_path": "/mno/groups/:group_id/users/:id",
            },
            "connec": {"notifications_path": "/mno/receive", "subscriptions": {"organizations": True}},
        }
    )
    assert preset.webhooks.group_path == "/mno/groups/:id"
    assert preset.webhooks.group_user_path == "/mno/groups/:group_id/users/:id"
    assert preset.webhooks.notification_path == "/mno/receive"
    assert dict(preset.webhooks.subscriptions) == {"organizations": True}
    assert preset.param("webhook.account.groups_path") == "/mno/groups/:id"


def test_developer_platform_marketplace_object() -> None:
    pem = self_signed_pem()
    preset = Preset.from_dict(
        "maestrano-uat",
        {
            "nid": "my-awesome-app",
            "marketplace": "maestrano-uat",
            "environment": "maestrano-uat",
            "app": {"host": "http://localhost:63705", "synchronization_start_path": "/sync"},
            "api": {
                "id": "app-x",
                "key": "k",
                "host": "https://api-hub-uat.maestrano.io",
                "base": "/api/v1/",
            },
            "sso": {
                "idm": "http://localhost:63705",
                "init_path": "/maestrano/init/?marketplace=%{marketplace}",
                "consume_path": "/maestrano/consume/?marketplace=%{marketplace}",
                "idp": "https://api-hub-uat.maestrano.io",
                "x509_certificate": pem,
            },
            "connec": {"host": "https://api-connec-uat.maestrano.io", "base_path": "/api/v2", "timeout": 300},
            "webhooks": {
                "account": {
                    "group_path": "/maestrano/account/groups/:id/%{marketplace}",
                    "group_user_path": "/maestrano/account/groups/:group_id/users/:id/maestrano-uat",
                },
                "connec": {
                    "external_ids": True,
                    "initialization_path": None,
                    "notification_path": "/maestrano/connec/notifications/maestrano-uat",
                },
            },
        },
    )
    assert preset.nid == "my-awesome-app"
    assert preset.marketplace == "maestrano-uat"
    assert preset.app.synchronization_start_path == "/sync"
    assert preset.init_url == "http://localhost:63705/maestrano/init/?marketplace=maestrano-uat"
    assert preset.consume_url == "http://localhost:63705/maestrano/consume/?marketplace=maestrano-uat"
    assert preset.webhooks.group_path == "/maestrano/account/groups/:id/maestrano-uat"
    assert preset.webhooks.external_ids is True
    assert preset.connec.timeout == 300.0
    assert preset.sso.x509_fingerprint == sha1_fingerprint(pem)


# -- certificates and fingerprints -------------------------------------------------------------


def test_own_certificate_replaces_the_environment_one_without_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pem = self_signed_pem()
    with caplog.at_level(logging.WARNING, logger="flask_maestrano"):
        preset = make(environment="local", sso={"x509_certificate": pem})
    assert preset.sso.x509_certificates == (pem.strip() + "\n",)
    assert preset.sso.x509_fingerprint == sha1_fingerprint(pem)
    assert "fingerprint" not in caplog.text


def test_certificate_list_for_rotation_and_bare_base64() -> None:
    first, second = self_signed_pem("old"), self_signed_pem("new")
    bare = "".join(line for line in second.splitlines() if "CERTIFICATE" not in line)
    preset = make(sso={"x509_certificates": [first, bare]})
    assert len(preset.sso.x509_certificates) == 2
    assert preset.sso.x509_certificate == first.strip() + "\n"
    assert sha1_fingerprint(preset.sso.x509_certificates[1]) == sha1_fingerprint(second)


def test_fingerprint_only_is_legacy_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="flask_maestrano"):
        preset = make(environment="local", sso={"x509_fingerprint": "AA" * 20})
    assert preset.sso.x509_certificates == ()
    assert preset.sso.x509_fingerprint == ":".join(["aa"] * 20)
    assert "fingerprint only" in caplog.text


def test_matching_fingerprint_keeps_the_environment_certificate() -> None:
    preset = make(environment="uat", sso={"x509_fingerprint": UAT_FP.upper()})
    assert preset.sso.x509_certificates == (ENVIRONMENTS["uat"]["sso.x509_certificate"],)
    assert preset.sso.x509_fingerprint == UAT_FP


def test_mismatching_fingerprint_with_own_certificate_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="flask_maestrano"):
        make(sso={"x509_certificate": self_signed_pem(), "x509_fingerprint": "bb" * 20})
    assert "matches none of the configured certificates" in caplog.text


def test_verify_ssl_certs_off_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="flask_maestrano"):
        make(api={**API, "verify_ssl_certs": False})
    assert "TLS certificate verification is OFF" in caplog.text


# -- helpers (PLATFORM.md 1.5, 2.1) ------------------------------------------------------------


def test_authenticate_accepts_only_the_exact_pair() -> None:
    preset = make()
    assert preset.authenticate("app-1", "the-api-secret") is True
    assert preset.authenticate("app-1", "the-api-secreT") is False
    assert preset.authenticate("app-2", "the-api-secret") is False
    assert preset.authenticate("app-1", "") is False
    assert preset.authenticate(None, None) is False
    assert preset.authenticate("app-1", "the-api-secret-longer") is False
    assert preset.authenticate("app-1", "clé-ünicode") is False


def test_find_preset_by_credentials() -> None:
    presets = load_presets(
        {
            "production": {"app": APP, "api": {"id": "app-1", "key": "k1"}},
            "maestrano-uat": {"environment": "uat", "app": APP, "api": {"id": "app-2", "key": "k2"}},
        }
    )
    assert find_preset_by_credentials(presets.values(), "app-2", "k2") is presets["maestrano-uat"]
    assert find_preset_by_credentials(presets.values(), "app-1", "k1") is presets["production"]
    assert find_preset_by_credentials(presets.values(), "app-1", "k2") is None
    assert find_preset_by_credentials(presets.values(), None, None) is None
    assert find_preset_by_credentials([], "app-1", "k1") is None


def test_mask_and_unmask_user_follow_the_creation_mode() -> None:
    real = make()
    virtual = make(sso={"creation_mode": "virtual"})
    assert real.mask_user("usr-1", "cld-2") == "usr-1"
    assert virtual.mask_user("usr-1", "cld-2") == "usr-1.cld-2"
    assert virtual.mask_user("usr-1.cld-9", "cld-2") == "usr-1.cld-2"
    assert Preset.unmask_user("usr-1.cld-2") == "usr-1"
    assert real.unmask_user("usr-1") == "usr-1"


def test_url_helpers() -> None:
    preset = make(app={"host": "http://localhost:3000"})
    assert preset.init_url == "http://localhost:3000/maestrano/auth/saml/init"
    assert preset.consume_url == "http://localhost:3000/maestrano/auth/saml/consume"
    assert preset.audience == "http://localhost:3000/"
    assert preset.idp_url == "https://maestrano.com/api/v1/auth/saml"
    assert preset.session_check_url("usr-1", "f9ds8fdg7f89") == (
        "https://maestrano.com/api/v1/auth/saml/usr-1?session=f9ds8fdg7f89"
    )
    assert preset.session_check_url("usr 1/x", "a&b=c") == (
        "https://maestrano.com/api/v1/auth/saml/usr%201%2Fx?session=a%26b%3Dc"
    )
    assert preset.logout_url() == "https://maestrano.com/app_logout"
    assert preset.logout_url("usr-123") == "https://maestrano.com/app_logout?user_uid=usr-123"
    assert preset.unauthorized_url == "https://maestrano.com/app_access_unauthorized"
    assert preset.account_api_url == "https://maestrano.com/api/v1/"


def test_audience_keeps_the_port_and_drops_the_path() -> None:
    preset = make(sso={"idm": "http://127.0.0.1:5000/app"})
    assert preset.consume_url == "http://127.0.0.1:5000/app/maestrano/auth/saml/consume"
    assert preset.audience == "http://127.0.0.1:5000/"


# -- the model -------------------------------------------------------------------------------


def test_presets_are_immutable_and_hashable() -> None:
    preset = make(webhooks={"connec": {"subscriptions": {"people": True}}})
    with pytest.raises(dataclasses.FrozenInstanceError):
        preset.name = "other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        preset.api.key = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        preset.webhooks.subscriptions["people"] = False  # type: ignore[index]
    assert {preset: 1}[preset] == 1
    assert preset == make(webhooks={"connec": {"subscriptions": {"people": True}}})


def test_repr_and_to_dict_hide_the_key() -> None:
    preset = make()
    assert "the-api-secret" not in repr(preset)
    assert "the-api-secret" not in str(preset.to_dict())
    assert preset.to_dict()["api"]["key"] == "********"
    assert preset.to_dict(include_secrets=True)["api"]["key"] == "the-api-secret"


def test_to_dict_round_trips() -> None:
    preset = make(environment="uat", sso={"creation_mode": "virtual"}, marketplace="production")
    again = Preset.from_dict("production", preset.to_dict(include_secrets=True))
    assert again == preset


def test_to_metadata_has_old_and_new_names_and_no_secret() -> None:
    preset = make(webhooks={"connec": {"subscriptions": {"organizations": True}}})
    data = preset.to_metadata("1.2.3")
    assert "the-api-secret" not in str(data)
    assert "key" not in data["api"] and "token" not in data["api"]
    assert data["api"]["id"] == "app-1"
    assert data["api"]["version"] == "1.2.3"
    assert data["api"]["lang"] == "python"
    assert data["sso"]["x509_certificate"] == preset.sso.x509_certificate
    assert data["webhook"]["account"]["groups_path"] == "/maestrano/account/groups/:id"
    assert data["webhook"]["connec"]["notifications_path"] == "/maestrano/connec/notifications"
    assert data["webhook"]["connec"]["subscriptions"] == {"organizations": True}
    assert data["webhooks"]["account"]["group_path"] == "/maestrano/account/groups/:id"


def test_load_presets_passes_preset_objects_through() -> None:
    preset = make("maestrano-uat")
    assert load_presets([preset]) == {"maestrano-uat": preset}


def test_unknown_keys_are_ignored_when_not_strict() -> None:
    preset = Preset.from_dict("x", {"app": APP, "api": API, "brand_new": {"field": 1}}, strict=False)
    assert preset.api.id == "app-1"


def test_docstring_examples_run() -> None:
    import doctest

    from flask_maestrano.presets import model, names, registry

    results = [doctest.testmod(module) for module in (model, names, registry)]
    assert sum(r.attempted for r in results) >= 5
    assert sum(r.failed for r in results) == 0
