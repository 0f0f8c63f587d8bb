"""The SSO host app in a process of its own, for attacks that may pin a CPU in C code.

``python -m tests.support.app_process CERT_FILE`` serves :func:`build_host_app` (trusting the
PEM certificate in ``CERT_FILE``) on a free 127.0.0.1 port, prints the port, and serves until
killed. ``GET /_host`` answers the loader calls so far, as JSON. :func:`app_process` starts
it and kills it afterwards, so a test bounded by its own timeouts leaves nothing spinning.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flask import Flask


@contextmanager
def app_process(cert_pem: str, tmp_path: Path) -> Iterator[str]:
    """Start the host app trusting ``cert_pem``; yields its base URL; kills it on exit."""
    cert_file = tmp_path / "idp-cert.pem"
    cert_file.write_text(cert_pem)
    root = Path(__file__).resolve().parents[2]
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.app_process", str(cert_file)],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # the port, once the server listens
        assert line.strip().isdigit(), f"the app process did not start: {line!r}"
        yield f"http://127.0.0.1:{line.strip()}"
    finally:
        process.kill()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


def _make_app(presets: dict[str, Any] | None = None, maestrano: Any = None, **config: Any) -> Flask:
    app = Flask("app_process")
    app.config.update(SECRET_KEY="test-secret", MAESTRANO_PRESETS=presets, **config)
    maestrano.init_app(app)
    return app


def main(cert_file: str) -> None:
    from werkzeug.serving import make_server

    from tests.support.presets import preset_data

    from .saml import build_host_app

    presets = {"production": preset_data(sso={"x509_certificate": Path(cert_file).read_text()})}
    app, host = build_host_app(_make_app, presets)

    @app.route("/_host")
    def host_calls() -> str:
        return json.dumps(host.calls)

    server = make_server("127.0.0.1", 0, app, threaded=True)
    print(server.server_port, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1])
