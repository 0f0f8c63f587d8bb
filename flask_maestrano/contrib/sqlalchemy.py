"""Flask-SQLAlchemy model mixins and ready-made single sign-on loaders.

Install the extra (``pip install 'flask-maestrano[sqlalchemy]'``), add the mixins to your
models, and call :func:`install_loaders` instead of writing the three SSO callbacks:

>>> from flask_sqlalchemy import SQLAlchemy  # doctest: +SKIP
>>> from flask_login import UserMixin
>>> db = SQLAlchemy()  # doctest: +SKIP
>>> class User(UserMixin, MaestranoUserMixin, db.Model):  # doctest: +SKIP
...     id = db.Column(db.Integer, primary_key=True)
...     email = db.Column(db.String(255))
>>> class Company(MaestranoGroupMixin, db.Model):  # doctest: +SKIP
...     id = db.Column(db.Integer, primary_key=True)
...     name = db.Column(db.String(255))
>>> class Member(MaestranoMembershipMixin, db.Model):  # doctest: +SKIP
...     id = db.Column(db.Integer, primary_key=True)
...     user_id = db.Column(db.ForeignKey("user.id"))
...     group_id = db.Column(db.ForeignKey("company.id"))
>>> install_loaders(maestrano, db, User, Company, Member)  # doctest: +SKIP

The loaders follow the integration checklist: a new group creates a company; a new user
joins a known company or the one just created for it; a known user is simply logged in; a
user whose uid is unknown but whose email matches exactly one local user that no
Maestrano identity claims yet is linked to it (migration of existing accounts);
memberships carry the role; provider, uid and preset (``tenant``) are stored.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import String, inspect, select
from sqlalchemy.orm import Mapped, mapped_column

from ..extension import Maestrano
from ..presets import Preset
from ..sso.identity import PROVIDER, Group, Membership, User

# the sync engine's store, model-based mapping and after-commit hook (docs/sync.rst)
from .sync_sqlalchemy import ModelMapping, SqlAlchemySyncStore, id_maps, sync_metadata, sync_on_commit

log = logging.getLogger("flask_maestrano")

__all__ = [
    "MaestranoGroupMixin",
    "MaestranoMembershipMixin",
    "MaestranoUserMixin",
    "ModelMapping",
    "SqlAlchemySyncStore",
    "id_maps",
    "install_loaders",
    "sync_metadata",
    "sync_on_commit",
]

# Identity fields copied onto a new row when the model has a column of that name.
_USER_FIELDS = {"first_name": "first_name", "last_name": "last_name", "country": "country"}
_GROUP_FIELDS = (
    "name",
    "free_trial_end_at",
    "company_name",
    "has_credit_card",
    "org_uid",
    "email",
    "city",
    "country",
    "timezone",
    "currency",
)


class MaestranoUserMixin:
    """``provider``, ``uid`` (real or virtual per the creation mode) and ``tenant`` (preset)."""

    provider: Mapped[str | None] = mapped_column(String(32), index=True, nullable=True)
    uid: Mapped[str | None] = mapped_column(String(255), index=True, nullable=True)
    tenant: Mapped[str | None] = mapped_column(String(100), nullable=True)

    @property
    def is_maestrano(self) -> bool:
        """Whether this user came through Maestrano single sign-on."""
        return self.provider == PROVIDER and bool(self.uid)


class MaestranoGroupMixin:
    """``provider``, ``uid`` (the group uid, ``cld-...``) and ``tenant`` (preset)."""

    provider: Mapped[str | None] = mapped_column(String(32), index=True, nullable=True)
    uid: Mapped[str | None] = mapped_column(String(255), index=True, nullable=True)
    tenant: Mapped[str | None] = mapped_column(String(100), nullable=True)


class MaestranoMembershipMixin:
    """``provider``, ``tenant`` and the member's ``role`` in the group."""

    provider: Mapped[str | None] = mapped_column(String(32), nullable=True)
    tenant: Mapped[str | None] = mapped_column(String(100), nullable=True)
    role: Mapped[str | None] = mapped_column(String(32), nullable=True)


def _has(model: type[Any], name: str) -> bool:
    return name in inspect(model).attrs


def _primary_key(obj: Any) -> Any:
    mapper = inspect(type(obj))
    return getattr(obj, mapper.primary_key[0].key)


def install_loaders(
    maestrano: Maestrano,
    db: Any,
    user_model: type[Any],
    group_model: type[Any],
    membership_model: type[Any],
    *,
    user_key: str = "user_id",
    group_key: str = "group_id",
    email_field: str = "email",
) -> None:
    """Register ``find_or_create_group``, ``find_or_create_user`` and ``link_membership``.

    ``user_key``/``group_key`` name the membership model's foreign-key columns;
    ``email_field`` the user model's email column (used for new users and migration).
    The session is flushed after each step and committed once the membership is linked.
    """
    session = db.session

    @maestrano.find_or_create_group
    def find_or_create_group(group: Group, preset: Preset) -> tuple[Any, bool]:
        query = select(group_model).filter_by(provider=PROVIDER, uid=group.uid, tenant=preset.name)
        found = session.execute(query).scalar_one_or_none()
        if found is not None:
            return found, False
        company = group_model()
        company.provider, company.uid, company.tenant = PROVIDER, group.uid, preset.name
        for name in _GROUP_FIELDS:
            if _has(group_model, name):
                setattr(company, name, getattr(group, name))
        session.add(company)
        session.flush()
        return company, True

    @maestrano.find_or_create_user
    def find_or_create_user(user: User, host_group: Any, preset: Preset) -> tuple[Any, bool]:
        query = select(user_model).filter_by(provider=PROVIDER, uid=user.app_uid, tenant=preset.name)
        found = session.execute(query).scalar_one_or_none()
        if found is not None:
            return found, False
        email_column = getattr(user_model, email_field)
        unclaimed = (
            select(user_model).where(email_column == user.app_email, user_model.uid.is_(None)).limit(2)
        )
        matches = session.execute(unclaimed).scalars().all() if user.app_email else []
        if len(matches) == 1:
            local = matches[0]
            local.provider, local.uid, local.tenant = PROVIDER, user.app_uid, preset.name
            session.flush()
            log.info(
                "Maestrano SSO: linked existing local user to %s by email (preset %s)",
                user.app_uid,
                preset.name,
            )
            return local, False
        account = user_model()
        account.provider, account.uid, account.tenant = PROVIDER, user.app_uid, preset.name
        setattr(account, email_field, user.app_email)
        for field, source in _USER_FIELDS.items():
            if _has(user_model, field):
                setattr(account, field, getattr(user, source))
        if _has(user_model, "name") and not _has(user_model, "first_name"):
            account.name = f"{user.first_name} {user.last_name}".strip()
        session.add(account)
        session.flush()
        return account, True

    @maestrano.link_membership
    def link_membership(host_user: Any, host_group: Any, membership: Membership, preset: Preset) -> None:
        keys = {user_key: _primary_key(host_user), group_key: _primary_key(host_group)}
        link = session.execute(select(membership_model).filter_by(**keys)).scalar_one_or_none()
        if link is None:
            link = membership_model(**keys)
            session.add(link)
        link.provider, link.tenant, link.role = PROVIDER, preset.name, membership.role
        session.commit()
