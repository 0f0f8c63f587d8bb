"""The demo and the sandbox platform in a real browser (Debian's Chromium via Playwright).

Each test serves ``examples.demo.server.build`` (demo + sandbox on one threaded server, as
``make demo`` does) on a free 127.0.0.1 port and drives a fresh browser context through the
integration checklist: single sign-on through the sandbox IdP, a second company, single
logout, logout, cancellation, member removal, Connec! notifications, pushes and billing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from examples.demo.models import Company, Contact, User
from examples.demo.server import APP_ID, EXISTING_PASSWORD, Served, build
from flask_maestrano import get_state, syncing
from flask_maestrano.sandbox import cancel_group, remove_member
from flask_maestrano.sandbox.core import database
from tests.support.clock import ClockAhead as _ClockAhead
from tests.support.presets import JANE_EMAIL
from tests.support.servers import free_port

pytest_plugins = ["tests.support.browser"]
pytestmark = pytest.mark.browser

#: what the sandbox seeds: Jane Doe, Admin of Acme Sandbox, with 3 organizations, 3 people, 2 invoices
SEEDED_CONTACTS = 6


@pytest.fixture
def demo(tmp_path: Path, live_server: Callable[..., Any]) -> Served:
    """Demo + sandbox on a real port; the preset's app.host is that port's URL."""
    port = free_port()
    served = build(f"http://127.0.0.1:{port}", str(tmp_path / "instance"), environ={})
    live_server(served.wsgi, port)
    return served


def jane(served: Served) -> tuple[str, str]:
    """Jane's uid and the uid of her company in the sandbox."""
    db = database(served.sandbox)
    user = next(u for u in db.users() if u["email"] == JANE_EMAIL)
    return user["uid"], db.memberships(user_uid=user["uid"])[0]["group_uid"]


def sign_in(page: Any, served: Served) -> None:
    """From the demo's home page through the sandbox IdP, as Jane, back to the dashboard.

    Jane's account predates the marketplace: at her first login she confirms it is hers
    with its local password, and the sandbox signs her in again, now linked.
    """
    page.goto("/")
    page.click("#login-link")
    expect(page.locator("h1")).to_contain_text("Sign in to Demo CRM")
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.locator("#user-name, #link-password").first).to_be_visible()
    if page.locator("#link-password").count():
        page.fill("#link-password", EXISTING_PASSWORD)
        page.click("#link-confirm")
    expect(page.locator("#user-name")).to_have_text("Jane Doe")
    assert page.url == served.base_url + "/"


def wait_for_import(served: Served, page: Any, count: int = SEEDED_CONTACTS) -> None:
    """The first login's import runs off-request: wait (bounded) for it, then reload."""
    deadline = time.monotonic() + 10
    maestrano = served.demo.extensions["maestrano"].extension
    with served.demo.app_context():
        # every collection (contacts, then invoices...) is in only once the import succeeded
        while Contact.query.count() < count or not all(
            _first_data_in(served, maestrano, company) for company in Company.query.all()
        ):
            assert time.monotonic() < deadline, "the initial Connec! import did not finish in 10 s"
            time.sleep(0.05)
    page.reload()
    expect(page.locator("#contacts tbody tr[data-connec-id]")).to_have_count(count)


def _first_data_in(served: Served, maestrano: Any, company: Company) -> bool:
    """The company's first sync (the demo declares mappings) or plain import has succeeded."""
    preset = maestrano.preset(company.preset)
    sync = syncing.status(served.demo, preset, company.uid)
    if sync is not None and sync.get("status") == "SUCCESS":
        return True
    imported = maestrano.import_status(company.uid, company.preset)
    return imported is not None and imported.state == "succeeded"


def sandbox_entity(served: Served, group_uid: str, connec_id: str) -> dict[str, Any]:
    with database(served.sandbox).connect() as conn:
        row = conn.execute(
            "SELECT data FROM entities WHERE id = ? AND group_id = ?", (connec_id, group_uid)
        ).fetchone()
    return dict(json.loads(row["data"]))


def test_login_from_a_clean_browser_shows_user_company_role_and_imported_data(
    demo: Served, new_page: Callable[..., Any]
) -> None:
    page = new_page(demo.base_url)
    sign_in(page, demo)
    expect(page.locator("#user-email")).to_have_text(JANE_EMAIL)
    expect(page.locator("#company-name")).to_have_text("Acme Sandbox")
    expect(page.locator("#user-role")).to_have_text("Admin")
    expect(page.locator("#logout-link")).to_be_visible()
    # billing was set up on company creation, starting after the free trial
    expect(page.locator("#recurring-bill")).to_contain_text("rbill-")
    # the initial import brought Connec!'s organizations, people and invoices
    wait_for_import(demo, page)
    expect(page.locator("#contacts")).to_contain_text("Acme Corp")
    expect(page.locator("#contacts")).to_contain_text("Ada Lovelace")
    expect(page.locator("#invoices")).to_contain_text("INV-0001")
    # Jane had an account before the app joined the marketplace: it was linked by email
    with demo.demo.app_context():
        user = User.query.filter_by(email=JANE_EMAIL).one()
        assert user.migrated_at is not None and user.uid == jane(demo)[0]


def test_existing_account_is_linked_only_after_its_owner_types_the_local_password(
    demo: Served, new_page: Callable[..., Any]
) -> None:
    page = new_page(demo.base_url)
    page.goto("/")
    page.click("#login-link")
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.locator("#link-email")).to_have_text(JANE_EMAIL)
    assert page.url == demo.base_url + "/link"
    page.fill("#link-password", "not-her-password")
    page.click("#link-confirm")
    expect(page.locator(".flash.error")).to_contain_text("not the password")
    with demo.demo.app_context():
        assert User.query.filter_by(email=JANE_EMAIL).one().uid is None
    page.fill("#link-password", EXISTING_PASSWORD)
    page.click("#link-confirm")
    # linked, then straight back through the sandbox (Jane is signed in there) to the dashboard
    expect(page.locator("#user-name")).to_have_text("Jane Doe")
    with demo.demo.app_context():
        user = User.query.filter_by(email=JANE_EMAIL).one()
        assert user.uid == jane(demo)[0] and User.query.count() == 1


def test_second_company_is_chosen_through_group_id(demo: Served, new_page: Callable[..., Any]) -> None:
    page = new_page(demo.base_url)
    sign_in(page, demo)
    user_uid, first_group = jane(demo)
    db = database(demo.sandbox)
    second_group = db.create_group(name="Globex Sandbox")
    db.set_membership(second_group, user_uid, "Member")
    db.attach(APP_ID, second_group)

    page.goto(f"/maestrano/auth/saml/init?group_id={second_group}")
    expect(page.locator("#company-name")).to_have_text("Globex Sandbox")
    expect(page.locator("#user-role")).to_have_text("Member")
    expect(page.locator("#user-name")).to_have_text("Jane Doe")
    # back to the first company in one click: the IdP answers straight away for a known group
    page.click(f"#companies a[data-group='{first_group}']")
    expect(page.locator("#company-name")).to_have_text("Acme Sandbox")
    expect(page.locator("#user-role")).to_have_text("Admin")


def test_single_logout_once_the_platform_ended_the_session_and_the_recheck_is_due(
    demo: Served, new_page: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    page = new_page(demo.base_url)
    sign_in(page, demo)
    # the user logs out of the marketplace in another tab: the platform ends the session
    platform_tab = page.context.new_page()
    platform_tab.goto(demo.sandbox_url + "/app_logout")
    expect(platform_tab.locator("body")).to_contain_text("Logged out")
    # before the recheck time the app does not ask the platform: still logged in
    page.reload()
    expect(page.locator("#user-name")).to_have_text("Jane Doe")
    # once it is due, the check finds the session over: logged out, sent to sign in again
    monkeypatch.setattr(get_state(demo.demo), "clock", _ClockAhead(3600))
    page.reload()
    expect(page.locator("h1")).to_contain_text("Sign in to Demo CRM")
    assert page.url.startswith(demo.sandbox_url + "/api/v1/auth/saml")
    page.goto("/")
    expect(page.locator("#login-link")).to_be_visible()
    expect(page.locator("#user-name")).to_have_count(0)


def test_logout_ends_the_app_session_and_the_platform_session(
    demo: Served, new_page: Callable[..., Any]
) -> None:
    page = new_page(demo.base_url)
    sign_in(page, demo)
    page.click("#logout-link")
    assert page.url.startswith(demo.sandbox_url + "/app_logout")
    expect(page.locator("body")).to_contain_text("Logged out")
    # the logged-out page leads back to the app
    page.get_by_role("link", name="Back to Demo CRM").click()
    assert page.url == demo.base_url + "/"
    expect(page.locator("#login-link")).to_be_visible()
    # the platform forgot the browser too: signing in asks who you are again
    page.click("#login-link")
    expect(page.locator("h1")).to_contain_text("Sign in to Demo CRM")
    expect(page.get_by_role("heading", name="Continue as Jane Doe")).to_have_count(0)


def test_cancellation_by_the_platform_removes_the_company_access(
    demo: Served, new_page: Callable[..., Any]
) -> None:
    page = new_page(demo.base_url)
    sign_in(page, demo)
    edit_link = page.locator("#contacts a", has_text="Edit")
    wait_for_import(demo, page)
    edit_url = edit_link.first.get_attribute("href")
    result = cancel_group(demo.sandbox, APP_ID, jane(demo)[1])
    assert result.ok, result
    page.reload()
    expect(page.locator("#access-ended")).to_contain_text("Acme Sandbox")
    expect(page.locator("#contacts")).to_have_count(0)
    response = page.goto(edit_url)
    assert response is not None and response.status == 403


def test_a_cancelled_company_cannot_launch_the_app_until_added_again_and_keeps_one_subscription(
    demo: Served, new_page: Callable[..., Any]
) -> None:
    page = new_page(demo.base_url)
    sign_in(page, demo)
    group_uid = jane(demo)[1]
    expect(page.locator("#recurring-bill")).to_contain_text("rbill-")
    admin = page.context.new_page()
    admin.goto(demo.sandbox_url + "/")
    admin.locator(f"form[action$='/admin/groups/{group_uid}/cancel'] button").click()
    expect(admin.locator(".flash.ok")).to_contain_text("cancel company: DELETE")
    page.reload()
    expect(page.locator("#access-ended")).to_contain_text("Acme Sandbox")
    # launching the app for the cancelled company is refused, however the user signs in
    response = page.goto(f"/maestrano/auth/saml/init?group_id={group_uid}")
    assert response is not None and response.status == 403
    expect(page.locator(".flash.error")).to_contain_text("cancelled Demo CRM")
    page.select_option("#group", group_uid)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.locator(".flash.error")).to_contain_text("add the app to the company again")
    page.goto("/")
    expect(page.locator("#access-ended")).to_contain_text("Acme Sandbox")
    # the company adds the app again (sandbox admin): the next launch goes through
    admin.goto(demo.sandbox_url + "/")
    admin.select_option("form[action$='/admin/attach'] select[name=app]", APP_ID)
    admin.select_option("form[action$='/admin/attach'] select[name=group]", group_uid)
    admin.get_by_role("button", name="Add", exact=True).click()
    expect(admin.locator(".flash.ok")).to_contain_text(f"{group_uid} now uses {APP_ID} again")
    page.goto(f"/maestrano/auth/saml/init?group_id={group_uid}")
    expect(page.locator("#company-name")).to_have_text("Acme Sandbox")
    expect(page.locator("#recurring-bill")).to_contain_text("rbill-")
    # the cancellation ended the first subscription; the demo set up exactly one new one
    with database(demo.sandbox).connect() as conn:
        bills = conn.execute(
            "SELECT id, status FROM recurring_bills WHERE app_id = ? AND group_id = ? ORDER BY n",
            (APP_ID, group_uid),
        ).fetchall()
    assert [row["status"] for row in bills] == ["cancelled", "submitted"]
    with demo.demo.app_context():
        assert Company.query.filter_by(uid=group_uid).one().recurring_bill_id == bills[1]["id"]


def test_member_removed_by_the_platform_loses_access(demo: Served, new_page: Callable[..., Any]) -> None:
    page = new_page(demo.base_url)
    sign_in(page, demo)
    user_uid, group_uid = jane(demo)
    assert remove_member(demo.sandbox, APP_ID, group_uid, user_uid).ok
    page.reload()
    expect(page.locator("#no-access")).to_contain_text("Acme Sandbox")
    expect(page.locator("#user-role")).to_have_count(0)
    expect(page.locator("#contacts")).to_have_count(0)


def test_notification_changes_a_contact_the_page_shows(demo: Served, new_page: Callable[..., Any]) -> None:
    page = new_page(demo.base_url)
    sign_in(page, demo)
    wait_for_import(demo, page)
    row = page.locator("#contacts tbody tr", has_text="John Doe")
    connec_id = row.get_attribute("data-connec-id")
    # another app's change, made on the sandbox's own edit page: Connec! notifies the demo
    sandbox_tab = page.context.new_page()
    sandbox_tab.goto(f"{demo.sandbox_url}/admin/groups/{jane(demo)[1]}/people/{connec_id}")
    sandbox_tab.fill("textarea[name=data]", json.dumps({"first_name": "Johnny"}))
    sandbox_tab.get_by_role("button", name="Save and notify").click()
    expect(sandbox_tab.locator("textarea[name=data]")).to_contain_text('"Johnny"')
    page.reload()
    expect(page.locator(f"#contacts tr[data-connec-id='{connec_id}'] .name")).to_have_text("Johnny Doe")


def test_editing_a_contact_pushes_the_change_to_connec(demo: Served, new_page: Callable[..., Any]) -> None:
    page = new_page(demo.base_url)
    sign_in(page, demo)
    wait_for_import(demo, page)
    row = page.locator("#contacts tbody tr", has_text="Initech")
    connec_id = row.get_attribute("data-connec-id")
    row.get_by_role("link", name="Edit").click()
    page.fill("input[name=name]", "Initech Corporation")
    page.fill("input[name=email]", "hello@initech.example")
    page.click("#save-contact")
    expect(page.locator(".flash")).to_contain_text("shared it through Connec!")
    expect(page.locator(f"#contacts tr[data-connec-id='{connec_id}'] .name")).to_have_text(
        "Initech Corporation"
    )
    entity = sandbox_entity(demo, jane(demo)[1], connec_id)
    assert entity["name"] == "Initech Corporation"
    assert entity["email"]["address"] == "hello@initech.example"
    # pushed by the sync engine: Connec! now knows the demo's own id for the record
    with demo.demo.app_context():
        local = Contact.query.filter_by(connec_id=connec_id).one()
    with database(demo.sandbox).connect() as conn:
        row = conn.execute("SELECT external_ids FROM entities WHERE id = ?", (connec_id,)).fetchone()
    assert {"id": str(local.id), "provider": APP_ID, "realm": jane(demo)[1]} in json.loads(
        row["external_ids"]
    )


def test_buying_extra_storage_bills_the_company(demo: Served, new_page: Callable[..., Any]) -> None:
    page = new_page(demo.base_url)
    sign_in(page, demo)
    page.click("#buy-storage")
    expect(page.locator(".flash")).to_contain_text("Extra storage (10 GB) added: bill bill-")
    expect(page.locator("#extra-storage")).to_have_text("10 GB")
    with database(demo.sandbox).connect() as conn:
        bills = conn.execute("SELECT group_id, price_cents, description FROM bills").fetchall()
    assert [tuple(b) for b in bills] == [(jane(demo)[1], 500, "Extra storage (10 GB)")]
