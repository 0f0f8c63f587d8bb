"""The Maestrano session beside the web session, the single-logout check, and logout.

The fields of PLATFORM.md 2.8's object ``{uid, session, session_recheck, group_uid, preset}``
are kept out of the Flask session, which every request of the host decodes: the user's
marketplace session (uid, token, group, preset) is a cookie of its own (``<session cookie
name>_maestrano``, see :func:`session_cookie_name`), signed with the app's secret key and
read only when it is needed (a single-logout check is due, logout, :func:`current_session`).
The Flask session keeps one integer, ``session["_mno"]``: the recheck time in whole seconds
shifted left by 30 bits, plus the random value drawn at each login (30 bits) that the cookie
is bound to; it stays a signed 64-bit integer (until the year 2242), the range of the session
serializers a host may use (an orjson JSON provider, Flask-Session's msgpack). Every byte
and key of the Flask session is decoded on every request of the host, so the per-request
check costs one dictionary lookup, a shift and one comparison until a check is due. Without
single logout there is no recheck time: the random value alone is under
``session["maestrano_login"]``.

What keeps it safe: the recheck time is in the signed Flask session, so a client can
neither forge nor postpone it. The Maestrano cookie's signature covers its fields *and* the
Flask session it belongs to (Flask-Login's user id and a random value drawn at each login,
not the recheck time, so a late response that restores an earlier recheck time only brings
the check forward): it is refused in another user's session, in a later login of the same
user or after a logout, and a check that is due without a valid cookie ends the session.
It has the session cookie's attributes (``HttpOnly``, ``Secure``, ``SameSite``, domain,
path, expiry) and at most :data:`MAX_COOKIE_SIZE` characters, checked before anything is
decoded. Logout, single logout and Flask-Login's ``logout_user()`` clear both. Sessions written before (the
compact list or the object under ``session["maestrano"]``, or the old SDKs' base64 string)
are still read, and move to the cookie at their next check; so are the recheck time and
random value of the previous cookie format (``session["maestrano_recheck"]`` and
``session["maestrano_login"]``), which move to ``session["_mno"]`` at their next check.

When a check is due, one ``GET`` to the preset's session-check URL decides:
``{"valid": true, "recheck": "<iso>"}`` keeps the session until the new recheck time (never
more than ``MAESTRANO_SESSION_CHECK_MAX_RECHECK`` seconds ahead, whatever the answer says);
anything else ends it (``logout_user()``, every Maestrano key removed, redirect to the init
URL keeping ``group_id``). The whole call has one deadline,
``MAESTRANO_SESSION_CHECK_TIMEOUT`` seconds of wall-clock time (2 s by default: a request
waits for it), and reads at most ``MAESTRANO_SESSION_CHECK_MAX_SIZE`` bytes; a redirect is
never followed. An unreachable platform, a 5xx, a redirect, a late or oversized answer end
the session too unless ``MAESTRANO_SESSION_CHECK_FAIL_OPEN`` is true.

So that a failing platform cannot take the app down, the checks go through a circuit breaker
shared by the workers (:mod:`flask_maestrano.breaker`, per preset): after
``MAESTRANO_SESSION_CHECK_BREAKER_FAILURES`` failures in a row the platform is not called for
``MAESTRANO_SESSION_CHECK_BREAKER_COOLDOWN`` seconds and the fail-open/fail-closed policy
applies at once; then one request in the deployment probes. Recheck times are spread: each
comes up to ``MAESTRANO_SESSION_CHECK_JITTER`` of its delay earlier (never later), so users
who logged in together do not all check at once.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import logging
import math
import random
import secrets
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from flask import Flask, after_this_request, has_request_context, redirect, request, session
from flask_login import logout_user  # type: ignore[import-untyped]
from itsdangerous import Signer
from werkzeug.wrappers import Response

from .. import signals
from ..errors import ApiError
from ..http import fetch_within
from ..presets import Preset
from ..state import MaestranoState, current, get_state
from .identity import format_time, parse_time

log = logging.getLogger("flask_maestrano")

__all__ = [
    "MAX_COOKIE_SIZE",
    "SESSION_KEYS",
    "MaestranoSession",
    "SessionTooLarge",
    "check_session",
    "clear_session",
    "logout_url",
    "maestrano_logout",
    "session_cookie_name",
]

SESSION_KEY = "maestrano"
#: ``recheck << LOGIN_BITS | login``: the recheck time (whole seconds) and the login's random
#: value in one short key of one integer (Flask's session tag scan and its signed bytes cost
#: every request of the host, per key and per byte)
CHECK_KEY = "_mno"
#: the bits of the random value drawn at each login, which the Maestrano cookie's signature
#: covers, so the cookie of an earlier login of the same user never passes (even for the
#: same recheck second; one chance in 2**30 per pair of logins, and then only until that
#: cookie's own token fails a check). With a recheck time below 2**33 (the year 2242) the
#: packed value is a signed 64-bit integer: orjson, msgpack and BSON refuse larger ones, so
#: a host serialising its session with them could not log anyone in.
LOGIN_BITS = 30
_LOGIN_MASK = (1 << LOGIN_BITS) - 1
#: the random value alone, when single logout is off (no recheck time); before ``CHECK_KEY``
#: existed, a string beside ``RECHECK_KEY``
LOGIN_KEY = "maestrano_login"
#: the recheck time of the previous format (a number), still read
RECHECK_KEY = "maestrano_recheck"
#: Every web-session key the extension writes or the old SDKs wrote; purged together.
SESSION_KEYS = (
    SESSION_KEY,
    CHECK_KEY,
    RECHECK_KEY,
    LOGIN_KEY,
    "mno_uid",
    "mno_session",
    "mno_session_recheck",
    "mno_group_uid",
)
#: The longest Maestrano cookie value written or read (characters); a longer one is refused
#: when written (the login fails) and ignored unread when it arrives.
MAX_COOKIE_SIZE = 1536
#: Flask-Login's key for the logged-in user's id, part of what the cookie is bound to
_USER_KEY = "_user_id"
_SALT = "flask-maestrano.session"
#: in the request's WSGI environ: the Maestrano cookie value to write with this response
_PENDING = "flask_maestrano.session_cookie"
_NUMBER = (int, float)  # a tuple built once (``int | float`` would build a union per call)


class SessionTooLarge(ValueError):
    """The Maestrano session would not fit in :data:`MAX_COOKIE_SIZE` characters."""


@dataclass(frozen=True)
class MaestranoSession:
    """The user's marketplace session as kept in the web session."""

    #: the marketplace user's real uid, ``usr-1234``
    uid: str
    #: the marketplace session token the platform checks
    session: str
    #: when the session must be checked again, aware UTC
    session_recheck: dt.datetime
    #: the group the user logged in for, ``cld-1234``
    group_uid: str
    #: the name of the preset (marketplace) of the login
    preset: str

    def to_dict(self) -> dict[str, str]:
        """The JSON object of PLATFORM.md 2.8 (what the old SDKs base64-encode)."""
        return {
            "uid": self.uid,
            "session": self.session,
            "session_recheck": format_time(self.session_recheck),
            "group_uid": self.group_uid,
            "preset": self.preset,
        }

    def encode(self) -> str:
        """Base64 JSON, the old SDKs' encoding of the same object."""
        return base64.b64encode(json.dumps(self.to_dict()).encode()).decode("ascii")

    def to_list(self) -> list[Any]:
        """The compact form kept in the cookie: ``[uid, session, recheck, group_uid, preset]``
        with the recheck time as a POSIX timestamp.

        Every request decodes the signed cookie, so every byte of it costs every request:
        this list is about half the size of :meth:`to_dict` once signed and encoded.
        """
        recheck = self.session_recheck.timestamp()
        return [
            self.uid,
            self.session,
            int(recheck) if recheck.is_integer() else recheck,
            self.group_uid,
            self.preset,
        ]

    @classmethod
    def decode(cls, value: Any, default_preset: str | None = None) -> MaestranoSession | None:
        """Read the compact list of :meth:`to_list`, the object of :meth:`to_dict`, or any
        SDK's base64 encoding of it (with or without newlines, any ISO-8601 form); ``None``
        when it is unreadable."""
        try:
            if isinstance(value, list):
                return cls._from_list(value, default_preset)
            data = value if isinstance(value, dict) else json.loads(base64.b64decode("".join(value.split())))
            return cls(
                uid=str(data["uid"]),
                session=str(data["session"]),
                session_recheck=parse_time(str(data["session_recheck"])),
                group_uid=str(data.get("group_uid") or ""),
                preset=str(data.get("preset") or default_preset or ""),
            )
        except (binascii.Error, ValueError, KeyError, TypeError, AttributeError, OverflowError):
            return None

    @classmethod
    def _from_list(cls, value: list[Any], default_preset: str | None) -> MaestranoSession | None:
        if len(value) != 5 or not all(isinstance(item, str) for item in value[:2] + value[3:]):
            return None
        uid, token, recheck, group_uid, preset = value
        if isinstance(recheck, bool) or not isinstance(recheck, int | float):
            return None
        when = dt.datetime.fromtimestamp(recheck, dt.timezone.utc)
        return cls(uid, token, when, group_uid, preset or default_preset or "")

    def store(self, web_session: MutableMapping[str, Any], *, slo: bool) -> None:
        """Write the session: in a request, the recheck time into ``web_session`` (only when
        single logout is on) and the rest into the Maestrano cookie of the response, bound
        to ``web_session``'s user and login (log the user in first). Outside a
        request, everything goes into ``web_session`` (the previous format).

        Raises :class:`SessionTooLarge` when the cookie would exceed :data:`MAX_COOKIE_SIZE`.
        """
        if not has_request_context():
            for key in (CHECK_KEY, LOGIN_KEY):  # a packed recheck time would hide the one below
                web_session.pop(key, None)
            web_session[SESSION_KEY] = self.to_list()
            self._store_recheck(web_session, slo)
            return
        login = _login_of(web_session)
        if type(login) is not int or not 0 <= login <= _LOGIN_MASK:
            # a login (session.clear() before), or a session of a previous format: a new value
            login = secrets.randbits(LOGIN_BITS)
        cookie = self._cookie_value(web_session.get(_USER_KEY), login)  # nothing written if too large
        for key in (SESSION_KEY, RECHECK_KEY, LOGIN_KEY):  # a session of a previous format moves out
            web_session.pop(key, None)
        if slo:
            web_session[CHECK_KEY] = math.floor(self.session_recheck.timestamp()) << LOGIN_BITS | login
        else:
            web_session.pop(CHECK_KEY, None)
            web_session[LOGIN_KEY] = login
        _set_cookie(cookie)

    def with_recheck(self, recheck: dt.datetime) -> MaestranoSession:
        """The same session with another recheck time."""
        return MaestranoSession(self.uid, self.session, recheck, self.group_uid, self.preset)

    def _recheck_value(self) -> int | float:
        recheck = self.session_recheck.timestamp()
        return int(recheck) if recheck.is_integer() else recheck

    def _store_recheck(self, web_session: MutableMapping[str, Any], slo: bool) -> None:
        """The format written outside a request (no Maestrano cookie to bind)."""
        if slo:
            web_session[RECHECK_KEY] = self._recheck_value()
        else:
            web_session.pop(RECHECK_KEY, None)

    def _cookie_value(self, user: Any, login: int) -> str:
        fields = [self.uid, self.session, self.group_uid, self.preset]
        payload = base64.urlsafe_b64encode(json.dumps(fields, separators=(",", ":")).encode())
        payload = payload.rstrip(b"=")
        signature = _signer().get_signature(_bound(payload, user, login))
        value = (payload + b"." + signature).decode("ascii")
        if len(value) > MAX_COOKIE_SIZE:
            raise SessionTooLarge(
                f"the Maestrano session takes {len(value)} characters, more than {MAX_COOKIE_SIZE}"
            )
        return value

    @classmethod
    def from_cookie(
        cls, value: str | None, web_session: MutableMapping[str, Any], default_preset: str | None = None
    ) -> MaestranoSession | None:
        """The session in a Maestrano cookie value if it is signed with the app's key for
        ``web_session`` (the same user and login), else ``None``. The recheck time
        is ``web_session``'s (the epoch when single logout is off). Needs an app context."""
        if not value or len(value) > MAX_COOKIE_SIZE or value.count(".") != 1:
            return None
        payload, signature = value.encode("ascii", "replace").split(b".")
        packed = web_session.get(CHECK_KEY)
        recheck: Any
        if packed is not None:
            if type(packed) is not int:
                return None
            recheck = packed >> LOGIN_BITS
        else:  # single logout off, or the previous format
            recheck = web_session.get(RECHECK_KEY)
            if recheck is not None and (isinstance(recheck, bool) or not isinstance(recheck, _NUMBER)):
                return None
        bound = _bound(payload, web_session.get(_USER_KEY), _login_of(web_session))
        if not _signer().verify_signature(bound, signature):
            return None
        try:
            fields = json.loads(base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4)))
            uid, token, group_uid, preset = fields
            if not all(isinstance(item, str) for item in fields):
                return None
            when = dt.datetime.fromtimestamp(recheck or 0, dt.timezone.utc)
        except (binascii.Error, ValueError, TypeError, OverflowError, OSError):
            return None
        return cls(uid, token, when, group_uid, preset or default_preset or "")


def session_cookie_name(app: Flask) -> str:
    """The name of the Maestrano cookie: the app's session cookie name + ``_maestrano``."""
    return f"{app.session_interface.get_cookie_name(app)}_maestrano"


def _signer() -> Signer:
    """HMAC-SHA256 with the app's secret key (and ``SECRET_KEY_FALLBACKS`` for reading), a
    salt of its own so no other signed value of the app can pass for a Maestrano cookie."""
    app: Flask = current()
    keys = [*(app.config.get("SECRET_KEY_FALLBACKS") or ()), app.secret_key]
    if not app.secret_key:
        raise RuntimeError("the Maestrano session needs the app's SECRET_KEY")
    return Signer(keys, salt=_SALT, key_derivation="hmac", digest_method=hashlib.sha256)


def _login_of(web_session: MutableMapping[str, Any]) -> int | str | None:
    """The login's random value in ``web_session``: the low bits of ``CHECK_KEY``, else
    ``LOGIN_KEY`` (an int without single logout; a string in the previous format)."""
    packed = web_session.get(CHECK_KEY)
    if type(packed) is int:
        return packed & _LOGIN_MASK
    login = web_session.get(LOGIN_KEY)
    return login if type(login) is int or isinstance(login, str) else None


def _bound(payload: bytes, user: Any, login: int | str | None) -> bytes:
    """What the signature covers: the fields and the Flask session they belong to (its user and
    its login's random value; the fields never change within a login, so the recheck time
    adds nothing, and binding it would end a session whose earlier recheck time a late
    response restored). An int and a string login value never sign the same bytes."""
    return payload + b"\x00" + json.dumps([user, login], separators=(",", ":")).encode()


def _set_cookie(value: str | None) -> None:
    """Write (or with ``None`` delete) the Maestrano cookie when this request's response
    goes out, with the session cookie's attributes; the last call of a request wins."""
    environ = request.environ
    pending = environ.get(_PENDING)
    environ[_PENDING] = (value,)
    if pending is not None:
        return

    @after_this_request
    def write(response: Response) -> Response:
        (final,) = environ[_PENDING]
        app: Flask = current()
        interface = app.session_interface
        options: dict[str, Any] = {
            "domain": interface.get_cookie_domain(app),
            "path": interface.get_cookie_path(app),
            "secure": interface.get_cookie_secure(app),
            "httponly": interface.get_cookie_httponly(app),
            "samesite": interface.get_cookie_samesite(app),
        }
        if hasattr(interface, "get_cookie_partitioned"):
            options["partitioned"] = interface.get_cookie_partitioned(app)
        name = session_cookie_name(app)
        if final is None:
            if name in request.cookies:
                response.delete_cookie(name, **options)
        else:
            expires = interface.get_expiration_time(app, session)
            response.set_cookie(name, final, expires=expires, **options)
        response.vary.add("Cookie")
        return response


def jitter(until: float, now: float, share: float) -> float:
    """How many seconds earlier than ``until`` to check: random, at most ``share`` of the
    delay from ``now`` (never negative: a check never comes later than the platform said)."""
    return random.uniform(0.0, share) * max(0.0, until - now)  # noqa: S311 - spread, not a secret


def spread(mno: MaestranoSession, now: float, share: float) -> MaestranoSession:
    """``mno`` with its recheck time moved earlier by :func:`jitter`, so that users who log
    in (or are checked) together do not all come back for their check together."""
    until = mno.session_recheck.timestamp()
    # whole seconds (never later than the platform said): the recheck time travels in the
    # session cookie of every request, where a float's digits cost bytes to sign and decode
    spread_to = math.floor(until - jitter(until, now, share))
    return mno.with_recheck(dt.datetime.fromtimestamp(spread_to, dt.timezone.utc))


def clear_session(web_session: MutableMapping[str, Any]) -> None:
    """Remove every Maestrano key from the web session and, in a request, the Maestrano
    cookie from the browser."""
    for key in SESSION_KEYS:
        web_session.pop(key, None)
    if has_request_context():
        _set_cookie(None)


def current_session(state: MaestranoState | None = None) -> MaestranoSession | None:
    """The Maestrano session of the current request, or ``None``: from the Maestrano cookie
    when it is signed for this Flask session, or a session of the previous format."""
    state = state or get_state()
    web_session = session._get_current_object()  # type: ignore[attr-defined]
    value = web_session.get(SESSION_KEY)
    if value is not None:  # written before the Maestrano cookie existed
        if not isinstance(value, list | str | dict):
            return None
        return MaestranoSession.decode(value, state.default_preset)
    pending = request.environ.get(_PENDING)  # written during this request, else the browser's
    cookie = pending[0] if pending is not None else request.cookies.get(session_cookie_name(current()))
    return MaestranoSession.from_cookie(cookie, web_session, state.default_preset)


def on_logged_out(sender: Flask, **_extra: Any) -> None:
    """Flask-Login's ``user_logged_out``: the host's own logout ends the Maestrano session too."""
    if has_request_context() and sender.extensions.get("maestrano") is not None:
        clear_session(session)


# -- the single-logout check ------------------------------------------------------------


def remote_check(
    state: MaestranoState, preset: Preset, mno: MaestranoSession, timeout: float
) -> dt.datetime | None:
    """Ask the platform; the new recheck time if the session is valid, else ``None``.

    The recheck time is capped at ``MAESTRANO_SESSION_CHECK_MAX_RECHECK`` seconds from now.
    Raises :class:`~flask_maestrano.errors.ApiError` when no complete answer arrived within
    ``timeout`` seconds, the platform failed (5xx), answered with a redirect (never followed)
    or too large a body.
    """
    url = preset.session_check_url(mno.uid, mno.session)
    # fetch_within's ApiError (APIConnectionError included) never quotes the token
    answer = fetch_within(
        state.sessions.deadline(preset),
        url,
        deadline=timeout,
        max_bytes=state.settings.session_check_max_size,
        headers={"Accept": "application/json"},
    )
    if 300 <= answer.status < 400:
        target = urlsplit(answer.headers.get("Location", ""))
        raise ApiError(
            f"HTTP {answer.status} redirect to {target.netloc or 'the same host'}, not followed "
            "(the platform answers the check itself)"
        )
    if answer.status >= 500:
        raise ApiError(f"HTTP {answer.status}")
    try:
        data = json.loads(answer.body)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("valid") not in (True, "true") or not data.get("recheck"):
        return None
    try:
        recheck = parse_time(str(data["recheck"]))
    except ValueError:
        return None
    latest = state.clock() + state.settings.session_check_max_recheck
    return min(recheck, dt.datetime.fromtimestamp(latest, dt.timezone.utc))


def _end(app: Flask, mno: MaestranoSession | None, preset: Preset | None, reason: str) -> Response:
    logout_user()
    clear_session(session)
    signals.session_invalidated.send(
        app,
        user_uid=mno.uid if mno else None,
        group_uid=mno.group_uid if mno else None,
        preset=preset.name if preset else None,
        reason=reason,
    )
    if preset is None:
        return redirect("/")
    params: dict[str, str] = {}
    if mno and mno.group_uid:
        params["group_id"] = mno.group_uid
    if request.method == "GET":
        params["next"] = request.full_path.rstrip("?")
    target = preset.init_url
    if params:
        target += ("&" if "?" in target else "?") + urlencode(params)
    return redirect(target)


def check_session() -> Response | None:
    """``before_request``: end a Maestrano session the platform says is over.

    Only Maestrano sessions are checked, never the extension's own routes or static files,
    and no remote call is made before the recheck time.
    """
    app: Flask = current()
    state = get_state(app)
    # one proxy lookup, then plain dict access: this runs on every request of the host
    if not check_due(session._get_current_object(), state):  # type: ignore[attr-defined]
        return None
    return run_due_check(app, state)


def check_due(web_session: Mapping[str, Any], state: MaestranoState) -> bool:
    """Whether ``web_session`` holds a Maestrano session whose single-logout check is due
    (or whose recheck time is unreadable); ``False`` for any other session. Runs on every
    request of the host: a lookup, a shift and a comparison (two lookups without single
    logout, or for a session of the previous format)."""
    packed = web_session.get(CHECK_KEY)
    if packed is not None:
        return type(packed) is not int or packed >> LOGIN_BITS <= state.clock()
    recheck = web_session.get(RECHECK_KEY)  # the previous format
    return recheck is not None and (not isinstance(recheck, _NUMBER) or recheck <= state.clock())


def run_due_check(app: Flask, state: MaestranoState) -> Response | None:
    """The rest of :func:`check_session`, once the session's recheck time has passed."""
    if request.blueprint == "maestrano" or request.endpoint == "static":
        return None
    mno = current_session(state)
    preset = state.presets.get(mno.preset) if mno else None
    if mno is None or preset is None:
        log.warning("Maestrano: unreadable Maestrano session or unknown preset; logging out")
        return _end(app, mno, preset, "invalid")
    if not preset.sso.slo_enabled:
        mno.store(session, slo=False)  # no recheck time from now on; the cookie follows
        return None
    breaker = state.breaker
    verdict = breaker.allow(preset.name, state.clock())
    if verdict == "open":  # the platform is failing: no call, the policy applies at once
        return _unusable(app, state, mno, preset, "the circuit breaker is open (the platform is failing)")
    try:
        new_recheck = remote_check(state, preset, mno, state.settings.session_check_timeout)
    except ApiError as exc:
        if breaker.failed(preset.name, state.clock()) == "opened":
            log.warning(
                "Maestrano: the session check of preset %s failed %d times in a row: circuit breaker "
                "open, the platform is not called for %g s",
                preset.name,
                state.settings.session_check_breaker_failures,
                state.settings.session_check_breaker_cooldown,
            )
        return _unusable(app, state, mno, preset, f"no usable answer ({exc})")
    if breaker.succeeded(preset.name, state.clock()) == "closed":
        log.warning(
            "Maestrano: the session check of preset %s answers again: circuit breaker closed", preset.name
        )
    if new_recheck is None:
        log.info("Maestrano: the platform ended the session of user %s (preset %s)", mno.uid, preset.name)
        return _end(app, mno, preset, "invalid")
    spread(mno.with_recheck(new_recheck), state.clock(), state.settings.session_check_jitter).store(
        session, slo=True
    )
    return None


def _unusable(
    app: Flask, state: MaestranoState, mno: MaestranoSession, preset: Preset, why: str
) -> Response | None:
    """The check gave no answer: fail-open keeps the session until a (spread) retry time,
    fail-closed ends it."""
    if state.settings.session_check_fail_open:
        log.warning("Maestrano: session check: %s; fail-open keeps the session", why)
        now = state.clock()
        retry = dt.datetime.fromtimestamp(now + state.settings.session_check_retry, dt.timezone.utc)
        spread(mno.with_recheck(retry), now, state.settings.session_check_jitter).store(session, slo=True)
        return None
    log.warning("Maestrano: session check: %s; fail-closed ends the session", why)
    return _end(app, mno, preset, "unreachable")


# -- logout --------------------------------------------------------------------------------


def logout_url() -> str | None:
    """The platform's logout URL for the current Maestrano session, or ``None``.

    >>> logout_url()  # doctest: +SKIP
    'https://maestrano.com/app_logout?user_uid=usr-1'
    """
    state = get_state()
    mno = current_session(state)
    if mno is None:
        return None
    preset = state.presets.get(mno.preset)
    return preset.logout_url(mno.uid) if preset else None


def maestrano_logout(default: str = "/") -> Response:
    """End the local session and redirect to the platform's logout page.

    For a user who did not come through Maestrano, redirect to ``default``.

    >>> @app.route("/logout")  # doctest: +SKIP
    ... def logout():
    ...     return maestrano_logout()
    """
    target = logout_url() or default
    logout_user()
    clear_session(session)
    return redirect(target)
