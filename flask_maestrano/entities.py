"""Connec! entities as the host application receives them (PLATFORM.md 6.2, 6.4).

A Connec! notification body, like a page of the Connec! API, maps collection names to lists
of entities; each entity carries the ``group_id`` of the company it belongs to. With external
ids on, an entity's ``id`` is a list such as
``[{"id": "<uuid>", "provider": "connec"}, {"id": "42", "provider": "myapp", "realm": "r1"}]``.

:func:`parse_entities` checks that shape and splits the body into one batch per
(collection, group); :func:`deliver` hands a batch to the host's
:meth:`~flask_maestrano.Maestrano.on_entities` callback, then sends
:data:`~flask_maestrano.signals.entities_received`. Both the notification webhook and the
initial import go through :func:`deliver`, so the host has one place to handle entities.

Entities are thin views over the parsed JSON (``data`` is the entity's own dict, not a copy):
the cost per entity stays a small fraction of parsing the body.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, NamedTuple

from flask import Flask

from . import signals
from .extension import get_state
from .presets import Preset

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


def _connec_id(raw: Any, where: str) -> tuple[str | None, tuple[Mapping[str, Any], ...]]:
    if raw is None:
        return None, ()
    if isinstance(raw, str):
        return raw, ()
    if isinstance(raw, list):
        found: str | None = None
        for index, entry in enumerate(raw):
            if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
                raise ValueError(f"{where}.id[{index}] must be an object with a string 'id'")
            if found is None and entry.get("provider") == CONNEC_PROVIDER:
                found = entry["id"]
        return found, tuple(raw)
    raise ValueError(
        f"{where}.id must be a string or a list of {{id, provider, realm}} objects, not {type(raw).__name__}"
    )


def parse_entities(
    body: object, *, group_id: str | None = None, skip: Collection[str] = ()
) -> list[tuple[str, str, list[Entity]]]:
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
    batches: list[tuple[str, str, list[Entity]]] = []
    for collection, items in body.items():
        if collection in skip:
            continue
        if not isinstance(items, list):
            raise ValueError(f"{collection!r} must be a list of entities, not {type(items).__name__}")
        by_group: dict[str, list[Entity]] = {}
        for index, data in enumerate(items):
            if type(data) is not dict:
                raise ValueError(f"{collection}[{index}] must be an object, not {type(data).__name__}")
            group = data.get("group_id") or group_id
            if type(group) is not str or not group:
                raise ValueError(f"{collection}[{index}] has no group_id")
            raw_id = data.get("id")
            # the common case (plain string id) builds the tuple directly: no call per entity
            if type(raw_id) is str:
                entity = _new_entity(Entity, (collection, group, raw_id, (), data, None))
            else:
                entity_id, ids = _connec_id(raw_id, f"{collection}[{index}]")
                entity = _new_entity(Entity, (collection, group, entity_id, ids, data, None))
            batch = by_group.get(group)
            if batch is None:
                by_group[group] = [entity]
            else:
                batch.append(entity)
        batches.extend((collection, group, entities) for group, entities in by_group.items())
    return batches


def deliver(
    app: Flask,
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
    :data:`~flask_maestrano.signals.entities_received` is sent. Anything they raise
    propagates: the caller answers the platform with an error so it delivers again.
    Returns the entities as delivered (with ``known`` filled in).

    >>> deliver(app, preset, "cld-1", "people", entities, source="import")  # doctest: +SKIP
    """
    if source == "notification":
        from .syncing import apply_notification

        # mapped collections are applied by the sync engine first (flask_maestrano.syncing)
        apply_notification(app, preset, group_id, collection, [e.data for e in entities])
    callbacks = get_state(app).extension.callbacks
    lookup = callbacks.get("entity_lookup")
    if lookup is not None:
        entities = [e._replace(known=lookup(preset, collection, e)) for e in entities]
    handler = callbacks.get("on_entities")
    if handler is not None:
        handler(preset, group_id, collection, entities, source)
    signals.entities_received.send(
        app, preset=preset, group_id=group_id, collection=collection, entities=entities, source=source
    )
    return entities
