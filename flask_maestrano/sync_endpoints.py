"""The platform's synchronization endpoints (SYNC.md 1): status, start and toggle per preset.

Served at the preset's ``app.synchronization_status_path`` (``GET``),
``app.synchronization_start_path`` (``POST``) and ``app.synchronization_toggle_path``
(``PUT``), by default ``/maestrano/<preset>/synchronizations/<group_id>``,
``/maestrano/<preset>/synchronizations`` and ``/maestrano/<preset>/synchronizations/toggle_sync``;
HTTP Basic with that preset's ``api.id``/``api.key``. Registered by
:func:`flask_maestrano.syncing.configure`.

Every answer is ``{"group_id", "sync_enabled", "status"[, "message", "updated_at"]}``; an
unknown group is 404 ``{"errors":[{"message":"Organization not found","code":404}]}``; a
malformed request is 400 in the same envelope, naming what was wrong. Decisions where the
Rails framework misbehaved (SYNC.md 7.10): start answers **202** when it queued a run (200
with the current status when a run is already queued or running, or when sync is off) and
never switches sync on; ``DISABLED`` means sync is off, nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from flask import Response, jsonify, request

from .presets import Preset
from .settings import flag as settings_flag

#: ``:cld-uid``, ``{group_id}`` or ``<group_id>`` in a status path: the group uid.
_PLACEHOLDER = re.compile(r":[A-Za-z_][\w-]*|\{[^/}]*\}|<[^/>]*>")
_OPTIONS = ("full_sync", "only_entities", "connec_preemption", "forced")


class BadRequest(Exception):
    """A malformed synchronization request (answered 400 naming the problem)."""


def paths(preset: Preset) -> dict[str, str]:
    """The three Flask rules of ``preset`` (``status`` has a ``<group_id>`` part)."""
    base = f"/maestrano/{preset.name}/synchronizations"

    def path(value: str | None, default: str) -> str:
        text = urlsplit(value).path if value else default
        return "/" + text.strip("/")

    status = path(preset.app.synchronization_status_path, f"{base}/:cld-uid")
    status = _PLACEHOLDER.sub("<group_id>", status, count=1)
    if "<group_id>" not in status:
        status = status.rstrip("/") + "/<group_id>"
    return {
        "status": status,
        "start": path(preset.app.synchronization_start_path, base),
        "toggle": path(preset.app.synchronization_toggle_path, f"{base}/toggle_sync"),
    }


def error(status: int, message: str) -> Response:
    response = jsonify({"errors": [{"message": message, "code": status}]})
    response.status_code = status
    return response


def not_found() -> Response:
    return error(404, "Organization not found")


def flag(value: Any, name: str) -> bool:
    """``true``/``false``/``1``/``0`` (JSON booleans or strings, any case) -- strictly."""
    try:
        return settings_flag(value)
    except ValueError as exc:
        raise BadRequest(f"{name} {exc}") from None


def _entities(value: Any, mapped: Sequence[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        names = [v.strip() for v in value.split(",") if v.strip()]
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        names = [v.strip() for v in value if v.strip()]
    else:
        raise BadRequest("opts[only_entities] must be a list of collection names or a comma-separated string")
    if not names:
        raise BadRequest("opts[only_entities] is empty")
    unknown = [n for n in names if n not in mapped]
    if unknown:
        raise BadRequest(
            f"opts[only_entities]: no mapping for {', '.join(repr(n[:40]) for n in unknown)} "
            f"(mapped: {', '.join(mapped)})"
        )
    return tuple(dict.fromkeys(names))


def read_request(mapped: Sequence[str], *, needs_group: bool = True) -> tuple[str, dict[str, Any]]:
    """``(group_id, options)`` from a JSON or form body (query parameters count too)."""
    raw: dict[str, Any] = {}
    opts: dict[str, Any] = {}
    if request.is_json:
        try:
            body = request.get_json(silent=True)
        except RecursionError:  # silent covers only what json.loads raises as ValueError
            raise BadRequest("the JSON body is nested too deeply") from None
        if not isinstance(body, dict):
            raise BadRequest('the body must be a JSON object like {"group_id": "cld-1234", "opts": {}}')
        raw = body
        given = body.get("opts", {})
        if given is None:
            given = {}
        if not isinstance(given, dict):
            raise BadRequest("opts must be an object")
        opts = dict(given)
    else:
        form = request.form  # empty unless the body is a form
        if not form and request.get_data(cache=True):
            raise BadRequest("send a JSON object or a form (application/x-www-form-urlencoded)")
        raw = {"group_id": form.get("group_id")}
        for key in form:
            if key.startswith("opts[") and key.endswith("]"):
                name = key[5:-1]
                values = form.getlist(key)
                opts[name] = values if name == "only_entities" and len(values) > 1 else values[-1]
            elif key.startswith("opts[only_entities]["):
                opts.setdefault("only_entities", [])
                opts["only_entities"] += form.getlist(key)
            elif key != "group_id":
                raise BadRequest(f"unknown parameter {key[:40]!r}")
    group_id = raw.get("group_id") or request.args.get("group_id")
    if needs_group and (not isinstance(group_id, str) or not group_id.strip() or len(group_id) > 255):
        raise BadRequest("group_id is required: the company's group uid, e.g. cld-1234")
    unknown = [k for k in opts if k not in _OPTIONS]
    if unknown:
        raise BadRequest(f"unknown option opts[{str(unknown[0])[:40]}] (accepted: {', '.join(_OPTIONS)})")
    options: dict[str, Any] = {}
    if opts.get("full_sync") not in (None, ""):
        options["full"] = flag(opts["full_sync"], "opts[full_sync]")
    if opts.get("only_entities") not in (None, "", []):
        options["only"] = _entities(opts["only_entities"], mapped)
    if opts.get("connec_preemption") not in (None, ""):
        options["preemption"] = flag(opts["connec_preemption"], "opts[connec_preemption]")
    forced = opts.get("forced")
    options["forced"] = flag(forced, "opts[forced]") if forced not in (None, "") else False
    return str(group_id or ""), options
