"""A real ``redis-server`` on a free 127.0.0.1 port (no persistence), started and stopped by
the tests: :func:`redis_server` for one test, the ``redis_url`` fixture for a test module and
``clean_redis`` for that server emptied for one test."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator

import pytest
import redis

from tests.support.servers import free_port


class RedisServer(str):
    """The server's URL, with its process (to pause it with SIGSTOP, for example)."""

    process: subprocess.Popen[bytes]


@contextlib.contextmanager
def redis_server() -> Iterator[RedisServer]:
    """Start ``redis-server`` (no persistence); yields its URL; stops it on exit."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (make test installs it; apt-get install redis-server)")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.2)
    try:
        for _attempt in range(100):  # bounded wait for the server to accept connections
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if process.poll() is not None:
                    pytest.fail("redis-server exited at start-up")
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=0.05)  # a bounded pause that also notices an early exit
        else:
            pytest.fail("redis-server did not start")
        server = RedisServer(f"redis://127.0.0.1:{port}/0")
        server.process = process
        yield server
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    """A real redis-server for the test module."""
    with redis_server() as url:
        yield url


@pytest.fixture
def clean_redis(redis_url: str) -> str:
    """:func:`redis_url`, emptied for this test."""
    with contextlib.closing(redis.Redis.from_url(redis_url)) as client:
        client.flushall()
    return redis_url
