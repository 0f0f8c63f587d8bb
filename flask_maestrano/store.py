"""Server-side state shared by the workers of one deployment.

Single sign-on keeps three kinds of short-lived entries here: the pending AuthnRequests under
one-time tokens, each bound to the browser that started it (:mod:`flask_maestrano.sso.binding`),
the verified logins waiting for their finish step, and the replay cache of assertion IDs (kept
until the assertion expires). They need exactly two atomic operations, so a store is two
methods. :class:`MemoryStore` serves one process; :class:`RedisStore` serves every
worker that shares the Redis server.

Choose with ``MAESTRANO_STORE``: ``None`` (in-process), a ``redis://`` URL, or any object
with ``add`` and ``pop``.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Protocol, runtime_checkable

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


#: Key prefixes of pending sign-in requests, which anyone can create by opening an init URL.
#: A :class:`MemoryStore` keeps them within their own byte budget, so a flood of them can
#: neither crowd out the replay cache nor evict a pending request that is already stored.
PENDING_PREFIXES = ("pending:",)
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
        now = time.monotonic()
        with self._lock:
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
        now = time.monotonic()
        with self._lock:
            entry = self._delete(key)
        if entry is None or entry[0] <= now:
            return None
        return entry[1]

    def get(self, key: str) -> str | None:
        """Read ``key`` without removing it (OpenID associations); ``None`` if absent or expired."""
        with self._lock:
            entry = self._data.get(key)
        if entry is None or entry[0] <= time.monotonic():
            return None
        return entry[1]

    def __len__(self) -> int:
        with self._lock:
            self._sweep(time.monotonic())
            return len(self._data)


class RedisStore:
    """A store on a Redis server (``SET NX EX`` and ``GETDEL``), shared by all workers.

    >>> store = RedisStore.from_url("redis://127.0.0.1:6379/0")  # doctest: +SKIP
    """

    def __init__(self, client: Any, prefix: str = "maestrano:") -> None:
        self.client = client
        self.prefix = prefix
        self._errors = _redis_errors()

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
        return cls(client, prefix)

    def add(self, key: str, value: str, ttl: float) -> bool:
        milliseconds = max(1, int(ttl * 1000))
        try:
            return bool(self.client.set(self.prefix + key, value, nx=True, px=milliseconds))
        except self._errors as exc:
            raise _unavailable(exc) from exc

    def pop(self, key: str) -> str | None:
        try:
            value = self.client.getdel(self.prefix + key)
        except self._errors as exc:
            raise _unavailable(exc) from exc
        if value is None:
            return None
        return value.decode() if isinstance(value, bytes) else str(value)

    def get(self, key: str) -> str | None:
        """Read ``key`` without removing it (OpenID associations); ``None`` if absent."""
        try:
            value = self.client.get(self.prefix + key)
        except self._errors as exc:
            raise _unavailable(exc) from exc
        if value is None:
            return None
        return value.decode() if isinstance(value, bytes) else str(value)


def _redis_errors() -> tuple[type[Exception], ...]:
    try:
        from redis.exceptions import RedisError
    except ImportError:  # pragma: no cover - depends on the environment
        return ()
    return (RedisError,)


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
