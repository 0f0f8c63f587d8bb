"""Durable, single-run background jobs: a lock with a lease, and a status every process sees.

Plain Python (no Flask). A job is named by its kind and key (``job_name("import", preset,
group)``); a :class:`JobBackend` keeps, per name, one lock held by one owner for a lease of a
few seconds, renewed by a heartbeat while the job runs, and the job's last status (a JSON
string). So a job cannot run twice anywhere that shares the backend, and a run whose process
died (``kill -9``) loses its lease within ``ttl`` seconds: its status, still ``running``,
then reads as interrupted and the next run resumes from the cursor the status holds.

:class:`MemoryJobBackend` serves one process; :class:`RedisJobBackend` every process sharing
the Redis server of ``MAESTRANO_STORE``.

>>> backend = MemoryJobBackend()
>>> backend.acquire("import:production:cld-1", "worker-a", ttl=30)
True
>>> backend.acquire("import:production:cld-1", "worker-b", ttl=30)
False

The default executor, :class:`DaemonExecutor`, runs jobs on daemon threads: a stopping process
(gunicorn's graceful shutdown, ``max_requests``, ``HUP``) is never held by them. At exit,
:func:`stopping` turns true; running jobs see it between steps, record themselves as
interrupted and release their lock (:func:`register_running` jobs still running after a
short grace are marked by the exit handler itself).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Protocol, runtime_checkable

from .errors import StoreUnavailable

__all__ = [
    "DaemonExecutor",
    "JobBackend",
    "Lease",
    "MemoryJobBackend",
    "RedisJobBackend",
    "job_name",
    "new_owner",
    "register_running",
    "stopping",
]


def job_name(kind: str, *parts: str) -> str:
    """The name of one job: its kind and key, e.g. ``import:production:cld-1``."""
    return ":".join((kind, *parts))


def new_owner() -> str:
    """A lock owner unique to this run: host process id and a random part."""
    return f"{os.getpid()}-{uuid.uuid4().hex}"


@runtime_checkable
class JobBackend(Protocol):
    """Where job locks and statuses live. Every method is atomic."""

    def acquire(self, name: str, owner: str, ttl: float) -> bool:
        """Take the lock of ``name`` for ``ttl`` seconds unless someone holds it."""
        ...

    def renew(self, name: str, owner: str, ttl: float) -> bool:
        """Extend ``owner``'s lock to ``ttl`` seconds from now; False if it is no longer theirs."""
        ...

    def release(self, name: str, owner: str) -> None:
        """Drop the lock if ``owner`` still holds it."""
        ...

    def holder(self, name: str) -> str | None:
        """Who holds the lock of ``name`` now (``None``: nobody, or the lease expired)."""
        ...

    def get_status(self, name: str) -> str | None:
        """The last status stored for ``name``."""
        ...

    def put_status(self, name: str, value: str) -> None:
        """Store the status of ``name``."""
        ...

    def names(self, kind: str) -> list[str]:
        """Every job name of ``kind`` with a stored status."""
        ...


class MemoryJobBackend:
    """Locks and statuses in this process (thread-safe); not shared between processes."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[str, float]] = {}
        self._statuses: dict[str, str] = {}
        self._lock = threading.Lock()

    def _live(self, name: str) -> str | None:
        entry = self._locks.get(name)
        if entry is None or entry[1] <= time.monotonic():
            return None
        return entry[0]

    def acquire(self, name: str, owner: str, ttl: float) -> bool:
        with self._lock:
            if self._live(name) is not None:
                return False
            self._locks[name] = (owner, time.monotonic() + ttl)
            return True

    def renew(self, name: str, owner: str, ttl: float) -> bool:
        with self._lock:
            if self._live(name) != owner:
                return False
            self._locks[name] = (owner, time.monotonic() + ttl)
            return True

    def release(self, name: str, owner: str) -> None:
        with self._lock:
            if self._live(name) == owner:
                del self._locks[name]

    def holder(self, name: str) -> str | None:
        with self._lock:
            return self._live(name)

    def get_status(self, name: str) -> str | None:
        with self._lock:
            return self._statuses.get(name)

    def put_status(self, name: str, value: str) -> None:
        with self._lock:
            self._statuses[name] = value

    def names(self, kind: str) -> list[str]:
        with self._lock:
            return sorted(n for n in self._statuses if n.startswith(kind + ":"))


# KEYS[1] the lock; ARGV[1] the owner, ARGV[2] the lease in ms
_RENEW = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then "
    "return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"
)
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


class RedisJobBackend:
    """Locks (``SET NX PX``, renewed and released only by their owner) and statuses (one hash)
    on a Redis server, shared by every process that uses it.

    >>> backend = RedisJobBackend(redis.Redis.from_url("redis://127.0.0.1:6379/0"))  # doctest: +SKIP
    """

    def __init__(self, client: Any, prefix: str = "maestrano:jobs:") -> None:
        from redis.exceptions import RedisError

        self.client = client
        self.prefix = prefix
        self._errors: tuple[type[Exception], ...] = (RedisError,)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except self._errors as exc:
            raise StoreUnavailable(f"the Redis job store did not answer ({type(exc).__name__})") from exc

    @staticmethod
    def _text(value: Any) -> str | None:
        if value is None:
            return None
        return value.decode() if isinstance(value, bytes) else str(value)

    def acquire(self, name: str, owner: str, ttl: float) -> bool:
        key = self.prefix + "lock:" + name
        return bool(self._call(self.client.set, key, owner, nx=True, px=max(1, int(ttl * 1000))))

    def renew(self, name: str, owner: str, ttl: float) -> bool:
        key = self.prefix + "lock:" + name
        return bool(self._call(self._renew, keys=[key], args=[owner, max(1, int(ttl * 1000))]))

    def release(self, name: str, owner: str) -> None:
        self._call(self._release, keys=[self.prefix + "lock:" + name], args=[owner])

    def holder(self, name: str) -> str | None:
        return self._text(self._call(self.client.get, self.prefix + "lock:" + name))

    def get_status(self, name: str) -> str | None:
        return self._text(self._call(self.client.hget, self.prefix + "status", name))

    def put_status(self, name: str, value: str) -> None:
        self._call(self.client.hset, self.prefix + "status", name, value)

    def names(self, kind: str) -> list[str]:
        found = self._call(self.client.hkeys, self.prefix + "status")
        texts = (self._text(n) or "" for n in found)
        return sorted(n for n in texts if n.startswith(kind + ":"))


class Lease:
    """A held lock kept alive by a heartbeat thread (every third of ``ttl``).

    ``lost`` (an event) is set when a renewal fails (the lock expired and may be someone else's, or
    the backend did not answer for longer than the lease): the job must stop writing.
    """

    def __init__(self, backend: JobBackend, name: str, owner: str, ttl: float) -> None:
        self.backend = backend
        self.name = name
        self.owner = owner
        self.ttl = ttl
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"maestrano-lease-{name}", daemon=True)

    def start(self) -> Lease:
        self._thread.start()
        return self

    def _beat(self) -> None:
        renewed = time.monotonic()
        while not self._stop.wait(self.ttl / 3):
            try:
                ok = self.backend.renew(self.name, self.owner, self.ttl)
            except StoreUnavailable:
                ok = time.monotonic() - renewed < self.ttl  # the lease still runs; try again
                if not ok:
                    self.lost.set()
                    return
                continue
            if not ok:
                self.lost.set()
                return
            renewed = time.monotonic()

    def stop(self, release: bool = True) -> None:
        """Stop the heartbeat and (unless the lease was lost) release the lock."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.ttl)
        if release and not self.lost.is_set():
            with contextlib.suppress(StoreUnavailable):  # else the lease expires by itself
                self.backend.release(self.name, self.owner)


# -- process shutdown ----------------------------------------------------------------------------

_stopping = threading.Event()
_running: dict[str, Callable[[], None]] = {}
_running_lock = threading.Lock()
#: seconds the exit handler gives running jobs to notice :func:`stopping` and record it
EXIT_GRACE = 1.0


def stopping() -> bool:
    """Whether this process is exiting: running jobs stop at their next step."""
    return _stopping.is_set()


def register_running(token: str, on_exit: Callable[[], None]) -> Callable[[], None]:
    """Record a running job; ``on_exit()`` marks it interrupted if the process exits first.

    Returns what unregisters it (call it when the job ends, however it ends).
    """
    with _running_lock:
        _running[token] = on_exit

    def unregister() -> None:
        with _running_lock:
            _running.pop(token, None)

    return unregister


def _on_exit() -> None:
    _stopping.set()
    deadline = time.monotonic() + EXIT_GRACE
    while time.monotonic() < deadline:
        with _running_lock:
            if not _running:
                return
        time.sleep(0.02)  # the jobs' own threads finish recording; bounded by EXIT_GRACE
    with _running_lock:
        left = list(_running.values())
        _running.clear()
    for mark in left:
        with contextlib.suppress(Exception):  # at exit; the lease expiry covers what this cannot do
            mark()


atexit.register(_on_exit)


class DaemonExecutor:
    """``submit(fn, *args)`` on up to ``max_workers`` daemon threads.

    Returns a :class:`concurrent.futures.Future`.

    Unlike :class:`concurrent.futures.ThreadPoolExecutor`, whose threads the interpreter joins
    before it exits, these never hold a stopping process.
    """

    def __init__(self, max_workers: int, thread_name_prefix: str = "maestrano-job") -> None:
        self._queue: queue.SimpleQueue[tuple[Future[Any], Callable[..., Any], tuple[Any, ...]] | None] = (
            queue.SimpleQueue()
        )
        self._max = max_workers
        self._prefix = thread_name_prefix
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._shutdown = False

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        future: Future[Any] = Future()
        with self._lock:
            if self._shutdown:
                raise RuntimeError("the executor is shut down")
            self._queue.put((future, fn, args))
            if len(self._threads) < self._max:  # threads wait on the queue once started
                thread = threading.Thread(
                    target=self._work, name=f"{self._prefix}_{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
        return future

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            future, fn, args = item
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args))
                except BaseException as exc:
                    future.set_exception(exc)

    def shutdown(self, wait: bool = False) -> None:
        """Stop taking jobs; the threads end after the queued ones (``wait`` joins them)."""
        with self._lock:
            self._shutdown = True
            for _ in self._threads:
                self._queue.put(None)
        if wait:
            for thread in self._threads:
                thread.join()
