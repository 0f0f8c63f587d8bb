"""Helpers for host applications' tests: a test IdP and a login through the real views.

Give the preset the test IdP's certificate, then log a test client in exactly as the
platform would: the init view issues an AuthnRequest (and sets the browser binding cookie),
the test IdP answers it with a response signed by its own key, the consume view validates it
and redirects to the finish view, which checks the binding cookie and runs your loaders.

>>> from flask_maestrano.testing import TestIdP, login
>>> idp = TestIdP()
>>> app.config["MAESTRANO_PRESETS"] = {"production": {  # doctest: +SKIP
...     "environment": "local", "app": {"host": "http://localhost"},
...     "api": {"id": "app-1", "key": "secret"},
...     "sso": {"x509_certificate": idp.cert_pem}}}
>>> with app.test_client() as client:  # doctest: +SKIP
...     response = login(client, idp, uid="usr-1", group_uid="cld-1", role="Admin")
...     assert response.status_code == 302
"""

from __future__ import annotations

import base64
import datetime as dt
import secrets
import zlib
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from flask import Flask

from .isotime import format_time
from .presets import Preset
from .saml_idp import build_response, encode, generate_keypair
from .sso.views import FINISH_PATH
from .state import get_state

DEFAULT_INIT_PATH = "/maestrano/auth/saml/init"

__all__ = ["AuthnRequestInfo", "TestIdP", "decode_authn_request", "follow_finish", "login"]


class AuthnRequestInfo:
    """An AuthnRequest read back from the init view's redirect URL."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        #: the whole redirect URL
        self.url = url
        #: the IdP URL without the query
        self.target = f"{parts.scheme}://{parts.netloc}{parts.path}"
        #: every query parameter (``SAMLRequest``, ``RelayState``, ``group_id``...)
        self.params: dict[str, str] = dict(parse_qsl(parts.query, keep_blank_values=True))
        raw = base64.b64decode(self.params["SAMLRequest"])
        #: the AuthnRequest's XML
        self.xml: str = zlib.decompress(raw, -15).decode()
        #: the ``RelayState`` parameter, if any
        self.relay_state = self.params.get("RelayState")
        from lxml import etree

        root = etree.fromstring(self.xml.encode())
        #: the request's ``ID`` (the response's ``InResponseTo`` must match it)
        self.id: str = root.get("ID", "")
        #: the ``AssertionConsumerServiceURL`` the response must be posted to
        self.acs_url: str = root.get("AssertionConsumerServiceURL", "")
        issuer = root.find("{urn:oasis:names:tc:SAML:2.0:assertion}Issuer")
        #: the ``<saml:Issuer>``: the app's ``api.id``
        self.issuer = issuer.text if issuer is not None else None


def decode_authn_request(url: str) -> AuthnRequestInfo:
    """Read the AuthnRequest (raw DEFLATE + base64) and parameters of an IdP redirect URL."""
    return AuthnRequestInfo(url)


def _default_attributes(
    uid: str, group_uid: str, role: str, session_token: str, recheck: dt.datetime
) -> dict[str, str]:
    """The attributes the platform's IdP sends (PLATFORM.md 2.4), in its order."""
    return {
        "mno_uid": uid,
        "mno_session": session_token,
        "mno_session_recheck": format_time(recheck),
        "group_uid": group_uid,
        "group_name": f"Company {group_uid}",
        "group_end_free_trial": format_time(recheck + dt.timedelta(days=30)),
        "group_role": role,
        "group_has_credit_card": "false",
        "group_email": f"{group_uid}@example.com",
        "group_currency": "USD",
        "group_timezone": "America/Los_Angeles",
        "group_country": "US",
        "group_city": "Los Angeles",
        "uid": uid,
        "virtual_uid": f"{uid}.{group_uid}",
        "email": f"{uid}@example.com",
        "virtual_email": f"{uid}.{group_uid}@mno-api-sandbox-mail.maestrano.com",
        "name": "Jane",
        "surname": "Doe",
        "country": "US",
        "company_name": f"Company {group_uid}",
    }


class TestIdP:
    """An identity provider with its own key: signs responses for a preset.

    >>> idp = TestIdP()
    >>> idp.cert_pem.startswith("-----BEGIN CERTIFICATE-----")
    True
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self, key_pem: str | None = None, cert_pem: str | None = None, *, name: str = "test-idp"
    ) -> None:
        if key_pem is None or cert_pem is None:
            key_pem, cert_pem = generate_keypair(name)
        #: the private key (PEM) that signs the responses
        self.key_pem = key_pem
        #: the certificate (PEM) to put in the preset's ``sso.x509_certificate``
        self.cert_pem = cert_pem

    def attributes(
        self,
        uid: str = "usr-1",
        group_uid: str = "cld-1",
        role: str = "Admin",
        *,
        session_token: str | None = None,
        recheck: dt.datetime | None = None,
        **extra: str,
    ) -> dict[str, str]:
        """The platform's attribute set for a user in a group; ``extra`` overrides any."""
        recheck = recheck or dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=3)
        token = session_token or secrets.token_urlsafe(27)
        return {**_default_attributes(uid, group_uid, role, token, recheck), **extra}

    def response_xml(
        self, preset: Preset, in_response_to: str | None, attributes: dict[str, str], **options: Any
    ) -> str:
        """A signed Response for ``preset``; ``options`` go to
        :func:`~flask_maestrano.saml_idp.build_response`."""
        kwargs: dict[str, Any] = {
            "key_pem": self.key_pem,
            "cert_pem": self.cert_pem,
            "issuer": f"{preset.idp_url}?SAMLRequest=",
            "destination": preset.consume_url,
            "recipient": preset.consume_url,
            "audience": preset.audience,
            "in_response_to": in_response_to,
            "name_id": attributes.get("uid") or attributes.get("mno_uid", ""),
            "attributes": attributes,
        }
        kwargs.update(options)
        return build_response(**kwargs)

    def saml_response(
        self, preset: Preset, in_response_to: str | None, attributes: dict[str, str], **options: Any
    ) -> str:
        """The base64 ``SAMLResponse`` form value of :meth:`response_xml`."""
        return encode(self.response_xml(preset, in_response_to, attributes, **options))


def follow_finish(client: Any, response: Any) -> Any:
    """The finish view's answer when ``response`` is consume's 303 to it, else ``response``.

    The test client keeps cookies, so it sends the binding cookie init set, as a browser does.
    """
    location = response.headers.get("Location", "") if response.status_code == 303 else ""
    if urlsplit(location).path.endswith(FINISH_PATH):
        return client.get(location)
    return response


def login(
    client: Any,
    idp: TestIdP,
    *,
    preset: str | None = None,
    group_id: str | None = None,
    next: str | None = None,
    uid: str = "usr-1",
    group_uid: str = "cld-1",
    role: str = "Admin",
    **attributes: str,
) -> Any:
    """Log ``client`` in through the real init, consume and finish views; the last response.

    On success that is the finish view's redirect (302) to ``next``; a refusal at consume
    is consume's answer.

    The client must have been created with ``app.test_client()`` (cookies on).
    """
    app: Flask = client.application
    state = get_state(app)
    chosen = state.preset(preset)
    parts = urlsplit(chosen.init_url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    if group_id:
        query.append(("group_id", group_id))
    if next:
        query.append(("next", next))
    path = parts.path
    if preset is not None and path == DEFAULT_INIT_PATH:
        path = f"{path}/{preset}"  # the default route serves every preset by name
    init = client.get(path, query_string=query)
    if init.status_code != 302:
        raise AssertionError(f"init answered {init.status_code}, not a redirect to the IdP")
    request = decode_authn_request(init.headers["Location"])
    values = {**idp.attributes(uid, group_uid, role), **attributes}
    form = {
        "SAMLResponse": idp.saml_response(chosen, request.id, values),
        "RelayState": request.relay_state or "",
    }
    return follow_finish(client, client.post(urlsplit(chosen.consume_url).path, data=form))
