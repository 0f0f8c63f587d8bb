"""Blinker signals: how a host application observes what the platform does.

Every signal is sent with the Flask application as sender, so a receiver connected with
``signal.connect_via(app)`` sees only its own app's events. Arguments are keywords.
Receivers observe; a receiver that raises fails the webhook it was sent from (answered
with a 5xx so the platform delivers again).

>>> from flask_maestrano import signals
>>> @signals.group_cancelled.connect
... def on_cancel(app, group_id, preset):
...     print("cancelled", group_id)
"""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

#: A user logged in through single sign-on. Keyword arguments: ``user`` (the host's user
#: object), ``group`` (the host's group object), ``identity``
#: (:class:`~flask_maestrano.sso.identity.Identity`), ``preset`` (name),
#: ``user_created`` and ``group_created`` (bools as the loaders reported them).
login_succeeded = _signals.signal("maestrano-login-succeeded")

#: A single sign-on attempt was refused. Keyword arguments: ``reason`` (a short code such
#: as ``"replay"``), ``message``, ``preset`` (name or ``None``).
login_failed = _signals.signal("maestrano-login-failed")

#: Single sign-on found an existing local account for a new marketplace user and, per the
#: ``"confirm"`` migration policy, waits for its owner to prove ownership. Keyword argument:
#: ``link`` (:class:`~flask_maestrano.sso.migration.PendingLink`).
account_link_pending = _signals.signal("maestrano-account-link-pending")

#: A marketplace user was linked to an existing local account (migration by email).
#: Keyword arguments: ``account_id`` (the local account's key), ``uid`` (the user's
#: ``app_uid``), ``preset`` (name), ``mode`` (``"auto"``: at login; ``"confirm"``: after the
#: owner confirmed).
account_linked = _signals.signal("maestrano-account-linked")

#: The platform ended a user's session (single logout), or the check could not be made and
#: the app is configured to fail closed. Keyword arguments: ``user_uid``, ``group_uid``,
#: ``preset``, ``reason`` (``"invalid"`` or ``"unreachable"``).
session_invalidated = _signals.signal("maestrano-session-invalidated")

#: The platform cancelled a company's subscription. Keyword arguments: ``group_id``,
#: ``preset`` (the :class:`~flask_maestrano.Preset` whose credentials authenticated the call).
#: Sent after the ``on_group_cancelled`` callback; may be sent twice for one cancellation.
group_cancelled = _signals.signal("maestrano-group-cancelled")

#: The platform removed a member from a company. Keyword arguments: ``group_id``,
#: ``user_id`` (masked per the preset's creation mode: ``usr-1.cld-2`` in virtual mode),
#: ``real_user_id`` (``usr-1``), ``preset`` (the :class:`~flask_maestrano.Preset`).
#: Sent after the ``on_member_removed`` callback; may be sent twice for one removal.
member_removed = _signals.signal("maestrano-member-removed")

#: Connec! entities arrived (a notification or the initial import). Keyword arguments:
#: ``preset`` (the :class:`~flask_maestrano.Preset`), ``group_id``, ``collection``,
#: ``entities`` (:class:`~flask_maestrano.entities.Entities`, a sequence of
#: :class:`~flask_maestrano.entities.Entity`, all of that group and
#: collection), ``source`` (``"notification"`` or ``"import"``). Sent once per (group,
#: collection) batch, after the ``on_entities`` callback; may repeat a delivery.
entities_received = _signals.signal("maestrano-entities-received")
