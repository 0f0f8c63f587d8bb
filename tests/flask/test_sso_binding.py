"""Login CSRF (issue 10 item 2) and the anonymous init flood (item 6), through HTTP.

A pending sign-in is bound to the browser that started it: only that browser, presenting
its binding cookie on the same-site GET to finish, is logged in. The Flask test client
keeps cookies like a browser; a second client is a second browser (another cookie jar).
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

import pytest

from flask_maestrano.errors import StoreUnavailable
from flask_maestrano.sso.binding import COOKIE_NAME, BrowserBinding, PendingRequests
from flask_maestrano.sso.views import FINISH_PATH, MAX_NEXT_LENGTH
from flask_maestrano.store import MemoryStore
from flask_maestrano.testing import TestIdP, follow_finish
from tests.support.presets import preset_data
from tests.support.saml import (
    build_host_app,
    consume,
    err_of,
    post_consume,
    sso_app,
    sso_presets,
    start_login,
)

INIT = "/maestrano/auth/saml/init"


@pytest.fixture
def sso(make_app: Any, test_idp: TestIdP) -> Any:
    return sso_app(make_app, test_idp)


def _signed(app: Any, idp: TestIdP, authn: Any, uid: str = "usr-1", group_uid: str = "cld-1") -> str:
    preset = app.extensions["maestrano"].preset()
    return idp.saml_response(preset, authn.id, idp.attributes(uid, group_uid, "Admin"))


def _set_cookie_header(response: Any, name: str) -> str:
    headers = [h for h in response.headers.getlist("Set-Cookie") if h.startswith(name + "=")]
    assert len(headers) == 1, response.headers.getlist("Set-Cookie")
    return str(headers[0])


def _assert_restart_page(response: Any, status: int, reason: str) -> None:
    """A clear page (not a 500, not a login) that offers to start again."""
    body = response.get_data(as_text=True)
    assert response.status_code == status, body
    assert response.headers["Content-Type"].startswith("text/html")
    assert "Sign-in not finished" in body and reason in body
    assert f'<a href="{INIT}">Sign in again</a>' in body


def _anonymous(client: Any) -> bool:
    with client.session_transaction() as sess:
        if "_user_id" in sess or "maestrano" in sess:
            return False
    return bool(client.get("/page").get_data(as_text=True) == "user:anonymous")


# -- the genuine flow ----------------------------------------------------------------------------


def test_genuine_login_goes_through_a_same_site_get_that_checks_the_binding_cookie(
    sso: Any, test_idp: TestIdP
) -> None:
    app, host = sso
    client = app.test_client()
    init = client.get(INIT)
    cookie = _set_cookie_header(init, COOKIE_NAME)
    assert "HttpOnly" in cookie and "Path=/" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie and "Domain" not in cookie  # http app: plain name, not Secure
    assert f"Max-Age={int(app.config['MAESTRANO_SSO_REQUEST_TTL'])}" in cookie
    secret = client.get_cookie(COOKIE_NAME).value
    assert secret not in repr(app.extensions["maestrano"].store._data)  # only its hash is stored

    from flask_maestrano.testing import decode_authn_request

    authn = decode_authn_request(init.headers["Location"])
    posted = post_consume(client, _signed(app, test_idp, authn), authn.relay_state)
    assert posted.status_code == 303 and posted.headers["Cache-Control"] == "no-store"
    assert urlsplit(posted.headers["Location"]).path == FINISH_PATH
    assert host.empty and _anonymous(client)  # nobody is logged in before the finish step

    done = client.get(posted.headers["Location"])
    assert done.status_code == 302 and done.headers["Location"] == "/"
    assert client.get("/page").get_data(as_text=True) == "user:usr-1"
    assert host.calls == ["group", "user", "membership"]


def test_https_app_uses_a_host_prefixed_secure_cookie(make_app: Any, test_idp: TestIdP) -> None:
    base = "https://app.example"
    presets = {"production": preset_data(app={"host": base}, sso={"x509_certificate": test_idp.cert_pem})}
    app, host = build_host_app(make_app, presets)
    client = app.test_client()
    init = client.get(INIT, base_url=base)
    cookie = _set_cookie_header(init, f"__Host-{COOKIE_NAME}")
    assert "Secure" in cookie and "HttpOnly" in cookie and "Path=/" in cookie and "Domain" not in cookie
    from flask_maestrano.testing import decode_authn_request

    authn = decode_authn_request(init.headers["Location"])
    saml = _signed(app, test_idp, authn)
    posted = client.post(
        "/maestrano/auth/saml/consume",
        data={"SAMLResponse": saml, "RelayState": authn.relay_state},
        base_url=base,
    )
    assert posted.status_code == 303
    # the plain-named cookie does not count on an https app (a sibling http site could set it)
    impostor = app.test_client()
    impostor.set_cookie(COOKIE_NAME, client.get_cookie(f"__Host-{COOKIE_NAME}", domain="app.example").value)
    _assert_restart_page(impostor.get(posted.headers["Location"], base_url=base), 403, "binding_missing")
    assert host.empty


def test_a_browser_reuses_its_binding_for_several_tabs(sso: Any, test_idp: TestIdP) -> None:
    app, _host = sso
    client = app.test_client()
    first = start_login(client)
    second_init = client.get(INIT)
    secret = client.get_cookie(COOKIE_NAME).value
    assert secret in _set_cookie_header(second_init, COOKIE_NAME)  # refreshed, not replaced
    from flask_maestrano.testing import decode_authn_request

    second = decode_authn_request(second_init.headers["Location"])
    assert consume(client, _signed(app, test_idp, first), first.relay_state).status_code == 302
    assert consume(client, _signed(app, test_idp, second), second.relay_state).status_code == 302


# -- login CSRF ----------------------------------------------------------------------------------


@pytest.mark.parametrize("victim_has_a_binding", [False, True])
def test_the_attackers_form_posted_from_the_victims_browser_never_logs_the_victim_in(
    sso: Any, test_idp: TestIdP, victim_has_a_binding: bool
) -> None:
    app, host = sso
    attacker = app.test_client()
    authn = start_login(attacker)  # init in the attacker's browser, then sign in at the IdP
    form = _signed(app, test_idp, authn, uid="usr-attacker", group_uid="cld-attacker")

    victim = app.test_client()  # another browser: another cookie jar
    if victim_has_a_binding:
        start_login(victim)  # the victim started a sign-in of their own
    answer = consume(victim, form, authn.relay_state)  # the attacker's page auto-posts the form
    reason = "binding_mismatch" if victim_has_a_binding else "binding_missing"
    _assert_restart_page(answer, 403, reason)
    assert host.empty and _anonymous(victim)
    assert [f["reason"] for f in app.failures] == [reason]


def test_a_finish_link_is_useless_to_anyone_but_the_browser_that_started(sso: Any, test_idp: TestIdP) -> None:
    app, host = sso
    victim = app.test_client()
    authn = start_login(victim)
    posted = post_consume(victim, _signed(app, test_idp, authn), authn.relay_state)
    finish = posted.headers["Location"]

    stranger = app.test_client()  # learnt the link (a log line, a shared screen)
    stranger.set_cookie(COOKIE_NAME, BrowserBinding.new(secure=False).secret)
    refused = stranger.get(finish)
    _assert_restart_page(refused, 403, "binding_mismatch")
    body = refused.get_data(as_text=True)
    assert "usr-1" not in body and "example.com" not in body and "cld-1" not in body  # no identity leaks
    assert host.empty and _anonymous(stranger)
    # the attempt spent the token: the victim starts again (and that works)
    _assert_restart_page(victim.get(finish), 400, "finish_unknown")
    again = start_login(victim)
    assert consume(victim, _signed(app, test_idp, again), again.relay_state).headers["Location"] == "/"


def test_finish_token_is_single_use(sso: Any, test_idp: TestIdP) -> None:
    app, host = sso
    client = app.test_client()
    authn = start_login(client)
    posted = post_consume(client, _signed(app, test_idp, authn), authn.relay_state)
    assert client.get(posted.headers["Location"]).status_code == 302
    _assert_restart_page(client.get(posted.headers["Location"]), 400, "finish_unknown")
    assert host.calls == ["group", "user", "membership"]  # the loaders ran once


@pytest.mark.parametrize(
    "query", ["", "?token=", "?token=nope", "?token=" + "A" * 43, "?token=" + "A" * 5000]
)
def test_finish_without_a_valid_token_is_a_400_page(sso: Any, query: str) -> None:
    app, host = sso
    _assert_restart_page(app.test_client().get(FINISH_PATH + query), 400, "finish_unknown")
    assert host.empty


@pytest.mark.parametrize("cookie", [None, "", "x" * 43, "short", "ü" * 43])
def test_a_missing_or_wrong_binding_cookie_is_a_403_page(
    sso: Any, test_idp: TestIdP, cookie: str | None
) -> None:
    app, host = sso
    client = app.test_client()
    authn = start_login(client)
    posted = post_consume(client, _signed(app, test_idp, authn), authn.relay_state)
    client.delete_cookie(COOKIE_NAME)
    if cookie is not None:
        client.set_cookie(COOKIE_NAME, cookie)
    reason = "binding_missing" if not cookie else "binding_mismatch"
    _assert_restart_page(client.get(posted.headers["Location"]), 403, reason)
    assert host.empty and _anonymous(client)


def test_finish_token_expires(make_app: Any, test_idp: TestIdP, monkeypatch: pytest.MonkeyPatch) -> None:
    now = [time.monotonic()]
    store = MemoryStore(clock=lambda: now[0])
    app, host = build_host_app(
        make_app, sso_presets(test_idp), MAESTRANO_SSO_FINISH_TTL=30, MAESTRANO_STORE=store
    )
    client = app.test_client()
    authn = start_login(client)
    posted = post_consume(client, _signed(app, test_idp, authn), authn.relay_state)
    now[0] += 31
    _assert_restart_page(client.get(posted.headers["Location"]), 400, "finish_unknown")
    assert host.empty


class SwitchableStore:
    """A MemoryStore that can be taken down, as a Redis server can."""

    def __init__(self) -> None:
        self.inner = MemoryStore()
        self.down = False

    def add(self, key: str, value: str, ttl: float) -> bool:
        if self.down:
            raise StoreUnavailable("the store is down")
        return self.inner.add(key, value, ttl)

    def pop(self, key: str) -> str | None:
        if self.down:
            raise StoreUnavailable("the store is down")
        return self.inner.pop(key)


def test_a_store_that_is_down_is_a_503_page_at_init_consume_and_finish(
    make_app: Any, test_idp: TestIdP
) -> None:
    store = SwitchableStore()
    app, host = build_host_app(make_app, sso_presets(test_idp), MAESTRANO_STORE=store)
    client = app.test_client()
    authn = start_login(client)
    saml = _signed(app, test_idp, authn)
    store.down = True
    _assert_restart_page(post_consume(client, saml, authn.relay_state), 503, "store_unavailable")
    store.down = False
    posted = post_consume(client, saml, authn.relay_state)
    store.down = True
    down = client.get(posted.headers["Location"])
    _assert_restart_page(down, 503, "store_unavailable")
    assert down.headers["Retry-After"] == "60"
    _assert_restart_page(client.get(INIT), 503, "store_unavailable")
    store.down = False
    assert host.empty and _anonymous(client)


def test_an_unreachable_redis_is_a_503_page_not_a_500(make_app: Any, test_idp: TestIdP) -> None:
    redis = pytest.importorskip("redis")
    import socket

    from flask_maestrano.store import RedisStore

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1, socket_timeout=1)
    app, host = build_host_app(make_app, sso_presets(test_idp), MAESTRANO_STORE=RedisStore(client))
    _assert_restart_page(app.test_client().get(INIT), 503, "store_unavailable")
    _assert_restart_page(app.test_client().get(FINISH_PATH + "?token=" + "A" * 43), 503, "store_unavailable")
    assert host.empty


def test_idp_initiated_login_cannot_be_bound_and_still_logs_in_at_consume(
    make_app: Any, test_idp: TestIdP
) -> None:
    app, _host = build_host_app(make_app, sso_presets(test_idp, idp_initiated=True))
    client = app.test_client()
    preset = app.extensions["maestrano"].preset()
    saml = test_idp.saml_response(preset, None, test_idp.attributes())
    answer = post_consume(client, saml, None)
    assert answer.status_code == 302 and answer.headers["Location"] == "/"
    assert client.get("/page").get_data(as_text=True) == "user:usr-1"


def test_testing_login_helper_goes_through_finish(sso: Any, test_idp: TestIdP) -> None:
    from flask_maestrano.testing import login

    app, _host = sso
    client = app.test_client()
    response = login(client, test_idp, next="/page")
    assert response.status_code == 302 and response.headers["Location"] == "/page"
    assert client.get("/page").get_data(as_text=True) == "user:usr-1"


# -- item 6: what anonymous inits may store --------------------------------------------------------


def test_an_oversized_next_is_refused_with_a_400(sso: Any) -> None:
    app, _host = sso
    client = app.test_client()
    refused = client.get(INIT, query_string={"next": "/" + "a" * MAX_NEXT_LENGTH})
    assert refused.status_code == 400
    assert f"next is longer than {MAX_NEXT_LENGTH} characters" in refused.get_data(as_text=True)
    assert client.get_cookie(COOKIE_NAME) is None and len(app.extensions["maestrano"].store) == 0
    assert client.get(INIT, query_string={"next": "/" + "a" * (MAX_NEXT_LENGTH - 1)}).status_code == 302


def test_a_flood_of_anonymous_inits_neither_evicts_a_pending_login_nor_outgrows_its_budget(
    make_app: Any, test_idp: TestIdP
) -> None:
    budget = 256 * 1024
    store = MemoryStore(max_bytes=1024 * 1024, max_pending_bytes=budget)
    app, _host = build_host_app(make_app, sso_presets(test_idp), MAESTRANO_STORE=store)
    real = app.test_client()
    authn = start_login(real, next="/page")

    statuses: dict[int, int] = {}
    largest = {"next": "/" + "x" * (MAX_NEXT_LENGTH - 1)}
    for _ in range(1000):  # each from a fresh cookie jar, with the largest next allowed
        flood = app.test_client().get(INIT, query_string=largest)
        statuses[flood.status_code] = statuses.get(flood.status_code, 0) + 1
        assert store.pending_bytes <= budget
    assert set(statuses) == {302, 503} and statuses[503] > 800  # refused once the budget is full
    full = app.test_client().get(INIT, query_string=largest)
    _assert_restart_page(full, 503, "store_full")
    assert full.headers["Retry-After"] == "60"

    done = consume(real, _signed(app, test_idp, authn), authn.relay_state)
    assert done.status_code == 302 and done.headers["Location"] == "/page"  # neither evicted nor delayed
    assert real.get("/page").get_data(as_text=True) == "user:usr-1"
    assert store.bytes_used - store.pending_bytes < 8 * 1024  # replay entry only: room left for logins


def test_one_browser_flooding_inits_only_cycles_its_own_few_slots(make_app: Any, test_idp: TestIdP) -> None:
    store = MemoryStore()
    app, _host = build_host_app(make_app, sso_presets(test_idp), MAESTRANO_STORE=store)
    real = app.test_client()
    authn = start_login(real)
    pending_of_one_browser = store.pending_bytes

    attacker = app.test_client()  # keeps its binding cookie between requests
    first = start_login(attacker)
    for _ in range(1000):
        assert attacker.get(INIT).status_code == 302
    per_browser = app.config["MAESTRANO_SSO_PENDING_PER_BROWSER"]
    # the real browser's request and at most per_browser of the attacker's (plus slack for ids)
    assert store.pending_bytes <= pending_of_one_browser * (1 + per_browser) + 1024
    # the attacker's own oldest request gave way; the real user's did not
    assert err_of(consume(attacker, _signed(app, test_idp, first), first.relay_state)) == "unknown_request"
    assert consume(real, _signed(app, test_idp, authn), authn.relay_state).headers["Location"] == "/"


def test_pending_requests_keep_per_browser_slots(monkeypatch: pytest.MonkeyPatch) -> None:
    store = MemoryStore()
    pending = PendingRequests(store, "test", per_browser=2)
    one, two = BrowserBinding.new(secure=False), BrowserBinding.new(secure=True)
    a = pending.put(one, {"n": 1}, 60)
    b = pending.put(one, {"n": 2}, 60)
    c = pending.put(two, {"n": 3}, 60)
    d = pending.put(one, {"n": 4}, 60)  # one's oldest (a) gives way, two's does not
    assert pending.pop(a) is None
    assert [pending.pop(t)["n"] for t in (b, c, d)] == [2, 3, 4]  # type: ignore[index]
    assert store.pending_bytes == 0 and len(store) == 0  # slots freed with their requests
    with pytest.raises(ValueError, match="at most 4096"):
        pending.put(one, {"next": "x" * 5000}, 60)
    assert len(store) == 0


def test_follow_finish_leaves_other_answers_alone(sso: Any) -> None:
    app, _host = sso
    client = app.test_client()
    response = client.get(INIT)
    assert follow_finish(client, response) is response


def test_verify_browser_checks_the_cookie_of_a_top_level_get(sso: Any) -> None:
    """The check alone, as a protocol answered by a GET (OpenID) uses it at its consume step."""
    from flask_maestrano.sso.binding import BindingError, verify_browser

    app, _host = sso
    browser = BrowserBinding.new(secure=False)
    with app.test_request_context("/", headers={"Cookie": f"{COOKIE_NAME}={browser.secret}"}):
        from flask import request

        verify_browser(request, browser.digest, secure=False)
        with pytest.raises(BindingError, match="binding_missing"):
            verify_browser(request, browser.digest, secure=True)  # https apps read __Host- only
        with pytest.raises(BindingError, match="binding_mismatch"):
            verify_browser(request, BrowserBinding.new(secure=False).digest, secure=False)
