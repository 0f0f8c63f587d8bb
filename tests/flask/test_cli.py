"""``flask maestrano presets | config PRESET | autoconfigure``."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from flask import Flask, jsonify, request

from tests.support.devplatform import API_KEY, ENV_KEY, ENV_SECRET, closed_port_url, marketplace
from tests.support.presets import preset_data
from tests.support.servers import LiveServer

KEY = "cli-secret-api-key"


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app(
        presets={
            "production": preset_data(api={"id": "app-prod", "key": KEY}),
            "acme": preset_data(environment="uat", api={"id": "app-acme", "key": KEY + "-acme"}),
        }
    )


def test_presets_lists_each_preset_with_its_source(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["maestrano", "presets"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines == [
        "acme\tapi.id=app-acme\tenvironment=uat\tsource=config",
        "production (default)\tapi.id=app-prod\tenvironment=local\tsource=config",
    ]
    assert KEY not in result.output


def test_config_shows_the_preset_with_the_key_masked(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["maestrano", "config", "acme"])
    assert result.exit_code == 0, result.output
    assert KEY not in result.output
    data = json.loads(result.output)
    assert data["api"] == {
        "id": "app-acme",
        "key": "********",
        "host": "https://uat.maestrano.io",
        "base": "/api/v1/",
        "verify_ssl_certs": True,
        "group_id": None,
    }
    assert data["environment"] == "uat"
    assert data["sso"]["consume_path"] == "/maestrano/auth/saml/consume"


def test_config_of_an_unknown_preset_fails_clearly(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["maestrano", "config", "nope"])
    assert result.exit_code == 1
    assert "preset 'nope': unknown preset (configured: acme, production)" in result.output


def platform_app() -> Flask:
    fake = Flask("devplatform")

    @fake.get("/api/config/v1/marketplaces")
    def marketplaces() -> object:
        auth = request.authorization
        if auth is None or (auth.username, auth.password) != (ENV_KEY, ENV_SECRET):
            return jsonify(error="Unauthorized"), 401
        return jsonify(marketplaces=[marketplace("maestrano-uat"), marketplace("acme", app_id="app-acme")])

    return fake


def set_platform(monkeypatch: pytest.MonkeyPatch, host: str, secret: str = ENV_SECRET) -> None:
    for name, value in {
        "MNO_DEVPL_HOST": host,
        "MNO_DEVPL_API_PATH": "/api/config/v1/marketplaces",
        "MNO_DEVPL_ENV_NAME": "my-env",
        "MNO_DEVPL_ENV_KEY": ENV_KEY,
        "MNO_DEVPL_ENV_SECRET": secret,
    }.items():
        monkeypatch.setenv(name, value)


def test_autoconfigure_fetches_and_reports(
    app: Flask, live_server: Callable[..., LiveServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = live_server(platform_app())
    set_platform(monkeypatch, server.url)
    result = app.test_cli_runner().invoke(args=["maestrano", "autoconfigure"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"{server.url}/api/config/v1/marketplaces: 2 marketplace(s)"
    assert lines[1].startswith("acme\tapi.id=app-acme\tapp.host=http://localhost:63705\tidp=")
    assert lines[2].startswith("maestrano-uat\tapi.id=app-uat")
    assert API_KEY not in result.output
    assert ENV_SECRET not in result.output
    # nothing changed in the running app
    assert app.test_cli_runner().invoke(args=["maestrano", "presets"]).output.count("source=config") == 2


def test_autoconfigure_reports_rejected_credentials_without_the_secret(
    app: Flask, live_server: Callable[..., LiveServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = live_server(platform_app())
    set_platform(monkeypatch, server.url, secret="wrong-secret-value")
    result = app.test_cli_runner().invoke(args=["maestrano", "autoconfigure"])
    assert result.exit_code == 1
    assert "rejected the environment credentials" in result.output
    assert "wrong-secret-value" not in result.output


def test_autoconfigure_reports_an_unreachable_platform(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    set_platform(monkeypatch, closed_port_url())
    result = app.test_cli_runner().invoke(args=["maestrano", "autoconfigure"])
    assert result.exit_code == 1
    assert "is unreachable" in result.output
    assert ENV_SECRET not in result.output


def test_autoconfigure_names_missing_settings(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MNO_DEVPL_HOST", "MNO_DEVPL_API_PATH", "MNO_DEVPL_ENV_NAME", "MNO_DEVPL_ENV_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MNO_DEVPL_ENV_SECRET", "s")
    result = app.test_cli_runner().invoke(args=["maestrano", "autoconfigure"])
    assert result.exit_code == 1
    assert "Missing developer platform configuration" in result.output
    assert "MNO_DEVPL_HOST" in result.output
