"""The outbound clients against the embedded sandbox platform (not only the test fake)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask

from flask_maestrano import Maestrano
from flask_maestrano.billing import ad_hoc_bill, setup_recurring_bill
from flask_maestrano.errors import InvalidRequestError
from flask_maestrano.sandbox import create_app, preset_for


def test_account_billing_connec_and_import_work_against_the_sandbox(tmp_path: Path, live_server: Any) -> None:
    sandbox = create_app({"SANDBOX_DATABASE": str(tmp_path / "sandbox.sqlite3")})
    server = live_server(sandbox)
    app = Flask("host", instance_path=str(tmp_path / "instance"))
    app.config.update(
        SECRET_KEY="x", MAESTRANO_PRESETS={"sandbox": preset_for(sandbox, sandbox_url=server.url)}
    )
    maestrano = Maestrano(app)
    received: list[str] = []

    @maestrano.on_entities
    def on_entities(preset: Any, group_id: str, collection: str, entities: Any, source: str) -> None:
        received.extend(f"{collection}:{e.id}" for e in entities)

    with app.app_context():
        account = maestrano.account()
        (group,) = account.groups.list()
        assert group.free_trial_end_at is not None
        assert [u.email for u in account.users.list(group_id=group.id)] == ["jane.doe@example.com"]

        recurring = setup_recurring_bill(account, group, price_cents=2900, currency="USD", description="Pro")
        assert recurring.start_date == max(
            recurring.created_at or group.free_trial_end_at, group.free_trial_end_at
        )
        bill = ad_hoc_bill(account, group.id, price_cents=500, currency="AUD", description="Extra", units=2)
        assert account.bills.cancel(bill.id).status == "cancelled"
        try:
            account.bills.retrieve("bill-999")
        except InvalidRequestError as exc:
            assert exc.param == "id"
        else:
            raise AssertionError("an unknown bill must raise")

        connec = maestrano.connec(group.id)
        before = sum(1 for _ in connec.iterate("people"))
        for i in range(12):
            connec.post("people", {"people": {"first_name": f"P{i}"}})
        assert sum(1 for _ in connec.iterate("people", top=5)) == before + 12
        status = maestrano.run_import(group.id, collections=["people"])
    assert status.state == "succeeded" and status.counts["people"] == before + 12
    assert len(received) == before + 12
