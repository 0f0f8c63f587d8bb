"""Bind a pending OpenID login to the browser that started it (no login CSRF).

Init sets a cookie holding a random secret and keeps only the secret's SHA-256 with the
pending login; consume requires the cookie. An attacker who starts a login and sends the
provider's answer to a victim's browser gets a refusal: the victim's browser has no secret
for that login. The provider sends the browser back with a top-level GET (or a form POST
from its page) to ``return_to``, so a ``SameSite=Lax`` cookie is sent with a GET; the cookie's
name carries the login's token, so logins started in two tabs do not overwrite each other.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

from werkzeug.wrappers import Response

from ..presets import Preset

__all__ = ["bind", "cookie_name", "digest", "matches", "new_secret", "unbind"]

COOKIE_PREFIX = "mno_openid_"


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    """What the store keeps: the secret's SHA-256 (the store never holds the cookie value)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def cookie_name(token: str) -> str:
    return COOKIE_PREFIX + token[:22]


def _path(preset: Preset) -> str:
    return urlsplit(preset.openid_return_to).path or "/"


def bind(response: Response, preset: Preset, token: str, secret: str, ttl: float) -> None:
    """Set the login's cookie on the init response."""
    response.set_cookie(
        cookie_name(token),
        secret,
        max_age=int(ttl),
        path=_path(preset),
        secure=preset.openid_return_to.startswith("https://"),
        httponly=True,
        samesite="Lax",
    )


def matches(cookie: str | None, expected_digest: str) -> bool:
    """Whether the browser's cookie is the secret of this login (constant time)."""
    if not cookie or not expected_digest:
        return False
    return hmac.compare_digest(digest(cookie).encode(), expected_digest.encode())


def unbind(response: Response, preset: Preset, token: str) -> None:
    """Delete the login's cookie once it served."""
    response.delete_cookie(
        cookie_name(token),
        path=_path(preset),
        secure=preset.openid_return_to.startswith("https://"),
        httponly=True,
        samesite="Lax",
    )
