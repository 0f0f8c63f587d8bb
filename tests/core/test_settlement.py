"""The settlement of a sign-in (flask_maestrano.store.Settlement): the same outcomes from the
in-process store, from a real redis-server (one Lua script) and, step by step, from a plain
add/pop store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from flask_maestrano.sso.binding import BrowserBinding, PendingRequests
from flask_maestrano.store import MemoryStore, RedisStore, Settled, Settlement, read, settle
from tests.support.redis import redis_server


class PlainStore:
    """Only the two methods of :class:`~flask_maestrano.store.Store`."""

    def __init__(self) -> None:
        self.inner = MemoryStore()

    def add(self, key: str, value: str, ttl: float) -> bool:
        return self.inner.add(key, value, ttl)

    def pop(self, key: str) -> str | None:
        return self.inner.pop(key)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis), "plain"])
def store(request: Any) -> Iterator[Any]:
    if request.param == "redis":
        with redis_server() as url:
            yield RedisStore.from_url(url)
    else:
        yield MemoryStore() if request.param == "memory" else PlainStore()


RECORD = {"id": "_req1", "preset": "p", "binding": "digest", "secure": False, "next": "/n", "alias": "_req1"}


def _settlement(token: str, **changes: Any) -> Settlement:
    fields: dict[str, Any] = {
        "replay": "a:_assertion1",
        "replay_ttl": 600.0,
        "now": 1000.0,
        "issued_at": 999.0,
        "skew": 30.0,
        "pending": "req:tok",
        "expect": (("id", "_req1"), ("preset", "p")),
        "finish_prefix": "fin:",
        "finish_token": token,
        "finish_value": json.dumps({"record": {"name_id": "usr-1"}}),
        "carry": ("binding", "secure", "next"),
        "release": (("slot:{binding}:0", ":tok"), ("alias:{alias}", "tok")),
    }
    fields.update(changes)
    return Settlement(**fields)


def _get(store: Any, key: str) -> str | None:
    inner = store.inner if isinstance(store, PlainStore) else store
    return inner.get(key)


def test_settles_once_carries_the_record_and_releases_its_keys(store: Any) -> None:
    store.add("req:tok", json.dumps(RECORD), 600)
    store.add("slot:digest:0", "123:tok", 600)
    store.add("alias:_req1", "tok", 600)
    store.add("slot:digest:1", "456:other", 600)  # another request of the browser: kept
    assert settle(store, _settlement("F1")) == Settled("settled", "F1")
    finish = json.loads(_get(store, "fin:F1") or "{}")
    assert finish == {"record": {"name_id": "usr-1"}, "binding": "digest", "secure": False, "next": "/n"}
    assert _get(store, "a:_assertion1") == "F1"
    assert _get(store, "slot:digest:0") is None and _get(store, "alias:_req1") is None
    assert _get(store, "slot:digest:1") == "456:other"
    assert settle(store, _settlement("F2")).outcome in ("again", "replay")  # never settled twice
    assert _get(store, "fin:F2") is None


def test_a_mismatch_or_a_missing_request_changes_nothing(store: Any) -> None:
    store.add("req:tok", json.dumps(RECORD), 600)
    wrong = _settlement("F1", expect=(("id", "_other"),))
    assert settle(store, wrong) == Settled("mismatch", "id")
    assert settle(store, _settlement("F1", pending="req:none")) == Settled("gone")
    assert _get(store, "a:_assertion1") is None and _get(store, "req:tok") is not None
    assert settle(store, _settlement("F1")) == Settled("settled", "F1")


def test_a_retry_gets_the_same_finish_token_while_it_waits(store: Any) -> None:
    if isinstance(store, PlainStore):
        pytest.skip("a plain store cannot recognise a retry")
    store.add("req:tok", json.dumps(RECORD), 600)
    assert settle(store, _settlement("F1")) == Settled("settled", "F1")
    assert settle(store, _settlement("F9")) == Settled("again", "F1")  # the answer was lost
    store.pop("fin:F1")  # the browser finished
    assert settle(store, _settlement("F9")) == Settled("replay")


def test_an_assertion_older_than_the_epoch_is_stale(store: Any) -> None:
    if isinstance(store, PlainStore):
        pytest.skip("a plain store keeps no epoch")
    idp_initiated = {"pending": None, "finish_prefix": None, "expect": (), "release": ()}
    assert settle(store, _settlement("1", **idp_initiated)).outcome == "settled"  # epoch: 1000
    old = _settlement("1", replay="a:_old", issued_at=960.0, now=2000.0, **idp_initiated)
    assert settle(store, old) == Settled("stale")
    recent = _settlement("1", replay="a:_recent", issued_at=975.0, now=2000.0, **idp_initiated)
    assert settle(store, recent).outcome == "settled"


@pytest.mark.parametrize(
    ("record", "finish_value", "after"),
    [
        ({**RECORD, "expires": 1795951831.2929733, "next": None}, json.dumps({"record": {}}), ""),
        (RECORD, "{}", "\n"),  # text after the object: the record is encoded again
        ({}, "{}", " "),  # nothing to carry, nothing to release: both entries still well-formed
    ],
)
def test_the_settled_request_keeps_its_stored_fields_exactly(
    store: Any, record: dict[str, Any], finish_value: str, after: str
) -> None:
    if isinstance(store, PlainStore):
        pytest.skip("a plain store keeps no settled request")
    store.add("req:tok", json.dumps(record) + after, 600)
    settlement = _settlement("F1", expect=(), finish_value=finish_value)
    assert settle(store, settlement) == Settled("settled", "F1")
    # the full precision of a float, a null: the stored text gains the field, nothing else changes
    assert json.loads(_get(store, "req:tok") or "{}") == {**record, "settled": "F1"}
    carried = {name: record[name] for name in ("binding", "secure", "next") if name in record}
    assert json.loads(_get(store, "fin:F1") or "{}") == {**json.loads(finish_value), **carried}
    assert settle(store, settlement) == Settled("again", "F1")


def test_a_request_names_its_browser_slot_and_its_settlement_frees_only_that_one(store: Any) -> None:
    pending = PendingRequests(store, "t")
    browser = BrowserBinding.new(secure=False)
    first, second = pending.put(browser, {"id": "_1"}, 60), pending.put(browser, {"id": "_2"}, 60)
    records = [read(store, pending.key_prefix + token) for token in (first, second)]
    assert [json.loads(raw or "{}")["slot"] for raw in records] == [0, 1]  # two tabs, two slots
    slots = [f"pending:t:slot:{browser.digest}:{index}" for index in (0, 1)]
    for token, held in ((second, [True, False]), (first, [False, False])):
        settlement = _settlement(
            "F" + token, replay="a:" + token, pending=pending.key_prefix + token, expect=(), carry=()
        )
        assert settle(store, replace(settlement, release=pending.release(token))).outcome == "settled"
        assert [_get(store, slot) is not None for slot in slots] == held
