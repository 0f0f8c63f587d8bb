"""The SAML identity provider, the session check and the platform pages (PLATFORM.md 2).

``GET /api/v1/auth/saml`` takes an AuthnRequest (HTTP-Redirect binding), lets the browser pick
or create a user and a company, then answers with an auto-submitting form that POSTs a signed
``SAMLResponse`` (and the ``RelayState``) to the ACS URL of the request.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
import sqlite3
import zlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, abort, current_app, jsonify, render_template, request, session

from ..saml_idp import build_response, encode
from .core import base_url, check_csrf, database, keypair
from .db import ROLES, iso, utcnow

bp = Blueprint("idp", __name__)

WRONG_APP_ID = "Wrong APP ID! The API app_id parameter is likely to be misconfigured."
MAX_REQUEST = 64 * 1024
# The regexes of the platform's IdP (PLATFORM.md 2.3): the issuer must use the saml: prefix.
ID_RE = re.compile(r"""ID=['"](.+?)['"]""")
ACS_RE = re.compile(r"""AssertionConsumerServiceURL=['"](.+?)['"]""")
ISSUER_RE = re.compile(r"<saml:Issuer\s?.*>(.*)</saml:Issuer>")
VIRTUAL_EMAIL_DOMAIN = "mail.maestrano.com"


@dataclass(frozen=True)
class AuthnRequest:
    raw: str
    id: str
    acs: str
    issuer: str


def plain(text: str, status: int) -> Response:
    return Response(text, status=status, mimetype="text/plain")


def parse_request(encoded: str | None) -> AuthnRequest | Response:
    """Decode a SAMLRequest; a Response (4xx, plain text) when it is unusable."""
    if not encoded:
        return plain("Missing SAMLRequest parameter.", 400)
    if len(encoded) > MAX_REQUEST:
        return plain("SAMLRequest is too large.", 413)
    try:
        compressed = base64.b64decode("".join(encoded.split()), validate=True)
    except (binascii.Error, ValueError):
        return plain("SAMLRequest is not valid base64.", 400)
    try:
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        xml = inflater.decompress(compressed, MAX_REQUEST).decode("utf-8")
        if not inflater.eof:
            raise zlib.error("truncated or oversized stream")
    except (zlib.error, UnicodeDecodeError):
        return plain("SAMLRequest is not raw-DEFLATE compressed UTF-8 XML.", 400)
    issuer = ISSUER_RE.search(xml)
    app = database().app(issuer.group(1).strip()) if issuer is not None else None
    if issuer is None or app is None:
        return plain(WRONG_APP_ID, 400)
    request_id, acs = ID_RE.search(xml), ACS_RE.search(xml)
    if request_id is None or acs is None:
        return plain("The AuthnRequest has no ID or no AssertionConsumerServiceURL.", 400)
    parts = urlsplit(acs.group(1))
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return plain("The AssertionConsumerServiceURL is not an http(s) URL.", 400)
    # a signed response for the signed-in user goes only to the app's own consume URL: a link
    # naming another ACS (https://evil.example/acs) would hand the login to whoever owns it
    registered = consume_url(app)
    if _normalised(acs.group(1)) != _normalised(registered):
        return plain(
            f"The AssertionConsumerServiceURL {acs.group(1)} is not the consume URL registered for "
            f"{app['id']} ({registered}): no response is sent there.",
            400,
        )
    return AuthnRequest(raw=encoded, id=request_id.group(1), acs=acs.group(1), issuer=issuer.group(1).strip())


def recheck_seconds() -> float:
    """``SANDBOX_SESSION_RECHECK``: how long apps wait before checking a session again."""
    return float(current_app.config["SANDBOX_SESSION_RECHECK"])


def consume_url(app: sqlite3.Row) -> str:
    """The registered app's ACS URL: its host and consume path (PLATFORM.md 2.1)."""
    return f"{app['host']}{app['consume_path']}"


def _normalised(url: str) -> tuple[str, str, str, str, str]:
    # scheme and host compare case-insensitively and a default port may be left out; any
    # user:password@, the path, the query and the fragment compare exactly
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme.lower())
    try:
        port = parts.port or default
    except ValueError:  # a port that is not a number
        port = None
    host = (parts.hostname or "").lower()
    userinfo = parts.netloc.rpartition("@")[0]
    return f"{parts.scheme.lower()}://{host}:{port}", userinfo, parts.path, parts.query, parts.fragment


def _recheck() -> timedelta:
    return timedelta(seconds=recheck_seconds())


def idp_url() -> str:
    return f"{base_url()}/api/v1/auth/saml"


def attributes(user: sqlite3.Row, group: sqlite3.Row, role: str) -> dict[str, str]:
    """Every attribute the platform sends (PLATFORM.md 2.4), in its order."""
    uid, group_uid = user["uid"], group["uid"]
    return {
        "mno_uid": uid,
        "mno_session": user["sso_session"],
        "mno_session_recheck": iso(utcnow() + _recheck()),
        "group_uid": group_uid,
        "group_name": group["name"],
        "group_end_free_trial": group["free_trial_end_at"],
        "group_role": role or "Guest",
        "group_has_credit_card": "true" if group["has_credit_card"] else "false",
        "group_email": group["email"],
        "group_currency": group["currency"],
        "group_timezone": group["timezone"],
        "group_country": group["country"],
        "group_city": group["city"],
        "group_reseller_id": group["reseller_id"],
        "group_org_uid": f"org-{group['n']}",
        "uid": uid,
        "virtual_uid": f"{uid}.{group_uid}",
        "email": user["email"],
        "virtual_email": f"{uid}.{group_uid}@{VIRTUAL_EMAIL_DOMAIN}",
        "name": user["name"],
        "surname": user["surname"],
        "country": user["country"],
        "company_name": user["company_name"],
        "app_owner": "true",
        "organizations": "{}",
    }


def saml_post(authn: AuthnRequest, user_uid: str, group_uid: str) -> Any:
    """The auto-submitting form carrying the signed response to the ACS.

    A company that cancelled the app gets the sign-in page again (403) instead: it must add
    the app again (admin page) before its members can launch it.
    """
    db = database()
    user, group, membership = db.user(user_uid), db.group(group_uid), db.membership(group_uid, user_uid)
    if user is None or group is None or membership is None:
        abort(400, "The user is not a member of that company.")
    if not db.launch(authn.issuer, group_uid):
        app = db.app(authn.issuer)
        message = (
            f"{group['name']} ({group_uid}) cancelled {app['name'] if app else authn.issuer}: "
            "add the app to the company again from the sandbox admin page to launch it."
        )
        return choose_page(authn, message, 403)
    parts = urlsplit(authn.acs)
    key_pem, cert_pem = keypair()
    xml = build_response(
        key_pem=key_pem,
        cert_pem=cert_pem,
        issuer=idp_url(),
        destination=authn.acs,
        recipient=authn.acs,
        audience=f"{parts.scheme}://{parts.netloc}/",
        in_response_to=authn.id,
        name_id=user["uid"],
        attributes=attributes(user, group, membership["role"]),
    )
    return render_template(
        "sandbox/saml_post.html",
        action=authn.acs,
        saml_response=encode(xml),
        relay_state=request.values.get("RelayState"),
    )


def signed_in_user() -> sqlite3.Row | None:
    """The user this browser signed in as, while their marketplace session lasts.

    Ending the session (admin page's *End session*, ``/app_logout``) gives the user a new
    token: the browser's sign-in ends with it and the next login asks to sign in again.
    """
    uid, token = session.get("user_uid"), session.get("sso_session")
    if not isinstance(uid, str) or not isinstance(token, str):
        return None
    user = database().user(uid)
    if user is None or not hmac.compare_digest(token.encode(), user["sso_session"].encode()):
        session.pop("user_uid", None)
        session.pop("sso_session", None)
        return None
    return user


def sign_in(user_uid: str) -> None:
    """Remember in this browser's sandbox session that it signed in as ``user_uid``."""
    user = database().user(user_uid)
    if user is not None:
        session["user_uid"], session["sso_session"] = user_uid, user["sso_session"]


def choose_page(authn: AuthnRequest, message: str | None = None, status: int = 200) -> tuple[str, int]:
    db = database()
    user = signed_in_user()
    memberships = db.memberships(user_uid=user["uid"]) if user else []
    return (
        render_template(
            "sandbox/idp.html",
            authn=authn,
            app=db.app(authn.issuer),
            user=user,
            memberships=memberships,
            users=db.users(),
            groups=db.groups(),
            roles=ROLES,
            group_id=request.values.get("group_id", ""),
            relay_state=request.values.get("RelayState"),
            message=message,
        ),
        status,
    )


@bp.get("/api/v1/auth/saml")
def sso() -> Any:
    authn = parse_request(request.args.get("SAMLRequest"))
    if isinstance(authn, Response):
        return authn
    user = signed_in_user()
    if user is not None:
        group_uid = auto_group(user, request.args.get("group_id"))
        if group_uid is not None:
            return saml_post(authn, user["uid"], group_uid)
    return choose_page(authn)


def auto_group(user: sqlite3.Row, group_id: str | None) -> str | None:
    """The company a signed-in user is answered for without asking: ``group_id`` if a member,
    else the only company; ``None`` means show the picker (shared with the OpenID provider)."""
    if group_id and database().membership(group_id, user["uid"]) is not None:
        return group_id
    memberships = database().memberships(user_uid=user["uid"])
    if not group_id and len(memberships) == 1:
        return str(memberships[0]["group_uid"])
    return None


@bp.post("/api/v1/auth/saml")
def sso_choose() -> Any:
    """The pick/create form: sign in as a user, join or create a company, answer the request."""
    check_csrf()
    authn = parse_request(request.form.get("SAMLRequest"))
    if isinstance(authn, Response):
        return authn
    choice = apply_choice(request.form)
    if isinstance(choice, str):
        return choose_page(authn, choice, 400)
    return saml_post(authn, *choice)


def apply_choice(form: Any) -> tuple[str, str] | str:
    """Apply the pick/create form: ``(user uid, group uid)`` signed in, or the error to show.

    Shared by the SAML IdP and the OpenID provider.
    """
    db = database()
    user_uid = form.get("user", "")
    group_uid = form.get("group", "")
    role = form.get("role", "")
    group_name = form.get("group_name", "").strip()
    if role and role not in ROLES:
        return f"The role must be one of {', '.join(ROLES)}."
    if group_uid == "new" and not group_name:
        return "A new company needs a name."
    if group_uid != "new" and db.group(group_uid) is None:
        return "Pick a company or create one."
    if user_uid == "new":
        name, surname, email = (form.get(k, "").strip() for k in ("name", "surname", "email"))
        if not name or not surname or "@" not in email:
            return "A new user needs a first name, a last name and an email address."
        existing = db.group(group_uid)
        user_uid = db.create_user(
            name=name,
            surname=surname,
            email=email,
            country=(form.get("country") or "US").strip().upper()[:2],
            company_name=group_name or (existing["name"] if existing else ""),
        )
    elif db.user(user_uid) is None:
        return "Pick a user or create one."
    if group_uid == "new":
        group_uid = db.create_group(name=group_name)
    membership = db.membership(group_uid, user_uid)
    if role:
        db.set_membership(group_uid, user_uid, role)
    elif membership is None:
        db.set_membership(group_uid, user_uid, "Admin")
    sign_in(user_uid)
    return user_uid, group_uid


@bp.get("/api/v1/auth/saml/<user_id>")
def session_check(user_id: str) -> Response:
    """``{"valid": bool, "recheck": now+N}``: whether ``session`` is the user's current token.

    N is ``SANDBOX_SESSION_RECHECK`` seconds (the platform's 3 minutes by default).
    """
    token = request.args.get("session", "")
    user = database().user(user_id.split(".", 1)[0])
    valid = user is not None and bool(token) and token == user["sso_session"]
    return jsonify({"valid": valid, "recheck": iso(utcnow() + _recheck())})


@bp.get("/app_logout")
def app_logout() -> str:
    """The platform's logout page: ends this browser's marketplace login and its session token."""
    db = database()
    user = signed_in_user()
    if user is not None:
        db.end_session(user["uid"])
    session.pop("user_uid", None)
    session.pop("sso_session", None)
    # links back to the apps this user's companies use (every app when nobody was signed in)
    if user is not None:
        app_ids = {a for m in db.memberships(user_uid=user["uid"]) for a in db.group_app_ids(m["group_uid"])}
        apps = [row for row in db.apps() if row["id"] in app_ids] or db.apps()
    else:
        apps = db.apps()
    return render_template(
        "sandbox/message.html",
        title="Logged out",
        user=user,
        kind="logout",
        apps=apps,
        recheck=recheck_seconds(),
    )


@bp.get("/app_access_unauthorized")
def app_access_unauthorized() -> tuple[str, int]:
    return (
        render_template(
            "sandbox/message.html",
            title="Access denied",
            user=None,
            kind="unauthorized",
            error=request.args.get("err"),
        ),
        403,
    )


@bp.get("/idp/certificate.pem")
def certificate_pem() -> Response:
    return Response(keypair()[1], mimetype="application/x-pem-file")
