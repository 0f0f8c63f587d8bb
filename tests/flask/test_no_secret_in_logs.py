"""No secret reaches any log line, at any level, of any logger (issue 10, item 5).

Every logger is captured at DEBUG (urllib3 logs each request line with its query there)
while an app configures itself from the sandbox's developer platform, a user logs in through
the sandbox IdP over real HTTP, the single-logout check runs and the account API is called.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from flask_maestrano.sandbox import dev_platform_settings
from flask_maestrano.sandbox.core import database
from tests.support.pages import form_of
from tests.support.saml import build_host_app
from tests.support.servers import free_port


class Everything(logging.Handler):
    """Every record of every logger, formatted with its traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def every_log(caplog: Any) -> Iterator[Everything]:
    caplog.set_level(logging.DEBUG)  # root at DEBUG, caplog's handler at DEBUG
    handler = Everything()
    root = logging.getLogger()
    root.addHandler(handler)
    changed: list[tuple[logging.Logger, int, bool]] = []
    for name in list(logging.root.manager.loggerDict):
        logger = logging.getLogger(name)
        changed.append((logger, logger.level, logger.propagate))
        logger.setLevel(logging.DEBUG)
        logger.propagate = True
    logging.disable(logging.NOTSET)
    yield handler
    root.removeHandler(handler)
    for logger, level, propagate in changed:
        logger.setLevel(level)
        logger.propagate = propagate


def test_no_secret_in_any_log_line_during_configure_login_check_and_api_call(
    every_log: Everything, make_app: Any, make_sandbox: Any, live_server: Any, monkeypatch: Any, caplog: Any
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    sandbox = make_sandbox(app_host=base, SANDBOX_SESSION_RECHECK=0)  # every request is checked
    settings = dev_platform_settings(sandbox.app, sandbox_url=sandbox.url)
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    app, _host = build_host_app(
        make_app, {}, MAESTRANO_AUTO_CONFIGURE=True, MAESTRANO_SESSION_CHECK_TIMEOUT=5.0
    )
    live_server(app, port=port)
    browser = requests.Session()

    # login through the sandbox IdP, as a browser
    page = browser.get(f"{base}/maestrano/auth/saml/init", params={"group_id": "cld-1"}, timeout=10)
    _, fields = form_of(page.text.split("Pick or create")[1])
    fields.update(user="usr-1", group="cld-1", role="")
    answer = browser.post(f"{sandbox.url}/api/v1/auth/saml", data=fields, timeout=10)
    action, posted = form_of(answer.text)
    landed = browser.post(action, data=posted, timeout=10)
    assert landed.text == "Hello Jane Doe <jane.doe@example.com>"

    # the single-logout check, then an account API call
    assert browser.get(f"{base}/page", timeout=10).text == "user:usr-1"
    assert browser.get(f"{base}/page", timeout=10).text == "user:usr-1"
    with app.app_context():
        assert app.extensions["maestrano"].extension.account().groups.retrieve("cld-1").id == "cld-1"

    token = database(sandbox.app).user("usr-1")["sso_session"]
    secrets = {
        "session token": token,
        "api key": sandbox.key,
        "developer-platform secret": settings["MNO_DEVPL_ENV_SECRET"],
    }
    lines = every_log.lines + [r.getMessage() for r in caplog.records]
    assert any("urllib3" in line and "/api/v1/auth/saml/usr-1" in line for line in every_log.lines), (
        "the session check's request line was not logged: the test would prove nothing"
    )
    for what, secret in secrets.items():
        assert len(secret) >= 16
        leaks = [line for line in lines if secret in line]
        assert not leaks, f"the {what} reached the log: {leaks[:3]}"
