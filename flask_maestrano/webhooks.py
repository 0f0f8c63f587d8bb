"""The platform's calls to the app: account webhooks and Connec! notifications.

* ``DELETE /maestrano/account/groups/<group_id>[/<preset>]``: the platform cancelled a
  group's (company's) subscription (PLATFORM.md 4).
* ``DELETE /maestrano/account/groups/<group_id>/users/<user_id>[/<preset>]``: a member
  left the group.
* ``POST /maestrano/connec/notifications[/<preset>]``: entities changed in Connec!
  (PLATFORM.md 6.4).

Each path follows the preset's configuration (``webhooks.account.group_path`` and so on,
including developer-platform forms with a trailing marketplace segment or query parameters).
Every call is authenticated with HTTP Basic and the preset's ``api.id``/``api.key``; without
a preset in the route, the preset is the candidate whose credentials match
(SECURITY.md 10).

The host's decorator callback runs first, then the signal. Anything either raises answers
500 ``{"error": ...}`` so the platform delivers again: handlers must be idempotent. Errors are
Werkzeug exceptions with a JSON body; a host can restyle them with
``app.register_error_handler(InvalidDelivery, ...)``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from flask import Blueprint, Response, jsonify, request
from werkzeug.exceptions import BadRequest, HTTPException, InternalServerError, RequestEntityTooLarge

from . import signals
from .auth import authenticated_preset
from .entities import deliver, parse_entities
from .errors import StoreUnavailable
from .presets import Preset
from .routing import PresetRouter
from .state import MaestranoState, current, get_state
from .web import read_body

log = logging.getLogger("flask_maestrano")


def _json_response(message: str, status: int) -> Response:
    response = jsonify(error=message)
    response.status_code = status
    return response


class InvalidDelivery(BadRequest):
    """400: the platform's call is malformed (bad JSON, wrong shape, missing id)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, response=_json_response(message, 400))


class DeliveryTooLarge(RequestEntityTooLarge):
    """413: the body exceeds ``MAESTRANO_WEBHOOK_MAX_SIZE``."""

    def __init__(self, limit: int) -> None:
        message = f"Request body too large (limit {limit} bytes, MAESTRANO_WEBHOOK_MAX_SIZE)"
        super().__init__(message, response=_json_response(message, 413))


class DeliveryFailed(InternalServerError):
    """500: a host callback or signal receiver raised; the platform will deliver again."""

    def __init__(self, message: str) -> None:
        super().__init__(message, response=_json_response(message, 500))


def _success() -> Response:
    return jsonify(success=True)


def _authenticate(kind: str) -> tuple[MaestranoState, Preset, dict[str, str]]:
    """The state, the preset whose credentials the request carries, and query view values."""
    state = get_state()
    candidates, query_values = state.router.candidates(kind, request)
    limit = state.settings.webhook_max_size
    preset = authenticated_preset(request, candidates)
    if request.content_length is not None and request.content_length > limit:
        raise DeliveryTooLarge(limit)
    return state, preset, query_values


def _required(value: str | None, what: str) -> str:
    if not value:
        raise InvalidDelivery(f"Missing {what}")
    return value


@contextmanager
def _answering_failures(what: str, context: str, preset: Preset) -> Iterator[None]:
    """Around the host's handlers: a failure is logged (no secrets) and answered 500; the
    shared store failing is answered 503 (:func:`flask_maestrano.web.store_unavailable`)."""
    try:
        yield
    except (HTTPException, StoreUnavailable):
        raise  # the host chose the answer, or the app-wide 503 of a store that is down
    except Exception:
        log.exception("Maestrano: %s failed for %s (preset %r); answering 500", what, context, preset.name)
        raise DeliveryFailed(f"Could not process {what} for {context}; deliver again") from None


# -- account webhooks (PLATFORM.md 4) ----------------------------------------------------


def group_cancelled(**view_args: str) -> Response:
    """``DELETE`` group: the group's subscription is cancelled."""
    state, preset, query_values = _authenticate("group")
    group_id = _required(view_args.get("group_id") or query_values.get("group_id"), "group id")
    app = current()
    handler = state.callbacks.on_group_cancelled
    with _answering_failures("group cancellation", f"group {group_id!r}", preset):
        if handler is not None:
            handler(group_id, preset)
        signals.group_cancelled.send(app, group_id=group_id, preset=preset)
    return _success()


def member_removed(**view_args: str) -> Response:
    """``DELETE`` group user: a member left the group; the user id is masked per preset."""
    state, preset, query_values = _authenticate("group_user")
    group_id = _required(view_args.get("group_id") or query_values.get("group_id"), "group id")
    real_user_id = preset.unmask_user(
        _required(view_args.get("user_id") or query_values.get("user_id"), "user id")
    )
    user_id = preset.mask_user(real_user_id, group_id)
    app = current()
    handler = state.callbacks.on_member_removed
    with _answering_failures("member removal", f"user {user_id!r} of group {group_id!r}", preset):
        if handler is not None:
            handler(group_id, user_id, preset)
        signals.member_removed.send(
            app, group_id=group_id, user_id=user_id, real_user_id=real_user_id, preset=preset
        )
    return _success()


# -- Connec! notifications (PLATFORM.md 6.4) ---------------------------------------------


def _json_body() -> object:
    limit = get_state().settings.webhook_max_size
    try:
        raw = read_body(request, limit)
    except RequestEntityTooLarge:
        raise DeliveryTooLarge(limit) from None
    if not raw:
        raise InvalidDelivery("Empty body: expected a JSON object of collections")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and bad UTF-8 are ValueErrors
        raise InvalidDelivery(f"Malformed JSON: {exc}") from None


def notification(**_view_args: str) -> Response:
    """``POST`` notification: hand each (group, collection) batch to the host."""
    _state, preset, _ = _authenticate("notification")
    body = _json_body()
    _deliver_batches(preset, body)
    # `body` is released after the batches (when this returns): see _deliver_batches
    return _success()


def _deliver_batches(preset: Preset, body: object) -> None:
    """Check ``body`` and hand each (collection, group) batch to the host.

    The batches die when this returns, while the view still holds ``body``: the entities
    are then freed by ``body``'s lists, in the order they were parsed (and placed in
    memory). Freed batch by batch instead, jumping through memory group by group, they
    took 2 to 3 ms more for 10,000 entities, about a tenth of ``json.loads`` (see
    docs/performance.rst, Notifications).
    """
    try:
        batches = parse_entities(body)
    except ValueError as exc:
        raise InvalidDelivery(f"Invalid notification: {exc}") from None
    app = current()
    for collection, group_id, entities in batches:
        context = f"collection {collection!r} of group {group_id!r} ({len(entities)} entities)"
        with _answering_failures("Connec! notification", context, preset):
            deliver(app, preset, group_id, collection, entities, source="notification")


def register(blueprint: Blueprint, router: PresetRouter) -> None:
    router.register(blueprint, "group", group_cancelled, ["DELETE"])
    router.register(blueprint, "group_user", member_removed, ["DELETE"])
    router.register(blueprint, "notification", notification, ["POST"])
