"""Small helpers the Flask views share: a request body read within a limit, CSRF exemption."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Request
from werkzeug.exceptions import ClientDisconnected, RequestEntityTooLarge


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
