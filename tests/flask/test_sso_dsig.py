"""Signatures xmlsec must never be given (issue 10 item 1): refused before xmlsec runs.

xmlsec digests every ds:Reference and runs every transform before it checks the signature
value, so these attacks need no trusted key: a response signed by the attacker's own key
with a second Reference to ``file:///dev/zero`` pinned a CPU for ever, one to a local file
read it. Each response here is real (signed by xmlsec or re-signed with the key), posted
over HTTP to an app; each refusal is a 400 naming the problem, with no login.
"""

from __future__ import annotations

import copy
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests
from lxml import etree

from flask_maestrano.saml_idp import encode
from flask_maestrano.testing import TestIdP, decode_authn_request
from tests.support.app_process import app_process
from tests.support.saml import (
    DSIG,
    NS,
    add_reference,
    assert_refused,
    assertion_of,
    build_host_app,
    consume,
    resign,
    sign_with,
    sso_presets,
    start_login,
    text,
    tree,
)

REASON = "unsupported_signature"


@pytest.fixture(autouse=True)
def _log_level(caplog: Any) -> None:
    caplog.set_level(logging.INFO, logger="flask_maestrano")


@pytest.fixture
def sso(make_app: Any, test_idp: TestIdP) -> Any:
    return build_host_app(make_app, sso_presets(test_idp))


def _preset(app: Any) -> Any:
    return app.extensions["maestrano"].preset()


def _response(app: Any, idp: TestIdP, request_id: str | None, **options: Any) -> Any:
    """The parsed XML of a response for ``request_id`` signed by ``idp``."""
    return tree(
        idp.response_xml(_preset(app), request_id, idp.attributes("usr-1", "cld-1", "Admin"), **options)
    )


def _signature(root: Any) -> Any:
    return assertion_of(root).find("ds:Signature", NS)


def _post(sso: Any, idp: TestIdP, mutate: Any, **options: Any) -> tuple[Any, Any]:
    """Init, then post a response for that request signed by ``idp`` and changed by ``mutate``."""
    app, _host = sso
    client = app.test_client()
    authn = start_login(client)
    root = _response(app, idp, authn.id, **options)
    mutate(root)
    return client, consume(client, encode(text(root)), authn.relay_state)


def _refused(sso: Any, client: Any, response: Any, caplog: Any, *words: str) -> None:
    assert_refused(response, sso[1], client, caplog, REASON, 400)
    body = response.get_data(as_text=True)
    assert all(word in body for word in words), body


# -- the reproduced attack: a second Reference to a file -------------------------------------------


def test_dev_zero_reference_signed_by_any_key_is_a_quick_400(
    sso: Any, test_idp: TestIdP, tmp_path: Path
) -> None:
    """The DoS of issue 10, over real HTTP: the app runs in a process of its own (a spinning
    xmlsec cannot be stopped in this one), each request has a 20 s timeout, and the process
    is killed afterwards, so a regression fails in seconds and leaves nothing running."""
    attacker = TestIdP(name="attacker")
    with app_process(test_idp.cert_pem, tmp_path) as url:
        session = requests.Session()
        init = session.get(url + "/maestrano/auth/saml/init", allow_redirects=False, timeout=20)
        authn = decode_authn_request(init.headers["Location"])
        root = _response(sso[0], attacker, authn.id)  # the same preset configuration
        add_reference(_signature(root), "file:///dev/zero")
        response = session.post(
            url + "/maestrano/auth/saml/consume",
            data={"SAMLResponse": encode(text(root)), "RelayState": authn.relay_state},
            allow_redirects=False,
            timeout=20,
        )
        assert response.status_code == 400, response.text
        assert "Reference" in response.text
        assert session.get(url + "/page", timeout=20).text == "user:anonymous"
        assert session.get(url + "/_host", timeout=20).json() == []


def test_local_file_reference_signed_by_an_attackers_key_is_a_400(
    sso: Any, test_idp: TestIdP, caplog: Any
) -> None:
    attacker = TestIdP(name="attacker")
    client, response = _post(
        sso, attacker, lambda root: add_reference(_signature(root), "file:///etc/hostname")
    )
    _refused(sso, client, response, caplog, "Reference")


def _with_file_reference(root: Any, idp: TestIdP, path: Path) -> None:
    """A second Reference to ``path`` with its true digest, signed by ``idp``: a signature
    xmlsec verifies when it may read files."""
    signature = _signature(root)
    add_reference(signature, path.as_uri(), path.read_bytes())
    resign(signature, idp)


def test_file_reference_signed_by_the_trusted_key_is_a_400(
    sso: Any, test_idp: TestIdP, caplog: Any, tmp_path: Path
) -> None:
    """python3-saml checks only the first Reference: a second one to a file, signed by the
    IdP itself, used to verify (and log in) after xmlsec had read the file."""
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"local file contents\n")
    client, response = _post(sso, test_idp, lambda root: _with_file_reference(root, test_idp, secret))
    _refused(sso, client, response, caplog, "Reference")


def test_xmlsec_opens_no_uri_even_past_the_check(
    sso: Any, test_idp: TestIdP, caplog: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defence in depth: with the structural check switched off, xmlsec still cannot read the
    file (its I/O callbacks are gone), so the digest fails and nobody logs in."""
    import flask_maestrano.sso.saml as saml

    monkeypatch.setattr(saml, "check_signatures", lambda root: None)
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"local file contents\n")
    client, response = _post(sso, test_idp, lambda root: _with_file_reference(root, test_idp, secret))
    assert_refused(response, sso[1], client, caplog, "invalid_signature")


def test_uri_resolution_is_switched_off_by_init_app_not_by_import(tmp_path: Path) -> None:
    """Importing the package changes nothing in xmlsec; initialising the extension does."""
    target = tmp_path / "data.txt"
    target.write_bytes(b"data")
    code = f"""
import xmlsec
from lxml import etree
import flask_maestrano, flask_maestrano.sso.saml
from flask_maestrano.saml_idp import generate_keypair
key_pem, _ = generate_keypair("x")

def sign():
    root = etree.fromstring(b"<r ID='a'/>")
    signature = xmlsec.template.create(root, xmlsec.Transform.EXCL_C14N, xmlsec.Transform.RSA_SHA256)
    root.append(signature)
    xmlsec.template.add_reference(signature, xmlsec.Transform.SHA256, uri={target.as_uri()!r})
    context = xmlsec.SignatureContext()
    context.key = xmlsec.Key.from_memory(key_pem.encode(), xmlsec.KeyFormat.PEM)
    try:
        context.sign(signature)
        return "read"
    except xmlsec.Error:
        return "refused"

print(sign())
from flask import Flask
from flask_maestrano import Maestrano
app = Flask("x")
app.config["MAESTRANO_PRESETS"] = {{"production": {{"environment": "local", "app": {{"host": "http://127.0.0.1:5000"}},
    "api": {{"id": "app-test", "key": "k"}}}}}}
Maestrano().init_app(app)
print(sign())
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["read", "refused"]


# -- the one shape of a SAML signature ---------------------------------------------------------------


def _uri(value: str) -> Any:
    def mutate(root: Any) -> None:
        _signature(root).find("ds:SignedInfo/ds:Reference", NS).set("URI", value)

    return mutate


@pytest.mark.parametrize(
    "uri",
    ["", "#_another_id", "#xpointer(/)", "http://127.0.0.1:9/evil", "data.xml", "file:///etc/hostname"],
    ids=["empty", "another-id", "xpointer", "http", "relative", "file"],
)
def test_reference_uri_other_than_the_signed_elements_id_is_a_400(
    sso: Any, test_idp: TestIdP, caplog: Any, uri: str
) -> None:
    client, response = _post(sso, test_idp, _uri(uri))
    _refused(sso, client, response, caplog, "URI")


def test_reference_naming_the_response_from_the_assertions_signature_is_a_400(
    sso: Any, test_idp: TestIdP, caplog: Any
) -> None:
    def point_at_response(root: Any) -> None:
        _signature(root).find("ds:SignedInfo/ds:Reference", NS).set("URI", "#" + root.get("ID"))

    client, response = _post(sso, test_idp, point_at_response)
    _refused(sso, client, response, caplog, "URI")


def _resigned(change: Any, idp: TestIdP) -> Any:
    def mutate(root: Any) -> None:
        signature = _signature(root)
        change(signature)
        resign(signature, idp)

    return mutate


def _add_transform(algorithm: str, body: str | None = None) -> Any:
    def change(signature: Any) -> None:
        transforms = signature.find("ds:SignedInfo/ds:Reference/ds:Transforms", NS)
        transform = etree.SubElement(transforms, f"{{{DSIG}}}Transform", Algorithm=algorithm)
        if body is not None:
            transform.append(etree.fromstring(body))

    return change


XSLT = (
    '<xsl:stylesheet xmlns:xsl="http://www.w3.org/1999/XSL/Transform" version="1.0">'
    '<xsl:template match="/"><xsl:copy-of select="document(\'file:///etc/hostname\')"/></xsl:template>'
    "</xsl:stylesheet>"
)


@pytest.mark.parametrize(
    ("algorithm", "body"),
    [
        ("http://www.w3.org/TR/1999/REC-xslt-19991116", XSLT),
        ("http://www.w3.org/TR/1999/REC-xpath-19991116", f'<ds:XPath xmlns:ds="{DSIG}">1</ds:XPath>'),
        (
            "http://www.w3.org/2002/06/xmldsig-filter2",
            '<f:XPath xmlns:f="http://www.w3.org/2002/06/xmldsig-filter2" Filter="union">/</f:XPath>',
        ),
        ("http://www.w3.org/2000/09/xmldsig#base64", None),
        ("http://www.w3.org/2001/10/xml-exc-c14n#", None),  # a second c14n (1500 took 3 s)
        ("http://www.w3.org/2000/09/xmldsig#enveloped-signature", None),  # a second enveloped
    ],
    ids=["xslt", "xpath", "xpath-filter2", "base64", "repeated-c14n", "repeated-enveloped"],
)
def test_unexpected_transform_is_a_400(
    sso: Any, test_idp: TestIdP, caplog: Any, algorithm: str, body: str | None
) -> None:
    client, response = _post(sso, test_idp, _resigned(_add_transform(algorithm, body), test_idp))
    _refused(sso, client, response, caplog, "transform")


def test_a_thousand_transforms_are_a_400(sso: Any, test_idp: TestIdP, caplog: Any) -> None:
    def many(signature: Any) -> None:
        transforms = signature.find("ds:SignedInfo/ds:Reference/ds:Transforms", NS)
        for _ in range(1000):
            transforms.append(copy.deepcopy(transforms[-1]))

    client, response = _post(sso, test_idp, _resigned(many, test_idp))
    _refused(sso, client, response, caplog, "1002 transforms")


def _set_algorithm(path: str, algorithm: str, child: str | None = None) -> Any:
    def change(signature: Any) -> None:
        node = signature.find(path, NS)
        node.set("Algorithm", algorithm)
        if child is not None:
            node.append(etree.fromstring(child))

    return change


@pytest.mark.parametrize(
    ("path", "algorithm", "child"),
    [
        ("ds:SignedInfo/ds:SignatureMethod", "http://www.w3.org/2000/09/xmldsig#hmac-sha1", None),
        (
            "ds:SignedInfo/ds:SignatureMethod",
            "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
            f'<ds:HMACOutputLength xmlns:ds="{DSIG}">8</ds:HMACOutputLength>',
        ),
        ("ds:SignedInfo/ds:SignatureMethod", "http://www.w3.org/2001/04/xmldsig-more#rsa-md5", None),
        ("ds:SignedInfo/ds:Reference/ds:DigestMethod", "http://www.w3.org/2001/04/xmldsig-more#md5", None),
        ("ds:SignedInfo/ds:CanonicalizationMethod", "http://www.w3.org/TR/1999/REC-xslt-19991116", None),
    ],
    ids=["hmac", "hmac-output-length", "rsa-md5", "md5-digest", "xslt-canonicalization"],
)
def test_unexpected_algorithm_is_a_400(
    sso: Any, test_idp: TestIdP, caplog: Any, path: str, algorithm: str, child: str | None
) -> None:
    client, response = _post(sso, test_idp, _resigned(_set_algorithm(path, algorithm, child), test_idp))
    _refused(sso, client, response, caplog)


def test_object_in_the_signature_is_a_400(sso: Any, test_idp: TestIdP, caplog: Any) -> None:
    def add_object(root: Any) -> None:
        etree.SubElement(_signature(root), f"{{{DSIG}}}Object").text = "x"

    client, response = _post(sso, test_idp, add_object)
    _refused(sso, client, response, caplog, "Object")


def test_retrieval_method_in_key_info_is_a_400(sso: Any, test_idp: TestIdP, caplog: Any) -> None:
    def add_retrieval(root: Any) -> None:
        key_info = _signature(root).find("ds:KeyInfo", NS)
        key_info.insert(0, key_info.makeelement(f"{{{DSIG}}}RetrievalMethod", {"URI": "file:///dev/zero"}))

    client, response = _post(sso, test_idp, add_retrieval)
    _refused(sso, client, response, caplog, "RetrievalMethod")


def test_second_signature_on_the_assertion_is_a_400(sso: Any, test_idp: TestIdP, caplog: Any) -> None:
    def second(root: Any) -> None:
        signature = _signature(root)
        signature.addnext(copy.deepcopy(signature))

    client, response = _post(sso, test_idp, second)
    _refused(sso, client, response, caplog, "more than one")


def test_signature_elsewhere_is_a_400(sso: Any, test_idp: TestIdP, caplog: Any) -> None:
    """A third signature, hidden in an attribute value (xs:anyType): nowhere but the Response
    and its Assertion."""

    def hide(root: Any) -> None:
        value = assertion_of(root).find(".//saml:AttributeValue", NS)
        value.append(copy.deepcopy(_signature(root)))

    client, response = _post(sso, test_idp, hide, sign_response=True)
    _refused(sso, client, response, caplog, "3 ds:Signature")


def test_signed_id_carried_by_another_element_too_is_a_400(sso: Any, test_idp: TestIdP, caplog: Any) -> None:
    """xmlsec digests the first element with the ID, python3-saml reads the Assertion: a
    foreign element in samlp:Extensions (not schema-checked) must not share its ID."""

    def shadow(root: Any) -> None:
        extensions = root.makeelement("{urn:oasis:names:tc:SAML:2.0:protocol}Extensions", {})
        etree.SubElement(extensions, "{urn:evil}Shadow", ID=assertion_of(root).get("ID"))
        root.find("saml:Issuer", NS).addnext(extensions)

    client, response = _post(sso, test_idp, shadow)
    _refused(sso, client, response, caplog, "another element")


def test_long_inclusive_namespaces_prefix_list_is_a_400(sso: Any, test_idp: TestIdP, caplog: Any) -> None:
    def prefixes(signature: Any) -> None:
        transform = signature.findall("ds:SignedInfo/ds:Reference/ds:Transforms/ds:Transform", NS)[-1]
        etree.SubElement(
            transform,
            "{http://www.w3.org/2001/10/xml-exc-c14n#}InclusiveNamespaces",
            PrefixList=" ".join(f"p{i}" for i in range(2000)),
        )

    client, response = _post(sso, test_idp, _resigned(prefixes, test_idp))
    _refused(sso, client, response, caplog, "PrefixList")


# -- what the platform and python3-saml's users sign with still works ---------------------------------


@pytest.mark.parametrize(
    ("c14n", "method", "digest", "transforms"),
    [
        ("EXCL_C14N", "RSA_SHA1", "SHA1", ("ENVELOPED", "EXCL_C14N")),  # older platform deployments
        ("EXCL_C14N", "RSA_SHA512", "SHA512", ("ENVELOPED", "EXCL_C14N")),
        ("C14N", "RSA_SHA384", "SHA384", ("ENVELOPED", "EXCL_C14N_COMMENTS")),
        ("EXCL_C14N", "RSA_SHA256", "SHA256", ("ENVELOPED",)),
    ],
    ids=["rsa-sha1", "rsa-sha512", "inclusive-c14n-sha384", "enveloped-only"],
)
def test_accepted_algorithms_log_in(
    sso: Any, test_idp: TestIdP, c14n: str, method: str, digest: str, transforms: tuple[str, ...]
) -> None:
    app, host = sso
    client = app.test_client()
    authn = start_login(client)
    root = _response(app, test_idp, authn.id, sign_assertion=False)
    sign_with(assertion_of(root), test_idp, c14n=c14n, method=method, digest=digest, transforms=transforms)
    response = consume(client, encode(text(root)), authn.relay_state)
    assert response.status_code == 302 and response.headers["Location"] == "/", response.headers.get(
        "Location"
    )
    assert set(host.users) == {"usr-1"}


def test_inclusive_namespaces_of_exclusive_c14n_log_in(sso: Any, test_idp: TestIdP) -> None:
    """Ruby and Java IdPs add ``ec:InclusiveNamespaces``; the platform's Ruby SDK honours it."""
    app, host = sso
    client = app.test_client()
    authn = start_login(client)
    root = _response(app, test_idp, authn.id, sign_assertion=False)
    sign_with(assertion_of(root), test_idp, prefix_list="xs saml")
    response = consume(client, encode(text(root)), authn.relay_state)
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert set(host.users) == {"usr-1"}
