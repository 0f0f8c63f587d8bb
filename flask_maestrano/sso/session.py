"""The Maestrano session in the web session, the single-logout check, and logout.

``session["maestrano"]`` holds the fields of PLATFORM.md 2.8's object ``{uid, session,
session_recheck, group_uid, preset}`` as one compact list (see :meth:`MaestranoSession.store`);
the object itself (the previous format) and the old SDKs' base64 string of it are still read.
The recheck time is also kept as a plain float under ``session["maestrano_recheck"]`` so the
per-request check costs one dictionary lookup and one comparison until a check is due.

When it is due, one ``GET`` to the preset's session-check URL decides:
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
import json
import logging
import random
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from flask import Flask, redirect, request, session
from flask_login import logout_user  # type: ignore[import-untyped]
from werkzeug.wrappers import Response

from .. import signals
from ..errors import ApiError
from ..http import fetch_within
from ..presets import Preset
from ..state import MaestranoState, current, get_state
from .identity import format_time, parse_time

log = logging.getLogger("flask_maestrano")

__all__ = [
    "SESSION_KEYS",
    "MaestranoSession",
    "check_session",
    "clear_session",
    "logout_url",
    "maestrano_logout",
]

SESSION_KEY = "maestrano"
RECHECK_KEY = "maestrano_recheck"
#: Every web-session key the extension writes or the old SDKs wrote; purged together.
SESSION_KEYS = (SESSION_KEY, RECHECK_KEY, "mno_uid", "mno_session", "mno_session_recheck", "mno_group_uid")


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

    def store(self, web_session: MutableMapping[str, Any], *, slo: bool, earlier: float = 0.0) -> None:
        """Write the session; the float recheck key exists only when single logout is on, and
        is ``earlier`` seconds before :attr:`session_recheck` (the spread of :func:`jitter`)."""
        web_session[SESSION_KEY] = self.to_list()
        if slo:
            web_session[RECHECK_KEY] = self.session_recheck.timestamp() - max(0.0, earlier)
        else:
            web_session.pop(RECHECK_KEY, None)


def jitter(until: float, now: float, share: float) -> float:
    """How many seconds earlier than ``until`` to check: random, at most ``share`` of the
    delay from ``now`` (never negative: a check never comes later than the platform said)."""
    return random.uniform(0.0, share) * max(0.0, until - now)  # noqa: S311 - spread, not a secret


def clear_session(web_session: MutableMapping[str, Any]) -> None:
    """Remove every Maestrano key from the web session."""
    for key in SESSION_KEYS:
        web_session.pop(key, None)


def current_session(state: MaestranoState | None = None) -> MaestranoSession | None:
    """The Maestrano session of the current request, or ``None``."""
    value = session.get(SESSION_KEY)
    if not isinstance(value, list | str | dict):
        return None
    state = state or get_state()
    return MaestranoSession.decode(value, state.default_preset)


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
    # one proxy lookup, then plain dict access: this runs on every request of the host
    recheck = session._get_current_object().get(RECHECK_KEY)  # type: ignore[attr-defined]
    if recheck is None:  # not a Maestrano session (or single logout off): one dict lookup
        return None
    app: Flask = current()
    state = get_state(app)
    if isinstance(recheck, int | float) and recheck > state.clock():
        return None
    if request.blueprint == "maestrano" or request.endpoint == "static":
        return None
    mno = current_session(state)
    preset = state.presets.get(mno.preset) if mno else None
    if mno is None or preset is None:
        log.warning("Maestrano: unreadable Maestrano session or unknown preset; logging out")
        return _end(app, mno, preset, "invalid")
    if not preset.sso.slo_enabled:
        session.pop(RECHECK_KEY, None)
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
    now = state.clock()
    earlier = jitter(new_recheck.timestamp(), now, state.settings.session_check_jitter)
    updated = MaestranoSession(mno.uid, mno.session, new_recheck, mno.group_uid, mno.preset)
    updated.store(session, slo=True, earlier=earlier)
    return None


def _unusable(
    app: Flask, state: MaestranoState, mno: MaestranoSession, preset: Preset, why: str
) -> Response | None:
    """The check gave no answer: fail-open keeps the session until a (spread) retry time,
    fail-closed ends it."""
    if state.settings.session_check_fail_open:
        log.warning("Maestrano: session check: %s; fail-open keeps the session", why)
        now = state.clock()
        retry = now + state.settings.session_check_retry
        session[RECHECK_KEY] = retry - jitter(retry, now, state.settings.session_check_jitter)
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
