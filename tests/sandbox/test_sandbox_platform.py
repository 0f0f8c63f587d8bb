"""The sandbox as a whole: developer platform, calls to a real app, persistence, mounting, admin page."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import requests
from flask import Flask, jsonify, request
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from flask_maestrano.devplatform import DevPlatformSettings, auto_configure
from flask_maestrano.errors import DevPlatformError
from flask_maestrano.presets import Preset
from flask_maestrano.sandbox import (
    cancel_group,
    create_app,
    dev_platform_settings,
    edit_entity,
    preset_for,
    push_notification,
    remove_member,
)
from flask_maestrano.sandbox.core import database


class Recorder:
    """A tiny app that records every call it receives and answers a chosen status."""

    def __init__(self, status: int = 200) -> None:
        self.calls: list[dict[str, Any]] = []
        self.app = Flask("recorder")
        self.status = status

        @self.app.route("/<path:path>", methods=["GET", "POST", "PUT", "DELETE"])
        def record(path: str) -> Any:
            auth = request.authorization
            self.calls.append(
                {
                    "method": request.method,
                    "path": request.full_path.rstrip("?"),
                    "auth": (auth.username, auth.password) if auth else None,
                    "body": request.get_json(silent=True),
                }
            )
            response = jsonify({"success": self.status < 400})
            response.status_code = self.status
            return response


@pytest.fixture
def recorder(live_server: Any) -> Recorder:
    rec = Recorder()
    rec.server = live_server(rec.app)  # type: ignore[attr-defined]
    return rec


def admin_csrf(browser: requests.Session, url: str) -> str:
    page = browser.get(f"{url}/", timeout=10)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    return token.group(1)


# -- developer platform ----------------------------------------------------------------


def test_auto_configure_builds_a_working_preset_from_the_sandbox(make_sandbox: Any) -> None:
    sandbox = make_sandbox()
    environ = dev_platform_settings(sandbox.app, sandbox_url=sandbox.url)
    presets = auto_configure(DevPlatformSettings.load(environ=environ))
    assert list(presets) == ["sandbox"]
    preset = presets["sandbox"]
    assert preset.api.id == "app-sandbox" and preset.api.key == "sandbox-secret-key"
    assert preset.api.host == preset.sso.idp == preset.connec.host == sandbox.url
    cert = requests.get(f"{sandbox.url}/idp/certificate.pem", timeout=10).text
    assert preset.sso.x509_certificates == (cert,)
    assert preset.idp_url == f"{sandbox.url}/api/v1/auth/saml"
    ping = requests.get(f"{preset.account_api_url}ping", auth=(preset.api.id, preset.api.key), timeout=10)
    assert ping.json()["success"] is True


def test_marketplaces_answer_has_the_platform_shape(make_sandbox: Any) -> None:
    sandbox = make_sandbox()
    env = dev_platform_settings(sandbox.app, sandbox_url=sandbox.url)
    answer = requests.get(
        f"{sandbox.url}/api/config/v1/marketplaces",
        auth=(env["MNO_DEVPL_ENV_KEY"], env["MNO_DEVPL_ENV_SECRET"]),
        timeout=10,
    )
    marketplace = answer.json()["marketplaces"][0]
    assert set(marketplace) == {
        "nid",
        "marketplace",
        "environment",
        "app",
        "api",
        "sso",
        "connec",
        "webhooks",
    }
    assert set(marketplace["sso"]) == {
        "idm",
        "init_path",
        "consume_path",
        "idp",
        "x509_fingerprint",
        "x509_certificate",
    }
    assert marketplace["webhooks"]["account"]["group_path"] == "/maestrano/account/groups/:id"
    assert marketplace["webhooks"]["connec"]["notification_path"] == "/maestrano/connec/notifications"
    assert re.fullmatch(r"([0-9a-f]{2}:){19}[0-9a-f]{2}", marketplace["sso"]["x509_fingerprint"])


def test_wrong_environment_credentials_are_401(make_sandbox: Any) -> None:
    sandbox = make_sandbox()
    answer = requests.get(
        f"{sandbox.url}/api/config/v1/marketplaces", auth=("env-app-sandbox", "wrong"), timeout=10
    )
    assert answer.status_code == 401
    assert "error" in answer.json()
    environ = {**dev_platform_settings(sandbox.app, sandbox_url=sandbox.url), "MNO_DEVPL_ENV_SECRET": "wrong"}
    with pytest.raises(DevPlatformError, match="401"):
        auto_configure(DevPlatformSettings.load(environ=environ))


def test_preset_for_gives_a_valid_preset(make_sandbox: Any) -> None:
    sandbox = make_sandbox()
    data = preset_for(sandbox.app, "app-sandbox", sandbox_url=sandbox.url)
    preset = Preset.from_dict("sandbox", data, strict=False)
    assert preset.consume_url == "http://127.0.0.1:5000/maestrano/auth/saml/consume"
    assert preset.session_check_url("usr-1", "t").startswith(f"{sandbox.url}/api/v1/auth/saml/usr-1")
    with pytest.raises(LookupError):
        preset_for(sandbox.app, "app-nope", sandbox_url=sandbox.url)


# -- calls to the app --------------------------------------------------------------------


def test_cancel_company_calls_the_group_webhook_with_basic_auth(
    make_sandbox: Any, recorder: Recorder
) -> None:
    sandbox = make_sandbox(app_host=recorder.server.url)  # type: ignore[attr-defined]
    result = cancel_group(sandbox.app, "app-sandbox", "cld-1")
    assert result.status == 200 and result.ok
    assert recorder.calls == [
        {
            "method": "DELETE",
            "path": "/maestrano/account/groups/cld-1",
            "auth": ("app-sandbox", "sandbox-secret-key"),
            "body": None,
        }
    ]
    assert database(sandbox.app).app_group_uids("app-sandbox") == []


def test_remove_member_calls_the_group_user_webhook_on_configured_paths(
    make_sandbox: Any, recorder: Recorder
) -> None:
    apps = [
        {
            "id": "app-custom",
            "key": "k",
            "host": recorder.server.url,  # type: ignore[attr-defined]
            "group_user_path": "/hooks/groups/:group_id/users/:id/uat",
        }
    ]
    sandbox = make_sandbox(SANDBOX_APPS=apps)
    result = remove_member(sandbox.app, "app-custom", "cld-1", "usr-1")
    assert result.status == 200
    assert recorder.calls[0]["method"] == "DELETE"
    assert recorder.calls[0]["path"] == "/hooks/groups/cld-1/users/usr-1/uat"
    assert recorder.calls[0]["auth"] == ("app-custom", "k")
    assert database(sandbox.app).membership("cld-1", "usr-1") is None


def test_push_notification_posts_the_entity(make_sandbox: Any, recorder: Recorder) -> None:
    sandbox = make_sandbox(app_host=recorder.server.url)  # type: ignore[attr-defined]
    org = requests.get(f"{sandbox.url}/api/v2/cld-1/organizations", auth=sandbox.auth, timeout=10).json()
    first = org["organizations"][0]
    result = push_notification(sandbox.app, "app-sandbox", "cld-1", "organizations", first["id"])
    assert result.status == 200
    call = recorder.calls[0]
    assert (call["method"], call["path"], call["auth"]) == (
        "POST",
        "/maestrano/connec/notifications",
        ("app-sandbox", "sandbox-secret-key"),
    )
    assert call["body"] == {"organizations": [first]}


def test_an_edit_by_another_app_notifies_the_app_but_not_the_editor(
    make_sandbox: Any, recorder: Recorder
) -> None:
    host = recorder.server.url  # type: ignore[attr-defined]
    apps = [
        {
            "id": "app-one",
            "key": "k1",
            "host": host,
            "notification_path": "/one/notify",
            "external_ids": True,
        },
        {"id": "app-two", "key": "k2", "host": host, "notification_path": "/two/notify"},
    ]
    sandbox = make_sandbox(SANDBOX_APPS=apps)
    org = requests.get(f"{sandbox.url}/api/v2/cld-1/organizations", auth=("app-two", "k2"), timeout=10).json()
    org_id = org["organizations"][0]["id"]
    answer = requests.put(
        f"{sandbox.url}/api/v2/cld-1/organizations/{org_id}",
        auth=("app-two", "k2"),
        json={"organizations": {"name": "Edited by two"}},
        timeout=10,
    )
    assert answer.status_code == 200
    assert [(c["path"], c["auth"]) for c in recorder.calls] == [("/one/notify", ("app-one", "k1"))]
    entity = recorder.calls[0]["body"]["organizations"][0]
    assert entity["name"] == "Edited by two"
    assert entity["id"] == [{"id": org_id, "provider": "connec"}]  # app-one wants external ids

    recorder.calls.clear()
    results = edit_entity(sandbox.app, "cld-1", "organizations", org_id, {"name": "Edited in the sandbox"})
    assert sorted(r.app_id for r in results) == ["app-one", "app-two"]
    assert sorted(c["path"] for c in recorder.calls) == ["/one/notify", "/two/notify"]


def test_admin_buttons_report_the_status_the_app_answered(make_sandbox: Any, live_server: Any) -> None:
    failing = Recorder(status=500)
    server = live_server(failing.app)
    sandbox = make_sandbox(app_host=server.url)
    browser = requests.Session()
    token = admin_csrf(browser, sandbox.url)
    page = browser.post(
        f"{sandbox.url}/admin/groups/cld-1/cancel",
        data={"csrf_token": token, "app": "app-sandbox"},
        timeout=10,
    )
    assert page.status_code == 200
    assert f"cancel company: DELETE {server.url}/maestrano/account/groups/cld-1 -&gt; 500" in page.text
    assert failing.calls[0]["method"] == "DELETE"

    forged = browser.post(f"{sandbox.url}/admin/groups/cld-1/cancel", data={"app": "app-sandbox"}, timeout=10)
    assert forged.status_code == 400


def test_admin_edit_form_notifies_and_unreachable_app_is_reported(make_sandbox: Any) -> None:
    sandbox = make_sandbox(app_host="http://127.0.0.1:9")  # nothing listens on the discard port
    browser = requests.Session()
    token = admin_csrf(browser, sandbox.url)
    people = requests.get(f"{sandbox.url}/api/v2/cld-1/people", auth=sandbox.auth, timeout=10).json()[
        "people"
    ]
    url = f"{sandbox.url}/admin/groups/cld-1/people/{people[0]['id']}"
    form = browser.get(url, timeout=10)
    assert form.status_code == 200 and "John" in form.text
    saved = browser.post(
        url, data={"csrf_token": token, "data": json.dumps({"first_name": "Johnny"})}, timeout=10
    )
    assert saved.status_code == 200
    assert "no answer" in saved.text
    again = requests.get(
        f"{sandbox.url}/api/v2/cld-1/people/{people[0]['id']}", auth=sandbox.auth, timeout=10
    )
    assert again.json()["people"]["first_name"] == "Johnny"
    bad = browser.post(url, data={"csrf_token": token, "data": "[1"}, timeout=10)
    assert bad.status_code == 400 and "must be a JSON object" in bad.text


def test_admin_page_lists_state_and_escapes_it(make_sandbox: Any) -> None:
    sandbox = make_sandbox()
    db = database(sandbox.app)
    evil = db.create_user(name="<script>alert(1)</script>", surname="X", email="x@example.com")
    db.set_membership("cld-1", evil, "Member")
    requests.post(
        f"{sandbox.url}/api/v1/account/bills",
        auth=sandbox.auth,
        data={"group_id": "cld-1", "price_cents": 1999, "description": "Seats <b>"},
        timeout=10,
    )
    page = requests.get(f"{sandbox.url}/", timeout=10).text
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    for expected in (
        "app-sandbox",
        "Jane",
        "Acme Sandbox",
        "Admin",
        "bill-1",
        "19.99 AUD",
        "Seats &lt;b&gt;",
    ):
        assert expected in page


# -- persistence and mounting ------------------------------------------------------------


def test_state_persists_across_two_apps_on_the_same_database(tmp_path: Any, live_server: Any) -> None:
    path = str(tmp_path / "shared.sqlite3")
    apps = [{"id": "app-p", "key": "kp", "host": "http://127.0.0.1:5000"}]
    first = live_server(create_app({"SANDBOX_DATABASE": path, "SANDBOX_APPS": apps}))
    created = requests.post(
        f"{first.url}/api/v1/account/bills",
        auth=("app-p", "kp"),
        data={"group_id": "cld-1", "price_cents": 42, "description": "kept"},
        timeout=10,
    ).json()["data"]
    second = live_server(create_app({"SANDBOX_DATABASE": path}))
    shown = requests.get(
        f"{second.url}/api/v1/account/bills/{created['id']}", auth=("app-p", "kp"), timeout=10
    )
    assert shown.json()["data"] == created
    users = database(create_app({"SANDBOX_DATABASE": path})).users()
    assert [u["uid"] for u in users] == ["usr-1"]  # seeded once


def test_works_under_a_url_prefix_with_its_own_cookie(tmp_path: Any, live_server: Any) -> None:
    host = Flask("host")
    host.config["SECRET_KEY"] = "host"

    @host.get("/")
    def home() -> str:
        return "host home"

    sandbox = create_app({"SANDBOX_DATABASE": str(tmp_path / "s.sqlite3")})
    server = live_server(DispatcherMiddleware(host.wsgi_app, {"/sandbox": sandbox}))
    base = f"{server.url}/sandbox"
    assert requests.get(f"{server.url}/", timeout=10).text == "host home"
    browser = requests.Session()
    admin = browser.get(f"{base}/", timeout=10)
    assert admin.status_code == 200 and f"<code>{base}</code>" in admin.text
    cookie = next(c for c in browser.cookies if c.name == "maestrano_sandbox_session")
    assert cookie.path == "/sandbox/"
    key = database(sandbox).app("app-sandbox")["key"]  # type: ignore[index]
    listed = requests.get(f"{base}/api/v2/cld-1/people?$top=1", auth=("app-sandbox", key), timeout=10).json()
    assert listed["pagination"]["next"].startswith(f"{base}/api/v2/cld-1/people?")
    env = dev_platform_settings(sandbox, sandbox_url=base)
    presets = auto_configure(DevPlatformSettings.load(environ=env))
    assert presets["sandbox"].connec.host == base


def test_admin_company_page_links_every_record_to_its_edit_form(make_sandbox: Any) -> None:
    sandbox = make_sandbox()
    page = requests.get(f"{sandbox.url}/admin/groups/cld-1", timeout=10)
    assert page.status_code == 200
    invoice = requests.get(f"{sandbox.url}/api/v2/cld-1/invoices", auth=sandbox.auth, timeout=10).json()
    invoice_id = invoice["invoices"][0]["id"]
    assert f"/admin/groups/cld-1/invoices/{invoice_id}" in page.text
    form = requests.get(f"{sandbox.url}/admin/groups/cld-1/invoices/{invoice_id}", timeout=10)
    assert "Edit invoices" in form.text and "&#34;type&#34;: &#34;CUSTOMER&#34;" in form.text
    assert requests.get(f"{sandbox.url}/admin/groups/cld-404", timeout=10).status_code == 404
