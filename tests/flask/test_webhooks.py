"""Account webhooks over real HTTP: group cancellation and member removal (PLATFORM.md 4).

The app is served on 127.0.0.1 and called with ``requests``, as the platform calls it.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from flask import Flask

from flask_maestrano import Maestrano, Preset, signals
from tests.support.webhooks import DOTNET, PROD, UAT, Recorder, presets


class HostDb:
    """The host application's tables in a real SQLite file."""

    def __init__(self, path: str) -> None:
        self.conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.conn.executescript(
            "CREATE TABLE groups (uid TEXT PRIMARY KEY, active INTEGER NOT NULL);"
            "CREATE TABLE members (group_uid TEXT, user_uid TEXT, PRIMARY KEY (group_uid, user_uid));"
        )

    def rows(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        return self.conn.execute(sql, args).fetchall()


@pytest.fixture
def host(
    make_app: Callable[..., Flask], tmp_path: Any
) -> Iterator[tuple[Flask, Maestrano, HostDb, Recorder]]:
    """An app with three presets whose handlers act on a SQLite database, idempotently."""
    maestrano = Maestrano()
    db = HostDb(str(tmp_path / "host.db"))
    db.conn.executemany("INSERT INTO groups VALUES (?, 1)", [("cld-1",), ("cld-2",)])
    db.conn.executemany(
        "INSERT INTO members VALUES (?, ?)",
        [("cld-1", "usr-1"), ("cld-1", "usr-2"), ("cld-2", "usr-1.cld-2")],
    )

    @maestrano.on_group_cancelled
    def cancel(group_id: str, preset: Preset) -> None:
        db.conn.execute("UPDATE groups SET active = 0 WHERE uid = ?", (group_id,))

    @maestrano.on_member_removed
    def remove(group_id: str, user_id: str, preset: Preset) -> None:
        db.conn.execute("DELETE FROM members WHERE group_uid = ? AND user_uid = ?", (group_id, user_id))

    app = make_app(presets=presets(), maestrano=maestrano)
    recorder = Recorder(app)
    yield app, maestrano, db, recorder
    recorder.close()
    db.conn.close()


@pytest.fixture
def served(host: tuple[Flask, Maestrano, HostDb, Recorder], live_server: Any) -> Any:
    app, _maestrano, db, recorder = host
    server = live_server(app)
    server.db, server.recorder, server.app = db, recorder, app
    return server


def active(db: HostDb, group: str) -> int:
    return int(db.rows("SELECT active FROM groups WHERE uid = ?", group)[0][0])


# -- group cancellation ----------------------------------------------------------------


def test_group_cancellation_on_default_path_ends_the_group(served: Any) -> None:
    r = requests.delete(f"{served.url}/maestrano/account/groups/cld-1", auth=PROD, timeout=5)
    assert r.status_code == 200
    assert r.json() == {"success": True}
    assert active(served.db, "cld-1") == 0
    assert active(served.db, "cld-2") == 1
    (call,) = served.recorder.named("group_cancelled")
    assert call["group_id"] == "cld-1"
    assert call["preset"].name == "production"


def test_group_cancellation_with_preset_segment_uses_that_preset(served: Any) -> None:
    r = requests.delete(f"{served.url}/maestrano/account/groups/cld-2/uat", auth=UAT, timeout=5)
    assert r.status_code == 200, r.text
    assert active(served.db, "cld-2") == 0
    assert served.recorder.named("group_cancelled")[0]["preset"].name == "uat"


def test_group_cancellation_on_trailing_marketplace_path(served: Any) -> None:
    r = requests.delete(f"{served.url}/maestrano/account/groups/cld-1/maestrano-uat", auth=UAT, timeout=5)
    assert r.status_code == 200, r.text
    assert active(served.db, "cld-1") == 0
    assert served.recorder.named("group_cancelled")[0]["preset"].name == "uat"


def test_group_cancellation_on_query_parameter_path(served: Any) -> None:
    r = requests.delete(
        f"{served.url}/maestrano/groupdeleted",
        params={"groupid": "cld-2", "marketplace": "dotnet"},
        auth=DOTNET,
        timeout=5,
    )
    assert r.status_code == 200, r.text
    assert active(served.db, "cld-2") == 0
    call = served.recorder.named("group_cancelled")[0]
    assert (call["group_id"], call["preset"].name) == ("cld-2", "dotnet")


def test_group_cancellation_repeated_is_harmless(served: Any) -> None:
    for _ in range(2):
        r = requests.delete(f"{served.url}/maestrano/account/groups/cld-1", auth=PROD, timeout=5)
        assert r.status_code == 200
    assert active(served.db, "cld-1") == 0
    assert len(served.recorder.named("group_cancelled")) == 2


# -- member removal --------------------------------------------------------------------


def members(db: HostDb) -> set[tuple[str, str]]:
    return set(db.rows("SELECT group_uid, user_uid FROM members"))  # type: ignore[arg-type]


def test_member_removal_in_real_mode_passes_the_real_uid(served: Any) -> None:
    r = requests.delete(f"{served.url}/maestrano/account/groups/cld-1/users/usr-1", auth=PROD, timeout=5)
    assert r.status_code == 200
    assert r.json() == {"success": True}
    assert members(served.db) == {("cld-1", "usr-2"), ("cld-2", "usr-1.cld-2")}
    (call,) = served.recorder.named("member_removed")
    assert (call["group_id"], call["user_id"], call["real_user_id"]) == ("cld-1", "usr-1", "usr-1")


def test_member_removal_in_real_mode_unmasks_an_already_virtual_uid(served: Any) -> None:
    r = requests.delete(
        f"{served.url}/maestrano/account/groups/cld-1/users/usr-2.cld-1", auth=PROD, timeout=5
    )
    assert r.status_code == 200
    assert ("cld-1", "usr-2") not in members(served.db)
    assert served.recorder.named("member_removed")[0]["user_id"] == "usr-2"


def test_member_removal_in_virtual_mode_masks_the_uid_with_the_group(served: Any) -> None:
    r = requests.delete(
        f"{served.url}/maestrano/account/groups/cld-2/users/usr-1/maestrano-uat", auth=UAT, timeout=5
    )
    assert r.status_code == 200, r.text
    assert members(served.db) == {("cld-1", "usr-1"), ("cld-1", "usr-2")}
    call = served.recorder.named("member_removed")[0]
    assert (call["user_id"], call["real_user_id"], call["preset"].name) == ("usr-1.cld-2", "usr-1", "uat")


def test_member_removal_with_preset_segment(served: Any) -> None:
    r = requests.delete(f"{served.url}/maestrano/account/groups/cld-2/users/usr-1/uat", auth=UAT, timeout=5)
    assert r.status_code == 200, r.text
    assert served.recorder.named("member_removed")[0]["user_id"] == "usr-1.cld-2"


def test_member_removal_on_query_parameter_path(served: Any) -> None:
    r = requests.delete(
        f"{served.url}/maestrano/userdeleted",
        params={"groupid": "cld-1", "userid": "usr-2", "marketplace": "dotnet"},
        auth=DOTNET,
        timeout=5,
    )
    assert r.status_code == 200, r.text
    assert ("cld-1", "usr-2") not in members(served.db)
    call = served.recorder.named("member_removed")[0]
    assert (call["group_id"], call["user_id"], call["preset"].name) == ("cld-1", "usr-2", "dotnet")


def test_member_removal_repeated_is_harmless(served: Any) -> None:
    for _ in range(2):
        r = requests.delete(f"{served.url}/maestrano/account/groups/cld-1/users/usr-1", auth=PROD, timeout=5)
        assert r.status_code == 200
    assert members(served.db) == {("cld-1", "usr-2"), ("cld-2", "usr-1.cld-2")}


# -- authentication ---------------------------------------------------------------------

ROUTES = [
    "/maestrano/account/groups/cld-1",
    "/maestrano/account/groups/cld-1/uat",
    "/maestrano/account/groups/cld-1/maestrano-uat",
    "/maestrano/account/groups/cld-1/users/usr-1",
    "/maestrano/account/groups/cld-1/users/usr-1/uat",
    "/maestrano/account/groups/cld-1/users/usr-1/maestrano-uat",
    "/maestrano/groupdeleted?groupid=cld-1&marketplace=dotnet",
]


def assert_refused(r: requests.Response) -> None:
    assert r.status_code == 401
    assert r.json() == {"error": "Invalid credentials"}
    assert r.headers["WWW-Authenticate"].startswith("Basic")


@pytest.mark.parametrize("path", ROUTES)
def test_webhook_without_credentials_is_refused(served: Any, path: str) -> None:
    assert_refused(requests.delete(served.url + path, timeout=5))
    assert served.recorder.calls == []
    assert active(served.db, "cld-1") == 1


@pytest.mark.parametrize("path", ROUTES)
def test_webhook_with_wrong_key_is_refused(served: Any, path: str) -> None:
    for auth in [(PROD[0], "wrong"), (UAT[0], "wrong"), (DOTNET[0], "wrong"), ("nobody", "x")]:
        assert_refused(requests.delete(served.url + path, auth=auth, timeout=5))
    assert served.recorder.calls == []
    assert len(members(served.db)) == 3


@pytest.mark.parametrize(
    ("path", "auth"),
    [
        # another preset's credentials on a preset-segment route
        ("/maestrano/account/groups/cld-1/uat", PROD),
        ("/maestrano/account/groups/cld-1/production", UAT),
        ("/maestrano/account/groups/cld-1/users/usr-1/uat", PROD),
        # on a preset's own configured path
        ("/maestrano/account/groups/cld-1/maestrano-uat", PROD),
        ("/maestrano/account/groups/cld-1/maestrano-uat", DOTNET),
        ("/maestrano/account/groups/cld-1/users/usr-1/maestrano-uat", PROD),
        ("/maestrano/groupdeleted?groupid=cld-1&marketplace=dotnet", UAT),
        ("/maestrano/userdeleted?groupid=cld-1&userid=usr-1&marketplace=dotnet", PROD),
        # on the default path, which only "production" is configured with
        ("/maestrano/account/groups/cld-1", UAT),
        ("/maestrano/account/groups/cld-1/users/usr-1", DOTNET),
    ],
)
def test_webhook_with_another_presets_credentials_is_refused(
    served: Any, path: str, auth: tuple[str, str]
) -> None:
    assert_refused(requests.delete(served.url + path, auth=auth, timeout=5))
    assert served.recorder.calls == []
    assert active(served.db, "cld-1") == 1
    assert len(members(served.db)) == 3


def test_webhook_for_unknown_preset_segment_is_refused(served: Any) -> None:
    assert_refused(requests.delete(f"{served.url}/maestrano/account/groups/cld-1/nope", auth=PROD, timeout=5))


def test_webhook_on_query_path_for_another_marketplace_is_refused(served: Any) -> None:
    r = requests.delete(
        f"{served.url}/maestrano/groupdeleted?groupid=cld-1&marketplace=other", auth=DOTNET, timeout=5
    )
    assert_refused(r)
    assert served.recorder.calls == []


# -- errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/maestrano/account/groups/cld-1"),
        ("POST", "/maestrano/account/groups/cld-1"),
        ("PUT", "/maestrano/account/groups/cld-1/users/usr-1"),
        ("GET", "/maestrano/account/groups/cld-1/maestrano-uat"),
    ],
)
def test_webhook_with_wrong_method_answers_405(served: Any, method: str, path: str) -> None:
    r = requests.request(method, served.url + path, auth=PROD, timeout=5)
    assert r.status_code == 405
    assert "DELETE" in r.headers["Allow"]
    assert served.recorder.calls == []


def test_failing_handler_answers_500_and_is_logged_without_secrets(
    make_app: Callable[..., Flask], live_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    maestrano = Maestrano()

    @maestrano.on_group_cancelled
    def cancel(group_id: str, preset: Preset) -> None:
        raise RuntimeError("database is down")

    app = make_app(presets=presets(), maestrano=maestrano)
    recorder = Recorder(app)
    try:
        server = live_server(app)
        with caplog.at_level(logging.ERROR, logger="flask_maestrano"):
            r = requests.delete(f"{server.url}/maestrano/account/groups/cld-7", auth=PROD, timeout=5)
        assert r.status_code == 500
        assert "cld-7" in r.json()["error"]
        assert recorder.calls == []  # the signal is not sent after a failed handler
        (record,) = [rec for rec in caplog.records if rec.name == "flask_maestrano"]
        assert "cld-7" in record.getMessage()
        assert "production" in record.getMessage()
        logged = caplog.text
        assert PROD[1] not in logged
    finally:
        recorder.close()


def test_failing_signal_receiver_answers_500(served: Any) -> None:
    def broken(sender: Any, **kwargs: Any) -> None:
        raise ValueError("receiver bug")

    with signals.member_removed.connected_to(broken, sender=served.app):
        r = requests.delete(f"{served.url}/maestrano/account/groups/cld-1/users/usr-1", auth=PROD, timeout=5)
    assert r.status_code == 500
    assert r.json()["error"].startswith("Could not process member removal")
    # the platform delivers again; once the receiver works the outcome is the same
    r = requests.delete(f"{served.url}/maestrano/account/groups/cld-1/users/usr-1", auth=PROD, timeout=5)
    assert r.status_code == 200
    assert members(served.db) == {("cld-1", "usr-2"), ("cld-2", "usr-1.cld-2")}


@pytest.mark.parametrize("limit", [100, "100"])  # a string from an environment variable too
def test_webhook_body_over_max_size_answers_413(
    make_app: Callable[..., Flask], live_server: Any, limit: Any
) -> None:
    app = make_app(presets=presets(), MAESTRANO_WEBHOOK_MAX_SIZE=limit)
    server = live_server(app)
    r = requests.delete(f"{server.url}/maestrano/account/groups/cld-1", data=b"x" * 500, auth=PROD, timeout=5)
    assert r.status_code == 413
    assert "MAESTRANO_WEBHOOK_MAX_SIZE" in r.json()["error"]


def test_webhooks_work_without_any_handler(make_app: Callable[..., Flask], live_server: Any) -> None:
    server = live_server(make_app(presets=presets()))
    r = requests.delete(f"{server.url}/maestrano/account/groups/cld-1/users/usr-1", auth=PROD, timeout=5)
    assert r.status_code == 200
    assert r.json() == {"success": True}


# -- signals carry exactly the documented arguments ------------------------------------


def test_webhook_signals_carry_exactly_the_documented_arguments(served: Any) -> None:
    requests.delete(f"{served.url}/maestrano/account/groups/cld-1", auth=PROD, timeout=5)
    requests.delete(f"{served.url}/maestrano/account/groups/cld-1/users/usr-1", auth=PROD, timeout=5)
    (cancel_name, cancel_sender, cancel_kwargs), (remove_name, remove_sender, remove_kwargs) = (
        served.recorder.calls
    )
    assert (cancel_name, remove_name) == ("group_cancelled", "member_removed")
    assert cancel_sender is served.app and remove_sender is served.app
    assert set(cancel_kwargs) == {"group_id", "preset"}
    assert set(remove_kwargs) == {"group_id", "user_id", "real_user_id", "preset"}
    assert isinstance(cancel_kwargs["preset"], Preset)
    assert isinstance(remove_kwargs["preset"], Preset)


# -- CSRF and the metadata endpoint -------------------------------------------------------


def test_webhooks_are_csrf_exempt_with_flask_wtf(tmp_path: Any, live_server: Any) -> None:
    from flask_wtf.csrf import CSRFProtect

    app = Flask("csrfapp", instance_path=str(tmp_path / "instance"))
    app.config.update(SECRET_KEY="test-secret", MAESTRANO_PRESETS=presets())

    @app.post("/form")
    def form() -> str:
        return "ok"

    CSRFProtect(app)
    Maestrano(app)
    server = live_server(app)
    assert requests.post(f"{server.url}/form", timeout=5).status_code == 400  # CSRF is on
    r = requests.delete(f"{server.url}/maestrano/account/groups/cld-1", auth=PROD, timeout=5)
    assert r.status_code == 200
    r = requests.post(
        f"{server.url}/maestrano/connec/notifications",
        json={"people": [{"id": "p1", "group_id": "cld-1"}]},
        auth=PROD,
        timeout=5,
    )
    assert r.status_code == 200


def test_metadata_endpoint_still_answers_with_webhooks_registered(served: Any) -> None:
    r = requests.get(f"{served.url}/maestrano/metadata", auth=UAT, timeout=5)
    assert r.status_code == 200
    assert UAT[1] not in r.text
    assert "maestrano-uat" in r.text
    assert requests.get(f"{served.url}/maestrano/metadata", timeout=5).status_code == 401
