"""GET /maestrano/metadata[/<preset>]: the preset's configuration, behind its Basic credentials."""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.support.presets import preset_data

PROD_KEY = "prod-secret-key-value"
UAT_KEY = "uat-secret-key-value"


@pytest.fixture
def client(make_app: Callable[..., Flask]) -> FlaskClient:
    app = make_app(
        presets={
            "production": preset_data(api={"id": "app-prod", "key": PROD_KEY}),
            "maestrano-uat": preset_data(
                environment="uat",
                app={"host": "https://uat.myapp.example"},
                api={"id": "app-uat", "key": UAT_KEY},
                webhooks={"connec": {"subscriptions": {"organizations": True, "people": False}}},
            ),
        }
    )
    return app.test_client()


def assert_invalid_credentials(response: object) -> None:
    assert response.status_code == 401  # type: ignore[attr-defined]
    assert response.get_json() == {"error": "Invalid credentials"}  # type: ignore[attr-defined]
    assert response.headers["WWW-Authenticate"].startswith("Basic")  # type: ignore[attr-defined]


def test_metadata_of_the_preset_the_credentials_belong_to(client: FlaskClient) -> None:
    response = client.get("/maestrano/metadata", auth=("app-uat", UAT_KEY))
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    data = response.get_json()
    assert data["marketplace"] == "maestrano-uat"
    assert data["environment"] == "uat"
    assert data["app"]["host"] == "https://uat.myapp.example"
    assert data["api"]["id"] == "app-uat"
    assert data["api"]["host"] == "https://uat.maestrano.io"
    assert data["api"]["lang"] == "python"
    assert data["sso"]["init_path"] == "/maestrano/auth/saml/init"
    assert data["sso"]["idm"] == "https://uat.myapp.example"
    assert data["sso"]["x509_fingerprint"] == "8a:1e:2e:76:c4:67:80:68:6c:81:18:f7:d3:29:5d:77:f8:79:54:2f"
    assert data["webhook"]["account"]["groups_path"] == "/maestrano/account/groups/:id"
    assert data["webhook"]["account"]["group_users_path"] == "/maestrano/account/groups/:group_id/users/:id"
    assert data["webhook"]["connec"]["subscriptions"] == {"organizations": True, "people": False}
    assert data["webhooks"]["connec"]["notification_path"] == "/maestrano/connec/notifications"


def test_metadata_never_contains_a_secret(client: FlaskClient) -> None:
    for path, auth in (
        ("/maestrano/metadata", ("app-prod", PROD_KEY)),
        ("/maestrano/metadata/maestrano-uat", ("app-uat", UAT_KEY)),
    ):
        response = client.get(path, auth=auth)
        assert response.status_code == 200
        text = response.get_data(as_text=True)
        assert PROD_KEY not in text
        assert UAT_KEY not in text
        assert "********" not in text
        assert "key" not in response.get_json()["api"]
        assert "token" not in response.get_json()["api"]


def test_metadata_of_a_named_preset(client: FlaskClient) -> None:
    response = client.get("/maestrano/metadata/production", auth=("app-prod", PROD_KEY))
    assert response.status_code == 200
    assert response.get_json()["api"]["id"] == "app-prod"


def test_without_credentials(client: FlaskClient) -> None:
    assert_invalid_credentials(client.get("/maestrano/metadata"))
    assert_invalid_credentials(client.get("/maestrano/metadata/production"))


def test_wrong_password(client: FlaskClient) -> None:
    assert_invalid_credentials(client.get("/maestrano/metadata", auth=("app-prod", PROD_KEY + "x")))
    assert_invalid_credentials(client.get("/maestrano/metadata", auth=("app-prod", "")))


def test_credentials_of_another_preset_are_refused(client: FlaskClient) -> None:
    assert_invalid_credentials(client.get("/maestrano/metadata/production", auth=("app-uat", UAT_KEY)))
    assert_invalid_credentials(client.get("/maestrano/metadata/maestrano-uat", auth=("app-prod", PROD_KEY)))


def test_mixed_credentials_are_refused(client: FlaskClient) -> None:
    assert_invalid_credentials(client.get("/maestrano/metadata", auth=("app-prod", UAT_KEY)))


def test_unknown_preset_is_refused_like_bad_credentials(client: FlaskClient) -> None:
    assert_invalid_credentials(client.get("/maestrano/metadata/nope", auth=("app-prod", PROD_KEY)))


@pytest.mark.parametrize(
    "header",
    [
        "Bearer abc",
        "Basic !!!not-base64!!!",
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Basic",
    ],
)
def test_malformed_authorization_header(client: FlaskClient, header: str) -> None:
    assert_invalid_credentials(client.get("/maestrano/metadata", headers={"Authorization": header}))


def test_basic_scheme_is_case_insensitive(client: FlaskClient) -> None:
    token = base64.b64encode(f"app-prod:{PROD_KEY}".encode()).decode()
    assert client.get("/maestrano/metadata", headers={"Authorization": f"basic {token}"}).status_code == 200


def test_only_get_is_served(client: FlaskClient) -> None:
    assert client.post("/maestrano/metadata", auth=("app-prod", PROD_KEY)).status_code == 405
