"""The platform's synchronization endpoints over real HTTP (SYNC.md 1): shapes, credentials,
unknown groups, strict options, toggling, and start running the engine."""

from __future__ import annotations

import re
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import pytest
import requests
from click.testing import CliRunner
from sqlalchemy import func, select

from flask_maestrano import get_state, syncing
from flask_maestrano.sync import SUCCESS
from tests.support.sync_world import GROUP, Company, World, db

BASE = "/maestrano/sandbox/synchronizations"
NOT_FOUND = {"errors": [{"message": "Organization not found", "code": 404}]}
AUTH = ("app-sync", "sync-key")


def call(world: World, method: str, path: str, **kwargs: Any) -> requests.Response:
    kwargs.setdefault("auth", AUTH)
    return requests.request(method, world.base + path, timeout=30, **kwargs)


def wait_for_run(world: World) -> None:
    future = get_state(world.app).sync.futures[("sandbox", GROUP)]
    assert isinstance(future, Future)
    future.result(timeout=60)


def test_status_answers_the_platform_shape(world: World) -> None:
    assert call(world, "GET", f"{BASE}/{GROUP}").json() == NOT_FOUND  # never synchronized: unknown
    assert call(world, "GET", f"{BASE}/{GROUP}").status_code == 404
    assert world.run() is not None
    answer = call(world, "GET", f"{BASE}/{GROUP}")
    assert answer.status_code == 200
    body = answer.json()
    assert set(body) == {"group_id", "sync_enabled", "status", "message", "updated_at"}
    assert body["group_id"] == GROUP and body["sync_enabled"] is True
    assert body["status"] == SUCCESS and body["message"] is None
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", body["updated_at"])


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("GET", f"{BASE}/{GROUP}", {}),
        ("POST", BASE, {"json": {"group_id": GROUP}}),
        ("PUT", f"{BASE}/toggle_sync", {"data": {"group_id": GROUP}}),
    ],
)
def test_another_presets_credentials_are_refused(world: World, method: str, path: str, kwargs: Any) -> None:
    assert world.run() is not None
    for auth in (("app-other", "other-key"), ("app-sync", "wrong"), None):
        answer = call(world, method, path, auth=auth, **kwargs)
        assert answer.status_code == 401
        assert answer.json() == {"error": "Invalid credentials"}
    assert world.store.is_enabled("sandbox", GROUP) is True  # the toggle did nothing


def test_unknown_groups_are_404(world: World) -> None:
    assert world.run() is not None
    assert call(world, "GET", f"{BASE}/cld-999").json() == NOT_FOUND
    for method, path in (("POST", BASE), ("PUT", f"{BASE}/toggle_sync")):
        answer = call(world, method, path, json={"group_id": "cld-999"})
        assert (answer.status_code, answer.json()) == (404, NOT_FOUND)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"json": {"opts": {}}}, "group_id is required"),
        ({"json": [GROUP]}, "the body must be a JSON object"),
        ({"json": {"group_id": GROUP, "opts": []}}, "opts must be an object"),
        (
            {"json": {"group_id": GROUP, "opts": {"full_sync": "yes"}}},
            "opts[full_sync] must be true or false",
        ),
        ({"data": {"group_id": GROUP, "opts[full_sync]": "maybe"}}, "opts[full_sync] must be true or false"),
        (
            {"data": {"group_id": GROUP, "opts[connec_preemption]": "2"}},
            "opts[connec_preemption] must be true or false",
        ),
        (
            {"data": {"group_id": GROUP, "opts[only_entities]": "people,tax_codes"}},
            "no mapping for 'tax_codes'",
        ),
        ({"data": {"group_id": GROUP, "opts[$filter]": "x"}}, "unknown option opts[$filter]"),
        ({"data": {"group_id": GROUP, "extra": "1"}}, "unknown parameter 'extra'"),
        ({"data": "garbage", "headers": {"Content-Type": "text/plain"}}, "send a JSON object or a form"),
        (
            {
                "data": f'{{"group_id": "{GROUP}", "opts": {"[" * 20000}{"]" * 20000}}}',
                "headers": {"Content-Type": "application/json"},
            },
            "the JSON body is nested too deeply",
        ),
    ],
)
def test_malformed_starts_are_400_naming_the_problem(world: World, kwargs: Any, message: str) -> None:
    assert world.run() is not None
    answer = call(world, "POST", BASE, **kwargs)
    assert answer.status_code == 400
    error = answer.json()["errors"][0]
    assert error["code"] == 400 and message in error["message"]
    assert len(world.store.runs("sandbox", GROUP)) == 1  # nothing started


def test_start_queues_a_run_with_form_or_json_options(world: World) -> None:
    assert world.run() is not None
    db.session.execute(Company.__table__.delete())  # type: ignore[attr-defined]
    db.session.commit()
    form = {"group_id": GROUP, "opts[full_sync]": "true", "opts[only_entities]": "organizations"}
    answer = call(world, "POST", BASE, data=form)
    assert answer.status_code == 202
    assert answer.json()["status"] == "ENQUEUED" and answer.json()["sync_enabled"] is True
    wait_for_run(world)
    latest = world.store.runs("sandbox", GROUP)[0]
    assert latest.status == SUCCESS and latest.partial and set(latest.counts) == {"organizations"}
    assert call(world, "GET", f"{BASE}/{GROUP}").json()["status"] == SUCCESS

    answer = call(world, "POST", BASE, json={"group_id": GROUP, "opts": {"full_sync": False}})
    assert answer.status_code == 202
    wait_for_run(world)
    assert world.store.runs("sandbox", GROUP)[0].status == SUCCESS


def test_toggle_switches_sync_off_and_start_then_queues_nothing(world: World) -> None:
    assert world.run() is not None
    answer = call(world, "PUT", f"{BASE}/toggle_sync", data={"group_id": GROUP})
    assert answer.status_code == 200
    assert answer.json()["sync_enabled"] is False and answer.json()["status"] == "DISABLED"
    started = call(world, "POST", BASE, json={"group_id": GROUP})
    assert started.status_code == 200 and started.json()["status"] == "DISABLED"
    assert get_state(world.app).sync.futures == {}
    assert world.run() is None  # nothing runs while it is off
    answer = call(world, "PUT", f"{BASE}/toggle_sync", json={"group_id": GROUP})
    assert answer.json()["sync_enabled"] is True and answer.json()["status"] == SUCCESS


def test_cli_synchronizes_a_group(world: World) -> None:
    runner = CliRunner()
    result = runner.invoke(world.app.cli, ["maestrano", "sync", GROUP, "--only", "organizations"])
    assert result.exit_code == 0, result.output
    assert "organizations: pulled 3, created 3" in result.output
    assert "SUCCESS" in result.output
    assert db.session.scalar(select(func.count()).select_from(Company)) == 3
    bad = runner.invoke(world.app.cli, ["maestrano", "sync", GROUP, "--only", "tax_codes"])
    assert bad.exit_code != 0 and "no mapping for tax_codes" in bad.output


def test_the_sandbox_synchronize_and_status_buttons_call_the_app(world: World) -> None:
    assert world.run() is not None
    browser = requests.Session()
    page = browser.get(f"{world.base}/sandbox/admin/groups/{GROUP}", timeout=30)
    assert "Synchronize" in page.text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    url = f"{world.base}/sandbox/admin/groups/{GROUP}/apps/app-sync/sync"
    started = browser.post(url, data={"csrf_token": token.group(1), "action": "start"}, timeout=30)
    assert "synchronize: POST" in started.text and "-&gt; 202" in started.text
    assert "ENQUEUED" in started.text
    wait_for_run(world)
    shown = browser.post(url, data={"csrf_token": token.group(1), "action": "status"}, timeout=30)
    assert "sync status: GET" in shown.text and "SUCCESS" in shown.text
    refused = browser.post(url, data={"action": "start"}, timeout=30)
    assert refused.status_code == 400  # no form token: not from the sandbox page


def test_presets_sharing_developer_platform_paths_answer_with_their_own_credentials(
    make_app: Callable[..., Any], tmp_path: Any
) -> None:
    from sqlalchemy import create_engine

    from flask_maestrano import syncing
    from flask_maestrano.contrib.sqlalchemy import SqlAlchemySyncStore
    from flask_maestrano.sync import Mapping
    from tests.support.presets import preset_data

    shared = {
        "synchronization_start_path": "/maestrano/synchronizations",
        "synchronization_toggle_path": "/maestrano/synchronizations/toggle_sync",
        "synchronization_status_path": "/maestrano/synchronizations/:cld-uid",
    }
    app = make_app(
        presets={
            "acme": preset_data(app=shared, api={"id": "app-acme", "key": "acme-key"}),
            "globex": preset_data(app=shared, api={"id": "app-globex", "key": "globex-key"}),
        },
        MAESTRANO_DEFAULT_PRESET="acme",
    )

    class People(Mapping):
        collection = "people"

    store = SqlAlchemySyncStore(create_engine(f"sqlite:///{tmp_path / 'maps.db'}"))
    store.create_tables()
    syncing.configure(app, store, [People()])
    store.set_enabled("globex", "cld-7", False)
    client = app.test_client()
    acme = client.get("/maestrano/synchronizations/cld-7", auth=("app-acme", "acme-key"))
    assert (acme.status_code, acme.get_json()) == (404, NOT_FOUND)  # cld-7 is globex's company
    globex = client.get("/maestrano/synchronizations/cld-7", auth=("app-globex", "globex-key"))
    assert globex.status_code == 200
    assert globex.get_json() == {"group_id": "cld-7", "sync_enabled": False, "status": "DISABLED"}
    toggled = client.put(
        "/maestrano/synchronizations/toggle_sync",
        data={"group_id": "cld-7"},
        auth=("app-globex", "globex-key"),
    )
    assert toggled.get_json()["sync_enabled"] is True and toggled.get_json()["status"] is None
    assert client.get("/maestrano/synchronizations/cld-7", auth=("app-x", "nope")).status_code == 401
    rules = {r.rule for r in app.url_map.iter_rules() if r.endpoint.startswith("maestrano_sync_")}
    assert rules == {
        "/maestrano/synchronizations",
        "/maestrano/synchronizations/toggle_sync",
        "/maestrano/synchronizations/<group_id>",
    }


def test_a_start_while_notifications_are_applied_is_queued_and_runs_after_them(world: World) -> None:
    """A short job (stored notifications, the outbox) holding the group's lock is no run in
    progress: the platform's start is queued (202), not dropped as RUNNING, and its run waits
    for the job instead of skipping; a real run holding the lock still answers RUNNING."""
    assert world.run() is not None
    before = len(world.store.runs("sandbox", GROUP))
    app = world.app
    with app.app_context(), syncing.group_lock(app, "sandbox", GROUP, short=True) as lease:
        assert lease is not None
        answer = call(world, "POST", BASE, json={"group_id": GROUP})
        assert (answer.status_code, answer.json()["status"]) == (202, "ENQUEUED")
    wait_for_run(world)
    runs = world.store.runs("sandbox", GROUP)
    assert len(runs) == before + 1 and runs[0].status == SUCCESS

    with app.app_context(), syncing.group_lock(app, "sandbox", GROUP) as lease:  # a run in progress
        assert lease is not None
        answer = call(world, "POST", BASE, json={"group_id": GROUP})
        assert (answer.status_code, answer.json()["status"]) == (200, "RUNNING")
    assert len(world.store.runs("sandbox", GROUP)) == before + 1
