"""Route templates from the presets' configured paths, and which presets a request may be for."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Blueprint, Flask, jsonify, request
from flask.testing import FlaskClient

from flask_maestrano.presets import Preset, load_presets
from flask_maestrano.routing import PresetRouter, RouteTemplate
from tests.support.presets import preset_data

GROUP = {":id": "group_id"}
GROUP_USER = {":group_id": "group_id", ":id": "user_id"}


# -- RouteTemplate ------------------------------------------------------------------------------


def test_default_template() -> None:
    template = RouteTemplate.parse("/maestrano/account/groups/:id", GROUP)
    assert template.rule == "/maestrano/account/groups/<group_id>"
    assert template.constraints == ()
    assert template.query_vars == ()


def test_two_placeholders() -> None:
    template = RouteTemplate.parse("/maestrano/account/groups/:group_id/users/:id", GROUP_USER)
    assert template.rule == "/maestrano/account/groups/<group_id>/users/<user_id>"


def test_trailing_marketplace_segment() -> None:
    template = RouteTemplate.parse("/maestrano/account/groups/:id/maestrano-uat", GROUP)
    assert template.rule == "/maestrano/account/groups/<group_id>/maestrano-uat"


def test_query_parameter_selects_the_marketplace() -> None:
    template = RouteTemplate.parse("/maestrano/init/?marketplace=maestrano-uat", {})
    assert template.rule == "/maestrano/init/"
    assert template.constraints == (("marketplace", "maestrano-uat"),)
    assert template.matches({"marketplace": "maestrano-uat"})
    assert not template.matches({"marketplace": "other"})
    assert not template.matches({})


def test_query_parameter_carries_the_id() -> None:
    template = RouteTemplate.parse("/maestrano/groupdeleted?groupid=:id&marketplace=x", GROUP)
    assert template.rule == "/maestrano/groupdeleted"
    assert template.constraints == (("marketplace", "x"),)
    assert template.query_vars == (("groupid", "group_id"),)
    assert template.matches({"groupid": "cld-1", "marketplace": "x"})
    assert not template.matches({"marketplace": "x"})
    assert template.url_values({"groupid": "cld-1", "marketplace": "x"}) == {"group_id": "cld-1"}


def test_marketplace_placeholder_is_expanded_in_every_path() -> None:
    preset = Preset.from_dict(
        "maestrano-uat",
        preset_data(
            sso={"init_path": "/maestrano/init/?marketplace=%{marketplace}"},
            webhooks={
                "account": {
                    "group_path": "/maestrano/groupdeleted?groupid=:id&marketplace=%{marketplace}",
                    "group_user_path": "/maestrano/account/groups/:group_id/users/:id/%{marketplace}",
                },
                "connec": {"notification_path": "/maestrano/connec/%{marketplace}/notifications"},
            },
        ),
    )
    router = PresetRouter({preset.name: preset}, preset.name)
    assert router.templates["sso_init"]["maestrano-uat"].constraints == (("marketplace", "maestrano-uat"),)
    assert router.templates["group"]["maestrano-uat"].constraints == (("marketplace", "maestrano-uat"),)
    assert router.templates["group_user"]["maestrano-uat"].rule == (
        "/maestrano/account/groups/<group_id>/users/<user_id>/maestrano-uat"
    )
    assert router.templates["notification"]["maestrano-uat"].rule == (
        "/maestrano/connec/maestrano-uat/notifications"
    )


def test_marketplace_key_wins_over_the_preset_name_in_expansion() -> None:
    preset = Preset.from_dict(
        "uat", preset_data(marketplace="maestrano-uat", sso={"init_path": "/init/%{marketplace}"})
    )
    assert preset.sso.init_path == "/init/maestrano-uat"


# -- PresetRouter on a real app ---------------------------------------------------------------


def presets() -> dict[str, Preset]:
    return load_presets(
        {
            "production": preset_data(),
            "maestrano-uat": preset_data(
                api={"id": "app-uat", "key": "uat-key"},
                sso={"init_path": "/maestrano/init/?marketplace=maestrano-uat"},
                webhooks={"account": {"group_path": "/maestrano/account/groups/:id/maestrano-uat"}},
            ),
            "maestrano-prod": preset_data(
                api={"id": "app-prod", "key": "prod-key"},
                sso={"init_path": "/maestrano/init/?marketplace=maestrano-prod"},
                webhooks={"account": {"group_path": "/maestrano/groupdeleted?groupid=:id&marketplace=mp"}},
            ),
        }
    )


@pytest.fixture
def client() -> FlaskClient:
    router = PresetRouter(presets(), "production")
    blueprint = Blueprint("probe", __name__)

    def view(kind: str) -> Any:
        def probe(**view_args: str) -> Any:
            candidates, values = router.candidates(kind, request)
            chosen = router.pick_default(candidates)
            return jsonify(
                candidates=sorted(p.name for p in candidates),
                values=values,
                view_args=view_args,
                default=chosen.name if chosen else None,
            )

        return probe

    for kind in ("sso_init", "group", "group_user", "notification", "metadata"):
        router.register(blueprint, kind, view(kind), ["GET"])
    app = Flask("routing")
    app.register_blueprint(blueprint)
    return app.test_client()


def test_rules_are_the_default_its_preset_form_and_each_distinct_configured_path() -> None:
    router = PresetRouter(presets(), "production")
    assert router.rules("group") == [
        "/maestrano/account/groups/<group_id>",
        "/maestrano/account/groups/<group_id>/<preset>",
        "/maestrano/account/groups/<group_id>/maestrano-uat",
        "/maestrano/groupdeleted",
    ]
    assert router.rules("sso_init") == [
        "/maestrano/auth/saml/init",
        "/maestrano/auth/saml/init/<preset>",
        "/maestrano/init/",
    ]
    assert router.rules("metadata") == ["/maestrano/metadata", "/maestrano/metadata/<preset>"]


def test_default_route_is_for_the_presets_that_use_it(client: FlaskClient) -> None:
    data = client.get("/maestrano/auth/saml/init").get_json()
    assert data["candidates"] == ["production"]
    assert data["default"] == "production"


def test_preset_segment_selects_exactly_that_preset(client: FlaskClient) -> None:
    data = client.get("/maestrano/auth/saml/init/maestrano-uat").get_json()
    assert data["candidates"] == ["maestrano-uat"]
    assert data["view_args"] == {"preset": "maestrano-uat"}
    assert client.get("/maestrano/auth/saml/init/unknown").get_json()["candidates"] == []


def test_query_parameter_route_selects_the_marketplace(client: FlaskClient) -> None:
    assert client.get("/maestrano/init/?marketplace=maestrano-uat").get_json()["candidates"] == [
        "maestrano-uat"
    ]
    assert client.get("/maestrano/init/?marketplace=maestrano-prod").get_json()["default"] == "maestrano-prod"


def test_configured_route_with_an_unknown_marketplace_has_no_candidate(client: FlaskClient) -> None:
    data = client.get("/maestrano/init/?marketplace=elsewhere").get_json()
    assert data["candidates"] == []
    assert data["default"] is None
    assert client.get("/maestrano/init/").get_json()["candidates"] == []


def test_trailing_marketplace_segment_route(client: FlaskClient) -> None:
    data = client.get("/maestrano/account/groups/cld-1/maestrano-uat").get_json()
    assert data["candidates"] == ["maestrano-uat"]
    assert data["view_args"] == {"group_id": "cld-1"}


def test_id_in_a_query_parameter(client: FlaskClient) -> None:
    data = client.get("/maestrano/groupdeleted?groupid=cld-7&marketplace=mp").get_json()
    assert data["candidates"] == ["maestrano-prod"]
    assert data["values"] == {"group_id": "cld-7"}
    assert client.get("/maestrano/groupdeleted?marketplace=mp").get_json()["candidates"] == []


def test_default_route_nobody_configured_is_open_to_every_preset() -> None:
    only_custom = load_presets(
        {
            "a": preset_data(webhooks={"connec": {"notification_path": "/hooks/a"}}),
            "b": preset_data(webhooks={"connec": {"notification_path": "/hooks/b"}}),
        }
    )
    router = PresetRouter(only_custom, None)
    blueprint = Blueprint("probe", __name__)

    def probe(**_: str) -> Any:
        candidates, _values = router.candidates("notification", request)
        return jsonify(sorted(p.name for p in candidates))

    router.register(blueprint, "notification", probe, ["POST"])
    app = Flask("routing")
    app.register_blueprint(blueprint)
    client = app.test_client()
    assert client.post("/maestrano/connec/notifications").get_json() == ["a", "b"]
    assert client.post("/hooks/a").get_json() == ["a"]
    assert client.post("/maestrano/connec/notifications/b").get_json() == ["b"]


def test_metadata_route_is_open_to_every_preset(client: FlaskClient) -> None:
    data = client.get("/maestrano/metadata").get_json()
    assert data["candidates"] == ["maestrano-prod", "maestrano-uat", "production"]


def test_pick_default_needs_one_candidate_or_the_default() -> None:
    all_presets = presets()
    router = PresetRouter(all_presets, "production")
    assert router.pick_default([all_presets["maestrano-uat"]]).name == "maestrano-uat"  # type: ignore[union-attr]
    assert router.pick_default(list(all_presets.values())).name == "production"  # type: ignore[union-attr]
    no_default = PresetRouter(all_presets, None)
    assert no_default.pick_default([all_presets["maestrano-uat"], all_presets["maestrano-prod"]]) is None
    assert no_default.pick_default([]) is None
