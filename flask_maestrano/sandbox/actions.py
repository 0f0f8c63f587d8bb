"""Calls the sandbox makes to a registered app, the way the platform would (PLATFORM.md 4 and 6.4).

Each function takes the sandbox Flask app, performs the HTTP call with the app's HTTP Basic
credentials to ``<app host><configured path>``, records it in the sandbox's call log (shown on the
admin page) and returns a :class:`CallResult`. They work from tests without a request::

    result = cancel_group(sandbox, "app-sandbox", "cld-1")
    assert result.status == 200
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests
from flask import Flask

from .core import database
from .entities import find_entity, render, update_entity

TIMEOUT = 10.0


@dataclass(frozen=True)
class CallResult:
    """What the app answered: ``status`` is None when it could not be reached."""

    app_id: str
    action: str
    method: str
    url: str
    status: int | None
    outcome: str

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def _path(template: str, **values: str) -> str:
    path = template
    # :group_id before :id so the longer placeholder is not cut short
    for name in sorted(values, key=len, reverse=True):
        path = path.replace(f":{name}", quote(values[name], safe=""))
    return path


def _app(sandbox: Flask, app_id: str) -> sqlite3.Row:
    row = database(sandbox).app(app_id)
    if row is None:
        raise LookupError(f"no app {app_id!r} is registered in the sandbox")
    return row


def _call(
    sandbox: Flask, app_row: sqlite3.Row, action: str, method: str, path: str, body: Any = None
) -> CallResult:
    url = app_row["host"] + path
    try:
        response = requests.request(
            method,
            url,
            auth=(app_row["id"], app_row["key"]),
            data=json.dumps(body) if body is not None else None,
            headers={"Content-Type": "application/json", "Accept": "application/json"}
            if body is not None
            else {},
            timeout=TIMEOUT,
        )
    except requests.RequestException as exc:
        result = CallResult(app_row["id"], action, method, url, None, f"unreachable ({type(exc).__name__})")
    else:
        result = CallResult(app_row["id"], action, method, url, response.status_code, response.text[:200])
    database(sandbox).log_call(result.app_id, action, method, url, result.status, result.outcome)
    return result


def cancel_group(sandbox: Flask, app_id: str, group_uid: str) -> CallResult:
    """The company cancelled the app: ``DELETE`` the group webhook, then detach the company.

    Like on the platform, the app stays cancelled for that company (its members cannot launch
    it) until the company adds it again, and the app's recurring bills for it end.
    """
    app_row = _app(sandbox, app_id)
    result = _call(sandbox, app_row, "cancel company", "DELETE", _path(app_row["group_path"], id=group_uid))
    database(sandbox).cancel_app(app_id, group_uid)
    return result


def remove_member(sandbox: Flask, app_id: str, group_uid: str, user_uid: str) -> CallResult:
    """A user left the company: remove the membership and ``DELETE`` the group-user webhook."""
    app_row = _app(sandbox, app_id)
    database(sandbox).remove_membership(group_uid, user_uid)
    path = _path(app_row["group_user_path"], group_id=group_uid, id=user_uid)
    return _call(sandbox, app_row, "remove member", "DELETE", path)


def push_notification(
    sandbox: Flask, app_id: str, group_uid: str, collection: str, entity_id: str
) -> CallResult:
    """``POST`` one record as a Connec! notification ``{collection: [entity]}`` to the app."""
    app_row = _app(sandbox, app_id)
    with database(sandbox).connect() as conn:
        row = find_entity(conn, group_uid, collection, entity_id)
    if row is None:
        raise LookupError(f"no {collection} record {entity_id!r} in {group_uid}")
    return _notify(sandbox, app_row, collection, row)


def _notify(sandbox: Flask, app_row: sqlite3.Row, collection: str, row: sqlite3.Row) -> CallResult:
    body = {collection: [render(row, external=bool(app_row["external_ids"]))]}
    return _call(sandbox, app_row, f"notify {collection}", "POST", app_row["notification_path"], body)


def notify_apps(
    sandbox: Flask, group_uid: str, collection: str, row: sqlite3.Row, *, exclude: str | None = None
) -> list[CallResult]:
    """Notify every app of the company except ``exclude`` (the app that made the change)."""
    db = database(sandbox)
    results = []
    for app_id in db.group_app_ids(group_uid):
        if app_id == exclude:
            continue
        app_row = db.app(app_id)
        if app_row is not None:
            results.append(_notify(sandbox, app_row, collection, row))
    return results


def edit_entity(
    sandbox: Flask, group_uid: str, collection: str, entity_id: str, changes: dict[str, Any]
) -> list[CallResult]:
    """Change a record as another app (channel) would, and notify every app of the company."""
    with database(sandbox).connect() as conn:
        row = find_entity(conn, group_uid, collection, entity_id)
        if row is None:
            raise LookupError(f"no {collection} record {entity_id!r} in {group_uid}")
        update_entity(conn, row, changes, [])
        fresh = find_entity(conn, group_uid, collection, entity_id)
    assert fresh is not None
    return notify_apps(sandbox, group_uid, collection, fresh)


def _sync_base(app_row: sqlite3.Row) -> str:
    # the developer platform registers /maestrano/<marketplace>/synchronizations (SYNC.md 1.6)
    return f"/maestrano/{quote(app_row['marketplace'], safe='')}/synchronizations"


def synchronize(sandbox: Flask, app_id: str, group_uid: str, *, full: bool = False) -> CallResult:
    """The marketplace's "Synchronize" button: ``POST`` the app's synchronization start path
    with ``{"group_id": ..., "opts": {"full_sync": ...}}``."""
    app_row = _app(sandbox, app_id)
    body = {"group_id": group_uid, "opts": {"full_sync": full}}
    return _call(sandbox, app_row, "synchronize", "POST", _sync_base(app_row), body)


def sync_status(sandbox: Flask, app_id: str, group_uid: str) -> CallResult:
    """``GET`` the app's synchronization status of the company (the answer is in ``outcome``)."""
    app_row = _app(sandbox, app_id)
    path = f"{_sync_base(app_row)}/{quote(group_uid, safe='')}"
    return _call(sandbox, app_row, "sync status", "GET", path)
