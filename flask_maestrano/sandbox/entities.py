"""Connec! records in the sandbox database and the ``$filter``/``$orderby`` query language."""

from __future__ import annotations

import json
import re
import sqlite3
import uuid
from collections.abc import Callable
from typing import Any

from .times import iso, parse_time, utcnow

#: Collections the sandbox accepts (PLATFORM.md 6.3); ``company`` is singular.
COLLECTIONS = frozenset(
    {
        "company", "accounts", "invoices", "sales_orders", "purchase_orders", "quotes", "payments",
        "stock_adjustments", "journals", "items", "organizations", "people", "projects", "tax_codes",
        "tax_rates", "warehouses", "events", "venues", "event_orders", "work_locations", "pay_items",
        "employees", "pay_schedules", "time_sheets", "time_activities", "pay_runs", "pay_stubs",
        "leave_applications", "transaction_logs", "connector_syncs", "opportunities", "app_users",
    }
)  # fmt: skip
SINGULAR = frozenset({"company"})
RESERVED = frozenset({"id", "group_id", "created_at", "updated_at"})


def _next_seq(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM entities").fetchone()
    return int(row[0])


def insert_entity(
    conn: sqlite3.Connection,
    group_id: str,
    collection: str,
    data: dict[str, Any],
    external_ids: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """Store a new record; returns it in plain-id form."""
    now = iso(utcnow())
    entity_id = str(uuid.uuid4())
    fields = {k: v for k, v in data.items() if k not in RESERVED}
    conn.execute(
        "INSERT INTO entities (id, group_id, collection, data, external_ids, created_at, updated_at, seq) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (entity_id, group_id, collection, json.dumps(fields), json.dumps(external_ids or []), now, now,
         _next_seq(conn)),
    )  # fmt: skip
    row = conn.execute("SELECT * FROM entities WHERE id = ?", (entity_id,)).fetchone()
    return render(row, external=False)


def update_entity(
    conn: sqlite3.Connection, row: sqlite3.Row, data: dict[str, Any], external_ids: list[dict[str, str]]
) -> dict[str, Any]:
    """Merge ``data`` into the record and add new external ids; returns it in plain-id form."""
    fields = json.loads(row["data"])
    fields.update({k: v for k, v in data.items() if k not in RESERVED})
    known = json.loads(row["external_ids"])
    for ext in external_ids:
        if ext not in known:
            known.append(ext)
    conn.execute(
        "UPDATE entities SET data = ?, external_ids = ?, updated_at = ? WHERE id = ?",
        (json.dumps(fields), json.dumps(known), iso(utcnow()), row["id"]),
    )
    fresh = conn.execute("SELECT * FROM entities WHERE id = ?", (row["id"],)).fetchone()
    return render(fresh, external=False)


def find_entity(
    conn: sqlite3.Connection, group_id: str, collection: str, entity_id: str
) -> sqlite3.Row | None:
    row: sqlite3.Row | None = conn.execute(
        "SELECT * FROM entities WHERE group_id = ? AND collection = ? AND id = ?",
        (group_id, collection, entity_id),
    ).fetchone()
    return row


def find_by_external_id(
    conn: sqlite3.Connection, group_id: str, collection: str, external_ids: list[dict[str, str]]
) -> sqlite3.Row | None:
    """The record of the collection that already carries one of these external ids (the
    ``{id, provider, realm}`` entries of a ``CONNEC-EXTERNAL-IDS`` create), if any."""
    if not external_ids:
        return None
    wanted = {(e.get("id"), e.get("provider"), e.get("realm")) for e in external_ids}
    for row in all_entities(conn, group_id, collection):
        for known in json.loads(row["external_ids"]):
            if (known.get("id"), known.get("provider"), known.get("realm")) in wanted:
                return row
    return None


def find_matching(
    conn: sqlite3.Connection, group_id: str, collection: str, record: dict[str, Any], fields: list[str]
) -> sqlite3.Row | None:
    """The first record of the collection whose ``fields`` (dotted paths) all equal
    ``record``'s (``opts.matching_fields``); ``None`` when one of them is missing from ``record``."""
    wanted = [(path, _lookup(record, path)) for path in fields]
    if any(value is None for _, value in wanted):
        return None
    for row in all_entities(conn, group_id, collection):
        data = json.loads(row["data"])
        if all(_lookup(data, path) == value for path, value in wanted):
            return row
    return None


def singular_entity(conn: sqlite3.Connection, group_id: str, collection: str) -> sqlite3.Row | None:
    row: sqlite3.Row | None = conn.execute(
        "SELECT * FROM entities WHERE group_id = ? AND collection = ? ORDER BY seq, rowid LIMIT 1",
        (group_id, collection),
    ).fetchone()
    return row


def all_entities(conn: sqlite3.Connection, group_id: str, collection: str) -> list[sqlite3.Row]:
    return conn.execute(
        "SELECT * FROM entities WHERE group_id = ? AND collection = ? ORDER BY seq, rowid",
        (group_id, collection),
    ).fetchall()


def render(row: sqlite3.Row, *, external: bool) -> dict[str, Any]:
    """The record as the API shows it; ``external`` = the ``CONNEC-EXTERNAL-IDS: true`` form."""
    entity: dict[str, Any] = {}
    if external:
        entity["id"] = [{"id": row["id"], "provider": "connec"}, *json.loads(row["external_ids"])]
    else:
        entity["id"] = row["id"]
    entity["group_id"] = row["group_id"]
    entity["type"] = row["collection"]  # a record's own "type" field (invoices have one) wins
    entity.update(json.loads(row["data"]))
    entity["created_at"] = row["created_at"]
    entity["updated_at"] = row["updated_at"]
    return entity


# ---------------------------------------------------------------------------------------
# $filter and $orderby


class QueryError(ValueError):
    """A malformed ``$filter``/``$orderby``; the message says what was wrong."""


_CLAUSE = re.compile(
    r"""\s*(?P<field>[A-Za-z_][\w.]*)\s+(?P<op>eq|ne|gt|lt|ge|le|match)\s+
        (?P<value>'(?:[^']|'')*'|"(?:[^"]|"")*"|/(?:[^/\\]|\\.)*/[a-z]*|[^\s']+)\s*""",
    re.VERBOSE | re.IGNORECASE,
)
_AND = re.compile(r"\s*and\s+", re.IGNORECASE)

Predicate = Callable[[dict[str, Any]], bool]


def _lookup(entity: dict[str, Any], path: str) -> Any:
    value: Any = entity
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _literal(raw: str) -> Any:
    if raw[0] in "'\"":
        return raw[1:-1].replace(raw[0] * 2, raw[0])
    lowered = raw.lower()
    if lowered == "null":
        return None
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return float(raw) if any(c in raw for c in ".eE") else int(raw)
    except ValueError:
        return raw


def _comparable(left: Any, right: Any) -> tuple[Any, Any] | None:
    if isinstance(left, bool) or isinstance(right, bool):
        return (left, right) if isinstance(left, bool) and isinstance(right, bool) else None
    if isinstance(left, int | float) and isinstance(right, int | float):
        return left, right
    if isinstance(left, str) and isinstance(right, str):
        lt, rt = parse_time(left), parse_time(right)
        if lt is not None and rt is not None:
            return lt, rt
        return left, right
    if isinstance(left, str) and isinstance(right, int | float):
        try:
            return float(left), right
        except ValueError:
            return None
    return None


def _clause(field: str, op: str, raw: str) -> Predicate:
    op = op.lower()
    if op == "match":
        if not raw.startswith("/"):
            raise QueryError(f"match needs a /regular expression/, got {raw!r}")
        body, _, flags = raw[1:].rpartition("/")
        try:
            pattern = re.compile(body, re.IGNORECASE if "i" in flags else 0)
        except re.error as exc:
            raise QueryError(f"invalid regular expression {raw!r}: {exc}") from None
        return lambda e: isinstance(_lookup(e, field), str) and bool(pattern.search(_lookup(e, field)))
    value = _literal(raw)
    if value is None:
        if op not in ("eq", "ne"):
            raise QueryError(f"null can only be compared with eq or ne, not {op}")
        return (
            (lambda e: _lookup(e, field) is None) if op == "eq" else (lambda e: _lookup(e, field) is not None)
        )

    def test(entity: dict[str, Any]) -> bool:
        pair = _comparable(_lookup(entity, field), value)
        if pair is None:
            return op == "ne"
        left, right = pair
        return bool(
            {
                "eq": lambda: left == right,
                "ne": lambda: left != right,
                "gt": lambda: left > right,
                "lt": lambda: left < right,
                "ge": lambda: left >= right,
                "le": lambda: left <= right,
            }[op]()
        )

    return test


def parse_filter(text: str) -> Predicate:
    """``name eq 'Acme' and updated_at gt '2016-01-01T00:00:00Z'`` -> a predicate on rendered entities."""
    predicates: list[Predicate] = []
    position = 0
    text = text.strip()
    while position < len(text):
        match = _CLAUSE.match(text, position)
        if match is None:
            raise QueryError(
                f"cannot parse $filter near {text[position : position + 40]!r}: expected "
                "'<field> <eq|ne|gt|lt|ge|le|match> <value>' clauses joined by 'and'"
            )
        predicates.append(_clause(match["field"], match["op"], match["value"]))
        position = match.end()
        if position < len(text):
            joiner = _AND.match(text, position)
            if joiner is None:
                raise QueryError(f"expected 'and' in $filter near {text[position : position + 40]!r}")
            position = joiner.end()
    return lambda entity: all(p(entity) for p in predicates)


def order_key(value: Any) -> tuple[int, Any]:
    if value is None:
        return (2, "")
    if isinstance(value, bool | int | float):
        return (0, float(value))
    if isinstance(value, str):
        moment = parse_time(value)
        return (1, moment.isoformat()) if moment else (1, value.lower())
    return (1, json.dumps(value, sort_keys=True))


def apply_orderby(entities: list[dict[str, Any]], text: str) -> list[dict[str, Any]]:
    """Sort by ``field [ASC|DESC], ...`` (stable, later keys first)."""
    keys: list[tuple[str, bool]] = []
    for part in text.split(","):
        words = part.split()
        if not words or len(words) > 2 or (len(words) == 2 and words[1].upper() not in ("ASC", "DESC")):
            raise QueryError(f"cannot parse $orderby {text!r}: expected '<field> [ASC|DESC]'")
        keys.append((words[0], len(words) == 2 and words[1].upper() == "DESC"))
    result = list(entities)
    for field, descending in reversed(keys):
        result.sort(key=lambda e, f=field: order_key(_lookup(e, f)), reverse=descending)  # type: ignore[misc]
    return result
