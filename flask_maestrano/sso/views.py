"""The SSO views: ``init`` sends the user to the IdP, ``consume`` validates its answer and
``finish`` logs the user in, in the browser that started the sign-in.

Init keeps the AuthnRequest's ID, the preset and the page to return to in the store under
a one-time token that rides in ``RelayState`` (the IdP's POST is cross-site, so a
SameSite=Lax cookie is not sent with it), bound to the browser by the cookie of
:mod:`flask_maestrano.sso.binding`. The same entry is also reachable from the request ID,
for an IdP that does not echo ``RelayState``. Consume reads it, validates the response, and
only then, in one atomic store operation (:class:`~flask_maestrano.store.Settlement`), takes
it, records the assertion in the replay cache and keeps the verified result under a new
one-time token, so each request is answered once and an invalid answer or a store failure
leaves it usable; then it redirects (303) to ``finish``, a same-site GET with which the
binding cookie comes back: only the browser that started the sign-in is logged in (no login
CSRF). An IdP-initiated response (a preset's explicit opt-in) has no browser to check and logs in at consume.

Every refusal logs its reason on the ``flask_maestrano`` logger, sends
:data:`~flask_maestrano.signals.login_failed` and, per ``MAESTRANO_SSO_ERROR``, redirects
to the platform's unauthorized page with ``?err=<reason>`` or raises :class:`SsoFailed`
(a 403 the host can restyle). Malformed input is a 400 and an oversized body a 413.
"""

from __future__ import annotations

import contextlib
import html
import logging
import re
import secrets
from collections.abc import Iterator
from typing import Any, NoReturn
from urllib.parse import parse_qsl, urlencode, urlsplit

from flask import Blueprint, Flask, abort, redirect, request, session, url_for
from flask_login import login_user, logout_user, user_logged_out  # type: ignore[import-untyped]
from werkzeug.exceptions import BadRequest, Forbidden, HTTPException, NotFound, RequestEntityTooLarge
from werkzeug.wrappers import Response

from .. import signals, syncing
from ..errors import ConfigurationError, SsoError, StoreFull, StoreUnavailable
from ..presets import Preset
from ..routing import PresetRouter
from ..state import MaestranoState, current, get_state
from ..store import Settlement, read, settle
from ..web import read_body
from .binding import (
    BindingError,
    Peeked,
    PendingRequests,
    VerifiedLogins,
    bind_browser,
    finish_prefix,
    pending_prefix,
)
from .dsig import disable_external_uris
from .identity import Identity
from .saml import ValidatedResponse, authn_request, in_response_to, parse_response, validate_response
from .session import (
    MaestranoSession,
    SessionTooLarge,
    check_due,
    on_logged_out,
    run_due_check,
    spread,
)

_MAX_FORM_FIELDS = 20  # SAMLResponse, RelayState and whatever an IdP adds

log = logging.getLogger("flask_maestrano")

__all__ = ["FINISH_PATH", "MAX_NEXT_LENGTH", "SsoFailed", "SsoRestart", "register", "safe_next", "setup"]

NAMESPACE = "sso"
RELAY_PREFIX = pending_prefix(NAMESPACE, "req")
REQUEST_PREFIX = pending_prefix(NAMESPACE, "alias")
ASSERTION_PREFIX = "sso:assertion:"
FINISH_PREFIX = finish_prefix(NAMESPACE)
#: The route of the finish view (endpoint ``maestrano.sso_finish``), one for every preset.
FINISH_PATH = "/maestrano/auth/saml/finish"
#: The longest ``next`` init accepts; a longer one is refused with a 400.
MAX_NEXT_LENGTH = 2048
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{32,64}$")
# parameters of the init request that are ours, not the IdP's
_NOT_FORWARDED = frozenset({"SAMLRequest", "RelayState", "next"})
_REPLAY_MARGIN = 300.0  # python3-saml's clock drift allowance


class SsoFailed(Forbidden):
    """A refused login (``MAESTRANO_SSO_ERROR = "abort"``); ``reason`` is the short code.

    >>> @app.errorhandler(SsoFailed)  # doctest: +SKIP
    ... def refused(error):
    ...     return render_template("sso_refused.html", reason=error.reason), 403
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"Single sign-on refused ({reason}): {message}")
        self.reason = reason


class SsoRestart(HTTPException):
    """A sign-in this browser cannot finish; the page offers to start again.

    ``reason`` is the short code (``finish_unknown``, ``binding_missing``,
    ``binding_mismatch``, ``store_unavailable``, ``store_full``); ``restart_url`` the init
    URL the page links to. Restyle it with ``@app.errorhandler(SsoRestart)``.
    """

    def __init__(self, status: int, reason: str, message: str, restart_url: str) -> None:
        self.code = status
        super().__init__(f"Single sign-on could not finish ({reason}): {message}")
        self.reason = reason
        self.restart_url = restart_url

    def get_body(self, environ: Any = None, scope: Any = None) -> str:
        return (
            "<!doctype html>\n<html lang=en><title>Sign-in not finished</title>\n"
            f"<h1>Sign-in not finished</h1>\n<p>{html.escape(str(self.description))}</p>\n"
            f'<p><a href="{html.escape(self.restart_url)}">Sign in again</a></p>\n'
        )

    def get_headers(self, environ: Any = None, scope: Any = None) -> list[tuple[str, str]]:
        headers = [("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "no-store")]
        if self.code == 503:
            headers.append(("Retry-After", "60"))
        return headers


def safe_next(value: str | None) -> str | None:
    """``value`` if it is a same-origin relative path, else ``None``.

    >>> safe_next("/dashboard?tab=1"), safe_next("//evil.example"), safe_next("/\\\\evil")
    ('/dashboard?tab=1', None, None)
    """
    if not value or not value.startswith("/") or value.startswith("//"):
        return None
    # browsers treat "\" as "/" and drop tabs and newlines: "/\evil" and "/\t/evil" are "//evil"
    if "\\" in value or any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in value):
        return None
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return None
    return value


def _fail(app: Flask, preset: Preset | None, error: SsoError, status: int | None = None) -> NoReturn:
    """Log, signal, and answer a refused login."""
    name = preset.name if preset else None
    log.warning("Maestrano SSO refused (preset %s): %s: %s", name, error.reason, error.message)
    signals.login_failed.send(app, reason=error.reason, message=error.message, preset=name)
    if status == 400:
        raise BadRequest(f"Invalid SAMLResponse: {error.message}")
    if status == 413:
        limit = get_state(app).settings.sso_max_size
        raise RequestEntityTooLarge(f"SAMLResponse larger than {limit} bytes")
    if status == 404 or preset is None:
        raise NotFound(error.message)
    if get_state(app).settings.sso_error == "abort":
        raise SsoFailed(error.reason, error.message)
    abort(redirect(f"{preset.unauthorized_url}?{urlencode({'err': error.reason})}"))


# -- init -------------------------------------------------------------------------------------


def sso_init(**_view_args: str) -> Response:
    """Redirect to the IdP with an AuthnRequest (HTTP-Redirect binding)."""
    state = get_state()
    candidates, _ = state.router.candidates("sso_init", request)
    preset = state.router.pick_default(candidates)
    if preset is None or not preset.sso.saml_enabled:
        raise NotFound("No SAML single sign-on preset for this URL")
    raw_next = request.args.get("next")
    if raw_next is not None and len(raw_next) > MAX_NEXT_LENGTH:
        raise BadRequest(f"next is longer than {MAX_NEXT_LENGTH} characters")
    saml_request = authn_request(state.saml, preset)
    record = {"id": saml_request.id, "preset": preset.name, "next": safe_next(raw_next)}
    ttl = state.settings.sso_request_ttl
    browser = bind_browser(request, secure=_is_https(preset))
    with _store_errors(_restart_url(preset), preset):
        token = _pending(state).put(browser, record, ttl, alias=saml_request.id)
    params = [("SAMLRequest", saml_request.encoded), ("RelayState", token)]
    params += [(k, v) for k, v in request.args.items(multi=True) if k not in _NOT_FORWARDED]
    if "group_id" not in request.args and session.get("mno_group_uid"):
        params.append(("group_id", str(session["mno_group_uid"])))  # the 2014 SDKs' session key
    separator = "&" if "?" in preset.idp_url else "?"
    response = redirect(preset.idp_url + separator + urlencode(params))
    browser.set_cookie(response, ttl)
    return response


def _is_https(preset: Preset) -> bool:
    return urlsplit(preset.consume_url).scheme == "https"


def _pending(state: MaestranoState) -> PendingRequests:
    return PendingRequests(state.store, NAMESPACE, per_browser=state.settings.sso_pending_per_browser)


def _verified(state: MaestranoState) -> VerifiedLogins:
    return VerifiedLogins(state.store, NAMESPACE, state.settings.sso_finish_ttl)


def _restart_url(preset: Preset | None) -> str:
    """Where the "sign in again" link points: the preset's init route, else the default one."""
    if preset is not None:
        path = urlsplit(preset.init_url)
        return path.path + (f"?{path.query}" if path.query else "")
    return str(url_for("maestrano.sso_init"))


@contextlib.contextmanager
def _store_errors(restart_url: str, preset: Preset | None = None) -> Iterator[None]:
    """Turn a store that is down or full into a 503 page (``Retry-After``) instead of a 500,
    and send :data:`~flask_maestrano.signals.login_failed`: nothing was consumed, so the
    same sign-in can be retried once the store answers again."""
    try:
        yield
    except StoreUnavailable as error:
        full = isinstance(error, StoreFull)
        reason = "store_full" if full else "store_unavailable"
        log.error("Maestrano SSO: the shared store refused an operation: %s", error)
        signals.login_failed.send(
            current(), reason=reason, message=str(error), preset=preset.name if preset else None
        )
        message = (
            "too many sign-ins are pending, try again in a minute"
            if full
            else "the shared store of the sign-in service is temporarily unavailable, try again in a minute"
        )
        raise SsoRestart(503, reason, message, restart_url) from None


# -- consume ----------------------------------------------------------------------------------


def _consume_form(app: Flask, preset: Preset | None) -> tuple[str, str | None]:
    """``(SAMLResponse, RelayState)`` of the IdP's POST, within the size cap."""
    limit = get_state(app).settings.sso_max_size
    if request.content_length is not None and request.content_length > limit:
        _fail(app, preset, SsoError("too_large", f"body of {request.content_length} bytes"), 413)
    try:
        body = read_body(request, limit, cache=True)
        if request.mimetype == "application/x-www-form-urlencoded":
            # the IdP's form has two fields; parsing them straight from the body skips
            # building Werkzeug's MultiDict of a 10 KB base64 value on every login
            fields = dict(parse_qsl(body.decode("latin-1"), max_num_fields=_MAX_FORM_FIELDS))
        else:
            fields = request.form.to_dict()
    except RequestEntityTooLarge:
        _fail(app, preset, SsoError("too_large", "body over the limit"), 413)
    except ValueError:
        _fail(app, preset, SsoError("malformed", "the form has too many fields"), 400)
    value = fields.get("SAMLResponse")
    if not value:
        _fail(app, preset, SsoError("malformed", "the SAMLResponse form field is missing"), 400)
    return value, fields.get("RelayState") or None


def sso_consume(**_view_args: str) -> Response:
    """Validate the IdP's POST; redirect to ``finish`` (or log in, when IdP-initiated)."""
    with _store_errors(str(url_for("maestrano.sso_init"))):
        return _consume()


def _consume() -> Response:
    app = current()
    state = get_state(app)
    candidates, _ = state.router.candidates("sso_consume", request)
    fallback = state.router.pick_default(candidates)
    saml_response, relay = _consume_form(app, fallback)
    token = relay if relay and _TOKEN.match(relay) else None
    pending = _pending(state)
    peeked: Peeked | None = None
    if token is not None and len(candidates) > 1:
        # the route serves several presets: the pending request says which one (it is read,
        # not taken: an invalid answer, an attacker's or a glitch, must leave it usable)
        peeked = pending.peek(token)
        if peeked is not None:
            name = peeked.record.get("preset")
            preset = next((p for p in candidates if p.name == name), None)
            if preset is None:
                _fail(app, fallback, SsoError("preset_mismatch", "the request was issued for another preset"))
            fallback = preset
    preset = fallback
    if preset is None:
        _fail(app, None, SsoError("unknown_preset", "no preset for this consume URL"), 404)
    if not preset.sso.saml_enabled:
        _fail(app, preset, SsoError("disabled", "SAML single sign-on is off for this preset"), 404)

    try:
        response = parse_response(state.saml, preset, saml_response)
    except SsoError as exc:
        _fail(app, preset, exc, 400)
    if token is None:  # an IdP that does not echo RelayState: the request by its ID
        peeked = pending.peek_alias(in_response_to(response))
        if peeked is not None and peeked.record.get("preset") != preset.name:
            _fail(app, preset, SsoError("preset_mismatch", "the request was issued for another preset"))
    # the request ID the response names; the settlement checks it is the pending request's
    request_id = str(peeked.record["id"]) if peeked else in_response_to(response)
    try:
        validated = validate_response(state.saml, preset, response, request_id)
        if token is None and peeked is None:
            if validated.in_response_to is not None and _used(state, validated):
                raise SsoError("replay", "this assertion was already used")
            _check_solicited(preset, None, validated.in_response_to, None)
        elif validated.in_response_to is None:
            raise SsoError("in_response_to", "the response has no InResponseTo")
    except SsoError as exc:
        _fail(app, preset, exc)
    if token is None and peeked is None:
        # IdP-initiated (the preset opted in): no browser to check, log in here
        _settle(app, state, preset, Settlement(**_replay_entry(state, validated)))
        return _log_in(app, state, preset, validated.identity, safe_next(relay))
    pending_token = token if token is not None else peeked.token if peeked is not None else ""
    finish = _settle_verified(app, state, preset, pending_token, validated)
    answer = redirect(url_for("maestrano.sso_finish", token=finish), 303)
    answer.headers["Cache-Control"] = "no-store"
    return answer


def _used(state: MaestranoState, validated: ValidatedResponse) -> bool:
    """Whether the assertion is in the replay cache (to name a refusal; the settlement decides)."""
    return read(state.store, ASSERTION_PREFIX + validated.assertion_id) is not None


def _replay_entry(state: MaestranoState, validated: ValidatedResponse) -> dict[str, Any]:
    """The :class:`Settlement` fields of the replay cache and the store's epoch check."""
    now = state.clock()
    return {
        "replay": ASSERTION_PREFIX + validated.assertion_id,
        "replay_ttl": max(60.0, validated.expires_at.timestamp() - now + _REPLAY_MARGIN),
        "now": now,
        "issued_at": validated.issued_at.timestamp() if validated.issued_at else None,
        "skew": state.settings.sso_epoch_skew,
    }


def _settle_verified(
    app: Flask, state: MaestranoState, preset: Preset, token: str, validated: ValidatedResponse
) -> str:
    """Take the pending request of ``token`` if it is the one the response answers, record the
    assertion and keep the verified login for the finish view: one atomic store operation
    (one round trip on Redis), made only now that the response is valid. The finish token.

    The pending request then holds its finish token until the finish entry expires, so the
    same POST sent again (the browser's retry after a 503 whose settlement did happen) gets
    the same answer rather than a replay refusal; the login itself still happens once, at
    finish, whose token is spent by its first use.
    """
    login = _login_record(preset, validated.identity)
    verified = _verified(state)
    settlement = Settlement(
        **_replay_entry(state, validated),
        pending=_pending(state).key_prefix + token,
        expect=(("id", str(validated.in_response_to)), ("preset", preset.name)),
        finish_prefix=verified.key_prefix,
        finish_token=secrets.token_urlsafe(32),
        finish_value=verified.settled_value(login),
        finish_ttl=verified.ttl,
        carry=verified.CARRY,
        release=_pending(state).release(token),
    )
    return _settle(app, state, preset, settlement)


def _login_record(preset: Preset, identity: Identity) -> dict[str, Any]:
    """What the finish view needs of a verified login (JSON-ready)."""
    return {
        "preset": preset.name,
        "attributes": {name: list(values) for name, values in identity.attributes.items()},
        "name_id": identity.user.uid,
        "creation_mode": identity.user.creation_mode,
    }


def _settle(app: Flask, state: MaestranoState, preset: Preset, settlement: Settlement) -> str:
    """Run ``settlement``; the finish token, or the login is refused."""
    outcome, detail = settle(state.store, settlement)
    if outcome in ("settled", "again"):
        return detail
    error = {
        "replay": SsoError("replay", "this assertion was already used"),
        "gone": SsoError(
            "unknown_request", "InResponseTo names no pending request of this app (used or expired)"
        ),
        "stale": SsoError(
            "stale",
            "the assertion was issued before the store's replay cache began (the store was emptied "
            "or restarted): sign in again",
        ),
    }.get(outcome)
    if error is None and detail == "preset":
        error = SsoError("preset_mismatch", "the request was issued for another preset")
    _fail(app, preset, error or SsoError("in_response_to", "InResponseTo does not match the request"))


# -- finish -----------------------------------------------------------------------------------


def _refuse_finish(
    app: Flask, preset: str | None, status: int, reason: str, message: str, restart: str
) -> NoReturn:
    """Log, signal, and answer the page that offers to start again."""
    log.warning("Maestrano SSO refused at finish (preset %s): %s: %s", preset, reason, message)
    signals.login_failed.send(app, reason=reason, message=message, preset=preset)
    raise SsoRestart(status, reason, message, restart)


def sso_finish() -> Response:
    """Log in the browser that started the sign-in: the same-site GET after consume."""
    app = current()
    state = get_state(app)
    restart = str(url_for("maestrano.sso_init"))
    with _store_errors(restart):
        try:
            verified = _verified(state).take(request.args.get("token"), request)
        except BindingError as exc:
            _refuse_finish(app, None, exc.status, exc.reason, exc.message, restart)
    name = str(verified["preset"])
    preset = state.presets.get(name)
    if preset is None or not preset.sso.enabled:
        _refuse_finish(app, name, 400, "unknown_preset", "the sign-in's preset is no longer served", restart)
    try:
        identity = Identity.from_attributes(
            verified["attributes"],
            name_id=verified["name_id"],
            preset=preset.name,
            creation_mode=str(verified["creation_mode"]),
        )
    except SsoError as exc:  # pragma: no cover - the same attributes passed at consume
        _fail(app, preset, exc)
    return _log_in(app, state, preset, identity, verified.get("next"))


def _check_solicited(
    preset: Preset, record: dict[str, Any] | None, irt: str | None, token: str | None
) -> None:
    if irt is None:
        if record is not None:
            raise SsoError("in_response_to", "the response has no InResponseTo")
        if token is not None:
            raise SsoError("unknown_request", "the RelayState names no pending request")
        if not preset.sso.idp_initiated:
            raise SsoError(
                "unsolicited", "unsolicited response (no InResponseTo) and IdP-initiated login is off"
            )
        return
    if record is None:
        raise SsoError(
            "unknown_request", "InResponseTo names no pending request of this app (used or expired)"
        )
    if irt != record.get("id"):
        raise SsoError("in_response_to", "InResponseTo does not match the request")


def _log_in(
    app: Flask, state: MaestranoState, preset: Preset, identity: Any, next_url: str | None
) -> Response:
    callbacks = state.callbacks
    missing = callbacks.missing("find_or_create_group", "find_or_create_user", "link_membership")
    if missing:
        raise ConfigurationError(f"register the {', '.join(missing)} callback(s) on the Maestrano extension")
    assert callbacks.find_or_create_group and callbacks.find_or_create_user and callbacks.link_membership
    try:
        host_group, group_created = callbacks.find_or_create_group(identity.group, preset)
        host_user, user_created = callbacks.find_or_create_user(identity.user, host_group, preset)
        if host_user is None or host_group is None:
            raise SsoError("refused", "the application refused this user or group")
        callbacks.link_membership(host_user, host_group, identity.membership, preset)
    except SsoError as exc:
        _fail(app, preset, exc)
    user = identity.user
    mno = MaestranoSession(user.uid, user.sso_session, user.sso_session_recheck, user.group_uid, preset.name)
    session.clear()  # no session fixation: nothing from before the login survives
    try:
        if not login_user(host_user):
            _fail(app, preset, SsoError("inactive_user", "Flask-Login refused the user (inactive)"))
        # users who log in together do not all come back for their check together
        spread(mno, state.clock(), state.settings.session_check_jitter).store(
            session, slo=preset.sso.slo_enabled
        )
    except SessionTooLarge as exc:
        logout_user()
        session.clear()
        _fail(app, preset, SsoError("session_too_large", str(exc)))
    except Exception:
        # Flask saves the session even when it answers 500: never leave a login behind
        # without its Maestrano session (the single-logout check keys on it)
        logout_user()
        session.clear()
        raise
    log.info(
        "Maestrano SSO: user %s logged in for group %s (preset %s)", user.uid, user.group_uid, preset.name
    )
    if group_created:  # the company's first login: its Connec! data comes in off the request
        _first_login(app, state, preset, identity.group.uid)
    else:  # a later login: an import that failed or was interrupted resumes where it stopped
        state.imports.catch_up(preset, identity.group.uid)
    signals.login_succeeded.send(
        app,
        user=host_user,
        group=host_group,
        identity=identity,
        preset=preset.name,
        user_created=bool(user_created),
        group_created=bool(group_created),
    )
    return redirect(next_url or get_state(app).settings.sso_default_next)


def _first_login(app: Flask, state: MaestranoState, preset: Preset, group_id: str) -> None:
    """Start the company's first synchronization when sync mappings are declared, else its
    import (``MAESTRANO_IMPORT_ON_FIRST_LOGIN``); a failure to start never fails the login."""
    if not state.settings.import_on_first_login or not preset.connec.enabled:
        return
    try:
        if syncing.first_login(app, preset, group_id):
            return
    except Exception:
        log.exception("Maestrano: could not start the first synchronization of group %s", group_id)
        return
    state.imports.start_first_import(preset, group_id)


# -- wiring ------------------------------------------------------------------------------------


def register(blueprint: Blueprint, router: PresetRouter) -> None:
    """Add this module's views to the extension's blueprint, one rule per preset route."""
    router.register(blueprint, "sso_init", sso_init, ["GET"])
    router.register(blueprint, "sso_consume", sso_consume, ["POST"])
    blueprint.add_url_rule(FINISH_PATH, endpoint="sso_finish", view_func=sso_finish, methods=["GET"])


def setup(app: Flask, state: MaestranoState) -> None:
    """Install this module's request hooks on ``app`` (the single-logout check...)."""
    # no xmlsec URI resolution in this process: a Reference or RetrievalMethod naming a file
    # or a URL cannot be fetched (flask_maestrano.sso.dsig); done here, not on import
    disable_external_uris()
    web_session = session._get_current_object  # type: ignore[attr-defined]

    def before_request() -> Response | None:
        # check_session, without looking the app and its state up: this runs on every
        # request of the host, and until a check is due it is all that runs
        if check_due(web_session(), state):
            return run_due_check(app, state)
        return None

    app.before_request(before_request)
    # the host's own logout_user() ends the Maestrano session too (no per-request cost)
    user_logged_out.connect(on_logged_out, sender=app)
