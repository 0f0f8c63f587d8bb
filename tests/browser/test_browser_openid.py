"""The demo with ``DEMO_SSO_PROTOCOL=openid`` in a real browser: OpenID 2.0 through the sandbox.

Same page after login as with SAML (name, email, company, role), and single logout once the
sandbox ended the marketplace session.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from examples.demo.server import EXISTING_PASSWORD, Served, build
from flask_maestrano import get_state
from flask_maestrano.sandbox.core import database
from tests.support.clock import ClockAhead as _ClockAhead
from tests.support.presets import JANE_EMAIL
from tests.support.servers import free_port

pytest_plugins = ["tests.support.browser"]
pytestmark = pytest.mark.browser


@pytest.fixture
def openid_demo(tmp_path: Path, live_server: Callable[..., Any]) -> Served:
    port = free_port()
    served = build(
        f"http://127.0.0.1:{port}", str(tmp_path / "instance"), environ={"DEMO_SSO_PROTOCOL": "openid"}
    )
    live_server(served.wsgi, port)
    return served


def test_openid_login_shows_the_same_page_and_single_logout_ends_it(
    openid_demo: Served, new_page: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    page = new_page(openid_demo.base_url)
    page.goto("/")
    page.click("#login-link")
    expect(page.locator("h1")).to_contain_text("Sign in to Demo CRM")
    assert page.url.startswith(openid_demo.sandbox_url + "/api/openid/provider/app-demo?")
    expect(page.locator("main")).to_contain_text("OpenID 2.0 request from")
    page.get_by_role("button", name="Sign in", exact=True).click()
    # Jane's account predates the marketplace: she confirms it with its local password, and
    # the link sends her through OpenID again, now linked
    page.fill("#link-password", EXISTING_PASSWORD)
    page.click("#link-confirm")
    expect(page.locator("#user-name")).to_have_text("Jane Doe")
    assert page.url == openid_demo.base_url + "/"
    expect(page.locator("#user-email")).to_have_text(JANE_EMAIL)
    expect(page.locator("#company-name")).to_have_text("Acme Sandbox")
    expect(page.locator("#user-role")).to_have_text("Admin")
    # the login was bound to this browser by the same cookie as SAML logins
    binding = [c for c in page.context.cookies() if c["name"] == "maestrano_sso"]
    assert binding and binding[0]["httpOnly"] and binding[0]["sameSite"] == "Lax"

    # the sandbox admin says which protocol the app uses
    admin = page.context.new_page()
    admin.goto(openid_demo.sandbox_url + "/")
    expect(admin.locator(".protocol[data-app='app-demo']")).to_have_text("OpenID 2.0")

    # the user logs out of the marketplace: the platform ends the session
    admin.goto(openid_demo.sandbox_url + "/app_logout")
    expect(admin.locator("body")).to_contain_text("Logged out")
    page.reload()
    expect(page.locator("#user-name")).to_have_text("Jane Doe")  # no check before the recheck time
    monkeypatch.setattr(get_state(openid_demo.demo), "clock", _ClockAhead(3600))
    page.reload()
    # logged out and sent to sign in again, through OpenID
    expect(page.locator("h1")).to_contain_text("Sign in to Demo CRM")
    assert page.url.startswith(openid_demo.sandbox_url + "/api/openid/provider/app-demo?")
    user = next(u for u in database(openid_demo.sandbox).users() if u["email"] == JANE_EMAIL)
    assert (
        f"group_id={database(openid_demo.sandbox).memberships(user_uid=user['uid'])[0]['group_uid']}"
        in page.url
    )
    page.goto("/")
    expect(page.locator("#login-link")).to_be_visible()
    expect(page.locator("#user-name")).to_have_count(0)
