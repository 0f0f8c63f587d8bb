"""Server-side state shared by the workers of one deployment.

Single sign-on keeps two kinds of short-lived entries here: the AuthnRequest state under a
one-time token (consumed once by the consume view) and the replay cache of assertion IDs
(kept until the assertion expires). Both need exactly two atomic operations, so a store is
two methods. :class:`MemoryStore` serves one process; :class:`RedisStore` serves every
worker that shares the Redis server.

Choose with ``MAESTRANO_STORE``: ``None`` (in-process), a ``redis://`` URL, or any object
with ``add`` and ``pop``.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Protocol, runtime_checkable

from .errors import ConfigurationError


@runtime_checkable
class Store(Protocol):
    """The two atomic operations the extension needs."""

    def add(self, key: str, value: str, ttl: float) -> bool:
        """Set ``key`` to ``value`` for ``ttl`` seconds unless it exists. True if it was set."""
        ...

    def pop(self, key: str) -> str | None:
        """Return and delete ``key`` in one step; ``None`` if absent or expired."""
        ...


#: Key prefixes of the entries a full :class:`MemoryStore` may drop, oldest first: the
#: pending AuthnRequests, which anyone can create by opening the init URL. Dropping one only
#: makes that login start over; replay-cache entries are never dropped.
EVICTABLE_PREFIXES = ("sso:relay:", "sso:request:")


class MemoryStore:
    """A thread-safe in-process store with expiry. Not shared between processes.

    When ``max_entries`` live entries are held, the oldest entries whose key starts with one
    of ``evictable`` make room (a tenth of the capacity at a time); with none left to drop,
    ``add`` raises rather than forget a replay-cache entry.
    """

    def __init__(self, max_entries: int = 100_000, evictable: tuple[str, ...] = EVICTABLE_PREFIXES) -> None:
        self._data: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()
        self._max_entries = max_entries
        self._evictable = evictable

    def _sweep(self, now: float) -> None:
        expired = [k for k, (deadline, _) in self._data.items() if deadline <= now]
        for key in expired:
            del self._data[key]

    def _evict(self, count: int) -> None:
        # dicts keep insertion order: the first evictable keys are the oldest
        victims = []
        for key in self._data:
            if key.startswith(self._evictable):
                victims.append(key)
                if len(victims) >= count:
                    break
        for key in victims:
            del self._data[key]

    def add(self, key: str, value: str, ttl: float) -> bool:
        now = time.monotonic()
        with self._lock:
            entry = self._data.get(key)
            if entry is not None:
                if entry[0] > now:
                    return False
                del self._data[key]  # re-inserted below, at the young end
            if len(self._data) >= self._max_entries:
                self._sweep(now)
                if len(self._data) >= self._max_entries and self._evictable:
                    self._evict(max(1, self._max_entries // 10))
                if len(self._data) >= self._max_entries:
                    # Refuse rather than forget: forgetting replay entries would allow replays.
                    raise RuntimeError("MemoryStore is full; use a RedisStore for this load")
            self._data[key] = (now + ttl, value)
            return True

    def pop(self, key: str) -> str | None:
        now = time.monotonic()
        with self._lock:
            entry = self._data.pop(key, None)
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

    @classmethod
    def from_url(cls, url: str, prefix: str = "maestrano:") -> RedisStore:
        try:
            import redis
        except ImportError:  # pragma: no cover - depends on the environment
            raise ConfigurationError(
                "MAESTRANO_STORE is a Redis URL but redis-py is not installed "
                "(pip install 'flask-maestrano[redis]')",
                key="MAESTRANO_STORE",
            ) from None
        return cls(redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5), prefix)

    def add(self, key: str, value: str, ttl: float) -> bool:
        milliseconds = max(1, int(ttl * 1000))
        return bool(self.client.set(self.prefix + key, value, nx=True, px=milliseconds))

    def pop(self, key: str) -> str | None:
        value = self.client.getdel(self.prefix + key)
        if value is None:
            return None
        return value.decode() if isinstance(value, bytes) else str(value)

    def get(self, key: str) -> str | None:
        """Read ``key`` without removing it (OpenID associations); ``None`` if absent."""
        value = self.client.get(self.prefix + key)
        if value is None:
            return None
        return value.decode() if isinstance(value, bytes) else str(value)


def store_from_config(value: Any) -> Store:
    """Turn ``MAESTRANO_STORE`` into a store."""
    if value is None:
        return MemoryStore()
    if isinstance(value, str):
        if value.startswith(("redis://", "rediss://", "unix://")):
            return RedisStore.from_url(value)
        raise ConfigurationError("must be None, a redis:// URL or a store object", key="MAESTRANO_STORE")
    if isinstance(value, Store):
        return value
    raise ConfigurationError(f"{type(value).__name__} has no add/pop methods", key="MAESTRANO_STORE")
