"""SQLAlchemy side of the sync engine: the id-map and run tables, and a model-based mapping.

Re-exported by :mod:`flask_maestrano.contrib.sqlalchemy`. The store uses its own
connections on the engine it is given (``db.engine``), each call one transaction, so it can
be used from a Flask-SQLAlchemy ``after_commit`` hook and from worker threads.
"""

from __future__ import annotations

import json
import logging
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    bindparam,
    delete,
    event,
    insert,
    inspect,
    select,
    union,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from .. import syncing
from ..errors import ConfigurationError, MaestranoError
from ..state import get_state
from ..sync.engine import Change
from ..sync.mapping import Mapping as SyncMapping
from ..sync.mapping import parse_time
from ..sync.outbox import OutboxEntry
from ..sync.store import RUNS_KEPT, IdMap, SyncRun, id_map_from

log = logging.getLogger("flask_maestrano.sync")

#: The tables of :class:`SqlAlchemySyncStore` (``metadata.create_all(engine)`` creates them).
sync_metadata = MetaData()

#: One row per linked record pair (and per Connec! record waiting for a reference).
id_maps = Table(
    "maestrano_id_maps",
    sync_metadata,
    Column("id", Integer, primary_key=True),
    Column("preset", String(100), nullable=False),
    Column("group_id", String(255), nullable=False),
    Column("collection", String(100), nullable=False),
    Column("connec_id", String(255), nullable=True),
    Column("local_id", String(255), nullable=True),
    Column("last_push_at", DateTime(timezone=True), nullable=True),
    Column("last_pull_at", DateTime(timezone=True), nullable=True),
    Column("hash", String(64), nullable=True),
    Column("message", Text, nullable=True),
    Column("to_connec", Boolean, nullable=False, default=True),
    Column("to_external", Boolean, nullable=False, default=True),
    Column("pending", Text, nullable=True),
    Column("archived_at", DateTime(timezone=True), nullable=True),
    UniqueConstraint("preset", "group_id", "collection", "connec_id", name="maestrano_id_maps_connec"),
    UniqueConstraint("preset", "group_id", "collection", "local_id", name="maestrano_id_maps_local"),
)
# the waiting rows of a group, oldest first; partial where the database supports it, so the
# (many) rows that wait for nothing cost it nothing, and the waiting JSON is not indexed
Index(
    "maestrano_id_maps_pending",
    id_maps.c.preset,
    id_maps.c.group_id,
    id_maps.c.id,
    sqlite_where=id_maps.c.pending.is_not(None),
    postgresql_where=id_maps.c.pending.is_not(None),
)

#: The run history (newest 100 per group) and each group's sync switch.
sync_runs = Table(
    "maestrano_sync_runs",
    sync_metadata,
    Column("id", Integer, primary_key=True),
    Column("preset", String(100), nullable=False),
    Column("group_id", String(255), nullable=False),
    Column("status", String(20), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Column("partial", Boolean, nullable=False, default=False),
    Column("full", Boolean, nullable=False, default=False),
    Column("message", Text, nullable=True),
    Column("counts", Text, nullable=False, default="{}"),
    Index("maestrano_sync_runs_group", "preset", "group_id", "id"),
)
sync_groups = Table(
    "maestrano_sync_groups",
    sync_metadata,
    Column("preset", String(100), primary_key=True),
    Column("group_id", String(255), primary_key=True),
    Column("sync_enabled", Boolean, nullable=False),
)

#: The transactional outbox: local changes committed with the host's transaction, waiting for
#: Connec!'s answer (written by :func:`sync_on_commit` through the host's session connection).
#: Not unique per record, so two concurrent host transactions never conflict on it: a
#: capture removes the record's older rows, and a drain pushes each record once.
sync_outbox = Table(
    "maestrano_sync_outbox",
    sync_metadata,
    Column("id", Integer, primary_key=True),
    Column("preset", String(100), nullable=False),
    Column("group_id", String(255), nullable=False),
    Column("collection", String(100), nullable=False),
    Column("local_id", String(255), nullable=False),
    Column("archived", Boolean, nullable=False, default=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("maestrano_sync_outbox_record", "preset", "group_id", "collection", "local_id"),
    Index("maestrano_sync_outbox_group", "preset", "group_id", "id"),
    sqlite_autoincrement=True,  # ids never reused: a push removes only the rows it covered
)

_MAP_FIELDS = (
    "connec_id",
    "local_id",
    "last_push_at",
    "last_pull_at",
    "hash",
    "message",
    "to_connec",
    "to_external",
    "archived_at",
)
#: the columns an :class:`IdMap` field is written to
_ROW_FIELDS = (*_MAP_FIELDS, "pending")

# The statements of the hot paths, built once (SQLAlchemy caches their compiled form): a
# group's collection, and keys given as an expanding IN list.
_SCOPE = (
    id_maps.c.preset == bindparam("scope_preset"),
    id_maps.c.group_id == bindparam("scope_group"),
    id_maps.c.collection == bindparam("scope_collection"),
)
_BY_LOCAL = select(id_maps).where(*_SCOPE, id_maps.c.local_id.in_(bindparam("keys", expanding=True)))
_BY_CONNEC = select(id_maps).where(*_SCOPE, id_maps.c.connec_id.in_(bindparam("keys", expanding=True)))
# a union, not an OR, so each half uses its unique index; a row both halves find comes once
_PLAN = union(
    select(id_maps).where(*_SCOPE, id_maps.c.local_id.in_(bindparam("local_ids", expanding=True))),
    select(id_maps).where(*_SCOPE, id_maps.c.connec_id.in_(bindparam("connec_ids", expanding=True))),
)
#: ``UPDATE ... SET <these columns> WHERE id = :row_id``, by column set; guarded: ``... AND
#: connec_id IS :old_connec_id AND local_id IS :old_local_id``, an update that applies only
#: while the row is still the link that was read (``AND pending IS NULL`` when it leaves
#: ``pending`` alone: then the row must wait for nothing, as the map)
_UPDATES: dict[tuple[tuple[str, ...], bool], Any] = {}


def _update(columns: tuple[str, ...], *, guarded: bool = False) -> Any:
    statement = _UPDATES.get((columns, guarded))
    if statement is None:
        guard = [id_maps.c[name].is_not_distinct_from(bindparam(f"old_{name}")) for name in _IDS]
        if "pending" not in columns:
            guard.append(id_maps.c.pending.is_(None))
        statement = _UPDATES[(columns, guarded)] = (
            update(id_maps)
            .where(id_maps.c.id == bindparam("row_id"), *(guard if guarded else ()))
            .values({name: bindparam(name) for name in columns})
        )
    return statement


#: ``INSERT ... (<these columns>)``, by column set
_INSERTS: dict[tuple[str, ...], Any] = {}


def _insert(columns: tuple[str, ...]) -> Any:
    statement = _INSERTS.get(columns)
    if statement is None:
        statement = _INSERTS[columns] = insert(id_maps).values({name: bindparam(name) for name in columns})
    return statement


#: an id map's column values (its fields by name, ``pending`` as the object it holds)
_ROW_VALUES = operator.itemgetter(*_ROW_FIELDS)
_PENDING = _ROW_FIELDS.index("pending")
#: the columns that say which link a row is (unique per group and collection): the first two
_IDS = _ROW_FIELDS[:2]
#: the columns a guarded update writes: every column but the ids (the ids too when they change)
_CONTENT = _ROW_FIELDS[len(_IDS) :]
_CONTENT_PENDING = _CONTENT.index("pending")
#: the same without ``pending`` (the last column): what a row that waits for nothing gets
_SETTLED = _CONTENT[:-1]
#: the values of a guarded update, in this order: the columns written, then these
_GUARD_NAMES = ("row_id", *(f"old_{name}" for name in _IDS))

#: rows held per (preset, group, collection): (by local id, by Connec! id) -> (row id, id map)
_Held = tuple[dict[str, tuple[int, IdMap]], dict[str, tuple[int, IdMap]]]


class _Moved(Exception):
    """A guarded update missed: a row changed since it was read."""


def _aware(value: datetime | None) -> datetime | None:
    # SQLite returns naive datetimes: they were stored as UTC
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=timezone.utc)


#: the columns that hold an :class:`IdMap`'s scope
_SCOPE_COLUMNS = ("preset", "group_id", "collection")


def _row_maps(result: Any) -> list[IdMap]:
    """The id maps of a result of ``select(id_maps)``."""
    return [item for _, item in _rows(result)]


def _rows(result: Any) -> list[tuple[int, IdMap]]:
    """``(row id, id map)`` of each row of a ``select(id_maps)`` result: the columns by
    position, found by name once per result (a row's attributes cost about as much as
    building the map)."""
    keys = list(result.keys())
    scope = operator.itemgetter(*(keys.index(name) for name in _SCOPE_COLUMNS))
    fields = operator.itemgetter(*(keys.index(name) for name in ("id", *_ROW_FIELDS)))
    return [_row_map(scope(row), fields(row), _aware) for row in result.all()]


def _row_map(
    scope: Sequence[str], values: Sequence[Any], time: Callable[[Any], datetime | None]
) -> tuple[int, IdMap]:
    """``(row id, id map)`` of a row's ``(preset, group_id, collection)`` and its columns
    ``id, *_ROW_FIELDS`` (``time`` reads a datetime column)."""
    preset, group_id, collection = scope
    (row_id, connec_id, local_id, push_at, pull_at, digest, message, to_connec, to_external, archived_at,
     pending) = values  # fmt: skip
    item = id_map_from(
        {
            "preset": preset,
            "group_id": group_id,
            "collection": collection,
            "connec_id": connec_id,
            "local_id": local_id,
            "last_push_at": push_at if push_at is None else time(push_at),
            "last_pull_at": pull_at if pull_at is None else time(pull_at),
            "hash": digest,
            "message": message,
            "to_connec": bool(to_connec),
            "to_external": bool(to_external),
            "pending": json.loads(pending) if pending else None,
            "archived_at": archived_at if archived_at is None else time(archived_at),
        }
    )
    return row_id, item


def _scope(preset: str, group_id: str, collection: str) -> dict[str, str]:
    return {"scope_preset": preset, "scope_group": group_id, "scope_collection": collection}


def _row_run(row: Any) -> SyncRun:
    return SyncRun(
        row.preset,
        row.group_id,
        row.status,
        _aware(row.started_at) or datetime.now(timezone.utc),
        id=row.id,
        finished_at=_aware(row.finished_at),
        partial=bool(row.partial),
        full=bool(row.full),
        message=row.message,
        counts=json.loads(row.counts or "{}"),
    )


class SqlAlchemySyncStore:
    """:class:`~flask_maestrano.sync.store.SyncStore` on SQLAlchemy tables.

    >>> store = SqlAlchemySyncStore(db.engine)  # doctest: +SKIP
    >>> store.create_tables()  # doctest: +SKIP

    Unique constraints on ``(preset, group_id, collection, connec_id)`` and ``(..., local_id)``
    make two workers linking the same record end with one row: ``save`` inserts, and
    on a conflict updates the row the other worker wrote, in the same transaction.
    """

    def __init__(self, engine: Engine, *, chunk: int = 500) -> None:
        self.engine = engine
        self.chunk = chunk
        # the keys the latest lookup did not find, as (column, preset, group, collection, key):
        # a hint only (which statement ``save`` tries first), never trusted for a result
        self._absent: frozenset[tuple[str, str, str, str, str]] = frozenset()
        # the rows the latest lookups read, by (preset, group, collection, "local"/"connec",
        # id): (row id, id map as read); a save of those rows updates them guarded by what
        # was read (a miss is planned as usual); cleared by any other save
        self._held: dict[tuple[str, str, str], _Held] = {}
        self._held_count = 0
        #: rows remembered at most (past it, the memory starts over)
        self.held_limit = 20_000
        dialect = engine.dialect
        #: run the hot statements through the DB-API's executemany (SQLite; see _executemany)
        self.native = dialect.name == "sqlite" and dialect.paramstyle == "qmark"
        self._sane_rowcount = bool(dialect.supports_sane_multi_rowcount)
        self._reads: dict[tuple[str, int], str] = {}
        self._time_processor: Callable[[Any], Any] | None = None
        self._compiled: dict[Any, tuple[str, tuple[str, ...], list[tuple[int, Any]]]] = {}
        self._layouts: dict[tuple[Any, tuple[str, ...]], tuple[str, Any, list[tuple[int, Any]]]] = {}

    def create_tables(self) -> None:
        """Create the tables that do not exist (id maps, runs, groups, outbox): also what
        adds a table a newer version introduced to an existing database."""
        sync_metadata.create_all(self.engine)

    # -- id maps -------------------------------------------------------------------------

    def _lookup(
        self, query: Any, key: str, preset: str, group_id: str, collection: str, keys: Iterable[str]
    ) -> dict[str, IdMap]:
        wanted = list(dict.fromkeys(keys))
        found: dict[str, IdMap] = {}
        if not wanted:
            return found
        scope = _scope(preset, group_id, collection)
        rows: list[tuple[int, IdMap]] = []
        with self.engine.connect() as conn:
            for start in range(0, len(wanted), self.chunk):
                part = wanted[start : start + self.chunk]
                if self.native:
                    rows += self._native_rows(conn, key, (preset, group_id, collection), part)
                else:
                    rows += _rows(conn.execute(query, {**scope, "keys": part}))
        for _, item in rows:
            found[getattr(item, key)] = item
        self._absent = frozenset((key, preset, group_id, collection, k) for k in wanted if k not in found)
        self._hold(rows)
        return found

    def _native_rows(
        self, conn: Connection, key: str, scope: tuple[str, str, str], keys: list[str]
    ) -> list[tuple[int, IdMap]]:
        """``_rows`` of a lookup on SQLite through the DB-API: the statement compiled once per
        size of IN list (padded with NULLs, which match nothing, to a power of two), the
        scope columns not read (the lookup's own), the datetimes parsed as SQLAlchemy wrote
        them (``datetime.fromisoformat``, each distinct value once; anything else by the
        column type's own result processor)."""
        size = 8
        while size < len(keys):
            size *= 2
        sql = self._reads.get((key, size))
        if sql is None:
            column = id_maps.c[key]
            query = select(*(id_maps.c[name] for name in ("id", *_ROW_FIELDS))).where(
                id_maps.c.preset == bindparam("scope_preset"),
                id_maps.c.group_id == bindparam("scope_group"),
                id_maps.c.collection == bindparam("scope_collection"),
                column.in_([bindparam(f"key_{n}") for n in range(size)]),
            )
            sql = self._reads[(key, size)] = str(query.compile(dialect=conn.dialect))
        params = (*scope, *keys, *([None] * (size - len(keys))))
        result = conn.exec_driver_sql(sql, params)
        try:  # the driver's tuples (SQLAlchemy's Row objects cost about 2 µs a row here)
            found = result.cursor.fetchall()
        finally:
            result.close()
        times: dict[Any, datetime | None] = {}  # a flush's rows share their times: each parsed once
        parse_time = self._parse_time

        def parse(value: Any) -> datetime | None:
            moment = times.get(value)
            if moment is None:
                moment = times[value] = parse_time(value)
            return moment

        return [_row_map(scope, values, parse) for values in found]  # the scope asked: not read

    def _parse_time(self, value: Any) -> datetime | None:
        if isinstance(value, datetime):  # a driver set up to parse them (detect_types)
            return _aware(value)
        if isinstance(value, str):
            try:
                return _aware(datetime.fromisoformat(value))
            except ValueError:
                pass
        processor = self._time_processor
        if processor is None:
            kind = id_maps.c.last_push_at.type.dialect_impl(self.engine.dialect)
            processor = self._time_processor = kind.result_processor(self.engine.dialect, None)
        return _aware(processor(value) if processor is not None else value)

    def _hold(self, rows: Iterable[tuple[int, IdMap]]) -> None:
        """Remember rows as read (by both ids) for :meth:`_save_held`; bounded."""
        if self._held_count > self.held_limit:
            self._held, self._held_count = {}, 0
        held = self._held
        scope: tuple[str, str, str] | None = None
        by_local: dict[str, tuple[int, IdMap]] = {}
        by_connec: dict[str, tuple[int, IdMap]] = {}
        before = 0  # entries of the scope's dicts before this call (the count is of entries)
        for row_id, item in rows:
            fields = item.__dict__
            if scope != (fields["preset"], fields["group_id"], fields["collection"]):
                self._held_count += len(by_local) + len(by_connec) - before
                scope = (fields["preset"], fields["group_id"], fields["collection"])
                by_local, by_connec = held.setdefault(scope, ({}, {}))
                before = len(by_local) + len(by_connec)
            local_id, connec_id = fields["local_id"], fields["connec_id"]
            if local_id is not None:
                by_local[local_id] = (row_id, item)
            if connec_id is not None:
                by_connec[connec_id] = (row_id, item)
        self._held_count += len(by_local) + len(by_connec) - before

    def by_connec(
        self, preset: str, group_id: str, collection: str, connec_ids: Iterable[str]
    ) -> dict[str, IdMap]:
        return self._lookup(_BY_CONNEC, "connec_id", preset, group_id, collection, connec_ids)

    def by_local(
        self, preset: str, group_id: str, collection: str, local_ids: Iterable[str]
    ) -> dict[str, IdMap]:
        return self._lookup(_BY_LOCAL, "local_id", preset, group_id, collection, local_ids)

    def save(self, maps: Sequence[IdMap]) -> None:
        if not maps:
            return
        if self._save_held(maps):
            return
        self._held, self._held_count = {}, 0  # what this save writes makes the rows read before it stale
        if self._new_links(maps):
            try:  # what a first sync saves: one multi-row insert, no planning query
                with self.engine.begin() as conn:
                    self._insert(conn, maps)
                return
            except IntegrityError:  # some were linked after all (rolled back): plan them
                pass
        with self.engine.begin() as conn:
            inserts, updates, slow = self._plan(conn, maps)
            # each row gets only the columns that differ from what it holds (a push changes
            # the hash and the push time: the indexes on the ids are left alone)
            by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
            for row_id, item, old in updates:
                changed = tuple(name for name in _ROW_FIELDS if getattr(item, name) != getattr(old, name))
                if changed:
                    values = {name: getattr(item, name) for name in changed}
                    if "pending" in changed:
                        values["pending"] = json.dumps(item.pending) if item.pending is not None else None
                    by_columns.setdefault(changed, []).append({"row_id": row_id, **values})
            for columns, rows in by_columns.items():
                self._executemany(conn, _update(columns), rows)
            if inserts:
                try:  # new links (a first sync): one multi-row insert
                    with conn.begin_nested():
                        self._insert(conn, [item for _, item in inserts])
                except IntegrityError:  # another worker linked some meanwhile: row by row
                    slow = sorted(slow + inserts, key=lambda pair: pair[0])
            for _, item in slow:
                self._upsert(conn, item)

    def _new_links(self, maps: Sequence[IdMap]) -> bool:
        """Whether each map has an id the latest lookup did not find (likely all inserts).

        Only picks the first statement: a multi-row insert that succeeds means no map met a
        row or another map of the batch (the unique constraints), which is what saving them
        one at a time would do; when it fails, the save is planned as usual."""
        absent = self._absent
        return bool(absent) and all(
            ("connec_id", m.preset, m.group_id, m.collection, m.connec_id) in absent
            or ("local_id", m.preset, m.group_id, m.collection, m.local_id) in absent
            for m in maps
        )

    def _insert(self, conn: Connection, maps: Sequence[IdMap]) -> None:
        """One multi-row insert; columns that are empty in every map are left to the table."""
        rows = []
        for item in maps:
            row = dict(vars(item))  # preset, group_id, collection and every column of the map
            if row["pending"] is not None:
                row["pending"] = json.dumps(row["pending"])
            rows.append(row)
        empty = {name for name in _ROW_FIELDS if all(row[name] is None for row in rows)}
        if not self.native:  # SQLAlchemy gets exactly the statement's values
            for row in rows:
                for name in empty:
                    del row[name]
        self._executemany(conn, _insert(tuple(name for name in rows[0] if name not in empty)), rows)

    def _save_held(self, maps: Sequence[IdMap]) -> bool:
        """Save maps whose rows the latest lookups read (a push writing back its results)
        without the planning query: each changed row by an update guarded by its ids as read.

        A save makes the row equal to the map (a planned save writes the columns that differ
        from the row as it is then), so whatever another worker wrote to the row since the
        read, writing every column but the ids gives the planned result, as long as the row
        is still the link that was read: the guard (``id``, ``connec_id`` and ``local_id`` as
        read) makes sure it is the row a planned save would match. The ids are written only
        when they change (so their unique indexes are left alone), and the unique
        constraints refuse an id another row holds. ``False`` (nothing written) when a map
        has no row read, two maps meet one row or id, or a guard misses (another worker
        relinked or removed the row, or an id is taken): :meth:`save` plans it then.

        A map equal to the row as read writes nothing, as a planned save would."""
        if not self._sane_rowcount:
            return False
        held = self._held
        plan: list[tuple[int, IdMap, IdMap]] = []
        rows_seen: set[int] = set()
        ids_seen: dict[tuple[str, str, str], tuple[set[str], set[str]]] = {}  # per scope
        scope: tuple[str, str, str] | None = None
        by_local: dict[str, tuple[int, IdMap]] = {}
        by_connec: dict[str, tuple[int, IdMap]] = {}
        locals_seen: set[str] = set()
        connecs_seen: set[str] = set()
        for item in maps:
            fields = item.__dict__
            if scope != (fields["preset"], fields["group_id"], fields["collection"]):
                scope = (fields["preset"], fields["group_id"], fields["collection"])
                if scope not in held:
                    return False
                by_local, by_connec = held[scope]
                locals_seen, connecs_seen = ids_seen.setdefault(scope, (set(), set()))
            local_id, connec_id = fields["local_id"], fields["connec_id"]
            hit = by_local.get(local_id) if local_id else None
            if hit is None and connec_id:
                hit = by_connec.get(connec_id)
            if hit is None or hit[0] in rows_seen or local_id in locals_seen or connec_id in connecs_seen:
                return False
            rows_seen.add(hit[0])
            if local_id:
                locals_seen.add(local_id)
            if connec_id:
                connecs_seen.add(connec_id)
            plan.append((hit[0], item, hit[1]))
        # each changed row is written whole but for its ids (its ids too when they change): the
        # row ends as the map, what a planned save gives whatever another worker wrote since the
        # read; the guard makes sure it is still the row a planned save would match
        relinked: list[list[Any]] = []
        same_ids: list[list[Any]] = []
        settled: list[list[Any]] = []  # same ids, no pending data before or after (most rows)
        for row_id, item, old in plan:
            new, was = _ROW_VALUES(item.__dict__), _ROW_VALUES(old.__dict__)
            if new == was:
                continue  # an echo: nothing to write
            if new[0] != was[0] or new[1] != was[1]:
                values = [*new, row_id, was[0], was[1]]
                relinked.append(values)
                at = _PENDING
            elif new[_PENDING] is None and was[_PENDING] is None:
                settled.append([*new[2:-1], row_id, was[0], was[1]])
                continue
            else:
                values = [*new[2:], row_id, was[0], was[1]]
                same_ids.append(values)
                at = _CONTENT_PENDING
            if values[at] is not None:
                values[at] = json.dumps(values[at])
        if settled or same_ids or relinked:
            try:
                with self.engine.begin() as conn:
                    for columns, rows in ((_SETTLED, settled), (_CONTENT, same_ids), (_ROW_FIELDS, relinked)):
                        if not rows:
                            continue
                        statement = _update(columns, guarded=True)
                        if self._execute_rows(conn, statement, (*columns, *_GUARD_NAMES), rows) != len(rows):
                            raise _Moved  # rolls the whole save back
            except (_Moved, IntegrityError):
                return False
        self._hold((row_id, item) for row_id, item, _ in plan)
        return True

    def _executemany(self, conn: Connection, statement: Any, rows: list[dict[str, Any]]) -> int:
        """Run ``statement`` once per row of values (by name); returns how many rows it matched.

        On SQLite see :meth:`_execute_rows`; other databases go through SQLAlchemy (which
        batches an insert into multi-row statements on PostgreSQL)."""
        if not self.native:
            return int(conn.execute(statement, rows).rowcount)
        names = self._compiled_form(conn, statement)[1]
        return self._execute_rows(conn, statement, names, [[row[name] for name in names] for row in rows])

    def _execute_rows(
        self, conn: Connection, statement: Any, names: tuple[str, ...], rows: list[list[Any]]
    ) -> int:
        """Run ``statement`` once per row of ``rows`` (values in the order of ``names``,
        converted in place); returns how many rows it matched.

        On SQLite the DB-API's own ``executemany`` runs the statement as compiled once
        (``exec_driver_sql``), the values converted as SQLAlchemy would store them (its
        column types' bind processors, each distinct value once: a batch shares its times;
        a ``bool`` is stored by sqlite3 as the integer the Boolean processor makes), without
        SQLAlchemy's processing of every row's parameters. Other databases get the values
        by name through SQLAlchemy."""
        if not self.native:
            return int(conn.execute(statement, [dict(zip(names, row, strict=True)) for row in rows]).rowcount)
        layout = self._layouts.get((statement, names))
        if layout is None:
            sql, order, converters = self._compiled_form(conn, statement)
            ordered = operator.itemgetter(*(names.index(name) for name in order))
            convert_at = [(names.index(order[index]), convert) for index, convert in converters]
            layout = self._layouts[(statement, names)] = (sql, ordered, convert_at)
        sql, ordered, convert_at = layout
        for index, convert in convert_at:
            done: dict[Any, Any] = {}
            for row in rows:
                value = row[index]
                if value is not None:
                    stored = done.get(value)
                    if stored is None:
                        stored = done[value] = convert(value)
                    row[index] = stored
        if len(names) == 1:
            return int(conn.exec_driver_sql(sql, [(ordered(row),) for row in rows]).rowcount)
        return int(conn.exec_driver_sql(sql, [ordered(row) for row in rows]).rowcount)

    def _compiled_form(
        self, conn: Connection, statement: Any
    ) -> tuple[str, tuple[str, ...], list[tuple[int, Any]]]:
        compiled = self._compiled.get(statement)
        if compiled is None:
            compiled = self._compiled[statement] = self._compile(conn, statement)
        return compiled

    @staticmethod
    def _compile(conn: Connection, statement: Any) -> tuple[str, tuple[str, ...], list[tuple[int, Any]]]:
        """``(SQL, parameter names in order, (position, bind processor) of the values to convert)``."""
        dialect = conn.dialect
        form = statement.compile(dialect=dialect)
        names = tuple(form.positiontup or ())
        converters = []
        for index, name in enumerate(names):
            kind = form.binds[name].type
            processor = (
                None if isinstance(kind, Boolean) else kind.dialect_impl(dialect).bind_processor(dialect)
            )
            if processor is not None:
                converters.append((index, processor))
        return form.string, names, converters

    @staticmethod
    def _values(item: IdMap) -> dict[str, Any]:
        values = {name: getattr(item, name) for name in _MAP_FIELDS}
        values["pending"] = json.dumps(item.pending) if item.pending is not None else None
        return values

    def _plan(
        self, conn: Connection, maps: Sequence[IdMap]
    ) -> tuple[list[tuple[int, IdMap]], list[tuple[int, IdMap, IdMap]], list[tuple[int, IdMap]]]:
        """``(inserts, updates (row id, map, the row as it is), row by row)`` from one query
        per collection: a map matches its row by local id, else by Connec! id. A map that
        meets a waiting row of another id, or shares a key or a row with an earlier map of
        the batch, goes row by row (:meth:`_upsert`, after the bulk statements, in batch
        order), so the result is what saving the maps one at a time gives. Inserts and
        row-by-row maps keep their index in the batch."""
        by_scope: dict[tuple[str, str, str], list[tuple[int, IdMap]]] = {}
        for index, item in enumerate(maps):
            by_scope.setdefault((item.preset, item.group_id, item.collection), []).append((index, item))
        inserts: list[tuple[int, IdMap]] = []
        updates: list[tuple[int, IdMap, IdMap]] = []
        slow: list[tuple[int, IdMap]] = []
        half = max(1, self.chunk // 2)  # two IN lists per query
        for (preset, group_id, collection), items in by_scope.items():
            local_ids = list({i.local_id for _, i in items if i.local_id is not None})
            connec_ids = list({i.connec_id for _, i in items if i.connec_id is not None})
            by_local: dict[str, int] = {}
            by_connec: dict[str, int] = {}
            held: dict[int, IdMap] = {}
            scope = _scope(preset, group_id, collection)
            for start in range(0, max(len(local_ids), len(connec_ids)), half):
                params = {
                    **scope,
                    "local_ids": local_ids[start : start + half],
                    "connec_ids": connec_ids[start : start + half],
                }
                for row_id, row in _rows(conn.execute(_PLAN, params)):
                    held[row_id] = row
                    if row.local_id is not None:
                        by_local[row.local_id] = row_id
                    if row.connec_id is not None:
                        by_connec[row.connec_id] = row_id
            seen: set[tuple[str, str]] = set()
            claimed: set[int] = set()
            for index, item in items:
                keys = [(k, v) for k, v in (("local", item.local_id), ("connec", item.connec_id)) if v]
                local_row = by_local.get(item.local_id) if item.local_id else None
                connec_row = by_connec.get(item.connec_id) if item.connec_id else None
                rows = {r for r in (local_row, connec_row) if r is not None}
                if any(key in seen for key in keys) or rows & claimed or len(rows) > 1:
                    slow.append((index, item))  # e.g. a waiting row of the same record merges in
                elif rows:
                    row_id = next(iter(rows))
                    updates.append((row_id, item, held[row_id]))
                else:
                    inserts.append((index, item))
                seen.update(keys)
                claimed.update(rows)
        return inserts, updates, slow

    def _upsert(self, conn: Connection, item: IdMap) -> None:
        scope = and_(
            id_maps.c.preset == item.preset,
            id_maps.c.group_id == item.group_id,
            id_maps.c.collection == item.collection,
        )
        values = self._values(item)
        for attempt in range(2):
            rows: Sequence[Any] = []
            if item.local_id is not None:
                rows = conn.execute(
                    select(id_maps.c.id).where(scope, id_maps.c.local_id == item.local_id)
                ).all()
            if not rows and item.connec_id is not None:
                rows = conn.execute(
                    select(id_maps.c.id).where(scope, id_maps.c.connec_id == item.connec_id)
                ).all()
            if rows:
                row_id = rows[0].id
                if item.local_id is not None and item.connec_id is not None:
                    # a waiting row of the same Connec! record merges into this one
                    conn.execute(
                        delete(id_maps).where(
                            scope,
                            id_maps.c.connec_id == item.connec_id,
                            id_maps.c.id != row_id,
                            id_maps.c.local_id.is_(None),
                        )
                    )
                conn.execute(update(id_maps).where(id_maps.c.id == row_id).values(**values))
                return
            try:
                with conn.begin_nested():
                    conn.execute(
                        insert(id_maps).values(
                            preset=item.preset, group_id=item.group_id, collection=item.collection, **values
                        )
                    )
                return
            except IntegrityError:
                if attempt:  # pragma: no cover - a row that conflicts yet cannot be found
                    raise
                # another worker inserted it meanwhile: update theirs

    def pending(self, preset: str, group_id: str, limit: int = 1000) -> list[IdMap]:
        query = (
            select(id_maps)
            .where(id_maps.c.preset == preset, id_maps.c.group_id == group_id, id_maps.c.pending.is_not(None))
            .order_by(id_maps.c.id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return _row_maps(conn.execute(query))

    # -- runs ------------------------------------------------------------------------------

    def add_run(self, run: SyncRun) -> SyncRun:
        with self.engine.begin() as conn:
            result = conn.execute(
                insert(sync_runs).values(
                    preset=run.preset,
                    group_id=run.group_id,
                    status=run.status,
                    started_at=run.started_at,
                    finished_at=run.finished_at,
                    partial=run.partial,
                    full=run.full,
                    message=run.message,
                    counts=json.dumps(run.counts),
                )
            )
            run_id = result.inserted_primary_key[0] if result.inserted_primary_key else None
            group = and_(sync_runs.c.preset == run.preset, sync_runs.c.group_id == run.group_id)
            keep = select(sync_runs.c.id).where(group).order_by(sync_runs.c.id.desc()).limit(RUNS_KEPT)
            conn.execute(delete(sync_runs).where(group, sync_runs.c.id.not_in(keep.scalar_subquery())))
        return replace(run, id=run_id)

    def update_run(self, run: SyncRun) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(sync_runs)
                .where(sync_runs.c.id == run.id)
                .values(
                    status=run.status,
                    started_at=run.started_at,
                    partial=run.partial,
                    full=run.full,
                    finished_at=run.finished_at,
                    message=run.message,
                    counts=json.dumps(run.counts),
                )
            )

    def runs(self, preset: str, group_id: str, limit: int = RUNS_KEPT) -> list[SyncRun]:
        query = (
            select(sync_runs)
            .where(sync_runs.c.preset == preset, sync_runs.c.group_id == group_id)
            .order_by(sync_runs.c.id.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [_row_run(row) for row in conn.execute(query).all()]

    # -- groups ------------------------------------------------------------------------------

    def is_enabled(self, preset: str, group_id: str) -> bool | None:
        query = select(sync_groups.c.sync_enabled).where(
            sync_groups.c.preset == preset, sync_groups.c.group_id == group_id
        )
        with self.engine.connect() as conn:
            value = conn.execute(query).scalar_one_or_none()
        return None if value is None else bool(value)

    def set_enabled(self, preset: str, group_id: str, enabled: bool) -> None:
        where = and_(sync_groups.c.preset == preset, sync_groups.c.group_id == group_id)
        with self.engine.begin() as conn:
            if conn.execute(update(sync_groups).where(where).values(sync_enabled=enabled)).rowcount:
                return
            try:
                with conn.begin_nested():
                    conn.execute(
                        insert(sync_groups).values(preset=preset, group_id=group_id, sync_enabled=enabled)
                    )
            except IntegrityError:
                conn.execute(update(sync_groups).where(where).values(sync_enabled=enabled))

    def enabled_groups(self) -> list[tuple[str, str]]:
        query = (
            select(sync_groups.c.preset, sync_groups.c.group_id)
            .where(sync_groups.c.sync_enabled.is_(True))
            .order_by(sync_groups.c.preset, sync_groups.c.group_id)
        )
        with self.engine.connect() as conn:
            return [(row.preset, row.group_id) for row in conn.execute(query).all()]

    # -- the outbox ----------------------------------------------------------------------------

    def outbox(self, preset: str, group_id: str, *, after: int = 0, limit: int = 1000) -> list[OutboxEntry]:
        query = (
            select(sync_outbox)
            .where(
                sync_outbox.c.preset == preset, sync_outbox.c.group_id == group_id, sync_outbox.c.id > after
            )
            .order_by(sync_outbox.c.id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [
                OutboxEntry(
                    row.id,
                    row.preset,
                    row.group_id,
                    row.collection,
                    row.local_id,
                    bool(row.archived),
                    _aware(row.created_at) or datetime.now(timezone.utc),
                )
                for row in conn.execute(query).all()
            ]

    def outbox_groups(self) -> list[tuple[str, str]]:
        query = (
            select(sync_outbox.c.preset, sync_outbox.c.group_id)
            .distinct()
            .order_by(sync_outbox.c.preset, sync_outbox.c.group_id)
        )
        with self.engine.connect() as conn:
            return [(row.preset, row.group_id) for row in conn.execute(query).all()]

    def outbox_done(self, preset: str, group_id: str, done: Sequence[tuple[str, str, int]]) -> None:
        if not done:
            return
        statement = delete(sync_outbox).where(
            sync_outbox.c.preset == preset,
            sync_outbox.c.group_id == group_id,
            sync_outbox.c.collection == bindparam("done_collection"),
            sync_outbox.c.local_id == bindparam("done_local"),
            sync_outbox.c.id <= bindparam("done_id"),
        )
        rows = [{"done_collection": c, "done_local": i, "done_id": n} for c, i, n in done]
        with self.engine.begin() as conn:
            conn.execute(statement, rows)


def write_outbox(conn: Connection, captured: Sequence[tuple[str, str, str, str, bool]]) -> list[int]:
    """Write outbox rows ``(preset, group_id, collection, local_id, archived)`` on ``conn``
    (the host's transaction): each record's older rows go, one new row each; returns the new
    rows' ids, in order."""
    if not captured:
        return []
    by_scope: dict[tuple[str, str, str], list[str]] = {}
    for preset, group_id, collection, local_id, _ in captured:
        by_scope.setdefault((preset, group_id, collection), []).append(local_id)
    for (preset, group_id, collection), local_ids in by_scope.items():
        for start in range(0, len(local_ids), 500):
            conn.execute(
                delete(sync_outbox).where(
                    sync_outbox.c.preset == preset,
                    sync_outbox.c.group_id == group_id,
                    sync_outbox.c.collection == collection,
                    sync_outbox.c.local_id.in_(local_ids[start : start + 500]),
                )
            )
    now = datetime.now(timezone.utc)
    rows = [
        {"preset": p, "group_id": g, "collection": c, "local_id": i, "archived": a, "created_at": now}
        for p, g, c, i, a in captured
    ]
    result = conn.execute(insert(sync_outbox).returning(sync_outbox.c.id, sort_by_parameter_order=True), rows)
    return [row.id for row in result.all()]


#: ``session.info`` keys: changes applied from Connec! (not pushed back) and captured changes.
APPLYING = "maestrano_sync_applying"
CAPTURED = "maestrano_sync_changes"
#: ``session.info`` key: the outbox row id of each captured record
OUTBOX_IDS = "maestrano_sync_outbox_ids"
#: ``session.info`` key: a savepoint of the transaction rolled back (some captures with it)
SAVEPOINT_ROLLED_BACK = "maestrano_sync_savepoint_rolled_back"


def _existing_rows(store: Any, row_ids: Sequence[int]) -> set[int]:
    """Which of these outbox rows exist (a rolled-back savepoint took its own with it)."""
    found: set[int] = set()
    with store.engine.connect() as conn:
        for start in range(0, len(row_ids), 500):
            part = row_ids[start : start + 500]
            found.update(conn.execute(select(sync_outbox.c.id).where(sync_outbox.c.id.in_(part))).scalars())
    return found


# -- a mapping from a model ------------------------------------------------------------------


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _get_path(data: Mapping[str, Any], path: str) -> Any:
    value: Any = data
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _set_path(data: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    for part in parts[:-1]:
        data = data.setdefault(part, {})
    data[parts[-1]] = value


class ModelMapping(SyncMapping):
    """A Flask-SQLAlchemy model as a :class:`~flask_maestrano.sync.mapping.Mapping`.

    >>> contacts = ModelMapping(  # doctest: +SKIP
    ...     db.session, Contact, "people",
    ...     fields={"first_name": "first_name", "last_name": "last_name", "email.address": "email"},
    ...     references={"organization_id": ("organizations", "company_id")},
    ...     group="group_uid", updated_at="updated_at", conflict="recent")

    ``fields`` maps Connec! field paths (dotted for nested objects, e.g. ``email.address``)
    to model attributes; ``references`` maps a Connec! reference field to the referenced
    collection and the attribute holding the referenced record's local id. A sub-record
    reference (``"lines/item_id": ("items", None)``) lives inside a field mapped to a JSON
    attribute (``fields={"lines": "lines"}``), which holds local ids there. ``group`` is the
    attribute holding the group uid (``cld-...``), ``preset`` the one holding the preset name
    (else the default preset). ``archived`` names a boolean attribute set when Connec!
    archives the entity. ``matching_fields`` (Connec! paths among ``fields``) find an
    unlinked twin instead of creating a duplicate. With ``updated_at``, a run pushes the
    records changed after the last run that the hook did not push
    (:meth:`~flask_maestrano.sync.Mapping.changed_since`). Local ids are the primary key as a
    string.
    """

    def __init__(
        self,
        session: Any,
        model: type[Any],
        collection: str,
        *,
        fields: Mapping[str, str],
        references: Mapping[str, tuple[str, str | None]] | None = None,
        group: str = "group_id",
        preset: str | None = None,
        updated_at: str | None = None,
        archived: str | None = None,
        conflict: str = "recent",
        matching_fields: Sequence[str] = (),
    ) -> None:
        self.session = session
        self.model = model
        self.collection = collection  # type: ignore[misc]
        self.field_map = dict(fields)
        self.reference_map = dict(references or {})
        self.references = {name: target for name, (target, _) in self.reference_map.items()}  # type: ignore[misc]
        self.group_attr = group
        self.preset_attr = preset
        self.updated_attr = updated_at
        self.archived_attr = archived
        self.conflict = conflict  # type: ignore[misc]
        unknown = [path for path in matching_fields if path not in self.field_map]
        if unknown:
            raise ValueError(f"matching_fields must be among the mapped fields, not {', '.join(unknown)}")
        self.matching_fields = tuple(matching_fields)  # type: ignore[misc]
        for name, (_, attr) in self.reference_map.items():
            if (attr is None) != ("/" in name):
                raise ValueError(
                    f"reference {name!r}: a top-level reference needs the attribute holding the "
                    "local id; a sub-record one (with /) lives in a mapped JSON field (attribute None)"
                )
        self._key = inspect(model).primary_key[0].key
        #: the model attributes whose change is worth a push
        self.watch = (
            *self.field_map.values(),
            *(attr for _, attr in self.reference_map.values() if attr is not None),
        )

    def to_connec(self, record: Any) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for path, attr in self.field_map.items():
            _set_path(data, path, _plain(getattr(record, attr)))
        for name, (_, ref_attr) in self.reference_map.items():
            if ref_attr is not None:
                value = getattr(record, ref_attr)
                data[name] = None if value is None else str(value)
        return data

    def local_id(self, record: Any) -> str:
        return str(getattr(record, self._key))

    def find(self, local_id: str) -> Any | None:
        column = getattr(self.model, self._key)
        try:
            key = column.type.python_type(local_id)
        except (ValueError, NotImplementedError):
            return None
        return self.session.get(self.model, key)

    def _assign(self, record: Any, data: dict[str, Any]) -> None:
        for path, attr in self.field_map.items():
            setattr(record, attr, _get_path(data, path))
        for name, (_, ref_attr) in self.reference_map.items():
            if ref_attr is None:
                continue
            value = data.get(name)
            column = getattr(self.model, ref_attr)
            setattr(record, ref_attr, None if value is None else column.type.python_type(value))

    def create(self, data: dict[str, Any], *, preset: str, group_id: str) -> Any:
        self.session.info[APPLYING] = True  # what Connec! sent is not a local change to push
        record = self.model()
        setattr(record, self.group_attr, group_id)
        if self.preset_attr:
            setattr(record, self.preset_attr, preset)
        self._assign(record, data)
        self.session.add(record)
        self.session.flush()
        return record

    def update(self, record: Any, data: dict[str, Any]) -> None:
        self.session.info[APPLYING] = True
        self._assign(record, data)
        self.session.flush()

    def archive(self, record: Any) -> None:
        if self.archived_attr:
            self.session.info[APPLYING] = True  # archived by Connec!: not a local change to push
            setattr(record, self.archived_attr, True)
            self.session.flush()

    def archived(self, record: Any) -> bool:
        return bool(getattr(record, self.archived_attr)) if self.archived_attr else False

    def commit(self) -> None:
        try:
            self.session.commit()
        finally:
            self.session.info.pop(APPLYING, None)

    def rollback(self) -> None:
        try:
            self.session.rollback()
        finally:
            self.session.info.pop(APPLYING, None)

    def updated_at(self, record: Any) -> datetime | None:
        return parse_time(getattr(record, self.updated_attr)) if self.updated_attr else None

    def scope(self, record: Any) -> tuple[str | None, str]:
        preset = getattr(record, self.preset_attr) if self.preset_attr else None
        return preset, str(getattr(record, self.group_attr))

    def _of_group(self, preset: str, group_id: str) -> Any:
        query = select(self.model).where(getattr(self.model, self.group_attr) == group_id)
        if self.preset_attr:
            query = query.where(getattr(self.model, self.preset_attr) == preset)
        return query

    def match(self, data: dict[str, Any], *, preset: str, group_id: str) -> Any | None:
        """The one record of the group whose ``matching_fields`` equal ``data``'s (none when a
        value is missing or several match)."""
        if not self.matching_fields:
            return None
        query = self._of_group(preset, group_id)
        for path in self.matching_fields:
            value = _get_path(data, path)
            if value is None or value == "":
                return None
            query = query.where(getattr(self.model, self.field_map[path]) == value)
        found = self.session.execute(query.limit(2)).scalars().all()
        return found[0] if len(found) == 1 else None

    def changed_since(self, since: datetime | None, *, preset: str, group_id: str) -> Iterable[Any]:
        """The group's records whose ``updated_at`` attribute is after ``since`` (every record
        of the group when ``since`` is ``None``); none without ``updated_at``."""
        if not self.updated_attr:
            return ()
        query = self._of_group(preset, group_id)
        if since is not None:
            query = query.where(getattr(self.model, self.updated_attr) > since)
        return list(self.session.execute(query.order_by(getattr(self.model, self._key))).scalars())


# -- the after-commit hook ---------------------------------------------------------------------


def _archived_now(mapping: ModelMapping, obj: Any) -> bool:
    """Whether this flush set the record's ``archived`` attribute."""
    if not mapping.archived_attr or not getattr(obj, mapping.archived_attr):
        return False
    return bool(inspect(obj).attrs[mapping.archived_attr].history.has_changes())


def _bind_of(session: Any, model: type[Any]) -> Any:
    """The engine (or connection) ``session`` uses for ``model``'s table."""
    get_bind = getattr(session, "get_bind", None)
    if callable(get_bind):  # a Session or scoped_session (db.session)
        return get_bind(mapper=inspect(model))
    return getattr(session, "kw", {}).get("bind")  # a sessionmaker


def _same_database(bind: Any, engine: Engine) -> bool:
    bound = getattr(bind, "engine", bind)
    if bound is engine:
        return True
    url = getattr(bound, "url", None)
    return url is not None and url == engine.url and url.database not in (None, "", ":memory:")


def _check_outbox(app: Any, session: Any, store: Any, models: Iterable[type[Any]]) -> None:
    """The outbox commits with the host's changes only on the same database: refuse otherwise."""
    if not isinstance(store, SqlAlchemySyncStore):
        raise ConfigurationError(
            "sync_on_commit needs a SqlAlchemySyncStore on the database of the session: its "
            "outbox table commits with your changes"
        )
    with app.app_context():
        for model in models:
            bind = _bind_of(session, model)
            if bind is None or not _same_database(bind, store.engine):
                where = getattr(getattr(bind, "engine", bind), "url", None)
                raise ConfigurationError(
                    f"sync_on_commit: {model.__name__} is stored on "
                    f"{where.render_as_string() if where is not None else 'an unknown database'}, "
                    f"the sync store on {store.engine.url.render_as_string()}: the outbox must commit "
                    "with your changes, so give SqlAlchemySyncStore the engine of the session "
                    "(e.g. SqlAlchemySyncStore(db.engine))"
                )
    if not inspect(store.engine).has_table(sync_outbox.name):
        raise ConfigurationError(
            f"sync_on_commit: the table {sync_outbox.name} does not exist: call store.create_tables() "
            "(it adds the tables a database lacks)"
        )


def sync_on_commit(app: Any, session: Any, *, background: bool = False) -> Callable[[], None]:
    """Push the records of mapped models that a commit of ``session`` created or changed.

    Opt-in: call once after :func:`flask_maestrano.syncing.configure` (``session`` is
    ``db.session`` or a ``sessionmaker``). After each flush, the records of
    :class:`ModelMapping` models that are new, or whose mapped attributes changed, are
    captured as their Connec! fields, and those deleted or newly archived (the mapping's
    ``archived`` attribute set) as archives (``status: ARCHIVED`` in Connec!, which has no
    hard delete). Each captured record gets a row in the sync store's outbox
    (``maestrano_sync_outbox``), written through the session's own connection, so it
    commits or rolls back with the change itself. After the commit the changes are sent in
    ``/batch`` calls: in this thread, or with ``background=True`` on the app's executor (a
    task queue's executor gets a push job of the group's outbox). A row is removed once
    Connec! answered its record; a change whose push failed or never happened (the process
    died) stays in the outbox and the group's next run, push job or ``flask maestrano jobs
    resume`` sends it. Changes applied from Connec! are not captured. A failed push never
    fails the commit: errors are logged and stored on the id maps. Returns what removes the
    hook.

    Raises :class:`~flask_maestrano.errors.ConfigurationError` when the sync store is not a
    :class:`SqlAlchemySyncStore` on the session's database, or its outbox table is missing
    (:meth:`SqlAlchemySyncStore.create_tables` adds it).
    """
    setup = syncing.setup_of(app)
    if setup is None:
        raise RuntimeError("call flask_maestrano.syncing.configure(app, store, mappings) first")
    by_model = {m.model: m for m in setup.mappings if isinstance(m, ModelMapping)}
    _check_outbox(app, session, setup.store, by_model)
    state = get_state(app)

    def preset_name(mapping: ModelMapping, obj: Any, name: str | None) -> str | None:
        try:
            return state.preset(name).name
        except MaestranoError as exc:
            local_id = mapping.local_id(obj)
            log.warning("Maestrano sync: %s %s not captured: %s", mapping.collection, local_id, exc)
            return None

    def capture(captured: dict[Any, Any], mapping: ModelMapping, obj: Any, archived: bool) -> Any:
        preset, group_id = mapping.scope(obj)
        name = preset_name(mapping, obj, preset)
        if name is None:
            return None
        local_id = mapping.local_id(obj)
        payload = {} if archived else mapping.to_connec(obj)
        key = (mapping.collection, local_id)
        captured[key] = (name, group_id, Change(mapping.collection, local_id, payload, archived=archived))
        return key

    def after_flush(sess: Any, _context: Any) -> None:
        if sess.info.get(APPLYING):
            return
        captured = sess.info.setdefault(CAPTURED, {})
        now: list[tuple[str, str]] = []
        model: type[Any] | None = None
        for obj in [*sess.new, *sess.dirty]:
            mapping = by_model.get(type(obj))
            if mapping is None:
                continue
            archived = _archived_now(mapping, obj)
            if obj not in sess.new and not archived:
                attrs = inspect(obj).attrs
                if not any(attrs[name].history.has_changes() for name in mapping.watch):
                    continue
            if (key := capture(captured, mapping, obj, archived)) is not None:
                now.append(key)
                model = type(obj)
        for obj in sess.deleted:  # deleted: archived in Connec!, which has no hard delete
            mapping = by_model.get(type(obj))
            if mapping is not None and (key := capture(captured, mapping, obj, True)) is not None:
                now.append(key)
                model = type(obj)
        if model is not None:  # the outbox rows, in the host's transaction
            keys = list(dict.fromkeys(now))
            rows = [(*captured[k][:2], k[0], k[1], captured[k][2].archived) for k in keys]
            conn = sess.connection(bind_arguments={"mapper": inspect(model)})
            ids = sess.info.setdefault(OUTBOX_IDS, {})
            ids.update(zip(keys, write_outbox(conn, rows), strict=True))
        if not captured:
            sess.info.pop(CAPTURED, None)

    def send(changes: list[Any]) -> None:
        try:
            syncing.push_committed(app, changes)
        except Exception:
            log.exception(
                "Maestrano sync: pushing %d committed change(s) failed; the outbox keeps them", len(changes)
            )

    def in_context(changes: list[Any]) -> None:
        with app.app_context():
            send(changes)

    def after_commit(sess: Any) -> None:
        captured = sess.info.pop(CAPTURED, None)
        ids = sess.info.pop(OUTBOX_IDS, {})
        partial = sess.info.pop(SAVEPOINT_ROLLED_BACK, False)
        if not captured:
            return
        changes = [(name, group_id, change, ids[key]) for key, (name, group_id, change) in captured.items()]
        if partial:  # a savepoint rolled back: only the changes whose outbox rows it kept
            kept = _existing_rows(setup.store, [row for *_, row in changes])
            changes = [change for change in changes if change[3] in kept]
            if not changes:
                return
        if not background:
            send(changes)
            return
        executor = state.imports.executor
        try:
            if callable(getattr(executor, "submit_sync", None)):  # a task queue: a push job per group
                groups = dict.fromkeys((name, group_id) for name, group_id, *_ in changes)
                syncing.queue_push(app, list(groups))
            else:
                executor.submit(in_context, changes)
        except Exception:  # the executor or its broker is down: the commit stands, the outbox keeps them
            log.exception("Maestrano sync: could not queue the push of %d change(s)", len(changes))

    def after_rollback(sess: Any) -> None:
        if sess.in_nested_transaction():  # a savepoint: the outer transaction's changes still commit
            sess.info[SAVEPOINT_ROLLED_BACK] = True
            return
        sess.info.pop(SAVEPOINT_ROLLED_BACK, None)
        sess.info.pop(CAPTURED, None)
        sess.info.pop(OUTBOX_IDS, None)

    hooks = (("after_flush", after_flush), ("after_commit", after_commit), ("after_rollback", after_rollback))
    for name, fn in hooks:
        event.listen(session, name, fn)

    def remove() -> None:
        for name, fn in hooks:
            event.remove(session, name, fn)

    return remove
