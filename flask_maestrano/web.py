"""Small helpers the Flask views share: a request body read within a limit, CSRF exemption,
and the answer when the shared store is down."""

from __future__ import annotations

import html
import logging
from typing import Any

from flask import Blueprint, Flask, Request, Response, current_app, jsonify, request
from werkzeug.exceptions import ClientDisconnected, RequestEntityTooLarge

from . import signals
from .errors import StoreFull, StoreUnavailable

log = logging.getLogger("flask_maestrano")

#: Seconds a client is asked to wait when the shared store is down (``Retry-After``).
STORE_RETRY_AFTER = 30
#: The endpoints of a sign-in: a store failure there is also a ``login_failed``.
_SIGN_IN = ("maestrano.sso_", "maestrano.openid_")


def read_body(request: Request, limit: int, *, cache: bool = False) -> bytes:
    """The request body, or :class:`~werkzeug.exceptions.RequestEntityTooLarge` past ``limit`` bytes.

    A chunked body is bounded too: Werkzeug stops reading such a stream at the maximum
    without an error, so one byte more than allowed is read and refused when it arrives.
    """
    request.max_content_length = limit + 1
    length = request.content_length
    if not cache and length is not None and length <= limit and "stream" not in request.__dict__:
        # a declared length within the limit: read exactly that many bytes from the server's
        # stream in one call; Werkzeug's LimitedStream reads a large body in small chunks
        # and costs about a tenth of parsing it as JSON
        return _read_exactly(request.environ["wsgi.input"], length)
    body = request.get_data(cache=cache)
    if len(body) > limit:
        raise RequestEntityTooLarge()
    return body


def _read_exactly(stream: Any, length: int) -> bytes:
    """``length`` bytes of ``stream`` (a WSGI input never read beyond the declared length);
    :class:`~werkzeug.exceptions.ClientDisconnected` (400) when it ends sooner."""
    data = stream.read(length) if length else b""
    if len(data) == length:
        return bytes(data)
    chunks, received = [data], len(data)
    while received < length:
        chunk = stream.read(length - received)
        if not chunk:
            raise ClientDisconnected()
        chunks.append(chunk)
        received += len(chunk)
    return b"".join(chunks)


def exempt_from_csrf(app: Flask, blueprint: Blueprint | None = None) -> bool:
    """Exempt the extension's blueprint from Flask-WTF's CSRF check, when Flask-WTF is on the
    app (the platform's POSTs carry no CSRF token). Returns whether it was done."""
    csrf = app.extensions.get("csrf")
    target = blueprint if blueprint is not None else app.blueprints.get("maestrano")
    if csrf is None or target is None:
        return False
    csrf.exempt(target)
    return True


def exempt_before_csrf(endpoint: str | None, values: dict[str, Any] | None) -> None:
    """A ``url_value_preprocessor`` of the extension's blueprint: when Flask-WTF was
    initialised after Maestrano, exempt the blueprint before Flask-WTF's check. Flask runs
    it only for the blueprint's own routes and before any ``before_request`` function, so
    the host's requests do not pay for it."""
    exempt_from_csrf(current_app._get_current_object())  # type: ignore[attr-defined]


def store_unavailable(error: StoreUnavailable) -> Response:
    """The app's answer to :class:`~flask_maestrano.errors.StoreUnavailable` raised by any route
    (webhooks, notifications, sync endpoints, the session check, the host's own pages that read
    import statuses...): 503 with ``Retry-After`` and a message naming the shared store, never
    a bare 500. JSON on the extension's routes (the platform delivers again), a short page
    elsewhere. On a sign-in route it also sends :data:`~flask_maestrano.signals.login_failed`.
    Registered by ``init_app``; a host may register its own handler for the class instead.
    """
    full = isinstance(error, StoreFull)
    reason = "store_full" if full else "store_unavailable"
    message = (
        "the shared store of flask_maestrano is full, try again later"
        if full
        else "the shared store of flask_maestrano (MAESTRANO_STORE) is unavailable, try again later"
    )
    log.error("Maestrano: the shared store failed on %s %s: %s", request.method, request.path, error)
    endpoint = request.endpoint or ""
    if endpoint.startswith(_SIGN_IN):
        app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
        signals.login_failed.send(app, reason=reason, message=str(error), preset=None)
    if request.blueprint == "maestrano":
        response = jsonify(error=message, reason=reason)
    else:
        page = "<!doctype html>\n<title>Service unavailable</title>\n<h1>Service unavailable</h1>\n"
        response = Response(page + f"<p>{html.escape(message)}</p>\n", mimetype="text/html")
    response.status_code = 503
    response.headers["Retry-After"] = str(STORE_RETRY_AFTER)
    response.headers["Cache-Control"] = "no-store"
    return response
