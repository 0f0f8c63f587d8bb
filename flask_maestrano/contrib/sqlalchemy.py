"""Flask-SQLAlchemy model mixins and ready-made single sign-on loaders.

Install the extra (``pip install 'flask-maestrano[sqlalchemy]'``), add the mixins to your
models, and call :func:`~flask_maestrano.contrib.sqlalchemy.install_loaders` instead of
writing the three SSO callbacks:

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
joins a known company or the one just created for it; a known user is simply logged in;
memberships carry the role; provider, uid and preset (``tenant``) are stored. Migration of
existing accounts by email follows the preset's policy (:mod:`flask_maestrano.sso.migration`):
a user whose uid is unknown may be linked to the one local account without a Maestrano uid,
of no other preset, whose ``email_key`` equals the normalised asserted email.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import String, event, inspect, or_, select, update
from sqlalchemy.orm import Mapped, mapped_column

from ..extension import Maestrano
from ..presets import Preset
from ..sso.identity import PROVIDER, Group, Membership, User
from ..sso.migration import PendingLink, link_key, normalize_email, offer_link

# the sync engine's store, model-based mapping and after-commit hook (docs/sync.rst)
from .sync_sqlalchemy import (
    ModelMapping,
    SqlAlchemySyncStore,
    id_maps,
    sync_metadata,
    sync_on_commit,
    sync_outbox,
)

log = logging.getLogger("flask_maestrano")

__all__ = [
    "MaestranoGroupMixin",
    "MaestranoMembershipMixin",
    "MaestranoUserMixin",
    "ModelMapping",
    "SqlAlchemySyncStore",
    "id_maps",
    "install_loaders",
    "refresh_email_keys",
    "sync_metadata",
    "sync_on_commit",
    "sync_outbox",
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
    """``provider``, ``uid`` (real or virtual per the creation mode), ``tenant`` (preset) and
    ``email_key``.

    ``email_key`` is :func:`~flask_maestrano.sso.migration.normalize_email` of the account's
    email, the only column migration compares; the loaders installed by
    :func:`install_loaders` keep it in step on every insert and update through the ORM (run
    :func:`refresh_email_keys` once for rows written otherwise).
    """

    provider: Mapped[str | None] = mapped_column(String(32), index=True, nullable=True)
    uid: Mapped[str | None] = mapped_column(String(255), index=True, nullable=True)
    tenant: Mapped[str | None] = mapped_column(String(100), nullable=True)
    email_key: Mapped[str | None] = mapped_column(String(320), index=True, nullable=True)

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
    """Register ``find_or_create_group``, ``find_or_create_user``, ``link_membership`` and
    ``link_account``.

    ``user_key``/``group_key`` name the membership model's foreign-key columns;
    ``email_field`` the user model's email column (used for new users, and normalised into
    ``email_key`` for migration). The session is flushed after each step and committed once
    the membership is linked; ``link_account`` (a confirmed migration) commits at once.
    """
    session = db.session
    _sync_email_key(user_model, email_field)

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
        candidate = _link_candidate(session, user_model, user, preset)
        if candidate is not None:
            account_id = _primary_key(candidate)
            # "auto" links now; "confirm" ends this login with a redirect to the confirmation view
            if offer_link(
                user,
                preset,
                account_id,
                lambda: _claim(session, user_model, account_id, user.app_uid, preset.name),
            ):
                session.refresh(candidate)
                return candidate, False
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

    @maestrano.link_account
    def link_account(account_id: Any, link: PendingLink, preset: Preset) -> bool:
        linked = _claim(session, user_model, account_id, link.uid, preset.name)
        session.commit()
        return linked


def _link_candidate(session: Any, user_model: type[Any], user: User, preset: Preset) -> Any:
    """The one local account migration may offer to ``user``, or ``None``.

    Never an account with a Maestrano uid, never one of another preset, and none when the
    normalised email matches two or more (an ambiguous email hands over nothing).
    """
    key = link_key(user, preset)
    if key is None:
        return None
    query = (
        select(user_model)
        .where(
            user_model.email_key == key,
            user_model.uid.is_(None),
            or_(user_model.tenant.is_(None), user_model.tenant == preset.name),
        )
        .limit(2)
    )
    matches = session.execute(query).scalars().all()
    return matches[0] if len(matches) == 1 else None


def _claim(session: Any, user_model: type[Any], account_id: Any, uid: str, preset: str) -> bool:
    """Give the account ``account_id`` its Maestrano uid, only if it still has none (one UPDATE)."""
    key_column = getattr(user_model, inspect(user_model).primary_key[0].key)
    statement = (
        update(user_model)
        .where(
            key_column == account_id,
            user_model.uid.is_(None),
            or_(user_model.tenant.is_(None), user_model.tenant == preset),
        )
        .values(provider=PROVIDER, uid=uid, tenant=preset)
        .execution_options(synchronize_session="fetch")
    )
    return bool(session.execute(statement).rowcount == 1)


def _sync_email_key(user_model: type[Any], email_field: str) -> None:
    """Keep ``email_key`` equal to ``normalize_email(<email_field>)`` on ORM inserts and updates."""
    if not _has(user_model, "email_key") or getattr(user_model, "_maestrano_email_key_synced", None):
        return

    def sync(_mapper: Any, _connection: Any, target: Any) -> None:
        target.email_key = normalize_email(getattr(target, email_field, None))

    event.listen(user_model, "before_insert", sync)
    event.listen(user_model, "before_update", sync)
    user_model._maestrano_email_key_synced = email_field


def refresh_email_keys(db: Any, user_model: type[Any], *, email_field: str = "email") -> int:
    """Recompute ``email_key`` of every row (after adding the column, or bulk writes); commits.

    Returns how many rows changed.

    >>> with app.app_context():  # doctest: +SKIP
    ...     refresh_email_keys(db, User)
    """
    changed = 0
    for account in db.session.execute(select(user_model)).scalars():
        key = normalize_email(getattr(account, email_field))
        if account.email_key != key:
            account.email_key, changed = key, changed + 1
    db.session.commit()
    return changed
