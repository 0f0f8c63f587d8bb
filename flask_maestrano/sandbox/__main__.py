"""``python -m flask_maestrano.sandbox``: run the sandbox platform alone.

python -m flask_maestrano.sandbox --port 5001 --database sandbox.sqlite3 --app-host http://127.0.0.1:5000
"""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Any

from flask import Flask
from werkzeug.serving import run_simple

from . import check_bind_host, create_app, dev_platform_settings
from .core import database

#: the app registered when none is named
DEFAULT_APP_ID = "app-sandbox"


def build(
    *,
    host: str,
    port: int,
    database: str | None,
    app_host: str | None,
    app_id: str | None = None,
    app_key: str | None = None,
    recheck: float | None = None,
    extra: dict[str, Any] | None = None,
) -> Flask:
    """The sandbox served on ``http://host:port``, with the app ``app_id`` registered or updated.

    ``app_host``/``app_key`` update the app (``app_id``, default ``app-sandbox``) when given and
    are kept from the database otherwise; a new app gets a generated key. ``recheck`` is
    ``SANDBOX_SESSION_RECHECK`` (seconds).
    """
    config: dict[str, Any] = dict(extra or {})
    config["SANDBOX_URL"] = config.get("SANDBOX_URL") or f"http://{host}:{port}"
    if database:
        config["SANDBOX_DATABASE"] = database
    if recheck is not None:
        config["SANDBOX_SESSION_RECHECK"] = recheck
    if (app_host or app_id or app_key) and not config.get("SANDBOX_APPS"):
        config["SANDBOX_APPS"] = [{"id": app_id or DEFAULT_APP_ID, "host": app_host, "key": app_key}]
    return create_app(config)


def environment_lines(sandbox: Flask, app_id: str | None = None) -> list[str]:
    """``export NAME=value`` lines that point an app at this sandbox through auto-configuration.

    The five ``MNO_DEVPL_*`` variables of ``app_id`` (default: the first app) and
    ``FLASK_MAESTRANO_AUTO_CONFIGURE=true`` (read by ``app.config.from_prefixed_env()``).
    """
    settings = dev_platform_settings(sandbox, app_id)
    settings["FLASK_MAESTRANO_AUTO_CONFIGURE"] = "true"
    return [f"export {name}={shlex.quote(value)}" for name, value in settings.items()]


def describe(sandbox: Flask, app_id: str | None = None) -> str:
    """What the sandbox serves and the lines to paste into the app's shell."""
    url = sandbox.config["SANDBOX_URL"]
    rows = database(sandbox).apps()
    row = database(sandbox).app(app_id) if app_id else rows[0]
    assert row is not None
    recheck = float(sandbox.config["SANDBOX_SESSION_RECHECK"])
    lines = [
        f" * Maestrano sandbox: admin page {url}/, IdP {url}/api/v1/auth/saml",
        f" * App {row['id']} at {row['host']}: api key {row['key']} (sessions checked every {recheck:g} s)",
        " * Paste these lines into the shell that runs the app, then start it:",
        "",
        *environment_lines(sandbox, row["id"]),
        "",
    ]
    return "\n".join(lines)


def serve(
    *,
    host: str,
    port: int,
    database: str | None,
    app_host: str | None,
    extra: dict[str, Any] | None = None,
    app_id: str | None = None,
    app_key: str | None = None,
    recheck: float | None = None,
    print_env: bool = False,
    allow_remote: bool = False,
) -> None:
    """Serve the sandbox on ``http://host:port`` until interrupted.

    With ``print_env``, only print the ``export`` lines for the app and return. Raises
    :class:`ValueError` for a ``host`` other machines can reach, unless ``allow_remote``
    (the admin page has no login).
    """
    if not print_env:
        check_bind_host(host, allow_remote=allow_remote)
    sandbox = build(
        host=host,
        port=port,
        database=database,
        app_host=app_host,
        app_id=app_id,
        app_key=app_key,
        recheck=recheck,
        extra=extra,
    )
    target = app_id or (DEFAULT_APP_ID if app_host or app_key else None)
    if print_env:
        print("\n".join(environment_lines(sandbox, target)), flush=True)
        return
    print(describe(sandbox, target), flush=True)
    run_simple(host, port, sandbox, threaded=True, use_reloader=False)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m flask_maestrano.sandbox", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=5001, help="port (default 5001)")
    parser.add_argument("--database", help="SQLite file (default: instance folder)")
    parser.add_argument("--app-host", help="base URL of the app to register (default http://127.0.0.1:5000)")
    parser.add_argument("--app-id", help=f"id of the app to register or update (default {DEFAULT_APP_ID})")
    parser.add_argument("--app-key", help="API key of the app (default: generated once and kept)")
    parser.add_argument(
        "--recheck", type=float, help="SANDBOX_SESSION_RECHECK: seconds between session checks (default 180)"
    )
    parser.add_argument(
        "--print-env", action="store_true", help="print the MNO_DEVPL_* export lines for the app and exit"
    )
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a --host other machines can reach (the admin page has no login)",
    )
    args = vars(parser.parse_args(argv))
    try:
        serve(**args)
    except ValueError as exc:
        sys.exit(str(exc))


if __name__ == "__main__":
    main()
