"""Small helpers the Flask views share: a request body read within a limit, CSRF exemption."""

from __future__ import annotations

from flask import Blueprint, Flask, Request
from werkzeug.exceptions import RequestEntityTooLarge


def read_body(request: Request, limit: int, *, cache: bool = False) -> bytes:
    """The request body, or :class:`~werkzeug.exceptions.RequestEntityTooLarge` past ``limit`` bytes.

    A chunked body is bounded too: Werkzeug stops reading such a stream at the maximum
    without an error, so one byte more than allowed is read and refused when it arrives.
    """
    request.max_content_length = limit + 1
    body = request.get_data(cache=cache)
    if len(body) > limit:
        raise RequestEntityTooLarge()
    return body


def exempt_from_csrf(app: Flask, blueprint: Blueprint | None = None) -> bool:
    """Exempt the extension's blueprint from Flask-WTF's CSRF check, when Flask-WTF is on the
    app (the platform's POSTs carry no CSRF token). Returns whether it was done."""
    csrf = app.extensions.get("csrf")
    target = blueprint if blueprint is not None else app.blueprints.get("maestrano")
    if csrf is None or target is None:
        return False
    csrf.exempt(target)
    return True
