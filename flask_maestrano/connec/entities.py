"""Connec! entities as the host application receives them (PLATFORM.md 6.2, 6.4).

A Connec! notification body, like a page of the Connec! API, maps collection names to lists
of entities; each entity carries the ``group_id`` of the company it belongs to. With external
ids on, an entity's ``id`` is a list such as
``[{"id": "<uuid>", "provider": "connec"}, {"id": "42", "provider": "myapp", "realm": "r1"}]``.

:func:`~flask_maestrano.entities.parse_entities` checks that shape and splits the body into one batch per
(collection, group); :func:`deliver_to` hands a batch to the host's
:meth:`~flask_maestrano.Maestrano.on_entities` callback, then sends
:data:`~flask_maestrano.signals.entities_received`. Both the notification webhook and the
initial import go through :func:`deliver_to`, so the host has one place to handle entities.

Entities are thin views over the parsed JSON (``data`` is the entity's own dict, not a copy):
the cost per entity stays a small fraction of parsing the body.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from typing import Any, NamedTuple, overload

from .. import signals
from ..callbacks import Callbacks
from ..presets import Preset

CONNEC_PROVIDER = "connec"
_new_entity = tuple.__new__


class Entity(NamedTuple):
    """One Connec! entity of a collection, for one group (company). Immutable.

    An ``Entity`` is a named tuple rather than a dataclass because a notification can carry
    tens of thousands of them and a tuple is the cheapest immutable record Python builds;
    use ``entity._replace(...)`` to derive a changed copy.

    >>> entity = Entity("people", "cld-1", "a34303d1", (), {"id": "a34303d1", "first_name": "John"})
    >>> entity.data["first_name"]
    'John'
    >>> entity.is_new
    True
    """

    #: the collection the entity came in, e.g. ``"people"``
    collection: str
    #: the uid of the group (company) it belongs to, e.g. ``"cld-1234"``
    group_id: str
    #: the Connec! id (with external ids: the entry whose provider is ``"connec"``);
    #: ``None`` when the entity has none
    id: str | None
    #: with external ids, every ``{"id", "provider", "realm"}`` entry of the entity's id;
    #: empty when the id is a plain string
    ids: tuple[Mapping[str, Any], ...]
    #: the entity exactly as Connec! sent it (not a copy: do not mutate it if you keep it)
    data: dict[str, Any]
    #: what the host's :meth:`~flask_maestrano.Maestrano.entity_lookup` returned for this
    #: entity (the host object it already knows), ``None`` when it is new or no lookup is set
    known: Any = None

    @property
    def is_new(self) -> bool:
        """Whether :meth:`~flask_maestrano.Maestrano.entity_lookup` found no host object
        (always ``True`` when no lookup is registered)."""
        return self.known is None

    def external_id(self, provider: str, realm: str | None = None) -> str | None:
        """The id this entity has at ``provider`` (and ``realm``), from the external ids.

        >>> e = Entity("people", "g", "u1", ({"id": "u1", "provider": "connec"},
        ...            {"id": "42", "provider": "myapp", "realm": "r"}), {})
        >>> e.external_id("myapp")
        '42'
        """
        for entry in self.ids:
            if entry.get("provider") == provider and (realm is None or entry.get("realm") == realm):
                value = entry.get("id")
                return None if value is None else str(value)
        return None


def _connec_id(raw: Any) -> tuple[str | None, tuple[Mapping[str, Any], ...]]:
    """The Connec! id and every external id of an entity's ``id``; :class:`ValueError` with
    a message that follows the entity's position (``".id[1] must be ..."``) when malformed."""
    if raw is None:
        return None, ()
    if isinstance(raw, str):
        return raw, ()
    if isinstance(raw, list):
        found: str | None = None
        for index, entry in enumerate(raw):
            if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
                raise ValueError(f".id[{index}] must be an object with a string 'id'")
            if found is None and entry.get("provider") == CONNEC_PROVIDER:
                found = entry["id"]
        return found, tuple(raw)
    raise ValueError(
        f".id must be a string or a list of {{id, provider, realm}} objects, not {type(raw).__name__}"
    )


def parse_entities(
    body: object, *, group_id: str | None = None, skip: Collection[str] = ()
) -> list[tuple[str, str, Entities]]:
    """Split a Connec! body into ``(collection, group_id, entities)`` batches.

    Batches come collection by collection, groups in the order they first appear. Raises
    :class:`ValueError` naming what is wrong when ``body`` is not an object of lists of
    objects or an entity has no ``group_id``. ``group_id`` is used for entities that carry
    none (an API page fetched for one group); keys in ``skip`` (such as ``"pagination"``)
    are ignored.

    >>> body = {"people": [{"id": "p1", "group_id": "cld-1"}, {"id": "p2", "group_id": "cld-2"}]}
    >>> [(c, g, [e.id for e in es]) for c, g, es in parse_entities(body)]
    [('people', 'cld-1', ['p1']), ('people', 'cld-2', ['p2'])]
    """
    if not isinstance(body, dict):
        raise ValueError(
            f"the body must be a JSON object mapping collection names to lists of entities, "
            f"not {type(body).__name__}"
        )
    batches: list[tuple[str, str, Entities]] = []
    for collection, items in body.items():
        if collection in skip:
            continue
        if not isinstance(items, list):
            raise ValueError(f"{collection!r} must be a list of entities, not {type(items).__name__}")
        by_group = _split(collection, items, group_id)
        batches.extend((collection, group, entities) for group, entities in by_group.items())
    return batches


class Entities(Sequence[Entity]):
    """The entities of one (collection, group) batch: a read-only sequence of
    :class:`Entity` built on access from the parsed dicts it keeps (not copies).

    A notification can carry tens of thousands of entities, most of which a host reads
    once or not at all; building an :class:`Entity` for each up front cost about as much
    as checking them. Each entity is checked when the body is parsed (an object, a
    ``group_id``, a well-formed id), so reading one never fails while its dict stays as
    parsed (a plain string id is read from it again). It behaves like the list
    it replaces for reading (``len``, indexing, slicing, iteration, ``==`` with a list);
    ``list(entities)`` gives a list to change. Indexing builds a new (equal) ``Entity``
    each time.

    >>> ((_c, _g, batch),) = parse_entities({"people": [{"id": "p1", "group_id": "cld-1"}]})
    >>> batch[0].id, len(batch), batch == [Entity("people", "cld-1", "p1", (), batch[0].data)]
    ('p1', 1, True)
    """

    __slots__ = ("_other_ids", "collection", "dicts", "group_id")

    def __init__(self, collection: str, group_id: str) -> None:
        #: the collection of every entity of the batch
        self.collection = collection
        #: the group (company) of every entity of the batch
        self.group_id = group_id
        #: each entity's dict as Connec! sent it, in order (not copies: do not mutate)
        self.dicts: list[dict[str, Any]] = []
        # (id, ids) by position, of the entities whose id is not a plain string (checked by
        # parse_entities); the others' id is their dict's "id", a string when checked
        self._other_ids: dict[int, tuple[str | None, tuple[Mapping[str, Any], ...]]] = {}

    def _entity(self, index: int) -> Entity:
        data = self.dicts[index]
        other = self._other_ids.get(index) if self._other_ids else None
        if other is None:
            return _new_entity(Entity, (self.collection, self.group_id, data["id"], (), data, None))
        return _new_entity(Entity, (self.collection, self.group_id, *other, data, None))

    def __len__(self) -> int:
        return len(self.dicts)

    @overload
    def __getitem__(self, index: int) -> Entity: ...

    @overload
    def __getitem__(self, index: slice) -> list[Entity]: ...

    def __getitem__(self, index: int | slice) -> Entity | list[Entity]:
        if isinstance(index, slice):
            return [self._entity(i) for i in range(*index.indices(len(self.dicts)))]
        if index < 0:
            index += len(self.dicts)
        if not 0 <= index < len(self.dicts):
            raise IndexError("entity index out of range")
        return self._entity(index)

    def __iter__(self) -> Iterator[Entity]:
        return map(self._entity, range(len(self.dicts)))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Entities | list | tuple):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # compared by content, like a list

    def __repr__(self) -> str:
        return f"<Entities {self.collection!r} of {self.group_id!r}: {len(self.dicts)}>"


def _split(collection: str, items: list[Any], group_id: str | None) -> dict[str, Entities]:
    """One collection's entities by group, each checked. The loop does the least per entity
    (no object built, one lookup of the group's ``append``; an id is kept apart only when it
    is not a plain string) and the position of a bad entity is found once something is
    wrong, never for a good one."""
    by_group: dict[str, Entities] = {}
    appends: dict[str, Callable[[dict[str, Any]], None]] = {}  # by group: its batch's dicts.append
    dict_type, str_type = dict, str
    for data in items:
        if type(data) is not dict_type:
            raise _shape_error(collection, items, group_id)
        group = data.get("group_id") or group_id
        if type(group) is not str_type:
            raise _shape_error(collection, items, group_id)
        append = appends.get(group)
        if append is None:
            if not group:
                raise _shape_error(collection, items, group_id)
            batch = by_group[group] = Entities(collection, group)
            append = appends[group] = batch.dicts.append
        if type(data.get("id")) is not str_type:
            batch = by_group[group]
            try:
                batch._other_ids[len(batch.dicts)] = _connec_id(data.get("id"))
            except ValueError as exc:
                raise ValueError(f"{collection}[{_position(items, data)}]{exc}") from None
        append(data)
    return by_group


def _position(items: list[Any], item: Any) -> int:
    return next(index for index, candidate in enumerate(items) if candidate is item)


def _shape_error(collection: str, items: list[Any], group_id: str | None) -> ValueError:
    """The error naming the first entity of ``items`` that is not an object with a group."""
    for index, data in enumerate(items):
        if type(data) is not dict:
            return ValueError(f"{collection}[{index}] must be an object, not {type(data).__name__}")
        group = data.get("group_id") or group_id
        if type(group) is not str or not group:
            return ValueError(f"{collection}[{index}] has no group_id")
    raise AssertionError("_shape_error called on valid entities")  # pragma: no cover


def deliver_to(
    callbacks: Callbacks,
    sender: Any,
    preset: Preset,
    group_id: str,
    collection: str,
    entities: Sequence[Entity],
    *,
    source: str,
) -> Sequence[Entity]:
    """Hand one batch to the host: look entities up, call ``on_entities``, send the signal.

    When the host registered :meth:`~flask_maestrano.Maestrano.entity_lookup`, each entity
    is given its :attr:`~flask_maestrano.entities.Entity.known` host object first. Then the host's
    :meth:`~flask_maestrano.Maestrano.on_entities` callback runs (if any), then
    :data:`~flask_maestrano.signals.entities_received` is sent by ``sender`` (the app).
    Anything they raise propagates: the caller answers the platform with an error so it
    delivers again. Returns the entities as delivered (with ``known`` filled in).
    :func:`flask_maestrano.entities.deliver` is this function for a Flask app.
    """
    lookup = callbacks.entity_lookup
    if lookup is not None:
        entities = [e._replace(known=lookup(preset, collection, e)) for e in entities]
    handler = callbacks.on_entities
    if handler is not None:
        handler(preset, group_id, collection, entities, source)
    signals.entities_received.send(
        sender, preset=preset, group_id=group_id, collection=collection, entities=entities, source=source
    )
    return entities
