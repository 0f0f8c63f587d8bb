"""The embedded Maestrano platform: a sandbox for development, demos and tests.

:func:`create_app` builds a Flask app that plays the whole platform, wire-compatible with the
real one: the SAML IdP and single-logout session check, the account API (bills, recurring
bills, users, groups), the Connec! API, the developer platform's marketplaces endpoint, and
the calls the platform makes to an app (account webhooks, Connec! notifications). State lives
in one SQLite file. Mount it under a prefix next to your app or run it alone::

    from werkzeug.middleware.dispatcher import DispatcherMiddleware
    from flask_maestrano.sandbox import create_app, preset_for

    sandbox = create_app({
        "SANDBOX_URL": "http://127.0.0.1:5000/sandbox",
        "SANDBOX_APPS": [{"id": "app-sandbox", "key": "sandbox-key", "host": "http://127.0.0.1:5000"}],
    })
    app.config["MAESTRANO_PRESETS"] = {"sandbox": preset_for(sandbox, "app-sandbox")}
    app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {"/sandbox": sandbox})
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from typing import Any

from flask import Flask, Request, jsonify, request
from flask.sessions import SecureCookieSessionInterface
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as WerkzeugResponse

from ..http import RedactUrlSecrets, install_redaction
from . import account, admin, connec, devplatform, idp, openid
from .actions import CallResult, cancel_group, edit_entity, push_notification, remove_member
from .core import EXTENSION, certificate, csrf_token, database
from .db import Database
from .devplatform import marketplace_for
from .openid import marketplace_protocol, set_protocol

__all__ = [
    "CallResult",
    "cancel_group",
    "check_bind_host",
    "create_app",
    "dev_platform_settings",
    "edit_entity",
    "preset_for",
    "push_notification",
    "remove_member",
]

DEFAULT_APP = {"id": "app-sandbox", "host": "http://127.0.0.1:5000"}
#: Largest request body the sandbox reads.
MAX_CONTENT_LENGTH = 16 * 1024 * 1024


class _PrefixSessionInterface(SecureCookieSessionInterface):
    """The session cookie is scoped to the sandbox's own mount point, not the host app's."""

    def get_cookie_path(self, app: Flask) -> str:
        configured = app.config.get("SESSION_COOKIE_PATH")
        if configured:
            return str(configured)
        return (request.script_root or "") + "/"


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the sandbox platform app.

    Config keys (all optional):

    ``SANDBOX_DATABASE``
        SQLite file; default ``<instance folder>/maestrano-sandbox.sqlite3``.
    ``SANDBOX_URL``
        The sandbox's public base URL (``http://127.0.0.1:5000/sandbox``), used in issued
        URLs; default: derived from each request.
    ``SANDBOX_APPS``
        Apps to register (or update) at start: dicts with ``id``, ``key``, ``host`` and
        optionally ``name``, ``marketplace`` (preset name, default ``"sandbox"``), ``protocol``
        (``"saml"``, the default, or ``"openid"``: which single sign-on the app uses), ``init_path``,
        ``consume_path``, ``group_path``, ``group_user_path``, ``notification_path``,
        ``external_ids``, ``dev_platform_key``, ``dev_platform_secret``. Missing keys and
        secrets are generated once and stored. With no app at all, ``app-sandbox`` on
        ``http://127.0.0.1:5000`` is created.
    ``SANDBOX_SEED``
        Create a first user (Jane Doe) and company (Acme Sandbox) on an empty database,
        using every app (default true).
    ``SANDBOX_SESSION_RECHECK``
        Seconds until an app should check a user's session again (``mno_session_recheck``
        and the session check's ``recheck``). Default 180, the platform's 3 minutes; the
        demo uses less so single logout shows quickly.

    >>> sandbox = create_app({"SANDBOX_DATABASE": "/tmp/sandbox.sqlite3"})  # doctest: +SKIP
    """
    config = dict(config or {})
    # the session check carries the user's session token in its query (PLATFORM.md 2.9):
    # keep it out of the development server's access log, as the platform keeps it out of its own
    install_redaction(("werkzeug",), RedactUrlSecrets(frozenset({"session"})))
    app = Flask(__name__, instance_relative_config=False)
    app.config.update(
        SESSION_COOKIE_NAME="maestrano_sandbox_session",
        SESSION_COOKIE_SAMESITE="Lax",
        MAX_CONTENT_LENGTH=MAX_CONTENT_LENGTH,
        SANDBOX_URL=None,
        SANDBOX_APPS=[],
        SANDBOX_SEED=True,
        SANDBOX_SESSION_RECHECK=180,
    )
    app.config.update(config)
    path = app.config.get("SANDBOX_DATABASE") or os.path.join(app.instance_path, "maestrano-sandbox.sqlite3")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    db = Database(str(path))
    app.extensions[EXTENSION] = db
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = db.setting_or_create("secret_key", lambda: secrets.token_urlsafe(32))
    app.session_interface = _PrefixSessionInterface()

    for entry in app.config["SANDBOX_APPS"]:
        if not isinstance(entry, dict) or not entry.get("id"):
            raise ValueError("each SANDBOX_APPS entry must be a dict with at least an 'id'")
        db.upsert_app(entry)
        if entry.get("protocol"):
            set_protocol(db, str(entry["id"]), str(entry["protocol"]))
    if not db.apps():
        db.upsert_app(DEFAULT_APP)
    certificate(app)  # generate the IdP key pair now, not in the middle of a login
    if app.config["SANDBOX_SEED"] and not db.users():
        _seed(db)

    app.register_blueprint(idp.bp)
    app.register_blueprint(openid.bp)
    app.register_blueprint(account.bp, url_prefix="/api/v1")
    app.register_blueprint(connec.bp)
    app.register_blueprint(devplatform.bp)
    app.register_blueprint(admin.bp)
    app.jinja_env.globals["csrf_token"] = csrf_token
    app.register_error_handler(HTTPException, _http_error)
    return app


def _seed(db: Database) -> None:
    user = db.create_user(
        name="Jane", surname="Doe", email="jane.doe@example.com", company_name="Acme Sandbox"
    )
    group = db.create_group(name="Acme Sandbox")
    db.set_membership(group, user, "Admin")
    for row in db.apps():
        db.attach(row["id"], group)


SYSTEM_ERROR = (
    "A system error occured. Please retry later or contact support@maestrano.com if the issue persists."
)


def _http_error(error: HTTPException) -> WerkzeugResponse | HTTPException:
    """JSON errors under the APIs, plain text elsewhere; never a stack trace."""
    req: Request = request
    path = req.path
    status = error.code or 500
    if path.startswith("/api/v1/"):
        # the platform's own envelope: ``errors.system`` for its failures (PLATFORM.md 5.3)
        message = SYSTEM_ERROR if status >= 500 else error.description or error.name
        errors = {"system" if status >= 500 else "request": [message]}
        response = jsonify({"success": False, "errors": errors, "data": {}})
    elif path.startswith(("/api/", "/batch")):
        response = jsonify(connec.error_body(status, error.description or error.name))
    else:
        return WerkzeugResponse(
            f"{status} {error.name}: {error.description}", status=status, mimetype="text/plain"
        )
    response.status_code = status
    return response


def check_bind_host(host: str, *, allow_remote: bool = False) -> None:
    """Refuse to serve the sandbox on an interface other machines can reach.

    The admin page has no login: it shows every app's keys and signs anyone in as anyone.
    ``127.0.0.1``, ``::1`` and ``localhost`` are fine; any other address or name raises
    :class:`ValueError` unless ``allow_remote`` (``--allow-remote``, ``SANDBOX_ALLOW_REMOTE=1``).
    """
    if allow_remote or host == "localhost":
        return
    try:
        if ipaddress.ip_address(host.strip("[]")).is_loopback:
            return
    except ValueError:
        pass  # a host name: it may resolve to any interface
    raise ValueError(
        f"refusing to serve the sandbox on {host}: its admin page has no login and shows the API "
        "keys, so it listens on 127.0.0.1 only. Pass --allow-remote (python -m flask_maestrano.sandbox) "
        "or set SANDBOX_ALLOW_REMOTE=1 (make demo) if every machine that can reach it is trusted."
    )


def preset_for(
    sandbox: Flask, app_id: str | None = None, *, sandbox_url: str | None = None
) -> dict[str, Any]:
    """The preset (developer-platform marketplace object) an app uses to talk to this sandbox.

    ``api.host``, ``sso.idp`` and ``connec.host`` are the sandbox URL (``sandbox_url`` or the
    sandbox's ``SANDBOX_URL``), ``sso.x509_certificate`` is the sandbox IdP certificate, and
    the ids, key and paths are those of the registered app ``app_id`` (default: the only or
    first app). Use it as one entry of ``MAESTRANO_PRESETS``::

        app.config["MAESTRANO_PRESETS"] = {"sandbox": preset_for(sandbox, "app-sandbox")}
    """
    db = database(sandbox)
    rows = db.apps()
    row = db.app(app_id) if app_id is not None else (rows[0] if rows else None)
    if row is None:
        raise LookupError(f"no app {app_id!r} is registered in the sandbox")
    url = (sandbox_url or sandbox.config.get("SANDBOX_URL") or "").rstrip("/")
    if not url:
        raise ValueError("pass sandbox_url= or configure SANDBOX_URL on the sandbox")
    return marketplace_protocol(db, row["id"], marketplace_for(row, url, certificate(sandbox)))


def dev_platform_settings(
    sandbox: Flask, app_id: str | None = None, *, sandbox_url: str | None = None
) -> dict[str, str]:
    """The five developer-platform settings (``MNO_DEVPL_*`` names) that point at this sandbox.

    ``{"MNO_DEVPL_HOST", "MNO_DEVPL_API_PATH", "MNO_DEVPL_ENV_NAME", "MNO_DEVPL_ENV_KEY",
    "MNO_DEVPL_ENV_SECRET"}``, ready for :meth:`flask_maestrano.devplatform.DevPlatformSettings.load`
    as ``environ``.
    """
    db = database(sandbox)
    rows = db.apps()
    row = db.app(app_id) if app_id is not None else (rows[0] if rows else None)
    if row is None:
        raise LookupError(f"no app {app_id!r} is registered in the sandbox")
    url = (sandbox_url or sandbox.config.get("SANDBOX_URL") or "").rstrip("/")
    if not url:
        raise ValueError("pass sandbox_url= or configure SANDBOX_URL on the sandbox")
    return {
        "MNO_DEVPL_HOST": url,
        "MNO_DEVPL_API_PATH": "/api/config/v1/marketplaces",
        "MNO_DEVPL_ENV_NAME": row["marketplace"],
        "MNO_DEVPL_ENV_KEY": row["dev_platform_key"],
        "MNO_DEVPL_ENV_SECRET": row["dev_platform_secret"],
    }
