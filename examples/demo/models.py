"""The demo's own data: companies, users, memberships, contacts, invoices, purchases.

A company is a Maestrano group and a user a Maestrano user, both keyed by
(preset, uid) so one database can serve several marketplaces. A user created in the app
before it was listed on the marketplace has no uid yet (and a local password): single
sign-on links it by email once its owner confirmed with that password.
"""

from __future__ import annotations

from datetime import datetime, timezone

from flask_login import UserMixin
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, validates
from werkzeug.security import check_password_hash

from flask_maestrano.sso.migration import normalize_email


class Base(DeclarativeBase):
    """The demo's declarative base (Flask-SQLAlchemy's model_class)."""


db = SQLAlchemy(model_class=Base)


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Company(db.Model):
    """A customer company: one Maestrano group of one preset (marketplace)."""

    __table_args__ = (UniqueConstraint("preset", "uid"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    preset: Mapped[str] = mapped_column(String(100))
    uid: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(200))
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    free_trial_end_at: Mapped[datetime | None]
    #: "active", or "cancelled" once the platform cancelled the subscription
    status: Mapped[str] = mapped_column(String(20), default="active")
    cancelled_at: Mapped[datetime | None]
    #: the platform's recurring bill for the subscription (None until it is set up)
    recurring_bill_id: Mapped[str | None] = mapped_column(String(100))
    billing_starts_at: Mapped[datetime | None]
    extra_storage_gb: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    memberships: Mapped[list[Membership]] = relationship(
        back_populates="company", cascade="all, delete-orphan"
    )
    contacts: Mapped[list[Contact]] = relationship(
        back_populates="company", cascade="all, delete-orphan", order_by="Contact.name"
    )
    invoices: Mapped[list[Invoice]] = relationship(
        back_populates="company", cascade="all, delete-orphan", order_by="Invoice.number"
    )
    purchases: Mapped[list[Purchase]] = relationship(
        back_populates="company", cascade="all, delete-orphan", order_by="Purchase.id"
    )

    @property
    def is_active(self) -> bool:
        return self.status == "active"


class User(UserMixin, db.Model):
    """A person who logs in; ``uid`` is None for an account made before the marketplace."""

    __table_args__ = (UniqueConstraint("preset", "uid"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    preset: Mapped[str | None] = mapped_column(String(100))
    uid: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320), index=True)
    #: ``normalize_email(email)``, kept in step by :meth:`_email`: what migration compares
    email_key: Mapped[str | None] = mapped_column(String(320), index=True)
    first_name: Mapped[str] = mapped_column(String(200), default="")
    last_name: Mapped[str] = mapped_column(String(200), default="")
    #: the local password of an account made before the marketplace (None: none)
    password_hash: Mapped[str | None] = mapped_column(String(300))
    #: wrong passwords on the link confirmation page in a row, and the lock they earned
    link_failures: Mapped[int] = mapped_column(default=0)
    link_locked_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: when single sign-on linked an existing account to its marketplace user
    migrated_at: Mapped[datetime | None]

    memberships: Mapped[list[Membership]] = relationship(back_populates="user", cascade="all, delete-orphan")

    @validates("email")
    def _email(self, _key: str, value: str) -> str:
        self.email_key = normalize_email(value)
        return value

    def check_password(self, password: str) -> bool:
        """Whether ``password`` is this account's local password (never true without one)."""
        return self.password_hash is not None and check_password_hash(self.password_hash, password)

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()

    def membership_in(self, company: Company) -> Membership | None:
        for membership in self.memberships:
            if membership.company_id == company.id:
                return membership
        return None


class Membership(db.Model):
    """A user's role in a company (Member, Power User, Admin, Super Admin)."""

    user_id: Mapped[int] = mapped_column(ForeignKey("user.id"), primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("company.id"), primary_key=True)
    role: Mapped[str] = mapped_column(String(50))

    user: Mapped[User] = relationship(back_populates="memberships")
    company: Mapped[Company] = relationship(back_populates="memberships")


class Contact(db.Model):
    """A Connec! organization (``kind`` "organization") or person (``kind`` "person")."""

    __table_args__ = (UniqueConstraint("company_id", "connec_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("company.id"))
    connec_id: Mapped[str | None] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(400))
    first_name: Mapped[str] = mapped_column(String(200), default="")
    last_name: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str] = mapped_column(String(320), default="")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    company: Mapped[Company] = relationship(back_populates="contacts")

    @property
    def collection(self) -> str:
        """The Connec! collection this contact belongs to."""
        return "people" if self.kind == "person" else "organizations"


class Invoice(db.Model):
    """A Connec! invoice."""

    __table_args__ = (UniqueConstraint("company_id", "connec_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("company.id"))
    connec_id: Mapped[str | None] = mapped_column(String(100))
    number: Mapped[str] = mapped_column(String(100), default="")
    status: Mapped[str] = mapped_column(String(50), default="")
    total: Mapped[float] = mapped_column(default=0.0)
    currency: Mapped[str] = mapped_column(String(3), default="")

    company: Mapped[Company] = relationship(back_populates="invoices")


class Purchase(db.Model):
    """An in-app purchase billed to the company through the platform (an ad-hoc bill)."""

    id: Mapped[int] = mapped_column(primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("company.id"))
    bill_id: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(String(400))
    price_cents: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    company: Mapped[Company] = relationship(back_populates="purchases")
