"""The load harness, small, under a real gunicorn (4 sync workers), a real Redis as the store,
the sandbox over HTTP and a real RQ worker: recycling the web workers (HUP, ``max_requests``)
while imports run on their threads loses no import and the app keeps serving; a web worker
killed with -9 loses no login that is retried. Every process the stack starts is stopped by
its context manager, whatever the test's outcome."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("gunicorn")
pytest.importorskip("rq")
if shutil.which("redis-server") is None:
    pytest.skip("redis-server is not installed (apt-get install redis-server)", allow_module_level=True)

from load.runs import Fault, Result, run
from load.stack import Stack

USERS, SECONDS, SETTLE = 3, 4.0, 40.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Imports on the web workers' own daemon threads: the ones a recycle interrupts."""
    workdir: Path = tmp_path_factory.mktemp("gunicorn")
    with Stack(workdir, "sync", page_delay=0.3, executor="threads") as started:
        yield started


def hup_once_imports_run(stack: Stack) -> None:
    stack.wait_for_running_import("threads")
    stack.hup_web()


def assert_nothing_lost(result: Result) -> None:
    assert result.errors_500 == 0 and result.lost == 0, result.problems
    assert result.imports_started == USERS and result.imports_completed == USERS, result.problems
    assert result.served_after_fault > 0 and result.logins_ok > 0


def test_hup_while_imports_run_on_the_web_workers_loses_no_import_and_the_app_keeps_serving(
    stack: Stack,
) -> None:
    before = set(stack.web_workers())
    fault = Fault("web-hup", inject=hup_once_imports_run)
    result = run(stack, fault, users=USERS, seconds=SECONDS, settle=SETTLE)
    assert_nothing_lost(result)
    assert not before & set(stack.web_workers())  # every worker was replaced


def test_max_requests_recycling_while_imports_run_loses_no_import_and_the_app_keeps_serving(
    stack: Stack,
) -> None:
    stack.restart_web(max_requests=8)
    try:
        before = set(stack.web_workers())
        result = run(stack, Fault("max-requests"), users=USERS, seconds=SECONDS, settle=SETTLE)
        recycled = before - set(stack.web_workers())
    finally:
        stack.restart_web(max_requests=0)
    assert_nothing_lost(result)
    assert recycled  # workers reached max_requests and were replaced during the run


def test_a_web_worker_killed_with_9_loses_no_login_that_is_retried(stack: Stack) -> None:
    before = set(stack.web_workers())
    fault = Fault("web-kill-9", at=1.0, inject=Stack.kill_web_worker)
    result = run(stack, fault, users=USERS, seconds=SECONDS, settle=SETTLE)
    assert len(before - set(stack.web_workers())) == 1  # one worker killed, and replaced
    assert_nothing_lost(result)
