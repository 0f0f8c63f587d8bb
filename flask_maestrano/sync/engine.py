"""The two-way synchronization of one group (company): pull, apply, push, conflicts, runs.

:class:`SyncEngine` works on one group of one preset with a Connec! client (anything with
``pages``, ``batch`` and ``op`` like :class:`flask_maestrano.connec.ConnecClient`), a
:class:`~flask_maestrano.sync.store.SyncStore` and the host's
:class:`~flask_maestrano.sync.mapping.Mapping` objects. Plain Python: no Flask. The Flask
side (:mod:`flask_maestrano.syncing`) builds engines, holds the per-group lock and runs them.

Pull
    Every entity, from a page or a notification, goes through :meth:`SyncEngine.apply`:
    references unfolded through the id maps (an entity whose reference is not linked yet
    waits in its id map and is applied when the reference links), the host record found
    through the id map (or our own external id), and the change applied unless it is an
    echo (what Connec! sent equals what the record already holds) or loses a conflict.
Push
    :meth:`SyncEngine.push` queues a record; :meth:`SyncEngine.flush` sends the queue to
    ``/batch`` in calls of at most ``batch_size`` operations, creates as ``POST`` with our
    external id (Connec! upserts on it, so a retry after a lost answer cannot duplicate),
    updates as ``PUT``. Each operation's result is handled on its own: Connec! ids and the
    exchanged hash written to the id map, 4xx errors stored on it, 429/5xx/no answer retried
    with exponential backoff.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

from ..errors import ApiError
from .mapping import (
    CONNEC_WINS,
    LOCAL_WINS,
    Mapping,
    connec_id_of,
    dependency_order,
    external_id_of,
    found_at,
    parse_time,
    payload_hash,
    project,
    walk,
)
from .store import ERROR, RUNNING, SUCCESS, IdMap, SyncRun, SyncStore, id_map_from

log = logging.getLogger("flask_maestrano.sync")

#: Most operations Connec! takes in one ``/batch`` call.
MAX_BATCH = 50
#: Longest error message kept on an id map or a run.
MESSAGE_LIMIT = 500

Counts = dict[str, dict[str, int]]


class ConnecLike(Protocol):
    """What the engine needs of a Connec! client."""

    def pages(self, collection: str, *, filter: str | None = None, top: int | None = None) -> Iterator[Any]:
        """Pages (objects with ``entities``) of a collection."""
        ...

    def batch(self, ops: Sequence[Any], *, sequential: bool = True) -> list[dict[str, Any]]:
        """One ``/batch`` call: a result per operation."""
        ...

    def op(self, method: str, path: str, params: Any = None) -> dict[str, Any]:
        """A batch operation on a path of the group."""
        ...


class Interrupted(Exception):
    """A run must stop: its process is exiting or it lost the group's lock."""


@dataclass(frozen=True)
class Change:
    """One local record waiting to be pushed: its Connec! fields, references as local ids;
    or, with ``archived``, a record deleted or archived locally (Connec! gets ``status:
    ARCHIVED``: it has no hard delete)."""

    collection: str
    local_id: str
    payload: dict[str, Any]
    archived: bool = False


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def iso_utc(moment: datetime) -> str:
    """``2024-01-31T10:00:00Z`` (the ``$filter`` form)."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def retryable(status: int | None) -> bool:
    """No answer, 429 or 5xx: the outcome may change if asked again."""
    return status is None or status == 429 or status >= 500


def _changed(base: IdMap, **changes: Any) -> IdMap:
    """``dataclasses.replace`` of an id map without its per-call walk of the fields and
    without the frozen ``__init__`` setting each field in turn (hot path: every field is
    copied from ``base``, so the result is what ``replace`` gives)."""
    fields = dict(vars(base))
    fields.update(changes)
    return id_map_from(fields)


def _clip(text: str) -> str:
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 3] + "..."


def _error_text(status: Any, body: Any) -> str:
    detail = ""
    errors = body.get("errors") if isinstance(body, dict) else None
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        detail = str(errors[0].get("detail") or errors[0].get("title") or "")
    elif body is not None:
        detail = str(body)
    return _clip(f"Connec! answered {status}: {detail}".rstrip(": "))


class SyncEngine:
    """Synchronizes ``group_id`` of ``preset`` through ``mappings``.

    ``provider`` and the realm (the group id) form our external id in Connec!
    (``{"id": <local id>, "provider": provider, "realm": group_id}``).
    ``preemption`` overrides every mapping's conflict policy for this engine
    (``True``: Connec! wins, ``False``: local wins), like the platform's ``connec_preemption``.
    """

    def __init__(
        self,
        client: ConnecLike,
        store: SyncStore,
        mappings: Sequence[Mapping],
        *,
        preset: str,
        group_id: str,
        provider: str,
        batch_size: int = MAX_BATCH,
        page_size: int = 100,
        retries: int = 3,
        backoff: float = 1.0,
        overlap: float = 120.0,
        preemption: bool | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not 1 <= batch_size <= MAX_BATCH:
            raise ValueError(f"batch_size must be 1..{MAX_BATCH}, got {batch_size}")
        self.client = client
        self.store = store
        self.mappings = dependency_order(mappings)
        self.by_collection = {m.collection: m for m in self.mappings}
        self.preset = preset
        self.group_id = group_id
        self.provider = provider
        self.realm = group_id
        self.batch_size = batch_size
        self.page_size = page_size
        self.retries = retries
        self.backoff = backoff
        self.overlap = timedelta(seconds=overlap)
        self.preemption = preemption
        self.sleep = sleep
        self.queue: list[Change] = []
        #: per collection: pulled, created, updated, unchanged, archived, pending, conflicts,
        #: conflicts_connec, conflicts_local, pushed, push_unchanged, push_errors, retries, skipped
        self.counts: Counts = {}
        #: HTTP calls made to ``/batch``
        self.batch_calls = 0
        # links known to this engine: (collection, local id) <-> Connec! id (links only grow)
        self._connec_ids: dict[tuple[str, str], str] = {}
        self._local_ids: dict[tuple[str, str], str] = {}
        self._blank: dict[str, IdMap] = {}
        #: called as ``on_page(collection, page)`` after each page a pull applied
        self.on_page: Callable[[str, Any], None] | None = None
        #: called between pages and batch calls: a reason to stop (the run's lease was lost,
        #: the process is exiting) makes the run stop with :class:`~flask_maestrano.sync.engine.Interrupted`
        self.should_stop: Callable[[], str | None] | None = None
        # while a flush runs: the id maps of its records by (collection, local id), read in
        # one query per collection and kept current by what the flush saves
        self._pushing: dict[tuple[str, str], IdMap] | None = None
        #: ``(collection, local id)`` of the pushed changes Connec! gave no final answer to
        #: (no answer or 429/5xx after the retries, a failed ``/batch`` call, references not
        #: in Connec! yet): what an outbox sends again. A 4xx is an answer (kept on the id map).
        self.unanswered: set[tuple[str, str]] = set()

    # -- bookkeeping -------------------------------------------------------------------

    def check(self) -> None:
        """Raise :class:`~flask_maestrano.sync.engine.Interrupted` when :attr:`should_stop` gives a reason."""
        reason = self.should_stop() if self.should_stop is not None else None
        if reason:
            raise Interrupted(reason)

    def _count(self, collection: str, what: str, n: int = 1) -> None:
        bucket = self.counts.setdefault(collection, {})
        bucket[what] = bucket.get(what, 0) + n

    def mapping(self, collection: str) -> Mapping:
        """The mapping of ``collection`` (``KeyError`` naming it when there is none)."""
        try:
            return self.by_collection[collection]
        except KeyError:
            raise KeyError(f"no mapping for the Connec! collection {collection!r}") from None

    def _new_map(self, collection: str, **values: Any) -> IdMap:
        if not values:  # one blank map per collection (frozen: shared safely)
            blank = self._blank.get(collection)
            if blank is None:
                blank = self._blank[collection] = IdMap(self.preset, self.group_id, collection)
            return blank
        return IdMap(self.preset, self.group_id, collection, **values)

    # -- references ----------------------------------------------------------------------

    def _remember(self, maps: Iterable[IdMap]) -> None:
        for item in maps:
            if item.connec_id and item.local_id and item.pending is None:
                self._connec_ids[(item.collection, item.local_id)] = item.connec_id
                self._local_ids[(item.collection, item.connec_id)] = item.local_id

    def _save(self, maps: list[IdMap]) -> None:
        self.store.save(maps)
        self._remember(maps)
        if self._pushing is not None:
            self._pushing.update(((m.collection, m.local_id), m) for m in maps if m.local_id is not None)

    def _connec_id(self, collection: str, local_id: str) -> str | None:
        found = self._connec_ids.get((collection, local_id))
        if found is None:
            self._remember(self.store.by_local(self.preset, self.group_id, collection, [local_id]).values())
            found = self._connec_ids.get((collection, local_id))
        return found

    def _claimed(self, collection: str, value: Any) -> str | None:
        """Our local id in a reference, when this group's id maps link it (an id list can
        claim any id of ours, another company's record's too)."""
        ours = external_id_of(value, self.provider, self.realm)
        if ours is not None and self._connec_id(collection, ours) is None:
            return None
        return ours

    def _local_id(self, collection: str, connec_id: str) -> str | None:
        found = self._local_ids.get((collection, connec_id))
        if found is None:
            self._remember(self.store.by_connec(self.preset, self.group_id, collection, [connec_id]).values())
            found = self._local_ids.get((collection, connec_id))
        return found

    def _prefetch(self, mapping: Mapping, items: list[dict[str, Any]]) -> None:
        """Look up the references of a page in one query per referenced collection."""
        for field_name, target in mapping.references.items():
            if "/" in field_name:  # a sub-record reference, e.g. lines/item_id
                path = field_name.split("/")
                wanted = {connec_id_of(v) for item in items for v in found_at(item, path)}
            else:
                wanted = {connec_id_of(item.get(field_name)) for item in items}
            unknown = [c for c in wanted if c and (target, c) not in self._local_ids]
            if unknown:
                self._remember(self.store.by_connec(self.preset, self.group_id, target, unknown).values())

    def fold(self, mapping: Mapping, payload: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """References as Connec! ids; also returns the references that are not linked yet."""
        if not mapping.references:
            return payload, []  # nothing to fold: no copy
        folded = dict(payload)
        missing: list[str] = []
        for field_name, target in mapping.references.items():
            if "/" in field_name:
                folded = self._fold_nested(folded, field_name, target, missing)
                continue
            local = folded.get(field_name)
            if local is None or local == "":
                continue
            connec_id = self._connec_id(target, str(local))
            if connec_id is None:
                missing.append(f"{target} {local}")
                continue
            folded[field_name] = connec_id
        return folded, missing

    def unfold(self, mapping: Mapping, data: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """References as local ids; also returns the references that are not linked yet."""
        unfolded = dict(data)
        unfolded.pop("id", None)
        missing: list[str] = []
        for field_name, target in mapping.references.items():
            if "/" in field_name:
                unfolded = self._unfold_nested(unfolded, field_name, target, missing)
                continue
            value = data.get(field_name)
            if value is None or value == "" or value == []:
                unfolded[field_name] = None
                continue
            ours = self._claimed(target, value)
            if ours is not None:
                unfolded[field_name] = ours
                continue
            connec_id = connec_id_of(value)
            local_id = self._local_id(target, connec_id) if connec_id else None
            if local_id is None:
                missing.append(f"{target} {connec_id}" if connec_id else f"{target} {value!r}")
                continue
            unfolded[field_name] = local_id
        return unfolded, missing

    def comparable(self, mapping: Mapping, data: dict[str, Any]) -> dict[str, Any]:
        """A Connec! entity with its references as plain Connec! ids (what hashes compare)."""
        result = dict(data)
        for field_name in mapping.references:
            if "/" in field_name:
                result = walk(result, field_name.split("/"), connec_id_of)
            elif field_name in result:
                result[field_name] = connec_id_of(result[field_name])
        return result

    def _fold_nested(self, payload: dict[str, Any], path: str, target: str, missing: list[str]) -> Any:
        """Sub-record references (``lines/item_id``) as Connec! ids."""

        def fold_one(local: Any) -> Any:
            if local is None or local == "":
                return local
            connec_id = self._connec_id(target, str(local))
            if connec_id is None:
                missing.append(f"{target} {local}")
                return local
            return connec_id

        return walk(payload, path.split("/"), fold_one)

    def _unfold_nested(self, data: dict[str, Any], path: str, target: str, missing: list[str]) -> Any:
        """Sub-record references (``lines/item_id``) as local ids."""

        def unfold_one(value: Any) -> Any:
            if value is None or value == "" or value == []:
                return None
            ours = self._claimed(target, value)
            if ours is not None:
                return ours
            connec_id = connec_id_of(value)
            local_id = self._local_id(target, connec_id) if connec_id else None
            if local_id is None:
                missing.append(f"{target} {connec_id}" if connec_id else f"{target} {value!r}")
                return value
            return local_id

        return walk(data, path.split("/"), unfold_one)

    # -- pull ------------------------------------------------------------------------------

    def apply(
        self, collection: str, entities: Iterable[dict[str, Any]], *, retry_pending: bool = True
    ) -> None:
        """Apply Connec! entities of ``collection`` to the host (one batch, one commit)."""
        mapping = self.by_collection.get(collection)
        if mapping is None:
            return
        items = [e for e in entities if isinstance(e, dict)]
        ids = [connec_id_of(e.get("id")) for e in items]
        maps = self.store.by_connec(self.preset, self.group_id, collection, [i for i in ids if i])
        self._prefetch(mapping, items)
        to_save: list[IdMap] = []
        linked = False
        now = utcnow()
        if items:
            self._count(collection, "pulled", len(items))
        try:
            for data, connec_id in zip(items, ids, strict=True):
                if connec_id is None:
                    self._count(collection, "skipped")
                    log.warning("Maestrano sync: a %s entity without a Connec! id was skipped", collection)
                    continue
                known = maps.get(connec_id)
                saved = self._apply_one(mapping, data, connec_id, known, now)
                if saved is None and known is not None and known.pending is not None:
                    saved = replace(known, pending=None, message=None)  # skipped: not waiting any more
                if saved is not None:
                    to_save.append(saved)
                    linked = linked or (saved.local_id is not None and saved.pending is None)
            mapping.commit()
        except BaseException:
            mapping.rollback()
            raise
        self._save(to_save)
        if linked and retry_pending:
            self.retry_pending()

    def _apply_one(
        self, mapping: Mapping, data: dict[str, Any], connec_id: str, idmap: IdMap | None, now: datetime
    ) -> IdMap | None:
        collection = mapping.collection
        base = idmap or self._new_map(collection)  # every outcome below sets connec_id
        if not base.to_external:
            self._count(collection, "skipped")
            return None
        local_id = base.local_id or external_id_of(data.get("id"), self.provider, self.realm)
        record = mapping.find(local_id) if local_id else None
        if record is not None and base.local_id is None and not self._in_group(mapping, record):
            record = None  # the entity claims our id of another company's record: not its own
        if record is None and (base.archived_at is not None or base.local_id is not None):
            return self._gone(mapping, base, connec_id, data, now)
        unfolded, missing = self.unfold(mapping, data)
        if missing:
            self._count(collection, "pending")
            log.info("Maestrano sync: %s %s waits for %s", collection, connec_id, ", ".join(missing))
            waiting = f"waiting for {', '.join(missing)}"
            return replace(base, connec_id=connec_id, pending=dict(data), message=_clip(waiting))
        if record is None and mapping.matching_fields and not mapping.is_archived(data):
            record = self._match(mapping, unfolded, connec_id)
        if record is None:
            if mapping.is_archived(data):
                self._count(collection, "skipped")
                return replace(base, connec_id=connec_id, pending=None, message=None)
            unfolded["id"] = connec_id  # our own copy (unfold made it): no second one
            record = mapping.create(unfolded, preset=self.preset, group_id=self.group_id)
            if record is None:  # the host does not want it (e.g. a company it no longer serves)
                self._count(collection, "skipped")
                return None
            self._count(collection, "created")
            return self._linked(mapping, base, record, connec_id, now)
        if mapping.is_archived(data) and base.archived_at is not None:
            self._count(collection, "unchanged")  # archived on both sides already
            return replace(base, connec_id=connec_id, pending=None)
        if mapping.is_archived(data) and not mapping.archived(record):
            mapping.archive(record)
            self._count(collection, "archived")
            return replace(self._linked(mapping, base, record, connec_id, now), archived_at=now)
        local_payload, _ = self.fold(mapping, mapping.to_connec(record))
        local_hash = payload_hash(local_payload)
        incoming = project(self.comparable(mapping, data), local_payload)
        if payload_hash(incoming) == local_hash:
            self._count(collection, "unchanged")  # an echo of what we hold: nothing to do
            return _changed(
                base, connec_id=connec_id, local_id=mapping.local_id(record), hash=local_hash, pending=None
            )
        both_changed = base.hash is not None and local_hash != base.hash
        if both_changed and self._resolve(mapping, data, record) == LOCAL_WINS:
            self.queue.append(Change(collection, mapping.local_id(record), mapping.to_connec(record)))
            return replace(base, connec_id=connec_id, local_id=mapping.local_id(record), pending=None)
        if mapping.is_archived(data):
            mapping.archive(record)
            self._count(collection, "archived")
            return replace(self._linked(mapping, base, record, connec_id, now), archived_at=now)
        mapping.update(record, {**unfolded, "id": connec_id})
        self._count(collection, "updated")
        return self._linked(mapping, base, record, connec_id, now)

    def _gone(
        self, mapping: Mapping, base: IdMap, connec_id: str, data: dict[str, Any], now: datetime
    ) -> IdMap:
        """A Connec! entity whose local record was deleted: never created again. A deletion
        the engine had not seen (made without the hook) is pushed as an archive."""
        self._count(mapping.collection, "skipped")
        if base.archived_at is None and base.local_id is not None and not mapping.is_archived(data):
            log.info(
                "Maestrano sync: %s %s was deleted locally; archiving it in Connec!",
                mapping.collection,
                base.local_id,
            )
            self.queue.append(Change(mapping.collection, base.local_id, {}, archived=True))
        archived_at = base.archived_at or (now if mapping.is_archived(data) else None)
        return replace(base, connec_id=connec_id, pending=None, archived_at=archived_at)

    def _in_group(self, mapping: Mapping, record: Any) -> bool:
        """Whether a local record belongs to this group (a mapping without
        :meth:`~flask_maestrano.sync.Mapping.scope` cannot tell: it is trusted)."""
        try:
            preset, group_id = mapping.scope(record)
        except NotImplementedError:
            return True
        return group_id == self.group_id and preset in (None, self.preset)

    def _match(self, mapping: Mapping, unfolded: dict[str, Any], connec_id: str) -> Any | None:
        """The host's twin of a new Connec! entity by ``matching_fields``, unless it is linked
        to another entity already."""
        record = mapping.match(unfolded, preset=self.preset, group_id=self.group_id)
        if record is None:
            return None
        local_id = mapping.local_id(record)
        known = self.store.by_local(self.preset, self.group_id, mapping.collection, [local_id]).get(local_id)
        if known is not None and known.connec_id not in (None, connec_id):
            return None
        self._count(mapping.collection, "matched")
        log.info("Maestrano sync: %s %s matched local %s", mapping.collection, connec_id, local_id)
        return record

    def _linked(self, mapping: Mapping, base: IdMap, record: Any, connec_id: str, now: datetime) -> IdMap:
        payload, _ = self.fold(mapping, mapping.to_connec(record))
        return _changed(
            base,
            connec_id=connec_id,
            local_id=mapping.local_id(record),
            hash=payload_hash(payload),
            last_pull_at=now,
            message=None,
            pending=None,
        )

    def _resolve(self, mapping: Mapping, data: dict[str, Any], record: Any) -> str:
        """Who wins a record changed on both sides; logged and counted."""
        if self.preemption is not None:
            policy, winner = "connec_preemption", CONNEC_WINS if self.preemption else LOCAL_WINS
        else:
            policy = mapping.conflict
            if policy in (CONNEC_WINS, LOCAL_WINS):
                winner = policy
            else:
                theirs, ours = parse_time(data.get("updated_at")), mapping.updated_at(record)
                ours = parse_time(ours)
                winner = LOCAL_WINS if theirs and ours and ours > theirs else CONNEC_WINS
        self._count(mapping.collection, "conflicts")
        self._count(mapping.collection, f"conflicts_{winner}")
        log.info(
            "Maestrano sync: %s %s changed on both sides; %s wins (policy %s, group %s)",
            mapping.collection,
            mapping.local_id(record),
            "Connec!" if winner == CONNEC_WINS else "the local record",
            policy,
            self.group_id,
        )
        return winner

    def retry_pending(self) -> None:
        """Apply the waiting Connec! records whose references have linked since."""
        for _ in range(len(self.mappings) + 1):
            waiting = self.store.pending(self.preset, self.group_id)
            if not waiting:
                return
            before = {(m.collection, m.connec_id) for m in waiting}
            for mapping in self.mappings:
                batch = [dict(m.pending) for m in waiting if m.collection == mapping.collection and m.pending]
                if batch:
                    self.apply(mapping.collection, batch, retry_pending=False)
            after = {(m.collection, m.connec_id) for m in self.store.pending(self.preset, self.group_id)}
            if after >= before:
                return

    def pull(self, *, since: datetime | None, only: Sequence[str] | None = None) -> list[str]:
        """Read each collection (``updated_at gt since`` when given) and apply it.

        A collection that fails is recorded and the others still run; returns the errors.
        """
        errors: list[str] = []
        query = f"updated_at gt '{iso_utc(since)}'" if since is not None else None
        for mapping in self.mappings:
            if only is not None and mapping.collection not in only:
                continue
            try:
                for page in self.client.pages(mapping.collection, filter=query, top=self.page_size):
                    self.apply(mapping.collection, page.entities, retry_pending=False)
                    if self.on_page is not None:
                        self.on_page(mapping.collection, page)
                    self.check()
            except Interrupted:
                raise
            except Exception as exc:
                log.exception("Maestrano sync: pulling %s of %s failed", mapping.collection, self.group_id)
                self._count(mapping.collection, "errors")
                errors.append(_clip(f"{mapping.collection}: {exc}"))
        self.retry_pending()
        return errors

    # -- push ------------------------------------------------------------------------------

    def push(self, record: Any, collection: str) -> None:
        """Queue ``record`` of ``collection`` for the next :meth:`flush`."""
        mapping = self.mapping(collection)
        self.queue.append(Change(collection, mapping.local_id(record), mapping.to_connec(record)))

    def sweep(self, *, since: datetime | None, only: Sequence[str] | None = None) -> list[str]:
        """Queue the local records each mapping reports changed after ``since``
        (:meth:`~flask_maestrano.sync.Mapping.changed_since`; all when ``None``): changes made
        without the hook. :meth:`flush` sends only those whose Connec! fields differ from what
        was last exchanged (the id map's hash). Returns the errors (a failing mapping is
        recorded; the others still run)."""
        errors: list[str] = []
        for mapping in self.mappings:
            if only is not None and mapping.collection not in only:
                continue
            try:
                for record in mapping.changed_since(since, preset=self.preset, group_id=self.group_id):
                    local_id = mapping.local_id(record)
                    if mapping.archived(record):
                        self.queue.append(Change(mapping.collection, local_id, {}, archived=True))
                    else:
                        self.queue.append(Change(mapping.collection, local_id, mapping.to_connec(record)))
                    self._count(mapping.collection, "swept")
            except Exception as exc:
                log.exception("Maestrano sync: sweeping %s of %s failed", mapping.collection, self.group_id)
                self._count(mapping.collection, "errors")
                errors.append(_clip(f"{mapping.collection}: {exc}"))
        return errors

    def archive(self, collection: str, local_id: str) -> None:
        """Queue the archive of a record deleted or archived locally (``local_id``: its id
        while it existed) for the next :meth:`flush`: Connec! gets ``status: ARCHIVED`` (it
        has no hard delete) and the id map records it, so no later pull creates it again."""
        self.mapping(collection)
        self.queue.append(Change(collection, str(local_id), {}, archived=True))

    def flush(self) -> list[str]:
        """Send the queue to Connec!; returns the errors (also stored on the id maps)."""
        latest: dict[tuple[str, str], Change] = {}
        for change in self.queue:
            latest[(change.collection, change.local_id)] = change
        self.queue = []
        if not latest:
            return []
        self._pushing = {}
        try:
            for collection in {c for c, _ in latest}:
                known = self.store.by_local(
                    self.preset, self.group_id, collection, [i for c, i in latest if c == collection]
                )
                self._pushing.update(((collection, local_id), m) for local_id, m in known.items())
            return self._flush(latest)
        finally:
            self._pushing = None

    def _flush(self, latest: dict[tuple[str, str], Change]) -> list[str]:
        order = {m.collection: n for n, m in enumerate(self.mappings)}
        remaining = sorted(latest.values(), key=lambda c: order.get(c.collection, len(order)))
        errors: list[str] = []
        attempts: dict[tuple[str, str], int] = {}
        while remaining:
            queued: set[tuple[str, str]] | None = None  # made when a reference is missing
            ready: list[tuple[Change, dict[str, Any]]] = []
            waiting: list[Change] = []
            for change in remaining:
                mapping = self.mapping(change.collection)
                if change.archived:
                    ready.append((change, {}))
                    continue
                if not mapping.references:  # nothing to fold
                    ready.append((change, change.payload))
                    continue
                folded, missing = self.fold(mapping, change.payload)
                if not missing:
                    ready.append((change, folded))
                    continue
                if queued is None:
                    queued = {(c.collection, c.local_id) for c in remaining}
                if any(self._queued_target(mapping, change.payload, queued)):
                    waiting.append(change)
                else:
                    errors.append(self._fail(change, f"references not in Connec! yet: {', '.join(missing)}"))
            if not ready:
                for change in waiting:
                    errors.append(self._fail(change, "references a record that could not be pushed"))
                break
            retry: list[Change] = []
            for start in range(0, len(ready), self.batch_size):
                self.check()
                chunk = ready[start : start + self.batch_size]
                again, chunk_errors = self._send(chunk)
                errors.extend(chunk_errors)
                for change in again:
                    key = (change.collection, change.local_id)
                    attempts[key] = attempts.get(key, 0) + 1
                    if attempts[key] > self.retries:
                        errors.append(self._fail(change, "Connec! kept failing; gave up after retries"))
                    else:
                        self._count(change.collection, "retries")
                        retry.append(change)
            if retry:
                self.sleep(self.backoff * 2 ** (max(attempts.values()) - 1))
            remaining = waiting + retry
        return errors

    def _push_map(self, change: Change) -> IdMap:
        """The id map of a record being pushed (read with the flush's others), or a new one."""
        key = (change.collection, change.local_id)
        found = self._pushing.get(key) if self._pushing is not None else None
        if found is None and self._pushing is None:
            found = self.store.by_local(self.preset, self.group_id, change.collection, [change.local_id]).get(
                change.local_id
            )
        return found or self._new_map(change.collection, local_id=change.local_id)

    def _queued_target(
        self, mapping: Mapping, payload: dict[str, Any], queued: set[tuple[str, str]]
    ) -> Iterator[bool]:
        for field_name, target in mapping.references.items():
            values = (
                found_at(payload, field_name.split("/")) if "/" in field_name else [payload.get(field_name)]
            )
            yield any(value is not None and (target, str(value)) in queued for value in values)

    def _fail(self, change: Change, message: str, *, answered: bool = False) -> str:
        """Record a push that did not go through on its id map; unless Connec! ``answered``
        it (a 4xx), the change is also kept in :attr:`unanswered` (to send again)."""
        if not answered:
            self.unanswered.add((change.collection, change.local_id))
        base = self._push_map(change)
        self._save([replace(base, message=_clip(message))])
        self._count(change.collection, "push_errors")
        log.warning("Maestrano sync: push of %s %s failed: %s", change.collection, change.local_id, message)
        return _clip(f"{change.collection} {change.local_id}: {message}")

    def _send(self, chunk: list[tuple[Change, dict[str, Any]]]) -> tuple[list[Change], list[str]]:
        """One ``/batch`` call (retried as a whole on 429/5xx/no answer); returns the changes
        whose own operation answered 429/5xx (to retry) and the errors."""
        plans: list[tuple[Change, IdMap, str, dict[str, Any]]] = []
        unchanged: dict[str, int] = {}
        for change, folded in chunk:
            collection = change.collection
            base = self._push_map(change)
            if not base.to_connec:
                self._count(collection, "skipped")
                continue
            if change.archived:
                if base.archived_at is not None:
                    self._count(collection, "push_unchanged")
                elif base.connec_id is None:  # never reached Connec!: only remembered here
                    self._save([replace(base, archived_at=utcnow(), message=None)])
                    self._count(collection, "archived_local")
                else:
                    plans.append((change, base, base.hash or "", {"status": "ARCHIVED"}))
                continue
            digest = payload_hash(folded)
            if base.connec_id and base.hash == digest:  # Connec! has it already
                unchanged[collection] = unchanged.get(collection, 0) + 1
                continue
            plans.append((change, base, digest, folded))
        for collection, n in unchanged.items():
            self._count(collection, "push_unchanged", n)
        if not plans:
            return [], []
        ops = []
        op, provider, realm = self.client.op, self.provider, self.realm
        for change, base, _, folded in plans:
            collection = change.collection
            ours = [{"id": change.local_id, "provider": provider, "realm": realm}]
            params = {collection: {**folded, "id": ours}}
            if base.connec_id:
                ops.append(op("put", f"{collection}/{base.connec_id}", params))
            else:
                matching = self.mapping(collection).matching_fields
                if matching:  # Connec! updates the record these fields match instead (200)
                    params[collection]["opts"] = {"matching_fields": list(matching)}
                ops.append(op("post", collection, params))
        try:
            results = self._batch(ops)  # retried as a whole already when no answer came
        except ApiError as exc:
            return [], [self._fail(change, f"the batch call failed: {exc}") for change, *_ in plans]
        again: list[Change] = []
        errors: list[str] = []
        now = utcnow()
        saved: list[IdMap] = []
        pushed: dict[tuple[str, str], int] = {}
        for (change, base, digest, _), result in zip(plans, results + [None] * len(plans), strict=False):
            status = result.get("status") if isinstance(result, dict) else None
            body = result.get("body") if isinstance(result, dict) else None
            if isinstance(status, int) and (status == 200 or status == 201):
                entity = body.get(change.collection) if isinstance(body, dict) else None
                connec_id = connec_id_of(entity.get("id")) if isinstance(entity, dict) else None
                saved.append(
                    _changed(
                        base,
                        connec_id=connec_id or base.connec_id,
                        hash=digest,
                        last_push_at=now,
                        message=None,
                        archived_at=now if change.archived else base.archived_at,
                    )
                )
                key = (change.collection, "archives_pushed" if change.archived else "pushed")
                pushed[key] = pushed.get(key, 0) + 1
            elif not isinstance(status, int) or retryable(status):
                again.append(change)
            else:
                errors.append(self._fail(change, _error_text(status, body), answered=True))
        for (collection, what), n in pushed.items():
            self._count(collection, what, n)
        self._save(saved)
        return again, errors

    def _batch(self, ops: list[dict[str, Any]]) -> list[dict[str, Any]]:
        attempt = 0
        while True:
            try:
                self.batch_calls += 1
                return self.client.batch(ops)
            except ApiError as exc:
                if not retryable(exc.http_status) or attempt >= self.retries:
                    raise
                attempt += 1
                log.warning("Maestrano sync: /batch failed (%s); retry %d", exc, attempt)
                self.sleep(self.backoff * 2 ** (attempt - 1))

    # -- a whole run -----------------------------------------------------------------------

    def synchronize(self, *, full: bool = False, only: Sequence[str] | None = None) -> SyncRun:
        """Pull (incrementally after the first successful run), sweep the local changes of the
        same window (:meth:`sweep`), then push the queue; recorded.

        The window starts at the last successful complete run's *start* minus ``overlap``,
        so a change made while that run was reading is read again (SYNC.md 7.1). Echoes of
        what was already exchanged are recognised by their hash and change nothing. Run it
        under the group's lock (:func:`flask_maestrano.syncing.run_sync` does).
        """
        if only is not None:
            unknown = [name for name in only if name not in self.by_collection]
            if unknown:
                raise KeyError(f"no mapping for {', '.join(unknown)}")
        history = self.store.runs(self.preset, self.group_id)
        for stale in history:
            if stale.status == RUNNING:  # we hold the lock: whoever wrote it is gone
                self.store.update_run(
                    replace(stale, status=ERROR, finished_at=utcnow(), message="abandoned (worker stopped)")
                )
        last_ok = next((r for r in history if r.status == SUCCESS and not r.partial), None)
        since = None if full or last_ok is None else last_ok.started_at - self.overlap
        started = SyncRun(
            self.preset, self.group_id, RUNNING, utcnow(), partial=only is not None, full=since is None
        )
        run = self.store.add_run(started)
        errors: list[str] = []
        try:
            errors += self.pull(since=since, only=only)
            errors += self.sweep(since=since, only=only)
            errors += self.flush()
        except Exception as exc:  # the store or the host's database failed
            log.exception("Maestrano sync: run of %s failed", self.group_id)
            errors.append(_clip(str(exc)))
        finished = replace(
            run,
            status=ERROR if errors else SUCCESS,
            finished_at=utcnow(),
            message=_clip("; ".join(errors)) if errors else None,
            counts={k: dict(v) for k, v in self.counts.items()},
        )
        self.store.update_run(finished)
        return finished
