"""The sandbox and flask_maestrano together on one port: a real login through the sandbox IdP."""

from __future__ import annotations

from typing import Any

import requests
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from flask_maestrano.sandbox import create_app, preset_for
from tests.support.pages import form_of
from tests.support.saml import build_host_app
from tests.support.servers import free_port


def test_login_through_the_sandbox_idp_signs_the_user_into_the_host_app(
    make_app: Any, live_server: Any, tmp_path: Any
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    sandbox = create_app(
        {
            "SANDBOX_URL": f"{base}/sandbox",
            "SANDBOX_DATABASE": str(tmp_path / "sandbox.sqlite3"),
            "SANDBOX_APPS": [{"id": "app-e2e", "key": "e2e-key", "host": base}],
        }
    )
    host_app, host = build_host_app(make_app, {"sandbox": preset_for(sandbox, "app-e2e")})
    live_server(DispatcherMiddleware(host_app.wsgi_app, {"/sandbox": sandbox}), port=port)
    browser = requests.Session()

    # the marketplace launches the app for company cld-1; the app redirects to the sandbox IdP
    page = browser.get(f"{base}/maestrano/auth/saml/init", params={"group_id": "cld-1"}, timeout=10)
    assert page.url.startswith(f"{base}/sandbox/api/v1/auth/saml?SAMLRequest=")
    assert "Pick or create a user and a company" in page.text
    _, fields = form_of(page.text.split("Pick or create")[1])
    fields.update(user="usr-1", group="cld-1", role="")
    answer = browser.post(f"{base}/sandbox/api/v1/auth/saml", data=fields, timeout=10)

    # the auto-submitting form, posted like the browser would
    action, posted = form_of(answer.text)
    assert action == f"{base}/maestrano/auth/saml/consume"
    landed = browser.post(action, data=posted, timeout=10)
    assert landed.status_code == 200
    assert landed.text == "Hello Jane Doe <jane.doe@example.com>"
    assert host.memberships == {("usr-1", "cld-1"): "Admin"}
    assert host.groups["cld-1"].name == "Acme Sandbox"
    names = sorted(c.name for c in browser.cookies)
    assert "maestrano_sandbox_session" in names and "session" in names
