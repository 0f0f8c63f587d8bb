"""The single-logout check against hostile platforms: redirects, trickled answers, far rechecks.

Every platform here is a real HTTP server on 127.0.0.1 (issue 10, item 5).
"""

from __future__ import annotations

import calendar
import logging
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask, jsonify, redirect, request

from flask_maestrano import get_state
from tests.support.clock import ClockAhead
from tests.support.presets import preset_data
from tests.support.saml import build_host_app, consume, recheck_of, start_login
from tests.support.trickle import TrickleServer

FAR_RECHECK = "2099-01-01T00:00:00Z"


class Platform:
    """A session-check endpoint whose answer a test chooses."""

    def __init__(self) -> None:
        self.answer: Any = lambda: jsonify({"valid": True, "recheck": FAR_RECHECK})
        self.checks: list[str] = []
        self.app = Flask("platform")

        @self.app.get("/api/v1/auth/saml/<uid>")
        def check(uid: str) -> Any:
            self.checks.append(request.url)
            return self.answer()


@pytest.fixture
def platform(live_server: Any) -> tuple[Platform, str]:
    fake = Platform()
    return fake, live_server(fake.app).url


def _app(make_app: Any, test_idp: Any, url: str, **config: Any) -> Any:
    presets = {
        "production": preset_data(api={"host": url}, sso={"x509_certificate": test_idp.cert_pem, "idp": url})
    }
    # exact recheck times are pinned here: no spread (tests/flask/test_session_breaker.py has it)
    config.setdefault("MAESTRANO_SESSION_CHECK_JITTER", 0.0)
    app, _host = build_host_app(make_app, presets, MAESTRANO_SESSION_CHECK_TIMEOUT=1.0, **config)
    return app


#: how far the app's clock moves after the login: past its 3-minute recheck time
AHEAD = 600.0


def _logged_in_and_due(app: Any, idp: Any) -> Any:
    client = app.test_client()
    authn = start_login(client)
    attributes = idp.attributes("usr-1", "cld-1", "Admin", session_token="tok-123")
    consume(
        client,
        idp.saml_response(app.extensions["maestrano"].preset(), authn.id, attributes),
        authn.relay_state,
    )
    assert client.get("/page").get_data(as_text=True) == "user:usr-1"
    # the app's clock moves past the login's recheck time (3 minutes): the next request checks
    get_state(app).clock = ClockAhead(AHEAD)
    return client


def _ended(response: Any) -> bool:
    return response.status_code == 302 and urlsplit(response.headers["Location"]).path == (
        "/maestrano/auth/saml/init"
    )


# -- redirects ------------------------------------------------------------------------------


def test_a_redirect_to_another_host_is_not_followed_and_fails_closed(
    make_app: Any, test_idp: Any, platform: Any, live_server: Any, caplog: Any
) -> None:
    fake, url = platform
    elsewhere = Platform()  # answers {"valid": true, "recheck": 2099} to anyone
    other = live_server(elsewhere.app)
    fake.answer = lambda: redirect(f"{other.url}/api/v1/auth/saml/usr-1?session=tok-123", 302)
    app = _app(make_app, test_idp, url)
    client = _logged_in_and_due(app, test_idp)
    caplog.set_level(logging.WARNING, logger="flask_maestrano")
    assert _ended(client.get("/page"))
    assert client.get("/page").get_data(as_text=True) == "user:anonymous"
    assert len(fake.checks) == 1 and elsewhere.checks == []
    assert "redirect" in caplog.text and "not followed" in caplog.text and "tok-123" not in caplog.text


def test_a_redirect_fail_open_keeps_the_session_without_trusting_the_target(
    make_app: Any, test_idp: Any, platform: Any, live_server: Any
) -> None:
    fake, url = platform
    elsewhere = Platform()
    other = live_server(elsewhere.app)
    fake.answer = lambda: redirect(f"{other.url}/api/v1/auth/saml/usr-1?session=tok-123", 307)
    app = _app(make_app, test_idp, url, MAESTRANO_SESSION_CHECK_FAIL_OPEN=True)
    client = _logged_in_and_due(app, test_idp)
    assert client.get("/page").get_data(as_text=True) == "user:usr-1"
    with client.session_transaction() as sess:
        # asked again after MAESTRANO_SESSION_CHECK_RETRY (60 s), not in 2099
        assert recheck_of(sess) < get_state(app).clock() + 3600
    assert elsewhere.checks == []


def test_an_oversized_answer_is_not_read_and_fails_closed(
    make_app: Any, test_idp: Any, platform: Any
) -> None:
    fake, url = platform
    padding = "x" * (80 * 1024)
    fake.answer = lambda: jsonify({"valid": True, "recheck": "2030-01-01T00:00:00Z", "pad": padding})
    app = _app(make_app, test_idp, url)
    client = _logged_in_and_due(app, test_idp)
    assert _ended(client.get("/page"))


# -- one deadline for the whole call ----------------------------------------------------------


@pytest.fixture
def trickle(request: Any) -> Iterator[TrickleServer]:
    server = TrickleServer(request.param)
    yield server
    server.close()


@pytest.mark.parametrize("trickle", ["headers", "body"], indirect=True)
def test_a_trickling_platform_cannot_hold_the_request_past_the_deadline(
    make_app: Any, test_idp: Any, trickle: TrickleServer
) -> None:
    # one byte every 0.25 s never trips a 1 s read timeout: only a deadline for the whole call
    # ends it (the complete answer would take well over 10 s and says "valid")
    app = _app(make_app, test_idp, trickle.url)
    client = _logged_in_and_due(app, test_idp)
    assert _ended(client.get("/page"))  # fail closed: no complete answer in time
    total = len(trickle.slow)
    assert trickle.sent < total  # the client gave up mid-answer ...
    trickle.stop.set()
    assert client.get("/page").get_data(as_text=True) == "user:anonymous"


@pytest.mark.parametrize("trickle", ["body"], indirect=True)
def test_a_trickling_platform_fail_open_keeps_the_session_for_the_retry_delay(
    make_app: Any, test_idp: Any, trickle: TrickleServer
) -> None:
    app = _app(make_app, test_idp, trickle.url, MAESTRANO_SESSION_CHECK_FAIL_OPEN=True)
    client = _logged_in_and_due(app, test_idp)
    assert client.get("/page").get_data(as_text=True) == "user:usr-1"
    assert trickle.sent < len(trickle.slow)
    with client.session_transaction() as sess:
        assert recheck_of(sess) < get_state(app).clock() + 3600  # the retry delay, not 2099


# -- the recheck time a platform can grant ---------------------------------------------------


@pytest.mark.parametrize(
    ("config", "cap"), [({}, 3600.0), ({"MAESTRANO_SESSION_CHECK_MAX_RECHECK": 120}, 120.0)]
)
def test_the_recheck_time_a_platform_grants_is_capped(
    make_app: Any, test_idp: Any, platform: Any, config: dict[str, Any], cap: float
) -> None:
    fake, url = platform
    app = _app(make_app, test_idp, url, **config)
    client = _logged_in_and_due(app, test_idp)
    before = get_state(app).clock()
    assert client.get("/page").get_data(as_text=True) == "user:usr-1"
    after = get_state(app).clock()
    with client.session_transaction() as sess:
        recheck = recheck_of(sess)
    assert before + cap - 1 <= recheck <= after + cap + 1
    assert len(fake.checks) == 1


def test_a_nearer_recheck_is_kept_as_the_platform_gave_it(
    make_app: Any, test_idp: Any, platform: Any
) -> None:
    fake, url = platform
    soon = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 180))
    fake.answer = lambda: jsonify({"valid": True, "recheck": soon})
    app = _app(make_app, test_idp, url)
    client = _logged_in_and_due(app, test_idp)
    assert client.get("/page").get_data(as_text=True) == "user:usr-1"
    with client.session_transaction() as sess:
        assert recheck_of(sess) == calendar.timegm(time.strptime(soon, "%Y-%m-%dT%H:%M:%SZ"))
