"""Seed Connec! data every new sandbox company starts with."""

from __future__ import annotations

import sqlite3

from .entities import insert_entity


def seed_group(conn: sqlite3.Connection, group_uid: str, group_name: str) -> None:
    """A few organizations, people, items and invoices, plus the singular ``company``."""
    insert_entity(
        conn,
        group_uid,
        "company",
        {"name": group_name, "currency": "USD", "email": {"address": f"{group_uid}@example.com"}},
    )
    orgs = [
        insert_entity(
            conn, group_uid, "organizations", {"name": name, "is_customer": True, "status": "ACTIVE"}
        )
        for name in ("Acme Corp", "Globex Inc", "Initech")
    ]
    for first, last, org in (
        ("John", "Doe", orgs[0]),
        ("Jane", "Roe", orgs[1]),
        ("Ada", "Lovelace", orgs[2]),
    ):
        insert_entity(
            conn,
            group_uid,
            "people",
            {
                "first_name": first,
                "last_name": last,
                "organization_id": org["id"],
                "email": {"address": f"{first.lower()}@example.com"},
            },
        )
    items = [
        insert_entity(
            conn, group_uid, "items", {"code": code, "name": name, "sale_price": {"net_amount": price}}
        )
        for code, name, price in (("CT1", "Consulting hour", 150.0), ("CT2", "Support plan", 49.0))
    ]
    for number, (org, item, quantity) in enumerate(((orgs[0], items[0], 10), (orgs[1], items[1], 12)), 1):
        insert_entity(
            conn,
            group_uid,
            "invoices",
            {
                "transaction_number": f"INV-{number:04d}",
                "type": "CUSTOMER",
                "status": "AUTHORISED",
                "organization_id": org["id"],
                "lines": [{"item_id": item["id"], "quantity": quantity}],
                "amount": {"total_amount": quantity * item["sale_price"]["net_amount"], "currency": "USD"},
            },
        )
