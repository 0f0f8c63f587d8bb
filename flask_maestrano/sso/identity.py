"""Who logged in: the user, the group (company) and the membership of a validated assertion.

The attributes are the platform's (PLATFORM.md 2.4); the ``to_hash()`` forms are the old
SDKs' (PLATFORM.md 2.6), so code ported from them keeps working. ``creation_mode`` decides
which uid and email the app knows a user by (PLATFORM.md 2.7): ``real`` gives the universal
``usr-...`` uid and the real email, ``virtual`` gives ``usr-....cld-...`` and a forwarding
address, so one local user exists per (user, group).

>>> identity = Identity.from_attributes(
...     {"uid": ["usr-1"], "mno_session": ["tok"], "mno_session_recheck": ["2030-01-01T00:00:00Z"],
...      "group_uid": ["cld-1"], "group_role": ["Admin"], "email": ["ann@example.com"]},
...     name_id="usr-1", preset="production", creation_mode="real")
>>> identity.user.app_uid, identity.membership.role
('usr-1', 'Admin')
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import SsoError
from ..isotime import format_time as format_time
from ..isotime import parse_time as parse_time

__all__ = ["Group", "Identity", "Membership", "User", "format_time", "parse_time"]

PROVIDER = "maestrano"


@dataclass(frozen=True)
class User:
    """The user of a validated assertion (the ``user`` argument of
    :meth:`~flask_maestrano.Maestrano.find_or_create_user`).

    Store :attr:`app_uid` and :attr:`app_email`: they follow the preset's creation mode.
    """

    #: the marketplace user's real uid, ``usr-1234`` (attribute ``uid``)
    uid: str
    #: the uid of this user in this group, ``usr-1234.cld-5678`` (``virtual_uid``)
    virtual_uid: str
    #: the user's real email address (``email``)
    email: str
    #: an address unique to the user in this group, ``usr-1234.cld-5678@mail.maestrano.com``
    virtual_email: str
    #: the user's first name (``name``)
    first_name: str
    #: the user's last name (``surname``)
    last_name: str
    #: the user's country, ISO 3166 alpha-2 (``country``)
    country: str
    #: the company name the user gave (``company_name``)
    company_name: str
    #: the marketplace session token (``mno_session``), checked for single logout
    sso_session: str
    #: when the app must check that session again (``mno_session_recheck``), aware UTC
    sso_session_recheck: dt.datetime
    #: the uid of the group the user logged in for (``group_uid``)
    group_uid: str
    #: the user's role in that group (``group_role``): Member, Power User, Admin or Super Admin
    group_role: str
    #: the preset's ``sso.creation_mode``: ``"real"`` or ``"virtual"``
    creation_mode: str = "real"

    @property
    def app_uid(self) -> str:
        """The uid the app stores: the real uid in ``real`` mode, else the virtual uid."""
        return self.uid if self.creation_mode == "real" else self.virtual_uid

    @property
    def app_email(self) -> str:
        """The email the app stores: the real email in ``real`` mode, else the virtual one."""
        return self.email if self.creation_mode == "real" else self.virtual_email

    def to_hash(self) -> dict[str, Any]:
        """The old SDKs' ``BaseUser#to_hash`` (PLATFORM.md 2.6)."""
        return {
            "provider": PROVIDER,
            "uid": self.app_uid,
            "info": {
                "email": self.app_email,
                "first_name": self.first_name,
                "last_name": self.last_name,
                "country": self.country,
                "company_name": self.company_name,
            },
            "extra": {
                "uid": self.uid,
                "virtual_uid": self.virtual_uid,
                "real_email": self.email,
                "virtual_email": self.virtual_email,
                "group": {"uid": self.group_uid, "role": self.group_role},
                "session": {
                    "uid": self.uid,
                    "token": self.sso_session,
                    "recheck": self.sso_session_recheck,
                    "group_uid": self.group_uid,
                },
            },
        }


@dataclass(frozen=True)
class Group:
    """The group (company) the user acts for, as the assertion describes it (the ``group``
    argument of :meth:`~flask_maestrano.Maestrano.find_or_create_group`)."""

    #: the group's uid, ``cld-1234`` (attribute ``group_uid``)
    uid: str
    #: the company's name (``group_name``)
    name: str
    #: when its free trial ends (``group_end_free_trial``), aware UTC; ``None`` if not sent
    free_trial_end_at: dt.datetime | None
    #: the company name the logged-in user gave (``company_name``)
    company_name: str
    #: whether the company has a credit card on file (``group_has_credit_card``)
    has_credit_card: bool
    #: the uid of the organization it belongs to (``group_org_uid``), if any
    org_uid: str | None
    #: the company's email address (``group_email``)
    email: str
    #: the company's city (``group_city``)
    city: str
    #: the company's country, ISO 3166 alpha-2 (``group_country``)
    country: str
    #: the company's time zone, e.g. ``America/Los_Angeles`` (``group_timezone``)
    timezone: str
    #: the company's currency, ISO 4217 (``group_currency``)
    currency: str

    def to_hash(self) -> dict[str, Any]:
        """The old SDKs' ``BaseGroup#to_hash`` (PLATFORM.md 2.6)."""
        return {
            "provider": PROVIDER,
            "uid": self.uid,
            "info": {
                "free_trial_end_at": self.free_trial_end_at,
                "company_name": self.company_name,
                "has_credit_card": self.has_credit_card,
                "name": self.name,
                "org_uid": self.org_uid,
                "email": self.email,
                "city": self.city,
                "country": self.country,
                "timezone": self.timezone,
                "currency": self.currency,
            },
            "extra": {},
        }


@dataclass(frozen=True)
class Membership:
    """The user's role in the group (the ``membership`` argument of
    :meth:`~flask_maestrano.Maestrano.link_membership`)."""

    #: the group's uid, ``cld-1234``
    group_uid: str
    #: the user's real uid, ``usr-1234``, whatever the creation mode
    user_uid: str
    #: Member, Power User, Admin or Super Admin (``group_role``)
    role: str

    def to_hash(self) -> dict[str, Any]:
        """The old SDKs' ``BaseMembership#to_hash`` (PLATFORM.md 2.6)."""
        return {
            "provider": PROVIDER,
            "group_uid": self.group_uid,
            "user_uid": self.user_uid,
            "role": self.role,
        }


def _first(attributes: Mapping[str, Sequence[str]], name: str) -> str:
    values = attributes.get(name) or ()
    return str(values[0]) if values else ""


def _required(attributes: Mapping[str, Sequence[str]], name: str) -> str:
    value = _first(attributes, name)
    if not value:
        raise SsoError("missing_attribute", f"the assertion has no {name!r} attribute")
    return value


def _time(value: str, name: str) -> dt.datetime:
    try:
        return parse_time(value)
    except ValueError:
        raise SsoError("invalid_attribute", f"the {name!r} attribute is not an ISO-8601 time") from None


@dataclass(frozen=True)
class Identity:
    """Everything a validated assertion says: user, group, membership, and the raw attributes
    (the ``identity`` of :data:`~flask_maestrano.signals.login_succeeded`)."""

    #: the user
    user: User
    #: the group (company) the user logged in for
    group: Group
    #: the user's role in it
    membership: Membership
    #: the name of the preset (marketplace) the assertion came through
    preset: str
    #: every attribute of the assertion, each a list of values
    attributes: Mapping[str, Sequence[str]] = field(default_factory=dict)

    @classmethod
    def from_attributes(
        cls,
        attributes: Mapping[str, Sequence[str]],
        *,
        name_id: str | None,
        preset: str,
        creation_mode: str,
    ) -> Identity:
        """Build the identity from a validated assertion's attributes (lists of values).

        Raises :class:`~flask_maestrano.errors.SsoError` when a required attribute
        (user uid, SSO session and recheck, group uid) is missing or malformed.
        """
        uid = _first(attributes, "uid") or _first(attributes, "mno_uid") or (name_id or "")
        if not uid:
            raise SsoError("missing_attribute", "the assertion names no user (uid attribute or NameID)")
        if name_id and name_id != uid:
            raise SsoError("invalid_attribute", "the NameID and the uid attribute differ")
        group_uid = _required(attributes, "group_uid")
        session = _required(attributes, "mno_session")
        recheck = _time(_required(attributes, "mno_session_recheck"), "mno_session_recheck")
        trial = _first(attributes, "group_end_free_trial")
        role = _first(attributes, "group_role") or "Guest"
        user = User(
            uid=uid,
            virtual_uid=_first(attributes, "virtual_uid") or f"{uid}.{group_uid}",
            email=_first(attributes, "email"),
            virtual_email=_first(attributes, "virtual_email"),
            first_name=_first(attributes, "name"),
            last_name=_first(attributes, "surname"),
            country=_first(attributes, "country"),
            company_name=_first(attributes, "company_name"),
            sso_session=session,
            sso_session_recheck=recheck,
            group_uid=group_uid,
            group_role=role,
            creation_mode=creation_mode,
        )
        group = Group(
            uid=group_uid,
            name=_first(attributes, "group_name"),
            free_trial_end_at=_time(trial, "group_end_free_trial") if trial else None,
            company_name=_first(attributes, "company_name"),
            has_credit_card=_first(attributes, "group_has_credit_card") == "true",
            org_uid=_first(attributes, "group_org_uid") or None,
            email=_first(attributes, "group_email"),
            city=_first(attributes, "group_city"),
            # the Ruby SDK read the user's country here; the platform now sends group_country
            country=_first(attributes, "group_country") or _first(attributes, "country"),
            timezone=_first(attributes, "group_timezone"),
            currency=_first(attributes, "group_currency"),
        )
        membership = Membership(group_uid=group_uid, user_uid=uid, role=role)
        return cls(user=user, group=group, membership=membership, preset=preset, attributes=dict(attributes))
