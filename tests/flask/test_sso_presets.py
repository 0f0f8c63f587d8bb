"""Trust per preset: certificate rotation, presets side by side, legacy fingerprints, routes."""

from __future__ import annotations

import logging
from typing import Any

from flask_maestrano.presets import certificate_fingerprint
from flask_maestrano.testing import TestIdP, login
from tests.support.presets import preset_data
from tests.support.saml import assert_refused, build_host_app, consume, err_of, start_login


def _attrs(idp: TestIdP) -> dict[str, str]:
    return idp.attributes("usr-1", "cld-1", "Admin")


def test_rotation_accepts_a_response_signed_by_the_second_trusted_certificate(make_app: Any) -> None:
    old, new = TestIdP(name="old-idp"), TestIdP(name="new-idp")
    presets = {"production": preset_data(sso={"x509_certificates": [old.cert_pem, new.cert_pem]})}
    app, host = build_host_app(make_app, presets)
    for idp, uid in ((new, "usr-new"), (old, "usr-old")):
        client = app.test_client()
        assert login(client, idp, uid=uid).headers["Location"] == "/"
        assert client.get("/page").get_data(as_text=True) == f"user:{uid}"
    assert set(host.users) == {"usr-new", "usr-old"}


def test_untrusted_certificate_is_refused_during_rotation(make_app: Any, caplog: Any) -> None:
    old, new, stranger = TestIdP(name="old"), TestIdP(name="new"), TestIdP(name="stranger")
    presets = {"production": preset_data(sso={"x509_certificates": [old.cert_pem, new.cert_pem]})}
    app, host = build_host_app(make_app, presets)
    client = app.test_client()
    authn = start_login(client)
    preset = app.extensions["maestrano"].preset()
    response = consume(client, stranger.saml_response(preset, authn.id, _attrs(stranger)), authn.relay_state)
    assert_refused(response, host, client, caplog, "invalid_signature")


def _two_presets(make_app: Any) -> tuple[Any, Any, TestIdP, TestIdP]:
    idp_a, idp_b = TestIdP(name="idp-a"), TestIdP(name="idp-b")
    presets = {
        "alpha": preset_data(api={"id": "app-a"}, sso={"x509_certificate": idp_a.cert_pem}),
        "beta": preset_data(api={"id": "app-b"}, sso={"x509_certificate": idp_b.cert_pem}),
    }
    app, host = build_host_app(make_app, presets, MAESTRANO_DEFAULT_PRESET="alpha")
    return app, host, idp_a, idp_b


def test_two_presets_each_log_in_with_their_own_idp(make_app: Any) -> None:
    app, _host, idp_a, idp_b = _two_presets(make_app)
    client_a, client_b = app.test_client(), app.test_client()
    assert login(client_a, idp_a, preset="alpha", uid="usr-a").headers["Location"] == "/"
    assert login(client_b, idp_b, preset="beta", uid="usr-b").headers["Location"] == "/"
    assert client_a.get("/page").get_data(as_text=True) == "user:usr-a"
    assert client_b.get("/page").get_data(as_text=True) == "user:usr-b"


def test_init_issues_each_presets_own_issuer(make_app: Any) -> None:
    app, _host, _a, _b = _two_presets(make_app)
    client = app.test_client()
    assert start_login(client, "/maestrano/auth/saml/init/alpha").issuer == "app-a"
    assert start_login(client, "/maestrano/auth/saml/init/beta").issuer == "app-b"
    assert client.get("/maestrano/auth/saml/init/nope").status_code == 404


def test_response_of_one_presets_idp_is_refused_by_the_other(make_app: Any, caplog: Any) -> None:
    app, host, idp_a, _idp_b = _two_presets(make_app)
    client = app.test_client()
    authn = start_login(client, "/maestrano/auth/saml/init/beta")
    beta = app.extensions["maestrano"].preset("beta")
    saml = idp_a.saml_response(beta, authn.id, _attrs(idp_a))  # alpha's IdP, for beta's request
    response = consume(client, saml, authn.relay_state, "/maestrano/auth/saml/consume/beta")
    assert_refused(response, host, client, caplog, "invalid_signature")


def test_legacy_fingerprint_only_preset_logs_a_warning_and_works(make_app: Any, caplog: Any) -> None:
    idp = TestIdP(name="legacy")
    caplog.set_level(logging.WARNING, logger="flask_maestrano")
    presets = {"production": preset_data(sso={"x509_fingerprint": certificate_fingerprint(idp.cert_pem)})}
    app, _host = build_host_app(make_app, presets)
    assert app.extensions["maestrano"].preset().sso.x509_certificates == ()
    assert any("fingerprint only" in r.getMessage() for r in caplog.records)
    client = app.test_client()
    assert login(client, idp).headers["Location"] == "/"
    attacker = TestIdP(name="attacker")
    other = app.test_client()
    authn = start_login(other)
    saml = attacker.saml_response(app.extensions["maestrano"].preset(), authn.id, _attrs(attacker))
    assert err_of(consume(other, saml, authn.relay_state)) == "invalid_signature"


def test_developer_platform_query_paths_route_to_their_preset(make_app: Any) -> None:
    idp = TestIdP(name="devpl")
    presets = {
        "maestrano-uat": preset_data(
            api={"id": "app-uat"},
            sso={
                "x509_certificate": idp.cert_pem,
                "init_path": "/maestrano/init/?marketplace=maestrano-uat",
                "consume_path": "/maestrano/consume/?marketplace=maestrano-uat",
            },
        )
    }
    app, host = build_host_app(make_app, presets)
    client = app.test_client()
    authn = start_login(client, "/maestrano/init/", marketplace="maestrano-uat", group_id="cld-1")
    assert authn.issuer == "app-uat" and authn.params["group_id"] == "cld-1"
    assert authn.params["marketplace"] == "maestrano-uat"
    assert authn.acs_url == "http://127.0.0.1:5000/maestrano/consume/?marketplace=maestrano-uat"
    preset = app.extensions["maestrano"].preset()
    saml = idp.saml_response(preset, authn.id, _attrs(idp))
    response = consume(client, saml, authn.relay_state, "/maestrano/consume/?marketplace=maestrano-uat")
    assert response.headers["Location"] == "/" and set(host.users) == {"usr-1"}


def test_acs_url_comes_from_configuration_not_host_headers(make_app: Any, caplog: Any) -> None:
    idp = TestIdP(name="hosts")
    app, host = build_host_app(make_app, {"production": preset_data(sso={"x509_certificate": idp.cert_pem})})
    client = app.test_client()
    authn = start_login(client)
    preset = app.extensions["maestrano"].preset()
    evil = "https://evil.example/maestrano/auth/saml/consume"
    saml = idp.saml_response(preset, authn.id, _attrs(idp), destination=evil, recipient=evil)
    response = client.post(
        "/maestrano/auth/saml/consume",
        data={"SAMLResponse": saml, "RelayState": authn.relay_state},
        headers={"Host": "evil.example", "X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"},
        base_url="https://evil.example",
    )
    assert_refused(response, host, client, caplog, "destination")


def test_legacy_session_group_is_forwarded_when_init_has_no_group_id(
    make_app: Any, test_idp: TestIdP
) -> None:
    app, _host = build_host_app(
        make_app, {"production": preset_data(sso={"x509_certificate": test_idp.cert_pem})}
    )
    client = app.test_client()
    with client.session_transaction() as sess:
        sess["mno_group_uid"] = "cld-legacy"
    assert start_login(client).params["group_id"] == "cld-legacy"
    assert start_login(client, group_id="cld-2").params["group_id"] == "cld-2"


def test_sso_disabled_preset_has_no_init_or_consume(make_app: Any, test_idp: TestIdP) -> None:
    presets = {"production": preset_data(sso={"enabled": False, "x509_certificate": test_idp.cert_pem})}
    app, host = build_host_app(make_app, presets)
    client = app.test_client()
    assert client.get("/maestrano/auth/saml/init").status_code == 404
    preset = app.extensions["maestrano"].preset()
    saml = test_idp.saml_response(preset, None, _attrs(test_idp))
    assert consume(client, saml, None).status_code == 404 and host.empty


def test_logout_of_a_user_who_did_not_come_through_maestrano_goes_to_default(
    make_app: Any, test_idp: TestIdP
) -> None:
    from flask_maestrano.sso import logout_url, maestrano_logout

    app, _host = build_host_app(
        make_app, {"production": preset_data(sso={"x509_certificate": test_idp.cert_pem})}
    )
    with app.test_request_context("/logout"):
        assert logout_url() is None
        assert maestrano_logout("/bye").headers["Location"] == "/bye"
