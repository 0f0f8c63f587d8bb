"""The sandbox admin pages: state at a glance and the buttons that act like the platform."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Flask, current_app, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as WerkzeugResponse

from .actions import (
    CallResult,
    cancel_group,
    edit_entity,
    push_notification,
    remove_member,
    sync_status,
    synchronize,
)
from .core import base_url, certificate, check_csrf, database
from .db import ROLES, iso, utcnow
from .devplatform import fingerprint
from .entities import find_entity, render
from .idp import recheck_seconds
from .openid import OPENID_INIT_PATH, protocol

bp = Blueprint("admin", __name__)


def sandbox() -> Flask:
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    return app


def report(results: list[CallResult]) -> None:
    if not results:
        flash("No app of this company to call.", "info")
    for result in results:
        status = result.status if result.status is not None else "no answer"
        level = "ok" if result.ok else "error"
        flash(f"{result.action}: {result.method} {result.url} -> {status} ({result.app_id})", level)


def back() -> WerkzeugResponse:
    return redirect(url_for("admin.index"))


@bp.before_request
def csrf() -> None:
    if request.method == "POST":
        check_csrf()


@bp.get("/")
def index() -> str:
    db = database()
    with db.connect() as conn:
        bills = conn.execute("SELECT * FROM bills ORDER BY n DESC").fetchall()
        recurring = conn.execute("SELECT * FROM recurring_bills ORDER BY n DESC").fetchall()
    cert = certificate()
    return render_template(
        "sandbox/admin.html",
        base=base_url(),
        apps=db.apps(),
        app_groups={row["id"]: db.app_group_uids(row["id"]) for row in db.apps()},
        protocols={row["id"]: protocol(db, row["id"]) for row in db.apps()},
        openid_init_path=OPENID_INIT_PATH,
        users=db.users(),
        groups=db.groups(),
        memberships=db.memberships(),
        bills=bills,
        recurring_bills=recurring,
        calls=db.calls(),
        roles=ROLES,
        fingerprint=fingerprint(cert),
    )


@bp.post("/admin/users")
def create_user() -> WerkzeugResponse:
    form = request.form
    name, surname, email = (form.get(k, "").strip() for k in ("name", "surname", "email"))
    if not name or not surname or "@" not in email:
        flash("A user needs a first name, a last name and an email address.", "error")
        return back()
    uid = database().create_user(
        name=name, surname=surname, email=email, country=(form.get("country") or "US").strip().upper()[:2]
    )
    flash(f"Created user {uid}.", "ok")
    return back()


@bp.post("/admin/groups")
def create_group() -> WerkzeugResponse:
    name = request.form.get("name", "").strip()
    if not name:
        flash("A company needs a name.", "error")
        return back()
    uid = database().create_group(name=name, currency=(request.form.get("currency") or "USD").upper()[:3])
    flash(f"Created company {uid} with seed Connec! data.", "ok")
    return back()


@bp.post("/admin/memberships")
def add_membership() -> WerkzeugResponse:
    db = database()
    group_uid, user_uid, role = (request.form.get(k, "") for k in ("group", "user", "role"))
    if db.group(group_uid) is None or db.user(user_uid) is None or role not in ROLES:
        flash("Pick a company, a user and a role.", "error")
        return back()
    db.set_membership(group_uid, user_uid, role)
    flash(f"{user_uid} is now {role} of {group_uid}.", "ok")
    return back()


@bp.post("/admin/memberships/remove")
def remove_membership() -> WerkzeugResponse:
    db = database()
    group_uid, user_uid = request.form.get("group", ""), request.form.get("user", "")
    if db.membership(group_uid, user_uid) is None:
        flash("No such membership.", "error")
        return back()
    results = [
        remove_member(sandbox(), app_id, group_uid, user_uid) for app_id in db.group_app_ids(group_uid)
    ]
    db.remove_membership(group_uid, user_uid)
    flash(f"Removed {user_uid} from {group_uid}.", "ok")
    report(results)
    return back()


@bp.post("/admin/attach")
def attach() -> WerkzeugResponse:
    db = database()
    app_id, group_uid = request.form.get("app", ""), request.form.get("group", "")
    if db.app(app_id) is None or db.group(group_uid) is None:
        flash("Pick an app and a company.", "error")
        return back()
    cancelled = db.cancelled(app_id, group_uid)
    db.attach(app_id, group_uid)
    flash(f"{group_uid} now uses {app_id}{' again' if cancelled else ''}.", "ok")
    return back()


@bp.post("/admin/groups/<group_uid>/cancel")
def cancel(group_uid: str) -> WerkzeugResponse:
    app_id = request.form.get("app", "")
    if app_id not in database().group_app_ids(group_uid):
        flash(f"{group_uid} does not use {app_id or 'that app'}.", "error")
        return back()
    report([cancel_group(sandbox(), app_id, group_uid)])
    return back()


@bp.post("/admin/users/<user_uid>/end-session")
def end_session(user_uid: str) -> WerkzeugResponse:
    if database().user(user_uid) is None:
        flash(f"No user {user_uid}.", "error")
        return back()
    database().end_session(user_uid)
    flash(
        f"Ended the marketplace session of {user_uid}: apps check again within {recheck_seconds():g} s "
        "and then end their sessions; the next login asks to sign in again.",
        "ok",
    )
    return back()


@bp.post("/admin/bills/<bill_id>/invoice")
def invoice(bill_id: str) -> WerkzeugResponse:
    with database().connect() as conn:
        changed = conn.execute(
            "UPDATE bills SET status = 'invoiced', updated_at = ? WHERE id = ? AND status = 'submitted'",
            (iso(utcnow()), bill_id),
        ).rowcount
    flash(
        f"{bill_id} invoiced." if changed else f"{bill_id} is not a submitted bill.",
        "ok" if changed else "error",
    )
    return back()


@bp.get("/admin/groups/<group_uid>")
def group_data(group_uid: str) -> Any:
    db = database()
    group = db.group(group_uid)
    if group is None:
        return render_template("sandbox/message.html", title="Not found", kind="missing", user=None), 404
    with db.connect() as conn:
        rows = conn.execute(
            "SELECT * FROM entities WHERE group_id = ? ORDER BY collection, seq", (group_uid,)
        ).fetchall()
    entities = [(row["collection"], render(row, external=False)) for row in rows]
    return render_template(
        "sandbox/group.html", group=group, entities=entities, apps=db.group_app_ids(group_uid)
    )


@bp.route("/admin/groups/<group_uid>/<collection>/<entity_id>", methods=["GET", "POST"])
def edit(group_uid: str, collection: str, entity_id: str) -> Any:
    db = database()
    with db.connect() as conn:
        row = find_entity(conn, group_uid, collection, entity_id)
    if row is None:
        return render_template("sandbox/message.html", title="Not found", kind="missing", user=None), 404
    entity = render(row, external=False)
    text = json.dumps(json.loads(row["data"]), indent=2)  # the record's own fields
    if request.method == "POST":
        text = request.form.get("data", "")
        try:
            changes = json.loads(text)
        except ValueError as exc:
            changes = None
            flash(f"The record must be a JSON object: {exc}", "error")
        if isinstance(changes, dict):
            report(edit_entity(sandbox(), group_uid, collection, entity_id, changes))
            return redirect(
                url_for("admin.edit", group_uid=group_uid, collection=collection, entity_id=entity_id)
            )
        if changes is not None:
            flash("The record must be a JSON object.", "error")
        return render_template("sandbox/edit.html", entity=entity, collection=collection, text=text), 400
    return render_template("sandbox/edit.html", entity=entity, collection=collection, text=text)


@bp.post("/admin/groups/<group_uid>/<collection>/<entity_id>/notify")
def notify(group_uid: str, collection: str, entity_id: str) -> WerkzeugResponse:
    db = database()
    results = []
    for app_id in db.group_app_ids(group_uid):
        try:
            results.append(push_notification(sandbox(), app_id, group_uid, collection, entity_id))
        except LookupError as exc:
            flash(str(exc), "error")
    report(results)
    return redirect(url_for("admin.group_data", group_uid=group_uid))


@bp.post("/admin/groups/<group_uid>/apps/<app_id>/sync")
def sync(group_uid: str, app_id: str) -> WerkzeugResponse:
    """The "Synchronize" and "Sync status" buttons: call the app like the marketplace does."""
    try:
        if request.form.get("action") == "status":
            result = sync_status(sandbox(), app_id, group_uid)
        else:
            result = synchronize(sandbox(), app_id, group_uid, full=request.form.get("full") == "1")
    except LookupError as exc:
        flash(str(exc), "error")
    else:
        report([result])
        flash(f"{result.app_id} answered: {result.outcome}", "ok" if result.ok else "error")
    return redirect(url_for("admin.group_data", group_uid=group_uid))
