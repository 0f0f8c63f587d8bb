"""Shared fixtures: an app factory and real HTTP servers on 127.0.0.1.

Feature-specific fixtures live in the feature's own test module or in ``tests/support/``.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

from flask_maestrano import Maestrano

from .support.fake_platform import FakePlatform, KeepAliveServer

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


@pytest.fixture
def make_app(tmp_path: Any) -> Callable[..., Flask]:
    """Build a Flask app with the extension: ``make_app(presets={...}, MAESTRANO_X=...)``."""

    def factory(
        presets: dict[str, Any] | None = None, maestrano: Maestrano | None = None, **config: Any
    ) -> Flask:
        app = Flask("testapp", instance_path=str(tmp_path / "instance"))
        app.config.update(
            SECRET_KEY="test-secret",
            TESTING=True,
            MAESTRANO_PRESETS=presets if presets is not None else {"production": preset_data()},
        )
        app.config.update(config)
        (maestrano or Maestrano()).init_app(app)
        return app

    return factory


class LiveServer:
    """A WSGI app served by a real HTTP server on 127.0.0.1 in a thread."""

    def __init__(self, app: Any, port: int = 0) -> None:
        self.server: BaseWSGIServer = make_server("127.0.0.1", port, app, threaded=True)
        self.port = self.server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def live_server() -> Iterator[Callable[..., LiveServer]]:
    """Start WSGI apps on real 127.0.0.1 ports; all are stopped after the test."""
    servers: list[LiveServer] = []

    def start(app: Any, port: int = 0) -> LiveServer:
        server = LiveServer(app, port)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def test_idp() -> Any:
    """A test-only IdP (fresh RSA key and certificate for the test session)."""
    from flask_maestrano.testing import TestIdP

    return TestIdP(name="flask-maestrano-test-idp")


class SandboxServer:
    """The sandbox platform served on a real port: ``.app`` (Flask), ``.url``, ``.app_id``, ``.key``."""

    def __init__(self, app: Any, server: LiveServer, app_id: str, key: str) -> None:
        self.app = app
        self.server = server
        self.url = server.url
        self.app_id = app_id
        self.key = key

    @property
    def auth(self) -> tuple[str, str]:
        return (self.app_id, self.key)


@pytest.fixture
def make_sandbox(tmp_path: Any, live_server: Callable[..., LiveServer]) -> Callable[..., SandboxServer]:
    """``make_sandbox(app_host=..., **config)``: a sandbox with one app ``app-sandbox`` on a live port."""
    from flask_maestrano.sandbox import create_app

    def factory(app_host: str = APP_HOST, database: Any = None, **config: Any) -> SandboxServer:
        apps = config.pop(
            "SANDBOX_APPS", [{"id": "app-sandbox", "key": "sandbox-secret-key", "host": app_host}]
        )
        sandbox = create_app(
            {
                "SANDBOX_DATABASE": str(database or tmp_path / "sandbox.sqlite3"),
                "SANDBOX_APPS": apps,
                "TESTING": True,
                **config,
            }
        )
        server = live_server(sandbox)
        return SandboxServer(sandbox, server, apps[0]["id"], apps[0]["key"])

    return factory


# -- the fake account API / Connec! platform (tests/support/fake_platform.py) -------------------
# Modules that need another shape (seeded data, a developer platform) override these names.


@pytest.fixture
def platform() -> Any:
    """A fresh :class:`~tests.support.fake_platform.FakePlatform`."""
    from tests.support.fake_platform import FakePlatform

    return FakePlatform()


@pytest.fixture
def server(platform: Any) -> Iterator[Any]:
    """``platform`` on a keep-alive HTTP server on 127.0.0.1."""
    from tests.support.fake_platform import KeepAliveServer

    server = KeepAliveServer(platform.app)
    yield server
    platform.release.set()  # let any held answer go before the server stops
    server.stop()


@pytest.fixture
def account(server: Any) -> Any:
    """An :class:`~flask_maestrano.account.AccountClient` on ``server``, without retries."""
    from flask_maestrano.account import AccountClient
    from flask_maestrano.http import build_session
    from flask_maestrano.presets import Preset
    from tests.support.fake_platform import platform_preset_data

    preset = Preset.from_dict("production", platform_preset_data(server.url))
    return AccountClient(preset, build_session(preset, retries=0), timeout=(2.0, 5.0))


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real redis-server for the session (started and stopped here)."""
    from .support.redis_server import redis_server

    with redis_server() as url:
        yield url


@pytest.fixture
def clean_redis(redis_url: str) -> str:
    """:func:`redis_url`, emptied for this test."""
    import redis

    with contextlib.closing(redis.Redis.from_url(redis_url)) as client:
        client.flushall()
    return redis_url


@pytest.fixture
def seeded_platform() -> Iterator[tuple[FakePlatform, KeepAliveServer]]:
    """The fake platform with 15 organizations and 25 people in group cld-1, served for real."""
    platform = FakePlatform()
    platform.seeded("cld-1", "organizations", 15)
    platform.seeded("cld-1", "people", 25)
    server = KeepAliveServer(platform.app)
    yield platform, server
    platform.release.set()  # a delayed answer ends now
    server.stop()


@pytest.fixture
def job_env(
    seeded_platform: tuple[FakePlatform, KeepAliveServer], clean_redis: str, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """The environment of the job-worker test apps (tests/support/rq_app.py, celery_app.py):
    the seeded platform, the emptied Redis and a 1 s job lease, set here and for workers."""
    url = seeded_platform[1].url
    values = {"JOB_TEST_PLATFORM": url, "JOB_TEST_REDIS": clean_redis, "JOB_TEST_LEASE": "1"}
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values
