"""Imports on real Celery worker processes (``flask_maestrano.contrib.celery``) over a real
Redis broker and store: one import per group whatever the starts, Celery's retry resumes a
failed import, and a worker killed with -9 mid-import leaves an import the next start resumes."""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

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

pytest.importorskip("celery")


def celery_module(env: dict[str, str]) -> Any:
    """tests.support.celery_app, imported once ``JOB_TEST_REDIS`` is set (its broker)."""
    return importlib.import_module("tests.support.celery_app")


def celery_worker(env: dict[str, str]) -> contextlib.AbstractContextManager[subprocess.Popen[bytes]]:
    command = [str(Path(sys.executable).parent / "celery"), "-A", "tests.support.celery_app:celery"]
    return worker_process(
        [*command, "worker", "--pool", "solo", "--without-gossip", "--without-mingle", "-l", "warning"], env
    )


def apps(env: dict[str, str], count: int) -> list[tuple[Flask, Any]]:
    module = celery_module(env)
    return [(module.create_app(), module.maestrano) for _ in range(count)]


def state_of(app: Flask, maestrano: Any) -> str | None:
    return getattr(status_of(app, maestrano), "state", None)


def test_concurrent_starts_run_one_import_on_a_celery_worker_and_its_retry_resumes_a_failure(
    job_env: dict[str, str],
    seeded_platform: tuple[FakePlatform, KeepAliveServer],
    clean_redis: str,
) -> None:
    import redis

    fake, _ = seeded_platform
    # the first attempt fails at the 3rd page of people, read slowly: organizations are done by then
    fake.fail(PEOPLE, times=1, status=500, after=2)
    fake.delay(PEOPLE, 0.5)
    instances = apps(job_env, 4)
    start_all(instances)
    with contextlib.closing(redis.Redis.from_url(clean_redis)) as client:
        assert client.llen("celery") == 1  # one task queued for four starts
    with celery_worker(job_env):
        wait_for(lambda: state_of(*instances[0]) == "succeeded", 90)
    statuses = [status_of(app, maestrano) for app, maestrano in instances]
    assert all(status == statuses[0] for status in statuses)
    final = statuses[0]
    assert final is not None and final.attempts == 2
    assert dict(final.counts) == {"organizations": 15, "people": 25}
    assert_resumed_at_cursors(fake, ["organizations", "people"])  # the retry resumed people at its cursor


def test_a_celery_worker_killed_mid_import_is_resumed_to_completion_by_the_next_start(
    job_env: dict[str, str],
    seeded_platform: tuple[FakePlatform, KeepAliveServer],
) -> None:
    fake, _ = seeded_platform
    hold_after_first_page(fake)  # the import stops after a page of each collection, until released
    (app, maestrano), other = apps(job_env, 2)
    with app.app_context():
        maestrano.start_import("cld-1")
    with celery_worker(job_env) as worker:
        wait_for(lambda: getattr(status_of(app, maestrano), "pages", 0) >= 1, 90)
        for pid in [*children(worker.pid), worker.pid]:
            os.kill(pid, signal.SIGKILL)
        worker.wait(timeout=10)
    wait_for(lambda: state_of(app, maestrano) == "interrupted")
    assert status_of(*other) == status_of(app, maestrano)
    interrupted = status_of(app, maestrano)
    assert interrupted is not None
    resumable = started(interrupted)
    release_holds(fake)
    with other[0].app_context():
        other[1].start_import("cld-1")
    with celery_worker(job_env):
        wait_for(lambda: state_of(app, maestrano) == "succeeded", 90)
    final = status_of(app, maestrano)
    assert final is not None and final.attempts == 2
    assert dict(final.counts) == {"organizations": 15, "people": 25}
    assert_resumed_at_cursors(fake, resumable)
