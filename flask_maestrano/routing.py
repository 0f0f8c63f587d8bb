"""URL rules built from the presets' configured paths, and the preset a request is for.

The platform lets each marketplace configure its own paths, in three shapes:

* the defaults, with an optional trailing preset segment
  (``/maestrano/account/groups/<group_id>`` and ``.../<group_id>/<preset>``);
* a literal marketplace segment (``/maestrano/account/groups/:id/maestrano-uat``);
* a query parameter (``/maestrano/init/?marketplace=maestrano-uat``, or
  ``/maestrano/groupdeleted?groupid=:id&marketplace=x`` where even the id is a parameter).

Each view kind has one :class:`RouteTemplate` per preset. The router registers every
distinct path once (plus the defaults) and, per request, lists the presets whose template
matches the path and the literal query parameters. Which of several candidates wins is
the view's decision: SSO takes the default preset, webhooks take the preset whose
credentials match.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from flask import Blueprint, Request

from .errors import ConfigurationError
from .presets import DEFAULTS, Preset

# kind -> (preset attribute path, placeholder -> view argument)
KINDS: Mapping[str, tuple[str, Mapping[str, str]]] = {
    "sso_init": ("sso.init_path", {}),
    "sso_consume": ("sso.consume_path", {}),
    "openid_init": ("sso.openid_init_path", {}),
    "openid_consume": ("sso.openid_consume_path", {}),
    "group": ("webhooks.account.group_path", {":id": "group_id"}),
    "group_user": ("webhooks.account.group_user_path", {":group_id": "group_id", ":id": "user_id"}),
    "notification": ("webhooks.connec.notification_path", {}),
}
FIXED_PATHS = {"metadata": "/maestrano/metadata"}


@dataclass(frozen=True, slots=True)
class RouteTemplate:
    """A configured path parsed into a Werkzeug rule and query-string parts."""

    rule: str
    #: literal query parameters the request must carry, e.g. ``(("marketplace", "x"),)``
    constraints: tuple[tuple[str, str], ...] = ()
    #: query parameters that carry a view argument, e.g. ``(("groupid", "group_id"),)``
    query_vars: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(
        cls, template: str, placeholders: Mapping[str, str], *, preset: str = "?", key: str | None = None
    ) -> RouteTemplate:
        """Parse ``template`` (``/groups/:id?marketplace=x``); ``preset``/``key`` name it in errors."""

        def unknown(placeholder: str) -> ConfigurationError:
            known = ", ".join(placeholders) or "none"
            return ConfigurationError(
                f"unknown placeholder {placeholder!r} in path {template!r} (known: {known})",
                preset=preset,
                key=key,
            )

        path, _, query = template.partition("?")
        segments = []
        for segment in path.split("/"):
            if segment.startswith(":"):
                if segment not in placeholders:
                    raise unknown(segment)
                segment = f"<{placeholders[segment]}>"
            segments.append(segment)
        constraints, query_vars = [], []
        for name, value in parse_qsl(query, keep_blank_values=True):
            if value.startswith(":") and value not in placeholders:
                raise unknown(value)
            if value in placeholders:
                query_vars.append((name, placeholders[value]))
            else:
                constraints.append((name, value))
        return cls("/".join(segments), tuple(constraints), tuple(query_vars))

    def matches(self, args: Mapping[str, str]) -> bool:
        return all(args.get(k) == v for k, v in self.constraints) and all(
            args.get(k) for k, _ in self.query_vars
        )

    def url_values(self, args: Mapping[str, str]) -> dict[str, str]:
        return {var: args[name] for name, var in self.query_vars if name in args}


def _attr(preset: Preset, dotted: str) -> str:
    group, _, key = dotted.partition(".")
    if group == "webhooks":
        return str(getattr(preset.webhooks, key.split(".")[1]))
    return str(getattr(getattr(preset, group), key))


class PresetRouter:
    """Knows, per view kind, each preset's route and which presets a request may be for."""

    def __init__(self, presets: Mapping[str, Preset], default_preset: str | None) -> None:
        self.presets = presets
        self.default_preset = default_preset
        self.templates: dict[str, dict[str, RouteTemplate]] = {}
        for kind, (dotted, placeholders) in KINDS.items():
            self.templates[kind] = {
                name: RouteTemplate.parse(_attr(p, dotted), placeholders, preset=name, key=dotted)
                for name, p in presets.items()
            }
        self.defaults = {
            kind: RouteTemplate.parse(DEFAULTS[dotted], placeholders)
            for kind, (dotted, placeholders) in KINDS.items()
        }

    def rules(self, kind: str) -> list[str]:
        """Every distinct rule of ``kind``: the default, its ``/<preset>`` form, each preset's."""
        if kind in FIXED_PATHS:
            base = FIXED_PATHS[kind]
            return [base, f"{base}/<preset>"]
        default = self.defaults[kind].rule
        rules = [default, f"{default.rstrip('/')}/<preset>"]
        for template in self.templates[kind].values():
            if template.rule not in rules:
                rules.append(template.rule)
        return rules

    def register(
        self,
        blueprint: Blueprint,
        kind: str,
        view: Callable[..., Any],
        methods: Iterable[str],
    ) -> None:
        """Add every rule of ``kind`` to ``blueprint``; the endpoint is ``kind``."""
        for rule in self.rules(kind):
            blueprint.add_url_rule(rule, endpoint=kind, view_func=view, methods=list(methods))

    def candidates(self, kind: str, request: Request) -> tuple[list[Preset], dict[str, str]]:
        """The presets this request may be for, and view arguments read from the query.

        A ``preset`` view argument selects exactly that preset (none if unknown).
        Otherwise: the presets whose configured route matches the request; when none
        does and the request is on the default route (which every app serves), every
        preset. A request on a preset's own route that matches no preset (for example
        ``?marketplace=`` naming an unknown marketplace) has no candidates.
        """
        view_args = request.view_args or {}
        named = view_args.get("preset")
        if named is not None:
            preset = self.presets.get(named)
            return ([preset] if preset else []), {}
        if kind in FIXED_PATHS:
            return list(self.presets.values()), {}
        rule = request.url_rule.rule if request.url_rule else ""
        matched: list[Preset] = []
        values: dict[str, str] = {}
        for name, template in self.templates[kind].items():
            if template.rule == rule and template.matches(request.args):
                matched.append(self.presets[name])
                values = values or template.url_values(request.args)
        if not matched and rule == self.defaults[kind].rule:
            return list(self.presets.values()), values
        return matched, values

    def pick_default(self, candidates: list[Preset]) -> Preset | None:
        """One preset among candidates: the only one, else the default preset if present."""
        if len(candidates) == 1:
            return candidates[0]
        for preset in candidates:
            if preset.name == self.default_preset:
                return preset
        return None
