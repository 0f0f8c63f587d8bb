"""The Account API (PLATFORM.md 5): bills, recurring bills, users and groups of one preset.

:class:`AccountClient` is plain Python over a ``requests.Session`` (see
:func:`flask_maestrano.http.build_session`); in a Flask app, ``maestrano.account()`` gives
the current app's client for a preset. Results are frozen dataclasses with parsed
datetimes (UTC) and integer cents; arguments are checked before anything is sent, and a
wrong one raises :class:`InvalidArgumentError` (both a ``ValueError`` and an
:class:`~flask_maestrano.errors.InvalidRequestError`) naming the field.

>>> account = maestrano.account()  # doctest: +SKIP
>>> bill = account.bills.create(group_id="cld-1", price_cents=2300, currency="AUD",
...                             description="Extra storage")  # doctest: +SKIP
>>> account.bills.cancel(bill.id).status  # doctest: +SKIP
'cancelled'
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import requests

from ..errors import ApiError, AuthenticationError, InvalidArgumentError, InvalidRequestError
from ..http import Timeout, describe_errors, parse_json, send
from ..isotime import format_time
from ..presets import Preset

#: Billing periods the platform knows (PLATFORM.md 5.5).
PERIODS = ("Day", "Week", "SemiMonth", "Month", "Year")
# the most of each period that fits in one year (period x frequency <= 1 year)
_MAX_FREQUENCY = {"Day": 365, "Week": 52, "SemiMonth": 1, "Month": 12, "Year": 1}
_CURRENCY = re.compile(r"^[A-Z]{3}$")
# the platform refuses a start_date more than an hour in the past
_START_DATE_TOLERANCE = timedelta(hours=1)


# -- parsing ----------------------------------------------------------------------------

_ISO = re.compile(
    r"^\s*(\d{4})-(\d{2})-(\d{2})"
    r"(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?"
    r"\s*(Z|z|UTC|[+-]\d{2}(?::?\d{2})?)?\s*$"
)


def parse_datetime(value: Any) -> datetime | None:
    """An aware UTC datetime from an ISO-8601 string, liberally (``Z``, offsets, a space
    instead of ``T``, any fraction of seconds, a bare date); ``None`` for ``None``/``""``.

    >>> parse_datetime("2014-05-01T10:00:00+02:00")
    datetime.datetime(2014, 5, 1, 8, 0, tzinfo=datetime.timezone.utc)
    """
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc) if value.tzinfo else value.replace(tzinfo=timezone.utc)
    match = _ISO.match(str(value))
    if match is None:
        raise ValueError(f"not an ISO-8601 date-time: {value!r}")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    tz = timezone.utc
    if zone and zone not in ("Z", "z", "UTC"):
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0))
        tz = timezone(sign * offset)
    parsed = datetime(
        int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0), micro, tz
    )
    return parsed.astimezone(timezone.utc)


def _cents(value: Any) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"not an amount in cents: {value!r}")
    if isinstance(value, int):
        return value
    number = Decimal(str(value))
    if number != number.to_integral_value():
        raise ValueError(f"not a whole number of cents: {value!r}")
    return int(number)


def _decimal(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"not a number: {value!r}") from None


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _int(value: Any) -> int | None:
    return None if value is None or value == "" else int(value)


def _bool(value: Any) -> bool | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


# -- typed results ------------------------------------------------------------------------


@dataclass(frozen=True)
class Bill:
    """A one-off charge to a group (``account_bill``)."""

    id: str
    group_id: str | None
    status: str | None
    price_cents: int | None
    currency: str | None
    description: str | None
    units: Decimal | None = None
    period_started_at: datetime | None = None
    period_ended_at: datetime | None = None
    third_party: bool | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    #: the object exactly as the platform sent it
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Bill:
        return cls(
            id=str(data.get("id")),
            group_id=_text(data.get("group_id")),
            status=_text(data.get("status")),
            price_cents=_cents(data.get("price_cents")),
            currency=_text(data.get("currency")),
            description=_text(data.get("description")),
            units=_decimal(data.get("units")),
            period_started_at=parse_datetime(data.get("period_started_at")),
            period_ended_at=parse_datetime(data.get("period_ended_at")),
            third_party=_bool(data.get("third_party")),
            created_at=parse_datetime(data.get("created_at")),
            updated_at=parse_datetime(data.get("updated_at")),
            raw=data,
        )


@dataclass(frozen=True)
class RecurringBill:
    """A charge repeated every ``frequency`` ``period`` from ``start_date`` (``account_recurring_bill``)."""

    id: str
    group_id: str | None
    status: str | None
    price_cents: int | None
    currency: str | None
    description: str | None
    period: str | None = None
    frequency: int | None = None
    cycles: int | None = None
    start_date: datetime | None = None
    initial_cents: int | None = None
    last_execution_at: datetime | None = None
    next_execution_at: datetime | None = None
    remaining_cycles: int | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> RecurringBill:
        return cls(
            id=str(data.get("id")),
            group_id=_text(data.get("group_id")),
            status=_text(data.get("status")),
            price_cents=_cents(data.get("price_cents")),
            currency=_text(data.get("currency")),
            description=_text(data.get("description")),
            period=_text(data.get("period")),
            frequency=_int(data.get("frequency")),
            cycles=_int(data.get("cycles")),
            start_date=parse_datetime(data.get("start_date")),
            initial_cents=_cents(data.get("initial_cents")),
            last_execution_at=parse_datetime(data.get("last_execution_at")),
            next_execution_at=parse_datetime(data.get("next_execution_at")),
            remaining_cycles=_int(data.get("remaining_cycles")),
            created_at=parse_datetime(data.get("created_at")),
            updated_at=parse_datetime(data.get("updated_at")),
            raw=data,
        )


@dataclass(frozen=True)
class AccountUser:
    """A platform user (``account_user``, read-only)."""

    id: str
    email: str | None
    name: str | None
    surname: str | None
    company_name: str | None = None
    country: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> AccountUser:
        return cls(
            id=str(data.get("id")),
            email=_text(data.get("email")),
            name=_text(data.get("name")),
            surname=_text(data.get("surname")),
            company_name=_text(data.get("company_name")),
            country=_text(data.get("country")),
            created_at=parse_datetime(data.get("created_at")),
            updated_at=parse_datetime(data.get("updated_at")),
            raw=data,
        )


@dataclass(frozen=True)
class AccountGroup:
    """A platform group, i.e. a company subscribed to the app (``account_group``, read-only)."""

    id: str
    name: str | None
    status: str | None = None
    has_credit_card: bool | None = None
    free_trial_end_at: datetime | None = None
    email: str | None = None
    currency: str | None = None
    timezone: str | None = None
    country: str | None = None
    city: str | None = None
    main_accounting: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def uid(self) -> str:
        """The group's uid (same as ``id``), so an AccountGroup can be billed like an SSO ``Group``."""
        return self.id

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> AccountGroup:
        return cls(
            id=str(data.get("id")),
            name=_text(data.get("name")),
            status=_text(data.get("status")),
            has_credit_card=_bool(data.get("has_credit_card")),
            free_trial_end_at=parse_datetime(data.get("free_trial_end_at")),
            email=_text(data.get("email")),
            currency=_text(data.get("currency")),
            timezone=_text(data.get("timezone")),
            country=_text(data.get("country")),
            city=_text(data.get("city")),
            main_accounting=_text(data.get("main_accounting")),
            created_at=parse_datetime(data.get("created_at")),
            updated_at=parse_datetime(data.get("updated_at")),
            raw=data,
        )


# -- argument checks -------------------------------------------------------------------------


def check_currency(currency: Any) -> str:
    """``currency`` as an ISO-4217 code (three letters, upper-cased)."""
    if not isinstance(currency, str) or not _CURRENCY.match(currency.strip().upper()):
        raise InvalidArgumentError(
            f"currency must be a 3-letter ISO-4217 code such as 'AUD', got {currency!r}", param="currency"
        )
    return currency.strip().upper()


def check_cents(value: Any, name: str, *, allow_zero: bool = False) -> int:
    """``value`` as a positive (or, with ``allow_zero``, non-negative) integer number of cents."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgumentError(f"{name} must be an integer number of cents, got {value!r}", param=name)
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise InvalidArgumentError(f"{name} must be {bound}, got {value}", param=name)
    return value


def _check_text(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidArgumentError(f"{name} is required (a non-empty string)", param=name)
    return value


def check_period(period: Any, frequency: Any) -> tuple[str, int]:
    """Check a billing period and frequency: period in :data:`PERIODS`, frequency a positive
    integer, ``period x frequency`` at most one year, ``SemiMonth`` only with frequency 1."""
    if period not in PERIODS:
        raise InvalidArgumentError(
            f"period must be one of {', '.join(PERIODS)}, got {period!r}", param="period"
        )
    if isinstance(frequency, bool) or not isinstance(frequency, int) or frequency < 1:
        raise InvalidArgumentError(
            f"frequency must be a positive integer, got {frequency!r}", param="frequency"
        )
    limit = _MAX_FREQUENCY[period]
    if frequency > limit:
        rule = (
            "SemiMonth requires frequency 1"
            if period == "SemiMonth"
            else f"period x frequency must be at most one year ({period}: frequency <= {limit})"
        )
        raise InvalidArgumentError(f"{rule}, got {frequency}", param="frequency")
    return period, frequency


def _aware(value: datetime, name: str) -> datetime:
    if not isinstance(value, datetime):
        raise InvalidArgumentError(f"{name} must be a datetime, got {value!r}", param=name)
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def format_datetime(value: datetime) -> str:
    """ISO-8601 in UTC with a ``Z``, as the platform's filters and fields expect."""
    return format_time(_aware(value, "datetime"))


def encode_params(params: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Flatten parameters as the Ruby SDK does (PLATFORM.md 5.2): ``a[b]=v``, ``a[]=v``,
    ``None`` dropped, datetimes as ISO-8601, booleans as ``true``/``false``.

    >>> encode_params({"group_id": "cld-1", "tags": ["a"], "third_party": True, "units": None})
    [('group_id', 'cld-1'), ('tags[]', 'a'), ('third_party', 'true')]
    """
    pairs: list[tuple[str, str]] = []

    def add(key: str, value: Any) -> None:
        if value is None:
            return
        if isinstance(value, Mapping):
            for sub, item in value.items():
                add(f"{key}[{sub}]", item)
        elif isinstance(value, list | tuple):
            for item in value:
                add(f"{key}[]", item)
        elif isinstance(value, bool):
            pairs.append((key, "true" if value else "false"))
        elif isinstance(value, datetime):
            pairs.append((key, format_datetime(value)))
        else:
            pairs.append((key, str(value)))

    for key, value in params.items():
        add(str(key), value)
    return pairs


# -- the client --------------------------------------------------------------------------------

T = TypeVar("T")


class _Resource(Generic[T]):
    """List and retrieve one kind of account object."""

    path = ""

    def __init__(self, client: AccountClient, parse: Callable[[Mapping[str, Any]], T]) -> None:
        self._client = client
        self._from_api = parse

    def _parse(self, data: Any) -> T:
        # a platform answer that does not fit the object is the platform's error, typed as such
        if not isinstance(data, Mapping) or not data.get("id"):
            got = type(data).__name__ if not isinstance(data, Mapping) else "an object without id"
            raise ApiError(
                f"Invalid response object from API: expected an object from {self.path}, got {got}",
                json_body=data,
            )
        try:
            return self._from_api(data)
        except (ValueError, TypeError, ArithmeticError) as exc:
            raise ApiError(
                f"Invalid response object from API: {self.path} {data.get('id')!r}: {exc}", json_body=data
            ) from None

    def list(self, group_id: str | None = None, **filters: Any) -> list[T]:
        """Every object matching ``filters`` (PLATFORM.md 5.5 list filters, e.g.
        ``created_at_after=datetime(2024, 1, 1)``, ``status="submitted"``); ``group_id`` scopes
        the list to one group where the platform supports it."""
        params = {"group_id": group_id, **filters}
        data = self._client.request("GET", self.path, params=encode_params(params))
        if not isinstance(data, list):
            raise ApiError(f"expected a list from GET {self.path}, got {type(data).__name__}")
        return [self._parse(item) for item in data]

    def retrieve(self, id: str) -> T:
        """The object ``id``; an unknown id raises :class:`~flask_maestrano.errors.InvalidRequestError`."""
        _check_text(id, "id")
        return self._parse(self._client.request("GET", f"{self.path}/{quote(id, safe='')}"))


class _BillingResource(_Resource[T]):
    def cancel(self, id: str) -> T:
        """Cancel ``id`` (``DELETE``); answers the object with status ``cancelled``. Idempotent."""
        _check_text(id, "id")
        return self._parse(self._client.request("DELETE", f"{self.path}/{quote(id, safe='')}"))


class Bills(_BillingResource[Bill]):
    path = "account/bills"

    def create(
        self,
        *,
        group_id: str,
        price_cents: int,
        description: str,
        currency: str | None = None,
        units: Decimal | float | int | None = None,
        period_started_at: datetime | None = None,
        period_ended_at: datetime | None = None,
        third_party: bool | None = None,
    ) -> Bill:
        """Charge ``group_id`` once. ``currency`` defaults to the platform's (AUD).

        Sent once: a timeout while waiting for the answer raises
        :class:`~flask_maestrano.errors.OutcomeUnknownError` (list the group's bills before
        sending again).
        """
        params: dict[str, Any] = {
            "group_id": _check_text(group_id, "group_id"),
            "price_cents": check_cents(price_cents, "price_cents"),
            "description": _check_text(description, "description"),
            "currency": None if currency is None else check_currency(currency),
        }
        if units is not None:
            number = _decimal(units)
            if number is None or number <= 0:
                raise InvalidArgumentError(f"units must be > 0, got {units!r}", param="units")
            params["units"] = str(number)
        if period_started_at is not None:
            params["period_started_at"] = _aware(period_started_at, "period_started_at")
        if period_ended_at is not None:
            params["period_ended_at"] = _aware(period_ended_at, "period_ended_at")
        if period_started_at and period_ended_at and params["period_ended_at"] < params["period_started_at"]:
            raise InvalidArgumentError(
                "period_ended_at must not be before period_started_at", param="period_ended_at"
            )
        params["third_party"] = third_party
        return self._parse(self._client.request("POST", self.path, data=encode_params(params)))


class RecurringBills(_BillingResource[RecurringBill]):
    path = "account/recurring_bills"

    def create(
        self,
        *,
        group_id: str,
        price_cents: int,
        description: str,
        currency: str | None = None,
        period: str = "Month",
        frequency: int = 1,
        cycles: int | None = None,
        start_date: datetime | None = None,
        initial_cents: int | None = None,
        now: datetime | None = None,
    ) -> RecurringBill:
        """Charge ``group_id`` every ``frequency`` ``period`` from ``start_date`` (default: now).

        ``cycles`` limits the number of charges (default: until cancelled); ``initial_cents``
        adds a one-off charge at set-up. See :func:`flask_maestrano.billing.setup_recurring_bill`
        to start after the group's free trial.
        """
        period, frequency = check_period(period, frequency)
        params: dict[str, Any] = {
            "group_id": _check_text(group_id, "group_id"),
            "price_cents": check_cents(price_cents, "price_cents"),
            "description": _check_text(description, "description"),
            "currency": None if currency is None else check_currency(currency),
            "period": period,
            "frequency": frequency,
        }
        if cycles is not None:
            if isinstance(cycles, bool) or not isinstance(cycles, int) or cycles < 1:
                raise InvalidArgumentError(
                    f"cycles must be a positive integer, got {cycles!r}", param="cycles"
                )
            params["cycles"] = cycles
        if initial_cents is not None:
            params["initial_cents"] = check_cents(initial_cents, "initial_cents", allow_zero=True)
        if start_date is not None:
            start = _aware(start_date, "start_date")
            current = now or datetime.now(timezone.utc)
            if start < _aware(current, "now") - _START_DATE_TOLERANCE:
                raise InvalidArgumentError(
                    f"start_date cannot be in the past, got {format_datetime(start)}", param="start_date"
                )
            params["start_date"] = start
        return self._parse(self._client.request("POST", self.path, data=encode_params(params)))


class Users(_Resource[AccountUser]):
    path = "account/users"


class Groups(_Resource[AccountGroup]):
    path = "account/groups"


class AccountClient:
    """The Account API of one preset, over a pooled session.

    >>> from flask_maestrano.http import build_session
    >>> account = AccountClient(preset, build_session(preset))  # doctest: +SKIP
    >>> [g.name for g in account.groups.list()]  # doctest: +SKIP
    ['Doe Corp']
    """

    def __init__(self, preset: Preset, session: requests.Session, *, timeout: Timeout = (10.0, 60.0)) -> None:
        self.preset = preset
        self.session = session
        self.timeout = timeout
        self.base_url = preset.account_api_url
        self.bills = Bills(self, Bill.from_api)
        self.recurring_bills = RecurringBills(self, RecurringBill.from_api)
        self.users = Users(self, AccountUser.from_api)
        self.groups = Groups(self, AccountGroup.from_api)

    def ping(self) -> Any:
        """``GET ping``: checks the credentials; answers the platform's ``data``."""
        return self.request("GET", "ping")

    def request(
        self, method: str, path: str, *, params: Iterable[tuple[str, str]] | None = None, data: Any = None
    ) -> Any:
        """One call under ``api.host + api.base``; returns the envelope's ``data``.

        Raises the typed errors of :mod:`flask_maestrano.http`; an answer whose envelope says
        ``"success": false`` is an error even with HTTP 200 (PLATFORM.md 5.3).
        """
        response = send(
            self.session,
            method,
            self.base_url + path,
            timeout=self.timeout,
            params=list(params) if params is not None else None,
            data=data,
            headers={"Accept": "application/json"},
        )
        payload = parse_json(response)
        if not isinstance(payload, Mapping):
            raise ApiError(
                "Invalid response object from API: not an object "
                f"(HTTP response code was {response.status_code})",
                http_status=response.status_code,
                http_body=response.text,
                json_body=payload,
            )
        if payload.get("success") is False:
            errors = payload.get("errors")
            message, param = describe_errors(errors)
            kwargs: dict[str, Any] = {
                "http_status": response.status_code,
                "http_body": response.text,
                "json_body": payload,
            }
            message = message or "the platform answered success: false"
            if isinstance(errors, Mapping) and "authentication" in errors:
                raise AuthenticationError(message, **kwargs)
            if param is None:  # a system error: nothing the caller sent was wrong
                raise ApiError(message, **kwargs)
            raise InvalidRequestError(message, param=param, **kwargs)
        return payload.get("data")
