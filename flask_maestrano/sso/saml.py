"""SAML on python3-saml: per-preset settings, the AuthnRequest, and response validation.

python3-saml (strict mode, signed assertion required, the preset's certificates trusted)
does the cryptography and most checks; :func:`validate_response` adds what it leaves out
(SECURITY.md): exact and present Destination, Recipient and Audience, an Issuer under the
preset's IdP, the signed InResponseTo agreeing with the Response's, and errors instead of
exceptions for malformed input. Signatures of an unexpected shape are refused before
python3-saml and xmlsec see them (:mod:`flask_maestrano.sso.dsig`). Matching InResponseTo
to a pending request and the replay cache need server-side state and live in
:mod:`flask_maestrano.sso.views`.

Nothing here reads the HTTP request: the ACS URL comes from the preset (SECURITY.md 8).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from lxml import etree
from onelogin.saml2.authn_request import OneLogin_Saml2_Authn_Request
from onelogin.saml2.constants import OneLogin_Saml2_Constants
from onelogin.saml2.errors import OneLogin_Saml2_ValidationError
from onelogin.saml2.settings import OneLogin_Saml2_Settings

from ..errors import SsoError
from ..perpreset import PerPreset
from ..presets import Preset
from .dsig import check_signatures
from .identity import Identity, parse_time
from .validation import StrictResponse, VerificationKeys

log = logging.getLogger("flask_maestrano")

__all__ = ["AuthnRequest", "ValidatedResponse", "authn_request", "parse_response", "validate_response"]

NS = {"samlp": OneLogin_Saml2_Constants.NS_SAMLP, "saml": OneLogin_Saml2_Constants.NS_SAML}
REDIRECT = OneLogin_Saml2_Constants.BINDING_HTTP_REDIRECT
POST = OneLogin_Saml2_Constants.BINDING_HTTP_POST

# python3-saml validation error code -> our short reason
_REASONS = {
    OneLogin_Saml2_ValidationError.INVALID_SIGNATURE: "invalid_signature",
    OneLogin_Saml2_ValidationError.NO_SIGNATURE_FOUND: "unsigned",
    OneLogin_Saml2_ValidationError.NO_SIGNED_ASSERTION: "unsigned_assertion",
    OneLogin_Saml2_ValidationError.WRONG_NUMBER_OF_ASSERTIONS: "assertion_count",
    OneLogin_Saml2_ValidationError.WRONG_NUMBER_OF_SIGNATURES: "signature_count",
    OneLogin_Saml2_ValidationError.WRONG_NUMBER_OF_SIGNATURES_IN_RESPONSE: "signature_count",
    OneLogin_Saml2_ValidationError.WRONG_NUMBER_OF_SIGNATURES_IN_ASSERTION: "signature_count",
    OneLogin_Saml2_ValidationError.WRONG_SIGNED_ELEMENT: "invalid_signature",
    OneLogin_Saml2_ValidationError.ID_NOT_FOUND_IN_SIGNED_ELEMENT: "invalid_signature",
    OneLogin_Saml2_ValidationError.DUPLICATED_ID_IN_SIGNED_ELEMENTS: "invalid_signature",
    OneLogin_Saml2_ValidationError.DUPLICATED_REFERENCE_IN_SIGNED_ELEMENTS: "invalid_signature",
    OneLogin_Saml2_ValidationError.INVALID_SIGNED_ELEMENT: "invalid_signature",
    OneLogin_Saml2_ValidationError.ASSERTION_EXPIRED: "expired",
    OneLogin_Saml2_ValidationError.ASSERTION_TOO_EARLY: "not_yet_valid",
    OneLogin_Saml2_ValidationError.WRONG_AUDIENCE: "audience",
    OneLogin_Saml2_ValidationError.WRONG_DESTINATION: "destination",
    OneLogin_Saml2_ValidationError.EMPTY_DESTINATION: "destination",
    OneLogin_Saml2_ValidationError.WRONG_ISSUER: "issuer",
    OneLogin_Saml2_ValidationError.WRONG_INRESPONSETO: "in_response_to",
    OneLogin_Saml2_ValidationError.WRONG_SUBJECTCONFIRMATION: "subject_confirmation",
    OneLogin_Saml2_ValidationError.INVALID_XML_FORMAT: "schema",
    OneLogin_Saml2_ValidationError.STATUS_CODE_IS_NOT_SUCCESS: "status",
    OneLogin_Saml2_ValidationError.SESSION_EXPIRED: "expired",
}


def _idp_data(preset: Preset, entity_id: str) -> dict[str, Any]:
    idp: dict[str, Any] = {
        "entityId": entity_id,
        "singleSignOnService": {"url": preset.idp_url, "binding": REDIRECT},
    }
    certificates = list(preset.sso.x509_certificates)
    if len(certificates) > 1:
        idp["x509certMulti"] = {"signing": certificates}
    elif certificates:
        idp["x509cert"] = certificates[0]
    elif preset.sso.x509_fingerprint:
        idp["certFingerprint"] = preset.sso.x509_fingerprint
        idp["certFingerprintAlgorithm"] = "sha1"
    return idp


def _settings(preset: Preset, sp_entity_id: str) -> OneLogin_Saml2_Settings:
    data = {
        "strict": True,
        "debug": False,
        "sp": {
            "entityId": sp_entity_id,
            "assertionConsumerService": {"url": preset.consume_url, "binding": POST},
            "NameIDFormat": preset.sso.name_id_format,
        },
        "idp": _idp_data(preset, _IDP_ENTITY),
        "security": {
            "authnRequestsSigned": False,
            "wantAssertionsSigned": True,
            "wantMessagesSigned": False,
            "wantAttributeStatement": True,
            "wantNameId": True,
            "requestedAuthnContext": False,
            "allowRepeatAttributeName": False,
            # the platform signs with RSA-SHA1 in older deployments; the key is what we pin
            "rejectDeprecatedAlgorithm": False,
        },
    }
    return OneLogin_Saml2_Settings(data, sp_validation_only=True)


# python3-saml compares the Issuer for equality; the platform's Issuer is its own URL with a
# query (PLATFORM.md 2.4), so issuers are checked by prefix and this placeholder stands in.
_IDP_ENTITY = "urn:flask-maestrano:idp"


class _Settings:
    """The two python3-saml settings of a preset: one to issue requests, one to validate."""

    def __init__(self, preset: Preset) -> None:
        # The IdP finds the app by the request's Issuer = api.id (PLATFORM.md 2.3) ...
        self.request = _settings(preset, preset.api.id)
        # ... and puts scheme://host:port/ of the ACS in the Audience (PLATFORM.md 2.4).
        self.validation = _settings(preset, preset.audience)
        # the IdP certificates as xmlsec keys, loaded once (validation.py)
        self.keys = VerificationKeys(self.validation)


class SamlCache:
    """Per preset, python3-saml's two settings and its view of the ACS URL, each built once
    (one per app, made by ``init_app``)."""

    def __init__(self) -> None:
        self.settings: PerPreset[Preset, _Settings] = PerPreset(_Settings)
        self.request_data: PerPreset[Preset, dict[str, Any]] = PerPreset(
            lambda preset: _request_data(preset.consume_url)
        )


def settings_for(cache: SamlCache, preset: Preset) -> _Settings:
    """The preset's settings, built once and kept in the app's :class:`SamlCache`."""
    return cache.settings.get(preset)


@dataclass(frozen=True)
class AuthnRequest:
    """An AuthnRequest ready for the HTTP-Redirect binding."""

    id: str
    #: raw DEFLATE + base64, the ``SAMLRequest`` query value
    encoded: str
    xml: str


def authn_request(cache: SamlCache, preset: Preset) -> AuthnRequest:
    """Build the AuthnRequest the platform expects (``saml:Issuer`` = ``api.id``)."""
    request = OneLogin_Saml2_Authn_Request(settings_for(cache, preset).request)
    return AuthnRequest(id=request.get_id(), encoded=request.get_request(deflate=True), xml=request.get_xml())


# -- responses ----------------------------------------------------------------------------


class _Response(StrictResponse):
    """python3-saml's response (strict checks made cheaply, see :mod:`.validation`) with a
    prefix Issuer check against the preset's IdP."""

    idp_prefix = ""

    def get_issuers(self) -> list[str]:
        issuers: list[str] = super().get_issuers()
        return [_IDP_ENTITY if _issuer_ok(issuer, self.idp_prefix) else issuer for issuer in issuers]


def _issuer_ok(issuer: str | None, idp: str) -> bool:
    if not issuer:
        return False
    base = idp.rstrip("/")
    return issuer == base or issuer.startswith((base + "/", base + "?"))


def parse_response(cache: SamlCache, preset: Preset, saml_response: str) -> _Response:
    """Decode and parse a ``SAMLResponse`` value; raises
    :class:`~flask_maestrano.errors.SsoError` with reason ``malformed``.

    Raises before any validation: bad base64, XML that is not well formed, a DTD (entity
    expansion, XXE), a document that is not a ``samlp:Response``, or (reason
    ``unsupported_signature``) a ds:Signature that xmlsec must not be given
    (:func:`~flask_maestrano.sso.dsig.check_signatures`).
    """
    compact = "".join(saml_response.split())
    try:
        base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise SsoError("malformed", "SAMLResponse is not valid base64") from None
    settings = settings_for(cache, preset)
    try:
        response = _Response(settings.validation, compact)
    except etree.XMLSyntaxError:
        raise SsoError("malformed", "SAMLResponse is not well-formed XML") from None
    except Exception as exc:  # python3-saml raises bare exceptions for DTDs and entities
        name = type(exc).__name__
        if "DTD" in name or "Entities" in name or "DTD" in str(exc):
            raise SsoError("malformed", "SAMLResponse contains a DTD, which is not allowed") from None
        raise SsoError("malformed", f"SAMLResponse could not be parsed ({name})") from None
    root = response.document
    if root is None or root.tag != f"{{{NS['samlp']}}}Response":
        raise SsoError("malformed", "SAMLResponse is not a SAML 2.0 Response")
    check_signatures(root)
    response.idp_prefix = preset.sso.idp
    response.verification_keys = settings.keys
    return response


@dataclass(frozen=True)
class ValidatedResponse:
    """What a response that passed every check says."""

    identity: Identity
    assertion_id: str
    #: the request answered: the Response's and the signed assertion's InResponseTo (which agree)
    in_response_to: str | None
    #: when the assertion stops being acceptable (for the replay cache's ttl)
    expires_at: dt.datetime
    #: the signed assertion's IssueInstant (checked against the store's epoch), aware UTC
    issued_at: dt.datetime | None = None


_CONFIRMATION_DATA = "saml:Subject/saml:SubjectConfirmation/saml:SubjectConfirmationData"


def in_response_to(response: _Response) -> str | None:
    """The InResponseTo to look the pending request up by: the Response's, else the one
    every ``SubjectConfirmationData`` of the assertion names (unvalidated: use only to look
    up request state; :func:`validate_response` reads the signed one)."""
    value = response.document.get("InResponseTo")
    if value:
        return str(value)
    values = {
        node.get("InResponseTo")
        for node in response.document.iterfind(f"saml:Assertion/{_CONFIRMATION_DATA}", namespaces=NS)
        if node.get("InResponseTo")
    }
    return str(values.pop()) if len(values) == 1 else None


def _signed_in_response_to(assertion: Any, response: _Response) -> str | None:
    """The InResponseTo the signed assertion and the Response agree on (SECURITY.md 3).

    The assertion's (in its subject confirmations) is signed; the Response's is signed only
    when the Response is. Deleting the Response's must not turn an answer to another
    request (of another preset, or already consumed) into an unsolicited login.
    """
    values = {
        str(node.get("InResponseTo"))
        for node in assertion.iterfind(_CONFIRMATION_DATA, namespaces=NS)
        if node.get("InResponseTo")
    }
    outer = response.document.get("InResponseTo")
    if outer:
        values.add(str(outer))
    if len(values) > 1:
        raise SsoError("in_response_to", "the Response's and the signed assertion's InResponseTo disagree")
    return values.pop() if values else None


def _values(nodes: list[Any]) -> list[str]:
    return [(node.text or "").strip() if hasattr(node, "text") else str(node) for node in nodes]


def _signed_assertion(response: _Response) -> Any:
    # python3-saml's query for "the assertion the signature covers", run once: each
    # _query_assertion call compiles two XPath queries, and the checks below need five
    nodes = response._query_assertion("")
    if len(nodes) != 1:
        raise SsoError("invalid_assertion", "expected exactly one signed assertion")
    return nodes[0]


def _exact_checks(assertion: Any, response: _Response, preset: Preset) -> None:
    destination = response.document.get("Destination")
    if destination != preset.consume_url:
        what = "has no Destination" if destination is None else "was sent to another Destination"
        raise SsoError("destination", f"the response {what} (expected the preset's consume URL)")
    confirmations = assertion.findall(_CONFIRMATION_DATA, namespaces=NS)
    recipients = [node.get("Recipient") for node in confirmations]
    if not recipients or any(recipient != preset.consume_url for recipient in recipients):
        what = "has no Recipient" if not any(recipients) else "names another Recipient"
        raise SsoError("recipient", f"the subject confirmation {what} (expected the consume URL)")
    restrictions = assertion.findall("saml:Conditions/saml:AudienceRestriction", namespaces=NS)
    if not restrictions:
        raise SsoError("audience", "the assertion has no Audience")
    for restriction in restrictions:
        audiences = _values(restriction.findall("saml:Audience", namespaces=NS))
        if preset.audience not in audiences:
            raise SsoError("audience", "the assertion is for another Audience")
    issuers = assertion.findall("saml:Issuer", namespaces=NS)
    if len(issuers) != 1 or not _issuer_ok((issuers[0].text or "").strip(), preset.sso.idp):
        raise SsoError("issuer", "the assertion's Issuer is not the preset's IdP")


def _expiry(assertion: Any) -> dt.datetime:
    times = []
    for path in ("saml:Conditions", _CONFIRMATION_DATA):
        for node in assertion.findall(path, namespaces=NS):
            value = node.get("NotOnOrAfter")
            if value:
                try:
                    times.append(parse_time(value))
                except ValueError:
                    raise SsoError("malformed", "the assertion has an unreadable NotOnOrAfter") from None
    return max(times) if times else dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)


def _issued(assertion: Any) -> dt.datetime:
    """The assertion's IssueInstant (the schema requires it)."""
    try:
        return parse_time(str(assertion.get("IssueInstant") or ""))
    except ValueError:
        raise SsoError("malformed", "the assertion has an unreadable IssueInstant") from None


def validate_response(
    cache: SamlCache, preset: Preset, response: _Response, request_id: str | None
) -> ValidatedResponse:
    """Run python3-saml's strict validation, then the exact checks; read the identity last.

    ``request_id`` is the ID of the AuthnRequest this response answers, when known;
    the caller still requires InResponseTo itself (python3-saml accepts a missing one).
    The result's ``in_response_to`` is the value the Response and the signed assertion's
    confirmations agree on (refused with ``in_response_to`` when they differ).
    """
    request_data = cache.request_data.get(preset)
    try:
        response.is_valid(request_data, request_id=request_id, raise_exceptions=True)
    except OneLogin_Saml2_ValidationError as exc:
        raise SsoError(_reason_from(str(exc), exc.code), str(exc)) from None
    except Exception as exc:  # xmlsec and lxml errors on hostile documents
        raise SsoError(_reason_from(str(exc), None), f"the response could not be validated ({exc})") from None
    assertion = _signed_assertion(response)
    _exact_checks(assertion, response, preset)
    try:
        attributes = response.get_attributes()
        name_id = response.get_nameid()
    except OneLogin_Saml2_ValidationError as exc:
        reason = "duplicate_attribute" if "duplicated" in str(exc) else "invalid_attribute"
        raise SsoError(reason, str(exc)) from None
    assertion_id = assertion.get("ID")  # the signed one; is_valid allowed exactly one
    if not assertion_id:
        raise SsoError("malformed", "the assertion has no ID")
    identity = Identity.from_attributes(
        attributes, name_id=name_id, preset=preset.name, creation_mode=preset.sso.creation_mode
    )
    irt = _signed_in_response_to(assertion, response)
    return ValidatedResponse(identity, str(assertion_id), irt, _expiry(assertion), _issued(assertion))


def _reason_from(error: str, code: int | None) -> str:
    if code is not None and code in _REASONS:
        return _REASONS[code]
    lowered = error.lower()
    for needle, reason in (
        ("signature", "invalid_signature"),
        ("expired", "expired"),
        ("not valid yet", "not_yet_valid"),
        ("audience", "audience"),
        ("issuer", "issuer"),
        ("inresponseto", "in_response_to"),
        ("subjectconfirmation", "subject_confirmation"),
        ("destination", "destination"),
        ("assertion", "invalid_assertion"),
        ("saml-schema", "schema"),
    ):
        if needle in lowered:
            return reason
    return "invalid_response"


def _request_data(consume_url: str) -> dict[str, Any]:
    """python3-saml's view of "the current URL", built from configuration, not from headers."""
    parts = urlsplit(consume_url)
    return {
        "https": "on" if parts.scheme == "https" else "off",
        "http_host": parts.netloc,
        "script_name": parts.path,
        "get_data": {},
        "post_data": {},
    }
