"""The consume view is exempt from Flask-WTF CSRF, whichever extension is initialised first."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask_login import LoginManager
from flask_wtf.csrf import CSRFProtect

from flask_maestrano import Maestrano
from flask_maestrano.testing import TestIdP, login
from tests.support.presets import preset_data
from tests.support.saml import Host


def _app(tmp_path: Any, idp: TestIdP, csrf_first: bool) -> tuple[Flask, Host]:
    app = Flask("csrfapp", instance_path=str(tmp_path))
    app.config.update(
        SECRET_KEY="k",
        MAESTRANO_PRESETS={"production": preset_data(sso={"x509_certificate": idp.cert_pem})},
    )
    maestrano, host, csrf = Maestrano(), Host(), CSRFProtect()
    host.install(maestrano)
    if csrf_first:
        csrf.init_app(app)
        maestrano.init_app(app)
    else:
        maestrano.init_app(app)
        csrf.init_app(app)
    LoginManager(app).user_loader(host.users.get)

    @app.post("/form")
    def form() -> str:
        return "accepted"

    @app.get("/page")
    def page() -> str:
        return "page"

    return app, host


@pytest.mark.parametrize("csrf_first", [True, False], ids=["csrf-before-maestrano", "csrf-after-maestrano"])
def test_consume_is_exempt_and_other_posts_stay_protected(
    tmp_path: Any, test_idp: TestIdP, csrf_first: bool
) -> None:
    app, host = _app(tmp_path, test_idp, csrf_first)
    client = app.test_client()
    response = login(client, test_idp)
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert set(host.users) == {"usr-1"}
    assert client.post("/form").status_code == 400  # CSRF still guards the host's own forms
