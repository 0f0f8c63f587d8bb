"""The whole single sign-on flow: init, consume, logged-in pages, single logout, logout."""

from __future__ import annotations

import re
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask, jsonify, request

from flask_maestrano import get_state, signals
from flask_maestrano.sso import maestrano_logout
from flask_maestrano.testing import follow_finish
from tests.support.clock import ClockAhead
from tests.support.presets import preset_data
from tests.support.saml import (
    CHECK_KEY,
    build_host_app,
    consume,
    maestrano_session,
    recheck_of,
    start_login,
)


class FakeIdpPlatform:
    """The platform's session-check endpoint, served by a real HTTP server."""

    def __init__(self) -> None:
        self.valid: Any = True
        self.status = 200
        self.checks: list[tuple[str, str]] = []
        self.app = Flask("fake-platform")

        @self.app.get("/api/v1/auth/saml/<uid>")
        def check(uid: str) -> Any:
            self.checks.append((uid, request.args.get("session", "")))
            recheck = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 180))
            return jsonify({"valid": self.valid, "recheck": recheck}), self.status


@pytest.fixture
def platform(live_server: Any) -> tuple[FakeIdpPlatform, str]:
    fake = FakeIdpPlatform()
    server = live_server(fake.app)
    return fake, server.url


@pytest.fixture
def flow_app(make_app: Any, test_idp: Any, platform: Any) -> Any:
    _fake, url = platform
    presets = {
        "production": preset_data(api={"host": url}, sso={"x509_certificate": test_idp.cert_pem, "idp": url})
    }
    # no jitter: the tests here pin the platform's recheck times (whole seconds, as the older
    # session formats kept them)
    app, host = build_host_app(
        make_app, presets, MAESTRANO_SESSION_CHECK_TIMEOUT=2.0, MAESTRANO_SESSION_CHECK_JITTER=0.0
    )

    @app.route("/logout")
    def logout() -> Any:
        return maestrano_logout()

    return app, host


def _due(app: Flask) -> None:
    """The app's clock moves 10 minutes ahead, past the login's recheck time (3 minutes)."""
    get_state(app).clock = ClockAhead(600)


def _now(app: Flask) -> None:
    get_state(app).clock = time.time


def _login(client: Any, app: Any, idp: Any, **query: str) -> tuple[Any, Any]:
    preset = app.extensions["maestrano"].preset()
    authn = start_login(client, **query)
    attributes = idp.attributes("usr-1", "cld-1", "Admin", session_token="tok-123")
    response = consume(client, idp.saml_response(preset, authn.id, attributes), authn.relay_state)
    return authn, response


def test_full_flow_init_consume_single_logout_and_logout(flow_app: Any, test_idp: Any, platform: Any) -> None:
    app, host = flow_app
    fake, url = platform
    received: list[dict[str, Any]] = []
    invalidated: list[dict[str, Any]] = []
    signals.login_succeeded.connect(lambda sender, **kw: received.append(kw), app, weak=False)
    signals.session_invalidated.connect(lambda sender, **kw: invalidated.append(kw), app, weak=False)
    client = app.test_client()

    # init: the redirect carries the AuthnRequest the platform's IdP can read
    init = client.get(
        "/maestrano/auth/saml/init", query_string={"group_id": "cld-1", "foo": "bar", "next": "/page"}
    )
    assert init.status_code == 302
    location = urlsplit(init.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == f"{url}/api/v1/auth/saml"
    params = parse_qs(location.query)
    assert params["group_id"] == ["cld-1"] and params["foo"] == ["bar"] and "next" not in params
    assert params["RelayState"][0]
    from flask_maestrano.testing import decode_authn_request

    authn = decode_authn_request(init.headers["Location"])
    assert re.search(r"<saml:Issuer\s?.*>(.*)</saml:Issuer>", authn.xml).group(1) == "app-test"  # type: ignore[union-attr]
    assert authn.acs_url == "http://127.0.0.1:5000/maestrano/auth/saml/consume"
    assert authn.id

    # consume: a response signed by the test IdP logs the user in
    preset = app.extensions["maestrano"].preset()
    attributes = test_idp.attributes("usr-1", "cld-1", "Admin", session_token="tok-123")
    done = consume(client, test_idp.saml_response(preset, authn.id, attributes), authn.relay_state)
    assert done.status_code == 302 and done.headers["Location"] == "/page"
    assert host.users["usr-1"].email == "usr-1@example.com"
    assert host.memberships[("usr-1", "cld-1")] == "Admin"
    assert received and received[0]["user_created"] and received[0]["group_created"]
    assert received[0]["identity"].group.uid == "cld-1" and received[0]["preset"] == "production"
    mno = maestrano_session(app, client)
    assert mno is not None and (mno.uid, mno.session, mno.group_uid, mno.preset) == (
        "usr-1",
        "tok-123",
        "cld-1",
        "production",
    )
    assert mno.session_recheck.timestamp() > time.time()
    with client.session_transaction() as sess:
        assert set(sess) == {"_user_id", "_fresh", "_id", CHECK_KEY}  # no more

    # logged-in page, and a second request: no remote check before the recheck time
    assert client.get("/").get_data(as_text=True) == "Hello Jane Doe <usr-1@example.com>"
    assert client.get("/page").get_data(as_text=True) == "user:usr-1"
    assert fake.checks == []

    # recheck due, platform says valid: one GET, the session stays, new recheck stored
    _due(app)
    assert client.get("/page").get_data(as_text=True) == "user:usr-1"
    assert fake.checks == [("usr-1", "tok-123")]
    _now(app)
    assert client.get("/page").get_data(as_text=True) == "user:usr-1"
    assert len(fake.checks) == 1
    with client.session_transaction() as sess:
        assert recheck_of(sess) > time.time() + 100

    # recheck due, platform says the session is over: logged out, sent back to init
    fake.valid = False
    _due(app)
    ended = client.get("/page?x=1")
    assert ended.status_code == 302
    target = urlsplit(ended.headers["Location"])
    assert target.path == "/maestrano/auth/saml/init"
    assert parse_qs(target.query) == {"group_id": ["cld-1"], "next": ["/page?x=1"]}
    assert invalidated == [
        {"user_uid": "usr-1", "group_uid": "cld-1", "preset": "production", "reason": "invalid"}
    ]
    with client.session_transaction() as sess:
        assert "maestrano" not in sess and CHECK_KEY not in sess and "_user_id" not in sess
    assert client.get_cookie("session_maestrano") is None  # single logout clears both
    assert client.get("/page").get_data(as_text=True) == "user:anonymous"

    # log in again, then log out: local session ended, redirect to the platform's logout page
    _now(app)
    fake.valid = "true"
    _authn, again = _login(client, app, test_idp)
    assert again.status_code == 302 and again.headers["Location"] == "/"
    out = client.get("/logout")
    assert out.status_code == 302 and out.headers["Location"] == f"{url}/app_logout?user_uid=usr-1"
    assert client.get("/page").get_data(as_text=True) == "user:anonymous"
    with client.session_transaction() as sess:
        assert "maestrano" not in sess and CHECK_KEY not in sess
    assert client.get_cookie("session_maestrano") is None  # logout clears both


def test_session_check_accepts_string_true(flow_app: Any, test_idp: Any, platform: Any) -> None:
    app, _host = flow_app
    fake, _url = platform
    fake.valid = "true"
    client = app.test_client()
    _login(client, app, test_idp)
    _due(app)
    assert client.get("/page").get_data(as_text=True) == "user:usr-1"
    assert len(fake.checks) == 1


# "false" in an environment variable is a non-empty string: it must still mean false
@pytest.mark.parametrize(
    "fail_open",
    [{}, {"MAESTRANO_SESSION_CHECK_FAIL_OPEN": "false"}, {"MAESTRANO_SESSION_CHECK_FAIL_OPEN": "0"}],
)
def test_unreachable_platform_fails_closed_by_default(
    make_app: Any, test_idp: Any, live_server: Any, fail_open: dict[str, str]
) -> None:
    dead = live_server(Flask("dead"))
    url = dead.url
    dead.stop()  # nothing listens on this port any more
    presets = {
        "production": preset_data(api={"host": url}, sso={"x509_certificate": test_idp.cert_pem, "idp": url})
    }
    app, _host = build_host_app(make_app, presets, MAESTRANO_SESSION_CHECK_TIMEOUT=1.0, **fail_open)
    client = app.test_client()
    _login(client, app, test_idp)
    _due(app)
    response = client.get("/page")
    assert (
        response.status_code == 302
        and urlsplit(response.headers["Location"]).path == "/maestrano/auth/saml/init"
    )
    assert client.get("/page").get_data(as_text=True) == "user:anonymous"


@pytest.mark.parametrize("fail_open", [True, "true", "TRUE", "1"])
def test_unreachable_platform_fail_open_keeps_the_session(
    make_app: Any, test_idp: Any, live_server: Any, fail_open: Any
) -> None:
    dead = live_server(Flask("dead"))
    url = dead.url
    dead.stop()
    presets = {
        "production": preset_data(api={"host": url}, sso={"x509_certificate": test_idp.cert_pem, "idp": url})
    }
    app, _host = build_host_app(
        make_app, presets, MAESTRANO_SESSION_CHECK_TIMEOUT="1", MAESTRANO_SESSION_CHECK_FAIL_OPEN=fail_open
    )
    client = app.test_client()
    _login(client, app, test_idp)
    _due(app)
    assert client.get("/page").get_data(as_text=True) == "user:usr-1"
    with client.session_transaction() as sess:
        assert recheck_of(sess) > time.time() + 30  # retried later, not on every request


def test_platform_server_error_counts_as_unreachable(flow_app: Any, test_idp: Any, platform: Any) -> None:
    app, _host = flow_app
    fake, _url = platform
    fake.status = 503
    client = app.test_client()
    _login(client, app, test_idp)
    _due(app)
    assert client.get("/page").status_code == 302
    assert client.get("/page").get_data(as_text=True) == "user:anonymous"


def test_extension_routes_are_not_session_checked(flow_app: Any, test_idp: Any, platform: Any) -> None:
    app, _host = flow_app
    fake, _url = platform
    fake.valid = False
    client = app.test_client()
    _login(client, app, test_idp)
    _due(app)
    assert client.get("/maestrano/auth/saml/init").status_code == 302
    assert client.get("/static/missing.css").status_code == 404
    assert fake.checks == []


def test_slo_disabled_preset_never_checks(make_app: Any, test_idp: Any, platform: Any) -> None:
    fake, url = platform
    presets = {
        "production": preset_data(
            api={"host": url}, sso={"x509_certificate": test_idp.cert_pem, "idp": url, "slo_enabled": False}
        )
    }
    app, _host = build_host_app(make_app, presets)
    client = app.test_client()
    _login(client, app, test_idp)
    with client.session_transaction() as sess:
        assert CHECK_KEY not in sess and "maestrano" not in sess
        assert type(sess["maestrano_login"]) is int  # the login's random value alone
    mno = maestrano_session(app, client)
    assert mno is not None and mno.uid == "usr-1"  # the cookie, bound to the user and login
    assert client.get("/page").get_data(as_text=True) == "user:usr-1"
    assert fake.checks == []


def test_login_helper_logs_a_test_client_in(make_app: Any, test_idp: Any) -> None:
    from flask_maestrano.testing import login
    from tests.support.saml import sso_presets

    app, host = build_host_app(make_app, sso_presets(test_idp))
    client = app.test_client()
    response = login(client, test_idp, uid="usr-9", group_uid="cld-9", role="Member", next="/page")
    assert response.status_code == 302 and response.headers["Location"] == "/page"
    assert client.get("/page").get_data(as_text=True) == "user:usr-9"
    assert host.memberships == {("usr-9", "cld-9"): "Member"}


@pytest.mark.parametrize("older", ["list", "object", "base64"])
def test_a_session_of_an_older_version_is_still_read_and_moves_to_the_cookie(
    flow_app: Any, test_idp: Any, platform: Any, older: str
) -> None:
    """Users logged in before the upgrade (the Maestrano session in the Flask session, as the
    compact list, the object or the old SDKs' base64 JSON) stay logged in; their next check
    moves the session to the Maestrano cookie."""
    app, _host = flow_app
    fake, _url = platform
    client = app.test_client()
    _login(client, app, test_idp)
    current = maestrano_session(app, client)
    assert current is not None
    client.delete_cookie("session_maestrano")
    legacy = {"list": current.to_list(), "object": current.to_dict(), "base64": current.encode()}[older]
    with client.session_transaction() as sess:  # what the previous version wrote
        del sess[CHECK_KEY]
        sess["maestrano"] = legacy
        sess["maestrano_recheck"] = current.session_recheck.timestamp()
    assert client.get("/page").get_data(as_text=True) == "user:usr-1"
    assert fake.checks == []
    assert maestrano_session(app, client) == current
    _due(app)
    assert client.get("/page").get_data(as_text=True) == "user:usr-1"
    assert fake.checks == [("usr-1", "tok-123")]
    with client.session_transaction() as sess:
        assert "maestrano" not in sess
    moved = maestrano_session(app, client)
    assert moved is not None and (moved.uid, moved.session, moved.group_uid) == ("usr-1", "tok-123", "cld-1")
    _now(app)
    assert client.get("/page").get_data(as_text=True) == "user:usr-1"
    assert fake.checks == [("usr-1", "tok-123")]


def test_consume_accepts_a_multipart_form_too(flow_app: Any, test_idp: Any) -> None:
    app, host = flow_app
    client = app.test_client()
    authn = start_login(client)
    preset = app.extensions["maestrano"].preset()
    saml = test_idp.saml_response(preset, authn.id, test_idp.attributes("usr-1", "cld-1", "Admin"))
    response = client.post(
        "/maestrano/auth/saml/consume",
        data={"SAMLResponse": saml, "RelayState": authn.relay_state},
        content_type="multipart/form-data",
    )
    response = follow_finish(client, response)
    assert response.status_code == 302 and "app_access_unauthorized" not in response.headers["Location"]
    assert "usr-1" in host.users


def test_consume_form_with_too_many_fields_is_a_400(flow_app: Any) -> None:
    app, host = flow_app
    body = "&".join(f"f{i}=x" for i in range(50)) + "&SAMLResponse=abc"
    response = app.test_client().post(
        "/maestrano/auth/saml/consume", data=body, content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 400 and "too many fields" in response.get_data(as_text=True)
    assert host.users == {}
