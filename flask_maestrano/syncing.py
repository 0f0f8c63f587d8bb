"""Two-way Connec! synchronization in a Flask app: wiring the engine of :mod:`flask_maestrano.sync`.

:func:`configure` declares the mappings and the store once; from then on the first login of
a company runs its first synchronization (instead of the plain import), Connec!
notifications of mapped collections are applied by the engine, and :func:`run_sync`,
:func:`start_sync`, :func:`push` and ``flask maestrano sync GROUP`` run it.

One run per company at a time: every run is a job of :mod:`flask_maestrano.jobs` (kind
``sync``): it holds the group's lock in the app's job backend (on the Redis server of
``MAESTRANO_STORE`` when it is one, so every process shares it) for a lease of
``MAESTRANO_JOB_LEASE`` seconds, renewed by a heartbeat and renewed or released only by its
owner; a run whose process died loses it within the lease and the next start recovers the
group. A queued run holds the group's *queued* claim, so every process reports ``ENQUEUED``.
With ``MAESTRANO_IMPORT_EXECUTOR`` a task queue's executor (:mod:`flask_maestrano.contrib.rq`,
:mod:`flask_maestrano.contrib.celery`), runs go to that queue.

Connec! notifications of mapped collections are stored in the id maps (the sync store, a
database) before the request is answered, and a job applies them under the group's lock
(``MAESTRANO_SYNC_NOTIFY_INLINE`` applies them in the request instead). A notification that
arrives while the company is being synchronized is applied at the end of that run.

>>> from flask_maestrano import syncing
>>> syncing.configure(app, SqlAlchemySyncStore(db.engine), [contacts, companies])  # doctest: +SKIP
>>> syncing.run_sync(app, maestrano.preset(), "cld-1").status  # doctest: +SKIP
'SUCCESS'
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import timedelta, timezone
from typing import Any

from flask import Flask, Response, jsonify, request

from . import jobs
from .auth import authenticated_preset
from .presets import Preset
from .state import current, get_state
from .sync.engine import SyncEngine, utcnow
from .sync.mapping import Mapping, connec_id_of, dependency_order, parse_time
from .sync.outbox import OutboxStore, changes_of
from .sync.store import DISABLED, ENQUEUED, ERROR, RUNNING, IdMap, SyncRun, SyncStore
from .sync_endpoints import BadRequest, error, not_found, paths, read_request

log = logging.getLogger("flask_maestrano.sync")

#: Recovery mode (SYNC.md 3.2): after this many failed runs in a row...
RECOVERY_FAILURES = 3
#: ...automatic runs wait this long after the last one (a forced run does not).
RECOVERY_WAIT = timedelta(hours=24)


@dataclass(frozen=True)
class SyncSetup:
    """What :func:`configure` declared for an app (``get_state(app).sync``)."""

    store: SyncStore
    mappings: tuple[Mapping, ...]
    #: the ``provider`` of our external ids in Connec! (default: the preset's ``api.id``)
    provider: str | None = None
    #: this process's queued or running runs, by (preset, group)
    futures: dict[tuple[str, str], Any] = field(default_factory=dict, compare=False)
    #: guards :attr:`futures`
    lock: threading.Lock = field(default_factory=threading.Lock, compare=False, repr=False)

    def collections(self) -> tuple[str, ...]:
        """The mapped collections, referenced ones first."""
        return tuple(m.collection for m in self.mappings)


def configure(
    app: Flask, store: SyncStore, mappings: Sequence[Mapping], *, provider: str | None = None
) -> SyncSetup:
    """Declare the app's mappings and sync store (call once, after ``init_app``, before the
    app serves requests); also adds the platform's synchronization endpoints
    (``flask_maestrano.sync_endpoints``)."""
    state = get_state(app)
    ordered = tuple(dependency_order(mappings))
    if not ordered:
        raise ValueError("configure needs at least one mapping")
    if state.sync is not None:
        raise RuntimeError("flask_maestrano.syncing.configure was already called for this app")
    setup = SyncSetup(store, ordered, provider)
    register_endpoints(app, list(state.presets.values()))
    state.sync = setup
    return setup


def setup_of(app: Flask) -> SyncSetup | None:
    """The app's :class:`SyncSetup`, or ``None`` when :func:`configure` was not called."""
    return get_state(app).sync


def _setup(app: Flask) -> SyncSetup:
    setup = setup_of(app)
    if setup is None:
        raise RuntimeError("no sync mappings: call flask_maestrano.syncing.configure(app, store, mappings)")
    return setup


def engine(app: Flask, preset: Preset, group_id: str, *, preemption: bool | None = None) -> SyncEngine:
    """A :class:`~flask_maestrano.sync.engine.SyncEngine` for ``group_id`` with the app's settings."""
    setup = _setup(app)
    state = get_state(app)
    settings = state.settings
    return SyncEngine(
        state.imports.client(preset, group_id, external_ids=True),
        setup.store,
        setup.mappings,
        preset=preset.name,
        group_id=group_id,
        provider=setup.provider or preset.api.id,
        batch_size=settings.sync_batch_size,
        page_size=settings.import_page_size,
        retries=settings.sync_retries,
        backoff=settings.sync_backoff,
        overlap=settings.sync_overlap,
        preemption=preemption,
    )


# -- the per-group lock ---------------------------------------------------------------------


#: the job kinds of :mod:`flask_maestrano.jobs` a group's sync uses: its run lock, its queued
#: claim and its "notifications are waiting" flag
SYNC_KIND, QUEUED_KIND, NOTIFY_KIND = "sync", "sync-queued", "sync-notify"
_QUEUED_OWNER = "queued"


def lock_name(preset: str, group_id: str) -> str:
    """The job name of a group's sync lock (``sync:<preset>:<group>``)."""
    return jobs.job_name(SYNC_KIND, preset, group_id)


def _claim_name(preset: str, group_id: str) -> str:
    return jobs.job_name(QUEUED_KIND, preset, group_id)


def _flag_name(preset: str, group_id: str) -> str:
    return jobs.job_name(NOTIFY_KIND, preset, group_id)


def _backend(app: Flask) -> jobs.JobBackend:
    return get_state(app).imports.backend


#: The lock owner prefix of the short jobs that hold a group's lock (stored notifications,
#: the outbox): a platform start is not dropped for them, and a queued run waits for them.
SHORT_OWNER = "short:"


def held_by_short_job(app: Flask, preset: str, group_id: str) -> bool:
    """Whether the group's lock is held by a short job (see :data:`SHORT_OWNER`)."""
    holder = _backend(app).holder(lock_name(preset, group_id))
    return holder is not None and holder.startswith(SHORT_OWNER)


@contextmanager
def group_lock(app: Flask, preset: str, group_id: str, *, short: bool = False) -> Iterator[jobs.Lease | None]:
    """Hold the group's sync lock for the block: yields the :class:`~flask_maestrano.jobs.Lease`
    (its heartbeat renews it; ``lease.lost`` is set if it was lost), or ``None`` (holding
    nothing) when another run, in any process sharing the job backend, holds it. Only the
    owner renews or releases it: a run that lost its lease never frees another run's lock.
    ``short`` marks a short job (applying notifications, pushing the outbox), which a start
    does not count as a run in progress."""
    state = get_state(app)
    backend = state.imports.backend
    name = lock_name(preset, group_id)
    owner = (SHORT_OWNER if short else "") + jobs.new_owner()
    ttl = state.settings.job_lease
    if not backend.acquire(name, owner, ttl):
        yield None
        return
    lease = jobs.Lease(backend, name, owner, ttl).start()
    unregister = jobs.register_running(owner, lease.stop)
    try:
        yield lease
    finally:
        lease.stop()  # before unregistering: an exiting process waits for that
        unregister()


def skip_reason(runs: Sequence[SyncRun], *, forced: bool) -> str | None:
    """Why an automatic run should not start now (recovery mode, SYNC.md 3.2), or ``None``."""
    recent = list(runs[:RECOVERY_FAILURES])
    if forced or len(recent) < RECOVERY_FAILURES or any(r.status != ERROR for r in recent):
        return None
    last = recent[0].finished_at or recent[0].started_at
    if utcnow() - last < RECOVERY_WAIT:
        return (
            f"skipped: the last {RECOVERY_FAILURES} synchronizations failed; "
            "the next automatic attempt is 24 h after the last"
        )
    return None


def run_sync(
    app: Flask,
    preset: Preset,
    group_id: str,
    *,
    full: bool = False,
    only: Sequence[str] | None = None,
    forced: bool = True,
    preemption: bool | None = None,
    on_page: Callable[[str, Any], None] | None = None,
    queued: bool = False,
) -> SyncRun | None:
    """Synchronize ``group_id`` now, in this thread (needs an app context for the mappings).

    Returns the finished run, or ``None`` when it was skipped: sync switched off for the
    group, another run holding the lock, or recovery mode for an automatic (``forced=False``)
    run. A group never seen before is registered with sync on. ``on_page(collection, page)``
    is called after each page pulled (the CLI's progress bars). ``queued`` says the run was
    queued by :func:`start_sync` (it drops the group's queued claim). The group's outbox
    (local changes committed but not yet answered by Connec!, :func:`drain_outbox`) is
    pushed first. Notifications that arrived during the run are applied after it.
    """
    setup = _setup(app)
    store = setup.store
    backend = _backend(app)
    run: SyncRun | None = None
    held = False
    try:
        enabled = store.is_enabled(preset.name, group_id)
        if enabled is None:
            store.set_enabled(preset.name, group_id, True)
        elif not enabled:
            log.info("Maestrano sync: %s (%s) is switched off; not synchronized", group_id, preset.name)
            return None
        _wait_for_short_jobs(app, preset.name, group_id)
        with group_lock(app, preset.name, group_id) as lease:
            if queued:  # after the lock: a free claim and a free lock mean nothing is pending
                backend.release(_claim_name(preset.name, group_id), _QUEUED_OWNER)
            if lease is None:
                log.info("Maestrano sync: %s (%s) skipped: another run holds it", group_id, preset.name)
                return None
            held = True
            reason = skip_reason(store.runs(preset.name, group_id), forced=forced)
            if reason is not None:
                log.warning("Maestrano sync: %s (%s) %s", group_id, preset.name, reason)
            else:
                _drain_logged(app, preset, group_id)  # local changes first: a dead process's too
                sync = engine(app, preset, group_id, preemption=preemption)
                sync.on_page = on_page
                sync.should_stop = _stopper(lease)
                run = sync.synchronize(full=full, only=only)
    finally:
        if queued:
            backend.release(_claim_name(preset.name, group_id), _QUEUED_OWNER)
        if held:  # notifications stored while this held the lock (their jobs left them to it)
            try:
                apply_waiting(app, preset, group_id)
            except Exception:  # they stay stored: the next job or run applies them
                log.exception("Maestrano sync: applying the waiting notifications of %s failed", group_id)
    return run


def _wait_for_short_jobs(app: Flask, preset: str, group_id: str) -> None:
    """Wait (at most two job leases) while a short job holds the group's lock, so that a run
    started meanwhile is not skipped as if another run held it."""
    deadline = time.monotonic() + 2 * get_state(app).settings.job_lease
    while held_by_short_job(app, preset, group_id) and time.monotonic() < deadline:
        time.sleep(0.05)


def _stopper(lease: jobs.Lease) -> Callable[[], str | None]:
    def should_stop() -> str | None:
        if jobs.stopping():
            return "the process stopped"
        if lease.lost.is_set():
            return "the run lost its lock"
        return None

    return should_stop


def _job(app: Flask, preset_name: str, group_id: str, options: dict[str, Any]) -> Any:
    """A queued job: the finished :class:`SyncRun` (or ``None``), or with
    ``options["notifications"]`` the number of notified entities applied."""
    options = dict(options)
    with app.app_context():
        preset = get_state(app).preset(preset_name)
        if options.pop("outbox", False):
            return {"outbox": push_waiting(app, preset, group_id)}
        if options.pop("notifications", False):
            return apply_waiting(app, preset, group_id)
        if options.get("only") is not None:
            options["only"] = tuple(options["only"])
        return run_sync(app, preset, group_id, queued=True, **options)


def run_job(app: Flask, preset_name: str, group_id: str, options: dict[str, Any]) -> dict[str, Any] | None:
    """What a task queue's worker runs for a queued sync job (in an app context): the group's
    waiting notifications when ``options["notifications"]`` (returns ``{"notifications": n}``),
    the group's outbox when ``options["outbox"]`` (:func:`push_waiting`; returns
    ``{"outbox": n}``), else :func:`run_sync` with the options of :func:`start_sync` (returns
    the run as a dict, ``None`` when it was skipped)."""
    result = _job(app, preset_name, group_id, options)
    if isinstance(result, dict):
        return result
    if isinstance(result, SyncRun):
        return result.to_dict()
    if isinstance(result, int):
        return {"notifications": result}
    return None


def _submit(app: Flask, preset_name: str, group_id: str, options: dict[str, Any]) -> Any:
    """Hand a sync job to the app's executor: a task queue's ``submit_sync`` when it has one
    (:mod:`flask_maestrano.contrib.rq`, :mod:`flask_maestrano.contrib.celery`), else
    ``submit(job, app, preset_name, group_id, options)``."""
    executor = get_state(app).imports.executor
    plain = {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()}
    submit_sync = getattr(executor, "submit_sync", None)
    if callable(submit_sync):
        return submit_sync(preset_name, group_id, plain)
    return executor.submit(_job, app, preset_name, group_id, plain)


def start_sync(app: Flask, preset: Preset, group_id: str, **options: Any) -> Any:
    """Queue :func:`run_sync` on the app's executor (``MAESTRANO_IMPORT_EXECUTOR``: a task
    queue's when configured, else the thread pool); returns what it returned (a
    :class:`concurrent.futures.Future` with the thread pool).

    One queued run per group, in every process sharing the job backend: while one is queued
    (its claim held) or running (its lock held), nothing is queued and ``None`` is returned
    (a run queued by this process has its future in ``get_state(app).sync.futures``).
    """
    setup = _setup(app)
    state = get_state(app)
    backend = state.imports.backend
    key = (preset.name, group_id)
    claim = _claim_name(preset.name, group_id)
    with setup.lock:
        running = setup.futures.get(key)
        if isinstance(running, Future) and not running.done():
            return None  # queued or running here (its future is ``setup.futures[key]``)
        # the claim first, then the lock: a run takes its lock, then drops the claim
        if not backend.acquire(claim, _QUEUED_OWNER, state.settings.job_queued_ttl):
            return None  # queued by another start (any process) that has not run yet
        holder = backend.holder(lock_name(preset.name, group_id))
        if holder is not None and not holder.startswith(SHORT_OWNER):
            backend.release(claim, _QUEUED_OWNER)
            return None  # running (a short job does not count: the queued run waits for it)
        try:
            future = _submit(app, preset.name, group_id, options)
        except Exception:  # e.g. a task queue's broker is down
            backend.release(claim, _QUEUED_OWNER)
            raise
        setup.futures[key] = future
    return future


def queued(app: Flask, preset: Preset, group_id: str) -> bool:
    """Whether a run of the group is queued, by this process or any other sharing the job backend."""
    setup = setup_of(app)
    future = setup.futures.get((preset.name, group_id)) if setup is not None else None
    if isinstance(future, Future) and not future.done():
        return True
    return _backend(app).holder(_claim_name(preset.name, group_id)) is not None


def running(app: Flask, preset: Preset, group_id: str) -> bool:
    """Whether a run of the group holds its lock now (in any process sharing the job backend)."""
    return _backend(app).holder(lock_name(preset.name, group_id)) is not None


#: the message shown for a run whose process died before it finished
INTERRUPTED_MESSAGE = "interrupted: the run's process stopped; the next start synchronizes again"


def status(app: Flask, preset: Preset, group_id: str) -> dict[str, Any] | None:
    """The platform's status shape (SYNC.md 1.4) of ``group_id``, or ``None`` for an unknown group.

    ``status`` is ``DISABLED`` when sync is switched off (and only then), ``RUNNING`` while a
    run holds the group's lock, ``ENQUEUED`` while one is queued (seen from every process
    sharing the job backend), else the last run's status (``SUCCESS`` or ``ERROR``; ``null``
    before the first run; ``ERROR`` with an "interrupted" message for a run whose process
    died). ``message`` and ``updated_at`` (the last run's end, else its start) are present
    once a run exists.
    """
    store = _setup(app).store
    enabled = store.is_enabled(preset.name, group_id)
    if enabled is None:
        return None
    runs = store.runs(preset.name, group_id, limit=1)
    last = runs[0] if runs else None
    shown: str | None = last.status if last is not None else None
    message = last.message if last is not None else None
    if not enabled:
        shown = DISABLED
    elif running(app, preset, group_id):
        shown = RUNNING
    elif queued(app, preset, group_id):
        shown = ENQUEUED
    elif shown == RUNNING:  # nobody holds the lock: the run's process died
        shown, message = ERROR, INTERRUPTED_MESSAGE
    body: dict[str, Any] = {"group_id": group_id, "sync_enabled": enabled, "status": shown}
    if last is not None:
        moment = (last.finished_at or last.started_at).astimezone(timezone.utc)
        body["message"] = message
        body["updated_at"] = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return body


def start_all(app: Flask) -> list[tuple[str, str]]:
    """Queue an automatic synchronization (recovery mode applies) of every group with sync on
    whose preset this app has, on the app's executor: what a periodic schedule runs
    (:func:`flask_maestrano.contrib.celery.schedule_syncs`,
    :func:`flask_maestrano.contrib.rq.schedule_syncs`).
    Returns the ``(preset, group_id)`` pairs queued (a group already queued or running is not)."""
    state = get_state(app)
    started = []
    for preset_name, group_id in _setup(app).store.enabled_groups():
        if preset_name not in state.presets:
            continue
        if start_sync(app, state.preset(preset_name), group_id, forced=False) is not None:
            started.append((preset_name, group_id))
    return started


def first_login(app: Flask, preset: Preset, group_id: str) -> bool:
    """A company's first login: queue its first synchronization when mappings are declared
    (the group is registered with sync on); ``False`` when they are not (plain import)."""
    setup = setup_of(app)
    if setup is None:
        return False
    if setup.store.is_enabled(preset.name, group_id) is None:
        setup.store.set_enabled(preset.name, group_id, True)
    start_sync(app, preset, group_id)
    return True


# -- push and notifications --------------------------------------------------------------------


def push(app: Flask, records: Sequence[Any], collection: str, *, preset: Preset | None = None) -> list[str]:
    """Send ``records`` of ``collection`` to Connec! now, in ``/batch`` calls (≤ 50 operations
    each), grouped by company; returns the errors (also stored on their id maps)."""
    setup = _setup(app)
    mapping = next((m for m in setup.mappings if m.collection == collection), None)
    if mapping is None:
        raise KeyError(f"no mapping for the Connec! collection {collection!r}")
    by_scope: dict[tuple[str, str], list[Any]] = {}
    state = get_state(app)
    for record in records:
        preset_name, group_id = mapping.scope(record)
        name = preset.name if preset is not None else state.preset(preset_name).name
        by_scope.setdefault((name, group_id), []).append(record)
    errors: list[str] = []
    for (name, group_id), items in by_scope.items():
        found = state.preset(name)
        sync = engine(app, found, group_id)
        for record in items:
            sync.push(record, collection)
        errors += sync.flush()
    return errors


def push_archive(
    app: Flask, collection: str, local_ids: Sequence[str], *, group_id: str, preset: Preset | None = None
) -> list[str]:
    """Archive in Connec! the records of ``collection`` deleted or archived locally (their
    ids while they existed) in ``group_id``: ``status: ARCHIVED`` in ``/batch`` calls (Connec!
    has no hard delete); the id maps remember it, so no later pull creates them again.
    Returns the errors. (:func:`~flask_maestrano.contrib.sqlalchemy.sync_on_commit` does this
    for deleted and archived model records.)"""
    found = preset if preset is not None else get_state(app).preset(None)
    sync = engine(app, found, group_id)
    for local_id in local_ids:
        sync.archive(collection, local_id)
    return sync.flush()


def push_changes(app: Flask, changes: Sequence[tuple[str | None, str, Any]]) -> list[str]:
    """Send already captured changes ``(preset or None, group_id, Change)`` (the after-commit hook)."""
    state = get_state(app)
    by_scope: dict[tuple[str, str], list[Any]] = {}
    for preset_name, group_id, change in changes:
        by_scope.setdefault((state.preset(preset_name).name, group_id), []).append(change)
    errors: list[str] = []
    for (name, group_id), items in by_scope.items():
        sync = engine(app, state.preset(name), group_id)
        sync.queue.extend(items)
        errors += sync.flush()
    return errors


def apply_notification(
    app: Flask, preset: Preset, group_id: str, collection: str, entities: Sequence[dict[str, Any]]
) -> bool:
    """Take notified entities of a mapped collection; ``False`` when the collection is not mapped.

    By default the entities are stored in their id maps (the sync store: committed before
    this returns, so before the notification is answered) and a job applies them off the
    request, under the group's lock (:func:`apply_waiting`); if the process dies first, the
    next run of the group, ``flask maestrano jobs resume`` or :func:`resume_notifications`
    applies them. With ``MAESTRANO_SYNC_NOTIFY_INLINE`` they are applied here when no run
    holds the lock. Either way, entities that arrive while a run holds the lock are applied
    after it.
    """
    setup = setup_of(app)
    if setup is None or collection not in setup.collections():
        return False
    if setup.store.is_enabled(preset.name, group_id) is False:
        return True
    if get_state(app).settings.sync_notify_inline:
        with group_lock(app, preset.name, group_id, short=True) as lease:
            if lease is not None:
                sync = engine(app, preset, group_id)
                sync.apply(collection, entities)
                sync.flush()
                return True
        _park(app, setup.store, preset, group_id, collection, entities, "arrived during a synchronization")
        return True
    _park(app, setup.store, preset, group_id, collection, entities, "notified; waiting to be applied")
    try:
        _submit(app, preset.name, group_id, {"notifications": True})
    except Exception:  # stored already: the next run or `flask maestrano jobs resume` applies it
        log.exception("Maestrano sync: could not queue the notifications of %s (%s)", group_id, preset.name)
    return True


def _park(
    app: Flask,
    store: SyncStore,
    preset: Preset,
    group_id: str,
    collection: str,
    entities: Sequence[dict[str, Any]],
    message: str,
) -> None:
    """Store entities in their id maps (``pending``) and flag the group: waiting to be applied.

    An entity already waiting is replaced unless it is more recent (``updated_at``)."""
    ids = [i for e in entities if (i := connec_id_of(e.get("id")))]
    known = store.by_connec(preset.name, group_id, collection, ids)
    waiting: dict[str, IdMap] = {}
    for entity in entities:
        connec_id = connec_id_of(entity.get("id"))
        if not connec_id:
            continue
        base = waiting.get(connec_id) or known.get(connec_id)
        if base is None:
            base = IdMap(preset.name, group_id, collection, connec_id=connec_id)
        elif base.pending is not None and _newer(base.pending, entity):
            continue
        waiting[connec_id] = replace(base, pending=dict(entity), message=message)
    store.save(list(waiting.values()))
    _backend(app).put_status(_flag_name(preset.name, group_id), "1")  # after: see apply_waiting


def _newer(kept: Any, incoming: dict[str, Any]) -> bool:
    """Whether the entity ``kept`` is more recent than ``incoming`` (by ``updated_at``)."""
    ours, theirs = parse_time(kept.get("updated_at")), parse_time(incoming.get("updated_at"))
    return ours is not None and theirs is not None and ours > theirs


def apply_waiting(app: Flask, preset: Preset, group_id: str) -> int:
    """Apply the group's stored notifications, under its lock, after pushing its outbox
    (:func:`drain_outbox`); returns how many entities were waiting when it started (0 when
    another holder of the lock will do it).

    Safe against a notification stored meanwhile: the flag is cleared under the lock before
    reading, and checked again after the lock is released, so whoever holds the lock when
    a notification is stored applies it after."""
    setup = _setup(app)
    backend = _backend(app)
    flag = _flag_name(preset.name, group_id)
    applied = 0
    while backend.get_status(flag) == "1":
        with group_lock(app, preset.name, group_id, short=True) as lease:
            if lease is None:
                return applied  # the holder checks the flag after it releases the lock
            backend.put_status(flag, "0")
            if setup.store.is_enabled(preset.name, group_id) is False:
                return applied
            _drain_logged(app, preset, group_id)  # committed local changes first
            applied += len(setup.store.pending(preset.name, group_id))
            sync = engine(app, preset, group_id)
            sync.should_stop = _stopper(lease)
            sync.retry_pending()
            sync.flush()
    return applied


def resume_runs(app: Flask) -> list[SyncRun]:
    """Run now, as automatic runs, the groups with sync on whose last run was interrupted (it
    says ``RUNNING`` and nobody holds the group's lock: its process died): what ``flask
    maestrano jobs resume`` does. Returns the finished runs."""
    state = get_state(app)
    setup = _setup(app)
    done = []
    for preset_name, group_id in setup.store.enabled_groups():
        if preset_name not in state.presets:
            continue
        preset = state.preset(preset_name)
        last = setup.store.runs(preset_name, group_id, limit=1)
        if last and last[0].status == RUNNING and not running(app, preset, group_id):
            run = run_sync(app, preset, group_id, forced=False)
            if run is not None:
                done.append(run)
    return done


def resume_notifications(app: Flask) -> list[tuple[str, str]]:
    """Apply, here and now, the stored notifications of every group that has some waiting
    (what ``flask maestrano jobs resume`` does after a process died); returns those groups."""
    state = get_state(app)
    done = []
    for name in _backend(app).names(NOTIFY_KIND):
        _kind, preset_name, group_id = name.split(":", 2)
        if preset_name not in state.presets or _backend(app).get_status(name) != "1":
            continue
        apply_waiting(app, state.preset(preset_name), group_id)
        done.append((preset_name, group_id))
    return done


# -- the outbox: local changes committed with the host's transaction ------------------------


def outbox_of(app: Flask) -> OutboxStore | None:
    """The app's sync store when it keeps an outbox (:class:`~flask_maestrano.sync.outbox.OutboxStore`)."""
    setup = setup_of(app)
    store = setup.store if setup is not None else None
    return store if isinstance(store, OutboxStore) else None


def _push_covered(
    app: Flask,
    outbox: OutboxStore,
    preset: Preset,
    group_id: str,
    changes: Sequence[Any],
    covered: dict[tuple[str, str], int],
) -> tuple[int, list[str]]:
    """Push ``changes`` of one group, then remove the outbox rows (up to ``covered``'s ids) of
    the records Connec! answered; returns how many records were answered, and the errors."""
    sync = engine(app, preset, group_id)
    sync.queue.extend(changes)
    errors = sync.flush()
    done = [(c, i, row) for (c, i), row in covered.items() if (c, i) not in sync.unanswered]
    outbox.outbox_done(preset.name, group_id, done)
    return len(done), errors


def drain_outbox(app: Flask, preset: Preset, group_id: str) -> int:
    """Push the group's outbox: each record as it is now (one operation per record, however
    many rows it has), removing the rows Connec! answered (a success, or a 4xx error kept on
    its id map); no answer, a 429 or a 5xx leaves them for the next drain. Call it under the
    group's lock (runs, :func:`push_waiting` and :func:`resume_outbox` do); returns how many
    records were answered."""
    outbox = outbox_of(app)
    if outbox is None:
        return 0
    answered, after = 0, 0
    while True:
        entries = outbox.outbox(preset.name, group_id, after=after)
        if not entries:
            return answered
        after = max(entry.id for entry in entries)
        changes, covered = changes_of(_setup(app).mappings, entries)
        count, errors = _push_covered(app, outbox, preset, group_id, changes, covered)
        answered += count
        if errors:
            log.warning("Maestrano sync: outbox of %s (%s): %s", group_id, preset.name, "; ".join(errors))


def _drain_logged(app: Flask, preset: Preset, group_id: str) -> None:
    try:
        drain_outbox(app, preset, group_id)
    except Exception:  # the rows stay: the next run, job or resume pushes them
        log.exception("Maestrano sync: pushing the outbox of %s (%s) failed", group_id, preset.name)


def push_committed(app: Flask, changes: Sequence[tuple[str, str, Any, int]]) -> list[str]:
    """Push changes just committed with their outbox rows, ``(preset, group_id, Change,
    outbox row id)`` (the after-commit hook), without the group's lock; the rows Connec!
    answered are removed, the others wait for the next drain. Returns the errors."""
    outbox = outbox_of(app)
    state = get_state(app)
    by_scope: dict[tuple[str, str], list[tuple[Any, int]]] = {}
    for preset_name, group_id, change, row in changes:
        by_scope.setdefault((preset_name, group_id), []).append((change, row))
    if outbox is None:
        raise RuntimeError("the app's sync store keeps no outbox")
    errors: list[str] = []
    for (name, group_id), items in by_scope.items():
        covered = {(change.collection, change.local_id): row for change, row in items}
        changes = [change for change, _ in items]
        errors += _push_covered(app, outbox, state.preset(name), group_id, changes, covered)[1]
    return errors


def queue_push(app: Flask, groups: Sequence[tuple[str, str]]) -> None:
    """Queue a push job of each group's outbox on the app's task queue
    (``submit_sync(preset, group, {"outbox": true})``, run by :func:`push_waiting` in a
    worker). Raises what the queue raises (the rows stay for the next drain)."""
    for preset_name, group_id in groups:
        _backend(app).put_status(_flag_name(preset_name, group_id), "1")  # see apply_waiting
        _submit(app, preset_name, group_id, {"outbox": True})


def push_waiting(app: Flask, preset: Preset, group_id: str) -> int:
    """Push the group's outbox (and apply its stored notifications) under its lock: when a
    run holds the lock, it does so after it (the group's waiting flag). Returns how many
    outbox rows were left (0: everything answered, or another holder will push it)."""
    outbox = outbox_of(app)
    _backend(app).put_status(_flag_name(preset.name, group_id), "1")
    apply_waiting(app, preset, group_id)
    if outbox is None or running(app, preset, group_id):
        return 0
    return len(outbox.outbox(preset.name, group_id))


def resume_outbox(app: Flask) -> list[tuple[str, str, int]]:
    """Push, here and now, the outbox of every group that has rows (what ``flask maestrano
    jobs resume`` does: changes committed by a process that died before its push); returns
    ``(preset, group_id, rows left)`` per group."""
    outbox = outbox_of(app)
    if outbox is None:
        return []
    state = get_state(app)
    done = []
    for preset_name, group_id in outbox.outbox_groups():
        if preset_name in state.presets:
            done.append((preset_name, group_id, push_waiting(app, state.preset(preset_name), group_id)))
    return done


# -- the platform's synchronization endpoints (SYNC.md 1.4) -----------------------------------


def _endpoint_view(app: Flask, candidates: list[Preset], kind: str) -> Callable[..., Response]:
    def view(group_id: str | None = None) -> Response:
        preset = authenticated_preset(request, candidates)
        setup = setup_of(current())
        mapped = setup.collections() if setup is not None else ()
        limit = get_state().settings.webhook_max_size
        if request.content_length is not None and request.content_length > limit:
            return error(413, f"the body is larger than {limit} bytes")
        try:
            if kind == "status":
                group = group_id or ""
            else:
                group, options = read_request(mapped)
        except BadRequest as exc:
            return error(400, str(exc))
        if setup is None:
            return not_found()
        enabled = setup.store.is_enabled(preset.name, group)
        if enabled is None:
            return not_found()
        code = 200
        if kind == "toggle":
            setup.store.set_enabled(preset.name, group, not enabled)
        elif kind == "start":
            now = (status(current(), preset, group) or {}).get("status")
            # a short job (notifications, the outbox) holding the lock is no run in progress:
            # the start is queued and its run waits for the job
            short = now == RUNNING and held_by_short_job(current(), preset.name, group)
            busy = now == ENQUEUED or (now == RUNNING and not short)
            idle = enabled and not busy
            if idle and start_sync(current(), preset, group, **options) is not None:
                code = 202
        body = status(current(), preset, group) or {}
        if code == 202:  # what this call did, even if a worker picked the run up already
            body["status"] = "ENQUEUED"
        response = jsonify(body)
        response.status_code = code
        return response

    return view


def register_endpoints(app: Flask, presets: Sequence[Preset]) -> None:
    """Add the platform's three synchronization endpoints of every preset to ``app`` (presets
    sharing a path share a rule; the request formats are in :mod:`flask_maestrano.sync_endpoints`)."""
    methods = {"status": "GET", "start": "POST", "toggle": "PUT"}
    by_rule: dict[tuple[str, str], list[Preset]] = {}
    for preset in presets:
        for kind, rule in paths(preset).items():
            by_rule.setdefault((kind, rule), []).append(preset)
    csrf = app.extensions.get("csrf")
    for n, ((kind, rule), candidates) in enumerate(sorted(by_rule.items(), key=lambda item: item[0])):
        view = _endpoint_view(app, candidates, kind)
        endpoint = f"maestrano_sync_{kind}_{n}"
        app.add_url_rule(rule, endpoint=endpoint, view_func=view, methods=[methods[kind]])
        if csrf is not None:  # Flask-WTF: the platform's calls carry no CSRF token
            csrf.exempt(view)
