"""A session check that cannot take the app down: a circuit breaker shared by the workers
(in the process, or on a real redis-server), and recheck times spread over a window.

The platform is a real HTTP server on 127.0.0.1 that counts the checks it receives; time
moves with the app's injectable clock, never with sleeps.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask, jsonify

from flask_maestrano import get_state
from flask_maestrano.breaker import RedisBreaker
from tests.support.clock import ClockAhead
from tests.support.presets import preset_data
from tests.support.saml import build_host_app, consume, recheck_of, start_login

#: past the login's 3-minute recheck time
AHEAD = 600.0
FAILURES = 3
COOLDOWN = 30.0


class CountingPlatform:
    """A session-check endpoint that is healthy, failing (500) or hanging, and counts calls."""

    def __init__(self) -> None:
        self.mode = "healthy"
        self.calls = 0
        self.release = threading.Event()  # ends every hang (set when the test ends)
        self.app = Flask("counting-platform")

        @self.app.get("/api/v1/auth/saml/<uid>")
        def check(uid: str) -> Any:
            self.calls += 1
            if self.mode == "failing":
                return jsonify({"error": "down"}), 500
            if self.mode == "hanging":
                self.release.wait(timeout=10)
            return jsonify({"valid": True, "recheck": "2099-01-01T00:00:00Z"})


@pytest.fixture
def platform(live_server: Any) -> Any:
    fake = CountingPlatform()
    server = live_server(fake.app)
    fake.url = server.url  # type: ignore[attr-defined]
    yield fake
    fake.release.set()


def _app(make_app: Any, idp: Any, url: str, **config: Any) -> Flask:
    presets = {
        "production": preset_data(api={"host": url}, sso={"x509_certificate": idp.cert_pem, "idp": url})
    }
    # a 500 comes at once: a short deadline would count a check the loaded machine was slow
    # to send as a failure the platform never saw; the hanging platform gets 0.5 s
    config.setdefault("MAESTRANO_SESSION_CHECK_TIMEOUT", 5.0)
    config.setdefault("MAESTRANO_SESSION_CHECK_BREAKER_FAILURES", FAILURES)
    config.setdefault("MAESTRANO_SESSION_CHECK_BREAKER_COOLDOWN", COOLDOWN)
    app, _host = build_host_app(make_app, presets, **config)
    return app


def _users(app: Flask, idp: Any, count: int, recheck: dt.datetime | None = None) -> list[Any]:
    """``count`` browsers logged in now (each its own session); ``recheck`` is the platform's."""
    clients = []
    for _ in range(count):
        client = app.test_client()
        authn = start_login(client)
        attributes = idp.attributes("usr-1", "cld-1", "Admin", session_token="tok-1", recheck=recheck)
        saml = idp.saml_response(get_state(app).preset(), authn.id, attributes)
        assert consume(client, saml, authn.relay_state).status_code == 302
        clients.append(client)
    return clients


def _ended(response: Any) -> bool:
    return (
        response.status_code == 302
        and urlsplit(response.headers["Location"]).path == "/maestrano/auth/saml/init"
    )


@pytest.mark.parametrize("mode", ["failing", "hanging"])
def test_a_failing_platform_is_called_a_bounded_number_of_times_and_fail_open_applies_at_once(
    make_app: Any, test_idp: Any, platform: Any, mode: str, caplog: Any
) -> None:
    timeout = 0.5 if mode == "hanging" else 5.0
    app = _app(
        make_app,
        test_idp,
        platform.url,
        MAESTRANO_SESSION_CHECK_FAIL_OPEN=True,
        MAESTRANO_SESSION_CHECK_TIMEOUT=timeout,
    )
    users = _users(app, test_idp, 12)
    get_state(app).clock = ClockAhead(AHEAD)  # every user's check is due
    platform.mode = mode
    for client in users:  # fail-open: every user keeps the session
        assert client.get("/page").get_data(as_text=True) == "user:usr-1"
    assert platform.calls == FAILURES  # then the breaker opened: no call for the 9 others
    assert "circuit breaker open" in caplog.text

    # after the cooldown, one request probes; the platform is back: the breaker closes
    platform.mode = "healthy"
    platform.release.set()
    get_state(app).clock = ClockAhead(AHEAD + 2 * 60.0 + COOLDOWN + 1)  # past the fail-open retry too
    assert users[0].get("/page").get_data(as_text=True) == "user:usr-1"
    assert platform.calls == FAILURES + 1 and "circuit breaker closed" in caplog.text
    for client in users[1:]:
        assert client.get("/page").get_data(as_text=True) == "user:usr-1"
    assert platform.calls == FAILURES + len(users)  # closed: every due check asks again


def test_fail_closed_ends_the_sessions_at_once_while_open_and_a_failed_probe_reopens(
    make_app: Any, test_idp: Any, platform: Any
) -> None:
    app = _app(make_app, test_idp, platform.url)
    users = _users(app, test_idp, 8)
    get_state(app).clock = ClockAhead(AHEAD)
    platform.mode = "failing"
    assert all(_ended(client.get("/page")) for client in users)  # fail-closed: logged out
    assert platform.calls == FAILURES

    again = _users(app, test_idp, 3)
    get_state(app).clock = ClockAhead(AHEAD + COOLDOWN + 1)  # the cooldown is over: one probe
    assert _ended(again[0].get("/page")) and platform.calls == FAILURES + 1
    assert _ended(again[1].get("/page")) and platform.calls == FAILURES + 1  # it failed: open again
    get_state(app).clock = ClockAhead(AHEAD + 2 * COOLDOWN + 2)
    platform.mode = "healthy"
    assert again[2].get("/page").get_data(as_text=True) == "user:usr-1"
    assert platform.calls == FAILURES + 2


@pytest.mark.redis
def test_the_breaker_is_shared_by_two_app_instances_on_one_redis(
    make_app: Any, test_idp: Any, platform: Any, clean_redis: str
) -> None:
    first = _app(make_app, test_idp, platform.url, MAESTRANO_STORE=clean_redis)
    second = _app(make_app, test_idp, platform.url, MAESTRANO_STORE=clean_redis)
    users = _users(first, test_idp, FAILURES)
    others = _users(second, test_idp, 4)
    for app in (first, second):
        get_state(app).clock = ClockAhead(AHEAD)
    platform.mode = "failing"
    assert all(_ended(client.get("/page")) for client in users)  # the first worker opens it
    assert platform.calls == FAILURES
    assert all(_ended(client.get("/page")) for client in others)  # the second one calls nobody
    assert platform.calls == FAILURES


@pytest.mark.redis
def test_one_probe_in_the_whole_deployment_after_the_cooldown(clean_redis: str) -> None:
    import redis

    client = redis.Redis.from_url(clean_redis)
    workers = [
        RedisBreaker(client, failures=2, window=60, cooldown=30, probe_ttl=5, prefix="t:") for _ in range(2)
    ]
    now = time.time()
    assert workers[0].failed("p", now) is None and workers[1].failed("p", now) == "opened"
    assert [w.allow("p", now + 1) for w in workers] == ["open", "open"]
    assert [w.allow("p", now + 31) for w in workers] == ["probe", "open"]  # one probe
    assert workers[1].succeeded("p", now + 32) == "closed"
    assert [w.allow("p", now + 33) for w in workers] == ["closed", "closed"]
    client.close()


def test_recheck_times_are_spread_up_to_the_jitter_never_later(
    make_app: Any, test_idp: Any, platform: Any
) -> None:
    app = _app(make_app, test_idp, platform.url)
    before = time.time()
    said = dt.datetime.fromtimestamp(int(before) + 180, dt.timezone.utc)  # what the IdP says
    users = _users(app, test_idp, 20, recheck=said)
    platform_recheck = said.timestamp()
    rechecks = []
    for client in users:
        with client.session_transaction() as sess:
            rechecks.append(recheck_of(sess))
        delay = platform_recheck - before
        assert platform_recheck - 0.1 * delay - 1 <= rechecks[-1] <= platform_recheck
    # spread, not all at the same moment: 20 draws of about 19 whole seconds give 6 or more
    # distinct values except with a probability far under one in a million (over 10: 94%)
    assert len(set(rechecks)) > 5
