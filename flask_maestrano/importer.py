"""The initial Connec! import: a company's data, fetched when it first logs in.

When :data:`~flask_maestrano.signals.login_succeeded` reports ``group_created=True`` and
``MAESTRANO_IMPORT_ON_FIRST_LOGIN`` is on, the group's subscribed collections
(``MAESTRANO_IMPORT_COLLECTIONS``, else the preset's ``webhooks.connec.subscriptions`` set to
true) are read from Connec! off the request, page by page, and every page is handed to the
host through :func:`flask_maestrano.entities.deliver` with ``source="import"`` -- the same
path as notifications, so one ``on_entities`` callback handles both.

Progress and failures are recorded per group as an :class:`ImportStatus`, by default in the
job store of :mod:`flask_maestrano.jobs` (in Redis when ``MAESTRANO_STORE`` is a Redis URL,
so every process sees the same status; ``MAESTRANO_IMPORT_STATUS_STORE`` takes any object
with ``get``/``put``). One import per preset and group runs at a time anywhere the job store
is shared: a run holds the group's lock, renewed by a heartbeat; a run whose process died
loses it within ``MAESTRANO_JOB_LEASE`` seconds and its status then reads ``interrupted``.
An import reads up to ``MAESTRANO_IMPORT_CONCURRENCY`` collections at the same time and
records a cursor per collection. A failed or interrupted import keeps what it delivered;
running it again (the next login, ``flask maestrano jobs resume``, a task queue's retry)
resumes every collection at its first page not delivered.

>>> status = maestrano.run_import("cld-1")  # doctest: +SKIP
>>> status.state, status.counts
('succeeded', {'organizations': 120, 'people': 310})
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Protocol

from flask import Flask

from . import jobs, signals
from .connec import ConnecClient, Page
from .entities import deliver, parse_entities
from .extension import MaestranoState, get_state
from .http import app_timeout, preset_session
from .presets import Preset
from .settings import collection_names
from .store import RedisStore

log = logging.getLogger("flask_maestrano.importer")

QUEUED, RUNNING, SUCCEEDED, FAILED = "queued", "running", "succeeded", "failed"
#: a run that stopped part-way: its process exited or died, or it lost its lock; resumable
INTERRUPTED = "interrupted"
#: the job kind of imports in :mod:`flask_maestrano.jobs`
JOB_KIND = "import"


def _now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class ImportStatus:
    """Where the import of one group stands. Immutable: each step records a new one."""

    preset: str
    group_id: str
    #: ``"queued"``, ``"running"``, ``"succeeded"``, ``"failed"`` or ``"interrupted"``
    state: str
    #: the collections this import reads, in order
    collections: tuple[str, ...]
    #: collections read to the end
    completed: tuple[str, ...] = ()
    #: entities delivered so far, per collection
    counts: Mapping[str, int] = field(default_factory=dict, hash=False)
    #: ``pagination.total`` per collection, as Connec! announced it
    totals: Mapping[str, int] = field(default_factory=dict, hash=False)
    #: pages delivered so far (all collections)
    pages: int = 0
    #: the collection being read (or that failed)
    current: str | None = None
    #: the next page of ``current`` to read: where a re-run resumes
    cursor: str | None = None
    #: with collections read concurrently, the next page of every collection started and not
    #: completed: where a re-run resumes each of them
    cursors: Mapping[str, str] = field(default_factory=dict, hash=False)
    #: what went wrong, when ``state`` is ``"failed"`` or ``"interrupted"``
    error: str | None = None
    #: how many times the import was run
    attempts: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def delivered(self) -> int:
        """Entities delivered so far, all collections."""
        return sum(self.counts.values())

    @property
    def done(self) -> bool:
        """Whether the import has finished (succeeded or failed)."""
        return self.state in (SUCCEEDED, FAILED)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (datetimes as ISO-8601), for a status page or a shared store."""

        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value is not None else None

        return {
            "preset": self.preset,
            "group_id": self.group_id,
            "state": self.state,
            "collections": list(self.collections),
            "completed": list(self.completed),
            "counts": dict(self.counts),
            "totals": dict(self.totals),
            "pages": self.pages,
            "current": self.current,
            "cursor": self.cursor,
            "cursors": dict(self.cursors),
            "error": self.error,
            "attempts": self.attempts,
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "updated_at": iso(self.updated_at),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ImportStatus:
        """The inverse of :meth:`to_dict`."""

        def when(value: Any) -> datetime | None:
            return datetime.fromisoformat(value) if value else None

        return cls(
            preset=data["preset"],
            group_id=data["group_id"],
            state=data["state"],
            collections=tuple(data.get("collections", ())),
            completed=tuple(data.get("completed", ())),
            counts=dict(data.get("counts", {})),
            totals=dict(data.get("totals", {})),
            pages=int(data.get("pages", 0)),
            current=data.get("current"),
            cursor=data.get("cursor"),
            cursors=dict(data.get("cursors", {})),
            error=data.get("error"),
            attempts=int(data.get("attempts", 0)),
            started_at=when(data.get("started_at")),
            finished_at=when(data.get("finished_at")),
            updated_at=when(data.get("updated_at")),
        )


class ImportStatusStore(Protocol):
    """Where import statuses live: ``get`` the latest of a group, ``put`` a new one."""

    def get(self, preset: str, group_id: str) -> ImportStatus | None: ...

    def put(self, status: ImportStatus) -> None: ...


class MemoryImportStatusStore:
    """Statuses in a dict of this process (the default). Thread-safe.

    The default is now :class:`JobImportStatusStore`, which several processes share when
    ``MAESTRANO_STORE`` is Redis.
    """

    def __init__(self) -> None:
        self._items: dict[tuple[str, str], ImportStatus] = {}
        self._lock = threading.Lock()

    def get(self, preset: str, group_id: str) -> ImportStatus | None:
        with self._lock:
            return self._items.get((preset, group_id))

    def put(self, status: ImportStatus) -> None:
        with self._lock:
            self._items[(status.preset, status.group_id)] = status


class JobImportStatusStore:
    """Statuses as JSON in a :class:`~flask_maestrano.jobs.JobBackend` (the default store).

    ``get`` reads a ``running`` status whose lock nobody holds any more (its process died or
    stopped) as ``interrupted``, so every process reports the same, true state.
    """

    def __init__(self, backend: jobs.JobBackend) -> None:
        self.backend = backend

    def get(self, preset: str, group_id: str) -> ImportStatus | None:
        name = jobs.job_name(JOB_KIND, preset, group_id)
        raw = self.backend.get_status(name)
        if raw is None:
            return None
        return _alive(self.backend, ImportStatus.from_dict(json.loads(raw)))

    def put(self, status: ImportStatus) -> None:
        name = jobs.job_name(JOB_KIND, status.preset, status.group_id)
        self.backend.put_status(name, json.dumps(status.to_dict()))

    def all(self) -> list[ImportStatus]:
        """Every stored status (for ``flask maestrano jobs``)."""
        found = []
        for name in self.backend.names(JOB_KIND):
            _kind, preset, group_id = name.split(":", 2)
            status = self.get(preset, group_id)
            if status is not None:
                found.append(status)
        return found


def _alive(backend: jobs.JobBackend, status: ImportStatus) -> ImportStatus:
    """``status``, or it as ``interrupted`` when it says running but its lock is gone."""
    if status.state != RUNNING:
        return status
    if backend.holder(jobs.job_name(JOB_KIND, status.preset, status.group_id)) is not None:
        return status
    return replace(status, state=INTERRUPTED, error=status.error or "the run stopped (its lease expired)")


# -- per-app plumbing ------------------------------------------------------------------------


def job_backend(app: Flask) -> jobs.JobBackend:
    """The app's job locks and statuses: on the Redis server of ``MAESTRANO_STORE`` when it is
    one, else in this process."""
    state = get_state(app)
    backend: jobs.JobBackend | None = state.cache.get("job_backend")
    if backend is None:
        if isinstance(state.store, RedisStore):
            backend = jobs.RedisJobBackend(state.store.client, prefix=state.store.prefix + "jobs:")
        else:
            backend = jobs.MemoryJobBackend()
        backend = state.cache.setdefault("job_backend", backend)
    return backend


def status_store(app: Flask) -> ImportStatusStore:
    """The app's :class:`ImportStatusStore`: ``MAESTRANO_IMPORT_STATUS_STORE``, else a
    :class:`JobImportStatusStore` on :func:`job_backend`."""
    state = get_state(app)
    configured = state.settings.import_status_store
    if configured is not None:
        return configured  # type: ignore[no-any-return]
    store: ImportStatusStore = state.cache.get("import_status_store") or state.cache.setdefault(
        "import_status_store", JobImportStatusStore(job_backend(app))
    )
    return store


def read_status(app: Flask, preset_name: str, group_id: str) -> ImportStatus | None:
    """The group's status as every process sees it (a dead run's ``running`` reads ``interrupted``)."""
    status = status_store(app).get(preset_name, group_id)
    return _alive(job_backend(app), status) if status is not None else None


def executor(app: Flask) -> Any:
    """The app's import executor: ``MAESTRANO_IMPORT_EXECUTOR``, else a thread pool built on first use."""
    state = get_state(app)
    configured = state.settings.import_executor
    if configured is not None:
        return configured
    cache = state.cache
    pool = cache.get("import_executor")
    if pool is None:
        lock: threading.Lock = cache.setdefault("import_executor_lock", threading.Lock())
        with lock:
            pool = cache.get("import_executor")
            if pool is None:
                # daemon threads: a stopping process is never held by an import (it records
                # itself as interrupted and is resumed later)
                pool = jobs.DaemonExecutor(
                    state.settings.import_workers, thread_name_prefix="maestrano-import"
                )
                cache["import_executor"] = pool
    return pool


def connec_client(app: Flask, preset: Preset, group_id: str, **options: Any) -> ConnecClient:
    """A :class:`~flask_maestrano.connec.ConnecClient` over the app's pooled session for ``preset``."""
    options.setdefault("timeout", app_timeout(app, read=preset.connec.timeout))
    return ConnecClient(preset, preset_session(app, preset), group_id, **options)


def import_collections(app: Flask, preset: Preset) -> tuple[str, ...]:
    """What an import reads: ``MAESTRANO_IMPORT_COLLECTIONS``, else the preset's subscriptions set to true."""
    configured = get_state(app).settings.import_collections
    if configured is not None:
        return configured
    return tuple(name for name, wanted in preset.webhooks.subscriptions.items() if wanted)


# -- running ---------------------------------------------------------------------------------

OnPage = Callable[[ImportStatus, Page], None]


class _Interrupted(Exception):
    """The run must stop: the process is exiting or the run lost its lock."""


def run_import(
    app: Flask,
    preset: Preset,
    group_id: str,
    collections: Any = None,
    *,
    restart: bool = False,
    on_page: OnPage | None = None,
) -> ImportStatus:
    """Import ``group_id`` now, in this thread; returns the final :class:`ImportStatus`.

    Failures are recorded, not raised. When the group's last import did not succeed (failed,
    interrupted, queued) over the same collections, this one resumes where it stopped
    (``restart=True`` starts over); ``on_page(status, page)`` is called after each delivered
    page. When another run of the group holds its lock (in any process sharing the job store),
    nothing runs: the other run's status is returned.
    """
    wanted = collection_names(collections) if collections is not None else import_collections(app, preset)
    settings = get_state(app).settings
    store = status_store(app)
    backend = job_backend(app)
    name = jobs.job_name(JOB_KIND, preset.name, group_id)
    owner = jobs.new_owner()
    if not backend.acquire(name, owner, settings.job_lease):
        current = read_status(app, preset.name, group_id)
        log.info("Maestrano: the import of %s (%s) is already running", group_id, preset.name)
        return current if current is not None else ImportStatus(preset.name, group_id, RUNNING, wanted)
    lease = jobs.Lease(backend, name, owner, settings.job_lease).start()
    previous = store.get(preset.name, group_id)
    now = _now()
    if (
        previous is not None
        and previous.state != SUCCEEDED
        and previous.collections == wanted
        and not restart
    ):
        status = replace(
            previous,
            state=RUNNING,
            error=None,
            attempts=previous.attempts + 1,
            started_at=previous.started_at or now,
            finished_at=None,
            updated_at=now,
        )
    else:
        status = ImportStatus(
            preset.name, group_id, RUNNING, wanted, attempts=1, started_at=now, updated_at=now
        )
    latest = [status]

    def put(new: ImportStatus) -> None:
        if lease.lost.is_set():  # another run may own the group now: never write over it
            raise _Interrupted("the run lost its lock")
        latest[0] = new
        store.put(new)

    def check() -> None:
        if lease.lost.is_set():
            raise _Interrupted("the run lost its lock")
        if jobs.stopping():
            raise _Interrupted("the process stopped")

    def mark_interrupted() -> None:  # at process exit, when this thread did not get to it
        if not lease.lost.is_set():
            store.put(replace(latest[0], state=INTERRUPTED, error="the process stopped", updated_at=_now()))
        lease.stop()

    unregister = jobs.register_running(owner, mark_interrupted)
    try:
        put(status)
        backend.release(_queued_name(preset.name, group_id), _QUEUED_OWNER)  # after: see start_import
        pending = [name for name in wanted if name not in status.completed]
        workers = min(len(pending), _concurrency(app))
        reader = _read_concurrently if workers > 1 else _read_in_turn
        status = reader(_Run(app, preset, group_id, put, check, on_page), pending, status, workers)
    except Exception as exc:  # the first write, or the queued claim's release
        status = _stopped(status, exc, group_id, preset)
    try:
        if not lease.lost.is_set():
            store.put(status)
    except Exception:  # the store is down: the lease expires and the status reads interrupted
        log.exception("Maestrano: could not record the import status of %s (%s)", group_id, preset.name)
    finally:
        lease.stop()  # before unregistering: an exiting process waits for that, then may end at once
        unregister()
    return status


def _concurrency(app: Flask) -> int:
    """``MAESTRANO_IMPORT_CONCURRENCY``, never more than the connections the pool keeps."""
    settings = get_state(app).settings
    return max(1, min(settings.import_concurrency, settings.http_pool_size))


def _start_url(status: ImportStatus, collection: str) -> str | None:
    if collection in status.cursors:
        return status.cursors[collection]
    return status.cursor if status.current == collection else None


def _delivered(app: Flask, preset: Preset, group_id: str, status: ImportStatus, page: Page) -> ImportStatus:
    """Hand one page to the host; the status after it: counted, and the collection's cursor moved
    to its next page (its last page completes it, in the same write)."""
    collection = page.collection
    for batch_collection, batch_group, entities in parse_entities(
        {collection: page.entities}, group_id=group_id
    ):
        deliver(app, preset, batch_group, batch_collection, entities, source="import")
    totals = dict(status.totals)
    if page.total is not None:
        totals[collection] = page.total
    status = replace(
        status,
        counts={**status.counts, collection: status.counts.get(collection, 0) + len(page.entities)},
        totals=totals,
        pages=status.pages + 1,
        updated_at=_now(),
    )
    if page.next_url is None:  # its last page: nothing left to resume
        return _completed(status, collection)
    cursors = {**status.cursors, collection: page.next_url}
    return replace(status, current=collection, cursor=page.next_url, cursors=cursors)


def _stopped(status: ImportStatus, exc: Exception, group_id: str, preset: Preset) -> ImportStatus:
    """The status of a run that ``exc`` ended: interrupted (resumable, not finished) or failed."""
    if isinstance(exc, _Interrupted):
        log.warning("Maestrano: import of %s (%s) interrupted: %s", group_id, preset.name, exc)
        return replace(status, state=INTERRUPTED, error=str(exc), updated_at=_now())
    where = f"{status.current}: " if status.current else ""
    log.exception("Maestrano: import of %s (%s) failed at %s", group_id, preset.name, status.current)
    return replace(status, state=FAILED, error=f"{where}{exc}", finished_at=_now(), updated_at=_now())


def _succeeded(status: ImportStatus, group_id: str, preset: Preset) -> ImportStatus:
    log.info("Maestrano: import of %s (%s) done: %d entities", group_id, preset.name, status.delivered)
    status = replace(status, current=None, cursor=None)
    return replace(status, state=SUCCEEDED, finished_at=_now(), updated_at=_now())


def _completed(status: ImportStatus, collection: str) -> ImportStatus:
    """``collection`` read to the end: completed, no cursor left."""
    if collection in status.completed:
        return status
    cursors = {k: v for k, v in status.cursors.items() if k != collection}
    completed = (*status.completed, collection)
    return replace(status, completed=completed, current=None, cursor=None, cursors=cursors)


@dataclass(frozen=True)
class _Run:
    """What one run of an import works with."""

    app: Flask
    preset: Preset
    group_id: str
    #: records a status, through the run's lease: raises :class:`_Interrupted` once it is lost
    put: Callable[[ImportStatus], None]
    #: raises :class:`_Interrupted` when the run must stop (lease lost, process exiting)
    check: Callable[[], None]
    on_page: OnPage | None


def _read_in_turn(run: _Run, pending: list[str], status: ImportStatus, _workers: int) -> ImportStatus:
    """One collection after the other (``MAESTRANO_IMPORT_CONCURRENCY = 1``)."""
    app, preset, group_id, on_page = run.app, run.preset, run.group_id, run.on_page
    try:
        connec = connec_client(app, preset, group_id)
        page_size = get_state(app).settings.import_page_size
        for collection in pending:
            start_url = _start_url(status, collection)
            status = replace(status, current=collection, cursor=start_url)
            for page in connec.pages(collection, top=page_size, start_url=start_url):
                status = _delivered(app, preset, group_id, status, page)
                run.put(status)
                if on_page is not None:
                    on_page(status, page)
                run.check()
            if collection not in status.completed:
                status = _completed(status, collection)
                run.put(status)
        return _succeeded(status, group_id, preset)
    except Exception as exc:
        return _stopped(status, exc, group_id, preset)


_DONE = object()
#: seconds the import's thread waits for a page before it checks whether it must stop
_POLL = 0.1


def _read_concurrently(run: _Run, pending: list[str], status: ImportStatus, workers: int) -> ImportStatus:
    """Read ``workers`` collections at once on the preset's pooled session.

    Reader threads only fetch pages; this thread delivers them (the host's callbacks run where
    they always ran) and records each collection's cursor after its page is delivered, so a
    re-run resumes every collection at its first undelivered page. The queue holds at most
    ``workers`` pages: memory stays constant in the number of pages. The readers are daemon
    threads: a stopping process is never held by one waiting on Connec!.
    """
    app, preset, group_id, on_page = run.app, run.preset, run.group_id, run.on_page
    pages: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=workers)
    stop = threading.Event()
    readers: list[threading.Thread] = []

    def hand_over(item: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                pages.put(item, timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False

    def read(connec: ConnecClient, collection: str, start_url: str | None, page_size: int) -> None:
        try:
            for page in connec.pages(collection, top=page_size, start_url=start_url):
                if not hand_over((collection, page)):
                    return
            hand_over((collection, _DONE))
        except Exception as exc:
            hand_over((collection, exc))

    def next_item() -> tuple[str, Any]:
        while True:
            try:
                return pages.get(timeout=_POLL)
            except queue.Empty:
                run.check()

    starts = {collection: _start_url(status, collection) for collection in pending}
    cursors = {name: url for name, url in starts.items() if url is not None}
    status = replace(status, current=None, cursor=None, cursors=cursors)
    remaining = set(pending)
    try:
        connec = connec_client(app, preset, group_id)
        page_size = get_state(app).settings.import_page_size
        for collection in pending:
            reader = threading.Thread(
                target=read,
                args=(connec, collection, starts[collection], page_size),
                name=f"maestrano-import-read-{collection}",
                daemon=True,
            )
            readers.append(reader)
            reader.start()
        while remaining:
            collection, item = next_item()
            status = replace(status, current=collection, cursor=status.cursors.get(collection))
            if isinstance(item, Exception):
                raise item
            if item is _DONE:
                remaining.discard(collection)
                if collection not in status.completed:
                    status = _completed(status, collection)
                    run.put(status)
                continue
            page: Page = item
            status = _delivered(app, preset, group_id, status, page)
            run.put(status)
            if on_page is not None:
                on_page(status, page)
            run.check()
        return _succeeded(status, group_id, preset)
    except Exception as exc:
        return _stopped(status, exc, group_id, preset)
    finally:
        stop.set()  # readers blocked on a full queue give up
        if not jobs.stopping():  # else the process exits without them
            for reader in readers:
                reader.join()


_QUEUED_OWNER = "queued"


def _queued_name(preset_name: str, group_id: str) -> str:
    return jobs.job_name(JOB_KIND + "-queued", preset_name, group_id)


def _job(app: Flask, preset_name: str, group_id: str, collections: tuple[str, ...] | None) -> ImportStatus:
    """What the executor runs: :func:`run_import` inside an app context."""
    with app.app_context():
        return run_import(app, get_state(app).preset(preset_name), group_id, collections)


def _done(status: ImportStatus) -> Future[ImportStatus]:
    future: Future[ImportStatus] = Future()
    future.set_result(status)
    return future


def start_import(app: Flask, preset: Preset, group_id: str, collections: Any = None) -> Any:
    """Queue the import of ``group_id`` on the app's executor; returns what ``submit`` returned
    (a :class:`concurrent.futures.Future` with the default executor).

    One import per preset and group: while one is queued or running (in any process sharing
    the job store), nothing is queued and a done future holding its current status is
    returned (within this process, the running future itself).
    """
    wanted = collection_names(collections) if collections is not None else None
    state = get_state(app)
    cache = state.cache
    futures: dict[tuple[str, str], Any] = cache.setdefault("import_futures", {})
    lock: threading.Lock = cache.setdefault("import_lock", threading.Lock())
    key = (preset.name, group_id)
    with lock:
        running = futures.get(key)
        if isinstance(running, Future) and not running.done():
            return running
        backend = job_backend(app)
        # the queued claim first, then the lock: a run takes its lock, records itself running,
        # then drops the claim, so a free claim and a free lock mean no run is pending
        claim = _queued_name(preset.name, group_id)
        claimed = backend.acquire(claim, _QUEUED_OWNER, state.settings.job_queued_ttl)
        previous = read_status(app, preset.name, group_id)
        if backend.holder(jobs.job_name(JOB_KIND, preset.name, group_id)) is not None:
            if claimed:
                backend.release(claim, _QUEUED_OWNER)
            if previous is not None:
                return _done(previous)  # running, in this process or another
        if not claimed:  # queued by another start (any process) that has not run yet
            if previous is None or previous.state != QUEUED:  # its status is being written
                names = wanted if wanted is not None else import_collections(app, preset)
                previous = ImportStatus(preset.name, group_id, QUEUED, names, updated_at=_now())
            return _done(previous)
        store = status_store(app)
        if previous is not None and previous.state in (FAILED, INTERRUPTED):
            queued = replace(previous, state=QUEUED, updated_at=_now())
        else:
            names = wanted if wanted is not None else import_collections(app, preset)
            queued = ImportStatus(preset.name, group_id, QUEUED, names, updated_at=_now())
        store.put(queued)
        try:
            future = executor(app).submit(_job, app, preset.name, group_id, wanted)
        except Exception as exc:  # e.g. a task queue's broker is down: say so in the status
            backend.release(claim, _QUEUED_OWNER)
            store.put(
                replace(queued, state=FAILED, error=f"could not queue the import: {exc}", updated_at=_now())
            )
            raise
        futures[key] = future
    return future


def resume_imports(app: Flask) -> list[ImportStatus]:
    """Run, here and now, every import of the job store that did not succeed and is not
    running or queued: the ``flask maestrano jobs resume`` sweep. Returns their final statuses."""
    store = status_store(app)
    if not isinstance(store, JobImportStatusStore):
        return []  # a host's own status store cannot be listed
    backend = job_backend(app)
    results = []
    for status in store.all():
        if status.state in (RUNNING, SUCCEEDED):
            continue
        if status.state == QUEUED and backend.holder(_queued_name(status.preset, status.group_id)):
            continue  # its task is still in the queue
        preset = get_state(app).preset(status.preset)
        results.append(run_import(app, preset, status.group_id, status.collections))
    return results


# -- first login ------------------------------------------------------------------------------


def setup(app: Flask, state: MaestranoState) -> Callable[[], None]:
    """Start the import of a group on its first login (``MAESTRANO_IMPORT_ON_FIRST_LOGIN``),
    and resume it on a later login when it failed or was interrupted.

    Returns what disconnects it (``init_app`` undoes its work when it fails).
    """

    def on_login(sender: Flask, **kwargs: Any) -> None:
        if not state.settings.import_on_first_login:
            return
        identity = kwargs.get("identity")
        group = getattr(identity, "group", None)
        group_id = getattr(group, "uid", None)
        if not group_id:
            return
        try:
            preset = get_state(sender).preset(kwargs.get("preset"))
            if not preset.connec.enabled:
                return
            created = bool(kwargs.get("group_created"))
            if created:
                from .syncing import first_login

                if first_login(sender, preset, group_id):  # mappings declared: the first sync
                    return
            if not import_collections(sender, preset):
                return
            if not created:
                # catch-up: a later login resumes an import that failed or was interrupted
                previous = read_status(sender, preset.name, group_id)
                if previous is None or previous.state not in (FAILED, INTERRUPTED):
                    return
            start_import(sender, preset, group_id)
        except Exception:  # a failing import must never fail a login
            log.exception("Maestrano: could not start the import of group %s", group_id)

    signals.login_succeeded.connect(on_login, sender=app, weak=False)
    return lambda: signals.login_succeeded.disconnect(on_login, sender=app)
