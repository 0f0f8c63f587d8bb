"""Real HTTP servers on 127.0.0.1 for tests: a threaded WSGI server, the sandbox on one, ports."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import requests
from werkzeug.serving import BaseWSGIServer, make_server


class LiveServer:
    """A WSGI app served by a real HTTP server on 127.0.0.1 in a thread."""

    def __init__(self, app: Any, port: int = 0) -> None:
        self.server: BaseWSGIServer = make_server("127.0.0.1", port, app, threaded=True)
        self.port = self.server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


class SandboxServer:
    """The sandbox platform served on a real port: ``.app`` (Flask), ``.url``, ``.app_id``, ``.key``."""

    def __init__(self, app: Any, server: LiveServer, app_id: str, key: str) -> None:
        self.app = app
        self.server = server
        self.url = server.url
        self.app_id = app_id
        self.key = key

    @property
    def auth(self) -> tuple[str, str]:
        return (self.app_id, self.key)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(url: str, timeout: float = 15.0) -> requests.Response:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return requests.get(url, timeout=2)
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
