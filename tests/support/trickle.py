"""A platform that trickles its answer: each byte well within any read timeout, the whole far past it.

``TrickleServer(phase)`` serves one connection on 127.0.0.1 and answers a valid session check
(``{"valid": true, "recheck": "2099-..."}``) one byte every ``interval`` seconds:

* ``"headers"``: the status line, headers and body all trickle;
* ``"body"``: the headers arrive at once, then the body trickles;
* ``"tls-handshake"``: garbage instead of a TLS handshake, one byte at a time;
* ``"tls-body"``: a real TLS handshake, then everything trickles.

``sent`` counts the trickled bytes sent before the client hung up; ``close()`` stops the
server and joins its thread.
"""

from __future__ import annotations

import socket
import ssl
import threading
from pathlib import Path

BODY = b'{"valid": true, "recheck": "2099-01-01T00:00:00Z"}'
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(BODY)


class TrickleServer:
    def __init__(self, phase: str, interval: float = 0.25, tls_dir: Path | None = None) -> None:
        self.phase = phase
        self.interval = interval
        self.prompt, self.slow = (HEAD, BODY) if phase == "body" else (b"", HEAD + BODY)
        if phase == "tls-handshake":
            self.slow = b"\x16" * 200  # a TLS record type, then nothing that completes a handshake
        self.context: ssl.SSLContext | None = None
        if phase.startswith("tls"):
            from flask_maestrano.testing import TestIdP

            assert tls_dir is not None, "a TLS phase needs tls_dir for its certificate"
            idp = TestIdP(name="127.0.0.1")
            (tls_dir / "cert.pem").write_text(idp.cert_pem)
            (tls_dir / "key.pem").write_text(idp.key_pem)
            self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.context.load_cert_chain(tls_dir / "cert.pem", tls_dir / "key.pem")
        self.stop = threading.Event()
        self.sent = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        scheme = "https" if self.context is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{self.listener.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.listener.settimeout(10)
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        with conn:
            try:
                if self.phase == "tls-body":
                    assert self.context is not None
                    with self.context.wrap_socket(conn, server_side=True) as tls:
                        self._answer(tls)
                else:
                    self._answer(conn)
            except OSError:  # the client hung up mid-answer
                return

    def _answer(self, conn: socket.socket) -> None:
        if self.phase != "tls-handshake":
            conn.recv(65536)  # the request
        conn.sendall(self.prompt)
        for byte in self.slow:
            if self.stop.wait(self.interval):
                return
            conn.sendall(bytes([byte]))
            self.sent += 1
        # the whole answer went out: wait for the client to close, or the test to end
        conn.settimeout(0.1)
        while not self.stop.is_set():
            try:
                if conn.recv(1) == b"":
                    return
            except TimeoutError:
                continue

    def close(self) -> None:
        self.stop.set()
        self.listener.close()
        self.thread.join(timeout=10)
        assert not self.thread.is_alive()
