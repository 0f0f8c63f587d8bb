"""The strict validation of :mod:`flask_maestrano.sso.validation` makes python3-saml's checks.

It replaces python3-saml's ``is_valid`` to avoid its per-call costs (schema compilation,
repeated XPath, certificate parsing); these tests pin that it refuses what python3-saml
refuses, with the same error code, and that the schema check is still made end to end.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from lxml import etree
from onelogin.saml2.errors import OneLogin_Saml2_ValidationError
from onelogin.saml2.response import OneLogin_Saml2_Response

from flask_maestrano.presets import Preset
from flask_maestrano.saml_idp import encode
from flask_maestrano.sso import saml as sso_saml
from flask_maestrano.sso.validation import StrictResponse, VerificationKeys
from flask_maestrano.testing import TestIdP, decode_authn_request
from tests.support.presets import preset_data
from tests.support.saml import NS, assertion_of, build_host_app, build_signed, sso_presets, text, tree

ASSERTION = NS["saml"]
REQUEST_ID = "_request-1"


def _add_unknown_element(root: Any) -> None:
    etree.SubElement(assertion_of(root), f"{{{ASSERTION}}}NotInTheSchema").text = "x"


def test_a_signed_response_invalid_against_the_schema_is_refused_over_http(
    make_app: Any, test_idp: TestIdP, live_server: Any
) -> None:
    app, host = build_host_app(make_app, sso_presets(test_idp))
    server = live_server(app)
    preset = app.extensions["maestrano"].preset()
    browser = requests.Session()
    init = browser.get(f"{server.url}/maestrano/auth/saml/init", allow_redirects=False, timeout=10)
    authn = decode_authn_request(init.headers["Location"])
    attributes = test_idp.attributes("usr-1", "cld-1", "Admin")
    # everything else is right: the signature covers the extra element
    xml = build_signed(test_idp, preset, authn.id, attributes, before_signing=_add_unknown_element)

    answer = browser.post(
        f"{server.url}/maestrano/auth/saml/consume",
        data={"SAMLResponse": encode(xml), "RelayState": authn.relay_state},
        allow_redirects=False,
        timeout=10,
    )

    assert answer.status_code == 302
    location = urlsplit(answer.headers["Location"])
    assert location.path.endswith("/app_access_unauthorized")
    assert parse_qs(location.query)["err"] == ["schema"]
    assert host.empty
    assert browser.get(f"{server.url}/page", timeout=10).text == "user:anonymous"


# -- the same verdicts as python3-saml's own is_valid ----------------------------------------


def _settings(preset: Preset) -> Any:
    settings = sso_saml._settings(preset, preset.audience)
    # python3-saml compares the Issuer for equality: give both sides the exact issuer
    settings.get_idp_data()["entityId"] = f"{preset.idp_url}?SAMLRequest="
    return settings


def _verdict(response: Any, preset: Preset) -> int | None:
    """``None`` when accepted, else python3-saml's error code."""
    try:
        response.is_valid(
            sso_saml._request_data(preset.consume_url), request_id=REQUEST_ID, raise_exceptions=True
        )
    except OneLogin_Saml2_ValidationError as exc:
        return int(exc.code)
    except Exception:  # python3-saml lets some errors through unwrapped; so must we
        return -1
    return None


def _theirs_and_ours(preset: Preset, saml_response: str) -> tuple[int | None, int | None]:
    settings = _settings(preset)
    theirs = _verdict(OneLogin_Saml2_Response(settings, saml_response), preset)
    ours_response = StrictResponse(settings, saml_response)
    ours_response.verification_keys = VerificationKeys(settings)
    return theirs, _verdict(ours_response, preset)


def _after_signing(mutate: Callable[[Any], None]) -> Callable[[TestIdP, Preset], str]:
    def build(idp: TestIdP, preset: Preset) -> str:
        root = tree(idp.response_xml(preset, REQUEST_ID, idp.attributes()))
        mutate(root)
        return text(root)

    return build


def _before_signing(mutate: Callable[[Any], None], **options: Any) -> Callable[[TestIdP, Preset], str]:
    def build(idp: TestIdP, preset: Preset) -> str:
        return build_signed(idp, preset, REQUEST_ID, idp.attributes(), before_signing=mutate, **options)

    return build


def _options(**options: Any) -> Callable[[TestIdP, Preset], str]:
    def build(idp: TestIdP, preset: Preset) -> str:
        return idp.response_xml(preset, options.pop("irt", REQUEST_ID), idp.attributes(), **options)

    return build


def _set(path: str, attribute: str, value: str) -> Callable[[Any], None]:
    def mutate(root: Any) -> None:
        node = root if path == "." else root.find(path, NS)
        node.set(attribute, value)

    return mutate


def _remove(path: str) -> Callable[[Any], None]:
    def mutate(root: Any) -> None:
        node = root.find(path, NS)
        node.getparent().remove(node)

    return mutate


def _duplicate(path: str) -> Callable[[Any], None]:
    def mutate(root: Any) -> None:
        node = root.find(path, NS)
        node.addnext(copy.deepcopy(node))

    return mutate


def _attacker_signed(idp: TestIdP, preset: Preset) -> str:
    attacker = TestIdP(name="attacker")
    return attacker.response_xml(preset, REQUEST_ID, idp.attributes())


def _status_failed(root: Any) -> None:
    root.find("samlp:Status/samlp:StatusCode", {**NS, "samlp": NS["samlp"]}).set(
        "Value", "urn:oasis:names:tc:SAML:2.0:status:Requester"
    )


def _tamper_attribute(root: Any) -> None:
    value = assertion_of(root).find("saml:AttributeStatement/saml:Attribute/saml:AttributeValue", NS)
    value.text = "tampered"


def _second_assertion(root: Any) -> None:
    second = copy.deepcopy(assertion_of(root))
    second.set("ID", "_second")
    root.append(second)


def _strip_signature(root: Any) -> None:
    signature = assertion_of(root).find("ds:Signature", NS)
    signature.getparent().remove(signature)


HOUR = dt.timedelta(hours=1)
NOW = dt.datetime.now(dt.timezone.utc)

CASES: dict[str, Callable[[TestIdP, Preset], str]] = {
    "valid": _options(),
    "valid, response signed too": _options(sign_response=True),
    "schema": _before_signing(_add_unknown_element),
    "schema (bad IssueInstant)": _before_signing(_set(".", "IssueInstant", "yesterday")),
    "version": _after_signing(_set(".", "Version", "1.1")),
    "status": _after_signing(_status_failed),
    "wrong InResponseTo": _options(irt="_another-request"),
    "two assertions": _after_signing(_second_assertion),
    "no Conditions": _before_signing(_remove("saml:Assertion/saml:Conditions")),
    "two AuthnStatements": _before_signing(_duplicate("saml:Assertion/saml:AuthnStatement")),
    "no AttributeStatement": _before_signing(_remove("saml:Assertion/saml:AttributeStatement")),
    "expired": _options(not_on_or_after=NOW - HOUR, not_before=NOW - 2 * HOUR),
    "not yet valid": _options(not_before=NOW + HOUR),
    "subject confirmation expired": _options(subject_not_on_or_after=NOW - HOUR),
    "wrong recipient": _options(recipient="https://evil.example/consume"),
    "wrong destination": _options(destination="https://evil.example/consume"),
    "empty destination": _options(destination=""),
    "wrong audience": _options(audience="https://evil.example/"),
    "wrong issuer": _options(issuer="https://evil.example/"),
    "tampered attribute": _after_signing(_tamper_attribute),
    "unsigned": _after_signing(_strip_signature),
    "response signed only": _options(sign_assertion=False, sign_response=True),
    "attacker key": _attacker_signed,
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_verdict_and_error_code_match_python3_saml(test_idp: TestIdP, case: str) -> None:
    preset = Preset.from_dict("production", preset_data(sso={"x509_certificate": test_idp.cert_pem}))
    theirs, ours = _theirs_and_ours(preset, encode(CASES[case](test_idp, preset)))
    assert ours == theirs
    assert (theirs is None) == case.startswith("valid")


@pytest.mark.parametrize("signer", ["first", "second", "attacker"])
def test_several_trusted_certificates_match_python3_saml(test_idp: TestIdP, signer: str) -> None:
    other = TestIdP(name="rotated")
    preset = Preset.from_dict(
        "production",
        preset_data(sso={"x509_certificates": [test_idp.cert_pem, other.cert_pem]}),
    )
    idp = {"first": test_idp, "second": other, "attacker": TestIdP(name="attacker")}[signer]
    theirs, ours = _theirs_and_ours(preset, idp.saml_response(preset, REQUEST_ID, idp.attributes()))
    assert ours == theirs
    assert (ours is None) == (signer != "attacker")


def test_a_fingerprint_only_preset_uses_python3_saml_signature_check(test_idp: TestIdP) -> None:
    from onelogin.saml2.utils import OneLogin_Saml2_Utils

    fingerprint = OneLogin_Saml2_Utils.calculate_x509_fingerprint(test_idp.cert_pem)
    preset = Preset.from_dict(
        "production", preset_data(sso={"x509_certificate": "", "x509_fingerprint": fingerprint})
    )
    assert not preset.sso.x509_certificates
    for idp, accepted in ((test_idp, True), (TestIdP(name="attacker"), False)):
        theirs, ours = _theirs_and_ours(preset, idp.saml_response(preset, REQUEST_ID, idp.attributes()))
        assert ours == theirs
        assert (ours is None) == accepted
