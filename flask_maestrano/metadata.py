"""The metadata endpoint: the app's configuration as the platform fetched it (PLATFORM.md 1.8).

``GET /maestrano/metadata[/<preset>]`` with the preset's Basic credentials answers the
preset's configuration without ``api.key`` or any other secret. Without a preset segment,
the preset is the one whose credentials the request carries.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from .auth import authenticated_preset
from .routing import PresetRouter
from .state import get_state


def metadata(**_view_args: str) -> Response:
    state = get_state()
    candidates, _ = state.router.candidates("metadata", request)
    preset = authenticated_preset(request, candidates)
    return jsonify(preset.to_metadata(state.version))


def register(blueprint: Blueprint, router: PresetRouter) -> None:
    router.register(blueprint, "metadata", metadata, ["GET"])
