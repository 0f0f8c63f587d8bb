"""How :class:`~flask_maestrano.store.RedisStore` talks to a real redis-server: its hot commands
(``GET``, ``GETDEL``, the settlement's ``EVALSHA``) on connections of the client's own pool,
recovering from lost connections and a lost script cache as the client's commands do, never
reading a stale reply, with or without the hiredis parser."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import redis

from flask_maestrano.errors import StoreUnavailable
from flask_maestrano.store import RedisStore, Settled, Settlement
from tests.support.redis import RedisServer, redis_server

pytestmark = pytest.mark.redis


@pytest.fixture
def server() -> Iterator[RedisServer]:
    with redis_server() as url:
        yield url


def _login(store: Any, name: str) -> Settlement:
    """A pending request ``req:<name>`` and the settlement that takes it."""
    record = {"id": "_" + name, "binding": "digest", "secure": False, "next": None}
    assert store.add("req:" + name, json.dumps(record), 60)
    return Settlement(
        replay="a:" + name,
        replay_ttl=60.0,
        now=time.time(),
        issued_at=time.time(),
        pending="req:" + name,
        expect=(("id", "_" + name),),
        finish_prefix="fin:",
        finish_token="F" + name,
        finish_value="{}",
        carry=("binding",),
    )


def test_a_dropped_connection_and_a_lost_script_cache_are_recovered_without_a_failure(
    server: RedisServer,
) -> None:
    store = RedisStore.from_url(server)
    assert store.settle(_login(store, "one")) == Settled("settled", "Fone")
    assert store.pop("fin:Fone") == '{"binding":"digest"}'
    with redis.Redis.from_url(server) as admin:
        # what a restart without persistence looks like to the store: its connection is gone
        # and so is the server's script cache
        admin.script_flush()
        assert admin.client_kill_filter(_type="normal", skipme=True) >= 1
    settlement = _login(store, "two")
    assert store.settle(settlement) == Settled("settled", "Ftwo")
    assert store.settle(settlement) == Settled("again", "Ftwo")  # EVALSHA once the script is back
    assert store.get("fin:Ftwo") == '{"binding":"digest"}'
    assert store.pop("fin:Ftwo") == '{"binding":"digest"}' and store.pop("fin:Ftwo") is None


def test_a_reply_that_timed_out_is_never_read_by_a_later_command(server: RedisServer) -> None:
    store = RedisStore.from_url(server, timeout=0.3)
    assert store.add("a", "A", 60) and store.add("b", "B", 60)
    server.process.send_signal(signal.SIGSTOP)
    try:
        with pytest.raises(StoreUnavailable, match="TimeoutError"):
            store.get("a")
    finally:
        server.process.send_signal(signal.SIGCONT)
    assert store.get("b") == "B"  # not the late answer about "a"
    assert store.pop("a") == "A" and store.pop("b") == "B"


def test_threads_sharing_the_store_each_get_their_own_replies(server: RedisServer) -> None:
    store = RedisStore.from_url(server)

    def worker(index: int) -> list[str]:
        wrong = []
        for round_ in range(40):
            key = f"t{index}:{round_}"
            store.add(key, key, 60)
            if store.get(key) != key or store.pop(key) != key or store.pop(key) is not None:
                wrong.append(key)
        return wrong

    with ThreadPoolExecutor(6) as threads:
        assert [wrong for wrong in threads.map(worker, range(6), timeout=60) if wrong] == []


class _Wrapped:
    """A client that is not a :class:`redis.Redis` (a proxy, a cluster client): the store
    runs its commands through the client itself."""

    def __init__(self, inner: redis.Redis) -> None:
        self.inner = inner
        self.commands: list[str] = []

    def execute_command(self, *args: Any) -> Any:
        self.commands.append(str(args[0]))
        return self.inner.execute_command(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_a_client_without_a_plain_connection_pool_runs_the_commands_itself(server: RedisServer) -> None:
    with redis.Redis.from_url(server) as inner:
        client = _Wrapped(inner)
        store = RedisStore(client)
        assert store.settle(_login(store, "one")) == Settled("settled", "Fone")
        assert store.get("fin:Fone") == store.pop("fin:Fone") == '{"binding":"digest"}'
        # a fresh server has no script cached: EVALSHA is refused, then EVAL runs it
        assert client.commands == ["EVALSHA", "EVAL", "GET", "GETDEL"]


def test_the_test_environment_has_the_hiredis_parser() -> None:
    # the redis extra installs it (setup.cfg); redis-py picks it up by itself
    from redis.utils import HIREDIS_AVAILABLE

    assert HIREDIS_AVAILABLE


def test_the_store_works_without_hiredis(server: RedisServer) -> None:
    script = textwrap.dedent(
        f"""
        import json, sys, time
        sys.modules["hiredis"] = None  # as if not installed: redis-py's pure-Python parser
        from redis.utils import HIREDIS_AVAILABLE
        from flask_maestrano.store import RedisStore, Settlement
        assert not HIREDIS_AVAILABLE
        store = RedisStore.from_url({str(server)!r})
        assert store.add_many([("req:x", json.dumps({{"id": "_x"}}), 60), ("k", "v", 60)]) == [True, True]
        settlement = Settlement(replay="a:x", replay_ttl=60.0, now=time.time(), pending="req:x",
                                expect=(("id", "_x"),), finish_prefix="fin:", finish_token="T")
        print(store.settle(settlement).outcome, store.get("k"), store.pop("fin:T"), store.pop("fin:T"))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["settled", "v", "{}", "None"]


def test_a_forked_process_never_uses_its_parents_connection(server: RedisServer) -> None:
    store = RedisStore.from_url(server)
    assert store.add("parent", "P", 60) and store.add("child", "C", 60)
    assert store.get("parent") == "P"  # the parent now keeps a connection
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads about (3.12+)
        pid = os.fork()
    if pid == 0:  # the child: the same store object, both using it at once
        try:
            os.close(read_end)
            same = all(store.get("child") == "C" for _ in range(300))
            os.write(write_end, b"ok" if same else b"crossed")
        finally:
            os._exit(0)
    os.close(write_end)
    parent_same = all(store.get("parent") == "P" for _ in range(300))
    with os.fdopen(read_end, "rb") as answer:
        child = answer.read()  # until the child exits
    os.waitpid(pid, 0)
    assert parent_same and child == b"ok"


def test_a_pool_with_a_connection_limit_keeps_no_connection_out_of_it(server: RedisServer) -> None:
    store = RedisStore.from_url(server + "?max_connections=1")
    for index in range(3):  # commands and pipelines take turns with the one connection
        assert store.add_many([(f"k{index}", "v", 60)]) == [True]
        assert store.get(f"k{index}") == "v" and store.pop(f"k{index}") == "v"


def test_the_store_of_a_url_keeps_one_connection_between_its_hot_commands(server: RedisServer) -> None:
    """redis-py 8 gives every pool a limit (100) when none is asked for: the store of a URL
    without ``max_connections`` still keeps its connection (and one with it keeps none)."""
    # checkouts: the pending request's SET (through the client), then EVALSHA refused (a fresh
    # server), EVAL, GET, GETDEL, GETDEL; kept: only the first of the store's own commands
    assert _checkouts(RedisStore.from_url(server), "one") == 2
    assert _checkouts(RedisStore.from_url(server + "?max_connections=50"), "two") == 5  # EVALSHA now cached


def _checkouts(store: RedisStore, name: str) -> int:
    """How many connections a login's commands take from the pool."""
    pool = store.client.connection_pool
    taken: list[Any] = []
    checkout = pool.get_connection
    pool.get_connection = lambda *a, **kw: taken.append(1) or checkout(*a, **kw)  # type: ignore[method-assign]
    assert store.settle(_login(store, name)) == Settled("settled", "F" + name)
    assert store.get("fin:F" + name) == store.pop("fin:F" + name) == '{"binding":"digest"}'
    assert store.pop("fin:F" + name) is None
    return len(taken)
