"""Bind each pending sign-in to the browser that started it: the login CSRF defence.

Without a binding, an attacker starts a sign-in in their own browser, keeps the IdP's signed
answer instead of delivering it, and makes a victim's browser deliver it: the victim is then
logged in as the attacker, and whatever they type lands in the attacker's company.

The pieces, usable by any sign-in protocol (SAML here, OpenID alike):

* :func:`bind_browser` at init: the browser's binding, read from its cookie or new. The
  cookie carries a random secret; only the secret's SHA-256 (:attr:`BrowserBinding.digest`)
  is ever stored server-side. :meth:`BrowserBinding.set_cookie` sets it on the response.
* :class:`PendingRequests`: one-time pending requests under random tokens, each stored with
  the digest of its browser, at most ``per_browser`` per browser; a browser's new request
  past that replaces that browser's own oldest, never another browser's.
* :class:`VerifiedLogins`: a response that passed every check, kept under a new one-time
  token until the browser comes back with a same-site GET; :meth:`VerifiedLogins.take`
  gives it back only to the browser whose cookie matches (constant-time comparison).
* :func:`verify_browser`: that check alone, for an answer that arrives as a top-level GET
  (which carries the cookie) rather than a cross-site POST.

The IdP's SAML POST is cross-site, so a ``SameSite=Lax`` cookie is not sent with it; the
redirect (303) that answers it is a top-level GET, with which the cookie is sent.

Cookie: ``__Host-maestrano_sso`` (``Secure``, ``Path=/``, no ``Domain``) when the app's
host is https, else ``maestrano_sso`` with ``Path=/`` (Chromium keeps ``Secure`` cookies
from ``http://127.0.0.1``, but not every client sends them over http: python-requests
never does); ``HttpOnly`` and ``SameSite=Lax`` on both.

>>> from flask_maestrano.store import MemoryStore
>>> store = MemoryStore()
>>> pending = PendingRequests(store, "sso", per_browser=2)
>>> browser = BrowserBinding.new(secure=True)
>>> token = pending.put(browser, {"id": "_req1"}, ttl=600)
>>> record = pending.pop(token)
>>> record["id"], record["binding"] == browser.digest, pending.pop(token)
('_req1', True, None)
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import Request
from werkzeug.wrappers import Response

from ..errors import SsoError
from ..store import PENDING, AtomicStore, Store, read

__all__ = [
    "COOKIE_NAME",
    "BindingError",
    "BrowserBinding",
    "Peeked",
    "PendingRequests",
    "VerifiedLogins",
    "bind_browser",
    "cookie_name",
    "verify_browser",
]

#: The binding cookie's name on an http app; ``__Host-`` is prepended on an https app.
COOKIE_NAME = "maestrano_sso"
#: Secrets and tokens issued here: ``secrets.token_urlsafe(32)``.
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{43}$")


def cookie_name(secure: bool) -> str:
    """``__Host-maestrano_sso`` for an https app, ``maestrano_sso`` for an http one."""
    return f"__Host-{COOKIE_NAME}" if secure else COOKIE_NAME


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class BindingError(SsoError):
    """The browser cannot finish this sign-in; ``status`` is the HTTP status to answer.

    Reasons: ``finish_unknown`` (the token was used, expired or never issued; 400),
    ``binding_missing`` (no binding cookie came back; 403), ``binding_mismatch`` (another
    browser's cookie; 403).
    """

    def __init__(self, reason: str, message: str, status: int) -> None:
        super().__init__(reason, message)
        self.status = status


@dataclass(frozen=True)
class BrowserBinding:
    """The secret a browser holds in its binding cookie (``secure``: the https form)."""

    secret: str = field(repr=False)
    secure: bool
    #: True when the browser had no valid cookie: :meth:`set_cookie` must reach it
    fresh: bool = True

    @classmethod
    def new(cls, *, secure: bool) -> BrowserBinding:
        """A new random secret."""
        return cls(secrets.token_urlsafe(32), secure, True)

    @property
    def digest(self) -> str:
        """SHA-256 of the secret (hex): what the server stores instead of the secret."""
        return _digest(self.secret)

    @property
    def cookie_name(self) -> str:
        return cookie_name(self.secure)

    def set_cookie(self, response: Response, max_age: float) -> None:
        """Set (or refresh) the binding cookie for ``max_age`` seconds."""
        response.set_cookie(
            self.cookie_name,
            self.secret,
            max_age=max(1, int(max_age)),
            path="/",
            secure=self.secure,
            httponly=True,
            samesite="Lax",
        )


def bind_browser(request: Request, *, secure: bool) -> BrowserBinding:
    """The binding of the browser making ``request``: from its cookie if well formed, else new."""
    value = request.cookies.get(cookie_name(secure))
    if value and _TOKEN.match(value):
        return BrowserBinding(value, secure, fresh=False)
    return BrowserBinding.new(secure=secure)


def verify_browser(request: Request, digest: str, *, secure: bool) -> None:
    """Raise :class:`BindingError` unless ``request``'s binding cookie hashes to ``digest``.

    For a protocol whose answer comes back as a top-level GET (OpenID), which carries the
    ``SameSite=Lax`` cookie itself: check the pending record's ``binding`` right there.
    """
    value = request.cookies.get(cookie_name(secure))
    if not value:
        raise BindingError(
            "binding_missing", "this browser did not start the sign-in (no binding cookie)", 403
        )
    # compare digests of equal length in constant time, even for a malformed cookie
    if not hmac.compare_digest(_digest(value), digest) or not _TOKEN.match(value):
        raise BindingError("binding_mismatch", "the sign-in was started by another browser", 403)


def pending_prefix(namespace: str, kind: str) -> str:
    """``pending:<namespace>:<kind>:``, the keys of :class:`PendingRequests` (``kind`` is ``req``,
    ``alias`` or ``slot``), under the prefix :class:`~flask_maestrano.store.MemoryStore` budgets apart.

    >>> pending_prefix("sso", "req")
    'pending:sso:req:'
    """
    return f"{PENDING}{namespace}:{kind}:"


def finish_prefix(namespace: str) -> str:
    """``<namespace>:finish:``, the keys of :class:`VerifiedLogins`."""
    return f"{namespace}:finish:"


class PendingRequests:
    """One-time pending sign-in requests, each bound to a browser, a few per browser.

    Keys (all under ``pending:``, the prefix :class:`~flask_maestrano.store.MemoryStore`
    budgets separately): ``pending:<namespace>:req:<token>`` holds the JSON record,
    ``pending:<namespace>:alias:<alias>`` its token when an alias is given, and
    ``pending:<namespace>:slot:<digest>:<n>`` (``n < per_browser``) the token of each of a
    browser's pending requests; a request that gives way takes its alias along. Records over
    ``max_record_bytes`` are refused (:class:`ValueError`), so one entry in a shared store
    never exceeds that much.
    """

    def __init__(
        self, store: Store, namespace: str, *, per_browser: int = 4, max_record_bytes: int = 4096
    ) -> None:
        if per_browser < 1:
            raise ValueError("per_browser must be at least 1")
        self.store = store
        self.namespace = namespace
        self.per_browser = per_browser
        self.max_record_bytes = max_record_bytes
        #: prefix of the record keys: ``key_prefix + token``
        self.key_prefix = pending_prefix(namespace, "req")
        #: prefix of the alias keys: ``alias_prefix + alias`` holds the token
        self.alias_prefix = pending_prefix(namespace, "alias")

    def _slot(self, digest: str, index: int) -> str:
        return f"{pending_prefix(self.namespace, 'slot')}{digest}:{index}"

    def _alias(self, alias: str) -> str:
        return f"{self.alias_prefix}{alias}"

    def put(
        self, binding: BrowserBinding, record: Mapping[str, Any], ttl: float, *, alias: str | None = None
    ) -> str:
        """Store ``record`` for ``binding``'s browser for ``ttl`` seconds; its new one-time token.

        ``alias`` (for example the AuthnRequest ID, for an IdP that does not echo the token)
        finds the same record through :meth:`pop_alias`. The record comes back with
        ``binding`` (the digest) and ``secure`` added. Raises :class:`ValueError` for a
        record over the size cap and the store's
        :class:`~flask_maestrano.errors.StoreUnavailable` when it cannot keep it.
        """
        token = secrets.token_urlsafe(32)
        body = {**record, "binding": binding.digest, "secure": binding.secure, "expires": time.time() + ttl}
        if alias is not None:
            body["alias"] = alias
        stamp = f"{time.time_ns()}:{token}"
        if isinstance(self.store, AtomicStore):
            return self._put_batched(binding.digest, token, body, ttl, stamp)
        slot = self._claim_slot(binding.digest, stamp, ttl)
        body["slot"] = slot
        try:
            self.store.add(self.key_prefix + token, self._encode(body), ttl)
            if alias is not None:
                self.store.add(self._alias(alias), token, ttl)
        except Exception:
            self._forget(token, body)
            raise
        return token

    def _put_batched(self, digest: str, token: str, body: dict[str, Any], ttl: float, stamp: str) -> str:
        """:meth:`put` on an :class:`~flask_maestrano.store.AtomicStore`: the record, its alias
        and the browser's first slot in one batch (one round trip). The record names the slot
        it holds (:meth:`release` frees just that one): the first, or, when this browser has
        a request pending already, the one claimed next, written into the record before its
        token leaves this method."""
        assert isinstance(self.store, AtomicStore)
        raw = self._encode({**body, "slot": 0})
        key = self.key_prefix + token
        entries = [(key, raw, ttl), (self._slot(digest, 0), stamp, ttl)]
        if "alias" in body:
            entries.append((self._alias(str(body["alias"])), token, ttl))
        try:
            first_slot_free = self.store.add_many(entries)[1]
            if not first_slot_free:  # this browser has a request pending already
                slot = self._claim_slot(digest, stamp, ttl)
                # nobody has the token yet; a request that gave way meanwhile stays gone
                if slot != 0 and self.store.pop(key) is not None:
                    self.store.add(key, self._encode({**body, "slot": slot}), ttl)
        except Exception:
            self._forget(token, body)
            self.store.pop(self.key_prefix + token)
            raise
        return token

    def _encode(self, body: Mapping[str, Any]) -> str:
        """``body`` as the stored JSON; :class:`ValueError` over :attr:`max_record_bytes`."""
        raw = json.dumps(body, separators=(",", ":"))
        size = len(raw.encode())
        if size > self.max_record_bytes:
            raise ValueError(f"pending request of {size} bytes (at most {self.max_record_bytes})")
        return raw

    def release(self, token: str) -> tuple[tuple[str, str], ...]:
        """The ``(key template, suffix)`` pairs a :class:`~flask_maestrano.store.Settlement`
        deletes when it takes the request of ``token``: the browser's slot the record names,
        if it still holds it (``{binding}`` is the record's digest), and its alias."""
        slots = pending_prefix(self.namespace, "slot")
        return ((f"{slots}{{binding}}:{{slot}}", ":" + token), (self.alias_prefix + "{alias}", token))

    def _slots_of(self, record: Mapping[str, Any]) -> range:
        slot = record.get("slot")
        return range(int(slot), int(slot) + 1) if isinstance(slot, int) else range(self.per_browser)

    def _forget(self, token: str, record: Mapping[str, Any]) -> None:
        """Remove what :meth:`put` stored besides the record: the slot (if still its) and alias."""
        for index in self._slots_of(record):
            slot = self._slot(str(record.get("binding")), index)
            held = self.store.pop(slot)
            if held is not None and not held.endswith(":" + token):
                # the slot went to another request of this browser meanwhile: give it back
                self.store.add(slot, held, max(1.0, float(record.get("expires", 0)) - time.time()))
        alias = record.get("alias")
        if alias is not None:
            self.store.pop(self._alias(str(alias)))

    def _claim_slot(self, digest: str, stamp: str, ttl: float) -> int:
        for index in range(self.per_browser):
            if self.store.add(self._slot(digest, index), stamp, ttl):
                return index
        # every slot of this browser is taken: its own oldest request gives way
        held = []
        for index in range(self.per_browser):
            value = self.store.pop(self._slot(digest, index))
            if value is not None:
                held.append((int(value.partition(":")[0]), index, value))
        held.sort()
        free = sorted(set(range(self.per_browser)) - {index for _, index, _ in held})
        if not free:
            _, index, value = held.pop(0)
            raw = self.store.pop(self.key_prefix + value.partition(":")[2])
            alias = json.loads(raw).get("alias") if raw is not None else None
            if alias is not None:
                self.store.pop(self._alias(str(alias)))
            free = [index]
        for _, index, value in held:
            self.store.add(self._slot(digest, index), value, ttl)
        self.store.add(self._slot(digest, free[0]), stamp, ttl)
        return free[0]

    def pop(self, token: str | None) -> dict[str, Any] | None:
        """The record of ``token``, removed with its slot and alias; ``None`` if unknown/used/expired."""
        if not token or not _TOKEN.match(token):
            return None
        raw = self.store.pop(self.key_prefix + token)
        if raw is None:
            return None
        record: dict[str, Any] = json.loads(raw)
        self._forget(token, record)
        return record

    def pop_alias(self, alias: str) -> dict[str, Any] | None:
        """:meth:`pop` through the ``alias`` given to :meth:`put`."""
        return self.pop(self.store.pop(self._alias(alias)))

    def peek(self, token: str | None) -> Peeked | None:
        """The request of ``token``, left in place (a :class:`~flask_maestrano.store.Settlement`
        takes it once the answer is valid); ``None`` if unknown or expired."""
        if not token or not _TOKEN.match(token):
            return None
        raw = read(self.store, self.key_prefix + token)
        if raw is None:
            return None
        record: dict[str, Any] = json.loads(raw)
        return Peeked(token, self.key_prefix + token, record)

    def peek_alias(self, alias: str | None) -> Peeked | None:
        """:meth:`peek` through the ``alias`` given to :meth:`put`."""
        return self.peek(read(self.store, self._alias(alias))) if alias else None


@dataclass(frozen=True)
class Peeked:
    """A pending request read by :meth:`PendingRequests.peek`: its token, key and record."""

    token: str
    key: str
    record: dict[str, Any]


class VerifiedLogins:
    """Verified sign-ins waiting for their browser, each under a one-time, short-lived token.

    Entries are created only for responses that passed every check, so they are not what an
    anonymous flood can create; they live under ``<namespace>:finish:<token>``.
    """

    def __init__(self, store: Store, namespace: str, ttl: float) -> None:
        self.store = store
        self.ttl = ttl
        #: prefix of the keys: ``key_prefix + token``
        self.key_prefix = finish_prefix(namespace)

    def put(self, record: Mapping[str, Any], binding_digest: str, *, secure: bool) -> str:
        """Keep ``record`` for the browser whose secret hashes to ``binding_digest``; the token."""
        token, key, value = self.entry(record, binding_digest, secure=secure)
        self.store.add(key, value, self.ttl)
        return token

    def entry(self, record: Mapping[str, Any], binding_digest: str, *, secure: bool) -> tuple[str, str, str]:
        """What :meth:`put` stores, not stored: ``(token, key, value)``."""
        token = secrets.token_urlsafe(32)
        body = {"record": dict(record), "binding": binding_digest, "secure": secure}
        return token, self.key_prefix + token, json.dumps(body, separators=(",", ":"))

    #: the pending request's fields a :class:`~flask_maestrano.store.Settlement` carries into
    #: the finish entry (:meth:`settled_value`): the browser binding and the page to return to
    CARRY = ("binding", "secure", "next")

    @staticmethod
    def settled_value(record: Mapping[str, Any]) -> str:
        """The finish entry of ``record`` before the settlement adds :attr:`CARRY` from the
        pending request (the store writes it; :meth:`take` reads both forms)."""
        return json.dumps({"record": dict(record)}, separators=(",", ":"))

    def take(self, token: str | None, request: Request) -> dict[str, Any]:
        """The record of ``token`` if ``request`` comes from its browser; :class:`BindingError` if not.

        The token is spent by the first attempt, right or wrong: whoever else learns it
        (a log, a shared link) can neither use it nor keep the browser from starting over.
        """
        raw = self.store.pop(self.key_prefix + token) if token and _TOKEN.match(token) else None
        if raw is None:
            raise BindingError("finish_unknown", "this sign-in link was already used or has expired", 400)
        body: dict[str, Any] = json.loads(raw)
        verify_browser(request, str(body["binding"]), secure=bool(body["secure"]))
        record: dict[str, Any] = body["record"]
        if "next" in body:  # carried from the pending request by a settlement
            record["next"] = body["next"]
        return record
