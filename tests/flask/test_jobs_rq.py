"""Imports on real RQ worker processes (``flask_maestrano.contrib.rq``) over a real Redis:
one import per group whatever the starts and workers, RQ's retry resumes a failed import, and a
job worker killed with -9 mid-import leaves an import that the next start resumes."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from tests.support import rq_app
from tests.support.fake_platform import FakePlatform, KeepAliveServer
from tests.support.jobs import (
    PEOPLE,
    assert_resumed_at_cursors,
    children,
    hold_after_first_page,
    release_holds,
    start_all,
    started,
    status_of,
    wait_for,
    worker_process,
)

pytest.importorskip("rq")


def rq_worker(env: dict[str, str], burst: bool) -> contextlib.AbstractContextManager[subprocess.Popen[bytes]]:
    """``rq worker`` on the test queue (its work horses run in sessions of their own)."""
    command = [str(Path(sys.executable).parent / "rq"), "worker", "--url", env["JOB_TEST_REDIS"]]
    return worker_process([*command, *(["--burst"] if burst else []), rq_app.QUEUE], env)


def apps(count: int) -> list[tuple[Flask, Any]]:
    built = [rq_app.create_app() for _ in range(count)]
    return [(app, rq_app.maestrano) for app in built]


def queued_jobs(app: Flask) -> int:
    executor = app.config["MAESTRANO_IMPORT_EXECUTOR"]
    return int(executor.queue.count)


def test_concurrent_starts_and_two_workers_run_one_import_and_rq_retry_resumes_a_failure(
    job_env: dict[str, str], seeded_platform: tuple[FakePlatform, KeepAliveServer]
) -> None:
    fake, _ = seeded_platform
    # the first attempt fails at the 3rd page of people, read slowly: organizations are done by then
    fake.fail(PEOPLE, times=1, status=500, after=2)
    fake.delay(PEOPLE, 0.5)
    instances = apps(4)
    start_all(instances)
    assert queued_jobs(instances[0][0]) == 1
    with rq_worker(job_env, burst=True) as first, rq_worker(job_env, burst=True) as second:
        assert first.wait(timeout=90) == 0 and second.wait(timeout=90) == 0
    statuses = [status_of(app, maestrano) for app, maestrano in instances]
    assert all(status == statuses[0] for status in statuses)  # every process, one status
    final = statuses[0]
    assert final is not None and final.state == "succeeded" and final.attempts == 2
    assert dict(final.counts) == {"organizations": 15, "people": 25}
    assert_resumed_at_cursors(fake, ["organizations", "people"])  # the retry resumed people at its cursor


def test_a_job_worker_killed_mid_import_is_resumed_to_completion_by_the_next_start(
    job_env: dict[str, str], seeded_platform: tuple[FakePlatform, KeepAliveServer]
) -> None:
    fake, _ = seeded_platform
    hold_after_first_page(fake)  # the import stops after a page of each collection, until released
    (app, maestrano), other = apps(2)
    with app.app_context():
        maestrano.start_import("cld-1")
    with rq_worker(job_env, burst=False) as worker:
        wait_for(lambda: getattr(status_of(app, maestrano), "pages", 0) >= 1, 60)
        for pid in [*children(worker.pid), worker.pid]:  # the work horse (its own session), the worker
            os.kill(pid, signal.SIGKILL)
        worker.wait(timeout=10)
    wait_for(lambda: getattr(status_of(app, maestrano), "state", None) == "interrupted")
    assert status_of(*other) == status_of(app, maestrano)
    interrupted = status_of(app, maestrano)
    assert interrupted is not None
    resumable = started(interrupted)
    release_holds(fake)
    with other[0].app_context():
        other[1].start_import("cld-1")  # e.g. the group's next login
    with rq_worker(job_env, burst=True) as worker:
        assert worker.wait(timeout=90) == 0
    final = status_of(app, maestrano)
    # resumed once by the next start; RQ may also requeue the killed job when a worker cleans
    # its registries first (the task queue's own retry): one more attempt, never a second run
    # at the same time (the lock), and the counts below prove nothing was imported twice
    assert final is not None and final.state == "succeeded" and 2 <= final.attempts <= 3
    assert dict(final.counts) == {"organizations": 15, "people": 25}
    assert_resumed_at_cursors(fake, resumable)
