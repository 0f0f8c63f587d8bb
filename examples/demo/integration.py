"""The integration checklist, as the demo implements it through flask_maestrano.

* single sign-on: :func:`find_or_create_company`, :func:`find_or_create_user` (with migration
  of an existing account by email, confirmed by its owner: :func:`link_existing_account`
  and ``views.confirm_link``) and :func:`link_membership` (roles);
* billing: a recurring bill when a company is created, starting after its free trial
  (:func:`start_billing`); in-app purchases are ad-hoc bills (``views.buy_storage``);
* account webhooks: :func:`cancel_company` ends the company's access,
  :func:`remove_member` its member's;
* Connec!: :class:`Contacts` (organizations, people) and :class:`Invoices` map contacts and
  invoices to Connec! entities; the sync engine (:func:`setup_sync`) keeps both sides in step
  (first sync at a company's first login, notifications, pushes of edited contacts).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from flask import Flask, current_app, session
from sqlalchemy import or_

from flask_maestrano import Maestrano, MaestranoError, Preset, signals, syncing
from flask_maestrano.contrib.sqlalchemy import SqlAlchemySyncStore
from flask_maestrano.sso.identity import Group
from flask_maestrano.sso.identity import Membership as MaestranoMembership
from flask_maestrano.sso.identity import User as MaestranoUser
from flask_maestrano.sso.migration import PendingLink, link_key, offer_link
from flask_maestrano.sync import Mapping as SyncMapping

from .models import Company, Contact, Invoice, Membership, User, db, utcnow

log = logging.getLogger("examples.demo")

maestrano = Maestrano()

#: the session key of the company the user is working in (set at each single sign-on)
COMPANY_KEY = "demo_company_id"


def _naive_utc(moment: datetime | None) -> datetime | None:
    return None if moment is None else moment.astimezone(timezone.utc).replace(tzinfo=None)


# -- single sign-on ----------------------------------------------------------------------


@maestrano.find_or_create_group
def find_or_create_company(group: Group, preset: Preset) -> tuple[Company, bool]:
    """The company of ``group``; a new one starts its subscription billing.

    ``created`` (which starts the initial Connec! import) is also true for a company no
    login has completed for yet: its first login may have stopped at the confirmation of
    an existing account (``views.confirm_link``) after the company was saved.
    """
    company = Company.query.filter_by(preset=preset.name, uid=group.uid).first()
    created = company is None or not company.memberships
    if company is None:
        company = Company(preset=preset.name, uid=group.uid, name=group.name or group.uid)
        db.session.add(company)
    elif not company.is_active:  # the company added the app again
        company.status, company.cancelled_at = "active", None
    company.name = group.name or company.name
    company.currency = group.currency or company.currency or "USD"
    company.free_trial_end_at = _naive_utc(group.free_trial_end_at)
    db.session.commit()
    if company.recurring_bill_id is None:
        start_billing(company, group, preset)
    return company, created


#: recurring-bill statuses that no longer charge the company
ENDED_BILL_STATUSES = ("cancelled", "expired", "invoiced")


def start_billing(company: Company, group: Group, preset: Preset) -> None:
    """Set up the monthly subscription bill; the platform starts it after the free trial.

    A company has one subscription at most: a recurring bill the platform still runs for it
    (set up before the demo lost its record, say) is adopted instead of adding a second one.
    A failure is logged and retried at the company's next login: it never blocks a login.
    """
    from flask_maestrano.billing import setup_recurring_bill

    config = current_app.config
    account = maestrano.account(preset.name)
    try:
        running = [
            bill
            for bill in account.recurring_bills.list(group.uid)
            if bill.group_id == group.uid and bill.status not in ENDED_BILL_STATUSES
        ]
        bill = (
            running[0]
            if running
            else setup_recurring_bill(
                account,
                group,
                price_cents=config["DEMO_PLAN_PRICE_CENTS"],
                currency=company.currency,
                description=config["DEMO_PLAN_DESCRIPTION"],
            )
        )
    except MaestranoError as exc:
        log.warning("demo: could not set up billing for %s: %s", company.uid, exc)
        return
    company.recurring_bill_id = bill.id
    company.billing_starts_at = _naive_utc(bill.start_date)
    db.session.commit()


@maestrano.find_or_create_user
def find_or_create_user(user: MaestranoUser, company: Company, preset: Preset) -> tuple[User, bool]:
    """The user of ``user``: known by uid, or an existing account migrated by email, or new.

    Migration follows the preset's policy (the demo uses ``"confirm"``): an account made
    before the marketplace is only linked after its owner typed its local password.
    """
    found = User.query.filter_by(preset=preset.name, uid=user.app_uid).first()
    created = False
    if found is None:
        existing = _existing_account(user, preset)
        # "auto" links now; "confirm" ends this login with a redirect to views.confirm_link
        if existing is not None and offer_link(
            user, preset, existing.id, lambda: _claim(existing.id, user.app_uid, preset.name)
        ):
            found = existing
    if found is None:
        found = User(preset=preset.name, uid=user.app_uid, email=user.app_email)
        db.session.add(found)
        created = True
    found.email = user.app_email
    found.first_name = user.first_name
    found.last_name = user.last_name
    db.session.commit()
    return found, created


def _existing_account(user: MaestranoUser, preset: Preset) -> User | None:
    """The one account made before the marketplace with the same normalised email, if any."""
    key = link_key(user, preset)
    if key is None:
        return None
    matches = (
        User.query.filter(
            User.email_key == key, User.uid.is_(None), or_(User.preset.is_(None), User.preset == preset.name)
        )
        .limit(2)
        .all()
    )
    return matches[0] if len(matches) == 1 else None


def _claim(user_id: int, uid: str, preset: str) -> bool:
    """Give the account its marketplace uid, only if it has none yet (never relink)."""
    claimed = User.query.filter(
        User.id == user_id, User.uid.is_(None), or_(User.preset.is_(None), User.preset == preset)
    ).update({"uid": uid, "preset": preset, "migrated_at": utcnow()}, synchronize_session="fetch")
    return bool(claimed == 1)


@maestrano.link_account
def link_existing_account(account_id: Any, link: PendingLink, preset: Preset) -> bool:
    """The owner confirmed (``views.confirm_link``): link the account to the marketplace user."""
    linked = _claim(int(account_id), link.uid, preset.name)
    db.session.commit()
    return linked


@maestrano.link_membership
def link_membership(user: User, company: Company, membership: MaestranoMembership, preset: Preset) -> None:
    """Record the user's role in the company (it may change between logins)."""
    link = db.session.get(Membership, (user.id, company.id))
    if link is None:
        link = Membership(user=user, company=company, role=membership.role)
        db.session.add(link)
    link.role = membership.role
    db.session.commit()


def remember_company(app: Flask, *, group: Company, **extra: Any) -> None:
    """After a login, the user works in the company they arrived for."""
    session[COMPANY_KEY] = group.id


# -- account webhooks ---------------------------------------------------------------------


@maestrano.on_group_cancelled
def cancel_company(group_id: str, preset: Preset) -> None:
    """The company cancelled the app: its users lose access (idempotent).

    The platform ends the company's recurring bills for the app with the cancellation: the
    demo forgets its subscription too, and sets up a new one if the company adds the app again.
    """
    company = Company.query.filter_by(preset=preset.name, uid=group_id).first()
    if company is None or not company.is_active:
        return
    company.status, company.cancelled_at, company.recurring_bill_id = "cancelled", utcnow(), None
    db.session.commit()


@maestrano.on_member_removed
def remove_member(group_id: str, user_id: str, preset: Preset) -> None:
    """A member left the company: they lose access to it (idempotent)."""
    company = Company.query.filter_by(preset=preset.name, uid=group_id).first()
    user = User.query.filter_by(preset=preset.name, uid=user_id).first()
    if company is None or user is None:
        return
    Membership.query.filter_by(user_id=user.id, company_id=company.id).delete()
    db.session.commit()


# -- Connec! ------------------------------------------------------------------------------


def _address(data: Mapping[str, Any]) -> str:
    email = data.get("email")
    if isinstance(email, Mapping):
        return str(email.get("address") or "")
    return str(email or "")


def contact_fields(collection: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """A Connec! organization or person as :class:`Contact` columns."""
    if collection == "people":
        first, last = str(data.get("first_name") or ""), str(data.get("last_name") or "")
        return {
            "kind": "person",
            "first_name": first,
            "last_name": last,
            "name": f"{first} {last}".strip(),
            "email": _address(data),
        }
    return {"kind": "organization", "name": str(data.get("name") or ""), "email": _address(data)}


def invoice_fields(data: Mapping[str, Any]) -> dict[str, Any]:
    """A Connec! invoice as :class:`Invoice` columns."""
    amount = data.get("amount") if isinstance(data.get("amount"), Mapping) else {}
    return {
        "number": str(data.get("transaction_number") or ""),
        "status": str(data.get("status") or ""),
        "total": float(amount.get("total_amount") or 0),
        "currency": str(amount.get("currency") or ""),
    }


def contact_payload(contact: Contact) -> dict[str, Any]:
    """What the demo sends Connec! when a user edits a contact."""
    if contact.kind == "person":
        return {
            "first_name": contact.first_name,
            "last_name": contact.last_name,
            "email": {"address": contact.email},
        }
    return {"name": contact.name, "email": {"address": contact.email}}


class _CompanyRecords(SyncMapping):
    """The demo's records of a company, linked to Connec! by the sync engine's id maps."""

    model: type[Contact] | type[Invoice]

    def local_id(self, record: Any) -> str:
        return str(record.id)

    def find(self, local_id: str) -> Any | None:
        return db.session.get(self.model, int(local_id)) if local_id.isdigit() else None

    def scope(self, record: Any) -> tuple[str | None, str]:
        return record.company.preset, record.company.uid

    def company(self, preset: str, group_id: str) -> Company | None:
        """The active company of ``group_id``; ``None`` skips its records."""
        company = Company.query.filter_by(preset=preset, uid=group_id).first()
        if company is None or not company.is_active:
            log.info("demo: %s for unknown or cancelled company %s ignored", self.collection, group_id)
            return None
        return company

    def create(self, data: dict[str, Any], *, preset: str, group_id: str) -> Any | None:
        company = self.company(preset, group_id)
        if company is None:
            return None
        record = self.model(company_id=company.id)
        self.update(record, data)
        db.session.add(record)
        db.session.flush()
        return record

    def update(self, record: Any, data: dict[str, Any]) -> None:
        record.connec_id = data.get("id")  # shown on the pages (data-connec-id)
        for name, value in self.fields(data).items():
            setattr(record, name, value)

    def fields(self, data: Mapping[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def commit(self) -> None:
        db.session.commit()

    def rollback(self) -> None:
        db.session.rollback()


class Contacts(_CompanyRecords):
    """Connec! organizations or people as :class:`Contact` rows (``kind`` tells them apart)."""

    model = Contact

    def __init__(self, collection: str) -> None:
        self.collection = collection  # type: ignore[misc]

    def fields(self, data: Mapping[str, Any]) -> dict[str, Any]:
        return contact_fields(self.collection, data)

    def to_connec(self, record: Any) -> dict[str, Any]:
        return contact_payload(record)

    def updated_at(self, record: Any) -> datetime | None:
        return record.updated_at  # type: ignore[no-any-return]


class Invoices(_CompanyRecords):
    """Connec! invoices as :class:`Invoice` rows."""

    collection = "invoices"
    model = Invoice

    def fields(self, data: Mapping[str, Any]) -> dict[str, Any]:
        return invoice_fields(data)

    def to_connec(self, record: Any) -> dict[str, Any]:
        return {
            "transaction_number": record.number,
            "status": record.status,
            "amount": {"total_amount": record.total, "currency": record.currency},
        }


def setup_sync(app: Flask) -> None:
    """Contacts and invoices sync both ways through the engine: the id maps and runs live in
    the demo's database; the first login of a company runs its first synchronization."""
    with app.app_context():
        store = SqlAlchemySyncStore(db.engine)
        store.create_tables()
    syncing.configure(app, store, [Contacts("organizations"), Contacts("people"), Invoices()])


def connect_signals(app: Flask) -> None:
    """Subscribe the demo's receivers to this app's signals."""
    signals.login_succeeded.connect(remember_company, sender=app, weak=False)
