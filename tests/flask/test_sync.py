"""The two-way sync engine against the sandbox over real HTTP, with the host's records and the
id maps in a real SQLite file: first and incremental syncs, push with echo suppression,
conflicts, references that link later, retried pushes, one run per company."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import requests
from sqlalchemy import func, select

from flask_maestrano import get_state, syncing
from flask_maestrano.contrib.sqlalchemy import id_maps, sync_on_commit
from flask_maestrano.jobs import backend_for
from flask_maestrano.sandbox.actions import push_notification
from flask_maestrano.sandbox.core import database
from flask_maestrano.sandbox.entities import find_entity, insert_entity, update_entity
from flask_maestrano.store import RedisStore
from flask_maestrano.sync import SUCCESS
from tests.support.sync_world import GROUP, Company, Contact, Invoice, World, contact_named, db

# -- pull ---------------------------------------------------------------------------------------


def test_first_sync_links_every_record_and_its_references(world: World) -> None:
    run = world.run()
    assert run is not None and run.status == SUCCESS and run.full
    names = sorted(db.session.scalars(select(Company.name)))
    assert names == ["Acme Corp", "Globex Inc", "Initech"]
    john = contact_named("John")
    assert john.email == "john@example.com" and john.group_id == GROUP
    assert db.session.get(Company, john.company_id).name == "Acme Corp"  # type: ignore[union-attr]
    invoices = db.session.scalars(select(Invoice).order_by(Invoice.number)).all()
    assert [(i.number, db.session.get(Company, i.company_id).name) for i in invoices] == [  # type: ignore[union-attr]
        ("INV-0001", "Acme Corp"),
        ("INV-0002", "Globex Inc"),
    ]
    assert db.session.scalar(select(func.count()).select_from(id_maps)) == 8
    assert run.counts["people"]["created"] == 3 and run.counts["organizations"]["created"] == 3
    # a second run changes nothing: what comes back is what the host holds
    again = world.run()
    assert again is not None and again.status == SUCCESS and not again.full
    assert all("created" not in c and "updated" not in c for c in again.counts.values())
    assert db.session.scalar(select(func.count()).select_from(Contact)) == 3
    assert world.wire.batches == []


def test_incremental_sync_reads_a_change_made_during_the_previous_run(world: World) -> None:
    world.age_connec_data()
    acme = next(o for o in world.entities("organizations") if o["name"] == "Acme Corp")
    acme_id = acme["id"][0]["id"]
    contacts = world.contacts
    original_create = contacts.create
    edited: list[bool] = []

    def create_and_meanwhile_edit(data: dict[str, Any], **kw: Any) -> Any:
        # organizations were read already: another app renames Acme while people are read
        if not edited:
            edited.append(True)
            world.edit_in_connec("organizations", acme_id, {"name": "Acme Renamed"})
        return original_create(data, **kw)

    contacts.create = create_and_meanwhile_edit  # type: ignore[method-assign]
    first = world.run()
    assert first is not None and first.status == SUCCESS and edited
    assert db.session.scalar(select(Company.name).filter_by(id=1)) == "Acme Corp"

    second = world.run()
    assert second is not None and second.status == SUCCESS
    assert second.counts["organizations"] == {"pulled": 1, "updated": 1}
    assert "people" not in second.counts  # the window left the unchanged people out
    db.session.expire_all()
    assert sorted(db.session.scalars(select(Company.name))) == ["Acme Renamed", "Globex Inc", "Initech"]


def test_an_invoice_arriving_before_its_organization_links_once_it_arrives(world: World) -> None:
    assert world.run() is not None
    with database(world.sandbox).connect() as conn:
        org = insert_entity(conn, GROUP, "organizations", {"name": "Umbrella"})
        invoice = insert_entity(
            conn, GROUP, "invoices", {"transaction_number": "INV-9", "organization_id": org["id"]}
        )
    # the invoice's notification comes first: it waits for its organization
    assert push_notification(world.sandbox, "app-sync", GROUP, "invoices", invoice["id"]).status == 200
    assert db.session.scalar(select(func.count()).select_from(Invoice).filter_by(number="INV-9")) == 0
    waiting = world.store.pending("sandbox", GROUP)
    assert [(w.collection, w.connec_id) for w in waiting] == [("invoices", invoice["id"])]
    assert waiting[0].message == f"waiting for organizations {org['id']}"

    assert push_notification(world.sandbox, "app-sync", GROUP, "organizations", org["id"]).status == 200
    db.session.expire_all()
    linked = db.session.execute(select(Invoice).filter_by(number="INV-9")).scalar_one()
    assert db.session.get(Company, linked.company_id).name == "Umbrella"  # type: ignore[union-attr]
    assert world.store.pending("sandbox", GROUP) == []


# -- push ---------------------------------------------------------------------------------------


def test_a_local_edit_reaches_connec_in_one_batch_and_its_echo_changes_nothing(world: World) -> None:
    assert world.run() is not None
    world.unhook = sync_on_commit(world.app, db.session)
    john = contact_named("John")
    john.first_name = "Johnny"
    john.updated_at = datetime.now(timezone.utc)
    db.session.commit()

    assert len(world.wire.batches) == 1
    ops = world.wire.batches[0]["ops"]
    connec_id = world.connec_id("people", john.id)
    assert [(op["method"], op["url"]) for op in ops] == [("put", f"/api/v2/{GROUP}/people/{connec_id}")]
    sent = ops[0]["params"]["people"]
    assert sent["id"] == [{"id": str(john.id), "provider": "app-sync", "realm": GROUP}]
    assert sent["organization_id"] == world.connec_id("organizations", john.company_id)  # type: ignore[arg-type]
    in_connec = world.entity("people", connec_id)
    assert in_connec["first_name"] == "Johnny"
    stamp = in_connec["updated_at"]
    hash_before = world.store.by_local("sandbox", GROUP, "people", [str(john.id)])[str(john.id)].hash

    # Connec! notifies the change back: nothing changes, nothing is pushed
    assert push_notification(world.sandbox, "app-sync", GROUP, "people", connec_id).status == 200
    assert len(world.wire.batches) == 1
    db.session.expire_all()
    assert contact_named("Johnny").last_name == "Doe"
    assert world.entity("people", connec_id)["updated_at"] == stamp
    assert world.store.by_local("sandbox", GROUP, "people", [str(john.id)])[str(john.id)].hash == hash_before

    # a commit that touches no mapped attribute pushes nothing either
    johnny = contact_named("Johnny")
    johnny.updated_at = datetime.now(timezone.utc) + timedelta(seconds=1)
    db.session.commit()
    assert len(world.wire.batches) == 1


def test_new_local_records_are_created_with_their_references_in_one_call(world: World) -> None:
    assert world.run() is not None
    world.unhook = sync_on_commit(world.app, db.session)
    company = Company(group_id=GROUP, name="Hooli")
    db.session.add(company)
    db.session.flush()
    db.session.add(Contact(group_id=GROUP, first_name="Gavin", last_name="Belson", company_id=company.id))
    db.session.commit()
    assert len(world.wire.batches) == 2  # the contact needs the company's Connec! id first
    hooli = world.connec_id("organizations", company.id)
    gavin = next(p for p in world.entities("people") if p["first_name"] == "Gavin")
    assert gavin["organization_id"] == hooli
    assert gavin["id"][1] == {"id": str(contact_named("Gavin").id), "provider": "app-sync", "realm": GROUP}


def test_a_retried_push_after_a_lost_answer_creates_no_duplicate(world: World) -> None:
    assert world.run() is not None
    world.wire.faults = ["lost"]
    db.session.add(Company(group_id=GROUP, name="Pied Piper"))
    db.session.commit()
    company = db.session.execute(select(Company).filter_by(name="Pied Piper")).scalar_one()
    errors = syncing.push(world.app, [company], "organizations")
    assert errors == []
    assert len(world.wire.batches) == 2  # the lost call and its retry
    assert [o["name"] for o in world.entities("organizations")].count("Pied Piper") == 1
    assert world.entity("organizations", world.connec_id("organizations", company.id))["name"] == "Pied Piper"


def test_each_operation_result_is_handled_on_its_own(world: World) -> None:
    assert world.run() is not None
    a = Company(group_id=GROUP, name="Retry Me")
    b = Company(group_id=GROUP, name="Refused")
    db.session.add_all([a, b])
    db.session.commit()
    refused = {"errors": [{"status": "400", "detail": "name is invalid"}]}
    world.wire.faults = [[{"status": 503, "body": None}, {"status": 400, "body": refused}]]
    errors = syncing.push(world.app, [a, b], "organizations")
    assert errors == [f"organizations {b.id}: Connec! answered 400: name is invalid"]
    assert len(world.wire.batches) == 2
    assert len(world.wire.batches[1]["ops"]) == 1  # only the 503 is sent again
    maps = world.store.by_local("sandbox", GROUP, "organizations", [str(a.id), str(b.id)])
    assert maps[str(a.id)].connec_id and maps[str(a.id)].message is None
    assert (
        maps[str(b.id)].connec_id is None
        and maps[str(b.id)].message == "Connec! answered 400: name is invalid"
    )


def test_a_thousand_changes_go_in_calls_of_fifty(world: World) -> None:
    assert world.run() is not None
    db.session.add_all([Company(group_id=GROUP, name=f"Bulk {n}") for n in range(120)])
    db.session.commit()
    companies = db.session.scalars(select(Company).where(Company.name.like("Bulk %"))).all()
    assert syncing.push(world.app, companies, "organizations") == []
    assert [len(b["ops"]) for b in world.wire.batches] == [50, 50, 20]
    assert syncing.push(world.app, companies, "organizations") == []  # unchanged: nothing sent
    assert len(world.wire.batches) == 3


# -- conflicts ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "local_later", "winner"),
    [
        ("connec", True, "Connec"),
        ("local", False, "Local"),
        ("recent", True, "Local"),
        ("recent", False, "Connec"),
    ],
)
def test_a_record_changed_on_both_sides_resolves_by_policy(
    world: World, policy: str, local_later: bool, winner: str
) -> None:
    world.contacts.conflict = policy  # type: ignore[misc]
    assert world.run() is not None
    john = contact_named("John")
    connec_id = world.connec_id("people", john.id)
    world.edit_in_connec("people", connec_id, {"first_name": "Connec"})
    john.first_name = "Local"
    later = timedelta(days=1) if local_later else -timedelta(days=1)
    john.updated_at = datetime.now(timezone.utc) + later
    db.session.commit()

    run = world.run()
    assert run is not None and run.status == SUCCESS
    assert run.counts["people"]["conflicts"] == 1
    assert run.counts["people"][f"conflicts_{'connec' if winner == 'Connec' else 'local'}"] == 1
    db.session.expire_all()
    assert db.session.get(Contact, john.id).first_name == winner  # type: ignore[union-attr]
    assert world.entity("people", connec_id)["first_name"] == winner
    # settled: the next run finds nothing to resolve
    settled = world.run()
    assert settled is not None and "conflicts" not in settled.counts.get("people", {})


# -- one run per company ------------------------------------------------------------------------


def test_two_concurrent_starts_for_one_company_run_once(world: World) -> None:
    results: list[Any] = []
    original_create = world.companies.create

    def create_while_another_start_arrives(data: dict[str, Any], **kw: Any) -> Any:
        if not results:
            other = threading.Thread(target=lambda: results.append(run_in_context()))
            other.start()
            other.join(timeout=30)
        return original_create(data, **kw)

    def run_in_context() -> Any:
        with world.app.app_context():
            return world.run()

    world.companies.create = create_while_another_start_arrives  # type: ignore[method-assign]
    first = world.run()
    assert results == [None]  # the second start found the company's lock taken
    assert first is not None and first.status == SUCCESS
    assert [r.status for r in world.store.runs("sandbox", GROUP)] == [SUCCESS]
    assert db.session.scalar(select(func.count()).select_from(Company)) == 3


def test_a_first_login_runs_the_first_sync_instead_of_the_import(world: World) -> None:
    imported: list[str] = []

    @world.maestrano.on_entities
    def on_entities(preset: Any, group_id: str, collection: str, entities: list[Any], source: str) -> None:
        imported.append(source)

    # what the SSO login code calls when a login creates the company (sso/views.py)
    assert syncing.first_login(world.app, world.preset, GROUP) is True
    future = get_state(world.app).sync.futures[("sandbox", GROUP)]
    run = future.result(timeout=60)
    assert run is not None and run.status == SUCCESS and run.full
    assert imported == []  # the engine read the mapped collections, not the plain import
    assert world.store.is_enabled("sandbox", GROUP) is True
    assert db.session.scalar(select(func.count()).select_from(Contact)) == 3


@pytest.mark.redis
def test_the_lock_is_a_job_lease_in_redis_that_only_its_owner_releases(
    tmp_path: Any,
    live_server: Callable[..., Any],
    redis_url: str,
) -> None:
    world = World(tmp_path, live_server, MAESTRANO_STORE=redis_url)
    try:
        # a second process: its own store and job backend on the same Redis server
        other = backend_for(RedisStore.from_url(redis_url))
        name = syncing.lock_name("sandbox", GROUP)
        seen: list[Any] = []
        original_create = world.companies.create

        def create_and_look(data: dict[str, Any], **kw: Any) -> Any:
            if not seen:
                seen.append(other.holder(name))
                seen.append(other.acquire(name, "another-run", 60))
                other.release(name, "another-run")  # not the owner: nothing happens
                seen.append(other.holder(name))
                # the run's lease is taken over (as after an expiry): the run must not free it
                other.client.delete(other.prefix + "lock:" + name)  # type: ignore[attr-defined]
                seen.append(other.acquire(name, "next-run", 60))
            return original_create(data, **kw)

        world.companies.create = create_and_look  # type: ignore[method-assign]
        run = world.run()
        assert run is not None
        assert seen[0] is not None and seen[0] != "another-run"  # the run holds it, seen from outside
        assert seen[1] is False and seen[2] == seen[0]
        assert seen[3] is True
        assert other.holder(name) == "next-run"  # the run ended without releasing another's lock
        other.release(name, "next-run")
        assert other.holder(name) is None
    finally:
        world.close()


def test_a_notification_during_a_run_waits_and_is_applied_at_its_end(world: World) -> None:
    world.age_connec_data()
    globex = next(o for o in world.entities("organizations") if o["name"] == "Globex Inc")
    answers: list[int | None] = []
    original_create = world.contacts.create

    def create_while_connec_notifies(data: dict[str, Any], **kw: Any) -> Any:
        if not answers:  # another app renames Globex and Connec! notifies us mid-run
            with database(world.sandbox).connect() as conn:
                row = find_entity(conn, GROUP, "organizations", globex["id"][0]["id"])
                assert row is not None
                update_entity(conn, row, {"name": "Globex Renamed"}, [])
            notified = push_notification(
                world.sandbox, "app-sync", GROUP, "organizations", globex["id"][0]["id"]
            )
            answers.append(notified.status)
            assert [m.collection for m in world.store.pending("sandbox", GROUP)] == ["organizations"]
        return original_create(data, **kw)

    world.contacts.create = create_while_connec_notifies  # type: ignore[method-assign]
    run = world.run()
    assert run is not None and run.status == SUCCESS and answers == [200]
    assert world.store.pending("sandbox", GROUP) == []
    db.session.expire_all()
    assert sorted(db.session.scalars(select(Company.name))) == ["Acme Corp", "Globex Renamed", "Initech"]


def test_archived_in_connec_archives_the_local_record(world: World) -> None:
    assert world.run() is not None
    initech = db.session.execute(select(Company).filter_by(name="Initech")).scalar_one()
    world.edit_in_connec(
        "organizations", world.connec_id("organizations", initech.id), {"status": "ARCHIVED"}
    )
    run = world.run()
    assert run is not None and run.counts["organizations"]["archived"] == 1
    db.session.expire_all()
    assert db.session.get(Company, initech.id).archived is True  # type: ignore[union-attr]


def test_recovery_mode_and_abandoned_runs(world: World) -> None:
    from flask_maestrano.sync import ERROR, RUNNING, SyncRun

    assert world.run() is not None
    now = datetime.now(timezone.utc)
    for _ in range(3):
        world.store.add_run(SyncRun("sandbox", GROUP, ERROR, now, finished_at=now, message="boom"))
    assert world.run(forced=False) is None  # three failures in a row: automatic runs wait a day
    world.store.add_run(SyncRun("sandbox", GROUP, RUNNING, now))  # a worker killed mid-run
    run = world.run()  # forced (the CLI, run_sync's default)
    assert run is not None and run.status == SUCCESS
    statuses = [(r.status, r.message) for r in world.store.runs("sandbox", GROUP)]
    assert statuses[:2] == [(SUCCESS, None), (ERROR, "abandoned (worker stopped)")]
    assert world.run(forced=False) is not None  # the last run succeeded: no recovery mode


def test_the_commit_hook_can_push_on_the_executor(tmp_path: Any, live_server: Callable[..., Any]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=1)
    world = World(tmp_path, live_server, MAESTRANO_IMPORT_EXECUTOR=pool)
    try:
        assert world.run() is not None
        world.unhook = sync_on_commit(world.app, db.session, background=True)
        db.session.add(Company(group_id=GROUP, name="Background Inc"))
        db.session.commit()
        pool.submit(lambda: None).result(timeout=60)  # one worker: the push queued before has run
        assert len(world.wire.batches) == 1
        assert [o["name"] for o in world.entities("organizations")].count("Background Inc") == 1
        db.session.add(Company(group_id=GROUP, name="Rolled Back"))
        db.session.flush()
        db.session.rollback()  # a rollback drops what its flushes captured
        db.session.add(Company(group_id=GROUP, name="Kept"))
        db.session.commit()
        pool.submit(lambda: None).result(timeout=60)
        names = [o["name"] for o in world.entities("organizations")]
        assert "Kept" in names and "Rolled Back" not in names
        pool.shutdown(wait=True)
        db.session.add(Company(group_id=GROUP, name="After Shutdown"))
        db.session.commit()  # the executor refuses: the commit still stands
        assert (
            db.session.scalar(select(func.count()).select_from(Company).filter_by(name="After Shutdown")) == 1
        )
    finally:
        world.close()
        pool.shutdown(wait=True)


def notify_people(world: World, entity: dict[str, Any]) -> requests.Response:
    """Post a Connec! notification of one person to the host app."""
    return requests.post(
        f"{world.base}/maestrano/connec/notifications/sandbox",
        json={"people": [entity]},
        auth=("app-sync", "sync-key"),
        timeout=30,
    )


def test_a_connec_entity_claiming_our_id_of_another_groups_record_leaves_that_record_alone(
    world: World,
) -> None:
    assert world.run() is not None
    victim = db.session.execute(select(Contact).filter_by(group_id=GROUP)).scalars().first()
    assert victim is not None
    victim_id, name = victim.id, victim.first_name
    # a record of another company whose id list claims our id of GROUP's record (realm: its own group)
    entity = {
        "id": [
            {"provider": "connec", "id": "cnx-other-1"},
            {"provider": "app-sync", "realm": "cld-2", "id": str(victim_id)},
        ],
        "group_id": "cld-2",
        "first_name": "Intruder",
    }
    assert notify_people(world, entity).status_code == 200
    db.session.expire_all()
    kept = db.session.get(Contact, victim_id)
    assert (kept.group_id, kept.first_name) == (GROUP, name)
    created = contact_named("Intruder")  # the other company's record is its own
    assert created.group_id == "cld-2" and created.id != victim_id


def test_a_reference_claiming_our_id_of_another_groups_record_does_not_link_to_it(world: World) -> None:
    assert world.run() is not None
    company = db.session.execute(select(Company).filter_by(group_id=GROUP)).scalars().first()
    assert company is not None
    entity = {
        "id": "cnx-other-2",
        "group_id": "cld-2",
        "first_name": "Borrower",
        "organization_id": [
            {"provider": "connec", "id": "cnx-other-org"},
            {"provider": "app-sync", "realm": "cld-2", "id": str(company.id)},
        ],
    }
    assert notify_people(world, entity).status_code == 200
    db.session.expire_all()
    linked = db.session.execute(select(Contact).filter_by(group_id="cld-2", company_id=company.id)).all()
    assert linked == []  # it waits for its own organization instead
    waiting = world.store.pending("sandbox", "cld-2")
    assert [m.connec_id for m in waiting] == ["cnx-other-2"]
