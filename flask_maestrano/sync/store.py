"""What the engine remembers: id maps (one per linked record pair) and the run history.

:class:`SyncStore` is the protocol; :class:`flask_maestrano.contrib.sqlalchemy.SqlAlchemySyncStore`
keeps both in tables with unique constraints, so concurrent workers cannot link one Connec!
record twice. Plain Python: no Flask, no database.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

#: Run statuses (SYNC.md 1.4).
RUNNING, ENQUEUED, SUCCESS, ERROR, DISABLED = "RUNNING", "ENQUEUED", "SUCCESS", "ERROR", "DISABLED"
#: Runs kept per group.
RUNS_KEPT = 100


@dataclass(frozen=True)
class IdMap:
    """One Connec! record and the host record it is linked to.

    Unique per ``(preset, group_id, collection, connec_id)`` and per
    ``(preset, group_id, collection, local_id)``. A row with a ``connec_id``, no ``local_id``
    and ``pending`` data is a Connec! record waiting for a record it references.
    """

    preset: str
    group_id: str
    collection: str
    connec_id: str | None = None
    local_id: str | None = None
    #: last successful write to Connec! / last change applied from Connec!
    last_push_at: datetime | None = None
    last_pull_at: datetime | None = None
    #: :func:`~flask_maestrano.sync.payload_hash` of what both sides last agreed on
    hash: str | None = None
    #: the last error on this record (``None`` after a success)
    message: str | None = None
    #: ``False``: never send this record to Connec! / never apply Connec!'s changes to it
    to_connec: bool = True
    to_external: bool = True
    #: a Connec! entity waiting for an unresolved reference (applied once it links)
    pending: Mapping[str, Any] | None = field(default=None, hash=False)
    #: when the pair was archived or deleted (on either side): never created again by a pull
    archived_at: datetime | None = None


def id_map_from(values: dict[str, Any]) -> IdMap:
    """The :class:`IdMap` of ``values`` (every field, by name), without the frozen dataclass's
    ``__init__`` setting each field in turn: the hot paths (a page read, a push's results)
    build thousands. The result equals, hashes and prints as ``IdMap(**values)``."""
    made = object.__new__(IdMap)
    made.__dict__.update(values)
    return made


@dataclass(frozen=True)
class SyncRun:
    """One synchronization of a group (the newest ``RUNS_KEPT`` (100) are kept)."""

    preset: str
    group_id: str
    status: str
    started_at: datetime
    id: int | None = None
    finished_at: datetime | None = None
    #: the run read only some collections (never the base of an incremental window)
    partial: bool = False
    #: a full sync (no ``updated_at`` window)
    full: bool = False
    message: str | None = None
    #: per collection: ``{"pulled": n, "created": n, "updated": n, ...}``
    counts: Mapping[str, Mapping[str, int]] = field(default_factory=dict, hash=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (ISO-8601 times)."""
        return {
            "id": self.id,
            "preset": self.preset,
            "group_id": self.group_id,
            "status": self.status,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "partial": self.partial,
            "full": self.full,
            "message": self.message,
            "counts": {k: dict(v) for k, v in self.counts.items()},
        }


class SyncStore(Protocol):
    """Id maps and runs. Every method is one transaction."""

    def by_connec(
        self, preset: str, group_id: str, collection: str, connec_ids: Iterable[str]
    ) -> dict[str, IdMap]:
        """The id maps of these Connec! ids, by Connec! id."""
        ...

    def by_local(
        self, preset: str, group_id: str, collection: str, local_ids: Iterable[str]
    ) -> dict[str, IdMap]:
        """The id maps of these local ids, by local id."""
        ...

    def save(self, maps: Sequence[IdMap]) -> None:
        """Insert or update each map, matched by local id, else by Connec! id (one transaction)."""
        ...

    def pending(self, preset: str, group_id: str, limit: int = 1000) -> list[IdMap]:
        """Connec! records of the group waiting for a reference, oldest first."""
        ...

    def add_run(self, run: SyncRun) -> SyncRun:
        """Record a new run; returns it with its ``id``. Keeps the newest ``RUNS_KEPT`` (100)."""
        ...

    def update_run(self, run: SyncRun) -> None:
        """Save the run (matched by ``id``): status, start, end, message, counts."""
        ...

    def runs(self, preset: str, group_id: str, limit: int = RUNS_KEPT) -> list[SyncRun]:
        """The group's runs, newest first."""
        ...

    def is_enabled(self, preset: str, group_id: str) -> bool | None:
        """Whether sync is on for the group; ``None`` for a group never registered."""
        ...

    def set_enabled(self, preset: str, group_id: str, enabled: bool) -> None:
        """Register the group (if new) and switch its sync on or off."""
        ...

    def enabled_groups(self) -> list[tuple[str, str]]:
        """Every ``(preset, group_id)`` with sync on (``flask maestrano sync --all``, schedules)."""
        ...
