"""The DESIGN contract: every default route with its method, and the three ways to configure."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from flask import Flask, jsonify

from flask_maestrano import get_state
from tests.support.devplatform import marketplace
from tests.support.presets import preset_data
from tests.support.servers import LiveServer

DEV_PLATFORM_PRESET = {
    "app": {"host": "http://127.0.0.1:5000"},
    "api": {"id": "app-dev", "key": "dev-secret-key"},
    "environment": "local",
    "sso": {
        "init_path": "/maestrano/init/?marketplace=dev",
        "consume_path": "/maestrano/consume/?marketplace=dev",
    },
    "webhooks": {
        "account": {
            "group_path": "/maestrano/account/groups/:id/dev-hooks",
            "group_user_path": "/maestrano/account/groups/:group_id/users/:id/dev-hooks",
        },
        "connec": {"notification_path": "/maestrano/connec/notifications/dev-hooks"},
    },
}

CONTRACT_ROUTES = {
    ("GET", "/maestrano/auth/saml/init"),
    ("GET", "/maestrano/auth/saml/init/<preset>"),
    ("POST", "/maestrano/auth/saml/consume"),
    ("POST", "/maestrano/auth/saml/consume/<preset>"),
    # endpoint maestrano.sso_finish: the same-site GET after consume (login CSRF defence)
    ("GET", "/maestrano/auth/saml/finish"),
    ("DELETE", "/maestrano/account/groups/<group_id>"),
    ("DELETE", "/maestrano/account/groups/<group_id>/<preset>"),
    ("DELETE", "/maestrano/account/groups/<group_id>/users/<user_id>"),
    ("DELETE", "/maestrano/account/groups/<group_id>/users/<user_id>/<preset>"),
    ("POST", "/maestrano/connec/notifications"),
    ("POST", "/maestrano/connec/notifications/<preset>"),
    ("GET", "/maestrano/metadata"),
    ("GET", "/maestrano/metadata/<preset>"),
    ("GET", "/maestrano/auth/openid/init"),
    ("GET", "/maestrano/auth/openid/init/<preset>"),
    ("GET", "/maestrano/auth/openid/consume"),
    ("POST", "/maestrano/auth/openid/consume"),
    ("GET", "/maestrano/auth/openid/consume/<preset>"),
    ("POST", "/maestrano/auth/openid/consume/<preset>"),
    # the developer-platform preset's own paths
    ("GET", "/maestrano/init/"),
    ("POST", "/maestrano/consume/"),
    ("DELETE", "/maestrano/account/groups/<group_id>/dev-hooks"),
    ("DELETE", "/maestrano/account/groups/<group_id>/users/<user_id>/dev-hooks"),
    ("POST", "/maestrano/connec/notifications/dev-hooks"),
}


def served_routes(app: Flask) -> set[tuple[str, str]]:
    return {
        (method, rule.rule)
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("maestrano.")
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}
    }


def test_every_contract_route_is_served_with_its_method(make_app: Callable[..., Flask]) -> None:
    app = make_app(presets={"production": preset_data(), "dev": DEV_PLATFORM_PRESET})
    assert served_routes(app) == CONTRACT_ROUTES


def test_developer_platform_paths_answer(make_app: Callable[..., Flask]) -> None:
    app = make_app(presets={"production": preset_data(), "dev": DEV_PLATFORM_PRESET})
    client = app.test_client()
    init = client.get("/maestrano/init/?marketplace=dev")
    assert init.status_code == 302 and "SAMLRequest=" in init.headers["Location"]
    assert client.get("/maestrano/auth/saml/init/dev").status_code == 302
    group = client.delete("/maestrano/account/groups/cld-1/dev-hooks", auth=("app-dev", "dev-secret-key"))
    assert group.status_code == 200
    # another preset's credentials do not open the route
    other = client.delete("/maestrano/account/groups/cld-1/dev-hooks", auth=("app-test", "test-secret-key"))
    assert other.status_code == 401


# -- three ways to configure, one preset --------------------------------------------------------


def test_the_same_marketplace_object_gives_the_same_preset_three_ways(
    make_app: Callable[..., Flask],
    live_server: Callable[..., LiveServer],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    # the developer platform's answer verbatim (PLATFORM.md 1.7.3), minus fields a strict
    # MAESTRANO_PRESETS would refuse as typos
    answer: dict[str, Any] = marketplace("maestrano-uat")
    del answer["a_field_added_later"]
    platform = Flask("devplatform")
    platform.add_url_rule("/api/config/v1/marketplaces", view_func=lambda: jsonify(marketplaces=[answer]))
    server = live_server(platform)
    for var in ("HOST", "API_PATH", "ENV_NAME", "ENV_KEY", "ENV_SECRET"):
        monkeypatch.delenv(f"MNO_DEVPL_{var}", raising=False)

    def preset_of(**config: Any) -> dict[str, Any]:
        app = make_app(**config)
        return get_state(app).presets["maestrano-uat"].to_dict(include_secrets=True)

    from_config = preset_of(presets={"maestrano-uat": answer})

    dev_platform_yml = tmp_path / "dev_platform.yml"
    dev_platform_yml.write_text(
        yaml.safe_dump(
            {
                "dev_platform": {"host": server.url, "api_path": "/api/config/v1/marketplaces"},
                "environment": {"name": "env", "api_key": "key", "api_secret": "secret"},
            }
        )
    )
    from_file = preset_of(
        presets={}, MAESTRANO_AUTO_CONFIGURE=True, MAESTRANO_DEV_PLATFORM_FILE=str(dev_platform_yml)
    )

    for var, value in {
        "HOST": server.url,
        "API_PATH": "/api/config/v1",
        "ENV_NAME": "env",
        "ENV_KEY": "key",
        "ENV_SECRET": "secret",
    }.items():
        monkeypatch.setenv(f"MNO_DEVPL_{var}", value)
    from_environment = preset_of(
        presets={}, MAESTRANO_AUTO_CONFIGURE=True, MAESTRANO_DEV_PLATFORM_FILE=str(tmp_path / "none.yml")
    )

    assert from_config == from_file == from_environment
    assert from_config["environment"] == "maestrano-uat"
