"""Every configuration mistake fails at start-up with a ConfigurationError naming preset and key."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from flask_maestrano.errors import ConfigurationError
from flask_maestrano.presets import Preset
from tests.support.presets import preset_data

SECRET = "do-not-leak-this-key"


def build(**overrides: Any) -> Preset:
    data = preset_data(**overrides)
    data["api"] = {**data["api"], "key": SECRET, **overrides.get("api", {})}
    return Preset.from_dict("my-preset", data)


# (overrides, key named in the error, fragment of the message)
CASES: list[tuple[dict[str, Any], str, str]] = [
    ({"api": {"id": None}}, "api.id", "is required but missing"),
    ({"api": {"id": ""}}, "api.id", "is required but missing"),
    ({"api": {"key": None}}, "api.key", "is required but missing"),
    ({"api": {"id": 42}}, "api.id", "must be a string, got int"),
    ({"app": {"host": None}}, "app.host", "is required but missing"),
    ({"app": {"host": "myapp.example"}}, "app.host", "must be an http(s) URL"),
    ({"app": {"host": "ftp://myapp.example"}}, "app.host", "must be an http(s) URL"),
    ({"app": {"host": "http://"}}, "app.host", "must be an http(s) URL"),
    ({"app": {"host": "http://myapp.example:port"}}, "app.host", "invalid port"),
    ({"app": {"host": "http://myapp.example/?x=1"}}, "app.host", "must not carry a query"),
    ({"api": {"host": "not a url"}}, "api.host", "must be an http(s) URL"),
    ({"api": {"base": "api/v1/"}}, "api.base", "must be a path starting with '/'"),
    ({"api": {"verify_ssl_certs": "maybe"}}, "api.verify_ssl_certs", "must be true or false"),
    ({"sso": {"idp": "idp.example"}}, "sso.idp", "must be an http(s) URL"),
    ({"sso": {"idm": "//idm.example"}}, "sso.idm", "must be an http(s) URL"),
    ({"sso": {"enabled": 1}}, "sso.enabled", "must be true or false"),
    ({"sso": {"creation_mode": "fake"}}, "sso.creation_mode", "must be 'real' or 'virtual'"),
    ({"sso": {"init_path": "init"}}, "sso.init_path", "must be a path starting with '/'"),
    ({"sso": {"consume_path": 7}}, "sso.consume_path", "must be a string"),
    ({"sso": {"x509_certificate": "not a certificate"}}, "sso.x509_certificate", "not a valid PEM"),
    (
        {"sso": {"x509_certificate": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"}},
        "sso.x509_certificate",
        "not a valid PEM",
    ),
    ({"sso": {"x509_certificate": 12}}, "sso.x509_certificate", "must be a PEM string"),
    ({"sso": {"x509_fingerprint": "01:02"}}, "sso.x509_fingerprint", "40 hex digits"),
    ({"sso": {"x509_fingerprint": "zz" * 20}}, "sso.x509_fingerprint", "40 hex digits"),
    ({"connec": {"host": "connec"}}, "connec.host", "must be an http(s) URL"),
    ({"connec": {"timeout": 0}}, "connec.timeout", "positive number of seconds"),
    ({"connec": {"timeout": -5}}, "connec.timeout", "positive number of seconds"),
    ({"connec": {"timeout": "60"}}, "connec.timeout", "positive number of seconds"),
    ({"connec": {"timeout": True}}, "connec.timeout", "positive number of seconds"),
    ({"connec": {"base_path": "api"}}, "connec.base_path", "must be a path"),
    ({"webhooks": {"account": {"group_path": "groups"}}}, "webhooks.account.group_path", "must be a path"),
    (
        {"webhooks": {"connec": {"subscriptions": {"people": "yes"}}}},
        "webhooks.connec.subscriptions",
        "must map collection names to true/false",
    ),
    (
        {"webhooks": {"connec": {"external_ids": "no"}}},
        "webhooks.connec.external_ids",
        "must be true or false",
    ),
    ({"sso": {"x509_certifcate": "typo"}}, "sso.x509_certifcate", "unknown configuration key"),
    ({"environment": 3}, "environment", "must be a string"),
]


@pytest.mark.parametrize(("overrides", "key", "fragment"), CASES, ids=[c[1] + ":" + c[2] for c in CASES])
def test_invalid_value_names_preset_and_key(overrides: dict[str, Any], key: str, fragment: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        build(**overrides)
    error = info.value
    assert error.preset == "my-preset"
    assert error.key == key
    message = str(error)
    assert message.startswith(f"preset 'my-preset', key '{key}': ")
    assert fragment in message
    assert SECRET not in message


def test_unknown_environment_says_which_have_defaults() -> None:
    with pytest.raises(ConfigurationError) as info:
        Preset.from_dict(
            "my-preset",
            {
                "environment": "staging",
                "app": {"host": "https://a.example"},
                "api": {"id": "app-1", "key": SECRET},
            },
        )
    assert info.value.key == "api.host"
    assert "environment 'staging' has no built-in defaults" in str(info.value)
    assert "local" in str(info.value) and "maestrano-production" in str(info.value)


def test_sso_needs_a_certificate_when_the_environment_has_none() -> None:
    with pytest.raises(ConfigurationError) as info:
        Preset.from_dict(
            "my-preset",
            {
                "environment": "custom",
                "app": {"host": "https://a.example"},
                "api": {"id": "app-1", "key": SECRET, "host": "https://hub.example"},
                "sso": {"idp": "https://hub.example"},
                "connec": {"host": "https://connec.example"},
            },
        )
    assert (info.value.preset, info.value.key) == ("my-preset", "sso.x509_certificate")
    assert "required when sso.enabled" in str(info.value)


def test_connec_host_is_required_unless_connec_is_disabled() -> None:
    base = {
        "environment": "custom",
        "app": {"host": "https://a.example"},
        "api": {"id": "app-1", "key": SECRET, "host": "https://hub.example"},
        "sso": {"enabled": False, "idp": "https://hub.example"},
    }
    with pytest.raises(ConfigurationError) as info:
        Preset.from_dict("my-preset", base)
    assert (info.value.preset, info.value.key) == ("my-preset", "connec.host")
    preset = Preset.from_dict("my-preset", {**base, "connec": {"enabled": False}})
    assert preset.connec.host is None


@pytest.mark.parametrize("name", ["", "has space", "a/b", "-leading", "x" * 101])
def test_invalid_preset_name(name: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        Preset.from_dict(name, preset_data())
    assert info.value.preset == name
    assert "preset name is letters" in str(info.value)


def test_preset_that_is_not_a_mapping() -> None:
    with pytest.raises(ConfigurationError, match=r"preset 'my-preset': must be a mapping, got list"):
        Preset.from_dict("my-preset", [])  # type: ignore[arg-type]


def test_non_string_key() -> None:
    with pytest.raises(ConfigurationError, match="keys must be strings"):
        Preset.from_dict("my-preset", {**preset_data(), 1: "x"})  # type: ignore[dict-item]


# -- at start-up: init_app -----------------------------------------------------------------


def test_init_app_fails_on_an_invalid_preset(make_app: Callable[..., Flask]) -> None:
    with pytest.raises(ConfigurationError) as info:
        make_app(presets={"production": preset_data(api={"id": "app-1"}, app={"host": "nope"})})
    assert (info.value.preset, info.value.key) == ("production", "app.host")


def test_init_app_fails_without_presets(make_app: Callable[..., Flask]) -> None:
    with pytest.raises(ConfigurationError) as info:
        make_app(presets={})
    assert info.value.key == "MAESTRANO_PRESETS"
    assert "MAESTRANO_AUTO_CONFIGURE" in str(info.value)


@pytest.mark.parametrize("value", ["production", 3, None])
def test_init_app_fails_on_a_malformed_presets_setting(make_app: Callable[..., Flask], value: Any) -> None:
    with pytest.raises(ConfigurationError) as info:
        make_app(presets=None, MAESTRANO_PRESETS=value)
    assert info.value.key == "MAESTRANO_PRESETS"


def test_init_app_fails_on_an_unknown_default_preset(make_app: Callable[..., Flask]) -> None:
    with pytest.raises(ConfigurationError) as info:
        make_app(MAESTRANO_DEFAULT_PRESET="nope")
    assert info.value.key == "MAESTRANO_DEFAULT_PRESET"
    assert "production" in str(info.value)


@pytest.mark.parametrize("value", ["memcached://x", 42])
def test_init_app_fails_on_an_unusable_store(make_app: Callable[..., Flask], value: Any) -> None:
    with pytest.raises(ConfigurationError) as info:
        make_app(MAESTRANO_STORE=value)
    assert info.value.key == "MAESTRANO_STORE"


def test_init_app_fails_on_an_unknown_path_placeholder(make_app: Callable[..., Flask]) -> None:
    presets = {"production": preset_data(webhooks={"account": {"group_path": "/groups/:uid"}})}
    with pytest.raises(ConfigurationError) as info:
        make_app(presets=presets)
    assert (info.value.preset, info.value.key) == ("production", "webhooks.account.group_path")
    assert "unknown placeholder ':uid'" in str(info.value)
    assert "known: :id" in str(info.value)


def test_init_app_fails_on_an_unknown_query_placeholder(make_app: Callable[..., Flask]) -> None:
    presets = {"production": preset_data(webhooks={"account": {"group_path": "/groups?groupid=:gid"}})}
    with pytest.raises(ConfigurationError) as info:
        make_app(presets=presets)
    assert (info.value.preset, info.value.key) == ("production", "webhooks.account.group_path")
    assert "unknown placeholder ':gid'" in str(info.value)
