"""The pending request is taken only by a valid response, in one atomic store operation
(flask_maestrano.store.Settlement), with the in-process store and with a real redis-server:
an invalid answer leaves it usable, a double POST logs in once, a store failure is a 503 the
same POST recovers from, and a store that lost its replay cache refuses old assertions."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from typing import Any

import pytest
import redis

from flask_maestrano import signals
from flask_maestrano.errors import StoreUnavailable
from flask_maestrano.sso.binding import COOKIE_NAME
from flask_maestrano.testing import TestIdP, follow_finish
from tests.support.redis import redis_server
from tests.support.saml import build_host_app, consume, err_of, post_consume, sso_presets, start_login

STORES = ["memory", pytest.param("redis", marks=pytest.mark.redis)]


def _app(make_app: Any, idp: TestIdP, store: str, request: Any, **config: Any) -> tuple[Any, Any, list]:
    if store == "redis":
        config["MAESTRANO_STORE"] = request.getfixturevalue("clean_redis")
    app, host = build_host_app(make_app, sso_presets(idp, **config.pop("sso", {})), **config)
    failures: list[dict[str, Any]] = []
    signals.login_failed.connect(lambda sender, **kw: failures.append(kw), app, weak=False)
    return app, host, failures


def _preset(app: Any) -> Any:
    return app.extensions["maestrano"].preset()


@pytest.mark.parametrize("store", STORES)
def test_invalid_answers_leave_the_request_usable_for_the_genuine_one(
    make_app: Any, test_idp: TestIdP, store: str, request: Any
) -> None:
    app, host, failures = _app(make_app, test_idp, store, request)
    client = app.test_client()
    authn = start_login(client)
    attributes = test_idp.attributes()
    forged = TestIdP().saml_response(_preset(app), authn.id, attributes)  # another IdP's key
    other = test_idp.saml_response(_preset(app), "_another_request", attributes)  # signed, wrong ID
    assert err_of(post_consume(client, forged, authn.relay_state)) == "invalid_signature"
    assert err_of(post_consume(client, other, authn.relay_state)) == "in_response_to"
    assert host.empty and [f["reason"] for f in failures] == ["invalid_signature", "in_response_to"]

    genuine = test_idp.saml_response(_preset(app), authn.id, attributes)
    assert consume(client, genuine, authn.relay_state).headers["Location"] == "/"
    assert client.get("/page").get_data(as_text=True) == "user:usr-1"
    assert err_of(consume(app.test_client(), genuine, authn.relay_state)) == "replay"


def _post(
    barrier: threading.Barrier, answers: list[Any], index: int, client: Any, saml: str, relay: str
) -> None:
    """POST ``saml`` when the other thread is ready too, then follow to finish like a browser."""
    barrier.wait(timeout=30)
    answers[index] = follow_finish(client, post_consume(client, saml, relay))


@pytest.mark.parametrize("store", STORES)
def test_a_concurrent_double_post_logs_in_once(
    make_app: Any, test_idp: TestIdP, store: str, request: Any
) -> None:
    app, host, _failures = _app(make_app, test_idp, store, request)
    logins: list[Any] = []
    signals.login_succeeded.connect(lambda sender, **kw: logins.append(kw), app, weak=False)
    started = app.test_client()
    authn = start_login(started)
    saml = test_idp.saml_response(_preset(app), authn.id, test_idp.attributes())
    cookie = started.get_cookie(COOKIE_NAME).value
    for _round in range(5):  # a few rounds: each a new request posted twice at once
        clients = [app.test_client() for _ in range(2)]
        for client in clients:
            client.set_cookie(COOKIE_NAME, cookie)  # the same browser, two tabs or a retry
        barrier = threading.Barrier(2)
        answers: list[Any] = [None, None]
        threads = [
            threading.Thread(target=_post, args=(barrier, answers, i, c, saml, authn.relay_state))
            for i, c in enumerate(clients)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert all(answer is not None for answer in answers)
        logged_in = [a for a in answers if a.status_code == 302 and a.headers["Location"] == "/"]
        assert len(logged_in) == 1, [(a.status_code, a.headers.get("Location")) for a in answers]
        authn = start_login(started)
        saml = test_idp.saml_response(_preset(app), authn.id, test_idp.attributes())
    assert len(logins) == 5 and host.calls.count("user") == 5


@pytest.mark.parametrize("store", STORES)
def test_a_store_failure_at_the_settlement_is_a_503_and_the_same_post_then_logs_in(
    make_app: Any, test_idp: TestIdP, store: str, request: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, host, failures = _app(make_app, test_idp, store, request)
    state = app.extensions["maestrano"]
    client = app.test_client()
    authn = start_login(client)
    saml = test_idp.saml_response(_preset(app), authn.id, test_idp.attributes())

    def down(settlement: Any) -> Any:
        raise StoreUnavailable("the Redis store did not answer (TimeoutError)")

    monkeypatch.setattr(state.store, "settle", down)
    response = post_consume(client, saml, authn.relay_state)
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert "shared store" in response.get_data(as_text=True)
    assert [f["reason"] for f in failures] == ["store_unavailable"] and host.empty
    monkeypatch.undo()
    assert consume(client, saml, authn.relay_state).headers["Location"] == "/"
    assert client.get("/page").get_data(as_text=True) == "user:usr-1"


@pytest.mark.redis
def test_a_paused_redis_during_consume_is_a_503_and_the_same_post_then_logs_in(
    make_app: Any, test_idp: TestIdP
) -> None:
    with redis_server() as url:
        app, host = build_host_app(
            make_app, sso_presets(test_idp), MAESTRANO_STORE=url, MAESTRANO_STORE_TIMEOUT=0.3
        )
        failures: list[dict[str, Any]] = []
        signals.login_failed.connect(lambda sender, **kw: failures.append(kw), app, weak=False)
        client = app.test_client()
        authn = start_login(client)
        saml = test_idp.saml_response(_preset(app), authn.id, test_idp.attributes())
        url.process.send_signal(signal.SIGSTOP)
        try:
            # the settlement is sent and may run once Redis resumes: the retry must still work
            response = post_consume(client, saml, authn.relay_state)
        finally:
            url.process.send_signal(signal.SIGCONT)
        assert response.status_code == 503 and response.headers["Retry-After"]
        assert "store_unavailable" in response.get_data(as_text=True)
        assert [f["reason"] for f in failures] == ["store_unavailable"] and host.empty
        assert consume(client, saml, authn.relay_state).headers["Location"] == "/"
        assert client.get("/page").get_data(as_text=True) == "user:usr-1"
        assert host.calls.count("user") == 1


@pytest.mark.redis
def test_a_replay_after_redis_lost_its_data_is_refused_by_the_store_epoch(
    make_app: Any, test_idp: TestIdP, clean_redis: str
) -> None:
    server = redis.Redis.from_url(clean_redis)
    app, host = build_host_app(
        make_app, sso_presets(test_idp, idp_initiated=True), MAESTRANO_STORE=clean_redis
    )
    # the same deployment with the epoch check off (any age accepted): the hole it closes
    unguarded, _ = build_host_app(
        make_app,
        sso_presets(test_idp, idp_initiated=True),
        MAESTRANO_STORE=clean_redis,
        MAESTRANO_SSO_EPOCH_SKEW=10**9,
    )
    saml = test_idp.saml_response(_preset(app), None, test_idp.attributes())
    assert consume(app.test_client(), saml, None).headers["Location"] == "/"
    assert err_of(consume(app.test_client(), saml, None)) == "replay"

    with contextlib.closing(server):
        server.flushall()  # Redis restarted without persistence: the replay cache is gone
        later = time.time() + 60  # the replay comes a minute later, the assertion still valid
        for each in (app, unguarded):
            each.extensions["maestrano"].clock = lambda: later
        assert err_of(consume(app.test_client(), saml, None)) == "stale"
        assert int(server.exists("maestrano:store:epoch")) == 1
        server.flushall()
        replayed = unguarded.test_client()
        assert consume(replayed, saml, None).headers["Location"] == "/"  # without the epoch: replayed
        assert replayed.get("/page").get_data(as_text=True) == "user:usr-1"

        server.flushall()  # a fresh assertion after a restart logs in
        for each in (app, unguarded):
            each.extensions["maestrano"].clock = time.time
        fresh = test_idp.saml_response(_preset(app), None, test_idp.attributes())
        assert consume(app.test_client(), fresh, None).headers["Location"] == "/"
    assert host.calls.count("user") == 2


@pytest.mark.redis
def test_a_login_is_three_round_trips_to_redis(
    make_app: Any, test_idp: TestIdP, clean_redis: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, host = build_host_app(make_app, sso_presets(test_idp), MAESTRANO_STORE=clean_redis)
    connection_class = app.extensions["maestrano"].store.client.connection_pool.connection_class
    trips: list[str] = []
    send = connection_class.send_packed_command

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:  # one send per command or pipeline
        trips.append("sent")
        return send(self, *args, **kwargs)

    for _ in range(2):  # first logins: connected, the script loaded (the steady state: the
        warm = app.test_client()  # store keeps one connection, pipelines take one from the pool)
        first = start_login(warm)
        saml = test_idp.saml_response(_preset(app), first.id, test_idp.attributes())
        consume(warm, saml, first.relay_state)
    client = app.test_client()  # a browser with no other sign-in pending
    monkeypatch.setattr(connection_class, "send_packed_command", counted)
    authn = start_login(client)
    after_init = len(trips)
    saml = test_idp.saml_response(_preset(app), authn.id, test_idp.attributes())
    answer = post_consume(client, saml, authn.relay_state)
    after_consume = len(trips)
    assert follow_finish(client, answer).headers["Location"] == "/"
    assert (after_init, after_consume - after_init, len(trips) - after_consume) == (1, 1, 1)
    assert host.calls.count("user") == 3
