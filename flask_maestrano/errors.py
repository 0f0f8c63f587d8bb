"""The exception hierarchy of flask_maestrano.

Every error the extension raises is a :class:`MaestranoError`. Errors of calls to the
platform (account API, Connec!, developer platform, session check) are :class:`ApiError`
subclasses that carry the HTTP status, the raw body and the parsed JSON, so a caller can
tell a rejected request from an unreachable platform without parsing messages.
No message ever contains a secret (api.key, developer-platform secret, session token).
"""

from __future__ import annotations

from typing import Any


class MaestranoError(Exception):
    """Base class of every error raised by flask_maestrano."""


class ConfigurationError(MaestranoError):
    """A preset or a ``MAESTRANO_*`` setting is missing or invalid.

    ``preset`` and ``key`` name what is wrong, e.g. ``preset='production', key='api.id'``.
    """

    def __init__(self, message: str, *, preset: str | None = None, key: str | None = None) -> None:
        self.preset = preset
        self.key = key
        where = []
        if preset is not None:
            where.append(f"preset {preset!r}")
        if key is not None:
            where.append(f"key {key!r}")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class ApiError(MaestranoError):
    """A call to the platform failed.

    :ivar http_status: the HTTP status, or ``None`` when no response arrived.
    :ivar http_body: the raw response body (text), or ``None``.
    :ivar json_body: the parsed JSON body, or ``None`` when it was not JSON.
    :ivar code: a short machine-readable error code.
    """

    code = "api_error"

    def __init__(
        self,
        message: str,
        *,
        http_status: int | None = None,
        http_body: str | None = None,
        json_body: Any = None,
    ) -> None:
        self.message = message
        self.http_status = http_status
        self.http_body = http_body
        self.json_body = json_body
        super().__init__(message)

    def __str__(self) -> str:
        if self.http_status is not None:
            return f"(Status {self.http_status}) {self.message}"
        return self.message


class AuthenticationError(ApiError):
    """The platform rejected the credentials (HTTP 401)."""

    code = "authentication_error"


class InvalidRequestError(ApiError):
    """The platform rejected a parameter (HTTP 400/404, or ``success: false``).

    :ivar param: the offending field as the platform named it (e.g. ``"group_id"``), if any.
    """

    code = "invalid_request_error"

    def __init__(self, message: str, *, param: str | None = None, **kwargs: Any) -> None:
        self.param = param
        super().__init__(message, **kwargs)


class APIConnectionError(ApiError):
    """The platform could not be reached (DNS, refused connection, TLS, timeout)."""

    code = "connection_error"


class OutcomeUnknownError(APIConnectionError):
    """A non-idempotent call (POST) was sent but no answer arrived in time.

    The platform may or may not have carried it out, so it is not retried: check before
    sending it again (for a bill, list the group's bills).
    """

    code = "outcome_unknown"


class DevPlatformError(MaestranoError):
    """Auto-configuration from the developer platform failed."""


class SsoError(MaestranoError):
    """A single sign-on step failed.

    :ivar reason: a short machine-readable reason (``"replay"``, ``"invalid_signature"``...),
        logged and passed to the ``login_failed`` signal.
    """

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        self.message = message
        super().__init__(f"{reason}: {message}")


class StoreUnavailable(MaestranoError):
    """The server-side store could not keep or give back an entry (Redis down, or full).

    The SSO views answer it with a 503 page rather than a 500; :class:`StoreFull` is the
    in-process store refusing an entry over its budget.
    """


class StoreFull(StoreUnavailable, RuntimeError):
    """:class:`~flask_maestrano.store.MemoryStore` refused an entry over its budget."""
