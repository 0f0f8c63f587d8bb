"""``python -m load.proxy UPSTREAM PORT``: the platform behind a fault switch, on 127.0.0.1:PORT.

Forwards every request to ``UPSTREAM`` (the sandbox). ``POST /__fault__/<mode>`` switches what
the platform's single-logout session check (``GET /api/v1/auth/saml/<uid>``) does:
``pass`` (answered), ``slow`` (answered after ``?seconds=``, 3 by default) or ``down`` (502,
as a load balancer in front of a dead platform answers). Everything else always passes.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
from collections.abc import Iterable
from typing import Any

import requests
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

SESSION_CHECK = re.compile(r"^/api/v1/auth/saml/[^/]+$")
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "host",
}


class FaultProxy:
    """The WSGI proxy: ``mode`` and ``seconds`` say what the session check does."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.mode = "pass"
        self.seconds = 3.0
        self.local = threading.local()

    def session(self) -> requests.Session:
        found = getattr(self.local, "session", None)
        if found is None:
            found = self.local.session = requests.Session()
        return found

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        if request.path.startswith("/__fault__/"):
            return self.switch(request)(environ, start_response)
        if request.method == "GET" and SESSION_CHECK.match(request.path):
            if self.mode == "down":
                return Response("platform down", status=502)(environ, start_response)
            if self.mode == "slow":
                time.sleep(self.seconds)  # the slow platform itself
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        try:
            answer = self.session().request(
                request.method,
                self.upstream + request.full_path.rstrip("?"),
                headers=headers,
                data=request.get_data(),
                allow_redirects=False,
                timeout=30,
            )
        except requests.RequestException as exc:
            return Response(f"upstream unreachable: {exc}", status=502)(environ, start_response)
        response = Response(answer.content, status=answer.status_code)
        for name, value in answer.raw.headers.items():
            if name.lower() not in HOP_BY_HOP and name.lower() != "content-encoding":
                response.headers.add(name, value)
        return response(environ, start_response)

    def switch(self, request: Request) -> Response:
        mode = request.path.rsplit("/", 1)[1]
        if mode not in ("pass", "slow", "down") or request.method != "POST":
            return Response("unknown fault mode", status=400)
        self.mode = mode
        self.seconds = float(request.args.get("seconds", "3"))
        return Response(f"session check: {mode}")


def serve(app: Any, port: str) -> None:
    """Serve the WSGI ``app`` on 127.0.0.1:``port`` (threaded, quiet) until the process is stopped."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = make_server("127.0.0.1", int(port), app, threaded=True)
    print("ready", flush=True)
    server.serve_forever()


def main(upstream: str, port: str) -> None:
    serve(FaultProxy(upstream), port)


if __name__ == "__main__":
    main(*sys.argv[1:3])
