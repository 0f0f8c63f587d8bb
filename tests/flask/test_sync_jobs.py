"""Sync runs and notifications as jobs of flask_maestrano.jobs, against the sandbox over real
HTTP with the host's records in real SQLite: ENQUEUED seen by every process (Redis), runs on
an RQ queue, a dead run's group recovered, notifications stored before the answer and applied
off the request (also after the process that took them died), and the schedules."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

import pytest
import requests
from flask import Flask
from sqlalchemy import create_engine, select

from flask_maestrano import Maestrano, get_state, syncing
from flask_maestrano.contrib import worker
from flask_maestrano.contrib.sqlalchemy import SqlAlchemySyncStore
from flask_maestrano.sandbox.actions import push_notification
from flask_maestrano.sync import ERROR, RUNNING, SUCCESS, SyncEngine, SyncRun
from tests.support.sync_world import GROUP, WORLD_APPS, Company, HeldExecutor, World, db

BASE = "/maestrano/sandbox/synchronizations"
AUTH = ("app-sync", "sync-key")
FACTORY = "tests.support.sync_world:current_world_app"


def call(world: World, method: str, path: str, **kwargs: Any) -> requests.Response:
    return requests.request(method, world.base + path, auth=AUTH, timeout=30, **kwargs)


def sync_status(world: World) -> dict[str, Any]:
    answer = call(world, "GET", f"{BASE}/{GROUP}")
    assert answer.status_code == 200
    body: dict[str, Any] = answer.json()
    return body


def twin_app(world: World, redis_url: str) -> Flask:
    """What another process of the host has: its own app, store connections and job backend,
    on the same Redis server and the same database."""
    twin = Flask("synctwin")
    twin.config.update(
        SECRET_KEY="k",
        MAESTRANO_PRESETS=world.app.config["MAESTRANO_PRESETS"],
        MAESTRANO_DEFAULT_PRESET="sandbox",
        MAESTRANO_STORE=redis_url,
    )
    Maestrano(twin)
    store = SqlAlchemySyncStore(create_engine(str(db.engine.url)))
    syncing.configure(twin, store, [world.companies, world.contacts, world.invoices])
    return twin


@pytest.fixture
def held(tmp_path: Any, live_server: Callable[..., Any]) -> Iterator[tuple[World, HeldExecutor]]:
    executor = HeldExecutor()
    built = World(
        tmp_path, live_server, MAESTRANO_IMPORT_EXECUTOR=executor, MAESTRANO_SYNC_NOTIFY_INLINE=False
    )
    yield built, executor
    built.close()


@contextlib.contextmanager
def built_by_factory(world: World) -> Iterator[World]:
    """``world`` is what the workers' app factory (:data:`FACTORY`) builds, for the block."""
    WORLD_APPS.append(world.app)
    try:
        yield world
    finally:
        WORLD_APPS.remove(world.app)
        worker._apps.pop(FACTORY, None)
        world.close()


@pytest.fixture
def rq_world(tmp_path: Any, live_server: Callable[..., Any], clean_redis: str) -> Iterator[tuple[World, Any]]:
    """A world whose executor is an RQ queue on a real Redis (also its store), and the queue."""
    from redis import Redis
    from rq import Queue

    from flask_maestrano.contrib.rq import RQExecutor

    queue = Queue("maestrano-sync-test", connection=Redis.from_url(clean_redis))
    executor = RQExecutor(queue, FACTORY)
    built = World(tmp_path, live_server, MAESTRANO_STORE=clean_redis, MAESTRANO_IMPORT_EXECUTOR=executor)
    with built_by_factory(built):
        built.store.set_enabled("sandbox", GROUP, True)
        yield built, queue


# -- runs on the task queue, ENQUEUED everywhere ------------------------------------------------


@pytest.mark.redis
def test_a_start_is_queued_on_rq_enqueued_for_every_process_and_run_by_the_worker(
    rq_world: tuple[World, Any], clean_redis: str
) -> None:
    from rq import SimpleWorker

    world, queue = rq_world
    started = call(world, "POST", BASE, json={"group_id": GROUP, "opts": {"full_sync": True}})
    assert started.status_code == 202 and started.json()["status"] == "ENQUEUED"
    assert [job.func_name for job in queue.jobs] == ["flask_maestrano.contrib.worker.sync_task"]
    assert queue.jobs[0].args[1:] == ("sandbox", GROUP, {"full": True, "forced": False})

    twin = twin_app(world, clean_redis)
    with twin.app_context():
        preset = get_state(twin).preset("sandbox")
        assert syncing.status(twin, preset, GROUP)["status"] == "ENQUEUED"  # type: ignore[index]
        assert syncing.start_sync(twin, preset, GROUP) is None  # queued already: nothing more
    assert len(queue) == 1
    again = call(world, "POST", BASE, json={"group_id": GROUP})
    assert again.status_code == 200 and again.json()["status"] == "ENQUEUED"
    assert len(queue) == 1

    SimpleWorker([queue], connection=queue.connection).work(burst=True)
    assert len(queue) == 0
    body = sync_status(world)
    assert body["status"] == SUCCESS, body
    with twin.app_context():
        assert syncing.status(twin, preset, GROUP)["status"] == SUCCESS  # type: ignore[index]
    assert company_names() == ["Acme Corp", "Globex Inc", "Initech"]
    runs = world.store.runs("sandbox", GROUP)
    assert [(r.status, r.full) for r in runs] == [(SUCCESS, True)]


def a_run_died(world: World) -> None:
    """A run took the group's lock and wrote its RUNNING row, then its process was killed:
    nobody renews the lease, which runs out (bounded wait)."""
    backend = get_state(world.app).imports.backend
    name = syncing.lock_name("sandbox", GROUP)
    assert backend.acquire(name, "4242-dead", ttl=0.3)
    world.store.add_run(SyncRun("sandbox", GROUP, RUNNING, datetime.now(timezone.utc)))
    assert sync_status(world)["status"] == RUNNING
    refused = call(world, "POST", BASE, json={"group_id": GROUP})
    assert refused.status_code == 200 and refused.json()["status"] == RUNNING
    deadline = time.monotonic() + 10
    while backend.holder(name) is not None:
        assert time.monotonic() < deadline, "the dead run's lease never expired"
        time.sleep(0.05)
    body = sync_status(world)
    assert body["status"] == ERROR and body["message"] == syncing.INTERRUPTED_MESSAGE


def recovered(world: World) -> None:
    statuses = [(r.status, r.message) for r in world.store.runs("sandbox", GROUP)]
    assert statuses[:2] == [(SUCCESS, None), (ERROR, "abandoned (worker stopped)")]
    assert sync_status(world)["status"] == SUCCESS


def test_a_run_whose_process_died_is_reported_and_recovered_by_the_next_start(
    held: tuple[World, HeldExecutor],
) -> None:
    world, executor = held
    assert world.run() is not None
    a_run_died(world)
    assert executor.jobs == []  # the refused start queued nothing
    started = call(world, "POST", BASE, json={"group_id": GROUP})
    assert started.status_code == 202 and started.json()["status"] == "ENQUEUED"
    (run,) = executor.run_all()
    assert run is not None and run.status == SUCCESS
    recovered(world)


def test_a_run_whose_process_died_is_recovered_by_jobs_resume(held: tuple[World, HeldExecutor]) -> None:
    world, _ = held
    assert world.run() is not None
    a_run_died(world)
    result = world.app.test_cli_runner().invoke(args=["maestrano", "jobs", "resume"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [f"sync\tsandbox\t{GROUP}\tSUCCESS"]
    recovered(world)


# -- notifications off the request ---------------------------------------------------------------


def rename_in_connec(world: World, name: str, new_name: str) -> str:
    found = next(o for o in world.entities("organizations") if o["name"] == name)
    connec_id: str = found["id"][0]["id"]
    world.edit_in_connec("organizations", connec_id, {"name": new_name})
    return connec_id


def synced_then_notified(world: World, name: str, new_name: str) -> str:
    """A first sync, then another app renames ``name`` and Connec! notifies us (answered 200)."""
    assert world.run() is not None
    connec_id = rename_in_connec(world, name, new_name)
    assert push_notification(world.sandbox, "app-sync", GROUP, "organizations", connec_id).status == 200
    return connec_id


def company_names() -> list[str]:
    db.session.expire_all()
    return sorted(db.session.scalars(select(Company.name)))


def test_a_notification_is_stored_before_the_answer_and_applied_by_a_job(
    held: tuple[World, HeldExecutor],
) -> None:
    world, executor = held
    acme = synced_then_notified(world, "Acme Corp", "Acme Notified")
    # answered; not applied yet, but stored in the database with the group flagged
    assert company_names() == ["Acme Corp", "Globex Inc", "Initech"]
    waiting = world.store.pending("sandbox", GROUP)
    assert [(w.collection, w.connec_id, w.local_id is not None) for w in waiting] == [
        ("organizations", acme, True)
    ]
    assert len(executor.jobs) == 1
    assert executor.run_all() == [1]
    assert company_names() == ["Acme Notified", "Globex Inc", "Initech"]
    assert world.store.pending("sandbox", GROUP) == []
    assert world.wire.batches == []  # applying it pushed nothing back


def test_a_notification_taken_by_a_process_that_died_is_applied_by_jobs_resume(
    held: tuple[World, HeldExecutor],
) -> None:
    world, executor = held
    synced_then_notified(world, "Globex Inc", "Globex Recovered")
    assert executor.drop_all() == 1  # the process died after answering: its job is gone
    assert company_names() == ["Acme Corp", "Globex Inc", "Initech"]
    result = world.app.test_cli_runner().invoke(args=["maestrano", "jobs", "resume"])
    assert result.exit_code == 0, result.output
    assert f"notifications\tsandbox\t{GROUP}\tapplied" in result.output
    assert company_names() == ["Acme Corp", "Globex Recovered", "Initech"]
    again = world.app.test_cli_runner().invoke(args=["maestrano", "jobs", "resume"])
    assert "nothing to resume" in again.output


def test_a_notification_arriving_during_a_run_is_applied_after_it(
    held: tuple[World, HeldExecutor], monkeypatch: pytest.MonkeyPatch
) -> None:
    world, executor = held
    assert world.run() is not None
    answers: list[int] = []
    flush = SyncEngine.flush

    def notified_while_pushing(engine: SyncEngine) -> list[str]:
        # after the run applied what was waiting: another app renames Initech, Connec! notifies
        if not answers:
            initech = rename_in_connec(world, "Initech", "Initech Later")
            answers.append(
                push_notification(world.sandbox, "app-sync", GROUP, "organizations", initech).status
            )
            assert executor.run_all() == [0]  # its job cannot take the group while the run holds it
        return flush(engine)

    monkeypatch.setattr(SyncEngine, "flush", notified_while_pushing)
    run = world.run()
    assert answers == [200] and run is not None and run.status == SUCCESS
    # the run released the group, then applied what arrived while it held it
    assert company_names() == ["Acme Corp", "Globex Inc", "Initech Later"]
    assert world.store.pending("sandbox", GROUP) == []


# -- schedules ----------------------------------------------------------------------------------


def test_sync_all_runs_every_group_with_sync_on(held: tuple[World, HeldExecutor]) -> None:
    world, executor = held
    runner = world.app.test_cli_runner()
    world.store.set_enabled("sandbox", GROUP, True)
    world.store.set_enabled("sandbox", "cld-off", False)
    result = runner.invoke(args=["maestrano", "sync", "--all"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [f"sandbox\t{GROUP}\tSUCCESS"]
    assert company_names() == ["Acme Corp", "Globex Inc", "Initech"]
    both = runner.invoke(args=["maestrano", "sync", GROUP, "--all"])
    assert both.exit_code != 0 and "give a GROUP, or --all" in both.output
    # what a schedule runs: one queued run per group with sync on
    with world.app.app_context():
        assert syncing.start_all(world.app) == [("sandbox", GROUP)]
        assert syncing.start_all(world.app) == []  # queued already
    (run,) = executor.run_all()
    assert run is not None and run.status == SUCCESS and not run.full


@pytest.mark.redis
def test_the_rq_schedule_queues_a_run_of_every_group_and_repeats(rq_world: tuple[World, Any]) -> None:
    from rq import SimpleWorker

    from flask_maestrano.contrib.rq import schedule_syncs

    world, queue = rq_world
    with pytest.raises(ValueError, match="every must be at least 1 second"):
        schedule_syncs(queue, FACTORY, every=0)
    schedule_syncs(queue, FACTORY, every=3600, times=2)
    assert [job.func_name for job in queue.jobs] == ["flask_maestrano.contrib.worker.sync_all_task"]
    # the sweep queues the group's run on the same queue; a burst worker runs both
    SimpleWorker([queue], connection=queue.connection).work(burst=True)
    assert [r.status for r in world.store.runs("sandbox", GROUP)] == [SUCCESS]
    assert company_names() == ["Acme Corp", "Globex Inc", "Initech"]
    assert len(queue.scheduled_job_registry) == 1  # the next sweep, an hour from now


def test_the_celery_beat_entry_queues_every_group(tmp_path: Any, live_server: Callable[..., Any]) -> None:
    from celery import Celery  # type: ignore[import-untyped]

    from flask_maestrano.contrib.celery import (
        SYNC_ALL_TASK_NAME,
        SYNC_TASK_NAME,
        CeleryExecutor,
        register_sync_tasks,
        schedule_syncs,
    )

    celery = Celery("sync_beat_test", broker="memory://")
    celery.conf.update(task_always_eager=True, task_eager_propagates=True)
    # register_import_task registers these too; its import task is shared across Celery apps,
    # so a second registration in one test process would warn: register the sync tasks alone
    sync_group, _ = register_sync_tasks(celery, FACTORY)
    with pytest.raises(RuntimeError):
        schedule_syncs(Celery("bare"), every=60)
    entry = schedule_syncs(celery, every=900)
    assert entry == {"task": SYNC_ALL_TASK_NAME, "schedule": 900.0, "args": ()}
    assert celery.conf.beat_schedule[SYNC_ALL_TASK_NAME] == entry
    assert SYNC_TASK_NAME in celery.tasks

    world = World(tmp_path, live_server, MAESTRANO_IMPORT_EXECUTOR=CeleryExecutor(sync_group))
    with built_by_factory(world):
        world.store.set_enabled("sandbox", GROUP, True)
        # what beat sends: the sync_all task, which queues (here: runs eagerly) the sync task
        queued = celery.tasks[SYNC_ALL_TASK_NAME].apply().get()
        assert queued == [["sandbox", GROUP]]
        runs = world.store.runs("sandbox", GROUP)
        assert [r.status for r in runs] == [SUCCESS]
        assert company_names() == ["Acme Corp", "Globex Inc", "Initech"]
