"""A developer platform's answers: the marketplace objects and the environment credentials."""

from __future__ import annotations

import socket
from typing import Any

from flask_maestrano.environments import ENVIRONMENTS

ENV_KEY = "env-key-123"
ENV_SECRET = "env-secret-do-not-leak"
API_KEY = "marketplace-api-key-do-not-leak"
UAT_FINGERPRINT = "8a:1e:2e:76:c4:67:80:68:6c:81:18:f7:d3:29:5d:77:f8:79:54:2f"


def marketplace(name: str, app_id: str = "app-uat", **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "nid": "my-awesome-app",
        "marketplace": name,
        "environment": "test",
        "app": {"host": "http://localhost:63705"},
        "api": {"id": app_id, "key": API_KEY, "host": "https://api-hub-uat.maestrano.io", "base": "/api/v1/"},
        "sso": {
            "idm": "http://localhost:63705",
            "init_path": f"/maestrano/init/?marketplace={name}",
            "consume_path": f"/maestrano/consume/?marketplace={name}",
            "idp": "https://api-hub-uat.maestrano.io",
            "x509_fingerprint": UAT_FINGERPRINT,
            "x509_certificate": ENVIRONMENTS["uat"]["sso.x509_certificate"],
        },
        "connec": {"host": "https://api-connec-uat.maestrano.io", "base_path": "/api/v2", "timeout": 300},
        "webhooks": {
            "account": {
                "group_path": f"/maestrano/account/groups/:id/{name}",
                "group_user_path": f"/maestrano/account/groups/:group_id/users/:id/{name}",
            },
            "connec": {"external_ids": True, "notification_path": f"/maestrano/connec/notifications/{name}"},
        },
        "a_field_added_later": {"anything": 1},
    }
    data.update(extra)
    return data


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
