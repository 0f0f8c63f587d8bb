"""The initial Connec! import: a company's data, fetched when it first logs in.

When :data:`~flask_maestrano.signals.login_succeeded` reports ``group_created=True`` and
``MAESTRANO_IMPORT_ON_FIRST_LOGIN`` is on, the group's subscribed collections
(``MAESTRANO_IMPORT_COLLECTIONS``, else the preset's ``webhooks.connec.subscriptions`` set to
true) are read from Connec! off the request, page by page, and every page is handed to the
host through :func:`flask_maestrano.entities.deliver` with ``source="import"`` -- the same
path as notifications, so one ``on_entities`` callback handles both.

Progress and failures are recorded per group as an :class:`ImportStatus` (in-process by
default; ``MAESTRANO_IMPORT_STATUS_STORE`` takes any object with ``get``/``put``). A failed
import keeps what it delivered; running it again resumes at the page that failed.

>>> status = maestrano.run_import("cld-1")  # doctest: +SKIP
>>> status.state, status.counts
('succeeded', {'organizations': 120, 'people': 310})
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Protocol

from flask import Flask

from . import signals
from .connec import ConnecClient, Page
from .entities import deliver, parse_entities
from .extension import MaestranoState, get_state
from .http import app_timeout, preset_session
from .presets import Preset
from .settings import collection_names

log = logging.getLogger("flask_maestrano.importer")

QUEUED, RUNNING, SUCCEEDED, FAILED = "queued", "running", "succeeded", "failed"


def _now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class ImportStatus:
    """Where the import of one group stands. Immutable: each step records a new one."""

    preset: str
    group_id: str
    #: ``"queued"``, ``"running"``, ``"succeeded"`` or ``"failed"``
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
    #: what went wrong, when ``state`` is ``"failed"``
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

    For several processes, give ``MAESTRANO_IMPORT_STATUS_STORE`` an object with the same two
    methods, e.g. one that keeps ``status.to_dict()`` as JSON in Redis or a table.
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


# -- per-app plumbing ------------------------------------------------------------------------


def status_store(app: Flask) -> ImportStatusStore:
    """The app's :class:`ImportStatusStore` (``MAESTRANO_IMPORT_STATUS_STORE`` or in-process)."""
    state = get_state(app)
    configured = state.settings.import_status_store
    if configured is not None:
        return configured  # type: ignore[no-any-return]
    store: ImportStatusStore = state.cache.setdefault("import_status_store", MemoryImportStatusStore())
    return store


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
                pool = ThreadPoolExecutor(
                    max_workers=state.settings.import_workers,
                    thread_name_prefix="maestrano-import",
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

    Failures are recorded, not raised. When the group's last import failed over the same
    collections, this one resumes where it stopped (``restart=True`` starts over);
    ``on_page(status, page)`` is called after each delivered page.
    """
    wanted = collection_names(collections) if collections is not None else import_collections(app, preset)
    store = status_store(app)
    previous = store.get(preset.name, group_id)
    now = _now()
    if previous is not None and previous.state == FAILED and previous.collections == wanted and not restart:
        status = replace(
            previous,
            state=RUNNING,
            error=None,
            attempts=previous.attempts + 1,
            finished_at=None,
            updated_at=now,
        )
    else:
        status = ImportStatus(
            preset.name, group_id, RUNNING, wanted, attempts=1, started_at=now, updated_at=now
        )
    store.put(status)
    pending = [name for name in wanted if name not in status.completed]
    workers = min(len(pending), _concurrency(app))
    reader = _read_concurrently if workers > 1 else _read_in_turn
    status = reader(_Run(app, preset, group_id, store, on_page), pending, status, workers)
    store.put(status)
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
    """Hand one page to the host; the status after it."""
    collection = page.collection
    for batch_collection, batch_group, entities in parse_entities(
        {collection: page.entities}, group_id=group_id
    ):
        deliver(app, preset, batch_group, batch_collection, entities, source="import")
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


def _failed(status: ImportStatus, exc: Exception, group_id: str, preset: Preset) -> ImportStatus:
    where = f"{status.current}: " if status.current else ""
    log.exception("Maestrano: import of %s (%s) failed at %s", group_id, preset.name, status.current)
    return replace(status, state=FAILED, error=f"{where}{exc}", finished_at=_now(), updated_at=_now())


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


@dataclass(frozen=True)
class _Run:
    """What one run of an import works with."""

    app: Flask
    preset: Preset
    group_id: str
    store: ImportStatusStore
    on_page: OnPage | None


def _read_in_turn(run: _Run, pending: list[str], status: ImportStatus, _workers: int) -> ImportStatus:
    """One collection after the other (``MAESTRANO_IMPORT_CONCURRENCY = 1``)."""
    app, preset, group_id, store, on_page = run.app, run.preset, run.group_id, run.store, run.on_page
    try:
        connec = connec_client(app, preset, group_id)
        page_size = get_state(app).settings.import_page_size
        for collection in pending:
            start_url = _start_url(status, collection)
            status = replace(status, current=collection, cursor=start_url)
            for page in connec.pages(collection, top=page_size, start_url=start_url):
                status = replace(_delivered(app, preset, group_id, status, page), cursor=page.next_url)
                store.put(status)
                if on_page is not None:
                    on_page(status, page)
            status = _completed(status, collection)
            store.put(status)
        return _succeeded(status, group_id, preset)
    except Exception as exc:
        return _failed(status, exc, group_id, preset)


_DONE = object()


def _read_concurrently(run: _Run, pending: list[str], status: ImportStatus, workers: int) -> ImportStatus:
    """Read ``workers`` collections at once on the preset's pooled session.

    Reader threads only fetch pages; this thread delivers them (the host's callbacks run where
    they always ran) and records each collection's cursor after its page is delivered, so a
    re-run resumes every collection at its first undelivered page. The queue holds at most
    ``workers`` pages: memory stays constant in the number of pages.
    """
    app, preset, group_id, store, on_page = run.app, run.preset, run.group_id, run.store, run.on_page
    connec = connec_client(app, preset, group_id)
    page_size = get_state(app).settings.import_page_size
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

    starts = {collection: _start_url(status, collection) for collection in pending}
    cursors = {name: url for name, url in starts.items() if url is not None}
    status = replace(status, current=None, cursor=None, cursors=cursors)
    remaining = set(pending)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="maestrano-import-read") as pool:
        for collection in pending:
            pool.submit(read, collection, starts[collection])
        try:
            while remaining:
                collection, item = pages.get()
                status = replace(status, current=collection, cursor=status.cursors.get(collection))
                if isinstance(item, Exception):
                    raise item
                if item is _DONE:
                    remaining.discard(collection)
                    status = _completed(status, collection)
                    store.put(status)
                    continue
                page: Page = item
                status = _delivered(app, preset, group_id, status, page)
                if page.next_url is None:  # its last page: nothing left to resume
                    status = _completed(status, collection)
                else:
                    cursors = {**status.cursors, collection: page.next_url}
                    status = replace(status, cursor=page.next_url, cursors=cursors)
                store.put(status)
                if on_page is not None:
                    on_page(status, page)
            return _succeeded(replace(status, current=None, cursor=None), group_id, preset)
        except Exception as exc:
            return _failed(status, exc, group_id, preset)
        finally:
            stop.set()  # readers blocked on a full queue give up; the pool waits for them


def _job(app: Flask, preset_name: str, group_id: str, collections: tuple[str, ...] | None) -> ImportStatus:
    """What the executor runs: :func:`run_import` inside an app context."""
    with app.app_context():
        return run_import(app, get_state(app).preset(preset_name), group_id, collections)


def start_import(app: Flask, preset: Preset, group_id: str, collections: Any = None) -> Any:
    """Queue the import of ``group_id`` on the app's executor; returns what ``submit`` returned
    (a :class:`concurrent.futures.Future` with the default executor).

    While an import of the same group is queued or running in this process, its future is
    returned instead of starting a second one.
    """
    wanted = collection_names(collections) if collections is not None else None
    cache = get_state(app).cache
    futures: dict[tuple[str, str], Any] = cache.setdefault("import_futures", {})
    lock: threading.Lock = cache.setdefault("import_lock", threading.Lock())
    key = (preset.name, group_id)
    with lock:
        running = futures.get(key)
        if isinstance(running, Future) and not running.done():
            return running
        store = status_store(app)
        previous = store.get(preset.name, group_id)
        if previous is not None and previous.state == FAILED:
            queued = replace(previous, state=QUEUED, updated_at=_now())
        else:
            names = wanted if wanted is not None else import_collections(app, preset)
            queued = ImportStatus(preset.name, group_id, QUEUED, names, updated_at=_now())
        store.put(queued)
        try:
            future = executor(app).submit(_job, app, preset.name, group_id, wanted)
        except Exception as exc:  # e.g. a task queue's broker is down: say so in the status
            store.put(
                replace(queued, state=FAILED, error=f"could not queue the import: {exc}", updated_at=_now())
            )
            raise
        futures[key] = future
    return future


# -- first login ------------------------------------------------------------------------------


def setup(app: Flask, state: MaestranoState) -> Callable[[], None]:
    """Start the import of a group on its first login (``MAESTRANO_IMPORT_ON_FIRST_LOGIN``).

    Returns what disconnects it (``init_app`` undoes its work when it fails).
    """

    def on_login(sender: Flask, **kwargs: Any) -> None:
        if not kwargs.get("group_created") or not state.settings.import_on_first_login:
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
            from .syncing import first_login

            if first_login(sender, preset, group_id):  # mappings declared: the first sync
                return
            if not import_collections(sender, preset):
                return
            start_import(sender, preset, group_id)
        except Exception:  # a failing import must never fail a login
            log.exception("Maestrano: could not start the import of group %s", group_id)

    signals.login_succeeded.connect(on_login, sender=app, weak=False)
    return lambda: signals.login_succeeded.disconnect(on_login, sender=app)
