"""The sandbox IdP over real HTTP: AuthnRequest in, a signed response python3-saml accepts out."""

from __future__ import annotations

import base64
import re
import uuid
import zlib
from typing import Any

import pytest
import requests
from onelogin.saml2.response import OneLogin_Saml2_Response
from onelogin.saml2.settings import OneLogin_Saml2_Settings

from tests.support.pages import hidden_fields

ACS = "http://127.0.0.1:5000/maestrano/auth/saml/consume"
AUDIENCE = "http://127.0.0.1:5000/"
ATTRIBUTES = [
    "mno_uid",
    "mno_session",
    "mno_session_recheck",
    "group_uid",
    "group_name",
    "group_end_free_trial",
    "group_role",
    "group_has_credit_card",
    "group_email",
    "group_currency",
    "group_timezone",
    "group_country",
    "group_city",
    "group_reseller_id",
    "uid",
    "virtual_uid",
    "email",
    "virtual_email",
    "name",
    "surname",
    "country",
    "company_name",
    "app_owner",
    "organizations",
]


def authn_request(app_id: str, idp_url: str, acs: str = ACS) -> tuple[str, str]:
    """An AuthnRequest exactly like the Ruby SDK's (PLATFORM.md 2.3): (request ID, SAMLRequest value)."""
    request_id = f"_{uuid.uuid4()}"
    xml = (
        "<samlp:AuthnRequest xmlns:samlp='urn:oasis:names:tc:SAML:2.0:protocol' "
        f"ID='{request_id}' IssueInstant='2017-01-01T00:00:00Z' Version='2.0' "
        f"Destination='{idp_url}' AssertionConsumerServiceURL='{acs}'>"
        f"<saml:Issuer xmlns:saml='urn:oasis:names:tc:SAML:2.0:assertion'>{app_id}</saml:Issuer>"
        "<samlp:NameIDPolicy xmlns:samlp='urn:oasis:names:tc:SAML:2.0:protocol' AllowCreate='true' "
        "Format='urn:oasis:names:tc:SAML:2.0:nameid-format:persistent'/></samlp:AuthnRequest>"
    )
    deflated = zlib.compress(xml.encode(), 9)[2:-4]  # raw DEFLATE, as Ruby's [2..-5]
    encoded = base64.encodebytes(deflated).decode()  # newlines every 76 chars, like Base64.encode64
    return request_id, encoded


def saml_settings(cert_pem: str, issuer: str) -> OneLogin_Saml2_Settings:
    return OneLogin_Saml2_Settings(
        {
            "strict": True,
            "sp": {
                "entityId": AUDIENCE,
                "assertionConsumerService": {
                    "url": ACS,
                    "binding": "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST",
                },
                "NameIDFormat": "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
            },
            "idp": {
                "entityId": issuer,
                "singleSignOnService": {
                    "url": "http://127.0.0.1/idp",
                    "binding": "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect",
                },
                "x509cert": cert_pem,
            },
            "security": {"wantAssertionsSigned": True},
        }
    )


def validate(sandbox: Any, saml_response: str, request_id: str) -> OneLogin_Saml2_Response:
    """Strict python3-saml validation against the certificate the sandbox publishes."""
    cert_pem = requests.get(f"{sandbox.url}/idp/certificate.pem", timeout=10).text
    settings = saml_settings(cert_pem, f"{sandbox.url}/api/v1/auth/saml")
    response = OneLogin_Saml2_Response(settings, saml_response)
    request_data = {
        "https": "off",
        "http_host": "127.0.0.1:5000",
        "script_name": "/maestrano/auth/saml/consume",
        "get_data": {},
        "post_data": {"SAMLResponse": saml_response},
    }
    assert response.is_valid(request_data, request_id, raise_exceptions=True)
    return response


def start(sandbox: Any, browser: requests.Session, **params: str) -> tuple[str, requests.Response]:
    request_id, encoded = authn_request(sandbox.app_id, f"{sandbox.url}/api/v1/auth/saml")
    page = browser.get(
        f"{sandbox.url}/api/v1/auth/saml", params={"SAMLRequest": encoded, **params}, timeout=10
    )
    return request_id, page


def test_idp_signs_in_a_new_user_and_company_with_a_response_python3_saml_accepts(make_sandbox: Any) -> None:
    sandbox = make_sandbox()
    browser = requests.Session()
    request_id, page = start(sandbox, browser, RelayState="state-token-123")
    assert page.status_code == 200
    assert "Pick or create a user and a company" in page.text

    form = hidden_fields(page.text)
    assert form["RelayState"] == "state-token-123"
    form.update(
        user="new", name="Grace", surname="Hopper", email="grace@example.com", country="us",
        group="new", group_name="Navy Labs", role="Super Admin",
    )  # fmt: skip
    answer = browser.post(f"{sandbox.url}/api/v1/auth/saml", data=form, timeout=10)
    assert answer.status_code == 200
    assert f'action="{ACS}"' in answer.text
    assert "document.forms[0].submit()" in answer.text
    posted = hidden_fields(answer.text)
    assert posted["RelayState"] == "state-token-123"

    response = validate(sandbox, posted["SAMLResponse"], request_id)
    attributes = {name: values[0] for name, values in response.get_attributes().items()}
    assert set(ATTRIBUTES) <= set(attributes)
    assert attributes["name"] == "Grace" and attributes["surname"] == "Hopper"
    assert attributes["group_name"] == "Navy Labs"
    assert attributes["group_role"] == "Super Admin"
    assert attributes["country"] == "US"
    assert attributes["virtual_uid"] == f"{attributes['uid']}.{attributes['group_uid']}"
    assert response.get_nameid() == attributes["uid"] == attributes["mno_uid"]
    xml = base64.b64decode(posted["SAMLResponse"]).decode()
    assert f'Destination="{ACS}"' in xml and f'Recipient="{ACS}"' in xml
    assert f"<Audience>{AUDIENCE}</Audience>" in xml
    assert f'InResponseTo="{request_id}"' in xml
    assert f"{sandbox.url}/api/v1/auth/saml" in response.get_issuers()


def test_idp_goes_straight_through_for_a_signed_in_member_with_group_id(make_sandbox: Any) -> None:
    sandbox = make_sandbox()
    browser = requests.Session()
    _, page = start(sandbox, browser)
    form = hidden_fields(page.text)
    form.update(user="usr-1", group="cld-1", role="")  # the seeded Jane Doe, Admin of Acme Sandbox
    first = browser.post(f"{sandbox.url}/api/v1/auth/saml", data=form, timeout=10)
    assert "SAMLResponse" in first.text

    request_id, again = start(sandbox, browser, group_id="cld-1")
    assert 'name="SAMLResponse"' in again.text  # no page: answered at once
    response = validate(sandbox, hidden_fields(again.text)["SAMLResponse"], request_id)
    attributes = response.get_attributes()
    assert attributes["group_uid"] == ["cld-1"]
    assert attributes["group_role"] == ["Admin"]


def test_idp_lets_a_member_of_several_companies_pick_one(make_sandbox: Any) -> None:
    sandbox = make_sandbox()
    from flask_maestrano.sandbox.core import database

    db = database(sandbox.app)
    other = db.create_group(name="Second Co")
    db.set_membership(other, "usr-1", "Member")
    browser = requests.Session()
    _, page = start(sandbox, browser)
    form = hidden_fields(page.text)
    form.update(user="usr-1", group="cld-1", role="")
    browser.post(f"{sandbox.url}/api/v1/auth/saml", data=form, timeout=10)

    _, choose = start(sandbox, browser)  # no group_id: two companies to choose from
    assert "Continue as Jane Doe" in choose.text
    assert "Use Acme Sandbox" in choose.text and "Use Second Co" in choose.text
    pick = hidden_fields(choose.text, form_index=1)
    assert pick["group"] == other
    answer = browser.post(f"{sandbox.url}/api/v1/auth/saml", data=pick, timeout=10)
    xml = base64.b64decode(hidden_fields(answer.text)["SAMLResponse"]).decode()
    assert f"<AttributeValue>{other}</AttributeValue>" in xml
    assert "<AttributeValue>Member</AttributeValue>" in xml


def test_idp_answers_wrong_app_id_for_an_unknown_issuer(make_sandbox: Any) -> None:
    sandbox = make_sandbox()
    _, encoded = authn_request("app-unknown", f"{sandbox.url}/api/v1/auth/saml")
    page = requests.get(f"{sandbox.url}/api/v1/auth/saml", params={"SAMLRequest": encoded}, timeout=10)
    assert page.status_code == 400
    assert page.headers["Content-Type"].startswith("text/plain")
    assert page.text == "Wrong APP ID! The API app_id parameter is likely to be misconfigured."


def test_idp_rejects_a_request_that_is_not_deflated_saml(make_sandbox: Any) -> None:
    sandbox = make_sandbox()
    url = f"{sandbox.url}/api/v1/auth/saml"
    assert requests.get(url, timeout=10).status_code == 400
    bad_base64 = requests.get(url, params={"SAMLRequest": "%%%"}, timeout=10)
    assert bad_base64.status_code == 400 and "base64" in bad_base64.text
    not_deflated = base64.b64encode(b"<xml/>").decode()
    answer = requests.get(url, params={"SAMLRequest": not_deflated}, timeout=10)
    assert answer.status_code == 400 and "DEFLATE" in answer.text


def test_idp_form_without_the_sandbox_token_is_refused(make_sandbox: Any) -> None:
    sandbox = make_sandbox()
    browser = requests.Session()
    _, page = start(sandbox, browser)
    form = hidden_fields(page.text)
    form.update(user="usr-1", group="cld-1", csrf_token="forged")
    answer = browser.post(f"{sandbox.url}/api/v1/auth/saml", data=form, timeout=10)
    assert answer.status_code == 400
    assert "SAMLResponse" not in answer.text


def _sign_in_as_jane(sandbox: Any, browser: requests.Session) -> str:
    """Sign the seeded user in to cld-1 through the IdP page; the assertion's XML."""
    _, page = start(sandbox, browser, group_id="cld-1")
    form = hidden_fields(page.text)
    form.update(user="usr-1", group="cld-1", role="")
    answer = browser.post(f"{sandbox.url}/api/v1/auth/saml", data=form, timeout=10)
    return base64.b64decode(hidden_fields(answer.text)["SAMLResponse"]).decode()


def test_session_check_is_valid_until_the_marketplace_session_ends(make_sandbox: Any) -> None:
    sandbox = make_sandbox()
    browser = requests.Session()
    xml = _sign_in_as_jane(sandbox, browser)
    token = re.search(r'<Attribute Name="mno_session"><AttributeValue>([^<]+)<', xml)
    assert token is not None

    check = requests.get(
        f"{sandbox.url}/api/v1/auth/saml/usr-1.cld-1", params={"session": token.group(1)}, timeout=10
    )
    assert check.status_code == 200
    assert check.json()["valid"] is True
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", check.json()["recheck"])

    admin = browser.get(f"{sandbox.url}/", timeout=10)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', admin.text)
    assert csrf is not None
    ended = browser.post(
        f"{sandbox.url}/admin/users/usr-1/end-session", data={"csrf_token": csrf.group(1)}, timeout=10
    )
    assert ended.status_code == 200 and "Ended the marketplace session of usr-1" in ended.text

    after = requests.get(
        f"{sandbox.url}/api/v1/auth/saml/usr-1", params={"session": token.group(1)}, timeout=10
    )
    assert after.json()["valid"] is False


def test_logout_and_unauthorized_pages(make_sandbox: Any) -> None:
    sandbox = make_sandbox()
    logout = requests.get(f"{sandbox.url}/app_logout", params={"user_uid": "usr-1"}, timeout=10)
    assert logout.status_code == 200 and "logged out of the marketplace" in logout.text
    denied = requests.get(f"{sandbox.url}/app_access_unauthorized", params={"err": "<b>x</b>"}, timeout=10)
    assert denied.status_code == 403
    assert "&lt;b&gt;x&lt;/b&gt;" in denied.text  # escaped


def test_certificate_is_generated_once_and_kept_in_the_database(make_sandbox: Any, tmp_path: Any) -> None:
    first = make_sandbox()
    cert = requests.get(f"{first.url}/idp/certificate.pem", timeout=10).text
    assert cert.startswith("-----BEGIN CERTIFICATE-----")
    second = make_sandbox(database=tmp_path / "sandbox.sqlite3")
    assert requests.get(f"{second.url}/idp/certificate.pem", timeout=10).text == cert


def test_idp_keeps_the_role_unless_a_new_one_is_picked(make_sandbox: Any) -> None:
    sandbox = make_sandbox()
    from flask_maestrano.sandbox.core import database

    db = database(sandbox.app)
    browser = requests.Session()
    _, page = start(sandbox, browser)
    form = hidden_fields(page.text)
    form.update(user="new", name="Ann", surname="Lee", email="ann@example.com", group="cld-1", role="")
    answer = browser.post(f"{sandbox.url}/api/v1/auth/saml", data=form, timeout=10)
    assert "SAMLResponse" in answer.text
    assert db.membership("cld-1", "usr-2")["role"] == "Admin"  # type: ignore[index]
    form.update(user="usr-2", role="Power User")
    browser.post(f"{sandbox.url}/api/v1/auth/saml", data=form, timeout=10)
    assert db.membership("cld-1", "usr-2")["role"] == "Power User"  # type: ignore[index]
    form.update(role="")
    browser.post(f"{sandbox.url}/api/v1/auth/saml", data=form, timeout=10)
    assert db.membership("cld-1", "usr-2")["role"] == "Power User"  # type: ignore[index]
    form.update(role="Owner")
    refused = browser.post(f"{sandbox.url}/api/v1/auth/saml", data=form, timeout=10)
    assert refused.status_code == 400 and "The role must be one of" in refused.text
    form.update(user="new", name="", role="")
    incomplete = browser.post(f"{sandbox.url}/api/v1/auth/saml", data=form, timeout=10)
    assert incomplete.status_code == 400 and "needs a first name" in incomplete.text
    assert [u["uid"] for u in db.users()] == ["usr-1", "usr-2"]  # nothing half-created


def test_session_recheck_interval_is_configurable(make_sandbox: Any) -> None:
    import datetime as dt

    sandbox = make_sandbox(SANDBOX_SESSION_RECHECK=20)
    browser = requests.Session()
    xml = _sign_in_as_jane(sandbox, browser)
    token = re.search(r'<Attribute Name="mno_session"><AttributeValue>([^<]+)<', xml)
    recheck = re.search(r'<Attribute Name="mno_session_recheck"><AttributeValue>([^<]+)<', xml)
    assert token is not None and recheck is not None

    def seconds_ahead(value: str) -> float:
        when = dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
        return (when - dt.datetime.now(dt.timezone.utc)).total_seconds()

    assert 10 < seconds_ahead(recheck.group(1)) <= 21
    check = requests.get(
        f"{sandbox.url}/api/v1/auth/saml/usr-1", params={"session": token.group(1)}, timeout=10
    )
    assert 10 < seconds_ahead(check.json()["recheck"]) <= 21


@pytest.mark.parametrize(
    "acs",
    [
        "https://evil.example/acs",
        "http://127.0.0.1:5000/elsewhere",  # the app's host, another path
        "http://127.0.0.1:5001/maestrano/auth/saml/consume",  # another port
        "http://someone@127.0.0.1:5000/maestrano/auth/saml/consume",
        "http://127.0.0.1:5000/maestrano/auth/saml/consume?next=https://evil.example",
    ],
)
def test_idp_posts_a_signed_response_only_to_the_registered_consume_url(make_sandbox: Any, acs: str) -> None:
    sandbox = make_sandbox()
    browser = requests.Session()
    _sign_in_as_jane(sandbox, browser)  # a signed-in member: the IdP would answer at once
    _, encoded = authn_request(sandbox.app_id, f"{sandbox.url}/api/v1/auth/saml", acs=acs)
    link = browser.get(
        f"{sandbox.url}/api/v1/auth/saml", params={"SAMLRequest": encoded, "group_id": "cld-1"}, timeout=10
    )
    assert link.status_code == 400
    assert "SAMLResponse" not in link.text and "<form" not in link.text
    assert f"{acs} is not the consume URL registered for app-sandbox ({ACS})" in link.text
    # the sign-in form cannot be pointed there either
    _, page = start(sandbox, browser)
    form = hidden_fields(page.text)
    form.update(SAMLRequest=encoded, user="usr-1", group="cld-1", role="")
    posted = browser.post(f"{sandbox.url}/api/v1/auth/saml", data=form, timeout=10)
    assert posted.status_code == 400 and "SAMLResponse" not in posted.text


def test_idp_accepts_the_consume_url_written_differently(make_sandbox: Any) -> None:
    sandbox = make_sandbox()
    browser = requests.Session()
    _sign_in_as_jane(sandbox, browser)
    _, encoded = authn_request(
        sandbox.app_id,
        f"{sandbox.url}/api/v1/auth/saml",
        acs="HTTP://127.0.0.1:5000/maestrano/auth/saml/consume",
    )
    again = browser.get(
        f"{sandbox.url}/api/v1/auth/saml", params={"SAMLRequest": encoded, "group_id": "cld-1"}, timeout=10
    )
    assert again.status_code == 200 and 'name="SAMLResponse"' in again.text
