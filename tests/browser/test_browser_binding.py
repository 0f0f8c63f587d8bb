"""Login CSRF in a real browser: the IdP on another site posts cross-site to consume.

The app is served on ``http://127.0.0.1:<port>`` and the sandbox IdP on
``http://localhost:<other port>``: two different sites, so Chromium does not send the app's
SameSite=Lax cookies with the IdP's auto-submitted POST. The genuine login still works (the
binding cookie comes back on the 303 to finish, a top-level GET); the attacker's saved form,
posted from the victim's browser, does not log the victim in.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
from playwright.sync_api import expect

from flask_maestrano.sandbox import create_app, preset_for
from flask_maestrano.sso.binding import COOKIE_NAME
from tests.support.saml import Host, build_host_app
from tests.support.servers import free_port

pytest_plugins = ["tests.support.browser"]
pytestmark = pytest.mark.browser

CONSUME = "/maestrano/auth/saml/consume"


@pytest.fixture
def cross_site(
    make_app: Callable[..., Any], live_server: Callable[..., Any], tmp_path: Path
) -> tuple[str, str, Host]:
    """(app URL on 127.0.0.1, IdP URL on localhost, the host app's data)."""
    app_port, idp_port = free_port(), free_port()
    app_url, idp_url = f"http://127.0.0.1:{app_port}", f"http://localhost:{idp_port}"
    sandbox = create_app(
        {
            "SANDBOX_URL": idp_url,
            "SANDBOX_DATABASE": str(tmp_path / "sandbox.sqlite3"),
            "SANDBOX_APPS": [{"id": "app-browser", "key": "browser-key", "host": app_url}],
        }
    )
    app, host = build_host_app(
        make_app, {"sandbox": preset_for(sandbox, "app-browser")}, SESSION_COOKIE_SAMESITE="Lax"
    )
    live_server(sandbox, port=idp_port)
    live_server(app, port=app_port)
    return app_url, idp_url, host


def _open_the_idp(page: Any, app_url: str, idp_url: str) -> Any:
    """From the app's init URL to the sandbox IdP's page; the button that signs in."""
    page.goto(f"{app_url}/maestrano/auth/saml/init?group_id=cld-1")
    assert page.url.startswith(f"{idp_url}/api/v1/auth/saml?SAMLRequest=")
    return page.get_by_role("button", name="Sign in", exact=True)


def test_cross_site_post_from_the_idp_still_logs_in_with_lax_cookies(
    cross_site: tuple[str, str, Host], new_page: Callable[..., Any]
) -> None:
    app_url, idp_url, host = cross_site
    page = new_page(app_url)
    statuses: list[tuple[str, int]] = []
    page.on("response", lambda response: statuses.append((response.request.method, response.status)))
    _open_the_idp(page, app_url, idp_url).click()
    expect(page.locator("body")).to_contain_text("Hello Jane Doe")
    assert page.url == f"{app_url}/"
    assert ("POST", 303) in statuses  # consume answered with the redirect to finish
    cookies = {c["name"]: c for c in page.context.cookies(app_url)}
    assert cookies[COOKIE_NAME]["httpOnly"] and cookies[COOKIE_NAME]["sameSite"] == "Lax"
    assert cookies["session"]["sameSite"] == "Lax"
    assert len(host.users) == 1


def test_the_attackers_saved_form_posted_from_the_victims_browser_is_refused(
    cross_site: tuple[str, str, Host], new_page: Callable[..., Any]
) -> None:
    app_url, idp_url, host = cross_site
    # the attacker signs in at the IdP in their own browser and keeps the form
    attacker = new_page(app_url)
    saved: dict[str, str] = {}

    def keep_the_form(route: Any) -> None:
        saved.update(parse_qsl(route.request.post_data or ""))
        route.abort()

    attacker.route(f"{app_url}{CONSUME}", keep_the_form)
    sign_in = _open_the_idp(attacker, app_url, idp_url)
    with attacker.expect_event("requestfailed", lambda request: CONSUME in request.url):
        sign_in.click()
    assert set(saved) == {"SAMLResponse", "RelayState"}

    # the victim, in another browser, opens the attacker's page, which auto-posts the form
    victim = new_page(app_url)
    victim.goto(f"{app_url}/page")
    inputs = "".join(f'<input type="hidden" name="{k}" value="{v}">' for k, v in saved.items())
    victim.set_content(
        f'<form method="post" action="{app_url}{CONSUME}">{inputs}</form>'
        "<script>document.forms[0].submit()</script>"
    )
    expect(victim.locator("h1")).to_have_text("Sign-in not finished")
    expect(victim.get_by_role("link", name="Sign in again")).to_have_attribute(
        "href", "/maestrano/auth/saml/init"
    )
    victim.goto(f"{app_url}/page")
    expect(victim.locator("body")).to_have_text("user:anonymous")
    assert host.empty
