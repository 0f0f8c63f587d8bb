"""The demo app (examples/demo) through Flask's test client, on a real SQLite file.

The loader callbacks get identities built exactly as single sign-on builds them; the
platform's calls (webhooks, notifications) go through the extension's real routes. The
whole flow through the sandbox, in a browser, is in test_browser_demo.py.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from examples.demo import create_app
from examples.demo.integration import (
    COMPANY_KEY,
    cancel_company,
    find_or_create_company,
    find_or_create_user,
    link_membership,
)
from examples.demo.models import Company, Contact, Invoice, Membership, User, db
from flask_maestrano import get_state
from flask_maestrano.sso.identity import Identity

from .conftest import preset_data

API_ID, API_KEY = "app-test", "test-secret-key"


@pytest.fixture
def app(tmp_path: Any) -> Iterator[Flask]:
    # api.host points at a closed port: billing calls fail fast (the demo logs and retries later)
    preset = preset_data(api={"host": "http://127.0.0.1:9"}, connec={"host": "http://127.0.0.1:9"})
    app = create_app(
        {
            "TESTING": True,
            "WTF_CSRF_ENABLED": False,
            "MAESTRANO_PRESETS": {"sandbox": preset},
            "MAESTRANO_IMPORT_ON_FIRST_LOGIN": False,
            "MAESTRANO_HTTP_RETRIES": 0,
            "MAESTRANO_SYNC_RETRIES": 0,
            "DEMO_EXISTING_USERS": [
                {"email": "legacy@example.com", "first_name": "Old", "last_name": "Timer"}
            ],
        },
        instance_path=str(tmp_path / "instance"),
    )
    yield app
    with app.app_context():
        db.engine.dispose()


def identity(
    uid: str = "usr-1",
    group_uid: str = "cld-1",
    *,
    email: str = "ann@example.com",
    role: str = "Admin",
    group_name: str = "Acme",
) -> Identity:
    attributes = {
        "uid": uid,
        "mno_session": "token-1",
        "mno_session_recheck": "2099-01-01T00:00:00Z",
        "group_uid": group_uid,
        "group_name": group_name,
        "group_end_free_trial": "2099-02-01T00:00:00Z",
        "group_role": role,
        "group_currency": "USD",
        "email": email,
        "name": "Ann",
        "surname": "Smith",
    }
    return Identity.from_attributes(
        {k: [v] for k, v in attributes.items()}, name_id=uid, preset="sandbox", creation_mode="real"
    )


def sso_login(app: Flask, client: FlaskClient, who: Identity) -> tuple[int, int, bool, bool]:
    """Run the demo's loader callbacks as the consume view does; log the browser in."""
    preset = get_state(app).preset("sandbox")
    with app.test_request_context():
        company, group_created = find_or_create_company(who.group, preset)
        user, user_created = find_or_create_user(who.user, company, preset)
        link_membership(user, company, who.membership, preset)
        ids = user.id, company.id
    with client.session_transaction() as session:
        session["_user_id"] = str(ids[0])
        session["_fresh"] = True
        session[COMPANY_KEY] = ids[1]
    return ids[0], ids[1], group_created, user_created


def text_of(html: str, element_id: str) -> str | None:
    match = re.search(rf'id="{element_id}"[^>]*>([^<]*)<', html)
    return match.group(1).strip() if match else None


def basic_auth() -> dict[str, str]:
    token = base64.b64encode(f"{API_ID}:{API_KEY}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def test_logged_out_home_page_links_to_single_sign_on(app: Flask) -> None:
    html = app.test_client().get("/").get_data(as_text=True)
    assert 'id="login-link" class="button" href="/maestrano/auth/saml/init"' in html
    assert text_of(html, "user-name") is None


def test_several_marketplaces_without_a_default_get_one_working_link_each(tmp_path: Any) -> None:
    presets = {
        name: preset_data(api={"id": f"app-{name}", "host": "http://127.0.0.1:9"})
        for name in ("acme-market", "maestrano-uat")
    }
    demo = create_app(
        {"TESTING": True, "MAESTRANO_PRESETS": presets}, instance_path=str(tmp_path / "instance")
    )
    client = demo.test_client()
    html = client.get("/").get_data(as_text=True)
    links = re.findall(r'href="([^"]+)" data-marketplace="([^"]+)"', html)
    assert links == [
        ("/maestrano/auth/saml/init/acme-market", "acme-market"),
        ("/maestrano/auth/saml/init/maestrano-uat", "maestrano-uat"),
    ]
    for href, _name in links:
        assert client.get(href).status_code == 302
    with demo.app_context():
        db.engine.dispose()


def test_first_login_creates_company_user_and_membership_shown_on_home_page(app: Flask) -> None:
    client = app.test_client()
    _, _, group_created, user_created = sso_login(app, client, identity())
    assert group_created and user_created
    html = client.get("/").get_data(as_text=True)
    assert text_of(html, "user-name") == "Ann Smith"
    assert text_of(html, "user-email") == "ann@example.com"
    assert text_of(html, "company-name") == "Acme"
    assert text_of(html, "user-role") == "Admin"
    assert 'id="logout-link"' in html
    # billing could not reach the platform: the login still worked, retried next time
    assert "not set up yet" in html
    with app.app_context():
        company = Company.query.one()
        assert (company.uid, company.preset, company.free_trial_end_at.year) == ("cld-1", "sandbox", 2099)


def test_subsequent_login_finds_the_same_user_and_updates_the_role(app: Flask) -> None:
    client = app.test_client()
    first = sso_login(app, client, identity(role="Member"))
    again = sso_login(app, client, identity(role="Super Admin"))
    assert again[:2] == first[:2] and again[2:] == (False, False)
    assert text_of(client.get("/").get_data(as_text=True), "user-role") == "Super Admin"
    with app.app_context():
        assert User.query.count() == 2  # Ann and the pre-existing account
        assert Membership.query.count() == 1


def test_known_user_joining_an_unknown_company_gets_a_second_membership(app: Flask) -> None:
    client = app.test_client()
    user_id, _, _, _ = sso_login(app, client, identity())
    again = sso_login(app, client, identity(group_uid="cld-2", group_name="Globex", role="Member"))
    assert again[0] == user_id and again[2:] == (True, False)
    html = client.get("/").get_data(as_text=True)
    assert (text_of(html, "company-name"), text_of(html, "user-role")) == ("Globex", "Member")
    assert '<a href="/maestrano/auth/saml/init?group_id=cld-1" data-group="cld-1">Acme</a>' in html


def test_existing_account_is_migrated_by_email_on_first_login(app: Flask) -> None:
    with app.app_context():
        legacy_id = User.query.filter_by(email="legacy@example.com").one().id
    client = app.test_client()
    user_id, _, _, user_created = sso_login(app, client, identity(uid="usr-9", email="Legacy@example.com"))
    assert (user_id, user_created) == (legacy_id, False)
    with app.app_context():
        user = db.session.get(User, legacy_id)
        assert (user.uid, user.preset, user.first_name) == ("usr-9", "sandbox", "Ann")
        assert user.migrated_at is not None


def test_cancellation_webhook_ends_the_company_access(app: Flask) -> None:
    client = app.test_client()
    sso_login(app, client, identity())
    response = client.delete("/maestrano/account/groups/cld-1", headers=basic_auth())
    assert response.status_code == 200
    html = client.get("/").get_data(as_text=True)
    assert 'id="access-ended"' in html and 'id="contacts"' not in html
    with app.app_context():
        contact_id = _add_contact(Company.query.one())
    page = client.get(f"/contacts/{contact_id}/edit")
    assert page.status_code == 403 and "cancelled" in page.get_data(as_text=True)
    # delivered again: still cancelled, still 200
    assert client.delete("/maestrano/account/groups/cld-1", headers=basic_auth()).status_code == 200


def test_cancellation_webhook_with_wrong_credentials_changes_nothing(app: Flask) -> None:
    client = app.test_client()
    sso_login(app, client, identity())
    response = client.delete("/maestrano/account/groups/cld-1", headers={"Authorization": "Basic eDp5"})
    assert response.status_code == 401 and response.get_json() == {"error": "Invalid credentials"}
    assert 'id="contacts"' in client.get("/").get_data(as_text=True)


def test_member_removal_webhook_ends_the_member_access(app: Flask) -> None:
    client = app.test_client()
    sso_login(app, client, identity())
    response = client.delete("/maestrano/account/groups/cld-1/users/usr-1", headers=basic_auth())
    assert response.status_code == 200
    html = client.get("/").get_data(as_text=True)
    assert 'id="no-access"' in html and text_of(html, "user-role") is None
    with app.app_context():
        assert Membership.query.count() == 0


def _add_contact(company: Company, **fields: Any) -> int:
    contact = Contact(company=company, kind="organization", name="Acme Corp", **fields)
    db.session.add(contact)
    db.session.commit()
    return int(contact.id)


def test_notification_creates_then_updates_contacts_and_invoices(app: Flask) -> None:
    client = app.test_client()
    sso_login(app, client, identity())
    body = {
        "organizations": [
            {"id": "org-1", "group_id": "cld-1", "name": "DoeCorp", "email": {"address": "a@doe"}}
        ],
        "people": [{"id": "p-1", "group_id": "cld-1", "first_name": "John", "last_name": "Doe"}],
        "invoices": [
            {
                "id": "inv-1",
                "group_id": "cld-1",
                "transaction_number": "INV-7",
                "status": "DRAFT",
                "amount": {"total_amount": 12.5, "currency": "USD"},
            }
        ],
        "items": [{"id": "it-1", "group_id": "cld-1", "name": "ignored"}],
    }
    assert client.post("/maestrano/connec/notifications", json=body, headers=basic_auth()).status_code == 200
    html = client.get("/").get_data(as_text=True)
    assert "DoeCorp" in html and "John Doe" in html and "INV-7" in html and "12.50 USD" in html
    update = {"organizations": [{"id": "org-1", "group_id": "cld-1", "name": "DoeCorp Renamed"}]}
    assert (
        client.post("/maestrano/connec/notifications", json=update, headers=basic_auth()).status_code == 200
    )
    with app.app_context():
        assert [c.name for c in Contact.query.order_by(Contact.name)] == ["DoeCorp Renamed", "John Doe"]
        assert Invoice.query.one().status == "DRAFT"


def test_notification_for_an_unknown_or_cancelled_company_is_ignored(app: Flask) -> None:
    client = app.test_client()
    sso_login(app, client, identity())
    with app.test_request_context():
        cancel_company("cld-1", get_state(app).preset("sandbox"))
    body = {
        "people": [
            {"id": "p-1", "group_id": "cld-1", "first_name": "John"},
            {"id": "p-2", "group_id": "cld-5"},
        ]
    }
    assert client.post("/maestrano/connec/notifications", json=body, headers=basic_auth()).status_code == 200
    with app.app_context():
        assert Contact.query.count() == 0


def test_editing_a_contact_without_a_name_is_refused(app: Flask) -> None:
    client = app.test_client()
    sso_login(app, client, identity())
    with app.app_context():
        contact_id = _add_contact(Company.query.one())
    response = client.post(f"/contacts/{contact_id}/edit", data={"name": " ", "email": ""})
    assert response.status_code == 400 and "An organization needs a name." in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Contact, contact_id).name == "Acme Corp"


def test_another_company_contact_is_not_found(app: Flask) -> None:
    client = app.test_client()
    sso_login(app, client, identity())
    sso_login(app, client, identity(group_uid="cld-2", group_name="Globex"))
    with app.app_context():
        other = _add_contact(Company.query.filter_by(uid="cld-1").one())
    assert client.get(f"/contacts/{other}/edit").status_code == 404


def test_company_pages_need_a_login(app: Flask) -> None:
    assert app.test_client().post("/storage").status_code == 401


def test_edit_kept_locally_when_connec_refuses_the_push(app: Flask) -> None:
    client = app.test_client()
    sso_login(app, client, identity())
    with app.app_context():
        contact_id = _add_contact(Company.query.one())
    client.post(f"/contacts/{contact_id}/edit", data={"name": "Acme Ltd", "email": ""})
    html = client.get("/").get_data(as_text=True)
    assert "Saved Acme Ltd here, but Connec! did not take the change" in html
    with app.app_context():
        assert db.session.get(Contact, contact_id).name == "Acme Ltd"


def test_failed_purchase_grants_nothing(app: Flask) -> None:
    client = app.test_client()
    sso_login(app, client, identity())
    client.post("/storage")
    html = client.get("/").get_data(as_text=True)
    assert "The purchase failed, nothing was billed" in html
    assert text_of(html, "extra-storage") == "0 GB"
    with app.app_context():
        assert Company.query.one().purchases == []


def test_company_that_buys_the_app_again_is_active_again(app: Flask) -> None:
    client = app.test_client()
    sso_login(app, client, identity())
    assert client.delete("/maestrano/account/groups/cld-1", headers=basic_auth()).status_code == 200
    _, _, group_created, _ = sso_login(app, client, identity())
    assert not group_created
    html = client.get("/").get_data(as_text=True)
    assert 'id="access-ended"' not in html and 'id="contacts"' in html
