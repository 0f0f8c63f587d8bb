"""The quick start's three steps, run as written, with a real browser (docs/quickstart.rst).

1. save ``examples/quickstart.py`` in an empty folder;
2. ``flask maestrano sandbox --app-host ...`` there (no preset exists yet: the command must not
   need the extension) and take the ``export`` lines it prints;
3. start the app with those lines (``flask --app quickstart run``) and log in through the sandbox.

Then the sandbox behaves like the platform: the sign-in form hides the new-user fields until
"New user" is chosen, "End session" ends the app session at the next check (2 s here, through
the documented ``--recheck`` setting) and the next login asks to sign in again, and the
logged-out page links back to the app.
"""

from __future__ import annotations

import os
import queue
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import requests
from playwright.sync_api import expect

from tests.support.servers import free_port, wait_for

pytest_plugins = ["tests.support.browser"]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "quickstart.py"
FLASK = str(Path(sys.executable).parent / "flask")


class Running(NamedTuple):
    app_url: str
    sandbox_url: str
    env: dict[str, str]


def read_lines(process: subprocess.Popen[str], into: queue.Queue[str]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        into.put(line.rstrip("\n"))


def exported(lines: queue.Queue[str], timeout: float = 20.0) -> dict[str, str]:
    """The ``export NAME=value`` lines the sandbox prints at start (up to the blank line after them)."""
    found: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    while True:
        line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        if line.startswith("export "):
            name, _, value = line[len("export ") :].partition("=")
            found[name] = shlex.split(value)[0]
        elif found and not line.strip():
            return found


def stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
    if process.stdout is not None:
        process.stdout.close()


@pytest.fixture
def three_steps(tmp_path: Path) -> Iterator[Running]:
    folder = tmp_path / "newapp"
    folder.mkdir()
    shutil.copy(EXAMPLE, folder / "quickstart.py")  # step 1
    app_port, sandbox_port = free_port(), free_port()
    app_url, sandbox_url = f"http://127.0.0.1:{app_port}", f"http://127.0.0.1:{sandbox_port}"
    base_env = {key: value for key, value in os.environ.items() if not key.startswith(("MNO_", "FLASK_"))}
    base_env["PYTHONWARNINGS"] = "ignore"
    processes: list[subprocess.Popen[str]] = []
    try:
        # step 2: the sandbox, for an app that has no configuration at all yet
        sandbox = subprocess.Popen(
            [FLASK, "maestrano", "sandbox", "--port", str(sandbox_port), "--app-host", app_url,
             "--recheck", "2"],
            cwd=folder, env=base_env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        processes.append(sandbox)
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=read_lines, args=(sandbox, lines), daemon=True).start()
        env = exported(lines)
        assert env["MNO_DEVPL_HOST"] == sandbox_url and env["FLASK_MAESTRANO_AUTO_CONFIGURE"] == "true"
        wait_for(sandbox_url + "/version")
        # step 3: the app with the pasted lines
        app_env = {**base_env, **env, "FLASK_SECRET_KEY": "quickstart-test-secret"}
        app = subprocess.Popen(
            [FLASK, "--app", "quickstart", "run", "--port", str(app_port)],
            cwd=folder, env=app_env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        processes.append(app)
        app_lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=read_lines, args=(app, app_lines), daemon=True).start()
        try:
            wait_for(app_url + "/")
        except requests.ConnectionError:
            output = []
            while not app_lines.empty():
                output.append(app_lines.get())
            pytest.fail("the quick-start app did not start:\n" + "\n".join(output))
        yield Running(app_url, sandbox_url, env)
    finally:
        for process in reversed(processes):
            stop(process)


def sign_in_as_jane(page: Any, running: Running) -> None:
    expect(page.locator("h1")).to_contain_text("Sign in to app-sandbox")
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.locator("#user")).to_contain_text("Jane Doe")
    expect(page.locator("#company")).to_have_text("Acme Sandbox")


@pytest.mark.browser
def test_three_steps_log_a_new_app_in_and_the_sandbox_ends_sessions_like_the_platform(
    three_steps: Running, new_page: Callable[..., Any]
) -> None:
    running = three_steps
    page = new_page(running.app_url)
    page.goto("/")
    page.click("#login")
    # the sign-in form: the new-user fields show only while "New user" is chosen
    expect(page.locator("#new-user")).to_be_hidden()
    page.select_option("#user", "new")
    expect(page.locator("#new-user input[name=email]")).to_be_visible()
    page.select_option("#user", index=0)
    expect(page.locator("#new-user")).to_be_hidden()
    sign_in_as_jane(page, running)
    assert page.url == running.app_url + "/"

    # the sandbox admin ends Jane's marketplace session; the message says when apps check again
    admin = page.context.new_page()
    admin.goto(running.sandbox_url + "/")
    admin.locator("tr", has_text="jane.doe@example.com").get_by_role("button", name="End session").click()
    expect(admin.locator(".flash.ok")).to_contain_text("apps check again within 2 s")
    # at the next check (2 s) the app ends its session and sends the browser to the IdP,
    # which asks to sign in again instead of signing Jane straight back in
    deadline = time.monotonic() + 15
    while not page.url.startswith(running.sandbox_url):
        assert time.monotonic() < deadline, "the app did not end the session at its next check"
        time.sleep(0.25)
        page.goto("/")
    expect(page.locator("h1")).to_contain_text("Sign in to app-sandbox")
    expect(page.get_by_role("heading", name=re.compile("Continue as"))).to_have_count(0)
    sign_in_as_jane(page, running)

    # logging out ends both sessions; the logged-out page links back to the app
    page.click("#logout")
    expect(page.locator("h1")).to_have_text("Logged out")
    page.get_by_role("link", name="Back to app-sandbox").click()
    assert page.url == running.app_url + "/"
    expect(page.locator("#login")).to_be_visible()


def test_print_env_needs_no_app_and_keeps_the_chosen_credentials(tmp_path: Path) -> None:
    database = str(tmp_path / "sandbox.sqlite3")
    command = [FLASK, "maestrano", "sandbox", "--database", database, "--port", "5999", "--print-env"]
    env = {key: value for key, value in os.environ.items() if not key.startswith(("MNO_", "FLASK_"))}
    first = subprocess.run(
        [*command, "--app-id", "app-mine", "--app-key", "my-key", "--app-host", "http://127.0.0.1:5998"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    # an app configured for the sandbox cannot start before the sandbox does: never loaded
    (tmp_path / "myapp.py").write_text(
        "from flask import Flask\nfrom flask_maestrano import Maestrano\n"
        "def create_app():\n    app = Flask(__name__)\n"
        "    app.config['MAESTRANO_AUTO_CONFIGURE'] = True\n    Maestrano(app)\n    return app\n",
        encoding="utf-8",
    )
    again = subprocess.run(
        [FLASK, "--app", "myapp", *command[1:], "--app-id", "app-mine"], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert first.stdout == again.stdout  # the generated environment secret is kept
    names = [line.split("=", 1)[0] for line in first.stdout.splitlines()]
    assert names == [
        "export MNO_DEVPL_HOST",
        "export MNO_DEVPL_API_PATH",
        "export MNO_DEVPL_ENV_NAME",
        "export MNO_DEVPL_ENV_KEY",
        "export MNO_DEVPL_ENV_SECRET",
        "export FLASK_MAESTRANO_AUTO_CONFIGURE",
    ]
    assert "export MNO_DEVPL_HOST=http://127.0.0.1:5999\n" in first.stdout

    from flask_maestrano.sandbox import create_app, preset_for

    sandbox = create_app({"SANDBOX_DATABASE": database, "SANDBOX_URL": "http://127.0.0.1:5999"})
    preset = preset_for(sandbox, "app-mine")
    assert preset["api"]["key"] == "my-key" and preset["app"]["host"] == "http://127.0.0.1:5998"
