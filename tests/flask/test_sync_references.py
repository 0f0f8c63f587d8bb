"""Sub-record references (invoice ``lines/item_id``) and ``matching_fields``, against the sandbox
over real HTTP with the host's records in real SQLite."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from sqlalchemy import func, select

from flask_maestrano.contrib.sqlalchemy import sync_on_commit
from flask_maestrano.sandbox.actions import push_notification
from flask_maestrano.sandbox.core import database
from flask_maestrano.sandbox.entities import insert_entity
from flask_maestrano.sync import SUCCESS
from tests.support.sync_world import GROUP, Company, Contact, Invoice, Item, World, db


@pytest.fixture
def world(tmp_path: Any, live_server: Callable[..., Any]) -> Iterator[World]:
    built = World(tmp_path, live_server, lines=True)
    yield built
    built.close()


def item_coded(code: str) -> Item:
    found: Item = db.session.execute(select(Item).filter_by(code=code)).scalar_one()
    return found


def invoice_numbered(number: str) -> Invoice:
    db.session.expire_all()
    found: Invoice = db.session.execute(select(Invoice).filter_by(number=number)).scalar_one()
    return found


def test_invoice_lines_reference_items_through_the_id_maps(world: World) -> None:
    run = world.run()
    assert run is not None and run.status == SUCCESS
    ct1, ct2 = item_coded("CT1"), item_coded("CT2")
    assert invoice_numbered("INV-0001").lines == [{"item_id": str(ct1.id), "quantity": 10}]
    assert invoice_numbered("INV-0002").lines == [{"item_id": str(ct2.id), "quantity": 12}]

    # a local edit: the line's item is sent as the item's Connec! id
    world.unhook = sync_on_commit(world.app, db.session)
    invoice = invoice_numbered("INV-0001")
    invoice.lines = [{"item_id": str(ct2.id), "quantity": 3}]
    db.session.commit()
    (batch,) = world.wire.batches
    sent = batch["ops"][0]["params"]["invoices"]
    ct2_connec = world.connec_id("items", ct2.id)
    assert sent["lines"] == [{"item_id": ct2_connec, "quantity": 3}]
    connec_id = world.connec_id("invoices", invoice.id)
    assert world.entity("invoices", connec_id)["lines"] == [{"item_id": ct2_connec, "quantity": 3}]
    # its echo changes nothing and pushes nothing
    assert push_notification(world.sandbox, "app-sync", GROUP, "invoices", connec_id).status == 200
    assert len(world.wire.batches) == 1
    assert invoice_numbered("INV-0001").lines == [{"item_id": str(ct2.id), "quantity": 3}]


def test_an_invoice_whose_line_item_is_unknown_waits_for_it(world: World) -> None:
    assert world.run() is not None
    acme = next(o for o in world.entities("organizations") if o["name"] == "Acme Corp")
    with database(world.sandbox).connect() as conn:
        item = insert_entity(conn, GROUP, "items", {"code": "CT9", "name": "Training day"})
        invoice = insert_entity(
            conn,
            GROUP,
            "invoices",
            {
                "transaction_number": "INV-9",
                "organization_id": acme["id"][0]["id"],
                "lines": [{"item_id": item["id"], "quantity": 1}],
            },
        )
    assert push_notification(world.sandbox, "app-sync", GROUP, "invoices", invoice["id"]).status == 200
    assert db.session.scalar(select(func.count()).select_from(Invoice).filter_by(number="INV-9")) == 0
    (waiting,) = world.store.pending("sandbox", GROUP)
    assert waiting.message == f"waiting for items {item['id']}"
    assert push_notification(world.sandbox, "app-sync", GROUP, "items", item["id"]).status == 200
    assert invoice_numbered("INV-9").lines == [{"item_id": str(item_coded("CT9").id), "quantity": 1}]
    assert world.store.pending("sandbox", GROUP) == []


def test_a_first_sync_links_an_existing_local_record_by_its_matching_fields(world: World) -> None:
    world.companies.matching_fields = ("name",)  # type: ignore[misc]
    mine = Company(group_id=GROUP, name="Acme Corp")  # the host had it before it joined
    db.session.add(mine)
    db.session.commit()
    run = world.run()
    assert run is not None and run.status == SUCCESS
    assert run.counts["organizations"]["matched"] == 1
    assert db.session.scalar(select(func.count()).select_from(Company)) == 3
    acme = next(o for o in world.entities("organizations") if o["name"] == "Acme Corp")
    assert world.connec_id("organizations", mine.id) == acme["id"][0]["id"]
    john = db.session.execute(select(Contact).filter_by(first_name="John")).scalar_one()
    assert john.company_id == mine.id


def test_a_new_local_record_matching_one_in_connec_links_to_it(world: World) -> None:
    world.companies.matching_fields = ("name",)  # type: ignore[misc]
    assert world.run() is not None
    with database(world.sandbox).connect() as conn:  # another app created it; we were not told
        hooli = insert_entity(conn, GROUP, "organizations", {"name": "Hooli"})
    world.unhook = sync_on_commit(world.app, db.session)
    mine = Company(group_id=GROUP, name="Hooli")
    db.session.add(mine)
    db.session.commit()
    (batch,) = world.wire.batches
    (op,) = batch["ops"]
    assert op["method"] == "post" and op["params"]["organizations"]["opts"] == {"matching_fields": ["name"]}
    assert [o["name"] for o in world.entities("organizations")].count("Hooli") == 1
    assert world.connec_id("organizations", mine.id) == hooli["id"]
    stored = world.entity("organizations", hooli["id"])
    assert "opts" not in stored
    external = next(o for o in world.entities("organizations") if o["name"] == "Hooli")["id"]
    assert {"id": str(mine.id), "provider": "app-sync", "realm": GROUP} in external


def test_the_sandbox_refuses_malformed_matching_fields(world: World) -> None:
    answer = requests.post(
        f"{world.base}/sandbox/api/v2/{GROUP}/organizations",
        json={"organizations": {"name": "X", "opts": {"matching_fields": "name"}}},
        auth=("app-sync", "sync-key"),
        timeout=30,
    )
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["detail"] == "opts.matching_fields must be a list of field names"
