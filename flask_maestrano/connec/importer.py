"""The initial Connec! import engine: a company's data, fetched when it first logs in.

When a login creates the group and ``MAESTRANO_IMPORT_ON_FIRST_LOGIN`` is on, the login code
calls :meth:`ImportService.start_first_import` and the group's subscribed collections
(``MAESTRANO_IMPORT_COLLECTIONS``, else the preset's ``webhooks.connec.subscriptions`` set to
true) are read from Connec! off the request, page by page, and every page is handed to the
host through :func:`flask_maestrano.connec.entities.deliver_to` with ``source="import"`` -- the same
path as notifications, so one ``on_entities`` callback handles both.

Progress and failures are recorded per group as an :class:`ImportStatus`, by default in the
job store of :mod:`flask_maestrano.jobs` (in Redis when ``MAESTRANO_STORE`` is a Redis URL,
so every process sees the same status; ``MAESTRANO_IMPORT_STATUS_STORE`` takes any object
with ``get``/``put``). One import per preset and group runs at a time anywhere the job store
is shared: a run holds the group's lock, renewed by a heartbeat; a run whose process died
loses it within ``MAESTRANO_JOB_LEASE`` seconds and its status then reads ``interrupted``.
A failed or interrupted import keeps what it delivered; running it again (the next login,
``flask maestrano jobs resume``, a task queue's retry) resumes every collection at the page
where it stopped.

>>> status = maestrano.run_import("cld-1")  # doctest: +SKIP
>>> status.state, status.counts  # doctest: +SKIP
('succeeded', {'organizations': 120, 'people': 310})
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Protocol

from .. import jobs
from ..callbacks import Callbacks
from ..http import SessionPool
from ..presets import Preset
from ..settings import Settings, collection_names
from .client import ConnecClient, Page
from .entities import deliver_to, parse_entities

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

    The default is :class:`JobImportStatusStore`, which several processes share when
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
        raw = self.backend.get_status(jobs.job_name(JOB_KIND, preset, group_id))
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
    """``status``, or it as ``interrupted`` when it says running but its lock is gone, or
    queued but neither its queued claim nor its lock is held (the queue lost its task: a job
    worker killed after taking it, before the run started)."""
    if status.state not in (RUNNING, QUEUED):
        return status
    if backend.holder(jobs.job_name(JOB_KIND, status.preset, status.group_id)) is not None:
        return status
    if status.state == QUEUED:
        if backend.holder(_queued_name(status.preset, status.group_id)) is not None:
            return status
        return replace(status, state=INTERRUPTED, error=status.error or "its task was lost before it ran")
    return replace(status, state=INTERRUPTED, error=status.error or "the run stopped (its lease expired)")


class _Interrupted(Exception):
    """The run must stop: the process is exiting or the run lost its lock."""


_QUEUED_OWNER = "queued"


def _queued_name(preset_name: str, group_id: str) -> str:
    return jobs.job_name(JOB_KIND + "-queued", preset_name, group_id)


def _done(status: ImportStatus) -> Future[ImportStatus]:
    future: Future[ImportStatus] = Future()
    future.set_result(status)
    return future


OnPage = Callable[[ImportStatus, Page], None]
Put = Callable[[ImportStatus], None]


_DONE = object()


@dataclass(frozen=True)
class _Run:
    """What one run of an import works with."""

    preset: Preset
    group_id: str
    #: records a status; raises ``_Interrupted`` once the run's lease is lost
    put: Put
    #: raises ``_Interrupted`` when the process is exiting or the run's lease is lost
    check: Callable[[], None]
    on_page: OnPage | None


def _start_url(status: ImportStatus, collection: str) -> str | None:
    if collection in status.cursors:
        return status.cursors[collection]
    return status.cursor if status.current == collection else None


def _failed(status: ImportStatus, exc: Exception, group_id: str, preset: Preset) -> ImportStatus:
    where = f"{status.current}: " if status.current else ""
    log.exception("Maestrano: import of %s (%s) failed at %s", group_id, preset.name, status.current)
    return replace(status, state=FAILED, error=f"{where}{exc}", finished_at=_now(), updated_at=_now())


def _interrupted(status: ImportStatus, exc: Exception, group_id: str, preset: Preset) -> ImportStatus:
    log.warning("Maestrano: import of %s (%s) interrupted: %s", group_id, preset.name, exc)
    return replace(status, state=INTERRUPTED, error=str(exc), updated_at=_now())


def _succeeded(status: ImportStatus, group_id: str, preset: Preset) -> ImportStatus:
    log.info("Maestrano: import of %s (%s) done: %d entities", group_id, preset.name, status.delivered)
    return replace(status, state=SUCCEEDED, finished_at=_now(), updated_at=_now())


def _completed(status: ImportStatus, collection: str) -> ImportStatus:
    """``collection`` read to the end: completed, no cursor left."""
    if collection in status.completed:
        return status
    cursors = {k: v for k, v in status.cursors.items() if k != collection}
    completed = (*status.completed, collection)
    return replace(status, completed=completed, current=None, cursor=None, cursors=cursors)


class ImportService:
    """The imports of one app: its status store, its executor and its Connec! clients.

    Built by ``init_app`` from the settings, the app's session pool and its job backend
    (:mod:`flask_maestrano.jobs`: the per-group locks and, by default, the statuses). ``sender`` is what
    sends :data:`~flask_maestrano.signals.entities_received` (the app) and the first argument
    an executor's job receives; ``context`` makes what a job runs in (the app context), so
    the host's callbacks find their database session.

    >>> service = get_state(app).imports  # doctest: +SKIP
    >>> service.run(preset, "cld-1").state  # doctest: +SKIP
    'succeeded'
    """

    def __init__(
        self,
        settings: Settings,
        sessions: SessionPool,
        callbacks: Callbacks,
        presets: Mapping[str, Preset],
        *,
        sender: Any,
        context: Callable[[], AbstractContextManager[Any]],
        backend: jobs.JobBackend | None = None,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.callbacks = callbacks
        self.presets = presets
        self.sender = sender
        self.context = context
        #: the job locks (and the default status store): shared when it is Redis
        self.backend: jobs.JobBackend = backend if backend is not None else jobs.MemoryJobBackend()
        configured = settings.import_status_store
        self.statuses: ImportStatusStore = (
            configured if configured is not None else JobImportStatusStore(self.backend)
        )
        #: the thread pool the service made (``None`` with ``MAESTRANO_IMPORT_EXECUTOR``)
        self.own_pool: jobs.DaemonExecutor | None = None
        if settings.import_executor is not None:
            self.executor: Any = settings.import_executor
        else:  # daemon threads, started on the first submit: a stopping process is never held
            # by an import (it records itself as interrupted and is resumed later)
            self.own_pool = jobs.DaemonExecutor(
                settings.import_workers, thread_name_prefix="maestrano-import"
            )
            self.executor = self.own_pool
        self._futures: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def client(self, preset: Preset, group_id: str, **options: Any) -> ConnecClient:
        """A :class:`~flask_maestrano.connec.ConnecClient` over the app's pooled session for ``preset``."""
        options.setdefault("timeout", self.sessions.timeout(read=preset.connec.timeout))
        return ConnecClient(preset, self.sessions.api(preset), group_id, **options)

    def collections(self, preset: Preset) -> tuple[str, ...]:
        """What an import reads: ``MAESTRANO_IMPORT_COLLECTIONS``, else the preset's true subscriptions."""
        configured = self.settings.import_collections
        if configured is not None:
            return configured
        return tuple(name for name, wanted in preset.webhooks.subscriptions.items() if wanted)

    # -- running ---------------------------------------------------------------------------

    def status(self, preset_name: str, group_id: str) -> ImportStatus | None:
        """The group's status as every process sees it (a dead run's ``running`` reads ``interrupted``)."""
        status = self.statuses.get(preset_name, group_id)
        return _alive(self.backend, status) if status is not None else None

    def run(
        self,
        preset: Preset,
        group_id: str,
        collections: Any = None,
        *,
        restart: bool = False,
        on_page: OnPage | None = None,
    ) -> ImportStatus:
        """Import ``group_id`` now, in this thread; returns the final :class:`ImportStatus`.

        Failures are recorded, not raised. When the group's last import did not succeed
        (failed, interrupted, queued) over the same collections, this one resumes every
        collection where it stopped (``restart=True`` starts over); ``on_page(status, page)``
        is called after each delivered page. When another run of the group holds its lock (in
        any process sharing the job backend), nothing runs: the other run's status is returned.
        """
        wanted = collection_names(collections) if collections is not None else self.collections(preset)
        store, backend = self.statuses, self.backend
        name = jobs.job_name(JOB_KIND, preset.name, group_id)
        owner = jobs.new_owner()
        if not backend.acquire(name, owner, self.settings.job_lease):
            current = self.status(preset.name, group_id)
            log.info("Maestrano: the import of %s (%s) is already running", group_id, preset.name)
            return current if current is not None else ImportStatus(preset.name, group_id, RUNNING, wanted)
        lease = jobs.Lease(backend, name, owner, self.settings.job_lease).start()
        latest: list[ImportStatus] = []

        def put(new: ImportStatus) -> None:
            if lease.lost.is_set():  # another run may own the group now: never write over it
                raise _Interrupted("the run lost its lock")
            latest[:] = [new]
            store.put(new)

        def mark_interrupted() -> None:  # at process exit, when the run did not get to it
            if latest and not lease.lost.is_set():
                store.put(
                    replace(latest[0], state=INTERRUPTED, error="the process stopped", updated_at=_now())
                )
            lease.stop()

        def check() -> None:
            if jobs.stopping():
                raise _Interrupted("the process stopped")
            if lease.lost.is_set():
                raise _Interrupted("the run lost its lock")

        unregister = jobs.register_running(owner, mark_interrupted)
        status: ImportStatus | None = None
        try:
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
            put(status)
            backend.release(_queued_name(preset.name, group_id), _QUEUED_OWNER)  # after: see start
            pending = [collection for collection in wanted if collection not in status.completed]
            workers = min(len(pending), self.concurrency())
            reader = self._read_concurrently if workers > 1 else self._read_in_turn
            status = reader(_Run(preset, group_id, put, check, on_page), pending, status, workers)
            if not lease.lost.is_set():
                store.put(status)
        except Exception:  # the store is down: the lease expires and the status reads interrupted
            log.exception("Maestrano: could not record the import status of %s (%s)", group_id, preset.name)
            if status is None:
                status = ImportStatus(preset.name, group_id, FAILED, wanted, error="the status store failed")
        finally:
            lease.stop()  # before unregistering: an exiting process waits for that, then may end at once
            unregister()
        return status

    def concurrency(self) -> int:
        """``MAESTRANO_IMPORT_CONCURRENCY``, never more than the connections the pool keeps."""
        settings = self.settings
        return max(1, min(settings.import_concurrency, settings.http_pool_size))

    def _delivered(self, preset: Preset, group_id: str, status: ImportStatus, page: Page) -> ImportStatus:
        """Hand one page to the host; the status after it."""
        collection = page.collection
        for batch_collection, batch_group, entities in parse_entities(
            {collection: page.entities}, group_id=group_id
        ):
            deliver_to(
                self.callbacks, self.sender, preset, batch_group, batch_collection, entities, source="import"
            )
        totals = dict(status.totals)
        if page.total is not None:
            totals[collection] = page.total
        return replace(
            status,
            counts={**status.counts, collection: status.counts.get(collection, 0) + len(page.entities)},
            totals=totals,
            pages=status.pages + 1,
            updated_at=_now(),
        )

    def _read_in_turn(
        self, run: _Run, pending: list[str], status: ImportStatus, _workers: int
    ) -> ImportStatus:
        """One collection after the other (``MAESTRANO_IMPORT_CONCURRENCY = 1``)."""
        preset, group_id, put, on_page = run.preset, run.group_id, run.put, run.on_page
        try:
            connec = self.client(preset, group_id)
            page_size = self.settings.import_page_size
            for collection in pending:
                start_url = _start_url(status, collection)
                status = replace(status, current=collection, cursor=start_url)
                for page in connec.pages(collection, top=page_size, start_url=start_url):
                    status = replace(self._delivered(preset, group_id, status, page), cursor=page.next_url)
                    if page.next_url is None:  # the last page completes the collection in the same write
                        status = _completed(status, collection)
                    put(status)
                    if on_page is not None:
                        on_page(status, page)
                    run.check()
                if collection not in status.completed:  # an empty collection
                    status = _completed(status, collection)
                    put(status)
            return _succeeded(status, group_id, preset)
        except _Interrupted as exc:
            return _interrupted(status, exc, group_id, preset)
        except Exception as exc:
            return _failed(status, exc, group_id, preset)

    def _read_concurrently(
        self, run: _Run, pending: list[str], status: ImportStatus, workers: int
    ) -> ImportStatus:
        """Read ``workers`` collections at once on the preset's pooled session.

        Reader threads only fetch pages; this thread delivers them (the host's callbacks run
        where they always ran) and records each collection's cursor after its page is
        delivered, so a re-run resumes every collection at its first undelivered page. The
        queue holds at most ``workers`` pages: memory stays constant in the number of pages.
        """
        preset, group_id, put, on_page = run.preset, run.group_id, run.put, run.on_page
        connec = self.client(preset, group_id)
        page_size = self.settings.import_page_size
        pages: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=workers)
        stop = threading.Event()

        def hand_over(item: tuple[str, Any]) -> bool:
            while not stop.is_set():
                try:
                    pages.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def read(collection: str, start_url: str | None) -> None:
            try:
                for page in connec.pages(collection, top=page_size, start_url=start_url):
                    if not hand_over((collection, page)):
                        return
                hand_over((collection, _DONE))
            except Exception as exc:
                hand_over((collection, exc))

        def next_item() -> tuple[str, Any]:  # a stopping process or a lost lease is noticed while waiting
            while True:
                try:
                    return pages.get(timeout=0.1)
                except queue.Empty:
                    run.check()

        starts = {collection: _start_url(status, collection) for collection in pending}
        cursors = {name: url for name, url in starts.items() if url is not None}
        status = replace(status, current=None, cursor=None, cursors=cursors)
        remaining = set(pending)
        # daemon threads, like the import's own: they never hold a stopping process
        pool = jobs.DaemonExecutor(workers, thread_name_prefix="maestrano-import-read")
        for collection in pending:
            pool.submit(read, collection, starts[collection])
        try:
            while remaining:
                collection, item = next_item()
                status = replace(status, current=collection, cursor=status.cursors.get(collection))
                if isinstance(item, Exception):
                    raise item
                if item is _DONE:
                    remaining.discard(collection)
                    status = _completed(status, collection)
                    put(status)
                    continue
                page: Page = item
                status = self._delivered(preset, group_id, status, page)
                if page.next_url is None:  # its last page: nothing left to resume
                    status = _completed(status, collection)
                else:
                    cursors = {**status.cursors, collection: page.next_url}
                    status = replace(status, cursor=page.next_url, cursors=cursors)
                put(status)
                if on_page is not None:
                    on_page(status, page)
                run.check()
            return _succeeded(replace(status, current=None, cursor=None), group_id, preset)
        except _Interrupted as exc:
            return _interrupted(status, exc, group_id, preset)
        except Exception as exc:
            return _failed(status, exc, group_id, preset)
        finally:
            stop.set()  # readers blocked on a full queue give up
            pool.shutdown(wait=not jobs.stopping())

    def _job(
        self, _sender: Any, preset_name: str, group_id: str, collections: tuple[str, ...] | None
    ) -> ImportStatus:
        """What the executor runs: :meth:`run` inside the app's context."""
        with self.context():
            return self.run(self.presets[preset_name], group_id, collections)

    def start(self, preset: Preset, group_id: str, collections: Any = None) -> Any:
        """Queue the import of ``group_id`` on the executor; returns what ``submit`` returned
        (a :class:`concurrent.futures.Future` with the default executor).

        The executor is called as ``submit(job, app, preset_name, group_id, collections)``.
        One import per preset and group: while one is queued or running (in any process
        sharing the job backend), nothing is queued and a done future holding its current
        status is returned (within this process, the running future itself).
        """
        wanted = collection_names(collections) if collections is not None else None
        key = (preset.name, group_id)
        backend = self.backend
        with self._lock:
            running = self._futures.get(key)
            if isinstance(running, Future) and not running.done():
                return running
            # the queued claim first, then the lock: a run takes its lock, records itself
            # running, then drops the claim, so a free claim and a free lock mean no run is pending
            claim = _queued_name(preset.name, group_id)
            claimed = backend.acquire(claim, _QUEUED_OWNER, self.settings.job_queued_ttl)
            previous = self.status(preset.name, group_id)
            if backend.holder(jobs.job_name(JOB_KIND, preset.name, group_id)) is not None:
                if claimed:
                    backend.release(claim, _QUEUED_OWNER)
                if previous is not None:
                    return _done(previous)  # running, in this process or another
            if not claimed:  # queued by another start (any process) that has not run yet
                if previous is None or previous.state != QUEUED:  # its status is being written
                    names = wanted if wanted is not None else self.collections(preset)
                    previous = ImportStatus(preset.name, group_id, QUEUED, names, updated_at=_now())
                return _done(previous)
            store = self.statuses
            # a queued status with its claim now ours is a lost task's: resume at its cursors too
            if previous is not None and previous.state in (FAILED, INTERRUPTED, QUEUED):
                queued = replace(previous, state=QUEUED, updated_at=_now())
            else:
                names = wanted if wanted is not None else self.collections(preset)
                queued = ImportStatus(preset.name, group_id, QUEUED, names, updated_at=_now())
            store.put(queued)
            try:
                future = self.executor.submit(self._job, self.sender, preset.name, group_id, wanted)
            except Exception as exc:  # e.g. a task queue's broker is down: say so in the status
                backend.release(claim, _QUEUED_OWNER)
                store.put(
                    replace(
                        queued, state=FAILED, error=f"could not queue the import: {exc}", updated_at=_now()
                    )
                )
                raise
            self._futures[key] = future
        return future

    def resume(self) -> list[ImportStatus]:
        """Run, here and now, every import of the job store that did not succeed and is not
        running or queued: the ``flask maestrano jobs resume`` sweep. Returns their final
        statuses (none with a host's own ``MAESTRANO_IMPORT_STATUS_STORE``, which cannot be listed)."""
        store = self.statuses
        if not isinstance(store, JobImportStatusStore):
            return []
        results = []
        for status in store.all():
            if status.state in (RUNNING, SUCCEEDED):
                continue
            if status.state == QUEUED and self.backend.holder(_queued_name(status.preset, status.group_id)):
                continue  # its task is still in the queue
            preset = self.presets.get(status.preset)
            if preset is None:  # a preset this app no longer has
                continue
            results.append(self.run(preset, status.group_id, status.collections))
        return results

    def start_first_import(self, preset: Preset, group_id: str) -> Any:
        """Called by the login that created ``group_id``: queue its import when
        ``MAESTRANO_IMPORT_ON_FIRST_LOGIN`` is on and the preset shares Connec! data.

        Never raises: a failure to start is logged, and the login goes on. Returns the
        future, or ``None`` when no import was started.
        """
        return self._start_on_login(preset, group_id, catch_up=False)

    def catch_up(self, preset: Preset, group_id: str) -> Any:
        """Called by a later login of ``group_id``: resume its import when the last one failed
        or was interrupted (same conditions as :meth:`start_first_import`; never raises).
        Returns the future, or ``None`` when nothing was started."""
        return self._start_on_login(preset, group_id, catch_up=True)

    def _start_on_login(self, preset: Preset, group_id: str, *, catch_up: bool) -> Any:
        if not self.settings.import_on_first_login or not group_id:
            return None
        try:
            if not preset.connec.enabled or not self.collections(preset):
                return None
            if catch_up:
                previous = self.status(preset.name, group_id)
                if previous is None or previous.state not in (FAILED, INTERRUPTED):
                    return None
            return self.start(preset, group_id)
        except Exception:  # a failing import must never fail a login
            log.exception("Maestrano: could not start the import of group %s", group_id)
            return None
