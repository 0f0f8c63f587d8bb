"""Deployment checks: the in-process store under a multi-process server, and a Redis store
that stops answering (paused with SIGSTOP) bounded by MAESTRANO_STORE_TIMEOUT."""

from __future__ import annotations

import logging
import signal
from typing import Any

import pytest
from flask import request_started

from tests.support.redis import redis_server
from tests.support.saml import build_host_app, sso_presets

WARNING = "MAESTRANO_STORE is in-process but several processes serve this app"


def warnings_in(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "flask_maestrano.deployment"]


def test_an_in_process_store_under_a_multi_process_server_is_warned_about_once(
    make_app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="flask_maestrano.deployment")
    app = make_app()
    client = app.test_client()
    client.get("/maestrano/metadata", environ_overrides={"wsgi.multiprocess": True})
    client.get("/maestrano/metadata", environ_overrides={"wsgi.multiprocess": True})
    assert len(warnings_in(caplog)) == 1 and WARNING in warnings_in(caplog)[0]


def test_the_check_leaves_the_request_signal_after_the_first_request(make_app: Any) -> None:
    """Disconnected from every sender, not only from its app: a receiver blinker still holds
    would be looked up again on every request of every app in the process."""
    app = make_app()
    before = len(request_started.receivers)
    app.test_client().get("/maestrano/metadata")
    assert len(request_started.receivers) == before - 1


def test_no_warning_for_one_process_or_a_shared_store(
    make_app: Any, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="flask_maestrano.deployment")
    make_app().test_client().get("/maestrano/metadata", environ_overrides={"wsgi.multiprocess": False})
    shared = make_app(MAESTRANO_STORE=redis_url)
    shared.test_client().get("/maestrano/metadata", environ_overrides={"wsgi.multiprocess": True})
    assert warnings_in(caplog) == []


def test_a_paused_redis_makes_a_login_a_503_within_the_store_timeout(make_app: Any, test_idp: Any) -> None:
    with redis_server() as url:
        app, host = build_host_app(
            make_app, sso_presets(test_idp), MAESTRANO_STORE=url, MAESTRANO_STORE_TIMEOUT=0.3
        )
        pool = app.extensions["maestrano"].store.client.connection_pool
        assert pool.connection_kwargs["socket_timeout"] == 0.3
        assert pool.connection_kwargs["socket_connect_timeout"] == 2.0
        client = app.test_client()
        assert client.get("/maestrano/auth/saml/init").status_code == 302  # connected, working
        url.process.send_signal(signal.SIGSTOP)
        try:
            response = client.get("/maestrano/auth/saml/init")
        finally:
            url.process.send_signal(signal.SIGCONT)
        assert response.status_code == 503 and "store_unavailable" in response.get_data(as_text=True)
        assert response.headers.get("Retry-After")
        assert client.get("/maestrano/auth/saml/init").status_code == 302  # recovered by itself
        assert host.empty
