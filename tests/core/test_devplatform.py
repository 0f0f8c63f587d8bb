"""Auto-configuration against a real developer platform served on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import socket
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from flask import Flask, Response, jsonify, request

from flask_maestrano import get_state
from flask_maestrano.devplatform import (
    DevPlatformSettings,
    auto_configure,
    check_environment,
    environment_configured,
    fetch_marketplaces,
    parse_marketplaces,
)
from flask_maestrano.environments import ENVIRONMENTS
from flask_maestrano.errors import ConfigurationError, DevPlatformError
from tests.support.devplatform import (
    API_KEY,
    ENV_KEY,
    ENV_SECRET,
    UAT_FINGERPRINT,
    closed_port_url,
    marketplace,
)
from tests.support.servers import LiveServer


class Platform:
    """A small developer platform: answers ``behaviour`` at /api/config/v1/marketplaces."""

    def __init__(self) -> None:
        self.behaviour = "list"
        self.requests: list[dict[str, Any]] = []
        self.release = threading.Event()
        self.app = Flask("devplatform")
        self.app.add_url_rule("/api/config/v1/marketplaces", view_func=self.marketplaces)

    def marketplaces(self) -> Any:
        auth = request.authorization
        self.requests.append(
            {"auth": auth and (auth.username, auth.password), "accept": request.accept_mimetypes}
        )
        if auth is None or (auth.username, auth.password) != (ENV_KEY, ENV_SECRET):
            return jsonify(error="Unauthorized"), 401
        if self.behaviour == "list":
            return jsonify(
                marketplaces=[marketplace("maestrano-uat"), marketplace("acme", app_id="app-acme")]
            )
        if self.behaviour == "single":
            return jsonify(marketplaces=marketplace("maestrano-uat"))
        if self.behaviour == "500":
            return jsonify(error="boom"), 500
        if self.behaviour == "slow":
            self.release.wait(5)
            return jsonify(marketplaces=[])
        if self.behaviour == "garbage":
            return Response("<html>maintenance</html>", mimetype="text/html")
        if self.behaviour == "no-marketplaces":
            return jsonify(environment="x")
        if self.behaviour == "error-key":
            return jsonify(error="environment disabled")
        if self.behaviour == "broken-marketplace":
            broken = marketplace("maestrano-uat")
            del broken["api"]["id"]
            return jsonify(marketplaces=[broken])
        raise AssertionError(self.behaviour)


@pytest.fixture
def platform(live_server: Callable[..., LiveServer]) -> Iterator[tuple[Platform, LiveServer]]:
    fake = Platform()
    server = live_server(fake.app)
    yield fake, server
    fake.release.set()


def settings(
    host: str, api_path: str = "/api/config/v1/marketplaces", secret: str = ENV_SECRET
) -> DevPlatformSettings:
    return DevPlatformSettings(
        host=host, api_path=api_path, env_name="my-env", api_key=ENV_KEY, api_secret=secret
    )


def assert_no_secret(text: str) -> None:
    assert ENV_SECRET not in text
    assert API_KEY not in text


# -- settings ----------------------------------------------------------------------------------


def write_yaml(path: Path, host: str = "https://from-file.example") -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "dev_platform": {"host": host, "api_path": "/api/config/v1/marketplaces"},
                "environment": {"name": "file-env", "api_key": "file-key", "api_secret": "file-secret"},
            }
        )
    )
    return path


def test_settings_from_the_yaml_file(tmp_path: Path) -> None:
    loaded = DevPlatformSettings.load(write_yaml(tmp_path / "dev_platform.yml"), environ={})
    assert loaded.host == "https://from-file.example"
    assert loaded.env_name == "file-env"
    assert loaded.api_key == "file-key"
    assert "file-secret" not in repr(loaded)


def test_variables_override_the_yaml_file(tmp_path: Path) -> None:
    environ = {"MNO_DEVPL_HOST": "https://from-env.example", "MNO_DEVPL_ENV_SECRET": "env-secret"}
    loaded = DevPlatformSettings.load(write_yaml(tmp_path / "dev_platform.yml"), environ=environ)
    assert loaded.host == "https://from-env.example"
    assert loaded.api_secret == "env-secret"
    assert loaded.api_key == "file-key"


def test_settings_from_the_five_variables_alone(tmp_path: Path) -> None:
    environ = {
        "MNO_DEVPL_HOST": "https://h.example",
        "MNO_DEVPL_API_PATH": "/api/config/v1",
        "MNO_DEVPL_ENV_NAME": "n",
        "MNO_DEVPL_ENV_KEY": "k",
        "MNO_DEVPL_ENV_SECRET": "s",
    }
    assert environment_configured(environ)
    assert not environment_configured({**environ, "MNO_DEVPL_ENV_KEY": ""})
    assert check_environment(environ) is True
    assert check_environment({"PATH": "/bin"}) is False
    # half a configuration is an error naming what is missing, not "not configured"
    with pytest.raises(DevPlatformError, match=r"MNO_DEVPL_ENV_KEY not set \(or empty\)\. Set all of"):
        check_environment({**environ, "MNO_DEVPL_ENV_KEY": ""})
    with pytest.raises(DevPlatformError, match=r"unknown variable\(s\) MNO_DEVPL_HOTS \(misspelt\?\)"):
        check_environment({"MNO_DEVPL_HOTS": "https://h.example"})
    with pytest.raises(DevPlatformError) as refused:
        check_environment({k: v for k, v in environ.items() if k != "MNO_DEVPL_ENV_SECRET"})
    assert str(refused.value).count("MNO_DEVPL_ENV_SECRET") == 2 and "MNO_DEVPL_HOST not" not in str(
        refused.value
    )
    # a configured file that does not exist is fine when the variables say everything
    loaded = DevPlatformSettings.load(tmp_path / "absent.yml", environ=environ)
    assert loaded.url == "https://h.example/api/config/v1/marketplaces"


def test_missing_settings_are_named(tmp_path: Path) -> None:
    with pytest.raises(DevPlatformError) as info:
        DevPlatformSettings.load(tmp_path / "absent.yml", environ={"MNO_DEVPL_HOST": "https://h.example"})
    message = str(info.value)
    for var in ("MNO_DEVPL_API_PATH", "MNO_DEVPL_ENV_NAME", "MNO_DEVPL_ENV_KEY", "MNO_DEVPL_ENV_SECRET"):
        assert var in message
    assert "MNO_DEVPL_HOST" not in message
    assert "absent.yml does not exist" in message


def test_unreadable_yaml_is_reported(tmp_path: Path) -> None:
    bad = tmp_path / "dev_platform.yml"
    bad.write_text("dev_platform: [unclosed\n")
    with pytest.raises(DevPlatformError, match="is not valid YAML"):
        DevPlatformSettings.load(bad, environ={})
    bad.write_text("- a list\n")
    with pytest.raises(DevPlatformError, match="must hold a mapping"):
        DevPlatformSettings.load(bad, environ={})


@pytest.mark.parametrize(
    "line",
    [f"  api_secret: '{ENV_SECRET}\n", f"  api_secret: {ENV_SECRET}: oops\n"],
)
def test_a_yaml_error_names_the_place_not_the_secret_line(tmp_path: Path, line: str) -> None:
    bad = tmp_path / "dev_platform.yml"
    bad.write_text("environment:\n  api_key: key\n" + line)
    with pytest.raises(DevPlatformError, match=r"is not valid YAML: .* at line \d+, column \d+") as info:
        DevPlatformSettings.load(bad, environ={})
    assert_no_secret(str(info.value))


@pytest.mark.parametrize(
    "api_path",
    [
        "/api/config/v1/marketplaces",
        "/api/config/v1/marketplaces/",
        "/api/config/v1",
        "/api/config/v1/",
        "api/config/v1",
    ],
)
def test_both_api_path_styles_give_the_marketplaces_url(api_path: str) -> None:
    assert settings("https://dev.example/", api_path).url == "https://dev.example/api/config/v1/marketplaces"


# -- fetching: happy paths ---------------------------------------------------------------------


@pytest.mark.parametrize("api_path", ["/api/config/v1/marketplaces", "/api/config/v1"])
def test_fetch_a_list_of_marketplaces(platform: tuple[Platform, LiveServer], api_path: str) -> None:
    fake, server = platform
    presets = auto_configure(settings(server.url, api_path), timeout=5)
    assert sorted(presets) == ["acme", "maestrano-uat"]
    uat = presets["maestrano-uat"]
    assert uat.environment == "maestrano-uat"
    assert uat.api.id == "app-uat"
    assert uat.api.key == API_KEY
    assert uat.api.host == "https://api-hub-uat.maestrano.io"
    assert uat.connec.timeout == 300.0
    assert uat.webhooks.group_path == "/maestrano/account/groups/:id/maestrano-uat"
    assert uat.webhooks.external_ids is True
    assert uat.sso.init_path == "/maestrano/init/?marketplace=maestrano-uat"
    assert uat.sso.x509_fingerprint == UAT_FINGERPRINT
    assert uat.sso.x509_certificates == (ENVIRONMENTS["uat"]["sso.x509_certificate"],)
    assert uat.source == f"dev_platform:{server.url}"
    assert presets["acme"].api.id == "app-acme"
    assert fake.requests[-1]["auth"] == (ENV_KEY, ENV_SECRET)
    assert fake.requests[-1]["accept"].best == "application/json"


def test_fetch_a_single_marketplace_object(platform: tuple[Platform, LiveServer]) -> None:
    fake, server = platform
    fake.behaviour = "single"
    presets = auto_configure(settings(server.url), timeout=5)
    assert list(presets) == ["maestrano-uat"]


def test_variables_override_the_file_end_to_end(
    platform: tuple[Platform, LiveServer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake, server = platform
    path = write_yaml(tmp_path / "dev_platform.yml", host=closed_port_url())
    monkeypatch.setenv("MNO_DEVPL_HOST", server.url)
    monkeypatch.setenv("MNO_DEVPL_ENV_KEY", ENV_KEY)
    monkeypatch.setenv("MNO_DEVPL_ENV_SECRET", ENV_SECRET)
    presets = auto_configure(DevPlatformSettings.load(path), timeout=5)
    assert sorted(presets) == ["acme", "maestrano-uat"]


# -- fetching: failures, none of which leaks a secret -----------------------------------------


def expect_failure(
    target: DevPlatformSettings, caplog: pytest.LogCaptureFixture, timeout: float = 5, **kwargs: Any
) -> str:
    with caplog.at_level(logging.DEBUG), pytest.raises(DevPlatformError) as info:
        auto_configure(target, timeout=timeout, **kwargs)
    message = str(info.value)
    assert message.startswith("Error while fetching dynamic configuration: ")
    assert_no_secret(message)
    assert_no_secret(caplog.text)
    return message


def test_rejected_credentials(
    platform: tuple[Platform, LiveServer], caplog: pytest.LogCaptureFixture
) -> None:
    _fake, server = platform
    message = expect_failure(settings(server.url, secret="wrong-" + ENV_SECRET), caplog)
    assert "rejected the environment credentials" in message
    assert "HTTP 401" in message
    assert "wrong-" not in message


def test_server_error(platform: tuple[Platform, LiveServer], caplog: pytest.LogCaptureFixture) -> None:
    fake, server = platform
    fake.behaviour = "500"
    assert f"Developer platform {server.url} answered HTTP 500" in expect_failure(
        settings(server.url), caplog
    )


def test_timeout(platform: tuple[Platform, LiveServer], caplog: pytest.LogCaptureFixture) -> None:
    fake, server = platform
    fake.behaviour = "slow"
    message = expect_failure(settings(server.url), caplog, timeout=0.2)
    assert "did not answer in 0.2s" in message


def test_garbage_body(platform: tuple[Platform, LiveServer], caplog: pytest.LogCaptureFixture) -> None:
    fake, server = platform
    fake.behaviour = "garbage"
    assert "a body that is not JSON (HTTP 200" in expect_failure(settings(server.url), caplog)


def test_missing_marketplaces(
    platform: tuple[Platform, LiveServer], caplog: pytest.LogCaptureFixture
) -> None:
    fake, server = platform
    fake.behaviour = "no-marketplaces"
    assert "the answer has no 'marketplaces' key" in expect_failure(settings(server.url), caplog)


def test_error_key_in_the_answer(
    platform: tuple[Platform, LiveServer], caplog: pytest.LogCaptureFixture
) -> None:
    fake, server = platform
    fake.behaviour = "error-key"
    assert "the platform answered an error: environment disabled" in expect_failure(
        settings(server.url), caplog
    )


def test_platform_down_without_cache(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    url = closed_port_url()
    message = expect_failure(settings(url), caplog, cache_path=tmp_path / "cache.json")
    assert f"Developer platform {url} is unreachable (ConnectionError)" in message


def test_invalid_marketplace_is_a_configuration_error(platform: tuple[Platform, LiveServer]) -> None:
    fake, server = platform
    fake.behaviour = "broken-marketplace"
    with pytest.raises(ConfigurationError) as info:
        auto_configure(settings(server.url), timeout=5)
    assert (info.value.preset, info.value.key) == ("maestrano-uat", "api.id")


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ([], "not a JSON object"),
        ({"marketplaces": "x"}, "must be a list of objects"),
        ({"marketplaces": [1]}, "must be a list of objects"),
        ({"marketplaces": [{"api": {}}]}, "marketplace #0 has no 'marketplace' name"),
    ],
)
def test_wrong_shapes(body: Any, fragment: str) -> None:
    with pytest.raises(DevPlatformError, match=fragment):
        parse_marketplaces(body)


def test_fetch_marketplaces_returns_the_raw_objects(platform: tuple[Platform, LiveServer]) -> None:
    _fake, server = platform
    raw = fetch_marketplaces(settings(server.url), timeout=5)
    assert [m["marketplace"] for m in raw] == ["maestrano-uat", "acme"]


def test_only_the_configured_proxy_is_used(
    platform: tuple[Platform, LiveServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake, server = platform
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    monkeypatch.setenv("HTTP_PROXY", dead)  # ignored, like every other platform call
    monkeypatch.setenv("NO_PROXY", "")
    assert len(fetch_marketplaces(settings(server.url), timeout=5)) == 2
    with pytest.raises(DevPlatformError, match="unreachable"):
        fetch_marketplaces(settings(server.url), timeout=5, proxies={"http": dead})


# -- the last good configuration on disk -------------------------------------------------------


def test_cache_is_written_0600_and_used_when_the_platform_is_down(
    platform: tuple[Platform, LiveServer], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _fake, server = platform
    cache = tmp_path / "instance" / "maestrano-dev-platform.json"
    with caplog.at_level(logging.INFO, logger="flask_maestrano"):
        fresh = auto_configure(settings(server.url), cache_path=cache, timeout=5)
    assert stat.S_IMODE(os.stat(cache).st_mode) == 0o600
    assert f"kept this configuration in {cache}" in caplog.text
    assert [m["marketplace"] for m in json.loads(cache.read_text())["marketplaces"]] == [
        "maestrano-uat",
        "acme",
    ]
    assert not list(cache.parent.glob(".maestrano-*"))  # no temporary file left behind

    caplog.clear()
    down = settings(closed_port_url())
    with caplog.at_level(logging.INFO, logger="flask_maestrano"):
        cached = auto_configure(down, cache_path=cache, timeout=5)
    assert {n: dataclasses.replace(p, source="x") for n, p in cached.items()} == {
        n: dataclasses.replace(p, source="x") for n, p in fresh.items()
    }
    assert cached["maestrano-uat"].source == f"dev_platform_cache:{cache}"
    assert "unreachable" in caplog.text
    assert f"booting from the last good configuration in {cache}" in caplog.text
    assert_no_secret(caplog.text)


def test_cache_is_used_when_the_platform_rejects_or_fails(
    platform: tuple[Platform, LiveServer], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake, server = platform
    cache = tmp_path / "cache.json"
    auto_configure(settings(server.url), cache_path=cache, timeout=5)
    fake.behaviour = "500"
    with caplog.at_level(logging.WARNING, logger="flask_maestrano"):
        assert sorted(auto_configure(settings(server.url), cache_path=cache, timeout=5)) == [
            "acme",
            "maestrano-uat",
        ]
    assert "answered HTTP 500" in caplog.text


def test_corrupt_cache_is_not_used(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cache = tmp_path / "cache.json"
    cache.write_text("{not json")
    expect_failure(settings(closed_port_url()), caplog, cache_path=cache)


# -- through init_app --------------------------------------------------------------------------


def configure_environment(monkeypatch: pytest.MonkeyPatch, host: str) -> None:
    for name, value in {
        "MNO_DEVPL_HOST": host,
        "MNO_DEVPL_API_PATH": "/api/config/v1",
        "MNO_DEVPL_ENV_NAME": "my-env",
        "MNO_DEVPL_ENV_KEY": ENV_KEY,
        "MNO_DEVPL_ENV_SECRET": ENV_SECRET,
    }.items():
        monkeypatch.setenv(name, value)


def test_init_app_auto_configures_and_keeps_the_cache_in_the_instance_folder(
    platform: tuple[Platform, LiveServer],
    make_app: Callable[..., Flask],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    _fake, server = platform
    configure_environment(monkeypatch, server.url)
    app = make_app(presets={}, MAESTRANO_AUTO_CONFIGURE=True, MAESTRANO_DEFAULT_PRESET="maestrano-uat")
    state = get_state(app)
    assert sorted(state.presets) == ["acme", "maestrano-uat"]
    assert state.default_preset == "maestrano-uat"
    cache = tmp_path / "instance" / "maestrano-dev-platform.json"
    assert stat.S_IMODE(os.stat(cache).st_mode) == 0o600
    # the marketplace's own routes are served
    client = app.test_client()
    assert client.get("/maestrano/metadata/acme", auth=("app-acme", API_KEY)).status_code == 200


def test_init_app_fails_clearly_when_the_platform_is_down(
    make_app: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    configure_environment(monkeypatch, closed_port_url())
    with caplog.at_level(logging.DEBUG), pytest.raises(DevPlatformError, match="unreachable") as info:
        make_app(presets={}, MAESTRANO_AUTO_CONFIGURE=True, MAESTRANO_DEV_PLATFORM_TIMEOUT=2)
    assert_no_secret(str(info.value))
    assert_no_secret(caplog.text)
