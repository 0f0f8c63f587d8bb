"""A real ``redis-server`` on a free 127.0.0.1 port, started and stopped by the test."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
from collections.abc import Iterator

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer(str):
    """The server's URL, with its process (to pause it with SIGSTOP, for example)."""

    process: subprocess.Popen[bytes]


@contextlib.contextmanager
def redis_server() -> Iterator[RedisServer]:
    """Start ``redis-server`` (no persistence); yields its URL; stops it on exit."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (make test installs it; apt-get install redis-server)")
    import redis

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
