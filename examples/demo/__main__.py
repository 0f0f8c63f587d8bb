"""``python -m examples.demo`` (``make demo``): serve the demo with the sandbox platform.

``PORT`` (default 5000) and ``HOST`` (default 127.0.0.1) choose where; the data lives in
``instance/`` at the repository root. With the five ``MNO_DEVPL_*`` variables set, the demo
configures itself from that developer platform and no sandbox runs; with only some of them
set it refuses to start and says which are missing. The sandbox (no login on its admin page)
is served on a loopback ``HOST`` only, unless ``SANDBOX_ALLOW_REMOTE=1``. ``DEMO_SSO_PROTOCOL=openid``
logs in through the sandbox's OpenID 2.0 provider instead of its SAML IdP.
"""

from __future__ import annotations

import os
import sys

from werkzeug.serving import run_simple

from flask_maestrano.devplatform import check_environment
from flask_maestrano.errors import DevPlatformError
from flask_maestrano.sandbox import check_bind_host

from .server import EXISTING_PASSWORD, build

INSTANCE = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "instance"
)


def protocol_name(protocol: str) -> str:
    return "OpenID 2.0" if protocol == "openid" else "SAML 2.0"


def main() -> None:
    host = os.environ.get("HOST", "127.0.0.1")
    port_text = os.environ.get("PORT") or "5000"
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        sys.exit(f"PORT must be a TCP port number (1-65535), not {port_text!r}")
    port = int(port_text)
    try:
        from_platform = check_environment()
        if not from_platform:
            check_bind_host(host, allow_remote=os.environ.get("SANDBOX_ALLOW_REMOTE") == "1")
    except (DevPlatformError, ValueError) as exc:
        sys.exit(f"The demo cannot start: {exc}")
    base_url = f"http://{host}:{port}"
    protocol = os.environ.get("DEMO_SSO_PROTOCOL") or "saml"
    if protocol not in ("saml", "openid"):
        sys.exit(f"DEMO_SSO_PROTOCOL must be 'saml' or 'openid', not {protocol!r}")
    served = build(base_url, os.environ.get("DEMO_INSTANCE", INSTANCE))
    print(f"\nDemo CRM on {base_url}/", flush=True)
    if served.sandbox_url:
        print(
            f"  1. open {base_url}/ and click 'Log in with Maestrano' (through {protocol_name(protocol)})\n"
            f"  2. the sandbox ({served.sandbox_url}/) signs you in (pick Jane Doe or create a user);\n"
            f"     Jane had a Demo CRM account before: link it with its password {EXISTING_PASSWORD!r}\n"
            f"  3. in the sandbox admin ({served.sandbox_url}/) cancel the company, remove a member, end a\n"
            f"     session or edit and notify a record, and watch the demo follow\n",
            flush=True,
        )
    else:
        print("  configured from the developer platform (MNO_DEVPL_*); no sandbox\n", flush=True)
    # threaded: the sandbox calls back into the demo (webhooks) on this same server
    run_simple(host, port, served.wsgi, threaded=True, use_reloader=False)


if __name__ == "__main__":
    main()
