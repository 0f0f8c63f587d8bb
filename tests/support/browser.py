"""Playwright fixtures for the browser tests: Debian's Chromium, one per session.

Loaded by a test module with ``pytest_plugins = ["tests.support.browser"]``. Each test gets
a fresh browser context (cookies, storage) and page; when the test fails, a screenshot and
the page's HTML are saved under the test's ``tmp_path``. Never run ``playwright install``:
the browser is the system's (``apt-get install chromium``, done by ``make system-deps``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: how long an action or an expectation waits before failing, in milliseconds
TIMEOUT_MS = 10_000


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep each phase's report on the item, so the page fixture knows a test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Chromium for the whole session."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: install it (make system-deps, or apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def new_page(browser: Any, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """``new_page(base_url)``: a page in a fresh context; failures leave a screenshot and HTML."""
    contexts: list[Any] = []

    def open_page(base_url: str, **options: Any) -> Any:
        context = browser.new_context(base_url=base_url, viewport={"width": 1000, "height": 700}, **options)
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        return context.new_page()

    yield open_page
    report = getattr(request.node, "report_call", None)
    failed = report is not None and report.failed
    for number, context in enumerate(contexts):
        if failed:
            for index, page in enumerate(context.pages):
                stem = tmp_path / f"failure-{number}-{index}"
                try:
                    page.screenshot(path=f"{stem}.png", full_page=True)
                    Path(f"{stem}.html").write_text(page.content(), encoding="utf-8")
                except Exception as exc:  # a crashed page must not hide the test's own failure
                    Path(f"{stem}.txt").write_text(f"could not save the page: {exc!r}", encoding="utf-8")
            print(f"browser failure artifacts in {tmp_path}")
        context.close()
