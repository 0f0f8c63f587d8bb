"""Server-side stores: set-if-absent, atomic pop, expiry, thread safety; Redis when available."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from flask_maestrano.errors import ConfigurationError
from flask_maestrano.store import MemoryStore, RedisStore, Store, entry_size, store_from_config


class Clock:
    """A controllable ``time.monotonic`` for expiry tests without sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_add_is_set_if_absent() -> None:
    store = MemoryStore()
    assert store.add("k", "first", 60) is True
    assert store.add("k", "second", 60) is False
    assert store.pop("k") == "first"


def test_pop_returns_once() -> None:
    store = MemoryStore()
    store.add("k", "v", 60)
    assert store.pop("k") == "v"
    assert store.pop("k") is None
    assert store.pop("never") is None


def test_entries_expire(clock: Clock) -> None:
    store = MemoryStore(clock=clock)
    store.add("k", "v", 10)
    clock.now += 9.9
    assert store.add("k", "other", 10) is False
    clock.now += 0.2
    assert store.pop("k") is None
    assert store.add("k", "again", 10) is True
    clock.now += 11
    assert len(store) == 0


def test_an_expired_entry_can_be_added_again(clock: Clock) -> None:
    store = MemoryStore(clock=clock)
    store.add("k", "old", 1)
    clock.now += 2
    assert store.add("k", "new", 1) is True
    assert store.pop("k") == "new"


def test_a_flood_of_pending_requests_cannot_evict_them_nor_crowd_out_the_replay_cache() -> None:
    """Anyone can open the init URL, and each visit stores a pending request: pending requests
    have their own byte budget; a full one refuses new ones and drops none (the policy changed:
    it used to drop the oldest, which let a flood evict a real user's pending login)."""
    from flask_maestrano.errors import StoreFull
    from flask_maestrano.sso.views import ASSERTION_PREFIX, RELAY_PREFIX, REQUEST_PREFIX

    store = MemoryStore(max_bytes=20_000, max_pending_bytes=10_000)
    assert store.add(ASSERTION_PREFIX + "_used", "1", 600)
    stored = 0
    with pytest.raises(StoreFull, match="pending sign-in requests"):
        for n in range(500):
            store.add(REQUEST_PREFIX + f"id{n}", f"t{n}", 600)
            store.add(RELAY_PREFIX + f"t{n}", "{}", 600)
            stored = n
    assert 10 < stored < 40 and store.pending_bytes <= 10_000
    assert store.add(ASSERTION_PREFIX + "_used", "1", 600) is False  # still a replay
    assert store.add(ASSERTION_PREFIX + "_fresh", "1", 600) is True  # replays have room
    assert store.pop(RELAY_PREFIX + "t0") == "{}"  # the oldest request survived the flood
    with pytest.raises(StoreFull, match="MemoryStore is full"):
        for n in range(100):
            store.add(ASSERTION_PREFIX + f"_{n}", "1", 600)  # never dropped: refused instead
    assert store.add(ASSERTION_PREFIX + "_used", "1", 600) is False
    assert store.bytes_used <= 20_000


def test_a_flood_of_small_pending_entries_cannot_take_every_entry_either() -> None:
    """The issue's reproduction: 220 anonymous inits with a cap of 400 entries."""
    from flask_maestrano.errors import StoreFull
    from flask_maestrano.sso.views import ASSERTION_PREFIX, RELAY_PREFIX

    store = MemoryStore(max_entries=400)  # pending: a quarter of the entries, as of the bytes
    with pytest.raises(StoreFull):
        for n in range(1000):
            store.add(RELAY_PREFIX + f"t{n}", "{}", 600)
    assert len(store) == 100 and store.pop(RELAY_PREFIX + "t0") == "{}"
    for n in range(299):
        assert store.add(ASSERTION_PREFIX + f"_{n}", "1", 600)


def test_byte_accounting_follows_adds_pops_and_expiry(clock: Clock) -> None:
    store = MemoryStore(clock=clock)
    store.add("pending:sso:req:a", "x" * 1000, 10)
    store.add("other", "y" * 100, 100)
    assert store.pending_bytes == entry_size("pending:sso:req:a", "x" * 1000)
    assert store.bytes_used == store.pending_bytes + entry_size("other", "y" * 100)
    assert store.pop("pending:sso:req:a") is not None and store.pending_bytes == 0
    store.add("pending:sso:req:b", "é" * 10, 10)  # UTF-8 bytes, not characters
    assert store.pending_bytes == entry_size("pending:sso:req:b", "é" * 10) == 17 + 20 + 200
    clock.now += 50
    assert len(store) == 1 and store.pending_bytes == 0


def test_pending_budget_cannot_exceed_the_whole() -> None:
    with pytest.raises(ConfigurationError, match="max_pending_bytes"):
        MemoryStore(max_bytes=10, max_pending_bytes=20)


def test_full_store_refuses_rather_than_forgets(clock: Clock) -> None:
    store = MemoryStore(max_entries=2, clock=clock)
    store.add("a", "1", 5)
    store.add("b", "2", 50)
    with pytest.raises(RuntimeError, match="MemoryStore is full"):
        store.add("c", "3", 5)
    clock.now += 10  # "a" expires and is swept to make room
    assert store.add("c", "3", 5) is True
    assert store.pop("b") == "2"


def test_concurrent_adds_of_one_key_have_one_winner() -> None:
    store = MemoryStore()
    barrier = threading.Barrier(16)
    results: list[bool] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        barrier.wait()
        for round_ in range(200):
            won = store.add(f"key-{round_}", str(n), 60)
            with lock:
                results.append(won)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert results.count(True) == 200
    assert len(store) == 200


def test_concurrent_pops_deliver_each_value_once() -> None:
    store = MemoryStore()
    for n in range(500):
        store.add(f"k{n}", str(n), 60)
    popped: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        for n in range(500):
            value = store.pop(f"k{n}")
            if value is not None:
                with lock:
                    popped.append(value)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(popped, key=int) == [str(n) for n in range(500)]


def test_store_from_config() -> None:
    assert isinstance(store_from_config(None), MemoryStore)
    custom = MemoryStore()
    assert store_from_config(custom) is custom
    assert isinstance(store_from_config("redis://127.0.0.1:1/0"), RedisStore)
    with pytest.raises(ConfigurationError, match="MAESTRANO_STORE"):
        store_from_config("sqlite:///x")
    with pytest.raises(ConfigurationError, match="int has no add/pop methods"):
        store_from_config(3)


def test_any_object_with_add_and_pop_is_a_store() -> None:
    class Mine:
        def add(self, key: str, value: str, ttl: float) -> bool:
            return True

        def pop(self, key: str) -> str | None:
            return None

    assert isinstance(Mine(), Store)
    assert isinstance(MemoryStore(), Store)


# -- Redis -------------------------------------------------------------------------------------


@pytest.fixture
def redis_url() -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.02)
        else:
            pytest.fail("redis-server did not start")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.redis
def test_redis_store_add_pop_and_expiry(redis_url: str) -> None:
    store = store_from_config(redis_url)
    assert isinstance(store, RedisStore)
    assert store.add("k", "v", 60) is True
    assert store.add("k", "w", 60) is False
    assert store.pop("k") == "v"
    assert store.pop("k") is None
    assert store.add("short", "v", 0.05) is True
    client: Any = store.client
    assert 0 < client.pttl("maestrano:short") <= 50
    deadline = time.monotonic() + 5
    while client.exists("maestrano:short") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert store.pop("short") is None
    assert store.add("short", "again", 60) is True


@pytest.mark.redis
def test_redis_store_is_shared_between_instances(redis_url: str) -> None:
    first, second = RedisStore.from_url(redis_url), RedisStore.from_url(redis_url)
    assert first.add("shared", "1", 60) is True
    assert second.add("shared", "2", 60) is False
    assert second.pop("shared") == "1"
    assert first.pop("shared") is None
