"""``make demo`` (``python -m examples.demo``): the demo and the sandbox on one server, or the
demo alone configured from a developer platform when the ``MNO_DEVPL_*`` variables are set."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from examples.demo import __main__ as demo_main
from examples.demo.server import APP_ID, build
from flask_maestrano import get_state
from flask_maestrano.errors import DevPlatformError
from flask_maestrano.sandbox import dev_platform_settings
from tests.support.servers import free_port


def test_demo_and_sandbox_share_one_server(tmp_path: Path, live_server: Callable[..., Any]) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    served = build(base, str(tmp_path / "instance"), environ={})
    live_server(served.wsgi, port)
    assert served.sandbox_url == base + "/sandbox"

    home = requests.get(base + "/", timeout=5)
    assert home.status_code == 200 and 'id="login-link"' in home.text
    assert "Maestrano sandbox platform" in requests.get(base + "/sandbox/", timeout=5).text
    init = requests.get(base + "/maestrano/auth/saml/init", allow_redirects=False, timeout=5)
    assert init.status_code == 302
    assert init.headers["Location"].startswith(base + "/sandbox/api/v1/auth/saml?SAMLRequest=")
    # the preset talks to the sandbox on the same port, as the registered app
    preset = get_state(served.demo).preset("sandbox")
    assert (preset.api.id, preset.app.host, preset.api.host) == (APP_ID, base, base + "/sandbox")
    # data lives in the instance folder
    assert sorted(p.name for p in (tmp_path / "instance").glob("*.sqlite3")) == [
        "demo.sqlite3",
        "sandbox.sqlite3",
    ]


def test_restart_keeps_the_app_credentials_and_the_data(tmp_path: Path) -> None:
    first = build("http://127.0.0.1:5000", str(tmp_path / "instance"), environ={})
    again = build("http://127.0.0.1:5000", str(tmp_path / "instance"), environ={})
    assert get_state(first.demo).preset("sandbox").api.key == get_state(again.demo).preset("sandbox").api.key
    assert first.demo.config["SECRET_KEY"] == again.demo.config["SECRET_KEY"]


def test_developer_platform_variables_configure_the_demo_without_a_sandbox(
    tmp_path: Path, make_sandbox: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    platform = make_sandbox()
    settings = dev_platform_settings(platform.app, sandbox_url=platform.url)
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    served = build("http://127.0.0.1:5000", str(tmp_path / "instance"))
    assert served.sandbox is None and served.sandbox_url is None and served.wsgi is served.demo
    preset = get_state(served.demo).preset()
    assert (preset.api.id, preset.api.host) == (platform.app_id, platform.url)
    assert preset.source.startswith("dev_platform")


@pytest.mark.parametrize("port", ["abc", "0", "70000"])
def test_a_wrong_port_is_refused_with_a_clear_message(port: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", port)
    with pytest.raises(SystemExit, match=f"PORT must be a TCP port number \\(1-65535\\), not '{port}'"):
        demo_main.main()


def _partial(settings: dict[str, str]) -> dict[str, str]:
    """The five variables with MNO_DEVPL_ENV_SECRET misspelt."""
    partial = dict(settings)
    partial["MNO_DEVPL_ENV_SECRT"] = partial.pop("MNO_DEVPL_ENV_SECRET")
    return partial


def test_a_partial_developer_platform_configuration_is_a_start_up_error_not_a_sandbox(
    tmp_path: Path, make_sandbox: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    platform = make_sandbox()
    partial = _partial(dev_platform_settings(platform.app, sandbox_url=platform.url))
    with pytest.raises(
        DevPlatformError, match=r"MNO_DEVPL_ENV_SECRET not set.*MNO_DEVPL_ENV_SECRT \(misspelt"
    ):
        build("http://127.0.0.1:5000", str(tmp_path / "instance"), environ=partial)
    assert not (tmp_path / "instance").exists()  # nothing was built, no sandbox mounted
    # the entry point of make demo: a clear message, no traceback, no server
    for name, value in partial.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DEMO_INSTANCE", str(tmp_path / "instance"))
    with pytest.raises(SystemExit) as exited:
        demo_main.main()
    assert str(exited.value).startswith("The demo cannot start: Incomplete developer platform configuration")
    assert "MNO_DEVPL_ENV_SECRET" in str(exited.value)
    assert platform.key not in str(exited.value) and partial["MNO_DEVPL_ENV_SECRT"] not in str(exited.value)
    assert not (tmp_path / "instance").exists()


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "::", "demo.example"])
def test_the_demo_does_not_serve_the_sandbox_on_a_reachable_address_by_default(
    host: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOST", host)
    monkeypatch.setenv("DEMO_INSTANCE", str(tmp_path / "instance"))
    monkeypatch.delenv("SANDBOX_ALLOW_REMOTE", raising=False)
    with pytest.raises(
        SystemExit, match=f"refusing to serve the sandbox on {host}: its admin page has no login"
    ):
        demo_main.main()
    assert not (tmp_path / "instance").exists()
