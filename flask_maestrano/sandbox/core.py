"""Helpers shared by the sandbox views: the database, the public URL, credentials, keys."""

from __future__ import annotations

import hmac
import secrets
import sqlite3
from typing import Any

from flask import Flask, abort, current_app, has_request_context, request, session

from ..saml_idp import generate_keypair
from .db import Database

EXTENSION = "maestrano_sandbox"


def database(app: Flask | None = None) -> Database:
    """The sandbox database of ``app`` (default: the current app)."""
    target: Any = app if app is not None else current_app
    db: Database = target.extensions[EXTENSION]
    return db


def base_url(app: Flask | None = None) -> str:
    """The sandbox's public base URL: ``SANDBOX_URL``, else derived from the current request."""
    target: Any = app if app is not None else current_app
    configured = target.config.get("SANDBOX_URL")
    if configured:
        return str(configured).rstrip("/")
    if has_request_context():
        return (request.host_url.rstrip("/") + request.script_root).rstrip("/")
    raise RuntimeError("SANDBOX_URL is not configured and there is no request to derive it from")


def keypair(app: Flask | None = None) -> tuple[str, str]:
    """The IdP's (key_pem, cert_pem), generated on first use and kept in the sandbox database."""

    def create() -> list[str]:
        key_pem, cert_pem = generate_keypair("maestrano-sandbox")
        return [key_pem, cert_pem]

    key_pem, cert_pem = database(app).setting_or_create("idp_keypair", create)
    return str(key_pem), str(cert_pem)


def certificate(app: Flask | None = None) -> str:
    """The IdP certificate (PEM) apps must trust."""
    return keypair(app)[1]


def _matches(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def authenticated_app() -> sqlite3.Row | None:
    """The registered app whose id/key are the request's HTTP Basic credentials, if any."""
    auth = request.authorization
    if auth is None or auth.type != "basic" or not auth.username or not auth.password:
        return None
    row = database().app(auth.username)
    if row is None or not _matches(auth.password, row["key"]):
        return None
    return row


def csrf_token() -> str:
    """The sandbox form token of this browser session."""
    token = session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(24)
        session["csrf"] = token
    return token


def check_csrf() -> None:
    """Reject a sandbox form post without this session's token (400)."""
    given = request.form.get("csrf_token", "")
    expected = session.get("csrf")
    if not isinstance(expected, str) or not _matches(given, expected):
        abort(400, "The form expired or did not come from this sandbox: reload the page and submit again.")
