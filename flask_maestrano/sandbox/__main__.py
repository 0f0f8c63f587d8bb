"""``python -m flask_maestrano.sandbox``: run the sandbox platform alone.

python -m flask_maestrano.sandbox --port 5001 --database sandbox.sqlite3 --app-host http://127.0.0.1:5000
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from werkzeug.serving import run_simple

from . import check_bind_host, create_app


def serve(
    *,
    host: str,
    port: int,
    database: str | None,
    app_host: str | None,
    extra: dict[str, Any] | None = None,
    allow_remote: bool = False,
) -> None:
    """Serve the sandbox on ``http://host:port`` until interrupted.

    Raises :class:`ValueError` for a ``host`` other machines can reach, unless ``allow_remote``.
    """
    check_bind_host(host, allow_remote=allow_remote)
    config: dict[str, Any] = dict(extra or {})
    config["SANDBOX_URL"] = config.get("SANDBOX_URL") or f"http://{host}:{port}"
    if database:
        config["SANDBOX_DATABASE"] = database
    if app_host and not config.get("SANDBOX_APPS"):
        config["SANDBOX_APPS"] = [{"id": "app-sandbox", "host": app_host}]
    sandbox = create_app(config)
    url = config["SANDBOX_URL"]
    print(f" * Maestrano sandbox: admin page {url}/, IdP {url}/api/v1/auth/saml")
    run_simple(host, port, sandbox, threaded=True, use_reloader=False)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m flask_maestrano.sandbox", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=5001, help="port (default 5001)")
    parser.add_argument("--database", help="SQLite file (default: instance folder)")
    parser.add_argument("--app-host", help="base URL of the app to register as app-sandbox (first run)")
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a --host other machines can reach (the admin page has no login)",
    )
    args = parser.parse_args(argv)
    try:
        check_bind_host(args.host, allow_remote=args.allow_remote)
    except ValueError as exc:
        sys.exit(str(exc))
    serve(
        host=args.host,
        port=args.port,
        database=args.database,
        app_host=args.app_host,
        allow_remote=args.allow_remote,
    )


if __name__ == "__main__":
    main()
