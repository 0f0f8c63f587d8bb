"""python3-saml's strict Response validation, run without its per-call overheads.

:class:`StrictResponse` is a ``OneLogin_Saml2_Response`` whose :meth:`~StrictResponse.is_valid`
makes every check of python3-saml's own strict ``is_valid`` (1.16), in the same order, with
the same error codes and messages, and mostly through python3-saml's own helper methods
(``check_status``, ``validate_num_assertions``, ``process_signed_elements``,
``validate_timestamps``, ``get_audiences``, ``get_issuers``...). What changes is only how
much work each check costs:

* the protocol schema is compiled once per process (:mod:`.schema`), not on every call
  (python3-saml parses the four XSD files again each time: 40% of its time);
* XPath queries are compiled once per thread and their results kept for the life of the
  Response (the document does not change while it is validated): python3-saml runs about
  60 queries per Response, most of them the same "which assertion is signed" lookup;
* the IdP's certificates are loaded into xmlsec keys once per preset
  (:class:`VerificationKeys`), not parsed from PEM for every signature.

The signature check itself is python3-saml's: the same signature node found by the same
XPath, exactly one of them, IDs registered the same way, the same xmlsec context options,
each trusted certificate tried in turn. A preset trusted by fingerprint only (no
certificate) uses python3-saml's ``validate_sign`` unchanged.
"""

from __future__ import annotations

import importlib
import threading
from typing import Any

from lxml import etree
from onelogin.saml2.constants import OneLogin_Saml2_Constants
from onelogin.saml2.errors import OneLogin_Saml2_ValidationError
from onelogin.saml2.response import OneLogin_Saml2_Response
from onelogin.saml2.settings import OneLogin_Saml2_Settings
from onelogin.saml2.utils import OneLogin_Saml2_Utils

from . import schema

# xmlsec's bundled stubs lack KeyFormat and KeyData members
xmlsec: Any = importlib.import_module("xmlsec")

__all__ = ["StrictResponse", "VerificationKeys"]

_RESPONSE_TAG = f"{{{OneLogin_Saml2_Constants.NS_SAMLP}}}Response"
_ASSERTION_TAG = f"{{{OneLogin_Saml2_Constants.NS_SAML}}}Assertion"
_NSMAP = OneLogin_Saml2_Constants.NSMAP
_INVALID_SIGNATURE = "Signature validation failed. SAML Response rejected"
# compiled XPath expressions, one set per thread (an lxml XPath object serialises its callers)
_compiled = threading.local()


def _xpath(query: str) -> etree.XPath:
    cache: dict[str, etree.XPath] | None = getattr(_compiled, "queries", None)
    if cache is None:
        cache = _compiled.queries = {}
    compiled = cache.get(query)
    if compiled is None:
        compiled = cache[query] = etree.XPath(query, namespaces=_NSMAP)
    return compiled


class VerificationKeys:
    """The IdP certificates a preset trusts, loaded once as xmlsec keys.

    Mirrors python3-saml's choice: the ``x509certMulti`` signing certificates when there are
    any, else ``x509cert``; none when the preset trusts a fingerprint only.
    """

    def __init__(self, settings: OneLogin_Saml2_Settings) -> None:
        idp = settings.get_idp_data()
        multi = (idp.get("x509certMulti") or {}).get("signing") or []
        certificates = list(multi) if multi else [settings.get_idp_cert()]
        self.fingerprint_only = not any(certificates)
        self.keys = [
            xmlsec.Key.from_memory(cert, xmlsec.KeyFormat.CERT_PEM, None) for cert in certificates if cert
        ]

    def verify(self, document: etree._Element, xpath: str) -> bool:
        """Whether the one signature at ``xpath`` verifies with one of the keys."""
        nodes = _xpath(xpath)(document)
        if len(nodes) != 1:
            return False
        return any(_verifies(nodes[0], key) for key in self.keys)


def _verifies(signature: etree._Element, key: Any) -> bool:
    context = xmlsec.SignatureContext()
    context.key = key  # xmlsec duplicates the key: the cached one is never changed
    context.set_enabled_key_data([xmlsec.KeyData.X509])
    try:
        context.verify(signature)
    except Exception:  # as python3-saml: any failure of a key means "not this key"
        return False
    return True


class StrictResponse(OneLogin_Saml2_Response):  # type: ignore[misc]
    """A Response validated like python3-saml's strict mode, at a fraction of its cost."""

    #: the preset's trusted keys; set by the caller before :meth:`is_valid`
    verification_keys: VerificationKeys | None = None

    def __init__(self, settings: OneLogin_Saml2_Settings, response: str) -> None:
        self._memo: dict[tuple[str, str | None], list[Any]] = {}
        self._assertion_prefix: tuple[str, str | None] | None = None
        super().__init__(settings, response)

    # -- queries: compiled once, answered once per document -------------------------------

    def _query(self, query: str, tagid: str | None = None) -> list[Any]:
        key = (query, tagid)
        found = self._memo.get(key)
        if found is None:
            document = self.decrypted_document if self.encrypted else self.document
            compiled = _xpath(query)
            found = self._memo[key] = compiled(document) if tagid is None else compiled(document, tagid=tagid)
        return found

    def _query_assertion(self, xpath_expr: str) -> list[Any]:
        # python3-saml's rule for "the assertion": the one the assertion signature references,
        # else the one inside the signed Response, else the only one; worked out once
        if self._assertion_prefix is None:
            signature_expr = "/ds:Signature/ds:SignedInfo/ds:Reference"
            references = self._query("/samlp:Response/saml:Assertion" + signature_expr)
            if references:
                prefix = "/samlp:Response/saml:Assertion[@ID=$tagid]"
                tagid: str | None = references[0].get("URI")[1:]
            else:
                message_references = self._query("/samlp:Response" + signature_expr)
                if message_references:
                    prefix = "/samlp:Response[@ID=$tagid]//saml:Assertion"
                    tagid = message_references[0].get("URI")[1:]
                else:
                    prefix, tagid = "/samlp:Response/saml:Assertion", None
            self._assertion_prefix = (prefix, tagid)
        prefix, tagid = self._assertion_prefix
        return self._query(prefix + xpath_expr, tagid)

    # -- validation ---------------------------------------------------------------------

    def is_valid(
        self, request_data: dict[str, Any], request_id: str | None = None, raise_exceptions: bool = False
    ) -> bool:
        """python3-saml's strict ``is_valid``, check for check (see the module docstring)."""
        if not self._settings.is_strict() or self.encrypted or self.verification_keys is None:
            # not a configuration of this extension: python3-saml's own code path
            return bool(super().is_valid(request_data, request_id, raise_exceptions))
        self._error = None
        try:
            self._check(request_data, request_id, self.verification_keys)
            return True
        except Exception as err:
            self._error = str(err)
            if raise_exceptions:
                raise
            return False

    def _check(self, request_data: dict[str, Any], request_id: str | None, keys: VerificationKeys) -> None:
        error = OneLogin_Saml2_ValidationError
        document = self.document
        if document.get("Version", None) != "2.0":
            raise error("Unsupported SAML version", error.UNSUPPORTED_SAML_VERSION)
        if document.get("ID", None) is None:
            raise error("Missing ID attribute on SAML Response", error.MISSING_ID)
        self.check_status()
        if not self.validate_num_assertions():
            raise error("SAML Response must contain 1 assertion", error.WRONG_NUMBER_OF_ASSERTIONS)

        idp_data = self._settings.get_idp_data()
        idp_entity_id = idp_data["entityId"]
        sp_entity_id = self._settings.get_sp_data()["entityId"]
        signed_elements = self.process_signed_elements()
        has_signed_response = _RESPONSE_TAG in signed_elements
        has_signed_assertion = _ASSERTION_TAG in signed_elements

        if not schema.validate(document):
            raise error(
                "Invalid SAML Response. Not match the saml-schema-protocol-2.0.xsd", error.INVALID_XML_FORMAT
            )
        security = self._settings.get_security_data()
        current_url = OneLogin_Saml2_Utils.get_self_url_no_query(request_data)

        in_response_to = self.get_in_response_to()
        if in_response_to is not None and request_id is not None and in_response_to != request_id:
            raise error(
                f"The InResponseTo of the Response: {in_response_to}, does not match the ID of the "
                f"AuthNRequest sent by the SP: {request_id}",
                error.WRONG_INRESPONSETO,
            )
        if security["wantAssertionsEncrypted"]:
            raise error(
                "The assertion of the Response is not encrypted and the SP require it",
                error.NO_ENCRYPTED_ASSERTION,
            )
        encrypted_name_ids = "/saml:Subject/saml:EncryptedID/xenc:EncryptedData"
        if security["wantNameIdEncrypted"] and len(self._query_assertion(encrypted_name_ids)) != 1:
            raise error(
                "The NameID of the Response is not encrypted and the SP require it",
                error.NO_ENCRYPTED_NAMEID,
            )
        if not self.check_one_condition():
            raise error("The Assertion must include a Conditions element", error.MISSING_CONDITIONS)
        self.validate_timestamps(raise_exceptions=True)
        if not self.check_one_authnstatement():
            raise error(
                "The Assertion must include an AuthnStatement element", error.WRONG_NUMBER_OF_AUTHSTATEMENTS
            )
        requested = security["requestedAuthnContext"]
        if security["failOnAuthnContextMismatch"] and requested and requested is not True:
            unmatched = set(self.get_authn_contexts()).difference(requested)
            if unmatched:
                raise error(
                    f'The AuthnContext "{", ".join(unmatched)}" was not a requested context '
                    f'"{", ".join(requested)}"',
                    error.AUTHN_CONTEXT_MISMATCH,
                )
        if security.get("wantAttributeStatement", True) and not self._query_assertion(
            "/saml:AttributeStatement"
        ):
            raise error("There is no AttributeStatement on the Response", error.NO_ATTRIBUTESTATEMENT)
        if self._query_assertion("/saml:AttributeStatement/saml:EncryptedAttribute"):
            raise error(
                "There is an EncryptedAttribute in the Response and this SP not support them",
                error.ENCRYPTED_ATTRIBUTES,
            )

        destination = document.get("Destination", None)
        if destination:
            normalize = OneLogin_Saml2_Utils.normalize_url
            if not normalize(url=destination).startswith(normalize(url=current_url)):
                raise error(
                    f"The response was received at {current_url} instead of {destination}",
                    error.WRONG_DESTINATION,
                )
        elif destination == "":
            raise error("The response has an empty Destination value", error.EMPTY_DESTINATION)
        audiences = self.get_audiences()
        if audiences and sp_entity_id not in audiences:
            raise error(f"{sp_entity_id} is not a valid audience for this Response", error.WRONG_AUDIENCE)
        for issuer in self.get_issuers():
            if issuer is None or issuer != idp_entity_id:
                raise error(
                    f"Invalid issuer in the Assertion/Response (expected {idp_entity_id}, got {issuer})",
                    error.WRONG_ISSUER,
                )
        session_expiration = self.get_session_not_on_or_after()
        if session_expiration and session_expiration <= OneLogin_Saml2_Utils.now():
            raise error(
                "The attributes have expired, based on the SessionNotOnOrAfter of the "
                "AttributeStatement of this Response",
                error.SESSION_EXPIRED,
            )
        if not self._subject_confirmed(in_response_to, current_url):
            raise error(
                "A valid SubjectConfirmation was not found on this Response", error.WRONG_SUBJECTCONFIRMATION
            )
        if security["wantAssertionsSigned"] and not has_signed_assertion:
            raise error(
                "The Assertion of the Response is not signed and the SP require it", error.NO_SIGNED_ASSERTION
            )
        if security["wantMessagesSigned"] and not has_signed_response:
            raise error(
                "The Message of the Response is not signed and the SP require it", error.NO_SIGNED_MESSAGE
            )

        if not signed_elements or (not has_signed_response and not has_signed_assertion):
            raise error("No Signature found. SAML Response rejected", error.NO_SIGNATURE_FOUND)
        self._verify_signatures(keys, idp_data, has_signed_response, has_signed_assertion)

    def _subject_confirmed(self, in_response_to: str | None, current_url: str) -> bool:
        """At least one bearer SubjectConfirmation is valid (python3-saml's loop)."""
        now = OneLogin_Saml2_Utils.now()
        parse = OneLogin_Saml2_Utils.parse_SAML_to_time
        for node in self._query_assertion("/saml:Subject/saml:SubjectConfirmation"):
            method = node.get("Method", None)
            if method and method != OneLogin_Saml2_Constants.CM_BEARER:
                continue
            data = node.find("saml:SubjectConfirmationData", namespaces=_NSMAP)
            if data is None:
                continue
            irt = data.get("InResponseTo", None)
            if in_response_to and irt and irt != in_response_to:
                continue
            recipient = data.get("Recipient", None)
            if recipient and current_url not in recipient:
                continue
            not_on_or_after = data.get("NotOnOrAfter", None)
            if not_on_or_after and parse(not_on_or_after) <= now:
                continue
            not_before = data.get("NotBefore", None)
            if not_before and parse(not_before) > now:
                continue
            if not_on_or_after:
                self.valid_scd_not_on_or_after = parse(not_on_or_after)
            return True
        return False

    def _verify_signatures(
        self, keys: VerificationKeys, idp_data: dict[str, Any], signed_response: bool, signed_assertion: bool
    ) -> None:
        xpaths = []
        if signed_response:
            xpaths.append(OneLogin_Saml2_Utils.RESPONSE_SIGNATURE_XPATH)
        if signed_assertion:
            xpaths.append(OneLogin_Saml2_Utils.ASSERTION_SIGNATURE_XPATH)
        if keys.fingerprint_only:
            fingerprint = idp_data.get("certFingerprint")
            if fingerprint:
                fingerprint = OneLogin_Saml2_Utils.format_finger_print(fingerprint)
            algorithm = idp_data.get("certFingerprintAlgorithm")
            for xpath in xpaths:
                if not OneLogin_Saml2_Utils.validate_sign(
                    self.document, None, fingerprint, algorithm, xpath=xpath, raise_exceptions=False
                ):
                    raise OneLogin_Saml2_ValidationError(
                        _INVALID_SIGNATURE, OneLogin_Saml2_ValidationError.INVALID_SIGNATURE
                    )
            return
        xmlsec.tree.add_ids(self.document, ["ID"])
        for xpath in xpaths:
            if not keys.verify(self.document, xpath):
                raise OneLogin_Saml2_ValidationError(
                    _INVALID_SIGNATURE, OneLogin_Saml2_ValidationError.INVALID_SIGNATURE
                )
