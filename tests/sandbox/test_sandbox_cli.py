"""Running the sandbox alone: ``python -m flask_maestrano.sandbox`` and ``flask maestrano sandbox``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import Any

import pytest
import requests

from flask_maestrano.sandbox import check_bind_host
from flask_maestrano.sandbox.__main__ import main as sandbox_main
from tests.support.servers import free_port, wait_for


def test_python_m_serves_the_sandbox_with_its_database(tmp_path: Any) -> None:
    port = free_port()
    database = tmp_path / "alone.sqlite3"
    process = subprocess.Popen(
        [sys.executable, "-m", "flask_maestrano.sandbox", "--port", str(port), "--database", str(database),
         "--app-host", "http://127.0.0.1:5999"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )  # fmt: skip
    try:
        version = wait_for(f"http://127.0.0.1:{port}/version")
        assert version.status_code == 200
        admin = requests.get(f"http://127.0.0.1:{port}/", timeout=5)
        assert f"<code>http://127.0.0.1:{port}</code>" in admin.text
        assert "http://127.0.0.1:5999" in admin.text
        assert database.exists()
    finally:
        process.terminate()
        process.wait(timeout=10)
        assert process.stdout is not None
        process.stdout.close()


def test_flask_command_is_registered(make_app: Any) -> None:
    result = make_app().test_cli_runner().invoke(args=["maestrano", "sandbox", "--help"])
    assert result.exit_code == 0
    assert "--port" in result.output and "--database" in result.output


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.5", "sandbox.example"])
def test_the_sandbox_refuses_a_reachable_address_without_allow_remote(
    host: str, make_app: Any, tmp_path: Any
) -> None:
    # the admin page has no login: it is served on a loopback address only, unless asked
    with pytest.raises(
        SystemExit, match=f"refusing to serve the sandbox on {re.escape(host)}: its admin page"
    ):
        sandbox_main(["--host", host, "--database", str(tmp_path / "s.sqlite3")])
    result = make_app().test_cli_runner().invoke(args=["maestrano", "sandbox", "--host", host])
    assert result.exit_code == 1 and "--allow-remote" in result.output
    assert not (tmp_path / "s.sqlite3").exists()


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_loopback_addresses_need_no_flag(host: str) -> None:
    check_bind_host(host)


def test_allow_remote_is_the_explicit_opt_in() -> None:
    check_bind_host("0.0.0.0", allow_remote=True)
    with pytest.raises(ValueError, match="SANDBOX_ALLOW_REMOTE=1"):
        check_bind_host("0.0.0.0")
