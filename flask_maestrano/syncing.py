"""Two-way Connec! synchronization in a Flask app: wiring the engine of :mod:`flask_maestrano.sync`.

:func:`configure` declares the mappings and the store once; from then on the first login of
a company runs its first synchronization (instead of the plain import), Connec!
notifications of mapped collections are applied by the engine, and :func:`run_sync`,
:func:`start_sync`, :func:`push` and ``flask maestrano sync GROUP`` run it.

One run per company at a time: every run holds the group's lock in the extension's store
(``MAESTRANO_STORE``: shared by all workers when it is Redis), taken with an atomic
``SET NX`` and an expiry (``MAESTRANO_SYNC_LOCK_TTL``). A notification that arrives while
the company is being synchronized is kept in the id maps and applied at the end of that run
or by the next one.

>>> from flask_maestrano import syncing
>>> syncing.configure(app, SqlAlchemySyncStore(db.engine), [contacts, companies])  # doctest: +SKIP
>>> syncing.run_sync(app, maestrano.preset(), "cld-1").status  # doctest: +SKIP
'SUCCESS'
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import timedelta, timezone
from typing import Any

from flask import Flask, Response, jsonify, request

from .auth import authenticated_preset
from .presets import Preset
from .state import current, get_state
from .sync.engine import SyncEngine, utcnow
from .sync.mapping import Mapping, connec_id_of, dependency_order
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


def _lock_key(preset: str, group_id: str) -> str:
    return f"sync:lock:{preset}:{group_id}"


@contextmanager
def group_lock(app: Flask, preset: str, group_id: str) -> Iterator[bool]:
    """Hold the group's sync lock for the block; yields ``False`` (and holds nothing) when
    another run has it."""
    state = get_state(app)
    key = _lock_key(preset, group_id)
    token = secrets.token_hex(8)
    acquired = state.store.add(key, token, state.settings.sync_lock_ttl)
    try:
        yield acquired
    finally:
        if acquired:
            state.store.pop(key)


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
) -> SyncRun | None:
    """Synchronize ``group_id`` now, in this thread (needs an app context for the mappings).

    Returns the finished run, or ``None`` when it was skipped: sync switched off for the
    group, another run holding the lock, or recovery mode for an automatic (``forced=False``)
    run. A group never seen before is registered with sync on. ``on_page(collection, page)``
    is called after each page pulled (the CLI's progress bars).
    """
    setup = _setup(app)
    store = setup.store
    enabled = store.is_enabled(preset.name, group_id)
    if enabled is None:
        store.set_enabled(preset.name, group_id, True)
    elif not enabled:
        log.info("Maestrano sync: %s (%s) is switched off; not synchronized", group_id, preset.name)
        return None
    with group_lock(app, preset.name, group_id) as acquired:
        if not acquired:
            log.info("Maestrano sync: %s (%s) skipped: a synchronization is running", group_id, preset.name)
            return None
        reason = skip_reason(store.runs(preset.name, group_id), forced=forced)
        if reason is not None:
            log.warning("Maestrano sync: %s (%s) %s", group_id, preset.name, reason)
            return None
        sync = engine(app, preset, group_id, preemption=preemption)
        sync.on_page = on_page
        return sync.synchronize(full=full, only=only)


def _job(app: Flask, preset_name: str, group_id: str, options: dict[str, Any]) -> SyncRun | None:
    with app.app_context():
        return run_sync(app, get_state(app).preset(preset_name), group_id, **options)


def start_sync(app: Flask, preset: Preset, group_id: str, **options: Any) -> Any:
    """Queue :func:`run_sync` on the app's executor (``MAESTRANO_IMPORT_EXECUTOR`` or the
    thread pool); returns what ``submit`` returned. While a run of the group is queued or
    running in this process, its future is returned instead of queueing a second one."""
    setup = _setup(app)
    key = (preset.name, group_id)
    with setup.lock:
        running = setup.futures.get(key)
        if isinstance(running, Future) and not running.done():
            return running
        future = get_state(app).imports.executor.submit(_job, app, preset.name, group_id, options)
        setup.futures[key] = future
    return future


def queued(app: Flask, preset: Preset, group_id: str) -> bool:
    """Whether this process has a run of the group queued or running on its executor."""
    setup = setup_of(app)
    future = setup.futures.get((preset.name, group_id)) if setup is not None else None
    return isinstance(future, Future) and not future.done()


def status(app: Flask, preset: Preset, group_id: str) -> dict[str, Any] | None:
    """The platform's status shape (SYNC.md 1.4) of ``group_id``, or ``None`` for an unknown group.

    ``status`` is ``DISABLED`` when sync is switched off (and only then), ``RUNNING`` while a
    run is in progress, ``ENQUEUED`` while this process has one queued, else the last run's
    status (``SUCCESS`` or ``ERROR``; ``null`` before the first run). ``message`` and
    ``updated_at`` (the last run's end, else its start) are present once a run exists.
    """
    store = _setup(app).store
    enabled = store.is_enabled(preset.name, group_id)
    if enabled is None:
        return None
    runs = store.runs(preset.name, group_id, limit=1)
    last = runs[0] if runs else None
    shown: str | None = last.status if last is not None else None
    if not enabled:
        shown = DISABLED
    elif shown != RUNNING and queued(app, preset, group_id):
        shown = ENQUEUED
    body: dict[str, Any] = {"group_id": group_id, "sync_enabled": enabled, "status": shown}
    if last is not None:
        moment = (last.finished_at or last.started_at).astimezone(timezone.utc)
        body["message"] = last.message
        body["updated_at"] = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return body


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
    """Apply notified entities of a mapped collection; ``False`` when the collection is not mapped.

    Under the group's lock; while a run holds it, the entities wait in the id maps and the
    end of that run (or the next one) applies them.
    """
    setup = setup_of(app)
    if setup is None or collection not in setup.collections():
        return False
    if setup.store.is_enabled(preset.name, group_id) is False:
        return True
    sync = engine(app, preset, group_id)
    with group_lock(app, preset.name, group_id) as acquired:
        if acquired:
            sync.apply(collection, entities)
            sync.flush()
            return True
    waiting = []
    known = setup.store.by_connec(
        preset.name, group_id, collection, [i for e in entities if (i := connec_id_of(e.get("id")))]
    )
    for entity in entities:
        connec_id = connec_id_of(entity.get("id"))
        if connec_id:
            base = known.get(connec_id) or IdMap(preset.name, group_id, collection, connec_id=connec_id)
            waiting.append(replace(base, pending=dict(entity), message="arrived during a synchronization"))
    setup.store.save(waiting)
    return True


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
            now = status(current(), preset, group) or {}
            if enabled and now.get("status") not in ("RUNNING", "ENQUEUED"):
                start_sync(current(), preset, group, **options)
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
