"""The SECURITY.md test corpus: every hostile response is refused, creates nothing, is logged.

Each response is signed at test time by the session's test IdP (fresh key, fresh
timestamps), then mutated. A refusal means: no login, no loader called, no Maestrano
session, a 4xx or the platform's unauthorized page with ``?err=<reason>``, and a log line
on the ``flask_maestrano`` logger naming the reason.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

import pytest

from flask_maestrano import signals
from flask_maestrano.saml_idp import encode
from flask_maestrano.testing import TestIdP, follow_finish
from tests.support.presets import preset_data
from tests.support.saml import (
    NS,
    assert_refused,
    assertion_of,
    build_host_app,
    build_signed,
    consume,
    err_of,
    maestrano_session,
    sso_app,
    sso_presets,
    start_login,
    text,
    tree,
)

ACS = "http://127.0.0.1:5000/maestrano/auth/saml/consume"
NOW = dt.datetime.now


@pytest.fixture(autouse=True)
def _log_level(caplog: Any) -> None:
    caplog.set_level(logging.INFO, logger="flask_maestrano")


@pytest.fixture
def sso(make_app: Any, test_idp: TestIdP) -> Any:
    return sso_app(make_app, test_idp)


def _preset(app: Any) -> Any:
    return app.extensions["maestrano"].preset()


def _attrs(idp: TestIdP, **extra: str) -> dict[str, str]:
    return idp.attributes("usr-1", "cld-1", "Admin", **extra)


def _post_signed(
    sso: Any, idp: TestIdP, mutate_xml: Callable[[Any], None] | None = None, **options: Any
) -> Any:
    """Init, then post a response signed for that request and mutated after signing."""
    app, _host = sso
    client = app.test_client()
    authn = start_login(client)
    xml = idp.response_xml(_preset(app), authn.id, _attrs(idp), **options)
    if mutate_xml is not None:
        root = tree(xml)
        mutate_xml(root)
        xml = text(root)
    return client, consume(client, encode(xml), authn.relay_state)


def _post_built(sso: Any, idp: TestIdP, before_signing: Callable[[Any], None], **options: Any) -> Any:
    app, _host = sso
    client = app.test_client()
    authn = start_login(client)
    xml = build_signed(idp, _preset(app), authn.id, _attrs(idp), before_signing=before_signing, **options)
    return client, consume(client, encode(xml), authn.relay_state)


def _refused(
    sso: Any, client: Any, response: Any, caplog: Any, reason: str, status: int | None = None
) -> None:
    app, host = sso
    assert_refused(response, host, client, caplog, reason, status)
    assert app.failures and app.failures[-1]["reason"] == reason


# -- the baseline ------------------------------------------------------------------------------


def test_untouched_response_is_accepted(sso: Any, test_idp: TestIdP) -> None:
    client, response = _post_signed(sso, test_idp)
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert client.get("/page").get_data(as_text=True) == "user:usr-1"


def test_response_signed_on_both_assertion_and_response_is_accepted(sso: Any, test_idp: TestIdP) -> None:
    _client, response = _post_signed(sso, test_idp, sign_response=True)
    assert response.status_code == 302 and response.headers["Location"] == "/"


# -- signatures --------------------------------------------------------------------------------


def test_stripped_signature_is_refused(sso: Any, test_idp: TestIdP, caplog: Any) -> None:
    def strip(root: Any) -> None:
        signature = assertion_of(root).find("ds:Signature", NS)
        signature.getparent().remove(signature)

    client, response = _post_signed(sso, test_idp, strip)
    _refused(sso, client, response, caplog, "unsigned_assertion")


def test_only_the_response_signed_is_refused(sso: Any, test_idp: TestIdP, caplog: Any) -> None:
    client, response = _post_signed(sso, test_idp, sign_assertion=False, sign_response=True)
    _refused(sso, client, response, caplog, "unsigned_assertion")


def test_attacker_key_is_refused(sso: Any, test_idp: TestIdP, caplog: Any) -> None:
    attacker = TestIdP(name="attacker")
    app, _host = sso
    client = app.test_client()
    authn = start_login(client)
    saml = attacker.saml_response(_preset(app), authn.id, _attrs(attacker))
    _refused(sso, client, consume(client, saml, authn.relay_state), caplog, "invalid_signature")


def test_tampered_name_id_is_refused(sso: Any, test_idp: TestIdP, caplog: Any) -> None:
    def tamper(root: Any) -> None:
        assertion_of(root).find("saml:Subject/saml:NameID", NS).text = "usr-666"

    client, response = _post_signed(sso, test_idp, tamper)
    _refused(sso, client, response, caplog, "invalid_signature")


def test_tampered_attribute_is_refused(sso: Any, test_idp: TestIdP, caplog: Any) -> None:
    def tamper(root: Any) -> None:
        for value in assertion_of(root).iterfind(
            ".//saml:Attribute[@Name='group_role']/saml:AttributeValue", NS
        ):
            value.text = "Super Admin"

    client, response = _post_signed(sso, test_idp, tamper)
    _refused(sso, client, response, caplog, "invalid_signature")


def test_tampered_group_uid_is_refused(sso: Any, test_idp: TestIdP, caplog: Any) -> None:
    def tamper(root: Any) -> None:
        for value in assertion_of(root).iterfind(
            ".//saml:Attribute[@Name='group_uid']/saml:AttributeValue", NS
        ):
            value.text = "cld-victim"

    client, response = _post_signed(sso, test_idp, tamper)
    _refused(sso, client, response, caplog, "invalid_signature")


# -- XML signature wrapping ----------------------------------------------------------------------


def _evil_copy(assertion: Any, *, keep_signature: bool) -> Any:
    evil = copy.deepcopy(assertion)
    evil.set("ID", "_evil")
    if not keep_signature:
        signature = evil.find("ds:Signature", NS)
        evil.remove(signature)
    evil.find("saml:Subject/saml:NameID", NS).text = "usr-evil"
    for value in evil.iterfind(".//saml:Attribute[@Name='uid']/saml:AttributeValue", NS):
        value.text = "usr-evil"
    return evil


def xsw_evil_before_original(root: Any) -> None:
    """XSW3: an unsigned evil assertion placed before the signed one."""
    original = assertion_of(root)
    original.addprevious(_evil_copy(original, keep_signature=False))


def xsw_original_inside_evil(root: Any) -> None:
    """XSW4: the signed assertion moved inside an evil assertion."""
    original = assertion_of(root)
    evil = _evil_copy(original, keep_signature=False)
    original.addprevious(evil)
    root.remove(original)
    evil.append(original)


def xsw_signature_moved_to_evil(root: Any) -> None:
    """XSW5: the evil assertion carries the original signature; the original follows unsigned."""
    original = assertion_of(root)
    evil = _evil_copy(original, keep_signature=True)
    original.remove(original.find("ds:Signature", NS))
    original.addprevious(evil)


def xsw_original_in_signature_object(root: Any) -> None:
    """XSW6: evil assertion with the signature; the original inside the signature's ds:Object."""
    original = assertion_of(root)
    evil = _evil_copy(original, keep_signature=True)
    root.remove(original)
    root.append(evil)
    signature = evil.find("ds:Signature", NS)
    holder = signature.makeelement(f"{{{NS['ds']}}}Object", {})
    original.remove(original.find("ds:Signature", NS))
    holder.append(original)
    signature.append(holder)


def xsw_original_in_extensions(root: Any) -> None:
    """XSW7: the original inside samlp:Extensions, an unsigned evil assertion in its place."""
    original = assertion_of(root)
    evil = _evil_copy(original, keep_signature=False)
    extensions = root.makeelement(f"{{{NS['samlp']}}}Extensions", {})
    root.remove(original)
    extensions.append(original)
    root.insert(1, extensions)
    root.append(evil)


def xsw_evil_with_signature_original_in_object(root: Any) -> None:
    """XSW8: evil assertion keeps the signature; the original (signature removed) in ds:Object."""
    original = assertion_of(root)
    evil = _evil_copy(original, keep_signature=True)
    signature = evil.find("ds:Signature", NS)
    original.remove(original.find("ds:Signature", NS))
    holder = signature.makeelement(f"{{{NS['ds']}}}Object", {})
    root.remove(original)
    holder.append(original)
    signature.append(holder)
    root.append(evil)


def xsw_response_wrapped(root: Any) -> None:
    """XSW1: a signed Response copied into its own signature; an evil unsigned assertion outside."""
    original = copy.deepcopy(root)
    signature = root.find("ds:Signature", NS)
    holder = signature.makeelement(f"{{{NS['ds']}}}Object", {})
    holder.append(original)
    signature.append(holder)
    root.set("ID", "_evil_response")
    assertion = assertion_of(root)
    assertion.find("saml:Subject/saml:NameID", NS).text = "usr-evil"


# a wrapping that moves a signature out of its place, points it at another element or hides
# an element in ds:Object is refused before xmlsec (400, unsupported_signature); the others
# reach python3-saml, which refuses them (the unauthorized page)
@pytest.mark.parametrize(
    ("wrap", "before_xmlsec"),
    [
        (xsw_evil_before_original, False),
        (xsw_original_inside_evil, True),
        (xsw_signature_moved_to_evil, True),
        (xsw_original_in_signature_object, True),
        (xsw_original_in_extensions, True),
        (xsw_evil_with_signature_original_in_object, True),
    ],
    ids=["XSW3", "XSW4", "XSW5", "XSW6", "XSW7", "XSW8"],
)
def test_signature_wrapping_of_the_assertion_is_refused(
    sso: Any, test_idp: TestIdP, caplog: Any, wrap: Callable[[Any], None], before_xmlsec: bool
) -> None:
    client, response = _post_signed(sso, test_idp, wrap)
    _app, host = sso
    if before_xmlsec:
        assert_refused(response, host, client, caplog, "unsupported_signature", 400)
    else:
        assert response.status_code == 302 and err_of(response) is not None
        assert_refused(response, host, client, caplog, err_of(response))


@pytest.mark.parametrize("sign_assertion", [True, False], ids=["XSW1-assertion-signed", "XSW1-response-only"])
def test_signature_wrapping_of_the_response_is_refused(
    sso: Any, test_idp: TestIdP, caplog: Any, sign_assertion: bool
) -> None:
    """The signed Response copied into ds:Object: refused before xmlsec."""
    client, response = _post_signed(
        sso, test_idp, xsw_response_wrapped, sign_response=True, sign_assertion=sign_assertion
    )
    _app, host = sso
    assert_refused(response, host, client, caplog, "unsupported_signature", 400)


def test_two_assertions_are_refused(sso: Any, test_idp: TestIdP, caplog: Any) -> None:
    def duplicate(root: Any) -> None:
        second = copy.deepcopy(assertion_of(root))
        second.set("ID", "_second")
        second.remove(second.find("ds:Signature", NS))  # a second signature is refused earlier
        root.append(second)

    client, response = _post_signed(sso, test_idp, duplicate)
    _refused(sso, client, response, caplog, "assertion_count")


def test_duplicate_attribute_is_refused(sso: Any, test_idp: TestIdP, caplog: Any) -> None:
    def duplicate(root: Any) -> None:
        statement = assertion_of(root).find("saml:AttributeStatement", NS)
        extra = copy.deepcopy(statement.find("saml:Attribute[@Name='group_uid']", NS))
        extra.find("saml:AttributeValue", NS).text = "cld-victim"
        statement.append(extra)

    client, response = _post_built(sso, test_idp, duplicate)
    _refused(sso, client, response, caplog, "duplicate_attribute")


def test_comment_injected_name_id_cannot_truncate_to_another_user(sso: Any, test_idp: TestIdP) -> None:
    """``usr-1<!---->.evil`` keeps a valid signature; the identity must not become ``usr-1``."""
    app, host = sso
    client = app.test_client()
    authn = start_login(client)
    attributes = test_idp.attributes("usr-1.evil", "cld-1", "Admin")
    root = tree(test_idp.response_xml(_preset(app), authn.id, attributes))
    for node in [
        assertion_of(root).find("saml:Subject/saml:NameID", NS),
        *list(assertion_of(root).iterfind(".//saml:Attribute[@Name='uid']/saml:AttributeValue", NS)),
    ]:
        from lxml import etree

        node.text = "usr-1"
        comment = etree.Comment("")
        comment.tail = ".evil"
        node.append(comment)
    response = consume(client, encode(text(root)), authn.relay_state)
    # the signature still verifies (c14n drops comments); the identity is read whole, so the
    # signed user logs in as themselves and never as the victim "usr-1"
    assert response.status_code == 302 and err_of(response) is None
    assert set(host.users) == {"usr-1.evil"}
    assert client.get("/page").get_data(as_text=True) == "user:usr-1.evil"


# -- time -------------------------------------------------------------------------------------------


def test_recheck_time_without_a_utc_form_is_refused_before_anything_is_created(
    sso: Any, test_idp: TestIdP, caplog: Any
) -> None:
    """A recheck that parses but overflows in UTC used to fail after login_user: a 500."""
    app, _host = sso
    client = app.test_client()
    authn = start_login(client)
    attributes = _attrs(test_idp, mno_session_recheck="9999-12-31T23:59:59-23:59")
    xml = test_idp.response_xml(_preset(app), authn.id, attributes)
    response = consume(client, encode(xml), authn.relay_state)
    _refused(sso, client, response, caplog, "invalid_attribute")


def test_a_failure_after_login_user_leaves_no_logged_in_session(
    sso: Any, test_idp: TestIdP, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Flask saves the session of a 500 answer: it must not carry a login without its
    Maestrano session (which the single-logout check needs)."""
    from flask_maestrano.sso.session import MaestranoSession

    def broken_store(self: Any, web_session: Any, *, slo: bool) -> None:
        raise RuntimeError("store failed")

    app, _host = sso
    app.config["PROPAGATE_EXCEPTIONS"] = False
    monkeypatch.setattr(MaestranoSession, "store", broken_store)
    client = app.test_client()
    authn = start_login(client)
    xml = test_idp.response_xml(_preset(app), authn.id, _attrs(test_idp))
    response = consume(client, encode(xml), authn.relay_state)
    assert response.status_code == 500
    with client.session_transaction() as sess:
        assert "_user_id" not in sess and "maestrano" not in sess
    assert client.get("/page").get_data(as_text=True) == "user:anonymous"


def test_expired_assertion_is_refused(sso: Any, test_idp: TestIdP, caplog: Any) -> None:
    past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=2)
    client, response = _post_signed(
        sso,
        test_idp,
        not_before=past - dt.timedelta(minutes=5),
        not_on_or_after=past,
        subject_not_on_or_after=past,
    )
    _refused(sso, client, response, caplog, "expired")


def test_expired_subject_confirmation_is_refused(sso: Any, test_idp: TestIdP, caplog: Any) -> None:
    past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=30)
    client, response = _post_signed(sso, test_idp, subject_not_on_or_after=past)
    _refused(sso, client, response, caplog, "subject_confirmation")


def test_not_yet_valid_assertion_is_refused(sso: Any, test_idp: TestIdP, caplog: Any) -> None:
    future = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=30)
    client, response = _post_signed(
        sso, test_idp, not_before=future, not_on_or_after=future + dt.timedelta(hours=1)
    )
    _refused(sso, client, response, caplog, "not_yet_valid")


# -- audience, destination, recipient, issuer --------------------------------------------------------


def test_wrong_audience_is_refused(sso: Any, test_idp: TestIdP, caplog: Any) -> None:
    client, response = _post_signed(sso, test_idp, audience="http://127.0.0.1:5001/")
    _refused(sso, client, response, caplog, "audience")


def test_missing_audience_is_refused(sso: Any, test_idp: TestIdP, caplog: Any) -> None:
    def drop(root: Any) -> None:
        conditions = assertion_of(root).find("saml:Conditions", NS)
        conditions.remove(conditions.find("saml:AudienceRestriction", NS))

    client, response = _post_built(sso, test_idp, drop)
    _refused(sso, client, response, caplog, "audience")


def test_wrong_destination_is_refused(sso: Any, test_idp: TestIdP, caplog: Any) -> None:
    client, response = _post_signed(
        sso, test_idp, destination="https://evil.example/maestrano/auth/saml/consume"
    )
    _refused(sso, client, response, caplog, "destination")


def test_destination_extending_the_consume_url_is_refused(sso: Any, test_idp: TestIdP, caplog: Any) -> None:
    """python3-saml accepts a Destination that merely starts with the ACS URL."""
    client, response = _post_signed(sso, test_idp, destination=ACS + "/../../evil")
    _refused(sso, client, response, caplog, "destination")


def test_missing_destination_is_refused(sso: Any, test_idp: TestIdP, caplog: Any) -> None:
    def drop(root: Any) -> None:
        del root.attrib["Destination"]

    client, response = _post_signed(sso, test_idp, drop)
    _refused(sso, client, response, caplog, "destination")


def test_wrong_recipient_is_refused(sso: Any, test_idp: TestIdP, caplog: Any) -> None:
    client, response = _post_signed(sso, test_idp, recipient="https://evil.example/consume")
    _refused(sso, client, response, caplog, "subject_confirmation")


def test_recipient_containing_the_consume_url_is_refused(sso: Any, test_idp: TestIdP, caplog: Any) -> None:
    """python3-saml only checks that the ACS URL is a substring of the Recipient."""
    client, response = _post_signed(sso, test_idp, recipient="https://evil.example/?next=" + ACS)
    _refused(sso, client, response, caplog, "recipient")


def test_missing_recipient_is_refused(sso: Any, test_idp: TestIdP, caplog: Any) -> None:
    def drop(root: Any) -> None:
        data = assertion_of(root).find(
            "saml:Subject/saml:SubjectConfirmation/saml:SubjectConfirmationData", NS
        )
        del data.attrib["Recipient"]

    client, response = _post_built(sso, test_idp, drop)
    _refused(sso, client, response, caplog, "recipient")


def test_issuer_of_another_idp_is_refused(sso: Any, test_idp: TestIdP, caplog: Any) -> None:
    client, response = _post_signed(sso, test_idp, issuer="https://evil.example/api/v1/auth/saml")
    _refused(sso, client, response, caplog, "issuer")


def test_issuer_merely_prefixed_by_the_idp_host_is_refused(sso: Any, test_idp: TestIdP, caplog: Any) -> None:
    app, _host = sso
    idp = _preset(app).sso.idp  # http://localhost:3001
    client, response = _post_signed(sso, test_idp, issuer=idp + ".evil.example/api/v1/auth/saml")
    _refused(sso, client, response, caplog, "issuer")


# -- request state: InResponseTo, RelayState, replay ---------------------------------------------------


def test_wrong_in_response_to_is_refused(sso: Any, test_idp: TestIdP, caplog: Any) -> None:
    app, _host = sso
    client = app.test_client()
    authn = start_login(client)
    saml = test_idp.saml_response(_preset(app), "ONELOGIN_not_the_request", _attrs(test_idp))
    _refused(sso, client, consume(client, saml, authn.relay_state), caplog, "in_response_to")


def test_missing_in_response_to_is_refused(sso: Any, test_idp: TestIdP, caplog: Any) -> None:
    app, _host = sso
    client = app.test_client()
    authn = start_login(client)
    saml = test_idp.saml_response(_preset(app), None, _attrs(test_idp))
    _refused(sso, client, consume(client, saml, authn.relay_state), caplog, "in_response_to")


def test_unsolicited_response_is_refused_without_idp_initiated(
    sso: Any, test_idp: TestIdP, caplog: Any
) -> None:
    app, _host = sso
    client = app.test_client()
    saml = test_idp.saml_response(_preset(app), None, _attrs(test_idp))
    _refused(sso, client, consume(client, saml, None), caplog, "unsolicited")


def test_response_to_a_request_this_app_never_issued_is_refused(
    sso: Any, test_idp: TestIdP, caplog: Any
) -> None:
    app, _host = sso
    client = app.test_client()
    saml = test_idp.saml_response(_preset(app), "ONELOGIN_forged", _attrs(test_idp))
    _refused(sso, client, consume(client, saml, None), caplog, "unknown_request")


def test_forged_relay_state_is_refused(sso: Any, test_idp: TestIdP, caplog: Any) -> None:
    app, _host = sso
    client = app.test_client()
    authn = start_login(client)
    saml = test_idp.saml_response(_preset(app), authn.id, _attrs(test_idp))
    response = consume(client, saml, "A" * 43)
    _refused(sso, client, response, caplog, "unknown_request")


def test_replayed_response_is_refused(sso: Any, test_idp: TestIdP, caplog: Any) -> None:
    app, host = sso
    first = app.test_client()
    authn = start_login(first)
    saml = test_idp.saml_response(_preset(app), authn.id, _attrs(test_idp))
    assert consume(first, saml, authn.relay_state).headers["Location"] == "/"
    calls = list(host.calls)

    attacker = app.test_client()
    response = consume(attacker, saml, authn.relay_state)
    assert err_of(response) == "replay"
    assert host.calls == calls
    assert attacker.get("/page").get_data(as_text=True) == "user:anonymous"
    with attacker.session_transaction() as sess:
        assert "maestrano" not in sess
    assert any("replay" in r.getMessage() for r in caplog.records)


def test_replayed_response_without_relay_state_is_refused(sso: Any, test_idp: TestIdP, caplog: Any) -> None:
    app, host = sso
    first = app.test_client()
    authn = start_login(first)
    saml = test_idp.saml_response(_preset(app), authn.id, _attrs(test_idp))
    assert consume(first, saml, None).headers["Location"] == "/"  # found by InResponseTo
    calls = list(host.calls)
    response = consume(app.test_client(), saml, None)
    assert err_of(response) == "replay" and host.calls == calls


def test_idp_initiated_login_when_enabled_and_its_replay(
    make_app: Any, test_idp: TestIdP, caplog: Any
) -> None:
    app, host = build_host_app(make_app, sso_presets(test_idp, idp_initiated=True))
    client = app.test_client()
    saml = test_idp.saml_response(_preset(app), None, _attrs(test_idp))
    response = consume(client, saml, "https://evil.example/")
    assert response.status_code == 302 and response.headers["Location"] == "/"  # RelayState URL ignored
    assert client.get("/page").get_data(as_text=True) == "user:usr-1"
    calls = list(host.calls)
    again = consume(app.test_client(), saml, "/page")
    assert err_of(again) == "replay" and host.calls == calls


def test_idp_initiated_relative_relay_state_is_followed(make_app: Any, test_idp: TestIdP) -> None:
    app, _host = build_host_app(make_app, sso_presets(test_idp, idp_initiated=True))
    saml = test_idp.saml_response(_preset(app), None, _attrs(test_idp))
    assert consume(app.test_client(), saml, "/page?tab=2").headers["Location"] == "/page?tab=2"


# -- malformed and oversized input -------------------------------------------------------------------


def test_bad_base64_is_a_400(sso: Any, caplog: Any) -> None:
    client = sso[0].test_client()
    response = consume(client, "!!!not base64$$$", None)
    _refused(sso, client, response, caplog, "malformed", 400)
    assert "base64" in response.get_data(as_text=True)


def test_non_xml_is_a_400(sso: Any, caplog: Any) -> None:
    client = sso[0].test_client()
    response = consume(client, base64.b64encode(b"this is not xml at all").decode(), None)
    _refused(sso, client, response, caplog, "malformed", 400)
    assert "XML" in response.get_data(as_text=True)


def test_xml_that_is_not_a_response_is_a_400(sso: Any, caplog: Any) -> None:
    client = sso[0].test_client()
    response = consume(client, base64.b64encode(b"<html><body/></html>").decode(), None)
    _refused(sso, client, response, caplog, "malformed", 400)


def test_xxe_dtd_is_a_400(sso: Any, test_idp: TestIdP, caplog: Any) -> None:
    xml = (
        '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
        '<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="_1" Version="2.0">&xxe;'
        "</samlp:Response>"
    )
    client = sso[0].test_client()
    response = consume(client, encode(xml), None)
    _refused(sso, client, response, caplog, "malformed", 400)
    assert "DTD" in response.get_data(as_text=True) and "root:" not in response.get_data(as_text=True)


def test_billion_laughs_is_a_400(sso: Any, caplog: Any) -> None:
    entities = '<!ENTITY lol "lol">' + "".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10)
    )
    xml = f'<?xml version="1.0"?><!DOCTYPE lolz [{entities}]><lolz>&lol9;</lolz>'
    client = sso[0].test_client()
    response = consume(client, encode(xml), None)
    _refused(sso, client, response, caplog, "malformed", 400)


def test_missing_saml_response_field_is_a_400(sso: Any, caplog: Any) -> None:
    client = sso[0].test_client()
    response = client.post("/maestrano/auth/saml/consume", data={"RelayState": "x"})
    _refused(sso, client, response, caplog, "malformed", 400)


@pytest.mark.parametrize("size", [1024 * 1024, 20 * 1024 * 1024], ids=["1MB", "20MB"])
def test_oversized_body_is_a_413(sso: Any, caplog: Any, size: int) -> None:
    client = sso[0].test_client()
    response = consume(client, "A" * size, None)
    _refused(sso, client, response, caplog, "too_large", 413)


def test_oversized_chunked_body_without_length_is_a_413(sso: Any, caplog: Any) -> None:
    import io

    client = sso[0].test_client()
    body = b"SAMLResponse=" + b"A" * (1024 * 1024)
    response = client.post(
        "/maestrano/auth/saml/consume",
        input_stream=io.BytesIO(body),
        headers={"Content-Type": "application/x-www-form-urlencoded", "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},  # what a server sets for a chunked body
    )
    _refused(sso, client, response, caplog, "too_large", 413)


# -- redirects after login ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "next_value",
    [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example/",
        "javascript:alert(1)",
        "/\t/evil.example",
        "http:/x",
    ],
)
def test_open_redirect_next_values_are_ignored(sso: Any, test_idp: TestIdP, next_value: str) -> None:
    app, _host = sso
    client = app.test_client()
    authn = start_login(client, next=next_value)
    saml = test_idp.saml_response(_preset(app), authn.id, _attrs(test_idp))
    response = consume(client, saml, authn.relay_state)
    assert response.status_code == 302 and response.headers["Location"] == "/"


def test_same_origin_next_is_followed(sso: Any, test_idp: TestIdP) -> None:
    app, _host = sso
    client = app.test_client()
    authn = start_login(client, next="/page?tab=1")
    saml = test_idp.saml_response(_preset(app), authn.id, _attrs(test_idp))
    assert consume(client, saml, authn.relay_state).headers["Location"] == "/page?tab=1"


# -- tenant and group come from the signed assertion and the route -------------------------------------


def test_unsigned_parameters_cannot_change_tenant_or_group(make_app: Any, test_idp: TestIdP) -> None:
    other = TestIdP(name="other-idp")
    presets = {
        "production": preset_data(sso={"x509_certificate": test_idp.cert_pem}),
        "other": preset_data(sso={"x509_certificate": other.cert_pem}),
    }
    app, host = build_host_app(make_app, presets)
    received: list[dict[str, Any]] = []
    signals.login_succeeded.connect(lambda sender, **kw: received.append(kw), app, weak=False)
    client = app.test_client()
    authn = start_login(client, group_id="cld-victim")
    saml = test_idp.saml_response(
        app.extensions["maestrano"].preset("production"), authn.id, _attrs(test_idp)
    )
    response = client.post(
        "/maestrano/auth/saml/consume?preset=other&group_id=cld-victim",
        data={
            "SAMLResponse": saml,
            "RelayState": authn.relay_state,
            "group_id": "cld-victim",
            "preset": "other",
        },
    )
    response = follow_finish(client, response)
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert set(host.groups) == {"cld-1"} and received[0]["preset"] == "production"
    assert maestrano_session(app, client).group_uid == "cld-1"


def test_relay_state_of_another_preset_is_refused(make_app: Any, test_idp: TestIdP, caplog: Any) -> None:
    other = TestIdP(name="other-idp")
    presets = {
        "production": preset_data(sso={"x509_certificate": test_idp.cert_pem}),
        "other": preset_data(sso={"x509_certificate": other.cert_pem}),
    }
    app, host = build_host_app(make_app, presets)
    client = app.test_client()
    authn = start_login(client, "/maestrano/auth/saml/init/other")
    saml = test_idp.saml_response(
        app.extensions["maestrano"].preset("production"), authn.id, _attrs(test_idp)
    )
    response = consume(client, saml, authn.relay_state, "/maestrano/auth/saml/consume/production")
    assert_refused(response, host, client, caplog, "preset_mismatch")


def test_abort_mode_raises_a_403_the_host_can_restyle(make_app: Any, test_idp: TestIdP, caplog: Any) -> None:
    from flask_maestrano.sso import SsoFailed

    app, host = build_host_app(make_app, sso_presets(test_idp), MAESTRANO_SSO_ERROR="abort")

    @app.errorhandler(SsoFailed)
    def refused(error: SsoFailed) -> tuple[str, int]:
        return f"refused: {error.reason}", 403

    client = app.test_client()
    saml = test_idp.saml_response(_preset(app), None, _attrs(test_idp))
    response = consume(client, saml, None)
    assert response.status_code == 403 and response.get_data(as_text=True) == "refused: unsolicited"
    assert_refused(response, host, client, caplog, "unsolicited", 403)


def test_in_response_to_of_another_presets_request_is_refused_without_relay_state(
    make_app: Any, test_idp: TestIdP, caplog: Any
) -> None:
    """An IdP that does not echo RelayState: the request is found by InResponseTo, and a
    request issued for another preset does not make this preset's response solicited."""
    other = TestIdP(name="other-idp")
    presets = {
        "production": preset_data(sso={"x509_certificate": test_idp.cert_pem}),
        "other": preset_data(sso={"x509_certificate": other.cert_pem}),
    }
    app, host = build_host_app(make_app, presets)
    client = app.test_client()
    authn = start_login(client, "/maestrano/auth/saml/init/other")
    saml = test_idp.saml_response(
        app.extensions["maestrano"].preset("production"), authn.id, _attrs(test_idp)
    )
    response = consume(client, saml, None, "/maestrano/auth/saml/consume/production")
    assert_refused(response, host, client, caplog, "preset_mismatch")


# -- the web session at login ------------------------------------------------------------------------


def test_login_starts_from_an_empty_session(sso: Any, test_idp: TestIdP) -> None:
    """No fixation: nothing written before the login (by anyone) survives it."""
    app, _host = sso
    client = app.test_client()
    authn = start_login(client, next="/page")
    with client.session_transaction() as sess:
        sess["planted"] = "by-the-attacker"
        sess["_fresh"] = False
        sess["mno_group_uid"] = "cld-victim"
    saml = test_idp.saml_response(_preset(app), authn.id, _attrs(test_idp))
    response = consume(client, saml, authn.relay_state)
    assert response.status_code == 302 and response.headers["Location"] == "/page"
    with client.session_transaction() as sess:
        assert "planted" not in sess and "mno_group_uid" not in sess
        assert sess["_user_id"] == "usr-1" and sess["_fresh"] is True
    assert maestrano_session(app, client).group_uid == "cld-1"


# -- the signed InResponseTo (preset confusion) -------------------------------------------------------


@pytest.fixture
def shared_idp_presets(make_app: Any, test_idp: TestIdP) -> Any:
    """Two presets trusting the same IdP key on one host; ``beta`` allows IdP-initiated login."""
    presets = {
        "alpha": preset_data(sso={"x509_certificate": test_idp.cert_pem}),
        "beta": preset_data(sso={"x509_certificate": test_idp.cert_pem, "idp_initiated": True}),
    }
    return build_host_app(make_app, presets, MAESTRANO_DEFAULT_PRESET="alpha")


def _post_to_beta_without_outer_irt(
    app: Any, idp: TestIdP, request_id: str, relay_state: str | None = None, client: Any = None
) -> tuple[Any, Any]:
    """Post to beta's consume route a response whose signed assertion answers ``request_id``,
    its unsigned Response-level InResponseTo deleted; ``(client, response)``."""
    client = client or app.test_client()
    beta = app.extensions["maestrano"].preset("beta")
    root = tree(idp.response_xml(beta, request_id, _attrs(idp)))
    del root.attrib["InResponseTo"]
    return client, consume(client, encode(text(root)), relay_state, "/maestrano/auth/saml/consume/beta")


def test_answer_to_another_presets_request_without_outer_in_response_to_is_refused(
    shared_idp_presets: Any, test_idp: TestIdP, caplog: Any
) -> None:
    """Issue 10 item 4: alpha's request, the Response's InResponseTo deleted, posted to beta
    (which allows IdP-initiated login) used to log in under beta."""
    app, host = shared_idp_presets
    client = app.test_client()
    authn = start_login(client, "/maestrano/auth/saml/init/alpha")
    client, response = _post_to_beta_without_outer_irt(app, test_idp, authn.id, client=client)
    assert_refused(response, host, client, caplog, "preset_mismatch")


def test_signed_in_response_to_of_a_consumed_request_is_refused_on_an_idp_initiated_preset(
    shared_idp_presets: Any, test_idp: TestIdP, caplog: Any
) -> None:
    app, host = shared_idp_presets
    first = app.test_client()
    authn = start_login(first, "/maestrano/auth/saml/init/beta")
    beta = app.extensions["maestrano"].preset("beta")
    genuine = test_idp.saml_response(beta, authn.id, _attrs(test_idp))
    assert consume(first, genuine, authn.relay_state, "/maestrano/auth/saml/consume/beta").status_code == 302
    assert first.get("/page").get_data(as_text=True) == "user:usr-1"
    host.users.clear(), host.groups.clear(), host.memberships.clear(), host.calls.clear()
    # a second assertion (another ID) for the same, now consumed, request
    client, response = _post_to_beta_without_outer_irt(app, test_idp, authn.id)
    assert_refused(response, host, client, caplog, "unknown_request")


def test_signed_in_response_to_of_an_unknown_request_is_refused_on_an_idp_initiated_preset(
    shared_idp_presets: Any, test_idp: TestIdP, caplog: Any
) -> None:
    app, host = shared_idp_presets
    client, response = _post_to_beta_without_outer_irt(app, test_idp, "ONELOGIN_never_issued")
    assert_refused(response, host, client, caplog, "unknown_request")


def test_signed_in_response_to_must_match_the_relay_states_request(
    shared_idp_presets: Any, test_idp: TestIdP, caplog: Any
) -> None:
    """beta's own RelayState, but the signed assertion answers alpha's request."""
    app, host = shared_idp_presets
    alpha_request = start_login(app.test_client(), "/maestrano/auth/saml/init/alpha")
    client = app.test_client()
    beta_request = start_login(client, "/maestrano/auth/saml/init/beta")
    client, response = _post_to_beta_without_outer_irt(
        app, test_idp, alpha_request.id, beta_request.relay_state, client
    )
    assert_refused(response, host, client, caplog, "in_response_to")


def test_signed_in_response_to_alone_answers_the_request(shared_idp_presets: Any, test_idp: TestIdP) -> None:
    """The signed value is the one that counts: without the Response's copy the login works."""
    app, host = shared_idp_presets
    client = app.test_client()
    authn = start_login(client, "/maestrano/auth/saml/init/beta", next="/page")
    _client, response = _post_to_beta_without_outer_irt(app, test_idp, authn.id, authn.relay_state, client)
    assert response.status_code == 302 and response.headers["Location"] == "/page"
    assert set(host.users) == {"usr-1"}


def test_confirmations_naming_two_requests_are_refused(sso: Any, test_idp: TestIdP, caplog: Any) -> None:
    """One bearer confirmation answers this request, a second (signed too) another one."""
    app, _host = sso
    client = app.test_client()
    authn = start_login(client)

    def second_confirmation(root: Any) -> None:
        confirmation = assertion_of(root).find("saml:Subject/saml:SubjectConfirmation", NS)
        other = copy.deepcopy(confirmation)
        other.find("saml:SubjectConfirmationData", NS).set("InResponseTo", "ONELOGIN_another_request")
        confirmation.addnext(other)

    xml = build_signed(test_idp, _preset(app), authn.id, _attrs(test_idp), before_signing=second_confirmation)
    response = consume(client, encode(xml), authn.relay_state)
    _refused(sso, client, response, caplog, "in_response_to")
