"""The OpenID 2.0 provider (PLATFORM.md 3), on python3-openid's server side.

``/api/openid/provider/<app-id>`` answers ``associate`` and ``check_authentication`` (direct
calls), serves an XRDS document for discovery, and for ``checkid_setup`` lets the browser
pick or create a user and a company with the same page as the SAML IdP, then sends it back
to ``return_to`` (a top-level GET) with a signed positive assertion carrying the AX values
of PLATFORM.md 3 (blank values left out). The claimed identifier is
``<provider>/users/<usr-uid>``. Associations live in the sandbox database; an RP without
one gets a private association and verifies with ``check_authentication`` (stateless mode).
The ``return_to`` must be on the registered app's host ("the return URL must be approved").
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any
from urllib.parse import quote, urlsplit

from flask import Blueprint, Response, redirect, render_template, request
from openid.association import Association
from openid.extensions import ax, sreg
from openid.server import server as op
from openid.store.interface import OpenIDStore

from .core import base_url, check_csrf, database
from .db import ROLES, Database
from .idp import WRONG_APP_ID, apply_choice, attributes, auto_group, plain, signed_in_user

bp = Blueprint("openid", __name__)

PROTOCOLS = ("saml", "openid")
#: where the admin's Launch links send the browser for an app that uses OpenID
OPENID_INIT_PATH = "/maestrano/auth/openid/init"
_SETTING = "app_protocol:"
#: AX alias -> (type URI, the SAML attribute whose value it carries); the platform's wire table,
#: kept here as well as in the extension because the sandbox imports nothing of it
AX = {
    "u_guid": ("http://openid.net/schema/person/guid", "uid"),
    "u_vguid": ("http://openid.maestrano.com/schema/person/vguid", "virtual_uid"),
    "u_fname": ("http://openid.net/schema/namePerson/first", "name"),
    "u_lname": ("http://openid.net/schema/namePerson/last", "surname"),
    "u_email": ("http://openid.net/schema/contact/internet/email", "email"),
    "u_vemail": ("http://openid.maestrano.com/schema/contact/internet/vemail", "virtual_email"),
    "u_country": ("http://openid.net/schema/contact/country/home", "country"),
    "u_city": ("http://openid.net/schema/contact/city/home", "city"),
    "u_tz": ("http://openid.net/schema/timezone", "timezone"),
    "u_session_key": ("http://openid.maestrano.com/schema/session/key", "mno_session"),
    "u_session_exp": ("http://openid.maestrano.com/schema/session/expiration", "mno_session_recheck"),
    "g_guid": ("http://openid.maestrano.com/schema/company/guid", "group_uid"),
    "g_u_role": ("http://openid.maestrano.com/schema/company/role", "group_role"),
    "g_name": ("http://openid.net/schema/company/name", "group_name"),
    "g_email": ("http://openid.maestrano.com/schema/company/email", "group_email"),
    "g_country": ("http://openid.maestrano.com/schema/company/country", "group_country"),
    "g_city": ("http://openid.maestrano.com/schema/company/city", "group_city"),
    "g_tz": ("http://openid.maestrano.com/schema/company/timezone", "group_timezone"),
    "g_reseller_id": ("http://openid.maestrano.com/schema/company/reseller_id", "group_reseller_id"),
}
XRDS = """<?xml version="1.0" encoding="UTF-8"?>
<xrds:XRDS xmlns:xrds="xri://$xrds" xmlns="xri://$xrd*($v*2.0)"><XRD>
<Service priority="0"><Type>http://specs.openid.net/auth/2.0/server</Type>
<Type>http://openid.net/srv/ax/1.0</Type><URI>{uri}</URI></Service>
</XRD></xrds:XRDS>
"""


# -- which protocol an app uses -------------------------------------------------------------


def protocol(db: Database, app_id: str) -> str:
    """``"saml"`` or ``"openid"``: the single sign-on protocol the app is registered with."""
    value = db.setting(_SETTING + app_id, "saml")
    return value if value in PROTOCOLS else "saml"


def set_protocol(db: Database, app_id: str, value: str) -> None:
    if value not in PROTOCOLS:
        raise ValueError(f"an app's protocol is 'saml' or 'openid', not {value!r}")
    db.set_setting(_SETTING + app_id, value)


def marketplace_protocol(db: Database, app_id: str, marketplace: dict[str, Any]) -> dict[str, Any]:
    """Add ``sso.protocol`` to a marketplace object when the app uses OpenID."""
    if protocol(db, app_id) == "openid":
        marketplace["sso"]["protocol"] = "openid"
    return marketplace


def provider_url(app_id: str) -> str:
    return f"{base_url()}/api/openid/provider/{quote(app_id, safe='')}"


# -- associations in the sandbox database ---------------------------------------------------


def _serialize(association: Association) -> str:
    raw = association.serialize()  # bytes in python3-openid 3.2
    return raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)


class SandboxStore(OpenIDStore):  # type: ignore[misc]
    """The provider's associations (shared and private) in one SQLite table."""

    def __init__(self, db: Database) -> None:
        self.db = db
        with db.connect() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS openid_associations (server_url TEXT NOT NULL,"
                " handle TEXT NOT NULL, value TEXT NOT NULL, expires REAL NOT NULL,"
                " PRIMARY KEY (server_url, handle))"
            )

    def storeAssociation(self, server_url: str, association: Association) -> None:
        with self.db.connect() as conn:
            conn.execute("DELETE FROM openid_associations WHERE expires < ?", (time.time(),))
            conn.execute(
                "INSERT OR REPLACE INTO openid_associations VALUES (?, ?, ?, ?)",
                (
                    server_url,
                    association.handle,
                    _serialize(association),
                    time.time() + association.expiresIn,
                ),
            )

    def getAssociation(self, server_url: str, handle: str | None = None) -> Association | None:
        with self.db.connect() as conn:
            if handle is None:
                row = conn.execute(
                    "SELECT value FROM openid_associations WHERE server_url = ? ORDER BY expires DESC",
                    (server_url,),
                ).fetchone()
            else:
                row = conn.execute(
                    "SELECT value FROM openid_associations WHERE server_url = ? AND handle = ?",
                    (server_url, handle),
                ).fetchone()
        return Association.deserialize(row["value"]) if row else None

    def removeAssociation(self, server_url: str, handle: str) -> bool:
        with self.db.connect() as conn:
            cursor = conn.execute(
                "DELETE FROM openid_associations WHERE server_url = ? AND handle = ?", (server_url, handle)
            )
        return cursor.rowcount > 0

    def useNonce(self, server_url: str, timestamp: int, salt: str) -> bool:
        return True  # a provider checks no nonces

    def cleanupNonces(self) -> int:
        return 0

    def cleanupAssociations(self) -> int:
        with self.db.connect() as conn:
            cursor = conn.execute("DELETE FROM openid_associations WHERE expires < ?", (time.time(),))
        return cursor.rowcount


def _server(app_id: str) -> op.Server:
    return op.Server(SandboxStore(database()), provider_url(app_id))


# -- the assertion ------------------------------------------------------------------------------


def assertion(
    server: op.Server, checkid: op.CheckIDRequest, app_id: str, user_uid: str, group_uid: str
) -> Any:
    """Redirect the browser to ``return_to`` with a signed positive assertion and its AX values."""
    db = database()
    user, group, membership = db.user(user_uid), db.group(group_uid), db.membership(group_uid, user_uid)
    if user is None or group is None or membership is None:
        return plain("The user is not a member of that company.", 400)
    app_row = db.app(app_id)
    if app_row is not None and not db.launch(app_id, group_uid):
        message = (
            f"{group['name']} ({group_uid}) cancelled {app_row['name']}: "
            "add the app to the company again from the sandbox admin page to launch it."
        )
        return choose_page(app_row, dict(request.values.items()), message, 403)
    values = attributes(user, group, membership["role"])
    values["city"] = ""
    values["timezone"] = ""
    identity = f"{server.op_endpoint}/users/{quote(user_uid, safe='')}"
    response = checkid.answer(True, identity=identity, claimed_id=identity)
    fetch = ax.FetchRequest.fromOpenIDRequest(checkid)
    if fetch is not None:
        answer = ax.FetchResponse(request=fetch)
        for _alias, (type_uri, name) in AX.items():
            value = values.get(name) or ""
            if value and type_uri in fetch:
                answer.addValue(type_uri, value)
        response.addExtension(answer)
    # SREG as the platform sent it too (PLATFORM.md 3), for relying parties that read it
    requested = sreg.SRegRequest.fromOpenIDRequest(checkid)
    if requested.wereFieldsRequested():
        sreg_data = {
            "nickname": values["name"],
            "fullname": f"{values['name']} {values['surname']}".strip(),
            "email": values["email"],
        }
        response.addExtension(sreg.SRegResponse.extractResponse(requested, sreg_data))
    signed = server.signatory.sign(response)
    # always a top-level GET (not the library's form POST for long answers): a SameSite=Lax
    # cookie of the relying party is sent with it
    return redirect(signed.encodeToURL())


def _direct(server: op.Server, message: Any) -> Response:
    try:
        web = server.encodeResponse(message)
    except op.EncodingError as exc:
        return plain(f"Could not encode the answer: {exc}", 400)
    return Response(web.body, status=web.code, headers=dict(web.headers), mimetype="text/plain")


def _approved(app_row: sqlite3.Row, checkid: op.CheckIDRequest) -> bool:
    """The return_to is on the app's registered host (the platform's approved return URL)."""
    target, host = urlsplit(checkid.return_to or ""), urlsplit(app_row["host"])
    return (target.scheme, target.netloc) == (host.scheme, host.netloc)


def choose_page(
    app_row: sqlite3.Row, query: dict[str, str], message: str | None = None, status: int = 200
) -> Any:
    db = database()
    user = signed_in_user()
    fields = [(k, v) for k, v in query.items() if k.startswith("openid.") or k == "group_id"]
    return (
        render_template(
            "sandbox/idp.html",
            protocol="OpenID 2.0",
            fields=fields,
            return_to=query.get("openid.return_to", ""),
            app=app_row,
            user=user,
            memberships=db.memberships(user_uid=user["uid"]) if user else [],
            users=db.users(),
            groups=db.groups(),
            roles=ROLES,
            group_id=query.get("group_id", ""),
            relay_state=None,
            message=message,
        ),
        status,
    )


@bp.route("/api/openid/provider/<app_id>", methods=["GET", "POST"])
def provider(app_id: str) -> Any:
    app_row = database().app(app_id)
    if app_row is None:
        return plain(WRONG_APP_ID, 404)
    query = {k: v for k, v in request.values.items()}
    openid_query = {k: v for k, v in query.items() if k.startswith("openid.")}
    server = _server(app_id)
    if not openid_query:
        return Response(XRDS.format(uri=server.op_endpoint), mimetype="application/xrds+xml")
    try:
        decoded = server.decodeRequest(openid_query)
    except op.ProtocolError as exc:
        if exc.hasReturnTo():
            return plain(f"Invalid OpenID request: {exc}", 400)
        return _direct(server, exc)
    if not isinstance(decoded, op.CheckIDRequest):
        return _direct(server, server.handleRequest(decoded))
    if decoded.immediate:
        return redirect(decoded.answer(False).encodeToURL())
    if not _approved(app_row, decoded):
        return plain("The return_to URL is not on the app's registered host.", 400)
    if request.method == "POST" and "csrf_token" in request.form:
        check_csrf()
        choice = apply_choice(request.form)
        if isinstance(choice, str):
            return choose_page(app_row, query, choice, 400)
        return assertion(server, decoded, app_id, *choice)
    user = signed_in_user()
    if user is not None:
        group_uid = auto_group(user, query.get("group_id"))
        if group_uid is not None:
            return assertion(server, decoded, app_id, user["uid"], group_uid)
    return choose_page(app_row, query)
