"""``make demo`` (``python -m examples.demo``): the demo and the sandbox on one server, or the
demo alone configured from a developer platform when the ``MNO_DEVPL_*`` variables are set."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from examples.demo import __main__ as demo_main
from examples.demo.server import APP_ID, build
from flask_maestrano import get_state
from flask_maestrano.sandbox import dev_platform_settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
