"""Billing set-up against a real local platform: no charge before the end of the free trial."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from flask_maestrano.account import AccountClient, InvalidArgumentError
from flask_maestrano.billing import ad_hoc_bill, billing_start, setup_recurring_bill
from flask_maestrano.sso.identity import Group
from tests.support.fake_platform import FakePlatform

UTC = timezone.utc


def sso_group(free_trial_end_at: datetime | None) -> Group:
    return Group(
        uid="cld-1",
        name="Doe Corp",
        free_trial_end_at=free_trial_end_at,
        company_name="Doe Corp",
        has_credit_card=True,
        org_uid=None,
        email="doe@example.com",
        city="Sydney",
        country="AU",
        timezone="Australia/Sydney",
        currency="AUD",
    )


def sent_start_date(platform: FakePlatform) -> str:
    return platform.calls("/api/v1/account/recurring_bills", "POST")[-1].form["start_date"]


def test_trial_in_the_future_defers_the_first_charge_to_the_trial_end(
    platform: FakePlatform, account: AccountClient
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    trial_end = now + timedelta(days=14)
    rbill = setup_recurring_bill(
        account, sso_group(trial_end), price_cents=2900, currency="USD", description="Pro plan", now=now
    )
    assert sent_start_date(platform) == trial_end.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert rbill.start_date == trial_end
    form = platform.calls("/api/v1/account/recurring_bills", "POST")[-1].form
    assert form["group_id"] == "cld-1" and form["price_cents"] == "2900" and form["currency"] == "USD"
    assert form["period"] == "Month" and form["frequency"] == "1"


def test_trial_in_the_past_starts_billing_now(platform: FakePlatform, account: AccountClient) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    setup_recurring_bill(
        account,
        sso_group(now - timedelta(days=3)),
        price_cents=2900,
        currency="AUD",
        description="Pro",
        now=now,
    )
    assert sent_start_date(platform) == now.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_no_trial_starts_billing_now_without_an_injected_clock(
    platform: FakePlatform, account: AccountClient
) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    setup_recurring_bill(account, sso_group(None), price_cents=100, currency="AUD", description="Pro")
    after = datetime.now(UTC)
    sent = datetime.strptime(sent_start_date(platform), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert before <= sent <= after


def test_an_account_api_group_is_billed_the_same_way(platform: FakePlatform, account: AccountClient) -> None:
    group = account.groups.retrieve("cld-1")  # free trial until 2030-01-01
    now = datetime.now(UTC)
    setup_recurring_bill(account, group, price_cents=100, currency="AUD", description="Pro", now=now)
    expected = max(now, datetime(2030, 1, 1, tzinfo=UTC))
    assert sent_start_date(platform) == expected.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_a_naive_trial_end_is_read_as_utc() -> None:
    now = datetime(2024, 1, 1, tzinfo=UTC)
    assert billing_start(datetime(2024, 2, 1), now) == datetime(2024, 2, 1, tzinfo=UTC)


def test_setup_checks_its_arguments_before_sending(platform: FakePlatform, account: AccountClient) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        setup_recurring_bill(account, sso_group(None), price_cents=100, currency="euro", description="x")
    assert info.value.param == "currency"
    with pytest.raises(InvalidArgumentError) as info:
        setup_recurring_bill(
            account,
            SimpleNamespace(uid="", free_trial_end_at=None),
            price_cents=100,
            currency="AUD",
            description="x",
        )
    assert info.value.param == "group_id"
    with pytest.raises(InvalidArgumentError) as info:
        setup_recurring_bill(
            account,
            sso_group(None),
            price_cents=100,
            currency="AUD",
            description="x",
            period="SemiMonth",
            frequency=2,
        )
    assert info.value.param == "frequency"
    assert platform.requests == []


def test_ad_hoc_bill_charges_extras_once(platform: FakePlatform, account: AccountClient) -> None:
    bill = ad_hoc_bill(account, "cld-1", price_cents=500, currency="aud", description="Extra 10 GB", units=2)
    assert bill.id == "bill-1" and bill.price_cents == 500 and bill.currency == "AUD"
    form = platform.calls("/api/v1/account/bills", "POST")[0].form
    assert form == {
        "group_id": "cld-1",
        "price_cents": "500",
        "currency": "AUD",
        "description": "Extra 10 GB",
        "units": "2",
    }
    with pytest.raises(InvalidArgumentError) as info:
        ad_hoc_bill(account, "cld-1", price_cents=0, currency="AUD", description="free")
    assert info.value.param == "price_cents"
