"""The sandbox account API over real HTTP: envelope, auth, validation, quirks, filters."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import requests


@pytest.fixture
def sandbox(make_sandbox: Any) -> Any:
    return make_sandbox()


def api(sandbox: Any, method: str, path: str, **kwargs: Any) -> requests.Response:
    kwargs.setdefault("auth", sandbox.auth)
    return requests.request(method, f"{sandbox.url}/api/v1/{path}", timeout=10, **kwargs)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_ping_answers_in_the_envelope(sandbox: Any) -> None:
    answer = api(sandbox, "GET", "ping")
    assert answer.status_code == 200
    assert answer.json() == {
        "success": True,
        "errors": {},
        "data": {"msg": "Ping successful! (API Authentication successful)"},
    }


@pytest.mark.parametrize("auth", [None, ("app-sandbox", "wrong"), ("app-nope", "sandbox-secret-key")])
def test_wrong_credentials_get_the_401_envelope(sandbox: Any, auth: Any) -> None:
    answer = api(sandbox, "GET", "account/bills", auth=auth)
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"].startswith("Basic")
    assert answer.json() == {
        "success": False,
        "errors": {"authentication": ["Invalid API token"]},
        "data": {},
    }


def test_create_a_bill_form_encoded_then_retrieve_and_list_it(sandbox: Any) -> None:
    created = api(
        sandbox,
        "POST",
        "account/bills",
        data={
            "group_id": "cld-1",
            "price_cents": "2300",
            "currency": "usd",
            "description": "Extra seats",
            "units": "2",
        },
    )
    assert created.status_code == 201
    bill = created.json()["data"]
    assert bill["object"] == "account_bill"
    assert bill["id"].startswith("bill-")
    assert (bill["price_cents"], bill["currency"], bill["units"], bill["status"]) == (
        2300,
        "USD",
        2.0,
        "submitted",
    )

    shown = api(sandbox, "GET", f"account/bills/{bill['id']}").json()
    assert shown == {"success": True, "errors": {}, "data": bill}
    listed = api(sandbox, "GET", "account/bills", params={"group_id": "cld-1"}).json()["data"]
    assert [b["id"] for b in listed] == [bill["id"]]


def test_create_a_bill_with_a_json_body(sandbox: Any) -> None:
    answer = api(
        sandbox,
        "POST",
        "account/bills",
        json={"group_id": "cld-1", "price_cents": 500, "description": "JSON bill", "third_party": True},
    )
    assert answer.status_code == 201
    data = answer.json()["data"]
    assert data["currency"] == "AUD" and data["third_party"] is True


def test_invalid_bill_gets_400_with_errors_per_field(sandbox: Any) -> None:
    answer = api(
        sandbox, "POST", "account/bills", data={"group_id": "cld-99", "price_cents": "-3", "currency": "XXX"}
    )
    assert answer.status_code == 400
    body = answer.json()
    assert body["success"] is False and body["data"] == {}
    assert body["errors"] == {
        "group_id": ["does not exist or cannot be charged by your service"],
        "price_cents": ["must be greater than or equal to 1"],
        "description": ["can't be blank"],
        "currency": ["is not a valid ISO-4217 currency code"],
    }
    assert api(sandbox, "GET", "account/bills").json()["data"] == []  # nothing half-written


def test_show_of_an_unknown_id_is_http_200_with_success_false(sandbox: Any) -> None:
    for path in (
        "account/bills/bill-999",
        "account/recurring_bills/rbill-9",
        "account/users/usr-9",
        "account/groups/cld-9",
    ):
        answer = api(sandbox, "GET", path)
        assert answer.status_code == 200
        assert answer.json() == {"success": False, "errors": {"id": ["does not exist"]}, "data": {}}


def test_cancel_is_idempotent_and_an_invoiced_bill_cannot_be_cancelled(sandbox: Any) -> None:
    bill = api(
        sandbox, "POST", "account/bills", data={"group_id": "cld-1", "price_cents": "100", "description": "a"}
    )
    bill_id = bill.json()["data"]["id"]
    first = api(sandbox, "DELETE", f"account/bills/{bill_id}")
    again = api(sandbox, "DELETE", f"account/bills/{bill_id}")
    assert first.status_code == again.status_code == 200
    assert first.json()["data"]["status"] == again.json()["data"]["status"] == "cancelled"

    other = api(
        sandbox, "POST", "account/bills", data={"group_id": "cld-1", "price_cents": "100", "description": "b"}
    )
    other_id = other.json()["data"]["id"]
    from flask_maestrano.sandbox.core import database

    with database(sandbox.app).connect() as conn:
        conn.execute("UPDATE bills SET status = 'invoiced' WHERE id = ?", (other_id,))
    refused = api(sandbox, "DELETE", f"account/bills/{other_id}")
    assert refused.status_code == 400
    assert refused.json()["errors"] == {"status": ["has already been set to invoiced and cannot be changed"]}
    assert api(sandbox, "DELETE", "account/bills/bill-404").status_code == 404


def test_recurring_bill_defaults_and_initial_bill(sandbox: Any) -> None:
    answer = api(
        sandbox,
        "POST",
        "account/recurring_bills",
        data={"group_id": "cld-1", "price_cents": "1500", "description": "Plan", "initial_cents": "999"},
    )
    assert answer.status_code == 201
    rbill = answer.json()["data"]
    assert rbill["object"] == "account_recurring_bill" and rbill["id"].startswith("rbill-")
    assert (rbill["period"], rbill["frequency"], rbill["cycles"], rbill["status"]) == (
        "Month",
        1,
        None,
        "submitted",
    )
    bills = api(sandbox, "GET", "account/bills").json()["data"]
    assert [(b["description"], b["price_cents"]) for b in bills] == [("Initial: Plan", 999)]
    cancelled = api(sandbox, "DELETE", f"account/recurring_bills/{rbill['id']}")
    assert cancelled.json()["data"]["status"] == "cancelled"


def test_recurring_bill_rules(sandbox: Any) -> None:
    past = iso(datetime.now(timezone.utc) - timedelta(days=2))
    answer = api(
        sandbox,
        "POST",
        "account/recurring_bills",
        data={
            "group_id": "cld-1",
            "price_cents": "100",
            "description": "x",
            "period": "Fortnight",
            "start_date": past,
        },
    )
    assert answer.status_code == 400
    errors = answer.json()["errors"]
    assert errors["start_date"] == ["cannot be in the past"]
    assert "must be one of Day, Week, SemiMonth, Month, Year" in errors["period"][0]

    too_long = api(
        sandbox,
        "POST",
        "account/recurring_bills",
        data={
            "group_id": "cld-1",
            "price_cents": "100",
            "description": "x",
            "period": "Month",
            "frequency": "13",
        },
    )
    assert too_long.json()["errors"] == {
        "frequency": ["period multiplied by frequency cannot exceed one year"]
    }
    semi = api(
        sandbox,
        "POST",
        "account/recurring_bills",
        data={
            "group_id": "cld-1",
            "price_cents": "100",
            "description": "x",
            "period": "SemiMonth",
            "frequency": "2",
        },
    )
    assert semi.status_code == 400


def test_list_filters_with_suffixes(sandbox: Any) -> None:
    ids = []
    for cents in (100, 200, 300):
        created = api(
            sandbox,
            "POST",
            "account/bills",
            data={"group_id": "cld-1", "price_cents": cents, "description": f"b{cents}"},
        )
        ids.append(created.json()["data"]["id"])

    def listed(**params: str) -> list[int]:
        return [b["price_cents"] for b in api(sandbox, "GET", "account/bills", params=params).json()["data"]]

    assert listed(price_cents="200") == [200]
    assert listed(price_cents_greater_than="200") == [200, 300]
    assert listed(price_cents_strictly_greater_than="200") == [300]
    assert listed(price_cents_lower_than="200") == [100, 200]
    assert listed(price_cents_strictly_lower_than="200") == [100]
    assert listed(created_at_after="2000-01-01T00:00:00Z") == [100, 200, 300]
    assert listed(created_at_before="2000-01-01T00:00:00Z") == []
    assert listed(no_such_column="1") == []
    assert listed(group_id="cld-2") == []


def test_users_and_groups_are_those_of_the_app(sandbox: Any) -> None:
    groups = api(sandbox, "GET", "account/groups").json()["data"]
    assert [(g["object"], g["id"], g["name"]) for g in groups] == [("account_group", "cld-1", "Acme Sandbox")]
    group = api(sandbox, "GET", "account/groups/cld-1").json()["data"]
    assert group["free_trial_end_at"].endswith("Z") and group["has_credit_card"] is False
    users = api(sandbox, "GET", "account/users", params={"group_id": "cld-1"}).json()["data"]
    assert [(u["object"], u["id"], u["email"]) for u in users] == [
        ("account_user", "usr-1", "jane.doe@example.com")
    ]
    assert api(sandbox, "GET", "account/users/usr-1").json()["data"]["surname"] == "Doe"

    from flask_maestrano.sandbox.core import database

    foreign = database(sandbox.app).create_group(name="Not a customer")
    assert api(sandbox, "GET", f"account/groups/{foreign}").json()["success"] is False
    charged = api(
        sandbox, "POST", "account/bills", data={"group_id": foreign, "price_cents": 1, "description": "x"}
    )
    assert charged.status_code == 400 and "group_id" in charged.json()["errors"]


def test_a_body_that_is_not_an_object_is_a_400(sandbox: Any) -> None:
    answer = api(
        sandbox, "POST", "account/bills", data="[1, 2]", headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 400
    assert answer.json()["errors"] == {"body": ["must be a JSON object or form fields"]}


@pytest.mark.parametrize(
    ("path", "fields", "field"),
    [
        ("account/bills", {"price_cents": "99999999999999999999999"}, "price_cents"),
        ("account/bills", {"units": "NaN"}, "units"),
        ("account/bills", {"units": "Infinity"}, "units"),
        ("account/bills", {"units": "1e999999"}, "units"),
        ("account/bills", {"units": "100000000"}, "units"),
        ("account/recurring_bills", {"cycles": "99999999999999999999999"}, "cycles"),
        ("account/recurring_bills", {"initial_cents": "99999999999999999999999"}, "initial_cents"),
    ],
)
def test_out_of_range_numbers_are_a_400_naming_the_field(
    sandbox: Any, path: str, fields: dict[str, str], field: str
) -> None:
    data = {"group_id": "cld-1", "price_cents": "100", "description": "Storage", **fields}
    answer = api(sandbox, "POST", path, data=data)
    assert answer.status_code == 400
    assert answer.json()["success"] is False and field in answer.json()["errors"]


def test_a_sandbox_failure_answers_the_platform_system_error_envelope(tmp_path: Any) -> None:
    from flask_maestrano.sandbox import create_app

    sandbox = create_app(
        {"SANDBOX_DATABASE": str(tmp_path / "s.sqlite3"), "SANDBOX_APPS": [{"id": "app-s", "key": "k"}]}
    )

    @sandbox.get("/api/v1/boom")
    def boom() -> None:
        raise RuntimeError("a bug")

    answer = sandbox.test_client().get("/api/v1/boom")
    assert answer.status_code == 500
    assert answer.get_json() == {
        "success": False,
        "errors": {"system": [SYSTEM_ERROR]},
        "data": {},
    }


SYSTEM_ERROR = (
    "A system error occured. Please retry later or contact support@maestrano.com if the issue persists."
)
