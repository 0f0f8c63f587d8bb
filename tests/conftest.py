"""Shared fixtures: an app factory and real HTTP servers on 127.0.0.1.

Shared helpers live in ``tests/support/``; feature-specific fixtures in the feature's own
test module. The tests are laid out like the package: ``core`` (no app), ``flask`` (through
an app), ``sandbox``, ``demo`` and ``browser``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask

from flask_maestrano import Maestrano
from tests.support.jobs import job_env, seeded_platform  # noqa: F401 - the job tests' platform and environment
from tests.support.presets import APP_HOST, preset_data
from tests.support.redis import clean_redis, redis_url  # noqa: F401 - a module-scoped redis-server, for the modules that ask
from tests.support.servers import LiveServer, SandboxServer
from tests.support.sync_world import world  # noqa: F401 - the sync tests' host app and sandbox, for the modules that ask


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
