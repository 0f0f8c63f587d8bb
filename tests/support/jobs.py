"""What the job tests share: the fake platform seeded for an import, apps built on it, an
import process and job worker processes (started and stopped by the test), and waiting for
another process's state."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from flask_maestrano import Maestrano
from flask_maestrano.importer import ImportStatus
from tests.support.fake_platform import FakePlatform, KeepAliveServer, platform_preset_data

ROOT = Path(__file__).resolve().parents[2]
ORGS = "/api/v2/cld-1/organizations"
PEOPLE = "/api/v2/cld-1/people"
SUBSCRIPTIONS = {"organizations": True, "people": True}


def build(make_app: Callable[..., Flask], url: str, **config: Any) -> tuple[Flask, Maestrano]:
    maestrano = Maestrano()
    data = platform_preset_data(url, webhooks={"connec": {"subscriptions": SUBSCRIPTIONS}})
    settings: dict[str, Any] = {"MAESTRANO_IMPORT_PAGE_SIZE": 5, "MAESTRANO_HTTP_RETRIES": 0}
    settings.update(config)
    return make_app(presets={"production": data}, maestrano=maestrano, **settings), maestrano


def status_of(app: Flask, maestrano: Maestrano) -> ImportStatus | None:
    with app.app_context():
        return maestrano.import_status("cld-1")


def first_page_requests(platform: FakePlatform, path: str) -> int:
    return sum(1 for call in platform.calls(path) if "$skip" not in call.query)


def delay_every_collection(platform: FakePlatform, seconds: float) -> None:
    """Slow every collection's pages: read at the same time, none finishes before a kill."""
    for path in (ORGS, PEOPLE):
        platform.delay(path, seconds)


def hold_after_first_page(platform: FakePlatform) -> None:
    """Every collection answers its first page, then holds its next until :func:`release_holds`:
    an import is stopped mid-way however slow the machine is (no race with a kill)."""
    for path in (ORGS, PEOPLE):
        platform.hold(path, after=1)


def release_holds(platform: FakePlatform) -> None:
    """Answer the held requests and hold no more."""
    platform.holds.clear()
    platform.release.set()


def started(status: ImportStatus) -> list[str]:
    """The collections ``status`` delivered pages of and did not complete: each has a cursor."""
    names = [name for name, count in status.counts.items() if count and name not in status.completed]
    assert names and all(name in status.cursors for name in names), status
    return names


def assert_resumed_at_cursors(platform: FakePlatform, names: list[str]) -> None:
    """Each of ``names`` was resumed at its cursor, not started over: its first page was read once."""
    paths = {"organizations": ORGS, "people": PEOPLE}
    for name in names:
        assert first_page_requests(platform, paths[name]) == 1, name


@contextlib.contextmanager
def job_process(platform_url: str, redis_url: str, mode: str, lease: float) -> Iterator[Any]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.job_process", platform_url, redis_url, mode, str(lease)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                stream.close()


def wait_for(condition: Callable[[], bool], seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the condition did not hold in time"
        time.sleep(0.05)  # polling an outside process's state (no event to await)


@contextlib.contextmanager
def worker_process(command: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """A job worker process in a session of its own, killed (with its group) on exit."""
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env={**os.environ, **env, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


def start_all(instances: list[tuple[Flask, Any]]) -> None:
    """``start_import`` of one group from every app instance at once."""
    barrier = threading.Barrier(len(instances))

    def start(app: Flask, maestrano: Any) -> None:
        with app.app_context():
            barrier.wait(timeout=10)
            maestrano.start_import("cld-1")

    threads = [threading.Thread(target=start, args=instance) for instance in instances]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)


@pytest.fixture
def seeded_platform() -> Iterator[tuple[FakePlatform, KeepAliveServer]]:
    """The fake platform with 15 organizations and 25 people in group cld-1, served for real."""
    platform = FakePlatform()
    platform.seeded("cld-1", "organizations", 15)
    platform.seeded("cld-1", "people", 25)
    server = KeepAliveServer(platform.app)
    yield platform, server
    platform.release.set()  # a delayed answer ends now
    server.stop()


@pytest.fixture
def job_env(
    seeded_platform: tuple[FakePlatform, KeepAliveServer], clean_redis: str, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """The environment of the job-worker test apps (tests/support/rq_app.py, celery_app.py):
    the seeded platform, the emptied Redis and a 1 s job lease, set here and for workers."""
    url = seeded_platform[1].url
    values = {"JOB_TEST_PLATFORM": url, "JOB_TEST_REDIS": clean_redis, "JOB_TEST_LEASE": "1"}
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values
