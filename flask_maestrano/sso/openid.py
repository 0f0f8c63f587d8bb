"""OpenID 2.0 relying party on python3-openid: the provider, the store, the checks, the identity.

The platform's OpenID provider lives at ``api.host + /api/openid/provider/<api.id>``
(PLATFORM.md 3) and answers with Attribute Exchange (AX) values. python3-openid does the
protocol (associations, signatures, ``check_authentication``, nonces); this module narrows
it to what one preset trusts:

* no discovery, ever: the only OP endpoint is the preset's provider URL, and the library's
  discovery of the claimed identifier (a request to whatever host the response names) is
  replaced by a rule: the claimed identifier must be ``<provider URL>/users/<uid>``;
* every direct call (associate, ``check_authentication``) goes to that URL only, through
  ``requests`` with a timeout and a size cap, ignoring environment proxies;
* associations and single-use nonces live in the extension's store (:class:`OpenIDStoreAdapter`),
  so every worker shares them and nothing is written to files;
* Diffie-Hellman keys come from ``secrets`` (the library draws them from ``random``).

:func:`check_assertion` runs the preset's checks on the raw response, then the library's,
and :func:`identity_from_ax` maps the signed AX values onto the same
:class:`~flask_maestrano.sso.identity.Identity` as SAML.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import requests
from openid import fetchers
from openid.association import Association, SessionNegotiator
from openid.consumer.consumer import (
    SUCCESS,
    DiffieHellmanSHA1ConsumerSession,
    DiffieHellmanSHA256ConsumerSession,
    GenericConsumer,
    ProtocolError,
    _httpResponseToMessage,
)
from openid.consumer.discover import OPENID_2_0_TYPE, DiscoveryFailure, OpenIDServiceEndpoint
from openid.dh import DiffieHellman
from openid.extensions import ax
from openid.message import OPENID2_NS, Message
from openid.store.interface import OpenIDStore
from openid.store.nonce import split as split_nonce

from ..errors import SsoError
from ..presets import Preset
from ..store import Store
from .identity import Identity

log = logging.getLogger("flask_maestrano")

__all__ = [
    "AX_ATTRIBUTES",
    "OpenIDStoreAdapter",
    "RelyingParty",
    "check_assertion",
    "fetch_request",
    "identity_from_ax",
]

#: AX alias -> (type URI, the SAML attribute name it stands for) (PLATFORM.md 3 and 2.4)
AX_ATTRIBUTES: Mapping[str, tuple[str, str]] = {
    "u_guid": ("http://openid.net/schema/person/guid", "uid"),
    "u_vguid": ("http://openid.maestrano.com/schema/person/vguid", "virtual_uid"),
    "u_fname": ("http://openid.net/schema/namePerson/first", "name"),
    "u_lname": ("http://openid.net/schema/namePerson/last", "surname"),
    "u_email": ("http://openid.net/schema/contact/internet/email", "email"),
    "u_vemail": ("http://openid.maestrano.com/schema/contact/internet/vemail", "virtual_email"),
    "u_country": ("http://openid.net/schema/contact/country/home", "country"),
    "u_city": ("http://openid.net/schema/contact/city/home", "city"),
    "u_tz": ("http://openid.net/schema/timezone", "timezone"),
    "u_session_key": ("http://openid.maestrano.com/schema/session/key", "mno_session"),
    "u_session_exp": ("http://openid.maestrano.com/schema/session/expiration", "mno_session_recheck"),
    "g_guid": ("http://openid.maestrano.com/schema/company/guid", "group_uid"),
    "g_u_role": ("http://openid.maestrano.com/schema/company/role", "group_role"),
    "g_name": ("http://openid.net/schema/company/name", "group_name"),
    "g_email": ("http://openid.maestrano.com/schema/company/email", "group_email"),
    "g_country": ("http://openid.maestrano.com/schema/company/country", "group_country"),
    "g_city": ("http://openid.maestrano.com/schema/company/city", "group_city"),
    "g_tz": ("http://openid.maestrano.com/schema/company/timezone", "group_timezone"),
    "g_reseller_id": ("http://openid.maestrano.com/schema/company/reseller_id", "group_reseller_id"),
    "r_guid": ("http://openid.maestrano.com/schema/reseller/guid", "reseller_id"),
    "r_name": ("http://openid.maestrano.com/schema/reseller/name", "reseller_name"),
    "r_country": ("http://openid.maestrano.com/schema/reseller/country", "reseller_country"),
}
#: without these a login cannot be mapped or single logout cannot work
REQUIRED_AX = ("u_guid", "u_session_key", "u_session_exp", "g_guid")
#: largest answer read from the provider's direct calls (associate, check_authentication)
MAX_DIRECT_RESPONSE = 64 * 1024
_ASSOC = "openid:assoc:"
_LATEST = "openid:assoc-latest:"
_NONCE = "openid:nonce:"


def _url_key(server_url: str) -> str:
    return hashlib.sha256(server_url.encode()).hexdigest()[:32]


# -- state: associations and nonces in the extension's store --------------------------------


def _serialize(association: Association) -> str:
    raw = association.serialize()  # bytes in python3-openid 3.2
    return raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)


class OpenIDStoreAdapter(OpenIDStore):  # type: ignore[misc]
    """python3-openid's store interface on the extension's :class:`~flask_maestrano.store.Store`.

    Nonces are single-use through ``add`` (set-if-absent), so every worker sharing the store
    refuses a replay; a nonce whose time is more than ``max_age`` seconds away from now is
    refused outright. Associations need a read that does not delete: with a store that has no
    ``get`` (a custom store with only ``add``/``pop``), the relying party works statelessly
    and verifies every assertion with ``check_authentication``.
    """

    def __init__(self, store: Store, *, max_age: float, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.max_age = max_age
        self.clock = clock
        self._get = getattr(store, "get", None)

    @property
    def stateless(self) -> bool:
        """True when associations cannot be kept (the store has no ``get``)."""
        return not callable(self._get)

    def storeAssociation(self, server_url: str, association: Association) -> None:
        """Keep an association until it expires (and as the provider's latest)."""
        if self.stateless:
            return
        ttl = float(association.expiresIn)
        if ttl <= 0:
            return
        key = _url_key(server_url)
        self.store.pop(_ASSOC + f"{key}:{association.handle}")
        self.store.add(_ASSOC + f"{key}:{association.handle}", _serialize(association), ttl)
        self.store.pop(_LATEST + key)
        self.store.add(_LATEST + key, association.handle, ttl)

    def getAssociation(self, server_url: str, handle: str | None = None) -> Association | None:
        """The association ``handle`` (or the latest) with ``server_url``, if still valid."""
        if self.stateless:
            return None
        key = _url_key(server_url)
        if handle is None:
            handle = self._get(_LATEST + key)  # type: ignore[misc]
            if handle is None:
                return None
        raw = self._get(_ASSOC + f"{key}:{handle}")  # type: ignore[misc]
        if raw is None:
            return None
        try:
            association = Association.deserialize(raw)
        except ValueError:
            return None
        return association if association.expiresIn > 0 else None

    def removeAssociation(self, server_url: str, handle: str) -> bool:
        """Forget an association the provider invalidated."""
        return self.store.pop(_ASSOC + f"{_url_key(server_url)}:{handle}") is not None

    def useNonce(self, server_url: str, timestamp: int, salt: str) -> bool:
        """True the first time a fresh nonce is seen, in any worker sharing the store."""
        if abs(timestamp - self.clock()) > self.max_age:
            return False
        key = f"{_NONCE}{_url_key(server_url)}:{timestamp}:{salt}"
        return self.store.add(key, "1", 2 * self.max_age + 60)

    def cleanupNonces(self) -> int:
        """Nothing to do: the store expires nonces."""
        return 0

    def cleanupAssociations(self) -> int:
        """Nothing to do: the store expires associations."""
        return 0


# -- the consumer, narrowed to one provider -------------------------------------------------


class _SecretDiffieHellman(DiffieHellman):  # type: ignore[misc]
    """The library's Diffie-Hellman with a private key from ``secrets``, not ``random``."""

    def __init__(self, modulus: int, generator: int) -> None:
        self.modulus = int(modulus)
        self.generator = int(generator)
        self._setPrivate(secrets.randbelow(self.modulus - 2) + 1)


class _DhSha1(DiffieHellmanSHA1ConsumerSession):  # type: ignore[misc]
    def __init__(self, dh: DiffieHellman | None = None) -> None:
        super().__init__(dh or _SecretDiffieHellman.fromDefaults())


class _DhSha256(DiffieHellmanSHA256ConsumerSession):  # type: ignore[misc]
    def __init__(self, dh: DiffieHellman | None = None) -> None:
        super().__init__(dh or _SecretDiffieHellman.fromDefaults())


class _Consumer(GenericConsumer):  # type: ignore[misc]
    """python3-openid's consumer that talks to one provider URL and never discovers."""

    session_types = {"DH-SHA1": _DhSha1, "DH-SHA256": _DhSha256}

    def __init__(
        self, store: OpenIDStoreAdapter, provider_url: str, http: requests.Session, timeout: float
    ) -> None:
        super().__init__(store)
        self.provider_url = provider_url
        self.http = http
        self.timeout = timeout
        # the MAC key travels Diffie-Hellman encrypted, SHA-256 preferred
        self.negotiator = SessionNegotiator([("HMAC-SHA256", "DH-SHA256"), ("HMAC-SHA1", "DH-SHA1")])
        self._makeKVPost = self._post

    def _discover(self, *_args: Any) -> Any:
        raise DiscoveryFailure("discovery is disabled: the preset names its provider", None)

    def _getAssociation(self, endpoint: OpenIDServiceEndpoint) -> Association | None:
        if self.store.stateless:
            return None
        return super()._getAssociation(endpoint)

    def _post(self, message: Message, server_url: str) -> Message:
        if server_url != self.provider_url:
            raise fetchers.HTTPFetchingError(
                f"refusing a direct call to another server than {self.provider_url}"
            )
        try:
            with self.http.post(
                server_url,
                data=message.toURLEncoded(),
                headers={"Content-Type": "application/x-www-form-urlencoded"},
                timeout=self.timeout,
                allow_redirects=False,
                stream=True,
            ) as response:
                body = response.raw.read(MAX_DIRECT_RESPONSE + 1, decode_content=True)
                status = response.status_code
        except requests.RequestException as exc:
            raise fetchers.HTTPFetchingError(f"{type(exc).__name__} calling the OpenID provider") from None
        if len(body) > MAX_DIRECT_RESPONSE:
            raise fetchers.HTTPFetchingError("the OpenID provider's answer is too large")
        text = body.decode("utf-8", errors="replace")
        return _httpResponseToMessage(fetchers.HTTPResponse(server_url, status, {}, text), server_url)

    def _verifyDiscoveryResults(
        self, resp_msg: Message, endpoint: OpenIDServiceEndpoint | None = None
    ) -> OpenIDServiceEndpoint:
        """Instead of discovery: OpenID 2.0, this provider, a claimed id under it (no delegation)."""
        if not resp_msg.isOpenID2():
            raise ProtocolError("not an OpenID 2.0 response")
        claimed_id = resp_msg.getArg(OPENID2_NS, "claimed_id")
        if resp_msg.getArg(OPENID2_NS, "op_endpoint") != self.provider_url:
            raise ProtocolError("the response comes from another OpenID provider")
        if claimed_user(self.provider_url, claimed_id) is None:
            raise ProtocolError("the claimed identifier is not under the preset's provider")
        if resp_msg.getArg(OPENID2_NS, "identity") != claimed_id:
            raise ProtocolError("the identity differs from the claimed identifier")
        verified = OpenIDServiceEndpoint()
        verified.type_uris = [OPENID_2_0_TYPE]
        verified.server_url = self.provider_url
        verified.claimed_id = claimed_id
        verified.local_id = claimed_id
        return verified


def claimed_user(provider_url: str, claimed_id: str | None) -> str | None:
    """The user uid of ``<provider URL>/users/<uid>``, else ``None``.

    >>> claimed_user("https://m.example/api/openid/provider/app-1",
    ...              "https://m.example/api/openid/provider/app-1/users/usr-1")
    'usr-1'
    """
    prefix = provider_url + "/users/"
    if not claimed_id or not claimed_id.startswith(prefix):
        return None
    rest = claimed_id[len(prefix) :]
    if not rest or any(ch in rest for ch in "/?#\\"):
        return None
    uid = unquote(rest)
    return uid if uid and uid.isprintable() else None


@dataclass
class RelyingParty:
    """One preset's relying party: begin a login, check an answer.

    >>> rp = RelyingParty(preset, OpenIDStoreAdapter(store, max_age=300), session, 5.0)  # doctest: +SKIP
    """

    preset: Preset
    store: OpenIDStoreAdapter
    http: requests.Session
    timeout: float

    def _consumer(self) -> _Consumer:
        return _Consumer(self.store, self.preset.openid_provider_url, self.http, self.timeout)

    def redirect_url(self, return_to: str) -> str:
        """The provider URL with the checkid_setup request (identifier select, AX fetch).

        May associate with the provider first (one direct call, then shared by every worker).
        """
        endpoint = OpenIDServiceEndpoint.fromOPEndpointURL(self.preset.openid_provider_url)
        auth_request = self._consumer().begin(endpoint)
        # the library adds an OpenID 1 nonce to return_to; OpenID 2 has its own, and return_to
        # must stay exactly the configured URL (plus the pending login's token)
        auth_request.return_to_args.clear()
        auth_request.addExtension(fetch_request())
        url: str = auth_request.redirectURL(self.preset.audience, return_to)
        return url

    def complete(self, query: Mapping[str, str], return_to: str) -> Any:
        """python3-openid's verdict on ``query`` (checked by :func:`check_assertion` first)."""
        message = Message.fromPostArgs(dict(query))
        return self._consumer().complete(message, None, return_to)


def fetch_request() -> ax.FetchRequest:
    """The AX fetch of every attribute of PLATFORM.md 3."""
    request = ax.FetchRequest()
    for alias, (type_uri, _) in AX_ATTRIBUTES.items():
        request.add(ax.AttrInfo(type_uri, alias=alias, required=alias in REQUIRED_AX))
    return request


# -- the checks ------------------------------------------------------------------------------


def check_assertion(
    preset: Preset,
    query: Mapping[str, str],
    return_to: str,
    max_age: float,
    clock: Callable[[], float] = time.time,
) -> str:
    """The checks made on the raw answer before python3-openid's; the claimed user's uid.

    Raises :class:`~flask_maestrano.errors.SsoError` with a short reason. These read unsigned
    values only to refuse: the signature is checked afterwards.
    """
    mode = query.get("openid.mode")
    if mode == "cancel":
        raise SsoError("cancelled", "the provider says the login was cancelled")
    if mode == "error":
        raise SsoError(
            "provider_error", f"the provider answered an error: {query.get('openid.error', '')[:200]}"
        )
    if mode != "id_res":
        raise SsoError("malformed", "the request is not an OpenID positive assertion (openid.mode)")
    if query.get("openid.ns") != OPENID2_NS:
        raise SsoError("malformed", "the assertion is not OpenID 2.0 (openid.ns)")
    if not query.get("openid.sig") or not query.get("openid.signed"):
        raise SsoError("unsigned", "the assertion carries no signature")
    if query.get("openid.op_endpoint") != preset.openid_provider_url:
        raise SsoError("other_provider", "the assertion comes from another OpenID provider than the preset's")
    uid = claimed_user(preset.openid_provider_url, query.get("openid.claimed_id"))
    if uid is None:
        raise SsoError("claimed_id", "the claimed identifier is not under the preset's provider")
    if query.get("openid.return_to") != return_to:
        raise SsoError("return_to", "the assertion was issued for another return_to URL")
    try:
        stamp, _ = split_nonce(query.get("openid.response_nonce") or "")
    except ValueError:
        raise SsoError("malformed", "the assertion has no readable response_nonce") from None
    now = clock()
    if stamp < now - max_age:
        raise SsoError("expired", "the assertion is too old (response_nonce)")
    if stamp > now + max_age:
        raise SsoError("not_yet_valid", "the assertion is dated in the future (response_nonce)")
    return uid


_FAILURES = (
    ("nonce", "replay", "this assertion was already used"),
    ("signature", "invalid_signature", "the signature does not verify"),
    ("check_authentication", "invalid_signature", "the provider did not confirm the signature"),
    ("expired", "expired", "the association with the provider expired"),
    ("not signed", "unsigned", "a required field is not signed"),
    ("return_to", "return_to", "return_to does not match"),
)


def verdict(response: Any) -> None:
    """Raise :class:`SsoError` unless python3-openid's response is a success."""
    if response.status == SUCCESS:
        return
    text = str(getattr(response, "message", "") or response.status)
    lowered = text.lower()
    for needle, reason, message in _FAILURES:
        if needle in lowered:
            raise SsoError(reason, f"{message} ({text[:200]})")
    raise SsoError("invalid_response", f"the assertion was refused ({text[:200]})")


def identity_from_ax(response: Any, *, claimed_uid: str, preset: Preset) -> Identity:
    """Map the signed AX values of a successful response onto the SAML identity objects."""
    signed = response.getSignedNS(ax.AXMessage.ns_uri)
    if signed is None:
        raise SsoError("unsigned", "some Attribute Exchange values are not signed")
    if not signed:
        raise SsoError("missing_ax", "the assertion has no Attribute Exchange values")
    fetch = ax.FetchResponse()
    try:
        fetch.parseExtensionArgs(signed)
    except (ax.AXError, KeyError, ValueError) as exc:
        raise SsoError("missing_ax", f"the Attribute Exchange values are unreadable ({exc})") from None
    attributes: dict[str, list[str]] = {}
    for alias, (type_uri, name) in AX_ATTRIBUTES.items():
        values = [str(v) for v in fetch.data.get(type_uri, []) if str(v)]
        if values:
            attributes[name] = values
        elif alias in REQUIRED_AX:
            raise SsoError("missing_ax", f"the assertion has no {alias} ({type_uri}) AX value")
    return Identity.from_attributes(
        attributes, name_id=claimed_uid, preset=preset.name, creation_mode=preset.sso.creation_mode
    )
