"""A shared store that is down is never a bare 500: every kind of route that touches it answers
503 with ``Retry-After`` and a message naming the shared store, and sign-in routes also send
``login_failed``. The store is a real redis-server, stopped (or paused) for the request."""

from __future__ import annotations

import base64
import json
import signal
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import jsonify

from flask_maestrano import get_state, importer, signals
from tests.support.clock import ClockAhead
from tests.support.redis import RedisServer, redis_server
from tests.support.saml import build_host_app, consume, post_consume, sso_presets, start_login
from tests.support.sync_world import GROUP, World

pytestmark = pytest.mark.redis


@pytest.fixture
def server() -> Iterator[RedisServer]:
    with redis_server() as url:
        yield url


def stop(server: RedisServer) -> None:
    server.process.terminate()
    server.process.wait(timeout=10)


def assert_store_503(response: Any) -> None:
    assert response.status_code == 503, (response.status_code, response.get_data(as_text=True))
    assert response.headers["Retry-After"]
    assert "shared store" in response.get_data(as_text=True)


def _failures(app: Any) -> list[dict[str, Any]]:
    failures: list[dict[str, Any]] = []
    signals.login_failed.connect(lambda sender, **kw: failures.append(kw), app, weak=False)
    return failures


def test_sso_consume_and_finish_with_redis_stopped(make_app: Any, test_idp: Any, server: RedisServer) -> None:
    app, host = build_host_app(make_app, sso_presets(test_idp), MAESTRANO_STORE=server)
    failures = _failures(app)
    client = app.test_client()
    authn = start_login(client)
    saml = test_idp.saml_response(get_state(app).preset(), authn.id, test_idp.attributes())
    stop(server)
    assert_store_503(post_consume(client, saml, authn.relay_state))
    assert_store_503(client.get("/maestrano/auth/saml/finish?token=" + "a" * 43))
    assert [f["reason"] for f in failures] == ["store_unavailable"] * 2 and host.empty


def test_openid_init_with_redis_stopped(make_app: Any, test_idp: Any, server: RedisServer) -> None:
    presets = {"production": {**sso_presets(test_idp)["production"]}}
    presets["production"]["sso"] = {**presets["production"]["sso"], "protocol": "openid"}
    app, _host = build_host_app(make_app, presets, MAESTRANO_STORE=server)
    failures = _failures(app)
    stop(server)
    assert_store_503(app.test_client().get("/maestrano/auth/openid/init"))
    assert [f["reason"] for f in failures] == ["store_unavailable"]


def test_the_session_check_with_redis_paused_or_stopped(
    make_app: Any, test_idp: Any, server: RedisServer
) -> None:
    app, _host = build_host_app(
        make_app, sso_presets(test_idp), MAESTRANO_STORE=server, MAESTRANO_STORE_TIMEOUT=0.3
    )
    client = app.test_client()
    authn = start_login(client)
    consume(
        client,
        test_idp.saml_response(get_state(app).preset(), authn.id, test_idp.attributes()),
        authn.relay_state,
    )
    assert client.get("/page").get_data(as_text=True) == "user:usr-1"
    get_state(app).clock = ClockAhead(600)  # the check is due: it reads the shared breaker
    server.process.send_signal(signal.SIGSTOP)
    try:
        paused = client.get("/page")
    finally:
        server.process.send_signal(signal.SIGCONT)
    assert_store_503(paused)
    assert "text/html" in paused.headers["Content-Type"]
    stop(server)
    assert_store_503(client.get("/page"))


def test_a_job_status_page_and_a_webhook_that_read_import_statuses(
    make_app: Any, test_idp: Any, server: RedisServer
) -> None:
    app, _host = build_host_app(make_app, sso_presets(test_idp), MAESTRANO_STORE=server)
    maestrano = get_state(app).extension

    @app.get("/imports/<group>")
    def import_page(group: str) -> Any:  # the host's status page
        status = importer.read_status(app, "production", group)
        return jsonify(status.to_dict() if status else None)

    @maestrano.on_group_cancelled
    def cancelled(group_id: str, preset: Any) -> None:  # the host looks at the group's import
        importer.read_status(app, preset.name, group_id)

    client = app.test_client()
    assert client.get("/imports/cld-1").status_code == 200
    stop(server)
    assert_store_503(client.get("/imports/cld-1"))
    preset = get_state(app).preset()
    credentials = base64.b64encode(f"{preset.api.id}:{preset.api.key}".encode()).decode()
    response = client.delete(
        "/maestrano/account/groups/cld-1", headers={"Authorization": f"Basic {credentials}"}
    )
    assert_store_503(response)
    assert response.is_json and response.get_json()["reason"] == "store_unavailable"


def test_a_connec_notification_of_a_synchronized_group(
    tmp_path: Any, live_server: Callable[..., Any], server: RedisServer
) -> None:
    world = World(tmp_path, live_server, MAESTRANO_STORE=server)
    try:
        preset = get_state(world.app).preset("sandbox")
        credentials = base64.b64encode(f"{preset.api.id}:{preset.api.key}".encode()).decode()
        body = {
            "people": [{"id": "c0ffee00-0000-0000-0000-000000000001", "group_id": GROUP, "first_name": "Ada"}]
        }
        stop(server)
        response = world.app.test_client().post(
            "/maestrano/connec/notifications",
            data=json.dumps(body),
            content_type="application/json",
            headers={"Authorization": f"Basic {credentials}"},
        )
        assert_store_503(response)  # the platform delivers it again later
    finally:
        world.close()
