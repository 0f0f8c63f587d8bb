"""The app the load run serves under gunicorn (``load.app:create_app()``) and its RQ worker builds.

A host app as small as a real integration gets: Flask-Login users named by their Maestrano
uid, the company by its group uid (nothing to store), Redis as ``MAESTRANO_STORE`` and every
first-login import on a job executor. Half the groups (by a hash of their uid) import on the
RQ worker, the other half on the web worker's own daemon threads, so web-worker recycling and
job-worker faults both hit running imports. Every delivered entity is written to Redis
(``load:entities:<group>``) for the harness to compare with the sandbox.

Configured by the environment the harness sets: ``LOAD_PRESET`` (a JSON file of the preset),
``LOAD_REDIS`` (the store, the RQ queue and the entity records), ``LOAD_PAGE_DELAY`` (seconds
each delivered page takes, so that imports run long enough to be hit by the faults) and
``LOAD_EXECUTOR`` (``split``, the default, ``rq`` or ``threads``: where imports run).
"""

from __future__ import annotations

import json
import os
import time
import zlib
from collections.abc import Mapping
from concurrent.futures import Future
from typing import Any

from flask import Flask, jsonify
from flask_login import LoginManager, UserMixin, current_user, login_required  # type: ignore[import-untyped]
from redis import Redis, RedisError
from rq import Queue
from werkzeug.exceptions import ServiceUnavailable

from flask_maestrano import Maestrano, Preset
from flask_maestrano.contrib.rq import RQExecutor
from flask_maestrano.errors import StoreUnavailable
from flask_maestrano.jobs import DaemonExecutor
from flask_maestrano.sso import maestrano_logout
from flask_maestrano.sso.identity import Group
from flask_maestrano.sso.identity import User as MaestranoUser
from flask_maestrano.sso.session import current_session

#: the RQ queue of the imports
QUEUE = "maestrano-load"
#: where the entities an import delivered are recorded: a hash per group, ``collection/id`` -> JSON
ENTITIES_KEY = "load:entities:"
#: the companies the app knows (its "database")
GROUPS_KEY = "load:group:"
FACTORY = "load.app:create_app"
COLLECTIONS = ["organizations", "people", "invoices"]

maestrano = Maestrano()


class User(UserMixin):  # type: ignore[misc]
    def __init__(self, uid: str) -> None:
        self.id = uid


def on_rq(group_id: str, mode: str = "split") -> bool:
    """Whether ``group_id`` imports on the RQ worker (else on the web worker's threads)."""
    return mode == "rq" or (mode == "split" and zlib.crc32(group_id.encode()) % 2 == 0)


class SplitExecutor:
    """``MAESTRANO_IMPORT_EXECUTOR``: a group's import goes to RQ or to daemon threads
    (:func:`on_rq`; ``mode`` ``"split"`` by group, or all on ``"rq"`` or on ``"threads"``)."""

    def __init__(self, rq: RQExecutor, threads: DaemonExecutor, mode: str = "split") -> None:
        if mode not in ("split", "rq", "threads"):
            raise ValueError(f"LOAD_EXECUTOR must be split, rq or threads, not {mode!r}")
        self.rq = rq
        self.threads = threads
        self.mode = mode

    def submit(self, fn: Any, app: Any, preset: str, group_id: str, collections: Any) -> Any:
        if on_rq(group_id, self.mode):
            return self.rq.submit(fn, app, preset, group_id, collections)
        future: Future[Any] = self.threads.submit(fn, app, preset, group_id, collections)
        return future


@maestrano.find_or_create_group
def find_or_create_group(group: Group, preset: Preset) -> tuple[str, bool]:
    """The company is its uid; "created" the first time a login names it (its import starts)."""
    try:
        created = bool(_redis().set(GROUPS_KEY + group.uid, "1", nx=True))
    except RedisError:  # the host's own database is down: say so, the login can be retried
        raise ServiceUnavailable("the company store is unavailable, try again", retry_after=2) from None
    return group.uid, created


@maestrano.find_or_create_user
def find_or_create_user(user: MaestranoUser, group: str, preset: Preset) -> tuple[User, bool]:
    return User(user.uid), False


@maestrano.link_membership
def link_membership(user: User, group: str, membership: Any, preset: Preset) -> None:
    return None


@maestrano.on_entities
def record_entities(preset: Preset, group_id: str, collection: str, entities: Any, source: str) -> None:
    delay = float(os.environ.get("LOAD_PAGE_DELAY", "0"))
    if delay:
        time.sleep(delay)  # the host's own work on a page (a database write, say)
    values: dict[Any, Any] = {
        f"{collection}/{entity.id}": json.dumps(entity.data, sort_keys=True) for entity in entities
    }
    if values:
        _redis().hset(ENTITIES_KEY + group_id, mapping=values)


_client: Redis | None = None


def _redis() -> Redis:
    global _client
    if _client is None:
        _client = Redis.from_url(os.environ["LOAD_REDIS"], socket_timeout=5, socket_connect_timeout=5)
    return _client


def create_app(environ: Mapping[str, str] | None = None) -> Flask:
    """The load app, configured from ``LOAD_PRESET`` and ``LOAD_REDIS`` of ``environ``
    (default: the process's environment)."""
    environ = os.environ if environ is None else environ
    app = Flask("load")
    with open(environ["LOAD_PRESET"], encoding="utf-8") as handle:
        preset = json.load(handle)
    redis_url = environ["LOAD_REDIS"]
    queue = Queue(QUEUE, connection=Redis.from_url(redis_url))
    mode = environ.get("LOAD_EXECUTOR", "split")
    executor = SplitExecutor(RQExecutor(queue, FACTORY, retry_interval=[0]), DaemonExecutor(2), mode)
    app.config.update(
        SECRET_KEY="load-secret",
        MAESTRANO_PRESETS={"sandbox": preset},
        MAESTRANO_STORE=redis_url,
        MAESTRANO_IMPORT_EXECUTOR=executor,
        MAESTRANO_IMPORT_COLLECTIONS=COLLECTIONS,
        MAESTRANO_IMPORT_PAGE_SIZE=1,
        MAESTRANO_JOB_LEASE=3,
        # a task the queue lost (its worker killed before the run) can be queued again after
        # this; longer than a task waits in this run's queue (else a login queues a second one)
        MAESTRANO_JOB_QUEUED_TTL=30,
        MAESTRANO_HTTP_RETRIES=0,
    )
    manager = LoginManager(app)
    manager.user_loader(User)
    maestrano.init_app(app)

    @app.get("/")
    @login_required  # type: ignore[untyped-decorator]
    def home() -> str:
        mno = current_session()
        return f"hello {current_user.id} of {mno.group_uid if mno else '-'}"

    @app.get("/status/<group_id>")
    @login_required  # type: ignore[untyped-decorator]
    def status(group_id: str) -> Any:
        try:
            found = maestrano.import_status(group_id)
        except StoreUnavailable:  # Redis paused or restarting: say so, the page can be retried
            raise ServiceUnavailable("import statuses are unavailable, try again", retry_after=2) from None
        return jsonify(state=found.state if found else None, counts=dict(found.counts) if found else {})

    @app.get("/logout")
    def logout() -> Any:
        return maestrano_logout("/")

    return app
