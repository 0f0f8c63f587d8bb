"""Deletions and archives both ways, against the sandbox over real HTTP with the host's records
in real SQLite: Connec! has no hard delete, so a local delete or archive becomes
``status: ARCHIVED``; an entity archived in Connec! reaches the mapping's archive hook; the id
maps remember both, and no later pull brings a deleted record back."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from sqlalchemy import delete, func, select

from flask_maestrano import syncing
from flask_maestrano.contrib.sqlalchemy import sync_on_commit
from flask_maestrano.sandbox.actions import push_notification
from flask_maestrano.sync import SUCCESS
from tests.support.sync_world import GROUP, Company, Contact, World, contact_named, db


def contacts() -> list[str]:
    db.session.expire_all()
    return sorted(f"{c.first_name} {c.last_name}" for c in db.session.scalars(select(Contact)))


def archive_ops(world: World) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (op["method"], op["url"], op["params"][op["url"].split("/")[4]])
        for batch in world.wire.batches
        for op in batch["ops"]
    ]


def test_a_local_delete_archives_the_entity_and_no_pull_brings_it_back(world: World) -> None:
    assert world.run() is not None
    before = contacts()
    world.unhook = sync_on_commit(world.app, db.session)
    john = contact_named("John")
    john_id = str(john.id)
    connec_id = world.connec_id("people", john.id)
    db.session.delete(john)
    db.session.commit()

    (op,) = archive_ops(world)
    assert op[:2] == ("put", f"/api/v2/{GROUP}/people/{connec_id}")
    assert op[2] == {"status": "ARCHIVED", "id": [{"id": john_id, "provider": "app-sync", "realm": GROUP}]}
    assert world.entity("people", connec_id)["status"] == "ARCHIVED"
    idmap = world.store.by_local("sandbox", GROUP, "people", [john_id])[john_id]
    assert idmap.archived_at is not None and idmap.connec_id == connec_id

    # Connec! notifies the archive back, another app edits it, a full sync reads it: still gone
    assert push_notification(world.sandbox, "app-sync", GROUP, "people", connec_id).status == 200
    world.edit_in_connec("people", connec_id, {"first_name": "Zombie", "status": "ACTIVE"})
    assert push_notification(world.sandbox, "app-sync", GROUP, "people", connec_id).status == 200
    run = world.run(full=True)
    assert run is not None and run.status == SUCCESS
    assert contacts() == [name for name in before if not name.startswith("John ")]
    assert len(world.wire.batches) == 1


def test_a_delete_made_without_the_hook_is_archived_by_the_next_run(world: World) -> None:
    assert world.run() is not None
    john = contact_named("John")
    john_id, connec_id = john.id, world.connec_id("people", john.id)
    db.session.execute(delete(Contact).where(Contact.id == john_id))  # behind the engine's back
    db.session.commit()
    first = world.run(full=True)
    assert first is not None and first.status == SUCCESS
    assert first.counts["people"]["archives_pushed"] == 1
    assert [op[:2] for op in archive_ops(world)] == [("put", f"/api/v2/{GROUP}/people/{connec_id}")]
    assert world.entity("people", connec_id)["status"] == "ARCHIVED"
    again = world.run(full=True)
    assert again is not None and again.status == SUCCESS
    assert db.session.scalar(select(func.count()).select_from(Contact).filter_by(first_name="John")) == 0
    assert len(world.wire.batches) == 1  # recorded once: not archived again, not re-created


def test_a_local_archive_is_pushed_and_an_archive_in_connec_reaches_the_hook(world: World) -> None:
    assert world.run() is not None
    world.unhook = sync_on_commit(world.app, db.session)
    initech = db.session.execute(select(Company).filter_by(name="Initech")).scalar_one()
    initech.archived = True
    db.session.commit()
    (op,) = archive_ops(world)
    assert op[2]["status"] == "ARCHIVED"
    assert world.entity("organizations", world.connec_id("organizations", initech.id))["status"] == "ARCHIVED"

    # archived by another app in Connec!: the mapping's archive hook runs, nothing is pushed back
    globex = db.session.execute(select(Company).filter_by(name="Globex Inc")).scalar_one()
    globex_connec = world.connec_id("organizations", globex.id)
    world.edit_in_connec("organizations", globex_connec, {"status": "ARCHIVED"})
    assert push_notification(world.sandbox, "app-sync", GROUP, "organizations", globex_connec).status == 200
    db.session.expire_all()
    assert db.session.get(Company, globex.id).archived is True  # type: ignore[union-attr]
    idmap = world.store.by_connec("sandbox", GROUP, "organizations", [globex_connec])[globex_connec]
    assert idmap.archived_at is not None
    assert len(world.wire.batches) == 1
    # read again by a full run: already archived on both sides, nothing to do
    run = world.run(full=True)
    assert run is not None and "archived" not in run.counts.get("organizations", {})
    assert len(world.wire.batches) == 1


def test_push_archive_for_a_host_without_the_hook(world: World) -> None:
    assert world.run() is not None
    acme = db.session.execute(select(Company).filter_by(name="Acme Corp")).scalar_one()
    connec_id = world.connec_id("organizations", acme.id)
    never_pushed = Company(group_id=GROUP, name="Local Only")
    db.session.add(never_pushed)
    db.session.commit()
    errors = syncing.push_archive(
        world.app, "organizations", [str(acme.id), str(never_pushed.id)], group_id=GROUP
    )
    assert errors == []
    assert [op[:2] for op in archive_ops(world)] == [("put", f"/api/v2/{GROUP}/organizations/{connec_id}")]
    maps = world.store.by_local("sandbox", GROUP, "organizations", [str(acme.id), str(never_pushed.id)])
    assert all(m.archived_at is not None for m in maps.values()) and len(maps) == 2
    with pytest.raises(KeyError, match="no mapping"):
        syncing.push_archive(world.app, "widgets", ["1"], group_id=GROUP)


def test_the_sandbox_like_connec_has_no_hard_delete(world: World) -> None:
    acme = next(o for o in world.entities("organizations") if o["name"] == "Acme Corp")
    url = f"{world.base}/sandbox/api/v2/{GROUP}/organizations/{acme['id'][0]['id']}"
    answer = requests.delete(url, auth=("app-sync", "sync-key"), timeout=30)
    assert answer.status_code == 405
    assert answer.json()["errors"][0]["detail"].startswith("Connec! does not delete records")
    batch = requests.post(
        f"{world.base}/sandbox/batch",
        json={"sequential": True, "ops": [{"method": "delete", "url": url.split("/sandbox")[1]}]},
        auth=("app-sync", "sync-key"),
        timeout=30,
    )
    (result,) = batch.json()["results"]
    assert (
        result["status"] == 400 and "Connec! does not delete records" in result["body"]["errors"][0]["detail"]
    )
    assert world.entity("organizations", acme["id"][0]["id"])["name"] == "Acme Corp"
