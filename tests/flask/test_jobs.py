"""Durable, single-run imports: one lock per preset and group in a real Redis, a lease that a
killed process loses, daemon-safe shutdown, one status for every process, and catch-up."""

from __future__ import annotations

import contextlib
import signal
import subprocess
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any

import pytest
from flask import Flask

from flask_maestrano.importer import job_backend
from flask_maestrano.jobs import JobBackend, MemoryJobBackend, RedisJobBackend
from tests.support.fake_platform import FakePlatform, KeepAliveServer
from tests.support.jobs import (
    ORGS,
    PEOPLE,
    assert_resumed_at_cursors,
    build,
    delay_every_collection,
    first_page_requests,
    job_process,
    started,
    status_of,
    wait_for,
)

# -- the backends ---------------------------------------------------------------------------------


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> Iterator[JobBackend]:
    if request.param == "memory":
        yield MemoryJobBackend()
        return
    import redis

    url = request.getfixturevalue("clean_redis")
    with contextlib.closing(redis.Redis.from_url(url)) as client:
        yield RedisJobBackend(client)


def test_a_lock_has_one_owner_who_alone_renews_or_releases_it_and_it_expires(backend: JobBackend) -> None:
    assert backend.acquire("import:p:g", "a", ttl=30)
    assert not backend.acquire("import:p:g", "b", ttl=30)
    assert backend.holder("import:p:g") == "a"
    assert not backend.renew("import:p:g", "b", ttl=30)
    backend.release("import:p:g", "b")  # not b's: no effect
    assert backend.holder("import:p:g") == "a"
    assert backend.renew("import:p:g", "a", ttl=0.2)
    wait_for(lambda: backend.holder("import:p:g") is None, 5)  # the lease ran out
    assert not backend.renew("import:p:g", "a", ttl=30)
    assert backend.acquire("import:p:g", "b", ttl=30)
    backend.release("import:p:g", "b")
    assert backend.holder("import:p:g") is None

    backend.put_status("import:p:g", '{"x": 1}')
    backend.put_status("sync:p:g", "{}")
    assert backend.get_status("import:p:g") == '{"x": 1}'
    assert backend.names("import") == ["import:p:g"]


# -- single run across processes --------------------------------------------------------------------


def test_concurrent_imports_of_a_group_in_four_processes_run_once_and_all_see_one_status(
    seeded_platform: tuple[FakePlatform, KeepAliveServer], clean_redis: str, make_app: Callable[..., Flask]
) -> None:
    fake, server = seeded_platform
    fake.delay(ORGS, 0.5)  # every page of the import takes a while: the runs overlap
    with contextlib.ExitStack() as stack:
        processes = [stack.enter_context(job_process(server.url, clean_redis, "run", 30)) for _ in range(4)]
        for process in processes:  # every process built its app and waits
            assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        for process in processes:
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        outputs = []
        for process in processes:
            out, _ = process.communicate(timeout=60)
            outputs.append([line for line in out.splitlines() if line.startswith("state")])
    finals = sorted(lines[-1] for lines in outputs)
    assert finals == ["state running"] * 3 + ["state succeeded"]
    assert first_page_requests(fake, ORGS) == 1 and first_page_requests(fake, PEOPLE) == 1

    apps = [build(make_app, server.url, MAESTRANO_STORE=clean_redis) for _ in range(2)]
    statuses = [status_of(app, maestrano) for app, maestrano in apps]
    assert statuses[0] == statuses[1]
    assert statuses[0] is not None and statuses[0].state == "succeeded" and statuses[0].delivered == 40


class HeldExecutor:
    """A task queue whose worker has not picked anything up yet."""

    def __init__(self) -> None:
        self.submitted: list[tuple[Any, ...]] = []

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        self.submitted.append(args)
        return Future()


def test_a_start_while_another_process_has_queued_the_import_queues_nothing(
    seeded_platform: tuple[FakePlatform, KeepAliveServer], clean_redis: str, make_app: Callable[..., Flask]
) -> None:
    _, server = seeded_platform
    queues = [HeldExecutor(), HeldExecutor()]
    apps = [
        build(make_app, server.url, MAESTRANO_STORE=clean_redis, MAESTRANO_IMPORT_EXECUTOR=queue)
        for queue in queues
    ]
    with apps[0][0].app_context():
        apps[0][1].start_import("cld-1")
    with apps[1][0].app_context():
        answer = apps[1][1].start_import("cld-1")
    assert len(queues[0].submitted) == 1 and queues[1].submitted == []
    assert answer.done() and answer.result().state == "queued"
    assert status_of(*apps[1]) == status_of(*apps[0])


# -- a process that dies or stops -----------------------------------------------------------------


def read_pages(process: subprocess.Popen[str], count: int) -> None:
    assert process.stdout is not None
    for _ in range(count):
        assert process.stdout.readline().strip() == "page"


def test_a_killed_process_import_reads_interrupted_everywhere_and_the_sweep_resumes_it(
    seeded_platform: tuple[FakePlatform, KeepAliveServer], clean_redis: str, make_app: Callable[..., Flask]
) -> None:
    fake, server = seeded_platform
    delay_every_collection(fake, 0.2)
    apps = [build(make_app, server.url, MAESTRANO_STORE=clean_redis) for _ in range(2)]
    with job_process(server.url, clean_redis, "start", lease=1.0) as process:
        read_pages(process, 2)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    wait_for(lambda: getattr(status_of(*apps[0]), "state", None) == "interrupted")
    interrupted = status_of(*apps[0])
    assert interrupted == status_of(*apps[1])  # every process reports the same
    assert interrupted is not None and interrupted.delivered >= 5 and interrupted.cursor
    resumable = started(interrupted)  # a cursor per collection it was reading
    fake.delays.clear()

    app, _ = apps[1]
    result = app.test_cli_runner().invoke(args=["maestrano", "jobs", "resume"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("import\tproduction\tcld-1\tsucceeded\t40 entities")
    final = status_of(*apps[0])
    assert final is not None and final.state == "succeeded" and final.attempts == 2
    assert dict(final.counts) == {"organizations": 15, "people": 25}
    assert_resumed_at_cursors(fake, resumable)
    listing = app.test_cli_runner().invoke(args=["maestrano", "jobs", "list"])
    assert listing.output == "import\tproduction\tcld-1\tsucceeded\t40 entities\n"


def test_a_stopping_process_is_not_held_by_its_import_and_marks_it_interrupted(
    seeded_platform: tuple[FakePlatform, KeepAliveServer], clean_redis: str, make_app: Callable[..., Flask]
) -> None:
    fake, server = seeded_platform
    fake.delay(PEOPLE, 60)  # the import would hang in people far longer than the wait below
    app, maestrano = build(make_app, server.url, MAESTRANO_STORE=clean_redis)
    with job_process(server.url, clean_redis, "start", lease=60) as process:
        read_pages(process, 3)  # organizations done; now waiting on people
        process.send_signal(signal.SIGTERM)  # gunicorn's graceful stop of a worker
        assert process.wait(timeout=15) == 0
    # the lease (60 s) has not run out: the exiting process recorded it itself
    stopped = status_of(app, maestrano)
    assert stopped is not None and stopped.state == "interrupted" and stopped.error == "the process stopped"
    assert job_backend(app).holder("import:production:cld-1") is None

    fake.delays.clear()
    with app.app_context():
        final = maestrano.run_import("cld-1")
    assert final.state == "succeeded" and dict(final.counts) == {"organizations": 15, "people": 25}
    assert first_page_requests(fake, ORGS) == 1


def test_the_jobs_commands_say_when_there_is_nothing_or_when_they_cannot_see_the_statuses(
    seeded_platform: tuple[FakePlatform, KeepAliveServer], make_app: Callable[..., Flask]
) -> None:
    from flask_maestrano.importer import MemoryImportStatusStore

    app, _ = build(make_app, seeded_platform[1].url)
    result = app.test_cli_runner().invoke(args=["maestrano", "jobs", "resume"])
    assert result.exit_code == 0 and result.output == "nothing to resume\n"
    own, _ = build(make_app, seeded_platform[1].url, MAESTRANO_IMPORT_STATUS_STORE=MemoryImportStatusStore())
    for command in ("list", "resume"):
        result = own.test_cli_runner().invoke(args=["maestrano", "jobs", command])
        assert result.exit_code == 1
        assert "MAESTRANO_IMPORT_STATUS_STORE is the host's own store" in result.output
