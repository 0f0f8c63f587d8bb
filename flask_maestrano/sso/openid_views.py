"""The OpenID 2.0 views: ``init`` sends the user to the preset's provider, ``consume`` logs them in.

Init keeps the pending login in the store under a one-time token that rides in the
``return_to`` URL (``...consume?mno_state=<token>``, signed by the provider), bound to the
browser with the SAML flow's mechanism (:mod:`flask_maestrano.sso.binding`: a cookie whose
secret's hash is stored with the pending login). The provider sends the browser back with a
top-level GET, with which the ``SameSite=Lax`` cookie is sent, so consume checks the binding
itself. A provider that answers with a form POST (cross-site: no cookie) is handed, once
verified, to the SAML flow's finish view, a same-site GET that checks the binding.
Consume reads the entry, runs the checks of :mod:`flask_maestrano.sso.openid`, and only
then takes it, in one atomic store operation (so each login is answered once and an invalid
answer leaves it usable), then logs the user in exactly as the SAML views do (same
callbacks, signals and Maestrano session).

Every refusal of the answer logs its reason, sends
:data:`~flask_maestrano.signals.login_failed` and answers :class:`OpenIDFailed` (a 400 the
host can restyle). A refusal by the host's callbacks follows ``MAESTRANO_SSO_ERROR`` as for SAML.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any, NoReturn
from urllib.parse import urlencode

from flask import Blueprint, Flask, redirect, request, url_for
from werkzeug.exceptions import BadRequest, HTTPException, NotFound, RequestEntityTooLarge
from werkzeug.wrappers import Response

from .. import signals
from ..errors import SsoError
from ..presets import Preset
from ..routing import PresetRouter
from ..state import MaestranoState, current, get_state
from ..store import Settlement, settle
from ..web import read_body
from .binding import BindingError, Peeked, PendingRequests, bind_browser, verify_browser
from .openid import OpenIDStoreAdapter, RelyingParty, check_assertion, identity_from_ax, verdict
from .views import (
    MAX_NEXT_LENGTH,
    _log_in,
    _login_record,
    _restart_url,
    _store_errors,
    _verified,
    safe_next,
)

log = logging.getLogger("flask_maestrano")

__all__ = ["OpenIDFailed", "register"]

#: the pending logins' namespace in :class:`~flask_maestrano.sso.binding.PendingRequests`
NAMESPACE = "openid"
STATE_PARAM = "mno_state"
#: a pending login answered: its token, kept as long as a pending login lives
USED_PREFIX = "openid:used:"
_NOT_FORWARDED = frozenset({"next", STATE_PARAM})
_MAX_FIELDS = 200  # an assertion with every AX attribute has about 110 fields


class OpenIDFailed(BadRequest):
    """A refused OpenID answer (400); ``reason`` is the short code.

    >>> @app.errorhandler(OpenIDFailed)  # doctest: +SKIP
    ... def refused(error):
    ...     return render_template("sso_refused.html", reason=error.reason), 400
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"OpenID login refused ({reason}): {message}")
        self.reason = reason


def _refuse(app: Flask, preset: Preset | None, error: SsoError) -> NoReturn:
    name = preset.name if preset else None
    log.warning("Maestrano OpenID refused (preset %s): %s: %s", name, error.reason, error.message)
    signals.login_failed.send(app, reason=error.reason, message=error.message, preset=name)
    raise OpenIDFailed(error.reason, error.message)


def _relying_party(app: Flask, state: MaestranoState, preset: Preset) -> RelyingParty:
    client = state.sessions.plain(preset)
    store = OpenIDStoreAdapter(state.store, max_age=state.settings.openid_max_age, clock=state.clock)
    return RelyingParty(preset, store, client, state.settings.openid_timeout)


def _return_to(preset: Preset, token: str) -> str:
    base = preset.openid_return_to
    return base + ("&" if "?" in base else "?") + urlencode({STATE_PARAM: token})


# -- init ---------------------------------------------------------------------------------------


def openid_init(**_view_args: str) -> Response:
    """Redirect to the preset's OpenID provider with a checkid_setup request."""
    app: Flask = current()
    state = get_state(app)
    candidates, _ = state.router.candidates("openid_init", request)
    preset = state.router.pick_default(candidates)
    if preset is None or not preset.sso.openid_enabled:
        raise NotFound("No OpenID single sign-on preset for this URL")
    raw_next = request.args.get("next")
    if raw_next is not None and len(raw_next) > MAX_NEXT_LENGTH:
        raise BadRequest(f"next is longer than {MAX_NEXT_LENGTH} characters")
    record = {"preset": preset.name, "next": safe_next(raw_next)}
    ttl = state.settings.sso_request_ttl
    browser = bind_browser(request, secure=_is_https(preset))
    with _store_errors(_restart_url(preset), preset):
        token = _pending(app, state).put(browser, record, ttl)
        target = _relying_party(app, state, preset).redirect_url(_return_to(preset, token))
    extra = [(k, v) for k, v in request.args.items(multi=True) if k not in _NOT_FORWARDED]
    if extra:
        target += "&" + urlencode(extra)
    response = redirect(target)
    browser.set_cookie(response, ttl)
    return response


def _is_https(preset: Preset) -> bool:
    return preset.openid_return_to.startswith("https://")


def _pending(app: Flask, state: MaestranoState) -> PendingRequests:
    per_browser = state.settings.sso_pending_per_browser
    return PendingRequests(state.store, NAMESPACE, per_browser=per_browser)


# -- consume ------------------------------------------------------------------------------------


def _answer(app: Flask, preset: Preset | None) -> dict[str, str]:
    """The provider's answer: the query (GET) and the form (POST), within the size cap."""
    limit = get_state(app).settings.sso_max_size
    if request.content_length is not None and request.content_length > limit:
        _refuse(app, preset, SsoError("too_large", f"body of {request.content_length} bytes"))
    if len(request.query_string) > limit:
        _refuse(app, preset, SsoError("too_large", "query string over the limit"))
    try:
        if request.method == "POST":
            read_body(request, limit, cache=True)
        fields = request.args.to_dict()
        if request.method == "POST":
            form = request.form.to_dict()
            if set(form) & set(fields):
                raise ValueError("a field appears in both the query and the form")
            fields.update(form)
    except RequestEntityTooLarge:
        _refuse(app, preset, SsoError("too_large", "body over the limit"))
    except ValueError as exc:
        _refuse(app, preset, SsoError("malformed", str(exc)))
    if len(fields) > _MAX_FIELDS:
        _refuse(app, preset, SsoError("malformed", "the answer has too many fields"))
    return fields


def _check_browser(app: Flask, preset: Preset, record: dict[str, Any]) -> None:
    """The browser making this request is the one that started the login (no login CSRF)."""
    try:
        verify_browser(request, str(record.get("binding", "")), secure=bool(record.get("secure")))
    except BindingError as exc:
        _refuse(app, preset, exc)


def openid_consume(**_view_args: str) -> Response:
    """Check the provider's answer, find or create group and user, log in, redirect."""
    app: Flask = current()
    state = get_state(app)
    candidates, _ = state.router.candidates("openid_consume", request)
    fallback = state.router.pick_default(candidates)
    if fallback is None and not candidates:
        raise NotFound("No OpenID single sign-on preset for this URL")
    query = _answer(app, fallback)
    token = query.pop(STATE_PARAM, None)
    pending = _pending(app, state)
    with _store_errors(_restart_url(fallback), fallback):
        # read, not taken: an invalid answer leaves the login usable (taken by _settle)
        peeked = pending.peek(token)
    if peeked is None or "settled" in peeked.record:  # unknown, expired, or already answered
        _refuse(
            app, fallback, SsoError("unknown_request", "the answer names no pending login (used or expired)")
        )
    record = peeked.record
    preset = next((p for p in candidates if p.name == record.get("preset")), None)
    if preset is None:
        _refuse(app, fallback, SsoError("preset_mismatch", "the login was started for another preset"))
    if not preset.sso.openid_enabled:
        raise NotFound("OpenID single sign-on is off for this preset")
    if request.method == "GET":
        _check_browser(app, preset, record)  # a top-level GET carries the SameSite=Lax cookie
    return_to = _return_to(preset, str(token))
    max_age = state.settings.openid_max_age
    relying_party = _relying_party(app, state, preset)
    try:
        uid = check_assertion(preset, query, return_to, max_age, state.clock)
        query[STATE_PARAM] = str(token)  # part of the signed return_to: the library compares them
        try:
            with _store_errors(_restart_url(preset), preset):
                answer = relying_party.complete(query, return_to)
        except HTTPException:
            raise
        except Exception as exc:  # python3-openid raises on some hostile inputs
            log.info("Maestrano OpenID: the library refused the answer", exc_info=True)
            raise SsoError("malformed", f"the assertion could not be read ({type(exc).__name__})") from None
        verdict(answer)
        identity = identity_from_ax(answer, claimed_uid=uid, preset=preset)
    except SsoError as exc:
        _refuse(app, preset, exc)
    if request.method == "POST":
        return _to_finish(app, state, preset, identity, peeked)
    _settle(app, state, preset, peeked, None)
    return _log_in(app, state, preset, identity, record.get("next"))


def _settle(
    app: Flask, state: MaestranoState, preset: Preset, peeked: Peeked, login: dict[str, Any] | None
) -> str:
    """Take the pending login (and keep ``login`` for the finish view) in one atomic step, now
    that the answer is valid; refused when another answer took it meanwhile. The finish token."""
    verified = _verified(state)
    settlement = Settlement(
        replay=USED_PREFIX + peeked.token,
        replay_ttl=state.settings.sso_request_ttl,
        now=state.clock(),
        pending=peeked.key,
        expect=(("preset", preset.name),),
        finish_prefix=verified.key_prefix if login is not None else None,
        finish_token=secrets.token_urlsafe(32),
        finish_value=verified.settled_value(login or {}),
        finish_ttl=verified.ttl,
        carry=verified.CARRY,
        release=_pending(app, state).release(peeked.token),
    )
    with _store_errors(_restart_url(preset), preset):
        outcome, finish = settle(state.store, settlement)
    if outcome != "settled":
        used = SsoError("unknown_request", "the login was answered meanwhile (used or expired)")
        _refuse(app, preset, used)
    return finish


def _to_finish(app: Flask, state: MaestranoState, preset: Preset, identity: Any, peeked: Peeked) -> Response:
    """A provider's form POST is cross-site: no SameSite=Lax cookie came with it. Keep the
    verified login for the SAML flow's finish view (a same-site GET), which checks the binding."""
    finish = _settle(app, state, preset, peeked, _login_record(preset, identity))
    answer = redirect(url_for("maestrano.sso_finish", token=finish), 303)
    answer.headers["Cache-Control"] = "no-store"
    return answer


# -- wiring -------------------------------------------------------------------------------------


def register(blueprint: Blueprint, router: PresetRouter) -> None:
    router.register(blueprint, "openid_init", openid_init, ["GET"])
    router.register(blueprint, "openid_consume", openid_consume, ["GET", "POST"])
