"""How a host's records map to Connec! entities: :class:`Mapping`, declared once per collection.

A mapping speaks the host's language: :meth:`Mapping.to_connec` returns the Connec! fields
of a record with its references to other records as *local* ids, and
:meth:`Mapping.create`/:meth:`Mapping.update` receive Connec! fields whose references were
turned into local ids. The engine folds and unfolds references through the id maps, so a
mapping never sees a Connec! id of another record.

Plain Python: no Flask, no database.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from collections.abc import Mapping as MappingABC
from datetime import datetime, timezone
from typing import Any, ClassVar

#: Conflict policies (a record changed on both sides since the last exchange).
CONNEC_WINS, LOCAL_WINS, MOST_RECENT = "connec", "local", "recent"
POLICIES = (CONNEC_WINS, LOCAL_WINS, MOST_RECENT)


class Mapping:
    """One Connec! collection and the host records it shares. Subclass and declare.

    >>> class Contacts(Mapping):
    ...     collection = "people"
    ...     fields = ("first_name", "last_name", "organization_id")
    ...     references = {"organization_id": "organizations"}
    ...     def to_connec(self, record):
    ...         return {"first_name": record.first, "last_name": record.last,
    ...                 "organization_id": record.company_id}
    ...     # local_id, find, create, update (and optionally archive, updated_at, scope)

    ``fields`` are the top-level Connec! fields this mapping exchanges: only they are
    compared to tell a real change from an echo. ``references`` maps a field holding another
    record's id to that record's collection; a path with ``/`` reaches into sub-records, lists
    included (``"lines/item_id": "items"``: every invoice line's item). ``matching_fields``
    (Connec! field paths, dotted for nested objects) find the twin of a record that is not
    linked yet instead of creating a duplicate: Connec! matches on them when a new local
    record is pushed, and :meth:`match` finds a local record for a new Connec! entity.
    ``conflict`` is the policy when a record changed
    on both sides: ``"connec"``, ``"local"`` or ``"recent"`` (the default: the most recent
    ``updated_at`` wins, Connec! on a tie or when a side has no time).
    """

    #: the Connec! collection, e.g. ``"people"``
    collection: ClassVar[str] = ""
    #: the Connec! fields exchanged (top level)
    fields: ClassVar[tuple[str, ...]] = ()
    #: field -> collection of the record it references
    references: ClassVar[MappingABC[str, str]] = {}
    #: ``"connec"``, ``"local"`` or ``"recent"``
    conflict: ClassVar[str] = MOST_RECENT
    #: Connec! field paths that identify a record not linked yet (e.g. ``("email.address",)``)
    matching_fields: ClassVar[tuple[str, ...]] = ()

    # -- record <-> entity -------------------------------------------------------------

    def to_connec(self, record: Any) -> dict[str, Any]:
        """The Connec! fields of ``record``; references as local ids (or ``None``)."""
        raise NotImplementedError

    def local_id(self, record: Any) -> str:
        """The record's id in the host, as a string (after it was saved)."""
        raise NotImplementedError

    def find(self, local_id: str) -> Any | None:
        """The record with this local id, or ``None``."""
        raise NotImplementedError

    def create(self, data: dict[str, Any], *, preset: str, group_id: str) -> Any | None:
        """A new record of ``group_id`` from Connec! ``data`` (references as local ids,
        ``data["id"]`` the Connec! id); it must have its local id when this returns (flush,
        do not commit). ``None`` skips the entity (nothing is linked)."""
        raise NotImplementedError

    def update(self, record: Any, data: dict[str, Any]) -> None:
        """Apply Connec! ``data`` (references as local ids, ``data["id"]`` the Connec! id) to
        ``record`` (do not commit)."""
        raise NotImplementedError

    def archive(self, record: Any) -> None:
        """The entity was archived or deleted in Connec! (default: nothing)."""

    def archived(self, record: Any) -> bool:
        """Whether ``record`` is archived locally (default ``False``: :meth:`archive` is
        called again each time an archived entity is read)."""
        return False

    def commit(self) -> None:
        """Make the records created and updated by one batch durable (default: nothing)."""

    def rollback(self) -> None:
        """Forget the records of a batch that failed (default: nothing)."""

    def updated_at(self, record: Any) -> datetime | None:
        """When ``record`` last changed locally, for the ``"recent"`` policy (default: unknown)."""
        return None

    def scope(self, record: Any) -> tuple[str | None, str]:
        """``(preset or None for the default, group_id)`` the record belongs to (for push)."""
        raise NotImplementedError

    def match(self, data: dict[str, Any], *, preset: str, group_id: str) -> Any | None:
        """The local record of ``group_id`` that ``data`` (a new Connec! entity, references as
        local ids) is the twin of, by :attr:`matching_fields` (default: none); the engine
        links it instead of creating a duplicate, unless it is linked to another entity."""
        return None

    def changed_since(self, since: datetime | None, *, preset: str, group_id: str) -> Iterable[Any]:
        """The records of ``group_id`` changed locally after ``since`` (all of them when
        ``None``): a run pushes those whose Connec! fields differ from what was last exchanged,
        so changes made without the hook reach Connec! (default: none)."""
        return ()

    def is_archived(self, data: MappingABC[str, Any]) -> bool:
        """Whether a Connec! entity is archived (default: ``status == "ARCHIVED"``)."""
        return data.get("status") == "ARCHIVED"


def dependency_order(mappings: Sequence[Mapping]) -> list[Mapping]:
    """Mappings with the collections they reference first (a stable topological order).

    >>> class A(Mapping): collection = "organizations"
    >>> class B(Mapping):
    ...     collection = "invoices"
    ...     references = {"organization_id": "organizations"}
    >>> [m.collection for m in dependency_order([B(), A()])]
    ['organizations', 'invoices']
    """
    by_name: dict[str, Mapping] = {}
    for mapping in mappings:
        if not mapping.collection or "/" in mapping.collection:
            raise ValueError(f"{type(mapping).__name__}.collection must be a Connec! collection name")
        if mapping.collection in by_name:
            raise ValueError(f"two mappings for the collection {mapping.collection!r}")
        if mapping.conflict not in POLICIES:
            raise ValueError(
                f"{type(mapping).__name__}.conflict must be one of {', '.join(POLICIES)}, "
                f"got {mapping.conflict!r}"
            )
        by_name[mapping.collection] = mapping
    ordered: list[Mapping] = []
    visiting: set[str] = set()

    def visit(mapping: Mapping) -> None:
        if mapping in ordered:
            return
        if mapping.collection in visiting:
            return  # a cycle: keep the declared order for the rest of it
        visiting.add(mapping.collection)
        for target in mapping.references.values():
            if target in by_name and target != mapping.collection:
                visit(by_name[target])
        ordered.append(mapping)

    for mapping in mappings:
        visit(mapping)
    return ordered


# -- ids, hashes, projections --------------------------------------------------------------


def walk(value: Any, path: Sequence[str], fn: Callable[[Any], Any]) -> Any:
    """A copy of ``value`` with ``fn`` applied at ``path`` (keys; lists are walked through).

    >>> walk({"lines": [{"item_id": 1}, {"item_id": 2}]}, ["lines", "item_id"], str)
    {'lines': [{'item_id': '1'}, {'item_id': '2'}]}
    """
    if isinstance(value, list):
        return [walk(item, path, fn) for item in value]
    if not isinstance(value, MappingABC) or not path or path[0] not in value:
        return value
    copy = dict(value)
    head = path[0]
    copy[head] = fn(value[head]) if len(path) == 1 else walk(value[head], path[1:], fn)
    return copy


def found_at(value: Any, path: Sequence[str]) -> Iterator[Any]:
    """Every value at ``path`` in ``value`` (lists walked through)."""
    if isinstance(value, list):
        for item in value:
            yield from found_at(item, path)
    elif isinstance(value, MappingABC) and path and path[0] in value:
        if len(path) == 1:
            yield value[path[0]]
        else:
            yield from found_at(value[path[0]], path[1:])


def connec_id_of(value: Any) -> str | None:
    """The Connec! id in a plain id or a ``CONNEC-EXTERNAL-IDS`` list of ``{id, provider, realm}``."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, list):
        for entry in value:
            if isinstance(entry, MappingABC) and entry.get("provider") == "connec":
                found = entry.get("id")
                return found if isinstance(found, str) and found else None
    return None


def external_id_of(value: Any, provider: str, realm: str) -> str | None:
    """Our own id (``provider``/``realm``) in a ``CONNEC-EXTERNAL-IDS`` list, or ``None``."""
    if isinstance(value, list):
        for entry in value:
            if (
                isinstance(entry, MappingABC)
                and entry.get("provider") == provider
                and entry.get("realm") == realm
                and entry.get("id") is not None
            ):
                return str(entry["id"])
    return None


def project(value: Any, shape: Any) -> Any:
    """``value`` reduced to the keys ``shape`` has (recursively in objects; lists whole).

    Compares what Connec! sent with what the host would send, ignoring fields the host
    does not share:

    >>> project({"email": {"address": "a@b", "note": "x"}, "x": 1}, {"email": {"address": "c"}})
    {'email': {'address': 'a@b'}}
    """
    if isinstance(shape, MappingABC) and isinstance(value, MappingABC):
        return {key: project(value.get(key), sub) for key, sub in shape.items()}
    return value


_PLAIN = (str, int, bool, type(None))


def _canonical(value: Any) -> Any:
    kind = type(value)
    if kind in _PLAIN:  # the common case first (exact types: a str or int subclass goes below)
        return value
    if kind is dict:
        return {
            k if type(k) is str else str(k): v if type(v) in _PLAIN else _canonical(v)
            for k, v in value.items()
            if v is not None
        }
    if isinstance(value, float) and value.is_integer():
        return int(value)  # 150.0 and 150 are one amount
    if isinstance(value, MappingABC):
        return {str(k): _canonical(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return value


#: one encoder for every hash (``json.dumps`` with options builds a new one per call)
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str)


def _encoder() -> Callable[[Any], str]:
    """``_ENCODER.encode``, or the C encoder it runs made once (``JSONEncoder.encode`` makes
    one per call, about half the cost of a small payload's hash): the same text either way.
    The circular-reference check is left out: ``_canonical`` builds a fresh tree (and
    recurses on a cycle before encoding)."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - Python without the C accelerator
        return _ENCODER.encode
    encode = make(None, str, json.encoder.encode_basestring_ascii, None, ":", ",", True, False, True)

    def run(value: Any) -> str:
        return "".join(encode(value, 0))

    return run


_encode = _encoder()


def payload_hash(payload: MappingABC[str, Any]) -> str:
    """A stable hash of Connec! fields (``None`` fields and key order do not count).

    >>> payload_hash({"a": 1, "b": None}) == payload_hash({"a": 1.0})
    True
    """
    return hashlib.sha256(_encode(_canonical(payload)).encode()).hexdigest()[:32]


def parse_time(value: Any) -> datetime | None:
    """An aware UTC datetime from an ISO-8601 string or a datetime (naive = UTC); else ``None``."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str) and value:
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)
