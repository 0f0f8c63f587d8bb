"""The SQLAlchemy id-map store and the engine's hot paths write what a record-by-record sync writes.

The store plans each ``save`` in bulk (one lookup, one executemany update, one multi-row
insert per call); these tests hold it to the plain semantics of the protocol ("matched by
local id, else by Connec! id; a waiting row of the same Connec! record merges in"), played
record by record against an in-memory reference, on a real SQLite file in WAL mode.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator, Sequence
from dataclasses import astuple, replace
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, event, select

from flask_maestrano.contrib.sqlalchemy import SqlAlchemySyncStore, id_maps
from flask_maestrano.sync import IdMap, Mapping, SyncEngine, payload_hash

GROUP = "cld-1"
T0 = datetime(2024, 1, 31, 10, 0, tzinfo=timezone.utc)


def sqlite_engine(path: Any) -> Engine:
    engine = create_engine(f"sqlite:///{path}")

    @event.listens_for(engine, "connect")
    def wal(connection: Any, _record: Any) -> None:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")

    return engine


@pytest.fixture
def store(tmp_path: Any) -> Iterator[SqlAlchemySyncStore]:
    engine = sqlite_engine(tmp_path / "maps.db")
    made = SqlAlchemySyncStore(engine)
    made.create_tables()
    yield made
    engine.dispose()


class ReferenceStore:
    """``save`` as the protocol states it, one map at a time, in memory."""

    def __init__(self) -> None:
        self.rows: list[IdMap] = []

    def save(self, maps: Sequence[IdMap]) -> None:
        for item in maps:
            scope = (item.preset, item.group_id, item.collection)
            same = [r for r in self.rows if (r.preset, r.group_id, r.collection) == scope]
            row = next((r for r in same if item.local_id is not None and r.local_id == item.local_id), None)
            if row is None:
                row = next(
                    (r for r in same if item.connec_id is not None and r.connec_id == item.connec_id), None
                )
            if row is None:
                self.rows.append(item)
                continue
            if item.local_id is not None and item.connec_id is not None:
                self.rows = [
                    r
                    for r in self.rows
                    if r is row
                    or not ((r.preset, r.group_id, r.collection) == scope and r.connec_id == item.connec_id)
                    or r.local_id is not None
                ]
            self.rows[self.rows.index(row)] = item


def table(store: SqlAlchemySyncStore) -> list[tuple[Any, ...]]:
    """Every id map in the table, as comparable tuples."""
    with store.engine.connect() as conn:
        ids = [(r.collection, r.local_id, r.connec_id) for r in conn.execute(select(id_maps)).all()]
    found: list[IdMap] = []
    for collection in {c for c, _, _ in ids}:
        by_local = store.by_local(
            "p", GROUP, collection, [lid for c, lid, _ in ids if c == collection and lid]
        )
        waiting = store.by_connec(
            "p", GROUP, collection, [cid for c, lid, cid in ids if c == collection and not lid and cid]
        )
        found += [*by_local.values(), *waiting.values()]
    assert len(found) == len(ids)
    return sorted(_key(m) for m in found)


def _key(item: IdMap) -> tuple[Any, ...]:
    values = astuple(replace(item, pending=None))
    return (*("" if v is None else str(v) for v in values), str(sorted((item.pending or {}).items())))


def random_batches(seed: int) -> list[list[IdMap]]:
    """Batches that insert, update by either id, link waiting rows and repeat keys in a batch."""
    rng = random.Random(seed)
    batches: list[list[IdMap]] = []
    for step in range(12):
        batch: list[IdMap] = []
        for _ in range(rng.randint(1, 40)):
            n = rng.randint(0, 30)
            kind = rng.random()
            collection = rng.choice(["people", "organizations"])
            base = IdMap(
                "p", GROUP, collection, hash=f"h{step}-{n}", last_pull_at=T0 + timedelta(seconds=step)
            )
            if kind < 0.2:  # a Connec! record waiting for a reference
                batch.append(replace(base, connec_id=f"c{n}", pending={"id": f"c{n}", "step": step}))
            elif kind < 0.4:  # pushed, no answer yet
                batch.append(replace(base, local_id=str(n), message=f"failed {step}", last_pull_at=None))
            else:  # linked
                batch.append(
                    replace(base, local_id=str(n), connec_id=f"c{n}", last_push_at=T0, to_connec=kind < 0.9)
                )
        batches.append(batch)
    return batches


@pytest.mark.parametrize("native", [True, False], ids=["driver", "sqlalchemy"])
@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_bulk_save_writes_what_saving_one_map_at_a_time_writes(
    store: SqlAlchemySyncStore, seed: int, native: bool
) -> None:
    # table() reads every row back after each batch, so the next batch's saves of read rows
    # take the guarded path and the others (and every guard that misses) the planned one
    store.native = native
    reference = ReferenceStore()
    for batch in random_batches(seed):
        store.save(batch)
        reference.save(batch)
        assert table(store) == sorted(_key(m) for m in reference.rows)


def test_two_workers_linking_the_same_records_end_with_one_row_each(tmp_path: Any) -> None:
    engine = sqlite_engine(tmp_path / "maps.db")
    stores = [SqlAlchemySyncStore(engine), SqlAlchemySyncStore(sqlite_engine(tmp_path / "maps.db"))]
    stores[0].create_tables()
    maps = [IdMap("p", GROUP, "people", connec_id=f"c{n}", local_id=str(n), hash=f"h{n}") for n in range(200)]
    barrier = threading.Barrier(2)
    failures: list[BaseException] = []

    def work(which: SqlAlchemySyncStore, part: list[IdMap]) -> None:
        try:
            barrier.wait(timeout=10)
            for start in range(0, len(part), 25):
                which.save(part[start : start + 25])
        except BaseException as exc:  # pragma: no cover - reported below
            failures.append(exc)

    threads = [
        threading.Thread(target=work, args=(stores[0], maps)),
        threading.Thread(target=work, args=(stores[1], list(reversed(maps)))),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not failures
    with engine.connect() as conn:
        rows = conn.execute(select(id_maps.c.local_id, id_maps.c.connec_id)).all()
    assert sorted(rows, key=lambda r: int(r[0])) == [(str(n), f"c{n}") for n in range(200)]


def test_payload_hashes_are_stable() -> None:
    # pinned: id maps written before keep matching (a changed hash would read as a local change)
    assert payload_hash({"name": "Org 1", "email": {"address": "o1@example.com"}}) == (
        "c9092a8215e99ba73ba2edbfb1fc6055"
    )
    assert payload_hash({"b": 150.0, "a": [1, {"x": None, "y": T0}], "c": None, 1: "one"}) == (
        "8fa0098ae40fb5b0ca97d0fd0f90ce84"
    )
    assert payload_hash({"amount": 1.5, "tags": ("a", "b"), "ok": True}) == payload_hash(
        {"ok": True, "tags": ["a", "b"], "amount": 1.5}
    )


def test_an_update_writes_only_the_columns_that_changed(store: SqlAlchemySyncStore) -> None:
    linked = [IdMap("p", GROUP, "people", connec_id=f"c{n}", local_id=str(n), hash="old") for n in range(5)]
    store.save(linked)
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(" ".join(statement.split()))

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        store.save([replace(m, hash="new", last_push_at=T0) for m in linked])  # what a push writes
        store.save([replace(m, hash="new", last_push_at=T0) for m in linked])  # nothing new
    finally:
        event.remove(store.engine, "before_cursor_execute", record)
    updates = [s for s in statements if s.startswith("UPDATE")]
    assert updates == [
        "UPDATE maestrano_id_maps SET last_push_at=?, hash=? WHERE maestrano_id_maps.id = ?"
    ]  # the id columns (and their unique indexes) untouched; the second save wrote nothing
    assert [m.hash for m in store.by_local("p", GROUP, "people", [str(n) for n in range(5)]).values()] == [
        "new"
    ] * 5


def _statements(engine: Engine) -> tuple[list[str], Any]:
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement.split()[0])

    event.listen(engine, "before_cursor_execute", record)
    return seen, lambda: event.remove(engine, "before_cursor_execute", record)


def test_saving_rows_just_read_skips_the_plan_and_a_relinked_row_falls_back(tmp_path: Any) -> None:
    engine = sqlite_engine(tmp_path / "maps.db")
    ours, theirs = SqlAlchemySyncStore(engine), SqlAlchemySyncStore(sqlite_engine(tmp_path / "maps.db"))
    ours.create_tables()
    ids = [str(n) for n in range(6)]
    ours.save([IdMap("p", GROUP, "people", connec_id=f"c{n}", local_id=n, hash="old") for n in ids])

    read = ours.by_local("p", GROUP, "people", ids)  # what a flush reads before its /batch calls
    statements, stop = _statements(engine)
    try:
        ours.save([replace(read[n], hash="pushed", last_push_at=T0) for n in ids])
    finally:
        stop()
    assert statements == ["UPDATE"]  # one guarded update, no planning query
    assert {m.hash for m in ours.by_local("p", GROUP, "people", ids).values()} == {"pushed"}

    # another worker changes row 2 (and row 4, in a column ours does not change) between our
    # read and our save: the rows are still the links that were read, so the one update
    # writes them whole but for their ids, and every row ends as ours says (what a planned
    # save, writing the columns that differ from the row as it is then, gives too)
    read = ours.by_local("p", GROUP, "people", ids)
    theirs.save([replace(read["2"], hash="theirs", message="theirs"), replace(read["4"], to_connec=False)])
    statements, stop = _statements(engine)
    try:
        ours.save([replace(read[n], hash="again", last_push_at=T0 + timedelta(hours=1)) for n in ids])
    finally:
        stop()
    assert statements == ["UPDATE"]
    after = ours.by_local("p", GROUP, "people", ids)
    for n in ids:
        assert after[n] == replace(read[n], hash="again", last_push_at=T0 + timedelta(hours=1))

    # another worker relinks row 3 to another Connec! record between our read and our save:
    # the guard (the ids as read) misses, nothing of the guarded update stays, the save is
    # planned, and every row ends as ours says
    read = ours.by_local("p", GROUP, "people", ids)
    theirs.save([replace(read["3"], connec_id="c3-other", hash="theirs")])
    statements, stop = _statements(engine)
    try:
        ours.save([replace(read[n], hash="third", message="m") for n in ids])
    finally:
        stop()
    assert statements[0] == "UPDATE" and "SELECT" in statements  # tried, then planned
    after = ours.by_local("p", GROUP, "people", ids)
    for n in ids:
        assert after[n] == replace(read[n], hash="third", message="m")
    assert ours.by_connec("p", GROUP, "people", ["c3-other"]) == {}

    # another worker stores Connec!'s entity 5 waiting for a reference on row 5: an update
    # that leaves ``pending`` alone applies only to a row that waits for nothing, so the
    # guard misses, the save is planned, and row 5 ends as ours says (waiting for nothing)
    read = ours.by_local("p", GROUP, "people", ids)
    theirs.save([replace(read["5"], pending={"id": "c5"}, message="waiting")])
    statements, stop = _statements(engine)
    try:
        ours.save([replace(read[n], hash="fourth") for n in ids])
    finally:
        stop()
    assert statements[0] == "UPDATE" and "SELECT" in statements  # tried, then planned
    after = ours.by_local("p", GROUP, "people", ids)
    for n in ids:
        assert after[n] == replace(read[n], hash="fourth")


def test_a_guarded_update_that_takes_a_waiting_rows_id_falls_back_to_the_merge(
    store: SqlAlchemySyncStore,
) -> None:
    store.save([IdMap("p", GROUP, "people", local_id="7", message="no answer yet")])  # pushed, unanswered
    read = store.by_local("p", GROUP, "people", ["7"])["7"]
    # meanwhile a pull stored Connec!'s record c7 waiting for a reference
    store.save([IdMap("p", GROUP, "people", connec_id="c7", pending={"id": "c7"}, message="waiting")])
    linked = replace(read, connec_id="c7", hash="h", message=None)
    store.by_local("p", GROUP, "people", ["7"])  # read again: the save below takes the guarded path
    store.save([linked])  # the unique constraint refuses it; the planned save merges the waiting row
    with store.engine.connect() as conn:
        rows = conn.execute(select(id_maps.c.local_id, id_maps.c.connec_id, id_maps.c.pending)).all()
    assert rows == [("7", "c7", None)]


def test_the_driver_path_writes_and_reads_what_sqlalchemy_writes_and_reads(tmp_path: Any) -> None:
    maps = [
        IdMap("p", GROUP, "people", connec_id="c1", local_id="1", hash="h1", last_pull_at=T0),
        IdMap(
            "p",
            GROUP,
            "people",
            connec_id="c2",
            local_id="2",
            last_push_at=T0 + timedelta(microseconds=123456),
            last_pull_at=datetime(2024, 2, 1, 12, 30, tzinfo=timezone(timedelta(hours=2))).astimezone(
                timezone.utc
            ),
            archived_at=T0 + timedelta(days=1),
            hash="h2",
            message="Connec! answered 422: é \u2028",
            to_connec=False,
            to_external=False,
        ),
        IdMap("p", GROUP, "people", connec_id="c3", pending={"id": "c3", "n": [1, 2.5, None]}, message="w"),
        IdMap("p", GROUP, "people", local_id="4", message="no answer"),
    ]
    stores = []
    for native in (True, False):
        made = SqlAlchemySyncStore(sqlite_engine(tmp_path / f"{native}.db"))
        made.create_tables()
        made.native = native
        made.save(maps)  # the multi-row insert
        made.by_local("p", GROUP, "people", ["1", "2", "4"])
        made.save([replace(m, hash="x", last_push_at=T0) for m in (maps[0], maps[1])])  # guarded update
        made.save([replace(maps[3], message=None, last_pull_at=T0)])  # planned update
        stores.append(made)

    def raw(made: SqlAlchemySyncStore) -> list[Any]:
        with made.engine.connect() as conn:
            return [tuple(r) for r in conn.exec_driver_sql("SELECT * FROM maestrano_id_maps ORDER BY id")]

    assert raw(stores[0]) == raw(stores[1])  # the same stored text, datetimes included
    expected = [
        replace(maps[0], hash="x", last_push_at=T0),
        replace(maps[1], hash="x", last_push_at=T0),
        replace(maps[3], message=None, last_pull_at=T0),
    ]
    for made in stores:
        for reader in (True, False):
            made.native = reader
            found = made.by_local("p", GROUP, "people", ["1", "2", "4"])
            assert list(found.values()) == expected
            assert made.by_connec("p", GROUP, "people", ["c3"]) == {"c3": maps[2]}
            assert found["2"].last_push_at is not None and found["2"].last_push_at.tzinfo is not None


def test_the_driver_path_reads_times_written_by_others_as_sqlalchemy_does(store: SqlAlchemySyncStore) -> None:
    forms = {"1": "2024-01-31 10:00:00", "2": "2024-01-31 10:00:00.250000", "3": "2024-01-31T10:00:00"}
    with store.engine.begin() as conn:
        for local_id, text in forms.items():
            conn.exec_driver_sql(
                "INSERT INTO maestrano_id_maps (preset, group_id, collection, local_id, last_pull_at, "
                "to_connec, to_external) VALUES ('p', ?, 'people', ?, ?, 1, 1)",
                (GROUP, local_id, text),
            )
    read = {}
    for native in (True, False):
        store.native = native
        read[native] = store.by_local("p", GROUP, "people", list(forms))
    assert read[True] == read[False]
    assert read[True]["2"].last_pull_at == T0 + timedelta(microseconds=250000)


# -- the engine's push on this store --------------------------------------------------------------


class Records(Mapping):
    collection = "organizations"

    def __init__(self, records: dict[str, dict[str, Any]]) -> None:
        self.records = records

    def to_connec(self, record: Any) -> dict[str, Any]:
        return {"name": record["name"], "amount": record["amount"]}

    def local_id(self, record: Any) -> str:
        return str(record["id"])

    def find(self, local_id: str) -> Any | None:
        return self.records.get(local_id)


class FakeConnec:
    """``/batch`` in memory: 201 with a Connec! id per post, 200 per put; scripted answers."""

    def __init__(self) -> None:
        self.calls: list[list[dict[str, Any]]] = []
        #: local id -> statuses its next operations answer (then 201/200)
        self.script: dict[str, list[int]] = {}

    def op(self, method: str, path: str, params: Any = None) -> dict[str, Any]:
        return {"method": method, "url": path, "params": params}

    def batch(self, ops: Sequence[Any], *, sequential: bool = True) -> list[dict[str, Any]]:
        self.calls.append(list(ops))
        results = []
        for op in ops:
            record = op["params"]["organizations"]
            ours = record["id"][0]["id"]
            statuses = self.script.get(ours) or []
            status = statuses.pop(0) if statuses else (201 if op["method"] == "post" else 200)
            if status >= 400:
                results.append({"status": status, "body": {"errors": [{"detail": f"refused {ours}"}]}})
            else:
                body = {**record, "id": [{"provider": "connec", "id": f"c-{ours}"}, *record["id"]]}
                results.append({"status": status, "body": {"organizations": body}})
        return results

    def pages(self, collection: str, *, filter: str | None = None, top: int | None = None) -> Iterator[Any]:
        yield SimpleNamespace(entities=[])


class CountingStore:
    """The store, counting its id-map reads."""

    def __init__(self, inner: SqlAlchemySyncStore) -> None:
        self.inner = inner
        self.reads = 0

    def by_local(self, *args: Any) -> dict[str, IdMap]:
        self.reads += 1
        return self.inner.by_local(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_a_flush_reads_its_id_maps_once_and_writes_each_result(store: SqlAlchemySyncStore) -> None:
    records = {str(n): {"id": n, "name": f"Org {n}", "amount": n * 1.5} for n in range(1, 121)}
    mapping = Records(records)
    connec = FakeConnec()
    connec.script = {"7": [422], "8": [503]}  # refused for good; failing once
    counting = CountingStore(store)

    def engine() -> SyncEngine:
        return SyncEngine(
            connec, counting, [mapping], preset="p", group_id=GROUP, provider="app", sleep=lambda _s: None
        )

    first = engine()
    for record in records.values():
        first.push(record, "organizations")
    errors = first.flush()
    assert len(errors) == 1 and "refused 7" in errors[0]
    assert counting.reads == 1  # one query for the whole flush, not one per /batch call
    assert [len(ops) for ops in connec.calls] == [50, 50, 20, 1]  # then the retry of 8
    maps = store.by_local("p", GROUP, "organizations", list(records))
    for local_id, record in records.items():
        item = maps[local_id]
        if local_id == "7":
            assert (item.connec_id, item.hash, item.last_push_at) == (None, None, None)
            assert item.message == "Connec! answered 422: refused 7"
            continue
        assert item.connec_id == f"c-{local_id}"
        assert item.hash == payload_hash(mapping.to_connec(record))
        assert item.last_push_at is not None and item.message is None

    records["3"]["name"] = "Org 3 renamed"
    second = engine()
    for record in records.values():
        second.push(record, "organizations")
    assert second.flush() == []
    assert [op["url"] for op in connec.calls[-1]] == ["organizations/c-3", "organizations"]  # 3 and 7
    assert second.counts["organizations"]["push_unchanged"] == 118
    after = store.by_local("p", GROUP, "organizations", ["3", "7"])
    assert after["3"].hash == payload_hash(mapping.to_connec(records["3"]))
    assert (after["7"].connec_id, after["7"].message) == ("c-7", None)


def test_a_first_sync_page_is_one_insert_and_a_race_falls_back_to_the_plan(tmp_path: Any) -> None:
    engine = sqlite_engine(tmp_path / "maps.db")
    ours, theirs = SqlAlchemySyncStore(engine), SqlAlchemySyncStore(sqlite_engine(tmp_path / "maps.db"))
    ours.create_tables()
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2].split()[0]))
    page = [IdMap("p", GROUP, "people", connec_id=f"c{n}", local_id=str(n), hash="h") for n in range(50)]
    assert ours.by_connec("p", GROUP, "people", [m.connec_id or "" for m in page]) == {}
    statements.clear()
    ours.save(page)
    assert statements == ["INSERT"]  # no planning query: the lookup just found none of them

    # the next page: another worker links one of its records between our lookup and our save
    page = [IdMap("p", GROUP, "people", connec_id=f"c{n}", local_id=str(n), hash="h") for n in range(50, 60)]
    assert ours.by_connec("p", GROUP, "people", [m.connec_id or "" for m in page]) == {}
    theirs.save([replace(page[3], hash="theirs", message="linked by another worker")])
    ours.save(page)  # the insert fails on the unique constraint, is rolled back, then planned
    saved = ours.by_local("p", GROUP, "people", [str(n) for n in range(60)])
    assert len(saved) == 60
    assert (saved["53"].hash, saved["53"].message) == ("h", None)
    with engine.connect() as conn:
        assert len(conn.execute(select(id_maps.c.id)).all()) == 60
