"""Server-side state shared by the workers of one deployment.

Single sign-on keeps three kinds of short-lived entries here: the pending AuthnRequests under
one-time tokens, each bound to the browser that started it (:mod:`flask_maestrano.sso.binding`),
the verified logins waiting for their finish step, and the replay cache of assertion IDs (kept
until the assertion expires). The minimal :class:`Store` is two atomic methods; the stores
the extension ships are each an :class:`AtomicStore`, which also read without removing, add a batch
in one round trip and :meth:`~AtomicStore.settle` a sign-in: take its pending request, record
the assertion in the replay cache and keep the verified login in ONE atomic step, only once
the response has been validated. :class:`MemoryStore` serves one process; :class:`RedisStore`
serves every worker that shares the Redis server.

Choose with ``MAESTRANO_STORE``: ``None`` (in-process), a ``redis://`` URL, or any object
with ``add`` and ``pop`` (:func:`settle` emulates the atomic step on such a store, without
its guarantees against a failure half-way).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, Protocol, cast, runtime_checkable
from urllib.parse import parse_qs, urlsplit

from .errors import ConfigurationError, StoreFull, StoreUnavailable


@runtime_checkable
class Store(Protocol):
    """The two atomic operations the extension needs."""

    def add(self, key: str, value: str, ttl: float) -> bool:
        """Set ``key`` to ``value`` for ``ttl`` seconds unless it exists. True if it was set."""
        ...

    def pop(self, key: str) -> str | None:
        """Return and delete ``key`` in one step; ``None`` if absent or expired."""
        ...


#: What :meth:`AtomicStore.settle` did (the first item of :class:`Settled`): ``"settled"``
#: (done now), ``"again"`` (an earlier settlement of this same assertion and request already
#: did it and its finish entry still waits: answer as the first time), ``"replay"`` (the
#: assertion is in the replay cache), ``"gone"`` (no such pending request: used or expired),
#: ``"mismatch"`` (a field of the pending request is not what :attr:`Settlement.expect` says)
#: or ``"stale"`` (the assertion predates the store's epoch).
Outcome = Literal["settled", "again", "replay", "gone", "mismatch", "stale"]


_OUTCOMES = frozenset(("settled", "again", "replay", "gone", "mismatch", "stale"))


class Settled(NamedTuple):
    """The answer of :meth:`AtomicStore.settle`."""

    outcome: Outcome
    #: the finish token for ``settled`` and ``again``; the differing field for ``mismatch``
    detail: str = ""


@dataclass(frozen=True)
class Settlement:
    """The last step of a sign-in, once its response is valid: one atomic store operation.

    Checked in this order, and nothing is written unless every check passes:

    1. an ``issued_at`` older than the store's epoch minus ``skew`` is ``"stale"``. The epoch
       is a marker (:data:`EPOCH_KEY`) set to ``now`` when the store is found without it, so
       a store that lost its replay cache (a Redis restarted without persistence, a new
       process) refuses the assertions it can no longer recognise as used;
    2. the ``pending`` request (a JSON object) must exist (``"gone"``; ``"replay"`` when the
       assertion is already in the replay cache) and hold each field of ``expect``
       (``"mismatch"``);
    3. a pending request already settled by this same assertion whose finish entry still
       waits is ``"again"`` with the same finish token (a retry of a POST whose answer was
       lost), any other settled one ``"replay"``; an assertion in the replay cache ``"replay"``.

    Then, at once: ``replay`` holds ``finish_token`` for ``replay_ttl``; the finish entry
    ``finish_prefix + finish_token`` holds ``finish_value`` (a JSON object) with the pending
    request's ``carry`` fields added, for ``finish_ttl``; the pending request is kept for
    ``finish_ttl`` marked ``settled`` (for step 3); and each ``release`` key, where
    ``{field}`` stands for that field of the pending request, is deleted when its value ends
    with the given suffix (a browser's slot, an alias).
    """

    #: the replay-cache key of the assertion, and how long it is kept (seconds)
    replay: str
    replay_ttl: float
    #: seconds since the epoch (the app's clock), and the assertion's IssueInstant
    now: float
    issued_at: float | None = None
    #: seconds an assertion may predate the store's epoch (the IdP's clock running behind)
    skew: float = 0.0
    #: the pending request's key (``None``: an IdP-initiated login, no pending request)
    pending: str | None = None
    #: ``(field, value)`` the pending request must hold (its request ID, its preset)
    expect: tuple[tuple[str, str], ...] = ()
    #: where the finish entry goes (``None``: the login happens right away, nothing to keep)
    finish_prefix: str | None = None
    finish_token: str = "1"
    finish_value: str = "{}"
    finish_ttl: float = 60.0
    #: fields of the pending request copied into the finish entry
    carry: tuple[str, ...] = ()
    #: ``(key template, suffix)``: deleted when their value ends with ``suffix``
    release: tuple[tuple[str, str], ...] = ()


@runtime_checkable
class AtomicStore(Store, Protocol):
    """A :class:`Store` that can also read, batch and settle; :class:`MemoryStore` and
    :class:`RedisStore` are ones. Each method is one atomic step (one round trip on Redis)."""

    def get(self, key: str) -> str | None:
        """Read ``key`` without removing it; ``None`` if absent or expired."""
        ...

    def add_many(self, entries: Sequence[tuple[str, str, float]]) -> list[bool]:
        """:meth:`Store.add` each ``(key, value, ttl)``; whether each was set, in order."""
        ...

    def settle(self, settlement: Settlement) -> Settled:
        """Do ``settlement`` atomically (see :class:`Settlement`)."""
        ...


#: The key of the store's epoch marker (seconds since the epoch, as text); never expires.
EPOCH_KEY = "store:epoch"
_FIELD = re.compile(r"\{(\w+)\}")


def settle(store: Store, settlement: Settlement) -> Settled:
    """:meth:`AtomicStore.settle` on any store: atomic on an :class:`AtomicStore`; on a plain
    :class:`Store` (``add``/``pop`` only) done step by step (no epoch, and a failure half-way
    can leave the pending request spent)."""
    method = getattr(store, "settle", None)
    if callable(method):
        result: Settled = method(settlement)
        return result
    record: dict[str, Any] | None = None
    raw: str | None = None
    if settlement.pending is not None:
        raw = store.pop(settlement.pending)
        record = json.loads(raw) if raw is not None else None
        if raw is None or record is None:
            return Settled("gone")
        refusal: Settled | None = Settled("replay") if "settled" in record else None
        for field_name, value in settlement.expect:
            if refusal is None and str(record.get(field_name)) != value:
                refusal = Settled("mismatch", field_name)
        if refusal is not None:
            store.add(settlement.pending, raw, settlement.finish_ttl)  # put back, still usable
            return refusal
    if not store.add(settlement.replay, settlement.finish_token, settlement.replay_ttl):
        if settlement.pending is not None and raw is not None:
            store.add(settlement.pending, raw, settlement.finish_ttl)
        return Settled("replay")
    return _write(settlement, record, store.add, store.pop)


def _finish_body(settlement: Settlement, record: dict[str, Any] | None) -> str:
    body = json.loads(settlement.finish_value)
    for name in settlement.carry:
        if record is not None and name in record:
            body[name] = record[name]
    return json.dumps(body, separators=(",", ":"))


def _release_keys(settlement: Settlement, record: dict[str, Any]) -> list[tuple[str, str]]:
    keys = []
    for template, suffix in settlement.release:
        names = _FIELD.findall(template)
        if all(record.get(name) is not None for name in names):
            keys.append((_FIELD.sub(lambda m: str(record[m.group(1)]), template), suffix))
    return keys


def _write(
    settlement: Settlement,
    record: dict[str, Any] | None,
    add: Callable[[str, str, float], bool],
    pop: Callable[[str], str | None],
) -> Settled:
    """The writes of a settlement whose checks passed (``add``/``pop`` of the store)."""
    if settlement.finish_prefix is not None:
        finish = settlement.finish_prefix + settlement.finish_token
        add(finish, _finish_body(settlement, record), settlement.finish_ttl)
    if settlement.pending is not None and record is not None:
        pop(settlement.pending)
        settled = json.dumps({**record, "settled": settlement.finish_token}, separators=(",", ":"))
        # only what a retry of the same POST reads: a full in-process budget just loses that
        with contextlib.suppress(StoreFull):
            add(settlement.pending, settled, settlement.finish_ttl)
        for key, suffix in _release_keys(settlement, record):
            held = pop(key)
            if held is not None and not held.endswith(suffix):
                add(key, held, settlement.finish_ttl)  # another request's: give it back
    return Settled("settled", settlement.finish_token)


def read(store: Store, key: str) -> str | None:
    """``store.get(key)``; a store without ``get`` is read by taking and putting back."""
    getter = getattr(store, "get", None)
    if callable(getter):
        value: str | None = getter(key)
        return value
    value = store.pop(key)
    if value is not None:
        store.add(key, value, 60.0)
    return value


def _is_stale(settlement: Settlement, epoch: float) -> bool:
    issued = settlement.issued_at
    return issued is not None and issued < epoch - settlement.skew


#: Key prefixes of pending sign-in requests, which anyone can create by opening an init URL.
#: A :class:`MemoryStore` keeps them within their own byte budget, so a flood of them can
#: neither crowd out the replay cache nor evict a pending request that is already stored.
#: the prefix of every pending sign-in key (:func:`flask_maestrano.sso.binding.pending_prefix`)
PENDING = "pending:"
PENDING_PREFIXES = (PENDING,)
#: The former name of :data:`PENDING_PREFIXES` (a full store no longer drops them).
EVICTABLE_PREFIXES = PENDING_PREFIXES
#: What :class:`MemoryStore` counts for an entry besides its key and value (the dict slot,
#: the tuple, the float and the two string headers), in bytes.
ENTRY_OVERHEAD = 200
_SWEEP_INTERVAL = 1.0  # a full store sweeps expired entries at most once a second


def entry_size(key: str, value: str) -> int:
    """The bytes :class:`MemoryStore` charges for an entry: key, value (UTF-8) and overhead."""
    return len(key.encode()) + len(value.encode()) + ENTRY_OVERHEAD


class MemoryStore:
    """A thread-safe in-process store with expiry. Not shared between processes.

    Memory is bounded in bytes (see :func:`entry_size`) as well as in entries. Entries whose
    key starts with one of ``evictable`` (the pending sign-in requests anyone can create) count
    against ``max_pending_bytes`` and may take at most the same share of ``max_entries``;
    every other entry (replay cache, verified logins waiting for their finish step) against
    the rest of ``max_bytes``. When a budget is full
    and expired entries do not make room, ``add`` raises :class:`~flask_maestrano.errors.StoreFull`:
    nothing stored is ever dropped early, so a flood of anonymous init requests can neither
    evict a real user's pending login nor make a replay possible; the init view answers the
    flood with a 503 until its entries expire.
    """

    def __init__(
        self,
        max_entries: int = 100_000,
        evictable: tuple[str, ...] = PENDING_PREFIXES,
        *,
        max_bytes: int = 64 * 1024 * 1024,
        max_pending_bytes: int = 16 * 1024 * 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_pending_bytes > max_bytes:
            raise ConfigurationError("max_pending_bytes must not exceed max_bytes", key="MAESTRANO_STORE")
        self._data: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._max_pending_bytes = max_pending_bytes
        self._pending = evictable  # the historical name of the pending prefixes
        self._bytes = 0
        self._pending_bytes = 0
        self._pending_count = 0
        self._last_sweep = float("-inf")
        #: the epoch marker of :meth:`settle` (wall-clock seconds): set at the first settlement,
        #: so it is when this process started keeping a replay cache
        self.epoch: float | None = None
        #: seconds on a monotonic scale; a test passes another to make entries expire
        self._clock = clock

    @property
    def bytes_used(self) -> int:
        """Bytes charged for the live and not yet swept entries (see :func:`entry_size`)."""
        return self._bytes

    @property
    def pending_bytes(self) -> int:
        """The part of :attr:`bytes_used` taken by pending sign-in requests."""
        return self._pending_bytes

    def _charge(self, key: str, value: str, sign: int) -> None:
        size = entry_size(key, value) * sign
        self._bytes += size
        if key.startswith(self._pending):
            self._pending_bytes += size
            self._pending_count += sign

    def _delete(self, key: str) -> tuple[float, str] | None:
        entry = self._data.pop(key, None)
        if entry is not None:
            self._charge(key, entry[1], -1)
        return entry

    def _sweep(self, now: float) -> None:
        self._last_sweep = now
        expired = [k for k, (deadline, _) in self._data.items() if deadline <= now]
        for key in expired:
            self._delete(key)

    def _room_for(self, key: str, value: str) -> bool:
        size = entry_size(key, value)
        if len(self._data) >= self._max_entries:
            return False
        if key.startswith(self._pending):
            # pending entries get the same share of the entry cap as of the bytes, so a flood
            # of small ones cannot take every entry either
            share = max(1, self._max_entries * self._max_pending_bytes // self._max_bytes)
            return self._pending_count < share and self._pending_bytes + size <= self._max_pending_bytes
        # the pending budget is reserved: other entries use what pending entries cannot take
        others = self._bytes - self._pending_bytes
        return others + size <= self._max_bytes - self._max_pending_bytes

    def add(self, key: str, value: str, ttl: float) -> bool:
        now = self._clock()
        with self._lock:
            return self._add(key, value, ttl, now)

    def _add(self, key: str, value: str, ttl: float, now: float) -> bool:
        """:meth:`add`, the lock held."""
        entry = self._data.get(key)
        if entry is not None:
            if entry[0] > now:
                return False
            self._delete(key)  # re-inserted below, at the young end
        if not self._room_for(key, value) and now - self._last_sweep >= _SWEEP_INTERVAL:
            self._sweep(now)
        if not self._room_for(key, value):
            # refuse rather than forget: forgetting replay entries would allow replays,
            # forgetting pending requests would let a flood break real users' logins
            kind = "pending sign-in requests" if key.startswith(self._pending) else "entries"
            raise StoreFull(f"MemoryStore is full ({kind}); use a RedisStore for this load")
        self._data[key] = (now + ttl, value)
        self._charge(key, value, 1)
        return True

    def pop(self, key: str) -> str | None:
        now = self._clock()
        with self._lock:
            entry = self._delete(key)
        if entry is None or entry[0] <= now:
            return None
        return entry[1]

    def get(self, key: str) -> str | None:
        """Read ``key`` without removing it; ``None`` if absent or expired."""
        with self._lock:
            return self._live(key, self._clock())

    def _live(self, key: str, now: float) -> str | None:
        entry = self._data.get(key)
        return entry[1] if entry is not None and entry[0] > now else None

    def add_many(self, entries: Sequence[tuple[str, str, float]]) -> list[bool]:
        """:meth:`Store.add` each ``(key, value, ttl)`` under one lock; whether each was set."""
        now = self._clock()
        with self._lock:
            return [self._add(key, value, ttl, now) for key, value, ttl in entries]

    def settle(self, settlement: Settlement) -> Settled:
        """:meth:`AtomicStore.settle` under the store's lock (the epoch: this store's first
        settlement, so when this process began its replay cache)."""
        now = self._clock()
        with self._lock:
            if self.epoch is None:
                self.epoch = settlement.now
            if _is_stale(settlement, self.epoch):
                return Settled("stale")
            replayed = self._live(settlement.replay, now)
            record: dict[str, Any] | None = None
            if settlement.pending is not None:
                raw = self._live(settlement.pending, now)
                if raw is None:
                    return Settled("replay" if replayed is not None else "gone")
                record = json.loads(raw)
                assert record is not None
                for field_name, value in settlement.expect:
                    if str(record.get(field_name)) != value:
                        return Settled("mismatch", field_name)
                done = record.get("settled")
                if done is not None:
                    waiting = settlement.finish_prefix is not None and self._live(
                        settlement.finish_prefix + str(done), now
                    )
                    return Settled("again", str(done)) if replayed == done and waiting else Settled("replay")
            if replayed is not None:
                return Settled("replay")
            # room for the new entries first: a refusal (StoreFull) must change nothing
            self._add(settlement.replay, settlement.finish_token, settlement.replay_ttl, now)
            try:
                return _write(
                    settlement,
                    record,
                    lambda key, value, ttl: self._add(key, value, ttl, now),
                    lambda key: entry[1] if (entry := self._delete(key)) and entry[0] > now else None,
                )
            except StoreFull:
                self._delete(settlement.replay)
                raise

    def __len__(self) -> int:
        with self._lock:
            self._sweep(self._clock())
            return len(self._data)


#: :meth:`RedisStore.settle`: :class:`Settlement` in one script (Redis runs it atomically).
_SETTLE = """
-- KEYS: the epoch marker, the replay-cache entry, the pending request (absent: none)
-- ARGV: now, issued_at ('' if none), skew, replay ms, finish token, finish key prefix ('' if
-- none), finish value, finish ms, key prefix, then the counted lists expect (name, value) and
-- carry (name), then the release pairs (template, suffix) up to the end
local got = redis.call('MGET', unpack(KEYS))
local epoch = got[1]
if not epoch then
  redis.call('SET', KEYS[1], ARGV[1])
  epoch = ARGV[1]
end
if ARGV[2] ~= '' and tonumber(ARGV[2]) < tonumber(epoch) - tonumber(ARGV[3]) then
  return {'stale', ''}
end
local token = ARGV[5]
local finish_prefix = ARGV[6]
local carry_at = 11 + 2 * tonumber(ARGV[10])
local release_at = carry_at + 1 + tonumber(ARGV[carry_at])
local replayed = got[2]
local raw = got[3]
local rec = nil
if KEYS[3] then
  if not raw then
    if replayed then return {'replay', ''} end
    return {'gone', ''}
  end
  rec = cjson.decode(raw)
  for j = 11, carry_at - 1, 2 do
    local value = rec[ARGV[j]]
    if value == nil or tostring(value) ~= ARGV[j + 1] then
      return {'mismatch', ARGV[j]}
    end
  end
  local done = rec['settled']
  if done then
    if replayed == done and finish_prefix ~= '' and redis.call('EXISTS', finish_prefix .. done) == 1 then
      return {'again', done}
    end
    return {'replay', ''}
  end
end
if replayed then
  return {'replay', ''}
end
redis.call('SET', KEYS[2], token, 'PX', ARGV[4])
if finish_prefix ~= '' then
  -- the carried fields, encoded at once, are appended to the JSON object as text
  local body = ARGV[7]
  if rec then
    local extra = {}
    local found = false
    for j = carry_at + 1, release_at - 1 do
      local value = rec[ARGV[j]]
      if value ~= nil then
        extra[ARGV[j]] = value
        found = true
      end
    end
    if found then
      local fields = string.sub(cjson.encode(extra), 2, -2)
      if body == '{}' then
        body = '{' .. fields .. '}'
      else
        body = string.sub(body, 1, -2) .. ',' .. fields .. '}'
      end
    end
  end
  redis.call('SET', finish_prefix .. token, body, 'PX', ARGV[8])
end
if rec then
  -- marked settled by appending the field to the stored text (it has none: checked above)
  local marked
  if next(rec) == nil then
    marked = '{"settled":' .. cjson.encode(token) .. '}'
  elseif string.sub(raw, -1) == '}' then
    marked = string.sub(raw, 1, -2) .. ',"settled":' .. cjson.encode(token) .. '}'
  else
    rec['settled'] = token
    marked = cjson.encode(rec)
  end
  redis.call('SET', KEYS[3], marked, 'PX', ARGV[8])
  -- the release keys are read in one call and those still held for this request deleted in one
  local keys = {}
  local suffixes = {}
  for j = release_at, #ARGV - 1, 2 do
    local complete = true
    local key = string.gsub(ARGV[j], '{([%w_]+)}', function(name)
      local value = rec[name]
      if value == nil or value == cjson.null then
        complete = false
        return ''
      end
      return tostring(value)
    end)
    if complete then
      keys[#keys + 1] = ARGV[9] .. key
      suffixes[#keys] = ARGV[j + 1]
    end
  end
  if #keys > 0 then
    local held = redis.call('MGET', unpack(keys))
    local gone = {}
    for i = 1, #keys do
      local suffix = suffixes[i]
      if held[i] and string.sub(held[i], -#suffix) == suffix then
        gone[#gone + 1] = keys[i]
      end
    end
    if #gone > 0 then
      redis.call('DEL', unpack(gone))
    end
  end
end
return {'settled', token}
"""


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


class RedisStore:
    """A store on a Redis server (``SET NX PX``, ``GETDEL``, a pipeline for :meth:`add_many`
    and a Lua script for :meth:`settle`), shared by all workers.

    >>> store = RedisStore.from_url("redis://127.0.0.1:6379/0")  # doctest: +SKIP
    """

    def __init__(self, client: Any, prefix: str = "maestrano:") -> None:
        self.client = client
        self.prefix = prefix
        self._errors = _redis_exceptions("RedisError")
        #: a reply of the server (read in full: the connection stays usable)
        self._answered = _redis_exceptions("ResponseError")
        self._no_script = _redis_exceptions("NoScriptError")
        self._settle = client.register_script(_SETTLE)
        self._pool = _connection_pool(client)
        #: a connection the server closed (not a timeout: the server may be busy)
        self._dropped = _redis_exceptions("ConnectionError")
        #: a connection of the pool kept checked out between two commands (at most one, or
        #: briefly one per thread that raced to keep it), and the process it belongs to
        self._kept: list[Any] = []
        self._kept_by = os.getpid()
        # a pool with a connection limit is the operator's budget: nothing is kept out of it
        # (redis-py before 8: none unless asked; from_url tells for redis-py 8's default)
        self._keeps = self._pool is not None and self._pool.max_connections >= _UNBOUNDED

    def _command(self, *args: Any) -> Any:
        """The reply to one command: ``GETDEL``, ``GET`` and ``EVALSHA``, a login's hot path.

        Sent and read through redis-py's public connection API on a connection of the
        client's own pool, with the connection's own retry policy (the client's), skipping
        the client's per-command wrapper (its metrics and events). The connection is then
        kept checked out for the next command rather than given back, which skips the
        pool's checkout (its locks and its probe of the socket): one is kept, any other goes
        back to the pool, and none when the pool has a connection limit. A kept connection
        the server closed meanwhile (a restart, an idle timeout) fails the command with a
        connection error: it is then connected again and the command sent once more, which
        is safe for these three (a ``GET``; a ``GETDEL`` whose first answer was lost
        answers ``None``, a refusal; a settlement run twice answers ``again``). A
        connection whose exchange did not end with a full reply is closed, so no later
        command reads a stale reply. A forked process never uses its parent's kept
        connection. Any other client (a cluster, say) runs the command itself.
        """
        pool = self._pool
        if pool is None:
            return self.client.execute_command(*args)
        connection = self._take_kept()
        kept = connection is not None
        if connection is None:
            connection = pool.get_connection()

        def exchange() -> Any:
            connection.send_command(*args)
            return connection.read_response()

        def attempt() -> Any:
            return connection.retry.call_with_retry(exchange, lambda error: connection.disconnect())

        try:
            try:
                reply = attempt()
            except self._dropped:
                if not kept:
                    raise
                connection.disconnect()
                reply = attempt()
        except self._answered:
            self._keep(connection)  # the server's error reply, read in full: in step
            raise
        except BaseException:
            connection.disconnect()
            pool.release(connection)
            raise
        self._keep(connection)
        return reply

    def _take_kept(self) -> Any:
        if self._kept_by != os.getpid():  # a forked child: the parent's connection is not its own
            self._kept, self._kept_by = [], os.getpid()
            return None
        try:
            connection = self._kept.pop()
        except IndexError:
            return None
        if getattr(connection, "should_reconnect", lambda: False)():  # redis-py 8: maintenance
            connection.disconnect()
        return connection

    def _keep(self, connection: Any) -> None:
        if self._keeps and self._kept_by == os.getpid() and not self._kept:
            self._kept.append(connection)
        else:
            self._pool.release(connection)

    @classmethod
    def from_url(
        cls, url: str, prefix: str = "maestrano:", *, timeout: float = 2.0, connect_timeout: float = 2.0
    ) -> RedisStore:
        """A store on the server at ``url``; ``timeout`` bounds each answer and ``connect_timeout``
        each connection, in seconds (``MAESTRANO_STORE_TIMEOUT``, ``MAESTRANO_STORE_CONNECT_TIMEOUT``)."""
        try:
            import redis
        except ImportError:  # pragma: no cover - depends on the environment
            raise ConfigurationError(
                "MAESTRANO_STORE is a Redis URL but redis-py is not installed "
                "(pip install 'flask-maestrano[redis]')",
                key="MAESTRANO_STORE",
            ) from None
        client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=connect_timeout)
        store = cls(client, prefix)
        # redis-py 8 gives a pool a limit (100) when none is asked for, so the pool cannot
        # tell the operator's budget from the default: the URL can
        store._keeps = store._pool is not None and "max_connections" not in parse_qs(urlsplit(url).query)
        return store

    def add(self, key: str, value: str, ttl: float) -> bool:
        try:
            return bool(self.client.set(self.prefix + key, value, nx=True, px=_ms(ttl)))
        except self._errors as exc:
            raise _unavailable(exc) from exc

    def add_many(self, entries: Sequence[tuple[str, str, float]]) -> list[bool]:
        """:meth:`Store.add` each ``(key, value, ttl)`` in one round trip (a pipeline)."""
        try:
            with self.client.pipeline(transaction=False) as pipe:
                for key, value, ttl in entries:
                    pipe.set(self.prefix + key, value, nx=True, px=_ms(ttl))
                return [bool(done) for done in pipe.execute()]
        except self._errors as exc:
            raise _unavailable(exc) from exc

    def settle(self, settlement: Settlement) -> Settled:
        """:meth:`AtomicStore.settle` in one Lua script (one round trip); the epoch marker is
        :data:`EPOCH_KEY` under the prefix."""
        s = settlement
        p = self.prefix
        keys = [p + EPOCH_KEY, p + s.replay]
        if s.pending is not None:
            keys.append(p + s.pending)
        args: list[Any] = [
            repr(s.now),
            "" if s.issued_at is None else repr(s.issued_at),
            repr(s.skew),
            _ms(s.replay_ttl),
            s.finish_token,
            p + s.finish_prefix if s.finish_prefix is not None else "",
            s.finish_value,
            _ms(s.finish_ttl),
            p,
            len(s.expect),
            *(item for pair in s.expect for item in pair),
            len(s.carry),
            *s.carry,
            *(item for pair in s.release for item in pair),
        ]
        try:
            try:
                outcome, detail = self._command("EVALSHA", self._settle.sha, len(keys), *keys, *args)
            except self._answered as exc:
                if not isinstance(exc, self._no_script):
                    raise
                # the server lost its script cache (a restart): the script did not run, EVAL
                # runs it and caches it again
                outcome, detail = self._command("EVAL", _SETTLE, len(keys), *keys, *args)
        except self._errors as exc:
            raise _unavailable(exc) from exc
        text = outcome.decode() if isinstance(outcome, bytes) else str(outcome)
        if text not in _OUTCOMES:  # pragma: no cover - the script answers one of them
            raise StoreUnavailable(f"the Redis store answered the settlement with {text!r}")
        return Settled(cast(Outcome, text), detail.decode() if isinstance(detail, bytes) else str(detail))

    def pop(self, key: str) -> str | None:
        try:
            value = self._command("GETDEL", self.prefix + key)
        except self._errors as exc:
            raise _unavailable(exc) from exc
        if value is None:
            return None
        return value.decode() if isinstance(value, bytes) else str(value)

    def get(self, key: str) -> str | None:
        """Read ``key`` without removing it; ``None`` if absent."""
        try:
            value = self._command("GET", self.prefix + key)
        except self._errors as exc:
            raise _unavailable(exc) from exc
        if value is None:
            return None
        return value.decode() if isinstance(value, bytes) else str(value)


def _redis_exceptions(*names: str) -> tuple[type[Exception], ...]:
    """The classes ``names`` of ``redis.exceptions`` (none when redis-py is not installed)."""
    try:
        import redis.exceptions
    except ImportError:  # pragma: no cover - depends on the environment
        return ()
    return tuple(getattr(redis.exceptions, name) for name in names)


#: redis-py's ``max_connections`` when none is given
_UNBOUNDED = 2**31


def _connection_pool(client: Any) -> Any:
    """The plain :class:`redis.ConnectionPool` (or subclass) of ``client``, else ``None``."""
    try:
        import redis
    except ImportError:  # pragma: no cover - depends on the environment
        return None
    pool = getattr(client, "connection_pool", None)
    return pool if isinstance(client, redis.Redis) and isinstance(pool, redis.ConnectionPool) else None


def _unavailable(exc: Exception) -> StoreUnavailable:
    """A Redis error as :class:`StoreUnavailable`, named by its type (never with the URL)."""
    return StoreUnavailable(f"the Redis store did not answer ({type(exc).__name__})")


def store_from_config(value: Any, *, timeout: float = 2.0, connect_timeout: float = 2.0) -> Store:
    """Turn ``MAESTRANO_STORE`` into a store (the timeouts apply to a Redis URL)."""
    if value is None:
        return MemoryStore()
    if isinstance(value, str):
        if value.startswith(("redis://", "rediss://", "unix://")):
            return RedisStore.from_url(value, timeout=timeout, connect_timeout=connect_timeout)
        raise ConfigurationError("must be None, a redis:// URL or a store object", key="MAESTRANO_STORE")
    if isinstance(value, Store):
        return value
    raise ConfigurationError(f"{type(value).__name__} has no add/pop methods", key="MAESTRANO_STORE")
