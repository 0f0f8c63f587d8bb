"""HTTP Basic authentication of the platform's calls to the app (SECURITY.md 10).

The platform authenticates with the preset's ``api.id`` / ``api.key``. Comparison is in
constant time on bytes; a failure is a 401 with ``WWW-Authenticate: Basic`` and the JSON
body ``{"error": "Invalid credentials"}``, as the old SDKs answered.
"""

from __future__ import annotations

from collections.abc import Iterable

from flask import Request, jsonify
from werkzeug.exceptions import Unauthorized

from .presets import Preset, find_preset_by_credentials


class InvalidCredentials(Unauthorized):
    """401 for a platform call without valid credentials. A host can restyle it with
    ``app.register_error_handler(InvalidCredentials, ...)``."""

    description = "Invalid credentials"

    def __init__(self) -> None:
        response = jsonify(error="Invalid credentials")
        response.status_code = 401
        response.headers["WWW-Authenticate"] = 'Basic realm="maestrano"'
        super().__init__(response=response)


def basic_credentials(request: Request) -> tuple[str, str] | None:
    """The ``(username, password)`` of an ``Authorization: Basic`` header, if well formed."""
    auth = request.authorization
    if auth is None or auth.type != "basic":
        return None
    if auth.username is None or auth.password is None:
        return None
    return auth.username, auth.password


def authenticated_preset(request: Request, candidates: Iterable[Preset]) -> Preset:
    """The candidate preset whose credentials the request carries, else raise 401.

    Every candidate is compared (no early exit) so timing does not tell which preset
    names exist; credentials of a preset outside ``candidates`` never pass.
    """
    credentials = basic_credentials(request)
    if credentials is None:
        raise InvalidCredentials()
    found = find_preset_by_credentials(candidates, *credentials)
    if found is None:
        raise InvalidCredentials()
    return found
