"""The initial Connec! import end to end against a real local Connec!: delivery, progress,
failure in the middle, resumption, first-login trigger, executors and the CLI."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any

import pytest
from flask import Flask, has_app_context

from flask_maestrano import Maestrano, signals
from flask_maestrano.importer import ImportStatus, MemoryImportStatusStore, executor
from flask_maestrano.jobs import DaemonExecutor
from tests.support.fake_platform import FakePlatform, KeepAliveServer, platform_preset_data

SUBSCRIPTIONS = {"organizations": True, "people": True, "invoices": False}


@pytest.fixture
def platform() -> FakePlatform:
    platform = FakePlatform()
    platform.seeded("cld-1", "organizations", 15)
    platform.seeded("cld-1", "people", 25)
    platform.seeded("cld-1", "invoices", 5)
    return platform


class Host:
    """A host app: the extension, and what its on_entities callback received."""

    def __init__(self, app: Flask, maestrano: Maestrano) -> None:
        self.app = app
        self.maestrano = maestrano
        self.received: list[tuple[str, str, list[str], str]] = []
        self.contexts: list[bool] = []
        self.threads: list[str] = []
        self.states: list[str | None] = []
        self.fail_on: str | None = None
        self.lock = threading.Lock()

        @maestrano.on_entities
        def on_entities(
            preset: Any, group_id: str, collection: str, entities: list[Any], source: str
        ) -> None:
            if collection == self.fail_on:
                self.fail_on = None
                raise RuntimeError("the host's database is down")
            status = maestrano.import_status(group_id)
            with self.lock:
                self.received.append((group_id, collection, [e.id for e in entities], source))
                self.contexts.append(has_app_context())
                self.threads.append(threading.current_thread().name)
                self.states.append(status.state if status else None)

    def ids(self, collection: str) -> list[str]:
        return [i for _, c, ids, _ in self.received if c == collection for i in ids]


@pytest.fixture
def host(server: KeepAliveServer, make_app: Callable[..., Flask]) -> Callable[..., Host]:
    def build(**config: Any) -> Host:
        maestrano = Maestrano()
        settings: dict[str, Any] = {
            "MAESTRANO_IMPORT_PAGE_SIZE": 5,
            "MAESTRANO_HTTP_RETRIES": 0,
            "MAESTRANO_HTTP_BACKOFF": 0,
        }
        settings.update(config)
        data = platform_preset_data(server.url, webhooks={"connec": {"subscriptions": SUBSCRIPTIONS}})
        app = make_app(presets={"production": data}, maestrano=maestrano, **settings)
        return Host(app, maestrano)

    return build


def test_import_delivers_every_subscribed_collection_page_by_page(
    platform: FakePlatform, host: Callable[..., Host]
) -> None:
    h = host()
    with h.app.app_context():
        status = h.maestrano.run_import("cld-1")
    assert status.state == "succeeded"
    assert status.collections == ("organizations", "people")  # invoices not subscribed
    # collections are read at the same time: either may finish first
    assert sorted(status.completed) == ["organizations", "people"]
    assert dict(status.counts) == {"organizations": 15, "people": 25}
    assert dict(status.totals) == {"organizations": 15, "people": 25}
    assert status.pages == 3 + 5 and status.attempts == 1 and status.error is None
    assert h.ids("organizations") == [f"organizations-{i}" for i in range(15)]
    assert h.ids("people") == [f"people-{i}" for i in range(25)]
    assert {(g, s) for g, _, _, s in h.received} == {("cld-1", "import")}
    assert set(h.states) == {"running"}  # progress is visible while it runs
    assert platform.calls("/api/v2/cld-1/invoices") == []
    assert 1 <= len(platform.ports()) <= 2  # one pooled connection per collection read at once


def test_collections_are_read_at_the_same_time_and_delivered_in_the_calling_thread(
    platform: FakePlatform, host: Callable[..., Host]
) -> None:
    # the first page of each collection is held until both have been asked for: read one
    # after the other, the second would never be asked for while the first is held
    paths = ["/api/v2/cld-1/organizations", "/api/v2/cld-1/people"]
    for path in paths:
        platform.delay(path, 60)
    both_asked = threading.Event()

    def release_when_both_asked() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not all(platform.calls(path) for path in paths):
            time.sleep(0.01)
        if all(platform.calls(path) for path in paths):
            both_asked.set()
        platform.release.set()

    watcher = threading.Thread(target=release_when_both_asked)
    watcher.start()
    h = host(MAESTRANO_IMPORT_CONCURRENCY=4)
    with h.app.app_context():
        status = h.maestrano.run_import("cld-1")
    watcher.join()
    assert both_asked.is_set()
    assert status.state == "succeeded" and set(status.completed) == {"organizations", "people"}
    assert status.cursors == {} and status.pages == 8
    assert sorted(h.ids("people")) == sorted(f"people-{i}" for i in range(25))
    assert h.ids("organizations") == [f"organizations-{i}" for i in range(15)]  # in order within one
    assert set(h.threads) == {threading.current_thread().name}


def test_a_concurrent_import_that_fails_resumes_every_collection_where_it_stopped(
    platform: FakePlatform, host: Callable[..., Host]
) -> None:
    platform.fail("/api/v2/cld-1/people", times=1, status=500, after=2)  # the 3rd page of people
    h = host(MAESTRANO_IMPORT_CONCURRENCY=4)
    with h.app.app_context():
        failed = h.maestrano.run_import("cld-1")
        assert failed.state == "failed" and (failed.error or "").startswith("people: ")
        assert failed.counts["people"] == 10 and "%24skip=10" in failed.cursors["people"]
        assert ImportStatus.from_dict(failed.to_dict()) == failed
        done = h.maestrano.run_import("cld-1")
    assert done.state == "succeeded" and done.attempts == 2 and done.cursors == {}
    assert dict(done.counts) == {"organizations": 15, "people": 25}
    # every entity delivered exactly once across both runs
    assert h.ids("people") == [f"people-{i}" for i in range(25)]
    assert sorted(h.ids("organizations")) == sorted(f"organizations-{i}" for i in range(15))


def test_progress_is_reported_after_every_page(host: Callable[..., Host]) -> None:
    from flask_maestrano.importer import run_import

    h = host()
    seen: list[tuple[int, int, str]] = []
    with h.app.app_context():
        preset = h.maestrano.preset()
        run_import(
            h.app,
            preset,
            "cld-1",
            on_page=lambda s, page: seen.append((s.pages, s.delivered, page.collection)),
        )
    assert [p for p, _, _ in seen] == list(range(1, 9))
    assert [d for _, d, _ in seen] == [5, 10, 15, 20, 25, 30, 35, 40]


def test_a_failure_in_the_middle_is_recorded_and_a_rerun_resumes_and_completes(
    platform: FakePlatform, host: Callable[..., Host]
) -> None:
    platform.fail("/api/v2/cld-1/people", times=1, status=500, after=2)  # the 3rd page of people
    h = host(MAESTRANO_IMPORT_CONCURRENCY=1)  # organizations first, then people
    with h.app.app_context():
        failed = h.maestrano.run_import("cld-1")
        assert h.maestrano.import_status("cld-1") == failed
    assert failed.state == "failed"
    assert failed.error is not None and failed.error.startswith("people: ") and "500" in failed.error
    assert failed.completed == ("organizations",)
    assert dict(failed.counts) == {"organizations": 15, "people": 10}  # partial progress kept
    assert failed.current == "people" and failed.cursor is not None and "%24skip=10" in failed.cursor
    assert h.ids("people") == [f"people-{i}" for i in range(10)]
    organization_calls = len(platform.calls("/api/v2/cld-1/organizations"))

    with h.app.app_context():
        done = h.maestrano.run_import("cld-1")
    assert done.state == "succeeded" and done.attempts == 2 and done.error is None
    assert dict(done.counts) == {"organizations": 15, "people": 25}
    assert h.ids("people") == [f"people-{i}" for i in range(25)]  # each delivered once
    assert h.ids("organizations") == [f"organizations-{i}" for i in range(15)]
    assert len(platform.calls("/api/v2/cld-1/organizations")) == organization_calls  # not read again


def test_a_failing_host_callback_fails_the_import_and_the_rerun_redelivers_that_page(
    host: Callable[..., Host],
) -> None:
    h = host(MAESTRANO_IMPORT_CONCURRENCY=1)  # organizations first, then people
    h.fail_on = "people"
    with h.app.app_context():
        failed = h.maestrano.run_import("cld-1")
        assert failed.state == "failed" and "the host's database is down" in (failed.error or "")
        assert dict(failed.counts) == {"organizations": 15}
        done = h.maestrano.run_import("cld-1")
    assert done.state == "succeeded"
    assert h.ids("people") == [f"people-{i}" for i in range(25)]


def test_restart_starts_over_and_a_finished_import_can_be_run_again(host: Callable[..., Host]) -> None:
    h = host()
    with h.app.app_context():
        h.maestrano.run_import("cld-1")
        again = h.maestrano.run_import("cld-1", collections=["organizations"])
    assert again.state == "succeeded" and again.attempts == 1
    assert dict(again.counts) == {"organizations": 15}
    assert len(h.ids("organizations")) == 30


def test_start_import_runs_off_the_request_in_an_app_context(host: Callable[..., Host]) -> None:
    h = host()
    with h.app.app_context():
        future = h.maestrano.start_import("cld-1", collections="organizations, people")
        assert isinstance(future, Future)
        status: ImportStatus = future.result(timeout=30)
        assert h.maestrano.import_status("cld-1") == status
    assert status.state == "succeeded" and status.delivered == 40
    assert set(h.contexts) == {True}
    assert all(name.startswith("maestrano-import") for name in h.threads)


class RecordingExecutor:
    """Any object with ``submit(fn, *args)`` can run imports (Celery, RQ... adapters)."""

    def __init__(self) -> None:
        self.pool = ThreadPoolExecutor(max_workers=1)
        self.submitted: list[tuple[Any, ...]] = []
        self.futures: list[Future[Any]] = []

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        self.submitted.append(args)
        future = self.pool.submit(fn, *args)
        self.futures.append(future)
        return future


def login(app: Flask, group_created: bool, group_id: str = "cld-1") -> None:
    identity = SimpleNamespace(group=SimpleNamespace(uid=group_id))
    signals.login_succeeded.send(
        app,
        user=object(),
        group=object(),
        identity=identity,
        preset="production",
        user_created=group_created,
        group_created=group_created,
    )


def test_first_login_of_a_company_starts_its_import(host: Callable[..., Host]) -> None:
    executor = RecordingExecutor()
    h = host(MAESTRANO_IMPORT_EXECUTOR=executor)
    login(h.app, group_created=False)
    assert executor.submitted == []
    login(h.app, group_created=True)
    assert len(executor.submitted) == 1
    status = executor.futures[0].result(timeout=30)
    assert status.state == "succeeded" and status.delivered == 40
    assert executor.submitted[0][1:] == ("production", "cld-1", None)  # (app, preset, group, collections)
    executor.pool.shutdown()


def test_first_login_import_can_be_turned_off(host: Callable[..., Host]) -> None:
    executor = RecordingExecutor()
    h = host(MAESTRANO_IMPORT_EXECUTOR=executor, MAESTRANO_IMPORT_ON_FIRST_LOGIN=False)
    login(h.app, group_created=True)
    assert executor.submitted == []
    executor.pool.shutdown()


def test_configured_collections_and_status_store_are_used(host: Callable[..., Host]) -> None:
    store = MemoryImportStatusStore()
    h = host(MAESTRANO_IMPORT_COLLECTIONS=["invoices"], MAESTRANO_IMPORT_STATUS_STORE=store)
    with h.app.app_context():
        status = h.maestrano.run_import("cld-1")
    assert status.collections == ("invoices",) and dict(status.counts) == {"invoices": 5}
    assert store.get("production", "cld-1") == status
    assert ImportStatus.from_dict(status.to_dict()) == status


def test_an_executor_that_cannot_queue_records_a_failed_status(host: Callable[..., Host]) -> None:
    class BrokerDown:
        def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
            raise ConnectionError("broker unreachable")

    h = host(MAESTRANO_IMPORT_EXECUTOR=BrokerDown())
    with h.app.app_context():
        with pytest.raises(ConnectionError):
            h.maestrano.start_import("cld-1")
        status = h.maestrano.import_status("cld-1")
    assert status is not None and status.state == "failed"
    assert status.error == "could not queue the import: broker unreachable"


def test_a_later_login_resumes_a_failed_import_and_a_login_after_success_does_not(
    host: Callable[..., Host],
) -> None:
    executor = RecordingExecutor()
    # organizations first, then people
    h = host(MAESTRANO_IMPORT_EXECUTOR=executor, MAESTRANO_IMPORT_CONCURRENCY=1)
    h.fail_on = "people"
    with h.app.app_context():
        failed = h.maestrano.run_import("cld-1")
    assert failed.state == "failed" and failed.completed == ("organizations",)
    login(h.app, group_created=False)
    assert len(executor.submitted) == 1
    status = executor.futures[0].result(timeout=30)
    assert status.state == "succeeded" and status.attempts == 2
    assert len(h.ids("organizations")) == 15 and len(h.ids("people")) == 25  # resumed, not redone
    login(h.app, group_created=False)
    assert len(executor.submitted) == 1
    executor.pool.shutdown()


def test_the_default_executor_runs_imports_on_daemon_threads(host: Callable[..., Host]) -> None:
    h = host()
    with h.app.app_context():
        future = h.maestrano.start_import("cld-1")
        future.result(timeout=30)
    assert isinstance(executor(h.app), DaemonExecutor)
    workers = [t for t in threading.enumerate() if t.name.startswith("maestrano-import")]
    assert workers and all(t.daemon for t in workers)
