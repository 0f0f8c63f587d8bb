"""A circuit breaker shared by every worker, for calls to a platform that may be failing.

The single-logout check calls the platform for each user whose recheck time has come; when
the platform hangs, every such request would wait for the check's timeout and the workers
would all be busy waiting. The breaker counts consecutive failures per name (a preset):
``failures`` of them within ``window`` seconds open it; while it is open no call is made and
the caller applies its fallback at once; after ``cooldown`` seconds one caller, and one only
in the whole deployment, is let through to probe (half-open, a set-if-absent lock that expires
after ``probe_ttl`` seconds); its success closes the breaker, its failure opens it for another
cooldown.

:class:`RedisBreaker` keeps the state on the Redis server of ``MAESTRANO_STORE`` (one Lua
script per step, so every process sees the same breaker); :class:`MemoryBreaker` keeps it in
the process (the in-process store's case). Times are the caller's clock (seconds since the
epoch), so a test can move them.

>>> breaker = MemoryBreaker(failures=2, window=60, cooldown=30, probe_ttl=5)
>>> breaker.allow("p", now=0.0), breaker.failed("p", now=1.0), breaker.failed("p", now=2.0)
('closed', None, 'opened')
>>> breaker.allow("p", now=3.0), breaker.allow("p", now=40.0), breaker.allow("p", now=40.0)
('open', 'probe', 'open')
>>> breaker.succeeded("p", now=41.0), breaker.allow("p", now=42.0)
('closed', 'closed')
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, cast

from .errors import StoreUnavailable
from .store import RedisStore, Store

__all__ = ["Breaker", "MemoryBreaker", "RedisBreaker", "Verdict", "breaker_for"]

#: What :meth:`Breaker.allow` says: ``"closed"`` (call), ``"probe"`` (call: this caller is the
#: one probe after the cooldown) or ``"open"`` (do not call; apply the fallback now).
Verdict = Literal["closed", "probe", "open"]


class Breaker(Protocol):
    """A circuit breaker per name; each method is one atomic step."""

    def allow(self, name: str, now: float) -> Verdict:
        """Whether to call now."""
        ...

    def failed(self, name: str, now: float) -> Literal["opened"] | None:
        """Record a failed call (or a timeout); ``"opened"`` when this failure opened it."""
        ...

    def succeeded(self, name: str, now: float) -> Literal["closed"] | None:
        """Record a successful call; ``"closed"`` when this success closed an open breaker."""
        ...


@dataclass
class _State:
    failures: int = 0
    first_failure: float = 0.0
    open_until: float | None = None
    probe_until: float | None = None


@dataclass
class MemoryBreaker:
    """:class:`Breaker` in this process (thread-safe); not shared with other processes."""

    failures: int
    window: float
    cooldown: float
    probe_ttl: float
    _states: dict[str, _State] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def allow(self, name: str, now: float) -> Verdict:
        with self._lock:
            state = self._states.get(name)
            if state is None or state.open_until is None:
                return "closed"
            if now < state.open_until or (state.probe_until is not None and now < state.probe_until):
                return "open"
            state.probe_until = now + self.probe_ttl
            return "probe"

    def failed(self, name: str, now: float) -> Literal["opened"] | None:
        with self._lock:
            state = self._states.setdefault(name, _State())
            if state.open_until is not None:  # the probe failed (or a call made before it opened)
                state.open_until, state.probe_until = now + self.cooldown, None
                return None
            if state.failures == 0 or now - state.first_failure > self.window:
                state.failures, state.first_failure = 0, now
            state.failures += 1
            if state.failures < self.failures:
                return None
            state.failures, state.open_until, state.probe_until = 0, now + self.cooldown, None
            return "opened"

    def succeeded(self, name: str, now: float) -> Literal["closed"] | None:
        with self._lock:
            state = self._states.pop(name, None)
        return "closed" if state is not None and state.open_until is not None else None


# KEYS[1] the open marker (its value: until when), KEYS[2] the probe lock; ARGV[1] now,
# ARGV[2] probe ttl (ms)
_ALLOW = """
local open_until = redis.call('GET', KEYS[1])
if not open_until then return 'closed' end
if tonumber(ARGV[1]) < tonumber(open_until) then return 'open' end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return 'probe' end
return 'open'
"""
# KEYS[1] open, KEYS[2] probe, KEYS[3] failure count; ARGV[1] now, ARGV[2] threshold,
# ARGV[3] window (ms), ARGV[4] cooldown (s), ARGV[5] how long the state is kept at most (ms)
_FAILED = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('SET', KEYS[1], tostring(tonumber(ARGV[1]) + tonumber(ARGV[4])), 'PX', ARGV[5])
  redis.call('DEL', KEYS[2])
  return false
end
local count = redis.call('INCR', KEYS[3])
if count == 1 then redis.call('PEXPIRE', KEYS[3], ARGV[3]) end
if count < tonumber(ARGV[2]) then return false end
redis.call('DEL', KEYS[3], KEYS[2])
redis.call('SET', KEYS[1], tostring(tonumber(ARGV[1]) + tonumber(ARGV[4])), 'PX', ARGV[5])
return 'opened'
"""
# KEYS[1] open, KEYS[2] probe, KEYS[3] failure count
_SUCCEEDED = """
local was_open = redis.call('EXISTS', KEYS[1])
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
if was_open == 1 then return 'closed' end
return false
"""


class RedisBreaker:
    """:class:`Breaker` on a Redis server, shared by every process that uses it (one script,
    so one round trip, per step). Redis errors are
    :class:`~flask_maestrano.errors.StoreUnavailable`."""

    def __init__(
        self,
        client: Any,
        *,
        failures: int,
        window: float,
        cooldown: float,
        probe_ttl: float,
        prefix: str = "maestrano:breaker:",
    ) -> None:
        from redis.exceptions import RedisError

        self.client = client
        self.prefix = prefix
        self.failures = failures
        self.window = window
        self.cooldown = cooldown
        self.probe_ttl = probe_ttl
        self._errors: tuple[type[Exception], ...] = (RedisError,)
        self._allow = client.register_script(_ALLOW)
        self._failed = client.register_script(_FAILED)
        self._succeeded = client.register_script(_SUCCEEDED)

    def _keys(self, name: str) -> list[str]:
        base = f"{self.prefix}{name}:"
        return [base + "open", base + "probe", base + "failures"]

    def _run(self, script: Any, keys: list[str], args: list[Any]) -> str | None:
        try:
            value = script(keys=keys, args=args)
        except self._errors as exc:
            raise StoreUnavailable(f"the Redis store did not answer ({type(exc).__name__})") from exc
        if value is None:
            return None
        return value.decode() if isinstance(value, bytes) else str(value)

    def allow(self, name: str, now: float) -> Verdict:
        args = [repr(now), max(1, int(self.probe_ttl * 1000))]
        return cast(Verdict, self._run(self._allow, self._keys(name)[:2], args))

    def failed(self, name: str, now: float) -> Literal["opened"] | None:
        keep = max(1, int((self.cooldown + self.window + 3600) * 1000))  # never kept forever
        args = [repr(now), self.failures, max(1, int(self.window * 1000)), repr(self.cooldown), keep]
        return "opened" if self._run(self._failed, self._keys(name), args) == "opened" else None

    def succeeded(self, name: str, now: float) -> Literal["closed"] | None:
        return "closed" if self._run(self._succeeded, self._keys(name), []) == "closed" else None


def breaker_for(store: Store, *, failures: int, window: float, cooldown: float, probe_ttl: float) -> Breaker:
    """A :class:`RedisBreaker` on the server of a :class:`~flask_maestrano.store.RedisStore`,
    else a :class:`MemoryBreaker`."""
    if isinstance(store, RedisStore):
        return RedisBreaker(
            store.client,
            failures=failures,
            window=window,
            cooldown=cooldown,
            probe_ttl=probe_ttl,
            prefix=store.prefix + "breaker:",
        )
    return MemoryBreaker(failures, window, cooldown, probe_ttl)
