"""SSO test helpers: a host app with in-memory users, groups and memberships.

The host records every loader call, so a test can prove that a refused login created
nothing. Responses are signed at test time by a :class:`~flask_maestrano.testing.TestIdP`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from flask import Flask
from flask_login import LoginManager, UserMixin, current_user, login_required

from flask_maestrano import Maestrano
from flask_maestrano.sso.identity import Group, Membership, User
from flask_maestrano.sso.session import LOGIN_BITS, current_session
from flask_maestrano.testing import TestIdP, decode_authn_request, follow_finish
from tests.support.presets import preset_data


@dataclass
class HostUser(UserMixin):  # type: ignore[misc]
    id: str
    email: str
    name: str


@dataclass
class HostGroup:
    id: str
    name: str


@dataclass
class Host:
    """The host application's data, kept in memory, and every loader call."""

    users: dict[str, HostUser] = field(default_factory=dict)
    groups: dict[str, HostGroup] = field(default_factory=dict)
    memberships: dict[tuple[str, str], str] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)

    def install(self, maestrano: Maestrano) -> None:
        @maestrano.find_or_create_group
        def find_or_create_group(group: Group, preset: Any) -> tuple[HostGroup, bool]:
            self.calls.append("group")
            if group.uid in self.groups:
                return self.groups[group.uid], False
            self.groups[group.uid] = HostGroup(group.uid, group.name)
            return self.groups[group.uid], True

        @maestrano.find_or_create_user
        def find_or_create_user(user: User, group: HostGroup, preset: Any) -> tuple[HostUser, bool]:
            self.calls.append("user")
            if user.app_uid in self.users:
                return self.users[user.app_uid], False
            self.users[user.app_uid] = HostUser(
                user.app_uid, user.app_email, f"{user.first_name} {user.last_name}"
            )
            return self.users[user.app_uid], True

        @maestrano.link_membership
        def link_membership(user: HostUser, group: HostGroup, membership: Membership, preset: Any) -> None:
            self.calls.append("membership")
            self.memberships[(user.id, group.id)] = membership.role

    @property
    def empty(self) -> bool:
        return not (self.users or self.groups or self.memberships or self.calls)


def sso_presets(idp: TestIdP, **sso: Any) -> dict[str, Any]:
    return {"production": preset_data(sso={"x509_certificate": idp.cert_pem, **sso})}


def build_host_app(
    make_app: Callable[..., Flask], presets: dict[str, Any], **config: Any
) -> tuple[Flask, Host]:
    """An app with Flask-Login, the extension, the in-memory loaders and two pages."""
    maestrano = Maestrano()
    host = Host()
    host.install(maestrano)
    app = make_app(presets=presets, maestrano=maestrano, **config)
    login_manager = LoginManager(app)

    @login_manager.user_loader
    def load_user(user_id: str) -> HostUser | None:
        return host.users.get(user_id)

    @app.route("/")
    @login_required
    def index() -> str:
        return f"Hello {current_user.name} <{current_user.email}>"

    @app.route("/page")
    def page() -> str:
        return "user:" + (current_user.id if current_user.is_authenticated else "anonymous")

    return app, host


def sso_app(make_app: Callable[..., Flask], idp: TestIdP, **config: Any) -> tuple[Flask, Host]:
    """:func:`build_host_app` with one preset trusting ``idp``; ``app.failures`` records
    every ``login_failed`` signal's arguments."""
    from flask_maestrano import signals

    app, host = build_host_app(make_app, sso_presets(idp), **config)
    failures: list[dict[str, Any]] = []
    signals.login_failed.connect(lambda sender, **kw: failures.append(kw), app, weak=False)
    app.failures = failures  # type: ignore[attr-defined]
    return app, host


def maestrano_session(app: Flask, client: Any) -> Any:
    """The Maestrano session the test ``client`` holds, read as the app reads it
    (:func:`~flask_maestrano.sso.session.current_session`), or ``None``."""
    cookies = [
        client.get_cookie(name, domain=domain)
        for name in ("session", "session_maestrano")
        for domain in ("localhost", "127.0.0.1")
    ]
    header = "; ".join(f"{cookie.key}={cookie.value}" for cookie in cookies if cookie is not None)
    with app.test_request_context(base_url="http://127.0.0.1:5000", headers={"Cookie": header}):
        return current_session()


#: the Flask session key of the single-logout check: ``recheck << LOGIN_BITS | login``, the
#: recheck time in whole seconds and the login's random value in one integer
CHECK_KEY = "_mno"


def recheck_of(sess: Any) -> int:
    """The single-logout recheck time (POSIX seconds) the Flask session ``sess`` holds: the
    high bits of ``session["_mno"]``."""
    return int(sess[CHECK_KEY]) >> LOGIN_BITS


def start_login(client: Any, path: str = "/maestrano/auth/saml/init", **query: str) -> Any:
    """GET the init view; the decoded AuthnRequest of its redirect."""
    response = client.get(path, query_string=query)
    assert response.status_code == 302, response.get_data(as_text=True)
    return decode_authn_request(response.headers["Location"])


def consume(
    client: Any, saml_response: str, relay_state: str | None, path: str = "/maestrano/auth/saml/consume"
) -> Any:
    """POST to consume as the IdP's form does, then follow its 303 to finish like a browser."""
    return follow_finish(client, post_consume(client, saml_response, relay_state, path))


def post_consume(
    client: Any, saml_response: str, relay_state: str | None, path: str = "/maestrano/auth/saml/consume"
) -> Any:
    """Only the POST to consume (its 303 to finish is not followed)."""
    data = {"SAMLResponse": saml_response}
    if relay_state is not None:
        data["RelayState"] = relay_state
    return client.post(path, data=data)


def err_of(response: Any) -> str | None:
    """The ``err`` of a redirect to the platform's unauthorized page."""
    location = response.headers.get("Location", "")
    if "/app_access_unauthorized" not in location:
        return None
    return parse_qs(urlsplit(location).query).get("err", [None])[0]


def assert_refused(
    response: Any, host: Host, client: Any, caplog: Any, reason: str, status: int | None = None
) -> None:
    """No login, nothing created, no Maestrano session, the right answer, a log line."""
    if status is None:
        assert response.status_code == 302, response.get_data(as_text=True)
        assert err_of(response) == reason, response.headers.get("Location")
    else:
        assert response.status_code == status, response.get_data(as_text=True)
    assert host.empty, host
    with client.session_transaction() as sess:
        assert "maestrano" not in sess
        assert CHECK_KEY not in sess and "maestrano_recheck" not in sess
        assert "_user_id" not in sess
    assert client.get("/page").get_data(as_text=True) == "user:anonymous"
    messages = [r.getMessage() for r in caplog.records if r.name == "flask_maestrano"]
    assert any(reason in m for m in messages), messages


# -- building hostile responses ---------------------------------------------------------------

PROTOCOL = "urn:oasis:names:tc:SAML:2.0:protocol"
ASSERTION = "urn:oasis:names:tc:SAML:2.0:assertion"
DSIG = "http://www.w3.org/2000/09/xmldsig#"
NS = {"samlp": PROTOCOL, "saml": ASSERTION, "ds": DSIG}


def tree(xml: str) -> Any:
    from lxml import etree

    return etree.fromstring(xml.encode())


def text(root: Any) -> str:
    from lxml import etree

    return str(etree.tostring(root, encoding="unicode"))


def assertion_of(root: Any) -> Any:
    return root.find("saml:Assertion", NS)


def build_signed(
    idp: TestIdP,
    preset: Any,
    in_response_to: str | None,
    attributes: dict[str, str],
    *,
    before_signing: Callable[[Any], None] | None = None,
    sign_response: bool = False,
    **options: Any,
) -> str:
    """A response changed by ``before_signing`` and then signed, so the signature is valid."""
    from flask_maestrano.saml_idp import sign_element

    root = tree(idp.response_xml(preset, in_response_to, attributes, sign_assertion=False, **options))
    if before_signing is not None:
        before_signing(root)
    sign_element(assertion_of(root), idp.key_pem, idp.cert_pem)
    if sign_response:
        sign_element(root, idp.key_pem, idp.cert_pem)
    return text(root)


# -- signatures of unusual shape -----------------------------------------------------------------


def sign_with(
    element: Any,
    idp: TestIdP,
    *,
    c14n: str = "EXCL_C14N",
    method: str = "RSA_SHA256",
    digest: str = "SHA256",
    transforms: tuple[str, ...] = ("ENVELOPED", "EXCL_C14N"),
    prefix_list: str | None = None,
) -> Any:
    """Sign ``element`` like the sandbox does, with the named ``xmlsec.Transform`` members
    (and an ``InclusiveNamespaces PrefixList`` on the last transform); the ``ds:Signature``."""
    import xmlsec
    from lxml import etree

    from flask_maestrano.saml_idp import ASSERTION_NS

    transform: Any = xmlsec.Transform
    signature = xmlsec.template.create(element, getattr(transform, c14n), getattr(transform, method), ns="ds")
    element.find(f"{{{ASSERTION_NS}}}Issuer").addnext(signature)
    reference = xmlsec.template.add_reference(
        signature, getattr(transform, digest), uri="#" + element.get("ID")
    )
    for name in transforms:
        node = xmlsec.template.add_transform(reference, getattr(transform, name))
    if prefix_list is not None:
        etree.SubElement(
            node, "{http://www.w3.org/2001/10/xml-exc-c14n#}InclusiveNamespaces", PrefixList=prefix_list
        )
    xmlsec.template.x509_data_add_certificate(
        xmlsec.template.add_x509_data(xmlsec.template.ensure_key_info(signature))
    )
    key: Any = xmlsec.Key.from_memory(idp.key_pem.encode(), xmlsec.constants.KeyDataFormatPem)
    context = xmlsec.SignatureContext()
    context.key = key
    context.register_id(element, "ID")
    context.sign(signature)
    return signature


def resign(signature: Any, idp: TestIdP) -> None:
    """Recompute the SignatureValue over the current SignedInfo (exclusive c14n, RSA-SHA256)
    with the IdP's key: SignedInfo may be changed and the signature stays valid."""
    import base64

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa
    from lxml import etree

    signed_info = signature.find("ds:SignedInfo", NS)
    key = serialization.load_pem_private_key(idp.key_pem.encode(), None)
    assert isinstance(key, rsa.RSAPrivateKey)
    canonical = etree.tostring(signed_info, method="c14n", exclusive=True)
    value = key.sign(canonical, padding.PKCS1v15(), hashes.SHA256())
    signature.find("ds:SignatureValue", NS).text = base64.b64encode(value).decode()


def add_reference(signature: Any, uri: str, content: bytes = b"") -> Any:
    """A second ds:Reference to ``uri`` without transforms, whose SHA-256 digest is that of
    ``content`` (what xmlsec computes for a URI it reads as raw octets); not re-signed."""
    import base64
    import hashlib

    from lxml import etree

    reference = etree.SubElement(signature.find("ds:SignedInfo", NS), f"{{{DSIG}}}Reference", URI=uri)
    etree.SubElement(
        reference, f"{{{DSIG}}}DigestMethod", Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"
    )
    value = etree.SubElement(reference, f"{{{DSIG}}}DigestValue")
    value.text = base64.b64encode(hashlib.sha256(content).digest()).decode()
    return reference
