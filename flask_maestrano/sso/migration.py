"""Migration of existing accounts: linking a marketplace user to a local account by email.

An app that had users before it joined the marketplace may link a marketplace user, on
their first login, to the local account with the same email instead of creating a new one
(the integration checklist's "user email matching"). Trusting the asserted email alone hands
an account to whoever the marketplace says owns that address, so linking is a per-preset
policy (``sso.migration`` of the preset, else :data:`MAESTRANO_SSO_MIGRATION`):

* ``"off"`` (the default): never link; a marketplace user with an unknown uid gets a new
  account.
* ``"confirm"``: the login stops at the host's confirmation page
  (:data:`MAESTRANO_SSO_LINK_CONFIRM_VIEW`), where the existing owner proves ownership (for
  example with their local password); the host then calls :func:`confirm_link`, which
  links, and the browser signs in again through the marketplace. :func:`decline_link`
  logs the user in as a new account instead.
* ``"auto"``: link at once when the normalised emails are equal (trusts the marketplace's
  email verification).

Whatever the policy, a link is only ever proposed by the loaders for an account that has
no Maestrano uid yet and belongs to no other preset, on an email that
:func:`normalize_email` accepts; both protocols (SAML and OpenID) reach this module
through the same loaders.

>>> normalize_email("  Ann.Smith@Example.COM ")
'ann.smith@example.com'
>>> normalize_email("\\u212aate@example.com") is None  # KELVIN SIGN, NFKC folds it into "K"
True
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, NoReturn

from flask import Flask, abort, redirect, session, url_for

from .. import signals
from ..errors import ConfigurationError
from ..presets import Preset
from ..state import MaestranoState, current, get_state
from .identity import User

log = logging.getLogger("flask_maestrano")

__all__ = [
    "PendingLink",
    "confirm_link",
    "decline_link",
    "link_key",
    "migration_policy",
    "normalize_email",
    "offer_link",
    "pending_link",
]

#: The migration policies, safest first.
#: Flask session keys: the browser's pending link, and a link it declined.
PENDING_KEY = "maestrano_link"
DECLINED_KEY = "maestrano_link_declined"
_MAX_EMAIL = 320  # RFC 5321: 64 + 1 + 255


def normalize_email(address: str | None) -> str | None:
    """The key two email addresses are compared by, or ``None`` if ``address`` must not link.

    The one normalisation of migration, applied the same way to the asserted email and to
    the local account's (store its result, for example in the ``email_key`` column of
    :class:`~flask_maestrano.contrib.sqlalchemy.MaestranoUserMixin`): surrounding white
    space removed and the ASCII letters ``A-Z`` lower-cased; nothing else changes.

    ``None`` (never linkable) for an empty or over-long address, one without exactly one
    ``@`` or with white space or control characters inside, and one holding a non-ASCII
    character that Unicode compatibility normalisation (NFKC) or case folding would change:
    U+212A KELVIN SIGN (NFKC gives ASCII ``K``), fullwidth letters, an upper-case ``Ü``, a
    decomposed ``u`` + U+0308. Such look-alikes never reach an ASCII account; an address
    already in that normal form (``jürgen@example.com``) matches only itself.
    """
    if not address:
        return None
    text = address.strip()
    if not text or len(text) > _MAX_EMAIL or text.count("@") != 1:
        return None
    local, _, domain = text.partition("@")
    if not local or not domain or any(ch.isspace() or unicodedata.category(ch) == "Cc" for ch in text):
        return None
    key = "".join(chr(ord(ch) + 32) if "A" <= ch <= "Z" else ch for ch in text)
    if not key.isascii():
        folded = unicodedata.normalize("NFKC", key)
        if folded != key or folded.casefold() != key:
            return None
    return key


def migration_policy(preset: Preset, app: Flask | None = None) -> str:
    """The preset's ``sso.migration``, else :data:`MAESTRANO_SSO_MIGRATION` of ``app``."""
    if preset.sso.migration is not None:
        return preset.sso.migration
    return get_state(app).settings.sso_migration


@dataclass(frozen=True)
class PendingLink:
    """A link waiting for the existing owner's proof (``"confirm"`` policy).

    Kept in this browser's (signed) Flask session until :func:`confirm_link`,
    :func:`decline_link`, a completed login or ``expires_at`` (Unix time).
    """

    preset: str
    #: the marketplace user's uid and email as the app stores them (``app_uid``/``app_email``)
    uid: str
    email: str
    group_uid: str
    #: the local account's primary key, as a string
    account_id: str
    expires_at: float

    def continue_url(self) -> str:
        """Single sign-on again for this preset and group (after a confirm or a decline),
        through the preset's protocol (SAML or OpenID)."""
        protocol = get_state().preset(self.preset).sso.protocol
        endpoint = "maestrano.openid_init" if protocol == "openid" else "maestrano.sso_init"
        return url_for(endpoint, preset=self.preset, group_id=self.group_uid)


def _declined(user: User, preset: Preset) -> bool:
    marker = session.get(DECLINED_KEY)
    return (
        isinstance(marker, dict)
        and marker.get("preset") == preset.name
        and marker.get("uid") == user.app_uid
        and float(marker.get("expires_at", 0)) > get_state().clock()
    )


def link_key(user: User, preset: Preset) -> str | None:
    """The normalised email a loader looks an unclaimed local account up by, or ``None``.

    ``None`` means "do not look": the preset's policy is ``"off"``, the asserted email is
    not linkable (:func:`normalize_email`), or this browser declined the link for this user.
    A loader that finds exactly one account (without a Maestrano uid, of no other preset)
    whose stored key equals this one calls :func:`offer_link`.
    """
    if migration_policy(preset) == "off":
        return None
    key = normalize_email(user.app_email)
    if key is None:
        if user.app_email:
            log.info(
                "Maestrano SSO: %s's email is not linkable (normalisation changes it); no migration "
                "(preset %s)",
                user.app_uid,
                preset.name,
            )
        return None
    return None if _declined(user, preset) else key


def offer_link(user: User, preset: Preset, account_id: Any, claim: Callable[[], bool]) -> bool:
    """Apply the preset's policy to the one local account a loader found for :func:`link_key`.

    ``claim()`` writes the link (the user's ``app_uid`` and the preset on the account
    ``account_id``) only if that account still has no Maestrano uid, and returns whether it
    did; the loader then logs the user in as that account.

    ``"auto"``: calls ``claim()``, sends :data:`~flask_maestrano.signals.account_linked`
    when it linked, and returns its result. ``"confirm"``: stores a :class:`PendingLink` in
    the browser's session, sends :data:`~flask_maestrano.signals.account_link_pending` and
    ends the request with a redirect to :data:`MAESTRANO_SSO_LINK_CONFIRM_VIEW` (nobody is
    logged in). ``"off"``: returns ``False``. ``False`` means: create a new account.
    """
    app: Flask = current()
    policy = migration_policy(preset, app)
    if policy == "auto":
        if not claim():
            return False
        log.info(
            "Maestrano SSO: linked %s to an existing account by email (preset %s)", user.app_uid, preset.name
        )
        signals.account_linked.send(
            app, account_id=account_id, uid=user.app_uid, preset=preset.name, mode="auto"
        )
        return True
    if policy != "confirm":
        return False
    ttl = get_state(app).settings.sso_link_ttl
    link = PendingLink(
        preset=preset.name,
        uid=user.app_uid,
        email=user.app_email,
        group_uid=user.group_uid,
        account_id=str(account_id),
        expires_at=get_state(app).clock() + ttl,
    )
    session[PENDING_KEY] = asdict(link)
    log.info(
        "Maestrano SSO: %s matches an existing account by email; waiting for its owner (preset %s)",
        user.app_uid,
        preset.name,
    )
    signals.account_link_pending.send(app, link=link)
    _redirect_to_confirmation(app)


def _redirect_to_confirmation(app: Flask) -> NoReturn:
    view = str(get_state(app).settings.sso_link_confirm_view)
    abort(redirect(view if view.startswith("/") else url_for(view)))


def pending_link() -> PendingLink | None:
    """This browser's pending link, or ``None`` (none, malformed or expired: then dropped)."""
    data = session.get(PENDING_KEY)
    if data is None:
        return None
    try:
        link = PendingLink(**data)
        if not isinstance(link.expires_at, int | float) or link.expires_at <= get_state().clock():
            raise ValueError("expired")
    except (TypeError, ValueError):
        session.pop(PENDING_KEY, None)
        return None
    return link


def confirm_link(account_id: Any) -> PendingLink | None:
    """Link the pending account once its owner proved ownership; ``None`` if nothing linked.

    Call it from the confirmation view after checking the local credentials of the account
    ``account_id`` (its primary key). It links only the account of this browser's pending
    link, through the :meth:`~flask_maestrano.Maestrano.link_account` callback (which must
    refuse an account that got a Maestrano uid meanwhile), ends the pending link, sends
    :data:`~flask_maestrano.signals.account_linked` and returns it: redirect to
    :meth:`PendingLink.continue_url` so the browser signs in through the marketplace, now
    as the linked account. A different account, an expired link or a refusing callback
    return ``None`` (a different account leaves the pending link in place).
    """
    link = pending_link()
    if link is None or str(account_id) != link.account_id:
        return None
    state = get_state()
    callback = state.callbacks.link_account
    if callback is None:
        raise ConfigurationError("register the link_account callback on the Maestrano extension")
    session.pop(PENDING_KEY, None)
    if not callback(account_id, link, state.preset(link.preset)):
        log.warning("Maestrano SSO: the link of %s was refused (account already linked)", link.uid)
        return None
    app = current()
    log.info(
        "Maestrano SSO: the owner confirmed; %s linked to an existing account (preset %s)",
        link.uid,
        link.preset,
    )
    signals.account_linked.send(app, account_id=account_id, uid=link.uid, preset=link.preset, mode="confirm")
    return link


def decline_link() -> PendingLink | None:
    """Drop this browser's pending link: its next login for that user creates a new account.

    Returns the dropped link (redirect to :meth:`PendingLink.continue_url`), or ``None``.
    """
    link = pending_link()
    if link is None:
        return None
    session.pop(PENDING_KEY, None)
    session[DECLINED_KEY] = {"preset": link.preset, "uid": link.uid, "expires_at": link.expires_at}
    log.info(
        "Maestrano SSO: the link of %s was declined; a new account follows (preset %s)", link.uid, link.preset
    )
    return link


def check(state: MaestranoState) -> None:
    """Run by ``init_app`` before anything is registered: refuse the ``"confirm"`` policy
    without a confirmation view."""
    default = state.settings.sso_migration
    confirming = sorted(
        name for name, p in state.presets.items() if (p.sso.migration or default) == "confirm"
    )
    for name in confirming:
        if state.presets[name].sso.idp_initiated:
            log.warning(
                "Maestrano preset %r: IdP-initiated logins cannot be bound to the browser; a forged "
                "one can put another user's pending link in front of an account owner (see the "
                "migration docs)",
                name,
            )
    if confirming and not state.settings.sso_link_confirm_view:
        raise ConfigurationError(
            f"is required: preset(s) {', '.join(confirming)} use the 'confirm' migration policy",
            key="MAESTRANO_SSO_LINK_CONFIRM_VIEW",
        )
