"""The Account API client against a real local platform: each operation, its envelope and its checks."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from flask import Flask

from flask_maestrano import Maestrano
from flask_maestrano.account import (
    AccountClient,
    AccountGroup,
    AccountUser,
    Bill,
    InvalidArgumentError,
    RecurringBill,
    encode_params,
    parse_datetime,
)
from flask_maestrano.errors import ApiError, InvalidRequestError
from tests.support.fake_platform import FakePlatform, KeepAliveServer, platform_preset_data

UTC = timezone.utc


def test_groups_list_and_retrieve_are_typed_with_utc_datetimes(account: AccountClient) -> None:
    groups = account.groups.list()
    assert [type(g) for g in groups] == [AccountGroup]
    group = account.groups.retrieve("cld-1")
    assert group == groups[0]
    assert group.name == "Doe Corp" and group.uid == "cld-1" and group.has_credit_card is True
    assert group.free_trial_end_at == datetime(2030, 1, 1, tzinfo=UTC)
    assert group.created_at == datetime(2024, 5, 1, 8, 0, tzinfo=UTC)  # +02:00 converted
    assert group.updated_at == datetime(2024, 5, 2, 8, 0, 0, 123456, tzinfo=UTC)
    assert group.raw["timezone"] == "Australia/Sydney"


def test_users_list_passes_filters_through_and_retrieve(
    platform: FakePlatform, account: AccountClient
) -> None:
    users = account.users.list(group_id="cld-1", created_at_after=datetime(2024, 1, 1, tzinfo=UTC))
    assert [u.email for u in users] == ["john@example.com"]
    assert isinstance(users[0], AccountUser)
    query = platform.calls("/api/v1/account/users")[0].query
    assert query == {"group_id": ["cld-1"], "created_at_after": ["2024-01-01T00:00:00Z"]}
    assert account.users.list(group_id="cld-other") == []
    assert account.users.retrieve("usr-1").surname == "Doe"


def test_bill_create_is_form_encoded_like_the_ruby_sdk(
    platform: FakePlatform, account: AccountClient
) -> None:
    bill = account.bills.create(
        group_id="cld-1",
        price_cents=23000,
        currency="aud",
        description="Some bill",
        units=Decimal("2.5"),
        period_started_at=datetime(2030, 1, 1, tzinfo=UTC),
        period_ended_at=datetime(2030, 2, 1, tzinfo=UTC),
        third_party=False,
    )
    assert isinstance(bill, Bill)
    assert bill.id == "bill-1" and bill.status == "submitted" and bill.price_cents == 23000
    assert bill.units == Decimal("2.5") and bill.third_party is False
    assert bill.period_started_at == datetime(2030, 1, 1, tzinfo=UTC)
    call = platform.calls("/api/v1/account/bills", "POST")[0]
    assert call.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert call.form == {
        "group_id": "cld-1",
        "price_cents": "23000",
        "currency": "AUD",
        "description": "Some bill",
        "units": "2.5",
        "period_started_at": "2030-01-01T00:00:00Z",
        "period_ended_at": "2030-02-01T00:00:00Z",
        "third_party": "false",
    }


def test_bill_list_filters_retrieve_and_cancel(platform: FakePlatform, account: AccountClient) -> None:
    first = account.bills.create(group_id="cld-1", price_cents=100, description="a")
    account.bills.create(group_id="cld-1", price_cents=200, description="b")
    assert len(account.bills.list(group_id="cld-1")) == 2
    assert [b.id for b in account.bills.list(description="b")] == ["bill-2"]
    assert account.bills.retrieve(first.id).description == "a"
    cancelled = account.bills.cancel(first.id)
    assert cancelled.status == "cancelled"
    assert account.bills.cancel(first.id).status == "cancelled"  # idempotent
    assert [b.id for b in account.bills.list(status="cancelled")] == ["bill-1"]
    assert [c.method for c in platform.calls("/api/v1/account/bills/bill-1")] == ["GET", "DELETE", "DELETE"]


def test_cancelling_an_invoiced_bill_names_the_status_field(
    platform: FakePlatform, account: AccountClient
) -> None:
    bill = account.bills.create(group_id="cld-1", price_cents=100, description="a")
    platform.bills[bill.id]["status"] = "invoiced"
    with pytest.raises(InvalidRequestError) as info:
        account.bills.cancel(bill.id)
    assert info.value.param == "status" and info.value.http_status == 400
    assert "status has already been set to invoiced" in str(info.value)


def test_recurring_bill_operations(platform: FakePlatform, account: AccountClient) -> None:
    start = datetime.now(UTC) + timedelta(days=30)
    rbill = account.recurring_bills.create(
        group_id="cld-1",
        price_cents=2900,
        currency="USD",
        description="Pro plan",
        period="Week",
        frequency=2,
        cycles=12,
        initial_cents=0,
        start_date=start,
    )
    assert isinstance(rbill, RecurringBill)
    assert rbill.id == "rbill-1" and rbill.period == "Week" and rbill.frequency == 2 and rbill.cycles == 12
    assert rbill.start_date == start.replace(microsecond=0)
    form = platform.calls("/api/v1/account/recurring_bills", "POST")[0].form
    assert form["period"] == "Week" and form["frequency"] == "2" and form["initial_cents"] == "0"
    assert [r.id for r in account.recurring_bills.list(group_id="cld-1")] == ["rbill-1"]
    assert account.recurring_bills.retrieve("rbill-1").price_cents == 2900
    assert account.recurring_bills.cancel("rbill-1").status == "cancelled"


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"currency": "dollars"}, "currency"),
        ({"currency": "AU"}, "currency"),
        ({"price_cents": 0}, "price_cents"),
        ({"price_cents": -5}, "price_cents"),
        ({"price_cents": 10.5}, "price_cents"),
        ({"price_cents": "100"}, "price_cents"),
        ({"price_cents": True}, "price_cents"),
        ({"description": ""}, "description"),
        ({"group_id": ""}, "group_id"),
        ({"period": "Fortnight"}, "period"),
        ({"period": "Month", "frequency": 13}, "frequency"),
        ({"period": "Day", "frequency": 366}, "frequency"),
        ({"period": "Week", "frequency": 53}, "frequency"),
        ({"period": "Year", "frequency": 2}, "frequency"),
        ({"period": "SemiMonth", "frequency": 2}, "frequency"),
        ({"frequency": 0}, "frequency"),
        ({"cycles": 0}, "cycles"),
        ({"initial_cents": -1}, "initial_cents"),
        ({"start_date": datetime(2020, 1, 1, tzinfo=UTC)}, "start_date"),
    ],
)
def test_recurring_bill_arguments_are_checked_before_sending(
    platform: FakePlatform, account: AccountClient, kwargs: dict[str, Any], param: str
) -> None:
    arguments: dict[str, Any] = {
        "group_id": "cld-1",
        "price_cents": 100,
        "description": "x",
        "currency": "AUD",
    }
    arguments.update(kwargs)
    with pytest.raises(InvalidArgumentError) as info:
        account.recurring_bills.create(**arguments)
    assert info.value.param == param
    assert param in str(info.value)
    assert isinstance(info.value, ValueError) and isinstance(info.value, InvalidRequestError)
    assert platform.requests == []


@pytest.mark.parametrize(
    ("period", "frequency"), [("Day", 365), ("Week", 52), ("Month", 12), ("SemiMonth", 1)]
)
def test_longest_allowed_periods_are_accepted(account: AccountClient, period: str, frequency: int) -> None:
    rbill = account.recurring_bills.create(
        group_id="cld-1", price_cents=100, description="x", period=period, frequency=frequency
    )
    assert rbill.period == period


def test_bill_units_must_be_positive(platform: FakePlatform, account: AccountClient) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        account.bills.create(group_id="cld-1", price_cents=100, description="x", units=0)
    assert info.value.param == "units"
    assert platform.requests == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2014-05-01T00:00:00Z", datetime(2014, 5, 1, tzinfo=UTC)),
        ("2014-05-01T10:00:00+02:00", datetime(2014, 5, 1, 8, tzinfo=UTC)),
        ("2014-05-01T10:00:00-0130", datetime(2014, 5, 1, 11, 30, tzinfo=UTC)),
        ("2014-05-01 10:00:00.5", datetime(2014, 5, 1, 10, 0, 0, 500000, tzinfo=UTC)),
        ("2014-05-01T10:00:00.123456789Z", datetime(2014, 5, 1, 10, 0, 0, 123456, tzinfo=UTC)),
        ("2014-05-01T10:00", datetime(2014, 5, 1, 10, tzinfo=UTC)),
        ("2014-05-01", datetime(2014, 5, 1, tzinfo=UTC)),
        ("2014-05-01T10:00:00 UTC", datetime(2014, 5, 1, 10, tzinfo=UTC)),
        (None, None),
        ("", None),
    ],
)
def test_datetimes_are_parsed_liberally_to_utc(text: str | None, expected: datetime | None) -> None:
    assert parse_datetime(text) == expected


def test_a_wrong_datetime_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="not an ISO-8601"):
        parse_datetime("yesterday")


def test_params_are_flattened_like_the_ruby_sdk() -> None:
    assert encode_params({"a": {"b": 1}, "c": [1, 2], "d": None, "e": datetime(2024, 1, 1, tzinfo=UTC)}) == [
        ("a[b]", "1"),
        ("c[]", "1"),
        ("c[]", "2"),
        ("e", "2024-01-01T00:00:00Z"),
    ]


def test_maestrano_account_uses_one_pooled_session_per_preset(
    platform: FakePlatform, server: KeepAliveServer, make_app: Any
) -> None:
    maestrano = Maestrano()
    app: Flask = make_app(
        presets={"production": platform_preset_data(server.url)},
        maestrano=maestrano,
        MAESTRANO_IMPORT_ON_FIRST_LOGIN=False,
    )
    with app.app_context():
        first = maestrano.account()
        second = maestrano.account("production")
        assert first.session is second.session
        assert first.timeout == (10.0, 60.0)
        first.ping()
        second.groups.list()
    assert len(platform.ports()) == 1


@pytest.mark.parametrize(
    ("path", "data"),
    [
        ("/api/v1/account/bills/bill-9", {"id": "bill-9", "price_cents": "a lot"}),
        ("/api/v1/account/bills/bill-9", {"id": "bill-9", "created_at": "yesterday"}),
        ("/api/v1/account/bills/bill-9", {"id": "bill-9", "units": "many"}),
        ("/api/v1/account/bills/bill-9", {"id": "bill-9", "price_cents": [1]}),
        ("/api/v1/account/bills/bill-9", {}),
        ("/api/v1/account/bills/bill-9", ["bill-9"]),
        ("/api/v1/account/bills", [{"id": "bill-9", "period_started_at": "soon"}]),
        ("/api/v1/account/bills", ["bill-9"]),
    ],
)
def test_an_answer_that_does_not_fit_the_object_is_an_api_error(
    platform: FakePlatform, account: AccountClient, path: str, data: Any
) -> None:
    platform.override(path, 200, json.dumps({"success": True, "errors": {}, "data": data}))
    call = account.bills.list if path.endswith("bills") else lambda: account.bills.retrieve("bill-9")
    with pytest.raises(ApiError, match="Invalid response object from API"):
        call()
