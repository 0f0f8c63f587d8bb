"""Typed settings: every MAESTRANO_* key parsed and checked at init_app, before anything is registered."""

from __future__ import annotations

import ast
import dataclasses
import doctest
import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from flask_maestrano import Maestrano, get_state
from flask_maestrano import settings as settings_module
from flask_maestrano.config import DEFAULTS
from flask_maestrano.errors import ConfigurationError
from flask_maestrano.settings import Settings, keys
from tests.support.presets import preset_data

DOCS = Path(__file__).resolve().parents[2] / "docs" / "config.rst"


def unconfigured_app(**config: Any) -> Flask:
    app = Flask("settings")
    app.config.update({"SECRET_KEY": "x", "MAESTRANO_PRESETS": {"production": preset_data()}, **config})
    return app


# (key, value, fragment of the error): the four of issue 11, then one per kind of check
REFUSED: list[tuple[str, Any, str]] = [
    ("MAESTRANO_HTTP_RETRIES", "three", "must be a whole number >= 0, got 'three'"),
    ("MAESTRANO_WEBHOOK_MAX_SIZE", "big", "must be a whole number >= 1, got 'big'"),
    (
        "MAESTRANO_SESSION_CHECK_FAIL_OPEN",
        "no",
        'must be true or false (True/False, "true"/"false", "1"/"0")',
    ),
    ("MAESTRANO_SSO_ERROR", "close", "must be 'redirect' or 'abort', got 'close'"),
    ("MAESTRANO_SSO_ERROR", None, "must be 'redirect' or 'abort', got None"),
    ("MAESTRANO_AUTO_CONFIGURE", "yes", "must be true or false"),
    ("MAESTRANO_IMPORT_ON_FIRST_LOGIN", 2, "must be true or false"),
    ("MAESTRANO_HTTP_RETRIES", -1, "must be a whole number >= 0, got -1"),
    ("MAESTRANO_HTTP_RETRIES", 2.5, "must be a whole number >= 0, got 2.5"),
    ("MAESTRANO_HTTP_RETRIES", True, "must be a whole number >= 0, got True"),
    ("MAESTRANO_HTTP_POOL_SIZE", 0, "must be a whole number >= 1, got 0"),
    ("MAESTRANO_SSO_MAX_SIZE", "1.5", "must be a whole number >= 1, got '1.5'"),
    ("MAESTRANO_IMPORT_WORKERS", None, "must be a whole number >= 1, got None"),
    ("MAESTRANO_SESSION_CHECK_TIMEOUT", 0, "must be a number > 0, got 0"),
    ("MAESTRANO_HTTP_CONNECT_TIMEOUT", "nan", "must be a number > 0, got 'nan'"),
    ("MAESTRANO_HTTP_READ_TIMEOUT", "inf", "must be a number > 0, got 'inf'"),
    ("MAESTRANO_HTTP_BACKOFF", -0.5, "must be a number >= 0, got -0.5"),
    ("MAESTRANO_SSO_REQUEST_TTL", [600], "must be a number > 0, got a list"),
    ("MAESTRANO_DEFAULT_PRESET", 42, "must be a non-empty string, got 42"),
    ("MAESTRANO_DEV_PLATFORM_FILE", "", "must be a file path, got ''"),
    ("MAESTRANO_SSO_DEFAULT_NEXT", "//evil.example", "must be a path starting with '/' or an http(s) URL"),
    ("MAESTRANO_SSO_DEFAULT_NEXT", "dashboard", "must be a path starting with '/' or an http(s) URL"),
    ("MAESTRANO_STORE", "memcached://cache:11211", "must be None, a redis:// URL or a store object"),
    ("MAESTRANO_STORE", object(), "must be an object with add and pop methods, got object"),
    ("MAESTRANO_HTTP_PROXIES", "http://proxy:3128", "must map URL schemes to proxy URLs"),
    ("MAESTRANO_HTTP_PROXIES", {"https": "proxy.internal:3128"}, "the 'https' proxy must be a URL like"),
    ("MAESTRANO_IMPORT_COLLECTIONS", "people,../admin", "not a Connec! collection name: '../admin'"),
    ("MAESTRANO_IMPORT_COLLECTIONS", 7, "must be a list or a comma-separated string, got 7"),
    ("MAESTRANO_IMPORT_EXECUTOR", "celery", "must be an object with submit methods, got str"),
    ("MAESTRANO_IMPORT_STATUS_STORE", {}, "must be an object with get and put methods, got dict"),
    ("MAESTRANO_PRESETS", [preset_data()], "must map preset names to preset objects, got list"),
]


@pytest.mark.parametrize(("key", "value", "fragment"), REFUSED)
def test_a_refused_value_fails_init_app_naming_the_key(key: str, value: Any, fragment: str) -> None:
    app = unconfigured_app(**{key: value})
    before = dict(app.config)
    with pytest.raises(ConfigurationError) as info:
        Maestrano(app)
    assert info.value.key == key
    assert str(info.value).startswith(f"key {key!r}: ")
    assert fragment in str(info.value)
    # refused before anything was registered or defaulted
    assert "maestrano" not in app.extensions and "maestrano" not in app.blueprints
    assert not any(rule.endpoint.startswith("maestrano.") for rule in app.url_map.iter_rules())
    assert not app.before_request_funcs and "maestrano" not in app.cli.commands
    assert dict(app.config) == before


def test_a_misspelt_key_is_refused_with_the_closest_known_key() -> None:
    with pytest.raises(ConfigurationError) as info:
        Maestrano(unconfigured_app(MAESTRANO_SESION_CHECK_TIMEOUT=2))
    assert info.value.key == "MAESTRANO_SESION_CHECK_TIMEOUT"
    assert "unknown setting; did you mean MAESTRANO_SESSION_CHECK_TIMEOUT?" in str(info.value)


def test_an_unknown_key_without_a_close_one_lists_the_known_keys() -> None:
    with pytest.raises(ConfigurationError, match=r"unknown setting \(known: MAESTRANO_AUTO_CONFIGURE, "):
        Maestrano(unconfigured_app(MAESTRANO_ZZZ=1))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        *[(value, True) for value in (True, "true", "True", " TRUE ", "1", 1)],
        *[(value, False) for value in (False, "false", "FALSE", "0", 0)],
    ],
)
def test_booleans_are_read_from_their_accepted_spellings(value: Any, expected: bool) -> None:
    app = unconfigured_app(MAESTRANO_SESSION_CHECK_FAIL_OPEN=value, MAESTRANO_IMPORT_ON_FIRST_LOGIN=value)
    Maestrano(app)
    settings = get_state(app).settings
    assert settings.session_check_fail_open is expected
    assert settings.import_on_first_login is expected


def test_numbers_are_read_from_numeric_strings() -> None:
    app = unconfigured_app(
        MAESTRANO_HTTP_RETRIES=" 5 ",
        MAESTRANO_WEBHOOK_MAX_SIZE="1024",
        MAESTRANO_HTTP_POOL_SIZE=4.0,
        MAESTRANO_SESSION_CHECK_TIMEOUT="2.5",
        MAESTRANO_HTTP_BACKOFF="0",
        MAESTRANO_IMPORT_COLLECTIONS=" people , invoices,",
    )
    Maestrano(app)
    settings = get_state(app).settings
    assert (settings.http_retries, settings.webhook_max_size, settings.http_pool_size) == (5, 1024, 4)
    assert (settings.session_check_timeout, settings.http_backoff) == (2.5, 0.0)
    assert settings.import_collections == ("people", "invoices")
    assert app.config["MAESTRANO_HTTP_RETRIES"] == " 5 "  # the host's configuration is left as written


def test_settings_come_from_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLASK_MAESTRANO_HTTP_RETRIES", "1")
    monkeypatch.setenv("FLASK_MAESTRANO_SESSION_CHECK_FAIL_OPEN", "true")
    monkeypatch.setenv("FLASK_MAESTRANO_SSO_ERROR", "abort")  # not JSON: Flask keeps the string
    app = unconfigured_app()
    app.config.from_prefixed_env()
    Maestrano(app)
    settings = get_state(app).settings
    assert (settings.http_retries, settings.session_check_fail_open, settings.sso_error) == (1, True, "abort")


def test_unset_keys_take_the_documented_defaults_and_are_written_back() -> None:
    app = unconfigured_app()
    Maestrano(app)
    assert get_state(app).settings == Settings.from_config(
        {"MAESTRANO_PRESETS": app.config["MAESTRANO_PRESETS"]}
    )
    assert set(DEFAULTS) <= set(app.config)


def test_settings_are_frozen_and_keep_secrets_out_of_repr() -> None:
    settings = Settings.from_config(
        {
            "MAESTRANO_PRESETS": {"production": preset_data(api={"id": "app-1", "key": "the-api-key"})},
            "MAESTRANO_STORE": "redis://:redis-password@127.0.0.1:6379/0",
            "MAESTRANO_HTTP_PROXIES": {"https": "http://user:proxy-password@proxy.internal:3128"},
        }
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.http_retries = 9  # type: ignore[misc]
    with pytest.raises(TypeError):
        settings.presets["other"] = {}  # type: ignore[index]
    shown = repr(settings)
    assert "http_retries=3" in shown
    assert not any(secret in shown for secret in ("the-api-key", "redis-password", "proxy-password"))


def test_a_refused_proxy_or_store_url_is_not_echoed() -> None:
    for key, value in [
        ("MAESTRANO_HTTP_PROXIES", {"https": "user:proxy-password@proxy"}),
        ("MAESTRANO_STORE", "memcached://:store-password@cache"),
    ]:
        with pytest.raises(ConfigurationError) as info:
            Settings.from_config({key: value})
        assert "password" not in str(info.value)


def test_a_new_setting_is_one_line_of_the_table() -> None:
    # key <- field name, default and parser on the same declaration
    for item in dataclasses.fields(Settings):
        key = "MAESTRANO_" + item.name.upper()
        assert keys()[key] == DEFAULTS[key] == item.metadata["default"]
        assert callable(item.metadata["parse"]) and item.metadata["doc"]


def _documented_defaults() -> dict[str, str]:
    """``.. data:: MAESTRANO_X`` entries of docs/config.rst -> the literal of their ``Default ``...````."""
    text = DOCS.read_text()
    entries = re.split(r"^\.\. data:: ", text, flags=re.MULTILINE)[1:]
    found: dict[str, str] = {}
    for entry in entries:
        key, _, body = entry.partition("\n")
        default = re.search(r"Default\s+``([^`]+)``", body.split("\n.. ")[0])
        assert default is not None, f"{key}: no 'Default ``...``' line in docs/config.rst"
        found[key.strip()] = default.group(1)
    return found


def test_docs_document_exactly_the_settings_with_their_defaults() -> None:
    documented = _documented_defaults()
    assert sorted(documented) == sorted(keys())
    for key, default in keys().items():
        assert ast.literal_eval(documented[key]) == default, key


def test_module_examples_run() -> None:
    result = doctest.testmod(settings_module)
    assert result.attempted > 0 and result.failed == 0
