"""The account API of the platform: the client (bills, recurring bills, users, groups) and
the billing helpers. Plain Python, no Flask; the account webhooks the platform calls are
views in ``flask_maestrano.webhooks``.

The client's names stay importable from here (``from flask_maestrano.account import AccountClient``).
"""

from __future__ import annotations

from ..errors import InvalidArgumentError as InvalidArgumentError
from .client import PERIODS as PERIODS
from .client import AccountClient as AccountClient
from .client import AccountGroup as AccountGroup
from .client import AccountUser as AccountUser
from .client import Bill as Bill
from .client import RecurringBill as RecurringBill
from .client import check_cents as check_cents
from .client import check_currency as check_currency
from .client import check_period as check_period
from .client import encode_params as encode_params
from .client import format_datetime as format_datetime
from .client import parse_datetime as parse_datetime
