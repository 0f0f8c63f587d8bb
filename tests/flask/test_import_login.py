"""A company's first real SAML login starts its Connec! import; later logins do not, unless
the last import failed or was interrupted (catch-up)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any

import pytest
from flask import Flask

from flask_maestrano import signals
from flask_maestrano.testing import TestIdP, login
from tests.support.fake_platform import API_ID, API_KEY, FakePlatform, KeepAliveServer
from tests.support.jobs import wait_for
from tests.support.presets import preset_data
from tests.support.saml import build_host_app


class Executor:
    def __init__(self) -> None:
        self.pool = ThreadPoolExecutor(max_workers=1)
        self.futures: list[Future[Any]] = []

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        future = self.pool.submit(fn, *args)
        self.futures.append(future)
        return future


@pytest.fixture
def server() -> Iterator[tuple[FakePlatform, KeepAliveServer]]:
    platform = FakePlatform()
    platform.seeded("cld-1", "organizations", 12)
    server = KeepAliveServer(platform.app)
    yield platform, server
    server.stop()


def _host(live: KeepAliveServer, make_app: Callable[..., Flask], idp: TestIdP, **config: Any) -> Any:
    presets = {
        "production": preset_data(
            sso={"x509_certificate": idp.cert_pem, "idp": live.url},
            api={"id": API_ID, "key": API_KEY, "host": live.url},
            connec={"host": live.url},
            webhooks={"connec": {"subscriptions": {"organizations": True}}},
        )
    }
    return build_host_app(make_app, presets, **config)


def test_first_login_of_a_company_imports_it_and_the_next_login_does_not(
    server: tuple[FakePlatform, KeepAliveServer], make_app: Callable[..., Flask]
) -> None:
    _platform, live = server
    idp = TestIdP()
    executor = Executor()
    app, host = _host(live, make_app, idp, MAESTRANO_IMPORT_EXECUTOR=executor)
    maestrano = app.extensions["maestrano"].extension
    received: list[tuple[str, str, int, str]] = []

    @maestrano.on_entities
    def on_entities(preset: Any, group_id: str, collection: str, entities: Any, source: str) -> None:
        received.append((group_id, collection, len(entities), source))

    with app.test_client() as client:
        assert login(client, idp, uid="usr-1", group_uid="cld-1").status_code == 302
    assert "cld-1" in host.groups and len(executor.futures) == 1
    status = executor.futures[0].result(timeout=30)
    assert status.state == "succeeded" and dict(status.counts) == {"organizations": 12}
    assert sum(n for _, _, n, _ in received) == 12
    assert {(g, c, s) for g, c, _, s in received} == {("cld-1", "organizations", "import")}

    with app.test_client() as client:
        assert login(client, idp, uid="usr-2", group_uid="cld-1").status_code == 302
    assert len(executor.futures) == 1  # the company already existed
    with app.app_context():
        assert maestrano.import_status("cld-1") == status
    executor.pool.shutdown()


def test_the_executor_gets_the_job_with_the_app_preset_group_and_collections(
    server: tuple[FakePlatform, KeepAliveServer], make_app: Callable[..., Flask]
) -> None:
    _platform, live = server
    idp = TestIdP()
    submitted: list[tuple[Any, ...]] = []
    executor = Executor()
    app, _host_db = _host(live, make_app, idp, MAESTRANO_IMPORT_EXECUTOR=executor)
    real_submit = executor.submit
    executor.submit = lambda fn, *args: submitted.append(args) or real_submit(fn, *args)  # type: ignore[method-assign]
    with app.test_client() as client:
        assert login(client, idp, uid="usr-1", group_uid="cld-1").status_code == 302
    assert submitted == [(app, "production", "cld-1", None)]
    assert executor.futures[0].result(timeout=30).state == "succeeded"
    executor.pool.shutdown()


def test_first_login_import_can_be_turned_off(
    server: tuple[FakePlatform, KeepAliveServer], make_app: Callable[..., Flask]
) -> None:
    _platform, live = server
    idp = TestIdP()
    executor = Executor()
    app, host = _host(
        live, make_app, idp, MAESTRANO_IMPORT_EXECUTOR=executor, MAESTRANO_IMPORT_ON_FIRST_LOGIN=False
    )
    with app.test_client() as client:
        assert login(client, idp, uid="usr-1", group_uid="cld-1").status_code == 302
    assert "cld-1" in host.groups and executor.futures == []
    executor.pool.shutdown()


def test_an_import_that_cannot_start_never_fails_the_login(
    server: tuple[FakePlatform, KeepAliveServer], make_app: Callable[..., Flask]
) -> None:
    class BrokerDown:
        def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
            raise ConnectionError("broker unreachable")

    _platform, live = server
    idp = TestIdP()
    app, _host_db = _host(live, make_app, idp, MAESTRANO_IMPORT_EXECUTOR=BrokerDown())
    with app.test_client() as client:
        assert login(client, idp, uid="usr-1", group_uid="cld-1").status_code == 302
        assert client.get("/page").get_data(as_text=True) == "user:usr-1"
    with app.app_context():
        status = app.extensions["maestrano"].extension.import_status("cld-1")
    assert status.state == "failed" and status.error == "could not queue the import: broker unreachable"


def test_the_login_signal_is_left_to_hosts(
    server: tuple[FakePlatform, KeepAliveServer], make_app: Callable[..., Flask]
) -> None:
    _platform, live = server
    idp = TestIdP()
    executor = Executor()
    app, _host_db = _host(live, make_app, idp, MAESTRANO_IMPORT_EXECUTOR=executor)
    assert list(signals.login_succeeded.receivers_for(app)) == []
    identity = SimpleNamespace(group=SimpleNamespace(uid="cld-1"))
    signals.login_succeeded.send(app, identity=identity, preset="production", group_created=True)
    assert executor.futures == []  # sending the signal does not drive the library
    executor.pool.shutdown()


def test_a_later_login_resumes_a_failed_import_and_a_login_after_success_does_not(
    server: tuple[FakePlatform, KeepAliveServer], make_app: Callable[..., Flask]
) -> None:
    _platform, live = server
    idp = TestIdP()
    executor = Executor()
    app, _host_db = _host(live, make_app, idp, MAESTRANO_IMPORT_EXECUTOR=executor)
    maestrano = app.extensions["maestrano"].extension
    broken = [True]
    received: list[int] = []

    @maestrano.on_entities
    def on_entities(preset: Any, group_id: str, collection: str, entities: Any, source: str) -> None:
        if broken[0]:
            raise RuntimeError("the host's database is down")
        received.append(len(entities))

    with app.test_client() as client:
        assert login(client, idp, uid="usr-1", group_uid="cld-1").status_code == 302
    failed = executor.futures[0].result(timeout=30)
    assert failed.state == "failed" and "database is down" in (failed.error or "")
    broken[0] = False
    with app.test_client() as client:  # the company exists: its failed import is resumed
        assert login(client, idp, uid="usr-2", group_uid="cld-1").status_code == 302
    assert len(executor.futures) == 2
    status = executor.futures[1].result(timeout=30)
    assert status.state == "succeeded" and status.attempts == 2 and sum(received) == 12
    with app.test_client() as client:  # nothing left to catch up
        assert login(client, idp, uid="usr-3", group_uid="cld-1").status_code == 302
    assert len(executor.futures) == 2
    executor.pool.shutdown()


class LosingExecutor(Executor):
    """A task queue that loses the first task it takes (its worker killed before the run);
    ``submit`` returns a task handle, as RQ and Celery do."""

    def __init__(self) -> None:
        super().__init__()
        self.lost: list[Any] = []

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        if not self.lost:
            self.lost.append(SimpleNamespace(id="task-1"))
            return self.lost[0]
        return super().submit(fn, *args)


def test_a_later_login_resumes_an_import_whose_task_the_queue_lost_once_its_claim_expired(
    server: tuple[FakePlatform, KeepAliveServer], make_app: Callable[..., Flask]
) -> None:
    _platform, live = server
    idp = TestIdP()
    executor = LosingExecutor()
    app, _host_db = _host(
        live, make_app, idp, MAESTRANO_IMPORT_EXECUTOR=executor, MAESTRANO_JOB_QUEUED_TTL=0.2
    )
    maestrano = app.extensions["maestrano"].extension
    with app.test_client() as client:
        assert login(client, idp, uid="usr-1", group_uid="cld-1").status_code == 302
    assert len(executor.lost) == 1 and executor.futures == []  # queued, never run

    def state() -> str | None:
        with app.app_context():
            status = maestrano.import_status("cld-1")
        return status.state if status else None

    wait_for(lambda: state() == "interrupted", 10)  # no claim and no lock: the task is gone
    with app.test_client() as client:  # the company's next login queues it again
        assert login(client, idp, uid="usr-2", group_uid="cld-1").status_code == 302
    assert len(executor.futures) == 1
    status = executor.futures[0].result(timeout=30)
    assert status.state == "succeeded" and status.counts == {"organizations": 12}
    executor.pool.shutdown()
