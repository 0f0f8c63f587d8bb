"""The Connec! API (PLATFORM.md 6): ``/api/v2/<group>/<collection>[/<id>]``, ``/batch``, reports, version.

HTTP Basic with the app's id/key, and the group must belong to the app. Errors are JSON-API
style. A create or update made by one app is pushed to every *other* app of the company as a
Connec! notification (see :mod:`flask_maestrano.sandbox.actions`).
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from typing import Any
from urllib.parse import urlencode, urlsplit

from flask import Blueprint, Response, current_app, jsonify, request

from .actions import notify_apps
from .core import authenticated_app, base_url, database
from .db import iso, utcnow
from .entities import (
    COLLECTIONS,
    SINGULAR,
    QueryError,
    all_entities,
    apply_orderby,
    find_by_external_id,
    find_entity,
    find_matching,
    insert_entity,
    parse_filter,
    render,
    singular_entity,
    update_entity,
)

bp = Blueprint("connec", __name__)

DEFAULT_TOP = 100
MAX_TOP = 1000
ERROR_TITLES = {
    400: ("bad-request", "Bad request"),
    401: ("unauthorized", "Unauthorized Access"),
    404: ("resource-not-found", "Resource not found"),
    405: ("method-not-allowed", "Method not allowed"),
    409: ("conflict", "Conflict"),
    415: ("unsupported-media-type", "Unsupported media type"),
}
VERSION = {"ci_branch": "sandbox", "ci_commit": "sandbox", "ci_build_number": "1", "env": "sandbox"}


class ConnecError(Exception):
    def __init__(self, status: int, detail: str, *, title: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.title = title


def error_body(status: int, detail: str, title: str | None = None) -> dict[str, Any]:
    code, default_title = ERROR_TITLES.get(status, ("error", "Error"))
    return {
        "errors": [
            {
                "id": str(uuid.uuid4()),
                "href": "http://maestrano.github.io/connec/#api-|-errors",
                "status": str(status),
                "code": code,
                "title": title or default_title,
                "detail": detail,
            }
        ]
    }


@bp.errorhandler(ConnecError)
def connec_error(error: ConnecError) -> Response:
    response = jsonify(error_body(error.status, error.detail, error.title))
    response.status_code = error.status
    if error.status == 401:
        response.headers["WWW-Authenticate"] = 'Basic realm="Connec!"'
    return response


def json_response(body: Any, status: int = 200) -> Response:
    response = current_app.response_class(
        json.dumps(body), status=status, mimetype="application/vnd.api+json"
    )
    return response


def require_app(group_id: str | None = None) -> sqlite3.Row:
    row = authenticated_app()
    if row is None:
        raise ConnecError(401, "Unauthorized Access: check your app id and API key")
    if group_id is not None and group_id not in database().app_group_uids(row["id"]):
        raise ConnecError(401, f"Unauthorized Access: group {group_id} does not belong to app {row['id']}")
    return row


def external_form() -> bool:
    return request.headers.get("CONNEC-EXTERNAL-IDS", "").lower() == "true"


def check_collection(collection: str) -> None:
    if collection not in COLLECTIONS:
        raise ConnecError(400, f"Unknown Resource: {collection}", title="Unknown Resource")


def body_record(collection: str, body: Any) -> dict[str, Any]:
    """The record of ``{"<collection>": {...}}`` (400 when the shape is wrong)."""
    if not isinstance(body, dict):
        raise ConnecError(400, f'the body must be a JSON object like {{"{collection}": {{...}}}}')
    record = body.get(collection)
    if not isinstance(record, dict):
        raise ConnecError(400, f'the body must hold the record under the "{collection}" key')
    return record


def record_options(record: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The record without its per-record ``opts`` (never stored), and its
    ``opts.matching_fields`` (field paths, dotted for nested objects; 400 when malformed)."""
    opts = record.get("opts")
    if opts is None:
        return record, []
    if not isinstance(opts, dict):
        raise ConnecError(400, 'opts must be an object like {"matching_fields": ["name"]}')
    matching = opts.get("matching_fields", [])
    if not isinstance(matching, list) or not all(isinstance(f, str) and f for f in matching):
        raise ConnecError(400, "opts.matching_fields must be a list of field names")
    return {k: v for k, v in record.items() if k != "opts"}, matching


def split_ids(record: dict[str, Any]) -> tuple[str | None, list[dict[str, str]]]:
    """The record's Connec! id (if any) and the external ids it carries."""
    raw = record.get("id")
    if raw is None:
        return None, []
    if isinstance(raw, str):
        return raw, []
    if not isinstance(raw, list) or not all(
        isinstance(i, dict) and isinstance(i.get("id"), str) for i in raw
    ):
        raise ConnecError(400, 'id must be a string or a list of {"id", "provider", "realm"} objects')
    connec_id = next((i["id"] for i in raw if i.get("provider") == "connec"), None)
    externals = [
        {k: str(v) for k, v in i.items() if k in ("id", "provider", "realm")}
        for i in raw
        if i.get("provider") != "connec"
    ]
    return connec_id, externals


# ---------------------------------------------------------------------------------------
# the operations, shared by the REST views and /batch


def op_list(
    group_id: str, collection: str, args: dict[str, str], external: bool, path: str
) -> tuple[int, Any]:
    with database().connect() as conn:
        if collection in SINGULAR:
            row = singular_entity(conn, group_id, collection)
            if row is None:
                raise ConnecError(404, f"{collection} not found")
            return 200, {collection: render(row, external=external)}
        rows = all_entities(conn, group_id, collection)
    entities = [render(row, external=False) for row in rows]
    by_id = {row["id"]: row for row in rows}
    try:
        if args.get("$filter"):
            predicate = parse_filter(args["$filter"])
            entities = [e for e in entities if predicate(e)]
        if args.get("$orderby"):
            entities = apply_orderby(entities, args["$orderby"])
    except QueryError as exc:
        raise ConnecError(400, str(exc)) from None
    top = _int_arg(args, "$top", DEFAULT_TOP, 1)
    top = min(top, MAX_TOP)
    skip = _int_arg(args, "$skip", 0, 0)
    total = len(entities)
    page = entities[skip : skip + top]
    if external:
        page = [render(by_id[e["id"]], external=True) for e in page]
    pagination: dict[str, Any] = {"total": total}
    if skip + top < total:
        following = {k: v for k, v in args.items() if k not in ("$skip", "$top")}
        following.update({"$skip": str(skip + top), "$top": str(top)})
        pagination["next"] = f"{base_url()}{path}?{urlencode(following)}"
    return 200, {collection: page, "pagination": pagination}


def _int_arg(args: dict[str, str], name: str, default: int, minimum: int) -> int:
    raw = args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConnecError(400, f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConnecError(400, f"{name} must be at least {minimum}, got {value}")
    return value


def op_show(group_id: str, collection: str, entity_id: str, external: bool) -> tuple[int, Any]:
    with database().connect() as conn:
        row = find_entity(conn, group_id, collection, entity_id)
    if row is None:
        raise ConnecError(404, f"{collection} {entity_id} not found in {group_id}")
    return 200, {collection: render(row, external=external)}


def op_create(app_id: str, group_id: str, collection: str, body: Any, external: bool) -> tuple[int, Any]:
    if collection in SINGULAR:
        raise ConnecError(400, f"{collection} is a singular resource: update it with PUT")
    record, matching = record_options(body_record(collection, body))
    connec_id, externals = split_ids(record)
    if connec_id is not None:
        raise ConnecError(409, "a record to create must not carry a Connec! id", title="Conflict")
    with database().connect() as conn:
        # upsert by external id: a create carrying an external id Connec! already knows
        # updates that record and answers 200 (a retried create never duplicates); then
        # opts.matching_fields: a record whose fields match is updated instead (200)
        existing = find_by_external_id(conn, group_id, collection, externals)
        if existing is None and matching:
            existing = find_matching(conn, group_id, collection, record, matching)
        if existing is not None:
            update_entity(conn, existing, record, externals)
            row = find_entity(conn, group_id, collection, existing["id"])
            status = 200
        else:
            created = insert_entity(conn, group_id, collection, record, externals)
            row = find_entity(conn, group_id, collection, created["id"])
            status = 201
    assert row is not None
    notify_apps(current_app._get_current_object(), group_id, collection, row, exclude=app_id)  # type: ignore[attr-defined]
    return status, {collection: render(row, external=external)}


def op_update(
    app_id: str, group_id: str, collection: str, entity_id: str | None, body: Any, external: bool
) -> tuple[int, Any]:
    record, _ = record_options(body_record(collection, body))
    _, externals = split_ids(record)
    with database().connect() as conn:
        if entity_id is None:
            row = singular_entity(conn, group_id, collection)
            if row is None:
                insert_entity(conn, group_id, collection, {})
                row = singular_entity(conn, group_id, collection)
        else:
            row = find_entity(conn, group_id, collection, entity_id)
        if row is None:
            raise ConnecError(404, f"{collection} {entity_id} not found in {group_id}")
        update_entity(conn, row, record, externals)
        fresh = find_entity(conn, group_id, collection, row["id"])
    assert fresh is not None
    notify_apps(current_app._get_current_object(), group_id, collection, fresh, exclude=app_id)  # type: ignore[attr-defined]
    return 200, {collection: render(fresh, external=external)}


def read_json() -> Any:
    if not request.data:
        raise ConnecError(400, "the request has no JSON body")
    try:
        return json.loads(request.data)
    except ValueError:
        raise ConnecError(400, "the body is not valid JSON") from None


# ---------------------------------------------------------------------------------------
# REST views


@bp.route("/api/v2/<group_id>", methods=["GET"])
def root(group_id: str) -> Response:
    require_app(group_id)
    links = [{name: f"{base_url()}/api/v2/{group_id}/{name}"} for name in sorted(COLLECTIONS)]
    return json_response({"_links": links})


@bp.route("/api/v2/<group_id>/<collection>", methods=["GET", "POST", "PUT"])
def collection_view(group_id: str, collection: str) -> Response:
    app_row = require_app(group_id)
    check_collection(collection)
    external = external_form()
    if request.method == "GET":
        status, body = op_list(
            group_id,
            collection,
            request.args.to_dict(),
            external,
            request.environ.get("PATH_INFO", request.path),
        )
    elif request.method == "POST":
        status, body = op_create(app_row["id"], group_id, collection, read_json(), external)
    elif collection in SINGULAR:
        status, body = op_update(app_row["id"], group_id, collection, None, read_json(), external)
    else:
        raise ConnecError(400, f"PUT needs a record id: /api/v2/{group_id}/{collection}/<id>")
    response = json_response(body, status)
    if status == 201:
        created_id = body[collection]["id"]
        if isinstance(created_id, list):  # the CONNEC-EXTERNAL-IDS form
            created_id = created_id[0]["id"]
        response.headers["Location"] = f"{base_url()}/api/v2/{group_id}/{collection}/{created_id}"
    return response


#: Connec! has no hard delete (PLATFORM.md 6.1: its clients have none): records are archived
NO_DELETE = 'Connec! does not delete records: archive it with a PUT of {"status": "ARCHIVED"}'


@bp.route("/api/v2/<group_id>/<collection>/<entity_id>", methods=["GET", "PUT", "DELETE"])
def entity_view(group_id: str, collection: str, entity_id: str) -> Response:
    app_row = require_app(group_id)
    check_collection(collection)
    if request.method == "DELETE":
        raise ConnecError(405, NO_DELETE)
    if request.method == "GET":
        status, body = op_show(group_id, collection, entity_id, external_form())
    else:
        status, body = op_update(app_row["id"], group_id, collection, entity_id, read_json(), external_form())
    return json_response(body, status)


@bp.post("/batch")
def batch() -> Response:
    """``{"sequential": true, "ops": [{"method", "url", "params"}]}`` -> ``{"results": [...]}``."""
    app_row = require_app()
    body = read_json()
    ops = body.get("ops") if isinstance(body, dict) else None
    if not isinstance(ops, list):
        raise ConnecError(400, 'the body must be {"sequential": true, "ops": [...]}')
    external = external_form()
    results = []
    for index, op in enumerate(ops):
        try:
            status, result = run_op(app_row, op, external)
        except ConnecError as exc:
            status, result = exc.status, error_body(exc.status, f"op #{index}: {exc.detail}", exc.title)
        results.append({"status": status, "body": result})
    return json_response({"results": results})


def run_op(app_row: sqlite3.Row, op: Any, external: bool) -> tuple[int, Any]:
    if (
        not isinstance(op, dict)
        or not isinstance(op.get("url"), str)
        or not isinstance(op.get("method"), str)
    ):
        raise ConnecError(
            400, 'each op must be {"method": "post|put|get", "url": "/api/v2/...", "params": {...}}'
        )
    parts = urlsplit(op["url"])
    segments = [s for s in parts.path.split("/") if s]
    if len(segments) < 4 or segments[:2] != ["api", "v2"]:
        raise ConnecError(
            400, f"op url must look like /api/v2/<group>/<collection>[/<id>], got {op['url']!r}"
        )
    group_id, collection = segments[2], segments[3]
    entity_id = segments[4] if len(segments) > 4 else None
    if group_id not in database().app_group_uids(app_row["id"]):
        raise ConnecError(
            401, f"Unauthorized Access: group {group_id} does not belong to app {app_row['id']}"
        )
    check_collection(collection)
    method = op["method"].lower()
    params = op.get("params") or {}
    if not isinstance(params, dict):
        raise ConnecError(400, "op params must be a JSON object")
    if method == "post" and entity_id is None:
        return op_create(app_row["id"], group_id, collection, params, external)
    if method == "put" and (entity_id is not None or collection in SINGULAR):
        return op_update(app_row["id"], group_id, collection, entity_id, params, external)
    if method == "get" and entity_id is not None:
        return op_show(group_id, collection, entity_id, external)
    if method == "delete":
        raise ConnecError(400, f"unsupported op DELETE {op['url']}: {NO_DELETE}")
    if method == "get":
        args = {k: v[0] if isinstance(v, list) else str(v) for k, v in params.items()}
        return op_list(group_id, collection, args, external, f"/api/v2/{group_id}/{collection}")
    raise ConnecError(400, f"unsupported op {method.upper()} {op['url']}")


# ---------------------------------------------------------------------------------------
# reports and version


@bp.get("/api/reports/<group_id>/<name>")
def report(group_id: str, name: str) -> Response:
    require_app(group_id)
    to = request.args.get("to") or iso(utcnow())[:10]
    period = request.args.get("period", "MONTHLY")
    with database().connect() as conn:
        accounts = [render(r, external=False) for r in all_entities(conn, group_id, "accounts")]
        invoices = [render(r, external=False) for r in all_entities(conn, group_id, "invoices")]
    if name == "accounts_summary":
        return json_response({"to": to, "period": period, "accounts": accounts})
    if name == "profit_and_loss":
        income = sum(
            float((i.get("amount") or {}).get("total_amount") or 0)
            for i in invoices
            if i.get("type") != "SUPPLIER"
        )
        expenses = sum(
            float((i.get("amount") or {}).get("total_amount") or 0)
            for i in invoices
            if i.get("type") == "SUPPLIER"
        )
        return json_response(
            {
                "from": request.args.get("from"),
                "to": to,
                "period": period,
                "income": round(income, 2),
                "expenses": round(expenses, 2),
                "net_profit": round(income - expenses, 2),
            }
        )
    raise ConnecError(404, f"unknown report {name!r}: accounts_summary or profit_and_loss")


@bp.get("/version")
def version() -> Response:
    return json_response(VERSION)
