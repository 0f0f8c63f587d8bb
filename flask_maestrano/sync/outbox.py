"""The transactional outbox: local changes committed with the host's own transaction.

:func:`~flask_maestrano.contrib.sqlalchemy.sync_on_commit` writes one outbox row per captured
record (the latest capture wins) through the host's session connection, so the row commits
or rolls back with the change itself. A push removes a row only once Connec! answered its
operation (a success, or a 4xx error kept on the id map); no answer, a 429 or a 5xx leaves
it, and the next run, ``flask maestrano jobs resume`` or queued push job sends it. Rows hold
no payload: a drain reads the record as it is then (:meth:`Mapping.find
<flask_maestrano.sync.Mapping.find>`), so two changes before a push send the latest once.
Plain Python: no Flask, no database.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from .engine import Change
from .mapping import Mapping


@dataclass(frozen=True)
class OutboxEntry:
    """One committed local change waiting for Connec!'s answer (rows of a record: the newest wins)."""

    id: int
    preset: str
    group_id: str
    collection: str
    local_id: str
    #: the record was deleted or archived locally (Connec! gets ``status: ARCHIVED``)
    archived: bool
    created_at: datetime


@runtime_checkable
class OutboxStore(Protocol):
    """A sync store that keeps the outbox
    (:class:`~flask_maestrano.contrib.sqlalchemy.SqlAlchemySyncStore` does)."""

    def outbox(self, preset: str, group_id: str, *, after: int = 0, limit: int = 1000) -> list[OutboxEntry]:
        """The group's outbox rows whose id is above ``after``, oldest first (at most ``limit``)."""
        ...

    def outbox_groups(self) -> list[tuple[str, str]]:
        """Every ``(preset, group_id)`` with outbox rows."""
        ...

    def outbox_done(self, preset: str, group_id: str, done: Sequence[tuple[str, str, int]]) -> None:
        """Remove, per ``(collection, local_id, up_to_id)``, the record's rows up to that id
        (a newer capture committed meanwhile stays)."""
        ...


def changes_of(
    mappings: Sequence[Mapping], entries: Sequence[OutboxEntry]
) -> tuple[list[Change], dict[tuple[str, str], int]]:
    """The changes to push for outbox rows (one per record, as the record is now: a record
    gone since is archived) and, per record, the newest row id they cover. Rows of a
    collection no longer mapped are covered without a change."""
    newest: dict[tuple[str, str], OutboxEntry] = {}
    for entry in entries:
        key = (entry.collection, entry.local_id)
        if key not in newest or entry.id > newest[key].id:
            newest[key] = entry
    by_collection = {m.collection: m for m in mappings}
    changes: list[Change] = []
    for (collection, local_id), entry in newest.items():
        mapping = by_collection.get(collection)
        if mapping is None:
            continue
        record = None if entry.archived else mapping.find(local_id)
        if record is None:
            changes.append(Change(collection, local_id, {}, archived=True))
        else:
            changes.append(Change(collection, local_id, mapping.to_connec(record)))
    return changes, {key: entry.id for key, entry in newest.items()}
