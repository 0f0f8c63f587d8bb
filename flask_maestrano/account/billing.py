"""Billing a company through the platform (PLATFORM.md 5.5), the integration-checklist way.

* :func:`setup_recurring_bill`: when a company (group) is created, set up its subscription
  so that nothing is charged before its free trial ends: the recurring bill starts at
  ``max(now, group.free_trial_end_at)``.
* :func:`ad_hoc_bill`: charge a company once for an extra (units, storage, a service).

Both take an :class:`~flask_maestrano.account.AccountClient` (``maestrano.account()`` in a
Flask app) and check their arguments before anything is sent.

>>> @maestrano.find_or_create_group  # doctest: +SKIP
... def find_or_create_group(group, preset):
...     found = Company.query.filter_by(uid=group.uid).first()
...     if found:
...         return found, False
...     company = Company(uid=group.uid, name=group.name)
...     company.recurring_bill_id = setup_recurring_bill(
...         maestrano.account(preset.name), group, price_cents=2900,
...         currency="USD", description="Pro plan").id
...     db.session.add(company)
...     return company, True
"""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from typing import Protocol

from ..errors import InvalidArgumentError
from .client import AccountClient, Bill, RecurringBill, check_currency


class BillableGroup(Protocol):
    """What billing needs of a group: its uid and the end of its free trial.

    :class:`flask_maestrano.sso.identity.Group` (from the SSO assertion) and
    :class:`flask_maestrano.account.AccountGroup` (from the account API) both fit.
    """

    @property
    def uid(self) -> str: ...

    @property
    def free_trial_end_at(self) -> datetime | None: ...


def billing_start(free_trial_end_at: datetime | None, now: datetime | None = None) -> datetime:
    """When billing may start: the end of the free trial, or now if it is over (or there is none).

    >>> from datetime import datetime, timezone
    >>> now = datetime(2024, 1, 1, tzinfo=timezone.utc)
    >>> billing_start(datetime(2024, 1, 31, tzinfo=timezone.utc), now).day
    31
    >>> billing_start(datetime(2023, 12, 1, tzinfo=timezone.utc), now) == now
    True
    """
    current = _utc(now or datetime.now(timezone.utc))
    if free_trial_end_at is None:
        return current
    return max(current, _utc(free_trial_end_at))


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def setup_recurring_bill(
    account: AccountClient,
    group: BillableGroup,
    *,
    price_cents: int,
    currency: str,
    description: str,
    period: str = "Month",
    frequency: int = 1,
    cycles: int | None = None,
    initial_cents: int | None = None,
    now: datetime | None = None,
) -> RecurringBill:
    """Start charging ``group`` ``price_cents`` every ``frequency`` ``period``, never before
    its free trial ends (``start_date = max(now, group.free_trial_end_at)``).

    ``initial_cents`` charges a set-up fee at once (it is not deferred: leave it out during a
    trial if the trial must be free of charge). Raises
    :class:`~flask_maestrano.errors.InvalidArgumentError` for a wrong argument, the typed
    errors of :mod:`flask_maestrano.http` for a refused or failed call.

    >>> setup_recurring_bill(maestrano.account(), group, price_cents=2900, currency="USD",
    ...                      description="Pro plan")  # doctest: +SKIP
    """
    if not getattr(group, "uid", None):
        raise InvalidArgumentError("group must have a uid (e.g. 'cld-1234')", param="group_id")
    current = _utc(now or datetime.now(timezone.utc))
    return account.recurring_bills.create(
        group_id=group.uid,
        price_cents=price_cents,
        currency=check_currency(currency),
        description=description,
        period=period,
        frequency=frequency,
        cycles=cycles,
        initial_cents=initial_cents,
        start_date=billing_start(group.free_trial_end_at, current),
        now=current,
    )


def ad_hoc_bill(
    account: AccountClient,
    group_id: str,
    *,
    price_cents: int,
    currency: str,
    description: str,
    units: Decimal | float | int = 1,
    period_started_at: datetime | None = None,
    period_ended_at: datetime | None = None,
) -> Bill:
    """Charge ``group_id`` once for an extra; ``price_cents`` is the price of one unit.

    >>> ad_hoc_bill(maestrano.account(), "cld-1", price_cents=500, currency="AUD",
    ...             description="Extra 10 GB", units=2)  # doctest: +SKIP
    """
    return account.bills.create(
        group_id=group_id,
        price_cents=price_cents,
        currency=check_currency(currency),
        description=description,
        units=units,
        period_started_at=period_started_at,
        period_ended_at=period_ended_at,
    )
