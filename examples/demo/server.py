"""The demo and the sandbox platform on one WSGI server (what ``make demo`` serves).

With the five ``MNO_DEVPL_*`` variables set, the demo configures itself from that developer
platform instead and no sandbox runs. ``DEMO_SSO_PROTOCOL=openid`` registers the demo app with
the sandbox as an OpenID 2.0 app (single sign-on through the sandbox's OpenID provider instead
of its SAML IdP); the pages are the same.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask import Flask
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from flask_maestrano.devplatform import check_environment

from . import create_app

SANDBOX_PREFIX = "/sandbox"
APP_ID = "app-demo"
#: the sandbox's seeded user already has an account in the demo: at her first login she
#: confirms it is hers with its local password, and single sign-on links it
EXISTING_PASSWORD = "jane-local-password"
EXISTING_USERS = [
    {"email": "jane.doe@example.com", "first_name": "Jane", "last_name": "Doe", "password": EXISTING_PASSWORD}
]


@dataclass
class Served:
    """What one server serves: the WSGI entry point, the demo and the sandbox (if any)."""

    wsgi: Any
    demo: Flask
    sandbox: Flask | None
    base_url: str

    @property
    def sandbox_url(self) -> str | None:
        return self.base_url + SANDBOX_PREFIX if self.sandbox is not None else None


def build(
    base_url: str,
    instance_path: str,
    *,
    config: Mapping[str, Any] | None = None,
    sandbox_config: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Served:
    """The demo served at ``base_url`` (``http://127.0.0.1:5000``), its data in ``instance_path``.

    ``base_url`` must be the URL the browser uses: the sandbox's IdP posts the login to it,
    and the platform's calls back to the app (webhooks) go there.

    Raises :class:`~flask_maestrano.errors.DevPlatformError` when some but not all of the
    ``MNO_DEVPL_*`` variables are set (one misspelt, say): the demo never falls back to the
    sandbox, whose admin page has no login, behind the operator's back.
    """
    base_url = base_url.rstrip("/")
    environ = os.environ if environ is None else environ
    protocol = environ.get("DEMO_SSO_PROTOCOL") or "saml"
    if protocol not in ("saml", "openid"):
        raise ValueError(f"DEMO_SSO_PROTOCOL must be 'saml' or 'openid', not {protocol!r}")
    if check_environment(environ):
        demo = create_app({"MAESTRANO_AUTO_CONFIGURE": True, **(config or {})}, instance_path=instance_path)
        return Served(demo, demo, None, base_url)

    from flask_maestrano.sandbox import create_app as create_sandbox
    from flask_maestrano.sandbox import preset_for

    sandbox = create_sandbox(
        {
            "SANDBOX_DATABASE": os.path.join(instance_path, "sandbox.sqlite3"),
            "SANDBOX_URL": base_url + SANDBOX_PREFIX,
            "SANDBOX_APPS": [
                {
                    "id": APP_ID,
                    "name": "Demo CRM",
                    "host": base_url,
                    "marketplace": "sandbox",
                    "protocol": protocol,
                }
            ],
            # the platform says 3 minutes; 30 s lets a visitor see single logout happen
            "SANDBOX_SESSION_RECHECK": 30,
            **(sandbox_config or {}),
        }
    )
    demo = create_app(
        {
            "MAESTRANO_PRESETS": {"sandbox": preset_for(sandbox, APP_ID)},
            "DEMO_EXISTING_USERS": EXISTING_USERS,
            **(config or {}),
        },
        instance_path=instance_path,
    )
    return Served(DispatcherMiddleware(demo, {SANDBOX_PREFIX: sandbox}), demo, sandbox, base_url)
