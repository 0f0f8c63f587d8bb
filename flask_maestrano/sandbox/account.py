"""The account API under ``/api/v1/`` (PLATFORM.md 5): bills, recurring bills, users, groups, ping.

Envelope ``{"success", "errors", "data"}``; HTTP Basic with the app's id/key; form-encoded or
JSON bodies; list filters with the ``_before``/``_after``/... suffixes; the platform's quirks
(an unknown id on ``show`` is HTTP 200 with ``success: false``).
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from flask import Blueprint, Response, jsonify, request

from .core import authenticated_app, database
from .db import iso, parse_time, utcnow

bp = Blueprint("account", __name__)

CURRENCIES = frozenset(
    [
        "AED",
        "ARS",
        "AUD",
        "BGN",
        "BRL",
        "CAD",
        "CHF",
        "CLP",
        "CNY",
        "COP",
        "CZK",
        "DKK",
        "EGP",
        "EUR",
        "GBP",
        "HKD",
        "HUF",
        "IDR",
        "ILS",
        "INR",
        "ISK",
        "JPY",
        "KES",
        "KRW",
        "MXN",
        "MYR",
        "NGN",
        "NOK",
        "NZD",
        "PEN",
        "PHP",
        "PKR",
        "PLN",
        "RON",
        "RUB",
        "SAR",
        "SEK",
        "SGD",
        "THB",
        "TRY",
        "TWD",
        "UAH",
        "USD",
        "VND",
        "ZAR",
    ]
)
PERIODS = {"day": "Day", "week": "Week", "semimonth": "SemiMonth", "month": "Month", "year": "Year"}
MAX_FREQUENCY = {"Day": 365, "Week": 52, "SemiMonth": 1, "Month": 12, "Year": 1}
SUFFIXES = (
    ("_strictly_before", "<"),
    ("_strictly_after", ">"),
    ("_strictly_greater_than", ">"),
    ("_strictly_lower_than", "<"),
    ("_before", "<="),
    ("_after", ">="),
    ("_greater_than", ">="),
    ("_lower_than", "<="),
)
GROUP_CANNOT_BE_CHARGED = "does not exist or cannot be charged by your service"


def envelope(data: Any = None, errors: dict[str, list[str]] | None = None, status: int = 200) -> Response:
    body = {"success": not errors, "errors": errors or {}, "data": {} if data is None else data}
    response = jsonify(body)
    response.status_code = status
    return response


@bp.before_request
def require_app() -> Response | None:
    if request.method == "OPTIONS":
        return None
    app_row = authenticated_app()
    if app_row is None:
        response = envelope(errors={"authentication": ["Invalid API token"]}, status=401)
        response.headers["WWW-Authenticate"] = 'Basic realm="Maestrano API"'
        return response
    request.environ["sandbox.app"] = app_row
    return None


def current_app_row() -> sqlite3.Row:
    row: sqlite3.Row = request.environ["sandbox.app"]
    return row


def params() -> dict[str, Any]:
    """The request body: JSON object or form fields."""
    if request.is_json:
        body = request.get_json(silent=True)
        return body if isinstance(body, dict) else {"__invalid__": True}
    return request.form.to_dict()


# ---------------------------------------------------------------------------------------
# rendering


def _bool(value: Any) -> bool:
    return bool(value)


def bill_data(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "object": "account_bill",
        "id": row["id"],
        "group_id": row["group_id"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "price_cents": row["price_cents"],
        "status": row["status"],
        "currency": row["currency"],
        "units": row["units"],
        "description": row["description"],
        "period_started_at": row["period_started_at"],
        "period_ended_at": row["period_ended_at"],
        "third_party": _bool(row["third_party"]),
    }


def recurring_bill_data(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "object": "account_recurring_bill",
        **{
            key: row[key]
            for key in (
                "id", "group_id", "created_at", "updated_at", "price_cents", "status", "currency",
                "description", "start_date", "period", "frequency", "cycles", "initial_cents",
                "last_execution_at", "next_execution_at", "remaining_cycles",
            )
        },
    }  # fmt: skip


def user_data(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "object": "account_user",
        **{k: row[k] for k in ("name", "surname", "email", "company_name", "country", "sso_session")},
        "id": row["uid"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def group_data(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "object": "account_group",
        "id": row["uid"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "has_credit_card": _bool(row["has_credit_card"]),
        "status": row["status"],
        "name": row["name"],
        "free_trial_end_at": row["free_trial_end_at"],
        "email": row["email"],
        "currency": row["currency"],
        "timezone": row["timezone"],
        "country": row["country"],
        "city": row["city"],
        "main_accounting": row["main_accounting"],
    }


# ---------------------------------------------------------------------------------------
# list filters (PLATFORM.md 5.5)


def _compare(left: Any, op: str, raw: str) -> bool:
    if left is None:
        return False
    right: Any = raw
    if isinstance(left, bool | int | float):
        try:
            right = float(raw)
        except ValueError:
            return False
        left = float(left)
    else:
        lt, rt = parse_time(str(left)), parse_time(raw)
        if lt is not None and rt is not None:
            left, right = lt, rt
        else:
            left = str(left)
    return bool(
        {"<": left < right, ">": left > right, "<=": left <= right, ">=": left >= right, "=": left == right}[
            op
        ]
    )


def _equal(left: Any, raw: str) -> bool:
    if isinstance(left, bool):
        return raw.lower() in (("true", "1") if left else ("false", "0"))
    if left is None:
        return raw == ""
    return _compare(left, "=", raw)


def filtered(items: list[dict[str, Any]], query: dict[str, str], columns: set[str]) -> list[dict[str, Any]]:
    """Apply every query parameter as a column filter; an unknown column gives an empty list."""
    for name, raw in query.items():
        if name in columns:
            items = [item for item in items if _equal(item.get(name), raw)]
            continue
        for suffix, op in SUFFIXES:
            column = name[: -len(suffix)] if name.endswith(suffix) else None
            if column in columns:
                items = [item for item in items if _compare(item.get(column), op, raw)]
                break
        else:
            return []
    return items


def list_response(items: list[dict[str, Any]]) -> Response:
    query = request.args.to_dict()
    group_id = query.pop("group_id", None)
    if group_id is not None:
        items = [item for item in items if item.get("group_id") == group_id]
    columns = set(items[0]) if items else set()
    return envelope(filtered(items, query, columns) if items else [])


def not_found() -> Response:
    # QUIRK kept from the platform: HTTP 200 with success false.
    return envelope(errors={"id": ["does not exist"]})


# ---------------------------------------------------------------------------------------
# views


@bp.get("/ping")
def ping() -> Response:
    return envelope({"msg": "Ping successful! (API Authentication successful)"})


def _app_group_uids() -> list[str]:
    return database().app_group_uids(current_app_row()["id"])


@bp.get("/account/groups")
def groups_index() -> Response:
    uids = set(_app_group_uids())
    return list_response([group_data(row) for row in database().groups() if row["uid"] in uids])


@bp.get("/account/groups/<group_id>")
def groups_show(group_id: str) -> Response:
    row = database().group(group_id)
    if row is None or group_id not in _app_group_uids():
        return not_found()
    return envelope(group_data(row))


@bp.get("/account/users")
def users_index() -> Response:
    db = database()
    uids = set(_app_group_uids())
    wanted = request.args.get("group_id")
    members = [m for m in db.memberships() if m["group_uid"] in uids and wanted in (None, m["group_uid"])]
    member_uids = {m["user_uid"] for m in members}
    query = request.args.to_dict()
    query.pop("group_id", None)
    items = [user_data(row) for row in db.users() if row["uid"] in member_uids]
    return envelope(filtered(items, query, set(items[0])) if items else [])


@bp.get("/account/users/<user_id>")
def users_show(user_id: str) -> Response:
    db = database()
    row = db.user(user_id.split(".", 1)[0])
    uids = set(_app_group_uids())
    if row is None or not any(m["group_uid"] in uids for m in db.memberships(user_uid=row["uid"])):
        return not_found()
    return envelope(user_data(row))


def _rows(table: str, app_id: str) -> list[sqlite3.Row]:
    with database().connect() as conn:
        return conn.execute(f"SELECT * FROM {table} WHERE app_id = ? ORDER BY n", (app_id,)).fetchall()  # noqa: S608


def _row(table: str, app_id: str, item_id: str) -> sqlite3.Row | None:
    with database().connect() as conn:
        row: sqlite3.Row | None = conn.execute(
            f"SELECT * FROM {table} WHERE app_id = ? AND id = ?",  # noqa: S608
            (app_id, item_id),
        ).fetchone()
    return row


Render = Callable[[sqlite3.Row], dict[str, Any]]


@bp.get("/account/bills")
def bills_index() -> Response:
    return list_response([bill_data(r) for r in _rows("bills", current_app_row()["id"])])


@bp.get("/account/recurring_bills")
def recurring_bills_index() -> Response:
    return list_response([recurring_bill_data(r) for r in _rows("recurring_bills", current_app_row()["id"])])


@bp.get("/account/bills/<bill_id>")
def bills_show(bill_id: str) -> Response:
    row = _row("bills", current_app_row()["id"], bill_id)
    return envelope(bill_data(row)) if row else not_found()


@bp.get("/account/recurring_bills/<bill_id>")
def recurring_bills_show(bill_id: str) -> Response:
    row = _row("recurring_bills", current_app_row()["id"], bill_id)
    return envelope(recurring_bill_data(row)) if row else not_found()


# -- creation ---------------------------------------------------------------------------


#: the largest integer a field takes (SQLite INTEGER) and the bound of ``units`` (decimal(10,2))
MAX_INTEGER = 2**63 - 1
MAX_UNITS = 1e8


class Validator:
    """Collects ``{field: [messages]}`` like the platform's 400 answers."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.errors: dict[str, list[str]] = {}

    def add(self, field: str, message: str) -> None:
        self.errors.setdefault(field, []).append(message)

    def text(self, field: str, *, required: bool = False, default: str | None = None) -> str | None:
        value = self.data.get(field)
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                self.add(field, "can't be blank")
            return default
        if not isinstance(value, str | int | float):
            self.add(field, "must be a string")
            return default
        return str(value).strip()

    def integer(
        self, field: str, *, required: bool = False, default: int | None = None, minimum: int = 0
    ) -> int | None:
        value = self.data.get(field)
        if value is None or value == "":
            if required:
                self.add(field, "can't be blank")
            return default
        try:
            number = int(str(value).strip()) if not isinstance(value, bool) else None
        except ValueError:
            number = None
        if number is None:
            self.add(field, "is not a number")
            return default
        if number < minimum:
            self.add(field, f"must be greater than or equal to {minimum}")
        elif number > MAX_INTEGER:  # SQLite's INTEGER is 64-bit
            self.add(field, f"must be less than or equal to {MAX_INTEGER}")
            return default
        return number

    def number(self, field: str, *, default: float) -> float:
        value = self.data.get(field)
        if value is None or value == "":
            return default
        try:
            number = float(str(value))
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            self.add(field, "is not a number")
            return default
        if number >= MAX_UNITS:  # decimal(10,2)
            self.add(field, f"must be less than {MAX_UNITS:.0f}")
        elif number <= 0:
            self.add(field, "must be greater than 0")
        return number

    def time(self, field: str) -> str | None:
        value = self.text(field)
        if value is None:
            return None
        moment = parse_time(value)
        if moment is None:
            self.add(field, "is not a valid ISO-8601 date")
            return None
        return iso(moment)

    def boolean(self, field: str) -> bool:
        value = self.data.get(field)
        if isinstance(value, bool):
            return value
        return str(value).lower() in ("true", "1") if value is not None else False

    def currency(self) -> str:
        code = (self.text("currency") or "AUD").upper()
        if code not in CURRENCIES:
            self.add("currency", "is not a valid ISO-4217 currency code")
        return code

    def group(self, app_id: str) -> str | None:
        group_id = self.text("group_id", required=True)
        if group_id is not None and group_id not in database().app_group_uids(app_id):
            self.add("group_id", GROUP_CANNOT_BE_CHARGED)
        return group_id


def _invalid_body(data: dict[str, Any]) -> Response | None:
    if "__invalid__" in data:
        return envelope(errors={"body": ["must be a JSON object or form fields"]}, status=400)
    return None


@bp.post("/account/bills")
def bills_create() -> Response:
    data = params()
    if (bad := _invalid_body(data)) is not None:
        return bad
    app_id = current_app_row()["id"]
    v = Validator(data)
    group_id = v.group(app_id)
    price = v.integer("price_cents", required=True, minimum=1)
    description = v.text("description", required=True)
    currency = v.currency()
    units = v.number("units", default=1.0)
    started, ended = v.time("period_started_at"), v.time("period_ended_at")
    third_party = v.boolean("third_party")
    if v.errors:
        return envelope(errors=v.errors, status=400)
    row = create_bill(
        app_id, group_id or "", price or 0, description or "", currency, units, started, ended, third_party
    )
    return envelope(bill_data(row), status=201)


def create_bill(
    app_id: str,
    group_id: str,
    price_cents: int,
    description: str,
    currency: str = "AUD",
    units: float = 1.0,
    period_started_at: str | None = None,
    period_ended_at: str | None = None,
    third_party: bool = False,
) -> sqlite3.Row:
    now = iso(utcnow())
    with database().connect() as conn:
        cur = conn.execute(
            "INSERT INTO bills (app_id, group_id, price_cents, status, currency, units, description, "
            "period_started_at, period_ended_at, third_party, created_at, updated_at) "
            "VALUES (?, ?, ?, 'submitted', ?, ?, ?, ?, ?, ?, ?, ?)",
            (app_id, group_id, price_cents, currency, units, description, period_started_at, period_ended_at,
             int(third_party), now, now),
        )  # fmt: skip
        conn.execute("UPDATE bills SET id = ? WHERE n = ?", (f"bill-{cur.lastrowid}", cur.lastrowid))
        row: sqlite3.Row = conn.execute("SELECT * FROM bills WHERE n = ?", (cur.lastrowid,)).fetchone()
    return row


@bp.post("/account/recurring_bills")
def recurring_bills_create() -> Response:
    data = params()
    if (bad := _invalid_body(data)) is not None:
        return bad
    app_id = current_app_row()["id"]
    v = Validator(data)
    group_id = v.group(app_id)
    price = v.integer("price_cents", required=True, minimum=1)
    description = v.text("description", required=True)
    currency = v.currency()
    raw_period = v.text("period", default="Month") or "Month"
    period = PERIODS.get(raw_period.lower())
    if period is None:
        v.add("period", f"must be one of {', '.join(PERIODS.values())}")
    frequency = v.integer("frequency", default=1, minimum=1) or 1
    if period is not None and frequency > MAX_FREQUENCY[period]:
        v.add("frequency", "period multiplied by frequency cannot exceed one year")
    cycles = v.integer("cycles", minimum=1)
    initial = v.integer("initial_cents", default=0, minimum=0) or 0
    start = v.time("start_date")
    now = utcnow()
    if start is not None and (parse_time(start) or now) < now - timedelta(hours=1):
        v.add("start_date", "cannot be in the past")
    if v.errors:
        return envelope(errors=v.errors, status=400)
    start = start or iso(now)
    with database().connect() as conn:
        cur = conn.execute(
            "INSERT INTO recurring_bills (app_id, group_id, price_cents, status, currency, description, "
            "start_date, period, frequency, cycles, initial_cents, next_execution_at, remaining_cycles, "
            "created_at, updated_at) VALUES (?, ?, ?, 'submitted', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (app_id, group_id, price, currency, description, start, period, frequency, cycles, initial, start,
             cycles, iso(now), iso(now)),
        )  # fmt: skip
        conn.execute(
            "UPDATE recurring_bills SET id = ? WHERE n = ?", (f"rbill-{cur.lastrowid}", cur.lastrowid)
        )
        row = conn.execute("SELECT * FROM recurring_bills WHERE n = ?", (cur.lastrowid,)).fetchone()
    if initial > 0:
        create_bill(app_id, group_id or "", initial, f"Initial: {description}", currency)
    return envelope(recurring_bill_data(row), status=201)


# -- cancellation -----------------------------------------------------------------------


def _cancel(table: str, bill_id: str, render: Render) -> Response:
    app_id = current_app_row()["id"]
    row = _row(table, app_id, bill_id)
    if row is None:
        return envelope(errors={"id": ["does not exist"]}, status=404)
    if row["status"] == "invoiced":
        return envelope(
            errors={"status": ["has already been set to invoiced and cannot be changed"]}, status=400
        )
    if row["status"] != "cancelled":
        with database().connect() as conn:
            conn.execute(
                f"UPDATE {table} SET status = 'cancelled', updated_at = ? WHERE id = ?",  # noqa: S608
                (iso(utcnow()), bill_id),
            )
        row = _row(table, app_id, bill_id)
    assert row is not None
    return envelope(render(row))


@bp.delete("/account/bills/<bill_id>")
def bills_cancel(bill_id: str) -> Response:
    return _cancel("bills", bill_id, bill_data)


@bp.delete("/account/recurring_bills/<bill_id>")
def recurring_bills_cancel(bill_id: str) -> Response:
    return _cancel("recurring_bills", bill_id, recurring_bill_data)


@bp.route("/account/<any(bills, recurring_bills, groups, users):resource>", methods=["OPTIONS"])
def preflight(resource: str) -> Response:
    response = Response(status=204)
    response.headers["Allow"] = "GET, POST, DELETE, OPTIONS" if "bills" in resource else "GET, OPTIONS"
    return response
