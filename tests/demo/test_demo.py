"""The demo app (examples/demo) through Flask's test client, on a real SQLite file.

The loader callbacks get identities built exactly as single sign-on builds them; the
platform's calls (webhooks, notifications) go through the extension's real routes. The
whole flow through the sandbox, in a browser, is in test_browser_demo.py.
"""

from __future__ import annotations

import base64
import re
import sqlite3
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
from flask_maestrano.testing import TestIdP, login
from tests.support.presets import preset_data

API_ID, API_KEY = "app-test", "test-secret-key"


def demo_app(tmp_path: Any, existing: list[dict[str, str]], sso: dict[str, str] | None = None) -> Flask:
    """The demo on a SQLite file; api.host points at a closed port, so billing calls fail fast
    (the demo logs and retries later)."""
    dead = "http://127.0.0.1:9"
    preset = preset_data(api={"host": dead}, connec={"host": dead}, **({"sso": sso} if sso else {}))
    return create_app(
        {
            "TESTING": True,
            "WTF_CSRF_ENABLED": False,
            "MAESTRANO_PRESETS": {"sandbox": preset},
            "MAESTRANO_IMPORT_ON_FIRST_LOGIN": False,
            "MAESTRANO_HTTP_RETRIES": 0,
            "MAESTRANO_SYNC_RETRIES": 0,
            "DEMO_EXISTING_USERS": existing,
        },
        instance_path=str(tmp_path / "instance"),
    )


@pytest.fixture
def app(tmp_path: Any) -> Iterator[Flask]:
    app = demo_app(tmp_path, [{"email": "legacy@example.com", "first_name": "Old", "last_name": "Timer"}])
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


@pytest.fixture
def sso_app(tmp_path: Any, test_idp: TestIdP) -> Iterator[Flask]:
    """The demo trusting the test IdP, so logins go through the real SSO views."""
    existing = [
        {"email": "legacy@example.com", "first_name": "Old", "last_name": "Timer", "password": "pw-1"},
        {"email": "kate@example.com", "first_name": "Kate", "last_name": "Local", "password": "pw-2"},
        {"email": "nopass@example.com", "first_name": "No", "last_name": "Password"},
    ]
    sso = {"x509_certificate": test_idp.cert_pem, "idp": "http://127.0.0.1:9/api/v1/auth/saml"}
    app = demo_app(tmp_path, existing, sso)
    yield app
    with app.app_context():
        db.engine.dispose()


def demo_login(client: FlaskClient, idp: TestIdP, uid: str, email: str) -> str:
    """Single sign-on through the demo's real views; where the consume view sent the browser."""
    response = login(client, idp, uid=uid, group_uid="cld-1", email=email, name="Ann", surname="Smith")
    assert response.status_code == 302, response.get_data(as_text=True)
    return str(response.headers["Location"])


def account(app: Flask, email: str) -> tuple[str | None, str | None, bool]:
    with app.app_context():
        user = User.query.filter_by(email=email).one()
        return user.uid, user.preset, user.migrated_at is not None


def test_existing_account_is_linked_once_its_owner_confirms_with_the_local_password(
    sso_app: Flask, test_idp: TestIdP
) -> None:
    client = sso_app.test_client()
    assert demo_login(client, test_idp, "usr-9", "Legacy@example.com") == "/link"
    assert text_of(client.get("/").get_data(as_text=True), "user-name") is None  # not logged in
    page = client.get("/link").get_data(as_text=True)
    assert text_of(page, "link-email") == "Legacy@example.com" and 'id="link-password"' in page
    assert account(sso_app, "legacy@example.com") == (None, None, False)
    wrong = client.post("/link", data={"password": "pw-2"})
    assert wrong.status_code == 400 and "not the password" in wrong.get_data(as_text=True)
    assert account(sso_app, "legacy@example.com") == (None, None, False)
    confirmed = client.post("/link", data={"password": "pw-1"})
    assert confirmed.headers["Location"] == "/maestrano/auth/saml/init/sandbox?group_id=cld-1"
    assert account(sso_app, "legacy@example.com") == ("usr-9", "sandbox", True)
    # signing in again through the marketplace lands in the linked account
    assert demo_login(client, test_idp, "usr-9", "Legacy@example.com") == "/"
    html = client.get("/").get_data(as_text=True)
    assert (text_of(html, "user-name"), text_of(html, "user-email")) == ("Ann Smith", "Legacy@example.com")
    with sso_app.app_context():
        assert User.query.count() == 3


def test_kelvin_sign_look_alike_does_not_take_over_an_existing_account(
    sso_app: Flask, test_idp: TestIdP
) -> None:
    with sso_app.app_context():
        kate = User.query.filter_by(email="kate@example.com").one().id
    client = sso_app.test_client()
    # U+212A KELVIN SIGN: "\u212aate".lower() == "kate", but it is not the same address
    assert demo_login(client, test_idp, "usr-evil", "\u212aate@example.com") == "/"
    assert text_of(client.get("/").get_data(as_text=True), "user-email") == "\u212aate@example.com"
    with sso_app.app_context():
        victim = db.session.get(User, kate)
        assert (victim.uid, victim.email, victim.migrated_at) == (None, "kate@example.com", None)
        assert User.query.count() == 4


def test_declining_the_link_signs_in_as_a_new_account(sso_app: Flask, test_idp: TestIdP) -> None:
    client = sso_app.test_client()
    assert demo_login(client, test_idp, "usr-5", "nopass@example.com") == "/link"
    # an account without a local password can never be confirmed
    assert client.post("/link", data={"password": ""}).status_code == 400
    declined = client.post("/link/decline")
    assert declined.headers["Location"] == "/maestrano/auth/saml/init/sandbox?group_id=cld-1"
    assert demo_login(client, test_idp, "usr-5", "nopass@example.com") == "/"
    with sso_app.app_context():
        assert User.query.filter_by(uid="usr-5").one().email == "nopass@example.com"
        assert User.query.filter_by(email="nopass@example.com", uid=None).count() == 1


def test_an_account_linked_to_a_marketplace_user_is_never_relinked(sso_app: Flask, test_idp: TestIdP) -> None:
    first, second = sso_app.test_client(), sso_app.test_client()
    assert demo_login(first, test_idp, "usr-9", "legacy@example.com") == "/link"
    assert demo_login(second, test_idp, "usr-10", "legacy@example.com") == "/link"
    assert first.post("/link", data={"password": "pw-1"}).status_code == 302
    assert second.post("/link", data={"password": "pw-1"}).status_code == 409
    assert account(sso_app, "legacy@example.com")[0] == "usr-9"
    assert demo_login(second, test_idp, "usr-10", "legacy@example.com") == "/"  # a new account now


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


def test_the_link_page_locks_after_too_many_wrong_passwords(sso_app: Flask, test_idp: TestIdP) -> None:
    sso_app.config["DEMO_LINK_MAX_FAILURES"] = 3
    client = sso_app.test_client()
    assert demo_login(client, test_idp, "usr-9", "legacy@example.com") == "/link"
    assert [client.post("/link", data={"password": f"guess-{n}"}).status_code for n in range(3)] == [400] * 3
    # locked: even the right password links nothing until the lock ends
    locked = client.post("/link", data={"password": "pw-1"})
    assert locked.status_code == 429 and "Too many wrong passwords" in locked.get_data(as_text=True)
    assert account(sso_app, "legacy@example.com") == (None, None, False)
    with sso_app.app_context():
        User.query.filter_by(email="legacy@example.com").update({"link_locked_until": None})
        db.session.commit()
    assert client.post("/link", data={"password": "pw-1"}).status_code == 302
    assert account(sso_app, "legacy@example.com") == ("usr-9", "sandbox", True)


def test_a_database_from_before_the_migration_policy_is_upgraded_in_place(tmp_path: Any) -> None:
    (tmp_path / "instance").mkdir()
    with sqlite3.connect(tmp_path / "instance" / "demo.sqlite3") as conn:
        conn.execute(
            'CREATE TABLE "user" (id INTEGER PRIMARY KEY, preset VARCHAR(100), uid VARCHAR(200), '
            "email VARCHAR(320) NOT NULL, first_name VARCHAR(200) NOT NULL, last_name VARCHAR(200) NOT NULL, "
            "created_at DATETIME NOT NULL, migrated_at DATETIME, UNIQUE (preset, uid))"
        )
        conn.execute(
            'INSERT INTO "user" (email, first_name, last_name, created_at) '
            "VALUES ('Old@Example.com', 'Old', 'Timer', '2020-01-01 00:00:00')"
        )
    app = demo_app(tmp_path, [])
    with app.app_context():
        user = User.query.one()
        assert (user.email_key, user.password_hash, user.link_failures) == ("old@example.com", None, 0)
        db.engine.dispose()
    again = demo_app(tmp_path, [])  # a second start finds nothing to do
    with again.app_context():
        assert User.query.one().email_key == "old@example.com"
        db.engine.dispose()


def test_the_demo_never_runs_two_subscriptions_for_one_company(tmp_path: Any, make_sandbox: Any) -> None:
    """Against the sandbox's account API: a recurring bill the platform still runs is adopted."""
    from flask_maestrano.sandbox import preset_for

    sandbox = make_sandbox(SANDBOX_SEED=False, SANDBOX_URL=None)
    group_uid = database_group(sandbox.app)
    app = create_app(
        {
            "TESTING": True,
            "MAESTRANO_PRESETS": {"sandbox": preset_for(sandbox.app, "app-sandbox", sandbox_url=sandbox.url)},
            "MAESTRANO_IMPORT_ON_FIRST_LOGIN": False,
        },
        instance_path=str(tmp_path / "instance"),
    )
    client = app.test_client()
    sso_login(app, client, identity(group_uid=group_uid))
    with app.app_context():
        first = Company.query.one().recurring_bill_id
        assert first is not None
        Company.query.one().recurring_bill_id = None  # the demo lost its record of the bill
        db.session.commit()
    sso_login(app, client, identity(group_uid=group_uid))
    with app.app_context():
        assert Company.query.one().recurring_bill_id == first
        db.engine.dispose()
    bills = client_bills(sandbox)
    assert [(bill["id"], bill["status"]) for bill in bills] == [(first, "submitted")]


def database_group(sandbox: Flask) -> str:
    from flask_maestrano.sandbox.core import database

    group_uid = database(sandbox).create_group(name="Acme")
    database(sandbox).attach("app-sandbox", group_uid)
    return group_uid


def client_bills(sandbox: Any) -> list[dict[str, Any]]:
    import requests

    answer = requests.get(f"{sandbox.url}/api/v1/account/recurring_bills", auth=sandbox.auth, timeout=10)
    assert answer.status_code == 200, answer.text
    return list(answer.json()["data"])
