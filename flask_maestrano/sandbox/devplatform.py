"""The developer platform's marketplaces endpoint (PLATFORM.md 1.7): ``GET /api/config/v1/marketplaces``.

HTTP Basic with an app's developer-platform environment key/secret (``dev_platform_key`` /
``dev_platform_secret`` of the app, shown on the admin page); the answer lists that app's
marketplace in the exact shape the real platform used, pointing every host at the sandbox.
"""

from __future__ import annotations

import hmac
import sqlite3
from typing import Any

from flask import Blueprint, Flask, Response, jsonify, request

from .core import base_url, certificate, database
from .openid import marketplace_protocol

bp = Blueprint("devplatform", __name__)


def fingerprint(cert_pem: str) -> str:
    """SHA-1 fingerprint of a PEM certificate, ``aa:bb:...`` (what old SDKs compare)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    digest = x509.load_pem_x509_certificate(cert_pem.encode()).fingerprint(hashes.SHA1())  # noqa: S303
    return ":".join(f"{b:02x}" for b in digest)


def marketplace_for(app_row: sqlite3.Row, sandbox_url: str, cert_pem: str) -> dict[str, Any]:
    """One marketplace object of the developer-platform answer for a registered app."""
    name = app_row["marketplace"]
    return {
        "nid": f"{app_row['id']}-{name}",
        "marketplace": name,
        "environment": name,
        "app": {
            "host": app_row["host"],
            "synchronization_start_path": None,
            "synchronization_toggle_path": None,
            "synchronization_status_path": None,
        },
        "api": {"id": app_row["id"], "key": app_row["key"], "host": sandbox_url, "base": "/api/v1/"},
        "sso": {
            "idm": app_row["host"],
            "init_path": app_row["init_path"],
            "consume_path": app_row["consume_path"],
            "idp": sandbox_url,
            "x509_fingerprint": fingerprint(cert_pem),
            "x509_certificate": cert_pem,
        },
        "connec": {"host": sandbox_url, "base_path": "/api/v2", "timeout": 60},
        "webhooks": {
            "account": {"group_path": app_row["group_path"], "group_user_path": app_row["group_user_path"]},
            "connec": {
                "external_ids": bool(app_row["external_ids"]),
                "initialization_path": None,
                "notification_path": app_row["notification_path"],
            },
        },
    }


def environment_app(sandbox: Flask, key: str, secret: str) -> sqlite3.Row | None:
    """The app whose developer-platform environment credentials are ``key``/``secret``."""
    for row in database(sandbox).apps():
        key_ok = hmac.compare_digest(key.encode(), row["dev_platform_key"].encode())
        secret_ok = hmac.compare_digest(secret.encode(), row["dev_platform_secret"].encode())
        if key_ok & secret_ok:
            return row
    return None


@bp.get("/api/config/v1/marketplaces")
def marketplaces() -> Response:
    from flask import current_app

    auth = request.authorization
    row = None
    if auth is not None and auth.type == "basic" and auth.username and auth.password:
        row = environment_app(current_app._get_current_object(), auth.username, auth.password)  # type: ignore[attr-defined]
    if row is None:
        response = jsonify({"error": "Could not authenticate: invalid environment key or secret"})
        response.status_code = 401
        response.headers["WWW-Authenticate"] = 'Basic realm="Developer platform"'
        return response
    marketplace = marketplace_protocol(database(), row["id"], marketplace_for(row, base_url(), certificate()))
    return jsonify({"marketplaces": [marketplace]})
