"""OpenID 2.0 single sign-on through the sandbox's provider over real HTTP, and its refusals.

The relying party (the host app, driven by Flask's test client) and the sandbox provider (a
live server, driven by a ``requests`` session playing the browser) talk for real: association
(Diffie-Hellman), signed positive assertions with AX, ``check_authentication`` in stateless
mode. Each forged or replayed answer must be a 400 naming the reason, log nobody in, and
never reach a host other than the preset's provider.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
import requests
from flask import Flask, request

from flask_maestrano import get_state, signals
from flask_maestrano.errors import StoreUnavailable
from flask_maestrano.sandbox import preset_for
from flask_maestrano.sandbox.core import database
from flask_maestrano.store import MemoryStore
from tests.support.clock import ClockAhead as _ClockAhead
from tests.support.pages import hidden_fields
from tests.support.presets import APP_HOST
from tests.support.saml import Host, build_host_app, maestrano_session

INIT = f"{APP_HOST}/maestrano/auth/openid/init"
CONSUME = f"{APP_HOST}/maestrano/auth/openid/consume"


class AddPopStore:
    """A custom store with only the two required operations (no ``get``): stateless OpenID."""

    def __init__(self) -> None:
        self.inner = MemoryStore()
        self.keys: list[str] = []

    def add(self, key: str, value: str, ttl: float) -> bool:
        self.keys.append(key)
        return self.inner.add(key, value, ttl)

    def pop(self, key: str) -> str | None:
        return self.inner.pop(key)


class Elsewhere:
    """Another host on 127.0.0.1 that records every request (it must receive none)."""

    def __init__(self, live_server: Any) -> None:
        self.requests: list[str] = []
        app = Flask("elsewhere")

        @app.route("/", defaults={"path": ""}, methods=["GET", "POST"])
        @app.route("/<path:path>", methods=["GET", "POST"])
        def anything(path: str) -> str:
            self.requests.append(f"{request.method} /{path}")
            return "is_valid:true\nns:http://specs.openid.net/auth/2.0\n"

        self.url = live_server(app).url


@pytest.fixture
def sandbox(make_sandbox: Any) -> Any:
    return make_sandbox(
        SANDBOX_APPS=[
            {"id": "app-sandbox", "key": "sandbox-secret-key", "host": APP_HOST, "protocol": "openid"},
            {"id": "app-other", "key": "other-secret-key", "host": "http://127.0.0.1:5001"},
        ]
    )


def openid_preset(sandbox: Any, **sso: Any) -> dict[str, Any]:
    data = preset_for(sandbox.app, "app-sandbox", sandbox_url=sandbox.url)
    assert data["sso"]["protocol"] == "openid"  # the sandbox says which protocol the app uses
    data["sso"].update(sso)
    return data


def relying_party(make_app: Any, presets: dict[str, Any], **config: Any) -> tuple[Flask, Host]:
    """The host app; its test client talks to it as the browser does, on the app's own host."""
    return build_host_app(make_app, presets, SERVER_NAME="127.0.0.1:5000", **config)


@pytest.fixture
def rp(make_app: Any, sandbox: Any) -> tuple[Flask, Host]:
    return relying_party(make_app, {"sandbox": openid_preset(sandbox)})


def provider_step(browser: requests.Session, location: str, user: str = "usr-1", group: str = "cld-1") -> str:
    """The browser at the provider: pick the user and company; the return_to URL it is sent to."""
    page = browser.get(location, allow_redirects=False, timeout=10)
    if page.status_code == 302:
        return str(page.headers["Location"])
    assert page.status_code == 200, page.text
    assert "OpenID 2.0 request from" in page.text
    form = hidden_fields(page.text)
    form.update(user=user, group=group, role="")
    answer = browser.post(location, data=form, allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text
    return str(answer.headers["Location"])


def assertion_url(client: Any, browser: requests.Session | None = None, **query: str) -> str:
    """Start a login with ``client`` and let the provider answer: the URL of the positive assertion."""
    init = client.get(INIT, query_string=query)
    assert init.status_code == 302, init.get_data(as_text=True)
    return provider_step(browser or requests.Session(), init.headers["Location"])


def with_fields(url: str, **changes: str | None) -> str:
    """``url`` with query fields replaced (``None`` removes one)."""
    parts = urlsplit(url)
    fields = dict(parse_qsl(parts.query, keep_blank_values=True))
    for name, value in changes.items():
        name = name.replace("__", ".")
        if value is None:
            fields.pop(name, None)
        else:
            fields[name] = value
    return parts._replace(query=urlencode(fields)).geturl()


def field(url: str, name: str) -> str:
    return dict(parse_qsl(urlsplit(url).query))[name]


def refused(response: Any, reason: str) -> None:
    body = response.get_data(as_text=True)
    assert response.status_code == 400, (response.status_code, body)
    assert f"OpenID login refused ({reason})" in body, body


def binding_cookie(client: Any) -> Any:
    """The cookie that binds the client's pending login to it."""
    cookie = client.get_cookie("maestrano_sso", domain="127.0.0.1")
    assert cookie is not None and cookie.http_only and cookie.same_site == "Lax"
    return cookie


def logged_in(client: Any) -> bool:
    return client.get("/page").get_data(as_text=True) != "user:anonymous"


# -- the login ------------------------------------------------------------------------------------


def test_login_through_the_sandbox_provider_maps_the_same_identity_and_session(
    rp: tuple[Flask, Host], sandbox: Any
) -> None:
    app, host = rp
    received: list[dict[str, Any]] = []
    signals.login_succeeded.connect(lambda sender, **kw: received.append(kw), app, weak=False)
    client = app.test_client()
    init = client.get(INIT, query_string={"group_id": "cld-1", "next": "/page"})
    location = init.headers["Location"]
    assert location.startswith(f"{sandbox.url}/api/openid/provider/app-sandbox?")
    assert field(location, "group_id") == "cld-1"  # forwarded like SAML init
    assert field(location, "openid.return_to").startswith(CONSUME + "?mno_state=")
    assert field(location, "openid.assoc_handle")  # associated with the provider (DH-SHA256)

    answer = provider_step(requests.Session(), location)
    assert answer.startswith(CONSUME + "?mno_state=")
    assert field(answer, "openid.claimed_id") == f"{sandbox.url}/api/openid/provider/app-sandbox/users/usr-1"
    response = client.get(answer)
    assert response.status_code == 302, response.get_data(as_text=True)
    assert response.headers["Location"] == "/page"
    assert client.get("/page").get_data(as_text=True) == "user:usr-1"
    assert host.users["usr-1"].email == "jane.doe@example.com"
    assert host.users["usr-1"].name == "Jane Doe"
    assert host.groups["cld-1"].name == "Acme Sandbox"
    assert host.memberships[("usr-1", "cld-1")] == "Admin"
    identity = received[0]["identity"]
    assert identity.user.virtual_uid == "usr-1.cld-1"
    assert identity.group.email and identity.group.timezone == "America/Los_Angeles"
    assert received[0]["preset"] == "sandbox"
    mno = maestrano_session(app, client)
    token = database(sandbox.app).user("usr-1")["sso_session"]
    assert mno.uid == "usr-1" and mno.session == token and mno.group_uid == "cld-1"
    assert mno.preset == "sandbox" and mno.session_recheck.timestamp() > time.time()


def test_single_logout_after_the_platform_ends_the_session_sends_back_to_openid_init(
    rp: tuple[Flask, Host], sandbox: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, _ = rp
    client = app.test_client()
    assert client.get(assertion_url(client)).status_code == 302
    assert logged_in(client)
    database(sandbox.app).end_session("usr-1")
    monkeypatch.setattr(get_state(app), "clock", _ClockAhead(3600))
    ended = client.get("/page")
    assert ended.status_code == 302
    assert ended.headers["Location"].startswith(INIT + "?group_id=cld-1")
    assert client.get("/page").get_data(as_text=True) == "user:anonymous"


def test_virtual_creation_mode_gets_the_virtual_uid_and_email(make_app: Any, sandbox: Any) -> None:
    app, host = relying_party(make_app, {"sandbox": openid_preset(sandbox, creation_mode="virtual")})
    client = app.test_client()
    assert client.get(assertion_url(client)).status_code == 302
    user = host.users["usr-1.cld-1"]
    assert user.email == "usr-1.cld-1@mail.maestrano.com"
    assert host.memberships[("usr-1.cld-1", "cld-1")] == "Admin"


def test_stateless_relying_party_verifies_with_check_authentication(make_app: Any, sandbox: Any) -> None:
    store = AddPopStore()
    app, _ = relying_party(make_app, {"sandbox": openid_preset(sandbox)}, MAESTRANO_STORE=store)
    client = app.test_client()
    answer = assertion_url(client)
    assert "openid.invalidate_handle" not in answer
    assert client.get(answer).status_code == 302
    assert logged_in(client)
    assert not any(key.startswith("openid:assoc") for key in store.keys)  # nothing to keep them in
    # the provider, asked about a tampered copy, says no
    second = app.test_client()
    tampered = with_fields(assertion_url(second), openid__ax__value__u_email__1="mallory@example.com")
    refused(second.get(tampered), "invalid_signature")


def test_the_sandbox_provider_answers_sreg_when_asked(rp: tuple[Flask, Host]) -> None:
    app, _ = rp
    client = app.test_client()
    location = client.get(INIT).headers["Location"]
    asked = with_fields(
        location,
        openid__ns__sreg="http://openid.net/extensions/sreg/1.1",
        openid__sreg__required="nickname,fullname,email",
    )
    answer = provider_step(requests.Session(), asked)
    assert field(answer, "openid.sreg.fullname") == "Jane Doe"
    assert field(answer, "openid.sreg.email") == "jane.doe@example.com"
    assert "sreg.fullname" in field(answer, "openid.signed")


def test_the_sandbox_provider_answers_discovery_errors_and_immediate_mode(
    sandbox: Any, rp: tuple[Flask, Host]
) -> None:
    provider = f"{sandbox.url}/api/openid/provider/app-sandbox"
    xrds = requests.get(provider, timeout=10)
    assert xrds.headers["Content-Type"].startswith("application/xrds+xml")
    assert "http://specs.openid.net/auth/2.0/server" in xrds.text and provider in xrds.text
    unknown = requests.get(f"{sandbox.url}/api/openid/provider/app-nope", timeout=10)
    assert unknown.status_code == 404 and "Wrong APP ID" in unknown.text
    bad = requests.post(provider, data={"openid.ns": "http://specs.openid.net/auth/2.0", "openid.mode": "x"})
    assert bad.status_code == 400 and "error:" in bad.text
    # immediate mode: the sandbox never answers without its page, the RP refuses the answer
    app, host = rp
    client = app.test_client()
    location = client.get(INIT).headers["Location"]
    immediate = requests.get(with_fields(location, openid__mode="checkid_immediate"), allow_redirects=False)
    assert (
        immediate.status_code == 302 and field(immediate.headers["Location"], "openid.mode") == "setup_needed"
    )
    refused(client.get(immediate.headers["Location"]), "malformed")
    assert host.empty
    admin = requests.get(f"{sandbox.url}/", timeout=10).text
    assert '<strong class="protocol" data-app="app-sandbox">OpenID 2.0</strong>' in admin
    assert '<strong class="protocol" data-app="app-other">SAML 2.0</strong>' in admin


# -- refusals -------------------------------------------------------------------------------------


def test_a_tampered_ax_value_or_signature_is_refused(rp: tuple[Flask, Host]) -> None:
    app, host = rp
    client = app.test_client()
    answer = assertion_url(client)
    refused(
        client.get(with_fields(answer, openid__ax__value__g_u_role__1="Super Admin")), "invalid_signature"
    )
    client = app.test_client()
    answer = assertion_url(client)
    refused(
        client.get(with_fields(answer, openid__sig="AAAA" + field(answer, "openid.sig")[4:])),
        "invalid_signature",
    )
    assert host.empty


def test_an_unsigned_assertion_is_refused(rp: tuple[Flask, Host]) -> None:
    app, host = rp
    client = app.test_client()
    refused(client.get(with_fields(assertion_url(client), openid__sig=None)), "unsigned")
    client = app.test_client()
    answer = assertion_url(client)
    signed = field(answer, "openid.signed").replace(",ax.value.u_email", "").replace(",ax.value.u_guid", "")
    refused(client.get(with_fields(answer, openid__signed=signed)), "invalid_signature")
    assert host.empty


def test_an_assertion_without_ax_values_is_refused(rp: tuple[Flask, Host]) -> None:
    app, host = rp
    client = app.test_client()
    init = client.get(INIT)
    location = init.headers["Location"]
    parts = urlsplit(location)
    kept = [(k, v) for k, v in parse_qsl(parts.query) if not k.startswith("openid.ax.")]
    answer = provider_step(requests.Session(), parts._replace(query=urlencode(kept)).geturl())
    assert "openid.ax.value.u_guid" not in answer  # a genuinely signed answer, with no AX
    refused(client.get(answer), "missing_ax")
    assert host.empty


def test_a_replayed_assertion_is_refused_and_the_nonce_is_single_use(
    rp: tuple[Flask, Host], monkeypatch: pytest.MonkeyPatch
) -> None:
    app, host = rp
    client = app.test_client()
    state = app.extensions["maestrano"]
    kept: dict[str, str] = {}
    settle = state.store.settle

    def keep_pending(settlement: Any) -> Any:  # the pending login as it was before it was taken
        value = state.store.get(settlement.pending)
        if value is not None:
            kept[settlement.pending] = value
        return settle(settlement)

    monkeypatch.setattr(state.store, "settle", keep_pending)
    answer = assertion_url(client)
    cookie = binding_cookie(client)
    assert client.get(answer).status_code == 302
    refused(client.get(answer), "unknown_request")  # the pending login was used up
    # even with the pending login and its cookie back (a race between workers), the nonce was used
    for key, value in kept.items():
        state.store.pop(key)  # the answered login, as it was before the answer
        state.store.add(key, value, 60)
    client.set_cookie(cookie.key, cookie.value, domain="127.0.0.1", path=cookie.path)
    refused(client.get(answer), "replay")
    assert len(host.users) == 1


def test_an_expired_assertion_is_refused(rp: tuple[Flask, Host], monkeypatch: pytest.MonkeyPatch) -> None:
    app, host = rp
    client = app.test_client()
    answer = assertion_url(client)
    monkeypatch.setattr(get_state(app), "clock", _ClockAhead(3600))
    refused(client.get(answer), "expired")
    assert host.empty


def test_an_assertion_from_another_provider_or_app_is_refused_without_calling_it(
    rp: tuple[Flask, Host], sandbox: Any, live_server: Any
) -> None:
    app, host = rp
    elsewhere = Elsewhere(live_server)
    client = app.test_client()
    answer = assertion_url(client)
    refused(client.get(with_fields(answer, openid__op_endpoint=elsewhere.url + "/op")), "other_provider")
    client = app.test_client()
    answer = assertion_url(client)
    claimed = elsewhere.url + "/users/usr-1"
    refused(
        client.get(with_fields(answer, openid__claimed_id=claimed, openid__identity=claimed)), "claimed_id"
    )
    # a genuine assertion of the same platform for another app (its own provider URL)
    client = app.test_client()
    mine = assertion_url(client)
    other_app = f"{sandbox.url}/api/openid/provider/app-other"
    other = with_fields(mine, openid__op_endpoint=other_app)
    refused(client.get(other), "other_provider")
    assert elsewhere.requests == []
    assert host.empty


def test_a_genuine_assertion_for_another_app_is_refused(
    rp: tuple[Flask, Host], make_app: Any, sandbox: Any
) -> None:
    app, host = rp
    other_data = preset_for(sandbox.app, "app-other", sandbox_url=sandbox.url)
    other_data["sso"]["protocol"] = "openid"
    other_app, other_host = build_host_app(make_app, {"other": other_data}, SERVER_NAME="127.0.0.1:5001")
    other_client = other_app.test_client()
    init = other_client.get("http://127.0.0.1:5001/maestrano/auth/openid/init")
    answer = provider_step(requests.Session(), init.headers["Location"])
    assert answer.startswith("http://127.0.0.1:5001/maestrano/auth/openid/consume?mno_state=")
    # delivered to our app, with a pending login of ours and its browser
    client = app.test_client()
    ours = field(field(client.get(INIT).headers["Location"], "openid.return_to"), "mno_state")
    delivered = CONSUME + "?" + urlsplit(with_fields(answer, mno_state=ours)).query
    refused(client.get(delivered), "other_provider")
    assert host.empty and other_host.empty


def test_an_assertion_for_another_return_to_is_refused(rp: tuple[Flask, Host], sandbox: Any) -> None:
    app, host = rp
    client = app.test_client()
    init = client.get(INIT)
    location = init.headers["Location"]
    return_to = field(location, "openid.return_to")
    token = dict(parse_qsl(urlsplit(return_to).query))["mno_state"]
    # the provider signs an answer for another return_to on the same host, carrying our token
    forged_return_to = f"{APP_HOST}/elsewhere?mno_state={token}"
    answer = provider_step(requests.Session(), with_fields(location, openid__return_to=forged_return_to))
    assert answer.startswith(forged_return_to)
    delivered = CONSUME + "?" + urlsplit(answer).query
    refused(client.get(delivered), "return_to")
    # ... or for the consume URL with one more parameter (python3-openid alone accepts this)
    client = app.test_client()
    location = client.get(INIT).headers["Location"]
    token = dict(parse_qsl(urlsplit(field(location, "openid.return_to")).query))["mno_state"]
    longer = f"{CONSUME}?mno_state={token}&lang=en"
    answer = provider_step(requests.Session(), with_fields(location, openid__return_to=longer))
    assert answer.startswith(longer)
    refused(client.get(answer), "return_to")
    assert host.empty


def test_the_login_is_bound_to_the_browser_that_started_it(rp: tuple[Flask, Host]) -> None:
    app, host = rp
    attacker = app.test_client()
    answer = assertion_url(attacker)  # the attacker's own login, answered by the provider
    victim = app.test_client()
    refused(victim.get(answer), "binding_missing")  # login CSRF: the victim's browser is not logged in
    assert not logged_in(victim)
    # a victim with a login of their own pending has a binding, but not the attacker's
    attacker_answer = assertion_url(attacker)
    victim.get(INIT)
    refused(victim.get(attacker_answer), "binding_mismatch")
    assert not logged_in(victim)
    assert host.empty


@pytest.mark.parametrize(
    "target", ["//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:x"]
)
def test_no_open_redirect_after_login(rp: tuple[Flask, Host], target: str) -> None:
    app, _ = rp
    client = app.test_client()
    response = client.get(assertion_url(client, next=target))
    assert response.status_code == 302
    assert response.headers["Location"] == "/"


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"mno_state": "x" * 40},
        {"mno_state": "../../etc"},
        {"openid.mode": "id_res"},
        {"mno_state": "a" * 43, "openid.mode": "cancel"},
    ],
)
def test_forged_answers_without_a_pending_login_are_a_400(
    rp: tuple[Flask, Host], query: dict[str, str]
) -> None:
    app, host = rp
    client = app.test_client()
    refused(client.get(CONSUME, query_string=query), "unknown_request")
    refused(client.post(CONSUME, data=query), "unknown_request")
    assert host.empty


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"openid__mode": "cancel"}, "cancelled"),
        ({"openid__mode": "error", "openid__error": "nope"}, "provider_error"),
        ({"openid__mode": "checkid_setup"}, "malformed"),
        ({"openid__ns": "http://openid.net/signon/1.1"}, "malformed"),
        ({"openid__response_nonce": "not-a-nonce"}, "malformed"),
        ({"openid__claimed_id": None}, "claimed_id"),
        ({"openid__signed": None}, "unsigned"),
        ({"openid__assoc_handle": "{HMAC-SHA256}{junk}"}, "invalid_signature"),
        ({"openid__ax__value__u_guid__1": "usr-2"}, "invalid_signature"),
        ({"openid__ax__value__u_email": "mallory@example.com"}, "unsigned"),
        ({"openid__ns__ax": "http://example.com/not-ax"}, "invalid_signature"),
    ],
)
def test_each_mangled_field_is_a_400_naming_it(
    rp: tuple[Flask, Host], changes: dict[str, str | None], reason: str
) -> None:
    app, host = rp
    client = app.test_client()
    refused(client.get(with_fields(assertion_url(client), **changes)), reason)
    assert host.empty


def post_answer(client: Any, answer: str) -> Any:
    """Deliver a positive assertion as a provider's auto-submitting form would (POST)."""
    fields = dict(parse_qsl(urlsplit(answer).query))
    state = fields.pop("mno_state")
    return client.post(f"{CONSUME}?mno_state={state}", data=fields)


def test_a_cross_site_post_answer_is_verified_then_finished_by_its_own_browser(
    rp: tuple[Flask, Host],
) -> None:
    app, host = rp
    client = app.test_client()
    answer = assertion_url(client)
    cookie = binding_cookie(client)
    client.delete_cookie("maestrano_sso", domain="127.0.0.1")  # a cross-site POST carries no Lax cookie
    consumed = post_answer(client, answer)
    assert consumed.status_code == 303
    finish = consumed.headers["Location"]
    assert finish.startswith("/maestrano/auth/saml/finish?token=")
    assert not logged_in(client) and host.empty  # nothing happens before the browser is known
    # another browser cannot finish it (login CSRF), and the token is then spent
    stranger = app.test_client()
    assert stranger.get(finish).status_code == 403 and not logged_in(stranger)
    # the browser that started it finishes its own login (the same-site GET carries the cookie)
    client.set_cookie(cookie.key, cookie.value, domain="127.0.0.1", path=cookie.path)
    second = assertion_url(client)
    handed = post_answer(client, second)
    assert handed.status_code == 303
    done = client.get(handed.headers["Location"])
    assert done.status_code == 302 and logged_in(client)
    assert host.memberships[("usr-1", "cld-1")] == "Admin"


def test_a_post_answer_is_size_capped(rp: tuple[Flask, Host]) -> None:
    app, _ = rp
    big = app.test_client()
    response = big.post(CONSUME, data={"mno_state": "a" * 43, "junk": "x" * (300 * 1024)})
    refused(response, "too_large")


class FailingStore(AddPopStore):
    """A store that goes down on demand (Redis restarting)."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    def add(self, key: str, value: str, ttl: float) -> bool:
        if self.down:
            raise StoreUnavailable("connection refused")
        return super().add(key, value, ttl)

    def pop(self, key: str) -> str | None:
        if self.down:
            raise StoreUnavailable("connection refused")
        return super().pop(key)


def test_a_store_that_is_down_is_a_503_page_not_a_500(make_app: Any, sandbox: Any) -> None:
    store = FailingStore()
    app, host = relying_party(make_app, {"sandbox": openid_preset(sandbox)}, MAESTRANO_STORE=store)
    client = app.test_client()
    store.down = True
    init = client.get(INIT)
    assert init.status_code == 503 and 'href="/maestrano/auth/openid/init"' in init.get_data(as_text=True)
    store.down = False
    answer = assertion_url(client)
    store.down = True
    consume = client.get(answer)
    assert consume.status_code == 503 and "Sign in again" in consume.get_data(as_text=True)
    assert host.empty


def test_protocols_are_per_preset(make_app: Any, sandbox: Any, test_idp: Any) -> None:
    saml = openid_preset(sandbox, protocol="saml", x509_certificate=test_idp.cert_pem)
    app, _ = relying_party(make_app, {"sandbox": openid_preset(sandbox), "saml": saml})
    client = app.test_client()
    assert client.get("/maestrano/auth/saml/init/sandbox").status_code == 404
    assert client.get("/maestrano/auth/openid/init/saml").status_code == 404
    assert client.get("/maestrano/auth/saml/init/saml").status_code == 302
    assert client.get("/maestrano/auth/openid/init/sandbox").status_code == 302


def test_developer_platform_paths_route_openid_like_saml(make_app: Any, sandbox: Any) -> None:
    preset = openid_preset(
        sandbox,
        openid_init_path="/maestrano/openid/init/?marketplace=%{marketplace}",
        openid_consume_path="/maestrano/openid/consume/?marketplace=%{marketplace}",
    )
    app, host = relying_party(make_app, {"sandbox": preset})
    client = app.test_client()
    init = client.get(f"{APP_HOST}/maestrano/openid/init/?marketplace=sandbox")
    assert init.status_code == 302
    return_to = field(init.headers["Location"], "openid.return_to")
    assert return_to.startswith(f"{APP_HOST}/maestrano/openid/consume/?marketplace=sandbox&mno_state=")
    assert client.get(f"{APP_HOST}/maestrano/openid/init/?marketplace=other").status_code == 404
    answer = provider_step(requests.Session(), init.headers["Location"])
    assert client.get(answer).status_code == 302
    assert "usr-1" in host.users


def test_nonces_and_associations_are_shared_through_redis(
    make_app: Any,
    sandbox: Any,
    redis_url: str,
) -> None:
    presets = {"sandbox": openid_preset(sandbox)}
    first, _ = relying_party(make_app, presets, MAESTRANO_STORE=redis_url)
    second, second_host = relying_party(make_app, presets, MAESTRANO_STORE=redis_url)
    client = first.test_client()
    answer = assertion_url(client)
    cookie = binding_cookie(client)
    other = second.test_client()
    other.set_cookie(cookie.key, cookie.value, domain="127.0.0.1", path=cookie.path)
    # worker two knows the association and the pending login worker one made
    assert other.get(answer).status_code == 302
    assert "usr-1" in second_host.users
    refused(client.get(answer), "unknown_request")


def test_a_company_that_cancelled_the_app_cannot_launch_it_through_openid(
    rp: tuple[Flask, Host], sandbox: Any
) -> None:
    app, _host = rp
    database(sandbox.app).cancel_app("app-sandbox", "cld-1")
    client = app.test_client()
    init = client.get(INIT, query_string={"group_id": "cld-1"})
    browser = requests.Session()
    page = browser.get(init.headers["Location"], allow_redirects=False, timeout=10)
    form = hidden_fields(page.text)
    form.update(user="usr-1", group="cld-1", role="")
    refused_launch = browser.post(init.headers["Location"], data=form, allow_redirects=False, timeout=10)
    assert refused_launch.status_code == 403
    assert "add the app to the company again" in refused_launch.text
    assert not logged_in(client)
    database(sandbox.app).attach("app-sandbox", "cld-1")  # the admin page's "Add"
    assert logged_in(client) is False
    answer = assertion_url(client, browser, group_id="cld-1")
    assert client.get(answer).status_code == 302
    assert logged_in(client)
