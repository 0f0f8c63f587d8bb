"""The identity-provider side of Maestrano single sign-on: keys and signed SAML responses.

Used by the sandbox IdP and by tests (:mod:`flask_maestrano.testing`). The response has the
shape the platform's IdP produces (PLATFORM.md 2.4): a ``samlp:Response`` with an
``Issuer``, a success ``Status`` and one ``Assertion`` (default SAML assertion namespace)
carrying the NameID, a bearer ``SubjectConfirmationData`` (InResponseTo, NotOnOrAfter,
Recipient), ``Conditions`` with the ``Audience``, an ``AttributeStatement`` and an
``AuthnStatement``. The assertion is signed (enveloped, exclusive c14n, RSA-SHA256, the
certificate in ``KeyInfo``); the Response may be signed too.

>>> key_pem, cert_pem = generate_keypair("test-idp")
>>> xml = build_response(key_pem=key_pem, cert_pem=cert_pem, issuer="https://idp.example",
...     destination="https://app.example/maestrano/auth/saml/consume",
...     recipient="https://app.example/maestrano/auth/saml/consume",
...     audience="https://app.example/", in_response_to="ONELOGIN_1",
...     name_id="usr-1", attributes={"mno_uid": "usr-1"})
>>> saml_response = encode(xml)
"""

from __future__ import annotations

import base64
import datetime as dt
import importlib
import uuid
from collections.abc import Mapping
from typing import Any

from lxml import etree

from .isotime import format_time

__all__ = ["ASSERTION_NS", "PROTOCOL_NS", "build_response", "encode", "generate_keypair", "sign_element"]

#: the SAML 2.0 protocol namespace (``samlp:``)
PROTOCOL_NS = "urn:oasis:names:tc:SAML:2.0:protocol"
#: the SAML 2.0 assertion namespace (``saml:``)
ASSERTION_NS = "urn:oasis:names:tc:SAML:2.0:assertion"
NAMEID_PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
BEARER = "urn:oasis:names:tc:SAML:2.0:cm:bearer"
STATUS_SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"
CONSENT_UNSPECIFIED = "urn:oasis:names:tc:SAML:2.0:consent:unspecified"
AUTHN_CONTEXT = "urn:federation:authentication:windows"


def generate_keypair(common_name: str, *, days: int = 3650) -> tuple[str, str]:
    """A fresh RSA 2048 key and a self-signed certificate, both PEM text.

    >>> key_pem, cert_pem = generate_keypair("sandbox-idp")
    >>> cert_pem.startswith("-----BEGIN CERTIFICATE-----")
    True
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    return key_pem, cert.public_bytes(serialization.Encoding.PEM).decode()


def _new_id() -> str:
    return f"_{uuid.uuid4()}"


def sign_element(element: etree._Element, key_pem: str, cert_pem: str) -> None:
    """Add an enveloped signature to ``element`` (an Assertion or a Response) in place.

    The ``ds:Signature`` goes right after the element's ``Issuer``, as SAML requires.
    """
    # xmlsec's bundled stubs lack Transform and KeyFormat members
    xmlsec: Any = importlib.import_module("xmlsec")
    issuer = element.find(f"{{{ASSERTION_NS}}}Issuer")
    signature = xmlsec.template.create(
        element, xmlsec.Transform.EXCL_C14N, xmlsec.Transform.RSA_SHA256, ns="ds"
    )
    if issuer is not None:
        issuer.addnext(signature)
    else:
        element.insert(0, signature)
    reference = xmlsec.template.add_reference(
        signature, xmlsec.Transform.SHA256, uri="#" + element.get("ID", "")
    )
    xmlsec.template.add_transform(reference, xmlsec.Transform.ENVELOPED)
    xmlsec.template.add_transform(reference, xmlsec.Transform.EXCL_C14N)
    key_info = xmlsec.template.ensure_key_info(signature)
    x509_data = xmlsec.template.add_x509_data(key_info)
    xmlsec.template.x509_data_add_certificate(x509_data)
    key = xmlsec.Key.from_memory(key_pem.encode(), xmlsec.KeyFormat.PEM)
    key.load_cert_from_memory(cert_pem.encode(), xmlsec.KeyFormat.PEM)
    context = xmlsec.SignatureContext()
    context.key = key
    context.register_id(element, "ID")
    context.sign(signature)


def _sub(parent: etree._Element, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
    element = etree.SubElement(parent, f"{{{ASSERTION_NS}}}{tag}", attrs)
    if text is not None:
        element.text = text
    return element


def build_response(
    *,
    key_pem: str,
    cert_pem: str,
    issuer: str,
    destination: str,
    recipient: str,
    audience: str,
    in_response_to: str | None,
    name_id: str,
    attributes: Mapping[str, str],
    session_index: str | None = None,
    not_before: dt.datetime | None = None,
    not_on_or_after: dt.datetime | None = None,
    subject_not_on_or_after: dt.datetime | None = None,
    sign_assertion: bool = True,
    sign_response: bool = False,
    assertion_id: str | None = None,
    response_id: str | None = None,
) -> str:
    """A SAML Response as the platform's IdP sends it, signed with ``key_pem``.

    Timestamps default to the platform's: NotBefore now - 5 s, NotOnOrAfter now + 1 h,
    the bearer confirmation's NotOnOrAfter now + 3 min. ``in_response_to=None`` leaves
    the InResponseTo attributes out (an IdP-initiated response).
    """
    now = dt.datetime.now(dt.timezone.utc)
    not_before = not_before or now - dt.timedelta(seconds=5)
    not_on_or_after = not_on_or_after or now + dt.timedelta(hours=1)
    subject_not_on_or_after = subject_not_on_or_after or now + dt.timedelta(minutes=3)
    assertion_id = assertion_id or _new_id()
    irt = {"InResponseTo": in_response_to} if in_response_to else {}

    response = etree.Element(
        f"{{{PROTOCOL_NS}}}Response",
        {
            "ID": response_id or _new_id(),
            "Version": "2.0",
            "IssueInstant": format_time(now),
            "Destination": destination,
            "Consent": CONSENT_UNSPECIFIED,
            **irt,
        },
        nsmap={"samlp": PROTOCOL_NS},
    )
    etree.SubElement(response, f"{{{ASSERTION_NS}}}Issuer", nsmap={None: ASSERTION_NS}).text = issuer
    status = etree.SubElement(response, f"{{{PROTOCOL_NS}}}Status")
    etree.SubElement(status, f"{{{PROTOCOL_NS}}}StatusCode", Value=STATUS_SUCCESS)

    assertion = etree.SubElement(
        response,
        f"{{{ASSERTION_NS}}}Assertion",
        {"ID": assertion_id, "IssueInstant": format_time(now), "Version": "2.0"},
        nsmap={None: ASSERTION_NS},
    )
    _sub(assertion, "Issuer", issuer)
    subject = _sub(assertion, "Subject")
    _sub(subject, "NameID", name_id, Format=NAMEID_PERSISTENT)
    confirmation = _sub(subject, "SubjectConfirmation", Method=BEARER)
    _sub(
        confirmation,
        "SubjectConfirmationData",
        **irt,
        NotOnOrAfter=format_time(subject_not_on_or_after),
        Recipient=recipient,
    )
    conditions = _sub(
        assertion, "Conditions", NotBefore=format_time(not_before), NotOnOrAfter=format_time(not_on_or_after)
    )
    _sub(_sub(conditions, "AudienceRestriction"), "Audience", audience)
    authn = _sub(
        assertion, "AuthnStatement", AuthnInstant=format_time(now), SessionIndex=session_index or assertion_id
    )
    _sub(_sub(authn, "AuthnContext"), "AuthnContextClassRef", AUTHN_CONTEXT)
    statement = _sub(assertion, "AttributeStatement")
    for name, value in attributes.items():
        _sub(_sub(statement, "Attribute", Name=name), "AttributeValue", value)

    if sign_assertion:
        sign_element(assertion, key_pem, cert_pem)
    if sign_response:
        sign_element(response, key_pem, cert_pem)
    return str(etree.tostring(response, encoding="unicode"))


def encode(xml: str) -> str:
    """Base64 of the XML, the value of the ``SAMLResponse`` form field."""
    return base64.b64encode(xml.encode()).decode("ascii")
