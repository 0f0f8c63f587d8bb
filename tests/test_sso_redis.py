"""A Redis store shared by two app instances (two workers): requests and replays cross over."""

from __future__ import annotations

from typing import Any

import pytest

from flask_maestrano.sso.binding import COOKIE_NAME
from flask_maestrano.sso.views import MAX_NEXT_LENGTH
from flask_maestrano.testing import TestIdP

from .support.saml import build_host_app, consume, err_of, sso_presets, start_login

pytestmark = pytest.mark.redis


def test_request_issued_by_one_worker_is_consumed_by_the_other_and_replay_fails_on_both(
    make_app: Any, test_idp: TestIdP, redis_url: str
) -> None:
    first, first_host = build_host_app(make_app, sso_presets(test_idp), MAESTRANO_STORE=redis_url)
    second, second_host = build_host_app(make_app, sso_presets(test_idp), MAESTRANO_STORE=redis_url)

    started = first.test_client()
    authn = start_login(started)
    preset = first.extensions["maestrano"].preset()
    saml = test_idp.saml_response(preset, authn.id, test_idp.attributes())
    browser = second.test_client()  # the same browser (its binding cookie), another worker
    browser.set_cookie(COOKIE_NAME, started.get_cookie(COOKIE_NAME).value)
    response = consume(browser, saml, authn.relay_state)
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert browser.get("/page").get_data(as_text=True) == "user:usr-1"
    assert set(second_host.users) == {"usr-1"} and first_host.empty

    assert err_of(consume(first.test_client(), saml, authn.relay_state)) == "replay"
    assert err_of(consume(second.test_client(), saml, authn.relay_state)) == "replay"
    assert first_host.empty and second_host.calls == ["group", "user", "membership"]


def test_redis_keeps_a_bounded_entry_per_pending_request_and_a_few_per_browser(
    make_app: Any, test_idp: TestIdP, redis_url: str
) -> None:
    import redis

    server = redis.Redis.from_url(redis_url)
    server.flushdb()
    app, host = build_host_app(make_app, sso_presets(test_idp), MAESTRANO_STORE=redis_url)
    client = app.test_client()
    real = start_login(client, next="/" + "x" * (MAX_NEXT_LENGTH - 1))  # the largest next allowed
    keys = server.keys("maestrano:pending:*")
    assert len(keys) == 3  # the request, its ID alias, the browser's slot
    assert sum(len(key) + int(server.strlen(key)) for key in keys) < 4608
    ttl_ms = app.config["MAESTRANO_SSO_REQUEST_TTL"] * 1000
    assert all(0 < int(server.pttl(key)) <= ttl_ms for key in keys)

    for _ in range(50):  # one browser opening init again and again keeps at most 4 pending
        assert client.get("/maestrano/auth/saml/init").status_code == 302
    per_browser = app.config["MAESTRANO_SSO_PENDING_PER_BROWSER"]
    assert len(server.keys("maestrano:pending:*")) == 3 * per_browser
    # its oldest (the first) gave way with its alias; a newer one still logs in
    saml = test_idp.saml_response(app.extensions["maestrano"].preset(), real.id, test_idp.attributes())
    assert err_of(consume(client, saml, real.relay_state)) == "unknown_request"
    newest = start_login(client)
    saml = test_idp.saml_response(app.extensions["maestrano"].preset(), newest.id, test_idp.attributes())
    assert consume(client, saml, newest.relay_state).headers["Location"] == "/"
    assert set(host.users) == {"usr-1"}
