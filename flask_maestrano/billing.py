"""Billing helpers; moved to :mod:`flask_maestrano.account.billing`, importable from here too."""

from __future__ import annotations

from .account.billing import BillableGroup as BillableGroup
from .account.billing import ad_hoc_bill as ad_hoc_bill
from .account.billing import billing_start as billing_start
from .account.billing import setup_recurring_bill as setup_recurring_bill
