"""The Maestrano session in its own signed cookie, bound to the Flask session (issue 16).

Only the recheck time stays in the (signed) Flask session; the marketplace session (uid,
token, group, preset) is a cookie of its own, read when a check is due. These tests are the
attacker's side: a client that forges, tampers with, drops or swaps that cookie, or tries to
postpone its recheck, never keeps a session the platform has not confirmed.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import time
from typing import Any

import pytest
from flask import Flask, jsonify, request, session
from flask.json.provider import DefaultJSONProvider
from flask.sessions import SecureCookieSessionInterface
from flask_login import logout_user, user_logged_in
from itsdangerous import Signer

from flask_maestrano import get_state, signals
from flask_maestrano.sso.session import (
    LOGIN_BITS,
    MAX_COOKIE_SIZE,
    MaestranoSession,
    check_due,
    session_cookie_name,
)
from tests.support.clock import ClockAhead
from tests.support.presets import preset_data
from tests.support.saml import build_host_app, consume, maestrano_session, recheck_of, start_login

COOKIE = "session_maestrano"


class Platform:
    """The session-check endpoint: every session is valid for 5 more minutes."""

    def __init__(self) -> None:
        self.checks: list[tuple[str, str]] = []
        self.app = Flask("platform")

        @self.app.get("/api/v1/auth/saml/<uid>")
        def check(uid: str) -> Any:
            self.checks.append((uid, request.args.get("session", "")))
            recheck = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 300))
            return jsonify({"valid": True, "recheck": recheck})


@pytest.fixture
def world(make_app: Any, test_idp: Any, live_server: Any) -> Any:
    platform = Platform()
    url = live_server(platform.app).url
    presets = {
        "production": preset_data(api={"host": url}, sso={"x509_certificate": test_idp.cert_pem, "idp": url})
    }
    app, _host = build_host_app(make_app, presets, MAESTRANO_SESSION_CHECK_TIMEOUT=2.0)
    ended: list[dict[str, Any]] = []
    signals.session_invalidated.connect(lambda sender, **kw: ended.append(kw), app, weak=False)

    @app.route("/bye")
    def bye() -> str:
        logout_user()  # the host's own logout, not maestrano_logout()
        return "bye"

    app.platform, app.ended = platform, ended  # type: ignore[attr-defined]
    return app


def log_in(app: Flask, idp: Any, uid: str = "usr-1", token: str = "tok-1") -> Any:
    client = app.test_client()
    authn = start_login(client)
    attributes = idp.attributes(uid, "cld-1", "Admin", session_token=token)
    response = consume(
        client, idp.saml_response(get_state(app).preset(), authn.id, attributes), authn.relay_state
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    assert client.get("/page").get_data(as_text=True) == f"user:{uid}"
    return client


def due(app: Flask) -> None:
    """Ten minutes later: past the login's recheck time (three minutes)."""
    get_state(app).clock = ClockAhead(600)


def cookie_value(client: Any) -> str:
    cookie = client.get_cookie(COOKIE)
    assert cookie is not None
    return str(cookie.value)


def test_only_the_recheck_time_is_in_the_flask_session(world: Flask, test_idp: Any) -> None:
    """With the login's random value, in one short key of one integer: every key and byte
    of the Flask session is decoded on every request of the host."""
    client = log_in(world, test_idp)
    with client.session_transaction() as sess:
        assert sorted(sess) == ["_fresh", "_id", "_mno", "_user_id"]
        assert type(sess["_mno"]) is int and 0 < recheck_of(sess) - time.time() <= 180
    mno = maestrano_session(world, client)
    assert (mno.uid, mno.session, mno.group_uid, mno.preset) == ("usr-1", "tok-1", "cld-1", "production")
    assert session_cookie_name(world) == COOKIE


@pytest.mark.parametrize("permanent", [False, True])
def test_the_cookie_has_the_session_cookies_attributes(
    make_app: Any, test_idp: Any, live_server: Any, permanent: bool
) -> None:
    url = live_server(Platform().app).url
    presets = {
        "production": preset_data(api={"host": url}, sso={"x509_certificate": test_idp.cert_pem, "idp": url})
    }
    app, _host = build_host_app(
        make_app,
        presets,
        SESSION_COOKIE_SECURE=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_PATH="/",
        SESSION_COOKIE_DOMAIN="app.example",
    )
    if permanent:  # what a host does to keep its users logged in across browser restarts

        def make_permanent(sender: Any, **_: Any) -> None:
            session.permanent = True

        user_logged_in.connect(make_permanent, app, weak=False)
    client = app.test_client()
    authn = start_login(client)
    attributes = test_idp.attributes("usr-1", "cld-1", "Admin", session_token="tok-1")
    response = consume(
        client, test_idp.saml_response(get_state(app).preset(), authn.id, attributes), authn.relay_state
    )
    headers = {h.split("=", 1)[0]: h for h in response.headers.getlist("Set-Cookie")}
    ours, flasks = headers[COOKIE], headers["session"]
    for attribute in ("HttpOnly", "Secure", "SameSite=Strict", "Path=/", "Domain=app.example"):
        assert attribute in ours and attribute in flasks
    assert ("Expires=" in ours) is permanent and ("Expires=" in flasks) is permanent
    assert len(ours.split(";")[0]) - len(COOKIE) - 1 <= MAX_COOKIE_SIZE


def test_a_tampered_cookie_is_refused_and_a_due_check_ends_the_session(world: Flask, test_idp: Any) -> None:
    client = log_in(world, test_idp)
    payload, signature = cookie_value(client).split(".")
    fields = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    fields[1] = "tok-stolen"
    forged = base64.urlsafe_b64encode(json.dumps(fields).encode()).decode().rstrip("=")
    client.set_cookie(COOKIE, f"{forged}.{signature}")
    assert maestrano_session(world, client) is None
    due(world)
    assert client.get("/page").status_code == 302  # an unreadable session: logged out
    assert world.platform.checks == []  # type: ignore[attr-defined]  # the forged token never left
    assert [e["reason"] for e in world.ended] == ["invalid"]  # type: ignore[attr-defined]
    assert client.get("/page").get_data(as_text=True) == "user:anonymous"


def test_another_users_cookie_is_refused(world: Flask, test_idp: Any) -> None:
    mine = log_in(world, test_idp, "usr-1", "tok-1")
    theirs = log_in(world, test_idp, "usr-2", "tok-2")
    mine.set_cookie(COOKIE, cookie_value(theirs))  # same recheck time, another user
    assert maestrano_session(world, mine) is None
    due(world)
    assert mine.get("/page").status_code == 302
    assert world.platform.checks == []  # type: ignore[attr-defined]
    assert mine.get("/page").get_data(as_text=True) == "user:anonymous"
    assert theirs.get("/page").get_data(as_text=True) == "user:usr-2"  # checked, still valid
    assert world.platform.checks == [("usr-2", "tok-2")]  # type: ignore[attr-defined]


def test_the_recheck_time_cannot_be_postponed(world: Flask, test_idp: Any) -> None:
    client = log_in(world, test_idp)
    # the client's own session with a far recheck time, signed with anything but the app's key
    attacker = Flask("attacker")
    attacker.secret_key = "guessed"
    with client.session_transaction() as sess:
        data = dict(sess)
    data["_mno"] = 4102444800 << LOGIN_BITS | data["_mno"] & (1 << LOGIN_BITS) - 1  # 2100, the same login
    signer = SecureCookieSessionInterface().get_signing_serializer(attacker)
    assert signer is not None
    client.set_cookie("session", signer.dumps(data))
    assert client.get("/page").get_data(as_text=True) == "user:anonymous"


def test_a_check_keeps_the_cookie_of_the_login(world: Flask, test_idp: Any) -> None:
    """The cookie is bound to the login, not to the recheck time: its fields never change
    within a login, so a check writes the same value again and the postponed recheck time
    lives only in the signed Flask session."""
    client = log_in(world, test_idp)
    older = cookie_value(client)
    due(world)
    assert client.get("/page").get_data(as_text=True) == "user:usr-1"  # checked: new recheck time
    assert cookie_value(client) == older
    mno = maestrano_session(world, client)
    assert mno is not None and mno.session_recheck.timestamp() > time.time() + 240  # the login said 180


def test_dropping_the_cookie_ends_the_session_at_its_next_check(world: Flask, test_idp: Any) -> None:
    client = log_in(world, test_idp)
    client.delete_cookie(COOKIE)
    assert client.get("/page").get_data(as_text=True) == "user:usr-1"  # no check due yet
    due(world)
    assert client.get("/page").status_code == 302
    assert world.platform.checks == []  # type: ignore[attr-defined]
    assert client.get("/page").get_data(as_text=True) == "user:anonymous"


def test_a_cookie_over_the_size_cap_is_not_even_read(world: Flask, test_idp: Any) -> None:
    client = log_in(world, test_idp)
    value = cookie_value(client)
    client.set_cookie(COOKIE, value + "A" * (MAX_COOKIE_SIZE + 1 - len(value)))
    assert maestrano_session(world, client) is None


def test_a_session_too_large_for_its_cookie_refuses_the_login(world: Flask, test_idp: Any) -> None:
    failures: list[dict[str, Any]] = []
    client = world.test_client()
    authn = start_login(client)
    attributes = test_idp.attributes("usr-1", "cld-1", "Admin", session_token="t" * MAX_COOKIE_SIZE)
    with signals.login_failed.connected_to(lambda sender, **kw: failures.append(kw), world):
        consume(
            client, test_idp.saml_response(get_state(world).preset(), authn.id, attributes), authn.relay_state
        )
    assert [f["reason"] for f in failures] == ["session_too_large"]
    assert client.get_cookie(COOKIE) is None
    assert client.get("/page").get_data(as_text=True) == "user:anonymous"


def test_the_hosts_own_logout_clears_both(world: Flask, test_idp: Any) -> None:
    client = log_in(world, test_idp)
    assert client.get("/bye").get_data(as_text=True) == "bye"
    assert client.get_cookie(COOKIE) is None
    with client.session_transaction() as sess:
        assert "_mno" not in sess and "_user_id" not in sess


def test_a_rotated_secret_key_still_reads_the_cookie(world: Flask, test_idp: Any) -> None:
    client = log_in(world, test_idp)
    old_key = world.secret_key
    world.secret_key = "the-new-key"
    world.config["SECRET_KEY_FALLBACKS"] = [old_key]
    mno = maestrano_session(world, client)
    assert mno is not None and mno.uid == "usr-1"
    world.config["SECRET_KEY_FALLBACKS"] = []
    assert maestrano_session(world, client) is None


def test_requests_sharing_one_app_context_each_write_their_own_cookie(world: Flask, test_idp: Any) -> None:
    with world.app_context():  # flask.g lives as long as this: nothing may leak between requests
        first = log_in(world, test_idp, "usr-1", "tok-1")
        second = log_in(world, test_idp, "usr-2", "tok-2")
    assert maestrano_session(world, first).uid == "usr-1"
    assert maestrano_session(world, second).uid == "usr-2"


def test_a_cookie_of_an_earlier_login_of_the_same_user_is_refused(
    make_app: Any, test_idp: Any, live_server: Any
) -> None:
    """The same user, the same recheck second (whole seconds since the spread; certain with no
    jitter): the cookie of the login for cld-1, kept past a logout, does not pass beside the
    login for cld-2, so the user cannot swap back to a group (or token) of an earlier login."""
    url = live_server(Platform().app).url
    presets = {
        "production": preset_data(api={"host": url}, sso={"x509_certificate": test_idp.cert_pem, "idp": url})
    }
    app, _host = build_host_app(make_app, presets, MAESTRANO_SESSION_CHECK_JITTER=0.0)

    @app.route("/bye")
    def bye() -> str:
        logout_user()
        return "bye"

    recheck = dt.datetime.fromtimestamp(int(time.time()) + 180, dt.timezone.utc)
    client = app.test_client()
    for group in ("cld-1", "cld-2"):
        authn = start_login(client)
        attributes = test_idp.attributes("usr-1", group, "Admin", session_token="tok-1", recheck=recheck)
        response = consume(
            client, test_idp.saml_response(get_state(app).preset(), authn.id, attributes), authn.relay_state
        )
        assert response.status_code == 302, response.get_data(as_text=True)
        assert maestrano_session(app, client).group_uid == group
        if group == "cld-1":
            earlier = cookie_value(client)
            assert client.get("/bye").get_data(as_text=True) == "bye"
    client.set_cookie(COOKIE, earlier)  # the earlier login's cookie, same user, same recheck time
    assert maestrano_session(app, client) is None


def test_a_late_response_restoring_the_previous_flask_session_does_not_end_it(
    world: Flask, test_idp: Any
) -> None:
    """A slow request sent before the recheck time answers after a due check of another one,
    with the Flask session as it read it (a permanent session is sent again with every
    response; so is any session the host writes): the browser then holds the previous recheck
    time beside the new Maestrano cookie of the same login. That is a due check, not a
    forged cookie: the user stays logged in and the platform is asked again."""
    client = log_in(world, test_idp)
    before = client.get_cookie("session")
    assert before is not None
    due(world)
    assert client.get("/page").get_data(as_text=True) == "user:usr-1"  # checked: new recheck time
    client.set_cookie("session", before.value)  # the slow request's Set-Cookie, last to arrive
    assert client.get("/page").get_data(as_text=True) == "user:usr-1"
    assert world.platform.checks == [("usr-1", "tok-1")] * 2  # type: ignore[attr-defined]
    assert world.ended == []  # type: ignore[attr-defined]


def test_a_session_of_the_previous_cookie_format_is_still_read_and_moves_at_its_check(
    world: Flask, test_idp: Any
) -> None:
    """Written by the previous version: the recheck time and a random string in two keys of
    the Flask session, the cookie bound to that string. Still read, still checked when due;
    the check moves it to the one-key format and binds the cookie to the new value."""
    client = log_in(world, test_idp)
    payload = cookie_value(client).split(".")[0]
    with client.session_transaction() as sess:
        recheck = sess.pop("_mno") >> LOGIN_BITS
        sess["maestrano_recheck"] = recheck
        sess["maestrano_login"] = "bRm-cO-5Vu0"
        user = sess["_user_id"]
    with world.app_context():  # the previous version's binding: [user id, random string]
        signer = Signer(
            world.secret_key,
            salt="flask-maestrano.session",
            key_derivation="hmac",
            digest_method=hashlib.sha256,
        )
        bound = f"{payload}\x00{json.dumps([user, 'bRm-cO-5Vu0'], separators=(',', ':'))}".encode()
        client.set_cookie(COOKIE, f"{payload}.{signer.get_signature(bound).decode()}")
    mno = maestrano_session(world, client)
    assert mno is not None and (mno.uid, mno.session, mno.group_uid) == ("usr-1", "tok-1", "cld-1")
    assert mno.session_recheck.timestamp() == recheck
    assert client.get("/page").get_data(as_text=True) == "user:usr-1"  # not due: not checked
    assert world.platform.checks == []  # type: ignore[attr-defined]
    due(world)
    assert client.get("/page").get_data(as_text=True) == "user:usr-1"
    assert world.platform.checks == [("usr-1", "tok-1")]  # type: ignore[attr-defined]
    with client.session_transaction() as sess:
        assert sorted(sess) == ["_fresh", "_id", "_mno", "_user_id"]
    moved = maestrano_session(world, client)
    assert moved is not None and (moved.uid, moved.session, moved.group_uid) == ("usr-1", "tok-1", "cld-1")
    assert world.ended == []  # type: ignore[attr-defined]


class Int64JSONProvider(DefaultJSONProvider):
    """Flask's JSON (which also serialises the session cookie) with the integer range of
    orjson, msgpack (Flask-Session's serializer) and BSON: a signed 64-bit integer."""

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        def check(value: Any) -> None:
            if type(value) is int and not -(2**63) <= value < 2**63:
                raise OverflowError("Integer exceeds 64-bit range")
            items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
            for item in items:
                check(item)

        check(obj)
        return super().dumps(obj, **kwargs)


def test_the_flask_session_holds_only_64_bit_integers(world: Flask, test_idp: Any) -> None:
    """A host whose session serializer has 64-bit integers (an orjson JSON provider,
    Flask-Session's msgpack) still logs users in and checks their sessions."""
    world.json = Int64JSONProvider(world)
    client = log_in(world, test_idp)
    with client.session_transaction() as sess:
        assert 0 <= sess["_mno"] < 2**63 and 0 < recheck_of(sess) - time.time() <= 180
    due(world)
    assert client.get("/page").get_data(as_text=True) == "user:usr-1"
    assert world.platform.checks == [("usr-1", "tok-1")]  # type: ignore[attr-defined]
    with client.session_transaction() as sess:
        assert 0 <= sess["_mno"] < 2**63


def test_a_session_written_outside_a_request_leaves_no_packed_key_behind(world: Flask) -> None:
    """Outside a request the whole session goes into the web session (the previous format):
    a packed key left from before would hide its recheck time, and the check would wait."""
    past = dt.datetime.fromtimestamp(time.time() - 60, dt.timezone.utc)
    mno = MaestranoSession("usr-1", "tok-1", past, "cld-1", "production")
    with world.app_context():
        state = get_state(world)
        web: dict[str, Any] = {"_mno": 4102444800 << LOGIN_BITS | 7, "maestrano_login": 7}
        mno.store(web, slo=True)
        assert check_due(web, state) and "_mno" not in web and "maestrano_login" not in web
        assert MaestranoSession.decode(web["maestrano"]) == mno
        mno.store(web, slo=False)
        assert not check_due(web, state) and sorted(web) == ["maestrano"]
