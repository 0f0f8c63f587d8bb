"""Entity parsing and delivery, as used by notifications and the initial import."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from flask_maestrano import Maestrano, Preset, signals
from flask_maestrano.entities import Entities, Entity, deliver, parse_entities


def test_parse_groups_entities_by_collection_then_group_in_order_of_appearance() -> None:
    body = {
        "people": [
            {"id": "p1", "group_id": "g2"},
            {"id": "p2", "group_id": "g1"},
            {"id": "p3", "group_id": "g2"},
        ],
        "items": [{"id": "i1", "group_id": "g1"}],
    }
    batches = parse_entities(body)
    assert [(c, g, [e.id for e in es]) for c, g, es in batches] == [
        ("people", "g2", ["p1", "p3"]),
        ("people", "g1", ["p2"]),
        ("items", "g1", ["i1"]),
    ]


def test_parsed_entity_keeps_the_raw_data_without_copying() -> None:
    raw = {"id": "p1", "group_id": "g1", "address": {"city": "Paris"}}
    ((_c, _g, (entity,)),) = parse_entities({"people": [raw]})
    assert entity.data is raw
    assert entity == Entity("people", "g1", "p1", (), raw, None)
    assert entity.is_new and entity.known is None


def test_external_ids_give_the_connec_id_and_every_provider_id() -> None:
    ids = [{"id": "7", "provider": "xero", "realm": "r1"}, {"id": "c-1", "provider": "connec"}]
    ((_c, _g, (entity,)),) = parse_entities({"people": [{"id": ids, "group_id": "g1"}]})
    assert entity.id == "c-1"
    assert entity.ids == tuple(ids)
    assert entity.external_id("xero") == "7"
    assert entity.external_id("xero", "r1") == "7"
    assert entity.external_id("xero", "r2") is None
    assert entity.external_id("quickbooks") is None


def test_external_ids_without_a_connec_entry_have_no_connec_id() -> None:
    body = {"people": [{"id": [{"id": "7", "provider": "xero"}], "group_id": "g1"}]}
    assert parse_entities(body)[0][2][0].id is None


def test_entity_without_id_is_accepted_with_id_none() -> None:
    assert parse_entities({"people": [{"group_id": "g1"}]})[0][2][0].id is None


def test_default_group_and_skipped_keys_serve_an_api_page() -> None:
    page = {"people": [{"id": "p1"}, {"id": "p2", "group_id": "g9"}], "pagination": {"total": 2}}
    batches = parse_entities(page, group_id="g1", skip={"pagination"})
    assert [(c, g, [e.id for e in es]) for c, g, es in batches] == [
        ("people", "g1", ["p1"]),
        ("people", "g9", ["p2"]),
    ]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "must be a JSON object"),
        (None, "must be a JSON object"),
        ({"people": None}, "'people' must be a list of entities, not NoneType"),
        ({"people": [[]]}, "people[0] must be an object, not list"),
        ({"people": [{"id": "p1"}]}, "people[0] has no group_id"),
        ({"people": [{"id": {"x": 1}, "group_id": "g"}]}, "people[0].id must be a string or a list"),
        ({"people": [{"id": ["c-1"], "group_id": "g"}]}, "people[0].id[0] must be an object"),
    ],
)
def test_wrong_shape_raises_value_error_naming_the_problem(body: Any, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_entities(body)
    assert message in str(info.value)


def test_deliver_looks_up_then_calls_the_handler_then_sends_the_signal(
    make_app: Callable[..., Flask],
) -> None:
    maestrano = Maestrano()
    order: list[str] = []
    known = {"p1": "host-contact-1"}

    @maestrano.entity_lookup
    def lookup(preset: Preset, collection: str, entity: Entity) -> Any:
        order.append(f"lookup {entity.id}")
        return known.get(entity.id or "")

    @maestrano.on_entities
    def handle(preset: Preset, group_id: str, collection: str, entities: list[Entity], source: str) -> None:
        order.append(f"handler {source} {[e.known for e in entities]}")

    app = make_app(maestrano=maestrano)
    preset = app.extensions["maestrano"].preset()
    ((collection, group, entities),) = parse_entities(
        {"people": [{"id": "p1", "group_id": "g1"}, {"id": "p2", "group_id": "g1"}]}
    )

    def receiver(sender: Any, **kwargs: Any) -> None:
        order.append(f"signal {[e.is_new for e in kwargs['entities']]}")

    with signals.entities_received.connected_to(receiver, sender=app):
        delivered = deliver(app, preset, group, collection, entities, source="import")
    assert order == [
        "lookup p1",
        "lookup p2",
        "handler import ['host-contact-1', None]",
        "signal [False, True]",
    ]
    assert [e.known for e in delivered] == ["host-contact-1", None]


def test_deliver_without_callbacks_only_sends_the_signal(make_app: Callable[..., Flask]) -> None:
    app = make_app()
    preset = app.extensions["maestrano"].preset()
    got: list[dict[str, Any]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        got.append(kwargs)

    entities = parse_entities({"people": [{"id": "p1", "group_id": "g1"}]})[0][2]
    with signals.entities_received.connected_to(receiver, sender=app):
        assert deliver(app, preset, "g1", "people", entities, source="import") is entities
    assert got == [
        {"preset": preset, "group_id": "g1", "collection": "people", "entities": entities, "source": "import"}
    ]


def test_a_batch_reads_like_a_list_and_keeps_the_parsed_dicts() -> None:
    raw = [
        {"id": "p1", "group_id": "g1"},
        {"id": [{"id": "p2", "provider": "connec"}, {"id": "7", "provider": "app"}], "group_id": "g1"},
        {"group_id": "g1"},
    ]
    ((_, _, batch),) = parse_entities({"people": raw})
    assert isinstance(batch, Entities)
    assert (batch.collection, batch.group_id, len(batch), bool(batch)) == ("people", "g1", 3, True)
    assert batch.dicts == raw and all(a is b for a, b in zip(batch.dicts, raw, strict=True))  # no copies
    assert [e.id for e in batch] == ["p1", "p2", None]
    assert batch[1].external_id("app") == "7" and batch[1].ids == tuple(raw[1]["id"])
    assert batch[-1].id is None and batch[0].data is raw[0]
    assert [e.id for e in batch[1:]] == ["p2", None]
    assert batch == list(batch) and list(batch) == batch and batch != batch[:2]
    assert batch[0] == Entity("people", "g1", "p1", (), raw[0])
    with pytest.raises(IndexError):
        batch[3]
    with pytest.raises(IndexError):
        batch[-4]
    with pytest.raises(TypeError):
        hash(batch)
    assert not hasattr(batch, "append")  # read-only: list(batch) gives a list to change


def test_a_bad_entity_after_many_good_ones_is_named_by_its_position() -> None:
    good = [{"id": f"p{i}", "group_id": f"g{i % 3}"} for i in range(50)]
    for bad, message in [
        ({"id": "x", "group_id": ""}, "people[50] has no group_id"),
        ({"id": "x", "group_id": 7}, "people[50] has no group_id"),
        ("x", "people[50] must be an object, not str"),
        ({"id": 7, "group_id": "g1"}, "people[50].id must be a string or a list"),
    ]:
        with pytest.raises(ValueError) as info:
            parse_entities({"people": [*good, bad, *good]})
        assert message in str(info.value)


class _Tag(str):
    """A string that is not exactly ``str``: JSON never gives one, the check refuses it."""


class _Record(dict[str, Any]):
    """An object that is not exactly ``dict``."""


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"id": "x", "group_id": _Tag("g1")}, "people[50] has no group_id"),  # equal to a group seen
        ({"id": "x", "group_id": ["g1"]}, "people[50] has no group_id"),  # unhashable
        ({"id": "x", "group_id": {"g1": 1}}, "people[50] has no group_id"),
        ({"id": "x", "group_id": True}, "people[50] has no group_id"),  # True == 1, hashes alike
        ({"id": "x", "group_id": None}, "people[50] has no group_id"),
        ({"id": "x"}, "people[50] has no group_id"),
        (_Record(id="x", group_id="g1"), "people[50] must be an object, not _Record"),
        (None, "people[50] must be an object, not NoneType"),
        ({"id": [{"id": "c-1", "provider": "connec"}, "7"], "group_id": "g1"}, "people[50].id[1] must be"),
        ({"id": [{"id": 7, "provider": "app"}], "group_id": "g2"}, "people[50].id[0] must be an object"),
        ({"id": _Tag("x"), "group_id": "g1"}, None),  # a str subclass id: accepted, as before
    ],
)
def test_every_check_still_refuses_a_bad_entity_among_good_ones_of_the_same_groups(
    bad: Any, message: str | None
) -> None:
    good = [{"id": f"p{i}", "group_id": f"g{i % 3}"} for i in range(50)]
    good[7]["id"] = [{"id": "c-7", "provider": "connec"}]  # an external-id entity before the bad one
    body = {"people": [*good, bad, *good]}
    if message is None:
        assert parse_entities(body)[1][2][17].id == "x"
        return
    with pytest.raises(ValueError) as info:
        parse_entities(body)
    assert str(info.value).startswith(message)


def test_a_falsy_group_id_takes_the_default_group_and_an_empty_default_is_refused() -> None:
    page = {"people": [{"id": "p1", "group_id": ""}, {"id": "p2", "group_id": None}, {"id": "p3"}]}
    ((_, group, batch),) = parse_entities(page, group_id="g1")
    assert group == "g1" and [e.id for e in batch] == ["p1", "p2", "p3"]
    with pytest.raises(ValueError, match=r"people\[0\] has no group_id"):
        parse_entities(page, group_id="")


def test_plain_and_external_ids_mixed_across_interleaved_groups_keep_each_entitys_own_id() -> None:
    items: list[dict[str, Any]] = []
    for index in range(40):
        raw_id: Any = f"p{index}"
        if index % 5 == 0:
            raw_id = [{"id": str(index), "provider": "app"}, {"id": f"p{index}", "provider": "connec"}]
        elif index % 7 == 0:
            raw_id = None
        items.append({"id": raw_id, "group_id": f"g{index % 3}", "n": index})
    for _collection, group, batch in parse_entities({"people": items}):
        for entity in batch:
            index = entity.data["n"]
            assert entity.group_id == group == f"g{index % 3}"
            expected = None if index % 7 == 0 and index % 5 else f"p{index}"
            assert entity.id == expected
            assert entity.external_id("app") == (str(index) if index % 5 == 0 else None)
            assert entity.ids == (tuple(items[index]["id"]) if index % 5 == 0 else ())


class _CountingList(list[Any]):
    """A collection's list that counts how often it is walked."""

    walks = 0

    def __iter__(self) -> Any:
        type(self).walks += 1
        return super().__iter__()


def test_external_ids_are_checked_in_one_pass_over_the_collection() -> None:
    # the position of an entity was looked up for every external id, a walk of the list each:
    # quadratic (a notification of 10,000 such entities took seconds). Only a bad one is looked up.
    items = _CountingList(
        {"id": [{"id": f"c{i}", "provider": "connec"}, {"id": str(i), "provider": "app"}], "group_id": "g1"}
        for i in range(200)
    )
    _CountingList.walks = 0
    ((_, _, batch),) = parse_entities({"people": items})
    assert _CountingList.walks == 1
    assert [e.id for e in batch][-1] == "c199" and batch[5].external_id("app") == "5"
    items.append({"id": [{"id": 7}], "group_id": "g1"})
    with pytest.raises(ValueError, match=r"people\[200\]\.id\[0\] must be an object"):
        parse_entities({"people": items})
