"""The transactional outbox of sync_on_commit, against the sandbox over real HTTP with the host's
records and the outbox in a real SQLite file: a change committed while its push cannot happen
(Connec! down, the process dies) is pushed by the next run, job or ``jobs resume`` exactly once;
a rollback leaves no row; two changes before a push send the latest once; 4xx answers remove
the row, 5xx keep it; an RQ worker pushes what background=True queued."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select

from flask_maestrano import syncing
from flask_maestrano.contrib.sqlalchemy import SqlAlchemySyncStore, sync_on_commit, sync_outbox
from flask_maestrano.errors import ConfigurationError
from flask_maestrano.sync import SUCCESS
from tests.support.sync_world import GROUP, Company, HeldExecutor, World, db

ORG_URL = f"/api/v2/{GROUP}/organizations"


def outbox_rows() -> list[tuple[str, str, bool]]:
    with db.engine.connect() as conn:
        rows = conn.execute(select(sync_outbox).order_by(sync_outbox.c.id)).all()
    return [(row.collection, row.local_id, bool(row.archived)) for row in rows]


def ops_since(world: World, start: int) -> list[tuple[str, str, Any]]:
    """(method, url, name) of every /batch operation sent since ``start`` batches."""
    return [
        (op["method"], op["url"], op["params"].get("organizations", {}).get("name"))
        for batch in world.wire.batches[start:]
        for op in batch["ops"]
    ]


def in_connec(world: World, name: str) -> int:
    return [o["name"] for o in world.entities("organizations")].count(name)


def add_company(name: str) -> Company:
    company = Company(group_id=GROUP, name=name)
    db.session.add(company)
    db.session.commit()
    return company


@pytest.fixture
def hooked(world: World) -> World:
    assert world.run() is not None
    world.unhook = sync_on_commit(world.app, db.session)
    return world


def test_a_change_committed_while_connec_is_down_is_pushed_by_the_next_run_exactly_once(
    hooked: World,
) -> None:
    world = hooked
    world.wire.down = True
    company = add_company("Hooli")  # the push fails (503 after the retries): the commit stands
    assert in_connec(world, "Hooli") == 0
    assert outbox_rows() == [("organizations", str(company.id), False)]

    world.wire.down = False
    start = len(world.wire.batches)
    run = world.run()  # organizations have no updated_at: only the outbox can tell the run
    assert run is not None and run.status == SUCCESS
    assert ops_since(world, start) == [("post", ORG_URL, "Hooli")]
    assert in_connec(world, "Hooli") == 1 and outbox_rows() == []
    assert world.connec_id("organizations", company.id)
    start = len(world.wire.batches)
    assert world.run() is not None and ops_since(world, start) == []


def test_a_change_whose_process_died_before_the_push_is_pushed_by_jobs_resume_once(
    hooked: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = hooked

    def died(*_args: Any) -> None:
        raise RuntimeError("killed between the commit and the push")

    monkeypatch.setattr(syncing, "push_committed", died)
    company = add_company("Pied Piper")
    monkeypatch.undo()
    assert world.wire.batches == [] and outbox_rows() == [("organizations", str(company.id), False)]

    result = world.app.test_cli_runner().invoke(args=["maestrano", "jobs", "resume"])
    assert result.exit_code == 0, result.output
    assert f"outbox\tsandbox\t{GROUP}\tpushed" in result.output
    assert ops_since(world, 0) == [("post", ORG_URL, "Pied Piper")]
    assert in_connec(world, "Pied Piper") == 1 and outbox_rows() == []
    again = world.app.test_cli_runner().invoke(args=["maestrano", "jobs", "resume"])
    assert again.output.strip() == "nothing to resume" and len(world.wire.batches) == 1


def test_jobs_resume_fails_while_connec_still_does_not_answer(hooked: World) -> None:
    world = hooked
    world.wire.down = True
    add_company("Still Down")
    result = world.app.test_cli_runner().invoke(args=["maestrano", "jobs", "resume"])
    assert result.exit_code == 1
    assert f"outbox\tsandbox\t{GROUP}\t1 waiting" in result.output
    assert len(outbox_rows()) == 1


def test_the_sync_command_drains_the_outbox_first(hooked: World, monkeypatch: pytest.MonkeyPatch) -> None:
    world = hooked
    monkeypatch.setattr(syncing, "push_committed", lambda *_: (_ for _ in ()).throw(RuntimeError("died")))
    add_company("Via CLI")
    monkeypatch.undo()
    result = world.app.test_cli_runner().invoke(args=["maestrano", "sync", GROUP])
    assert result.exit_code == 0, result.output
    assert in_connec(world, "Via CLI") == 1 and outbox_rows() == []


def test_a_rolled_back_transaction_leaves_no_outbox_row(hooked: World) -> None:
    world = hooked
    db.session.add(Company(group_id=GROUP, name="Rolled Back"))
    db.session.flush()
    assert len(outbox_rows_in_session()) == 1  # written in the host's own transaction
    db.session.rollback()
    assert outbox_rows() == []
    assert world.run() is not None
    assert in_connec(world, "Rolled Back") == 0 and world.wire.batches == []


def outbox_rows_in_session() -> list[Any]:
    return list(db.session.execute(select(sync_outbox.c.id)).all())


def test_two_changes_to_one_record_before_a_push_send_the_latest_once(hooked: World) -> None:
    world = hooked
    world.wire.down = True
    company = add_company("First Name")
    company.name = "Second Name"
    db.session.commit()
    assert outbox_rows() == [("organizations", str(company.id), False)]  # the latest capture wins
    world.wire.down = False
    start = len(world.wire.batches)
    assert world.run() is not None
    assert ops_since(world, start) == [("post", ORG_URL, "Second Name")]
    assert in_connec(world, "Second Name") == 1 and in_connec(world, "First Name") == 0


def test_a_record_deleted_after_an_unpushed_change_is_archived(hooked: World) -> None:
    world = hooked
    acme = db.session.execute(select(Company).filter_by(name="Acme Corp")).scalar_one()
    connec_id = world.connec_id("organizations", acme.id)
    world.wire.down = True
    acme.name = "Acme Renamed"
    db.session.commit()
    db.session.delete(acme)
    db.session.commit()
    assert outbox_rows() == [("organizations", str(acme.id), True)]
    world.wire.down = False
    start = len(world.wire.batches)
    assert world.run() is not None
    assert [(m, u) for m, u, _ in ops_since(world, start)] == [("put", f"{ORG_URL}/{connec_id}")]
    assert world.entity("organizations", connec_id)["status"] == "ARCHIVED"
    assert outbox_rows() == []


def test_a_4xx_answer_removes_the_row_and_keeps_the_error_on_the_id_map(hooked: World) -> None:
    world = hooked
    world.wire.faults = [[{"status": 400, "body": {"errors": [{"title": "name is invalid"}]}}]]
    company = add_company("Refused")
    assert outbox_rows() == []  # Connec! answered: retrying would not change the answer
    found = world.store.by_local("sandbox", GROUP, "organizations", [str(company.id)])[str(company.id)]
    assert found.message == "Connec! answered 400: name is invalid"


def test_a_5xx_answer_for_one_operation_keeps_only_its_row(hooked: World) -> None:
    world = hooked
    world.wire.faults = [[{"status": 503, "body": None}]] * 4  # the first push and its 3 retries
    refused = add_company("Unlucky")
    assert outbox_rows() == [("organizations", str(refused.id), False)]
    lucky = add_company("Lucky")
    assert in_connec(world, "Lucky") == 1 and outbox_rows() == [("organizations", str(refused.id), False)]
    assert lucky.id != refused.id
    assert world.run() is not None
    assert in_connec(world, "Unlucky") == 1 and outbox_rows() == []


def test_background_pushes_on_the_thread_executor_and_a_lost_job_is_pushed_by_resume(
    tmp_path: Any, live_server: Callable[..., Any]
) -> None:
    executor = HeldExecutor()
    world = World(tmp_path, live_server, MAESTRANO_IMPORT_EXECUTOR=executor)
    try:
        world.store.set_enabled("sandbox", GROUP, True)
        assert world.run() is not None
        world.unhook = sync_on_commit(world.app, db.session, background=True)
        add_company("Queued Once")
        assert len(executor.jobs) == 1 and outbox_rows() != []
        executor.run_all()
        assert in_connec(world, "Queued Once") == 1 and outbox_rows() == []

        company = add_company("Lost Job")
        company.name = "Lost Job Renamed"
        db.session.commit()
        assert executor.drop_all() == 2  # the process died with its queued pushes
        start = len(world.wire.batches)
        result = world.app.test_cli_runner().invoke(args=["maestrano", "jobs", "resume"])
        assert result.exit_code == 0, result.output
        assert ops_since(world, start) == [("post", ORG_URL, "Lost Job Renamed")]
        assert outbox_rows() == []
    finally:
        world.close()


def test_sync_on_commit_refuses_a_store_on_another_database(world: World, tmp_path: Any) -> None:
    other = SqlAlchemySyncStore(create_engine(f"sqlite:///{tmp_path / 'other.db'}"))
    other.create_tables()
    object.__setattr__(world.setup, "store", other)
    try:
        with pytest.raises(ConfigurationError, match="the outbox must commit with your changes"):
            sync_on_commit(world.app, db.session)
    finally:
        object.__setattr__(world.setup, "store", world.store)
        other.engine.dispose()


def test_sync_on_commit_asks_for_create_tables_on_a_database_without_the_outbox(world: World) -> None:
    sync_outbox.drop(db.engine)
    with pytest.raises(ConfigurationError, match=r"call store.create_tables\(\)"):
        sync_on_commit(world.app, db.session)
    world.store.create_tables()  # an existing database gains the table
    world.unhook = sync_on_commit(world.app, db.session)
    assert db.session.scalar(select(func.count()).select_from(sync_outbox)) == 0


# -- with a task queue ---------------------------------------------------------------------------


@pytest.fixture
def rq_hooked(
    tmp_path: Any, live_server: Callable[..., Any], clean_redis: str
) -> Iterator[tuple[World, Any]]:
    from redis import Redis
    from rq import Queue

    from flask_maestrano.contrib import worker
    from flask_maestrano.contrib.rq import RQExecutor
    from tests.support.sync_world import WORLD_APPS

    factory = "tests.support.sync_world:current_world_app"
    queue = Queue("maestrano-outbox-test", connection=Redis.from_url(clean_redis))
    executor = RQExecutor(queue, factory)
    built = World(tmp_path, live_server, MAESTRANO_STORE=clean_redis, MAESTRANO_IMPORT_EXECUTOR=executor)
    WORLD_APPS.append(built.app)
    try:
        built.store.set_enabled("sandbox", GROUP, True)
        assert built.run() is not None
        built.unhook = sync_on_commit(built.app, db.session, background=True)
        yield built, queue
    finally:
        WORLD_APPS.remove(built.app)
        worker._apps.pop(factory, None)
        built.close()


@pytest.mark.redis
def test_with_rq_and_background_the_change_reaches_connec_through_the_worker(
    rq_hooked: tuple[World, Any],
) -> None:
    from rq import SimpleWorker

    world, queue = rq_hooked
    company = add_company("Through RQ")
    company.name = "Through RQ Twice"
    db.session.commit()
    assert in_connec(world, "Through RQ Twice") == 0 and len(outbox_rows()) == 1
    assert queue.count == 2  # one push job per commit
    SimpleWorker([queue], connection=queue.connection).work(burst=True)
    assert in_connec(world, "Through RQ Twice") == 1 and in_connec(world, "Through RQ") == 0
    assert outbox_rows() == [] and len(world.wire.batches) == 1
    finished = [queue.fetch_job(job_id) for job_id in queue.finished_job_registry.get_job_ids()]
    assert sorted(str(job.return_value()) for job in finished if job is not None) == [
        "{'outbox': 0}",
        "{'outbox': 0}",
    ]


@pytest.mark.redis
def test_with_rq_down_the_change_waits_in_the_outbox_for_the_next_run(
    rq_hooked: tuple[World, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    world, queue = rq_hooked

    def refused(*_args: Any, **_kwargs: Any) -> Any:
        raise ConnectionError("the broker is down")

    monkeypatch.setattr(queue, "enqueue", refused)
    add_company("Broker Down")  # the commit stands
    assert len(outbox_rows()) == 1 and in_connec(world, "Broker Down") == 0
    monkeypatch.undo()
    assert world.run() is not None
    assert in_connec(world, "Broker Down") == 1 and outbox_rows() == []


def test_a_change_committed_by_a_process_killed_before_its_push_is_pushed_by_the_next_run(
    hooked: World,
) -> None:
    world = hooked
    child = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.support.outbox_process",
            str(db.engine.url),
            json.dumps(world.app.config["MAESTRANO_PRESETS"]),
            "Killed Inc",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert child.stdout.split() == ["committed"]
    db.session.expire_all()
    killed = db.session.execute(select(Company).filter_by(name="Killed Inc")).scalar_one()
    assert outbox_rows() == [("organizations", str(killed.id), False)] and world.wire.batches == []
    assert world.run() is not None
    assert ops_since(world, 0) == [("post", ORG_URL, "Killed Inc")]
    assert in_connec(world, "Killed Inc") == 1 and outbox_rows() == []


def test_a_record_added_in_a_rolled_back_savepoint_is_not_pushed(hooked: World) -> None:
    world = hooked
    savepoint = db.session.begin_nested()
    db.session.add(Company(group_id=GROUP, name="Savepoint Ghost"))
    db.session.flush()
    savepoint.rollback()
    db.session.add(Company(group_id=GROUP, name="Fully Rolled Back"))
    db.session.flush()
    db.session.rollback()
    add_company("Kept Company")  # the next transaction commits
    assert in_connec(world, "Fully Rolled Back") == 0
    assert in_connec(world, "Kept Company") == 1
    assert in_connec(world, "Savepoint Ghost") == 0  # it never existed locally
    assert outbox_rows() == []


def test_a_change_flushed_before_a_rolled_back_savepoint_is_pushed_at_the_commit(hooked: World) -> None:
    world = hooked
    db.session.add(Company(group_id=GROUP, name="Before Savepoint"))
    db.session.flush()
    savepoint = db.session.begin_nested()
    db.session.add(Company(group_id=GROUP, name="Savepoint Ghost"))
    db.session.flush()
    savepoint.rollback()
    db.session.commit()
    assert in_connec(world, "Before Savepoint") == 1
    assert in_connec(world, "Savepoint Ghost") == 0
    assert outbox_rows() == []
