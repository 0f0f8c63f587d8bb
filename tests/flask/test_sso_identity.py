"""Identity objects: every platform attribute, real and virtual creation modes, old SDK hashes."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from flask_maestrano.errors import SsoError
from flask_maestrano.sso.identity import Identity, parse_time
from flask_maestrano.sso.session import MaestranoSession
from flask_maestrano.testing import TestIdP, login
from tests.support.saml import build_host_app, sso_presets

IDP = TestIdP(key_pem="unused", cert_pem="unused")  # attributes only: no signing here


def _identity(mode: str, **extra: str) -> Identity:
    attributes = IDP.attributes("usr-1", "cld-2", "Power User", session_token="tok", **extra)
    return Identity.from_attributes(
        {k: [v] for k, v in attributes.items()}, name_id="usr-1", preset="production", creation_mode=mode
    )


def test_real_mode_uses_the_universal_uid_and_real_email() -> None:
    identity = _identity("real")
    assert identity.user.app_uid == "usr-1"
    assert identity.user.app_email == "usr-1@example.com"
    assert identity.membership.to_hash() == {
        "provider": "maestrano",
        "group_uid": "cld-2",
        "user_uid": "usr-1",
        "role": "Power User",
    }


def test_virtual_mode_uses_the_virtual_uid_and_email() -> None:
    identity = _identity("virtual")
    assert identity.user.app_uid == "usr-1.cld-2"
    assert identity.user.app_email == "usr-1.cld-2@mno-api-sandbox-mail.maestrano.com"
    assert identity.membership.user_uid == "usr-1"  # memberships always carry the real uid


def test_user_to_hash_is_the_old_sdk_form() -> None:
    user = _identity("virtual").user.to_hash()
    assert user["provider"] == "maestrano" and user["uid"] == "usr-1.cld-2"
    assert user["info"] == {
        "email": "usr-1.cld-2@mno-api-sandbox-mail.maestrano.com",
        "first_name": "Jane",
        "last_name": "Doe",
        "country": "US",
        "company_name": "Company cld-2",
    }
    assert user["extra"]["real_email"] == "usr-1@example.com"
    assert user["extra"]["group"] == {"uid": "cld-2", "role": "Power User"}
    assert user["extra"]["session"]["token"] == "tok"
    assert isinstance(user["extra"]["session"]["recheck"], dt.datetime)


def test_group_reads_every_platform_attribute() -> None:
    group = _identity("real", group_org_uid="org-48", group_has_credit_card="true").group
    assert (group.uid, group.name, group.email, group.city, group.country) == (
        "cld-2",
        "Company cld-2",
        "cld-2@example.com",
        "Los Angeles",
        "US",
    )
    assert (group.timezone, group.currency, group.org_uid, group.has_credit_card) == (
        "America/Los_Angeles",
        "USD",
        "org-48",
        True,
    )
    assert group.free_trial_end_at is not None and group.free_trial_end_at.tzinfo is not None
    assert group.to_hash()["info"]["has_credit_card"] is True and group.to_hash()["extra"] == {}


@pytest.mark.parametrize("missing", ["group_uid", "mno_session", "mno_session_recheck"])
def test_missing_required_attribute_is_an_sso_error(missing: str) -> None:
    attributes = {k: [v] for k, v in IDP.attributes().items() if k != missing}
    with pytest.raises(SsoError) as error:
        Identity.from_attributes(attributes, name_id="usr-1", preset="p", creation_mode="real")
    assert error.value.reason == "missing_attribute"


@pytest.mark.parametrize(
    "value",
    ["2017-01-01T00:03:00Z", "2017-01-01T00:03:00+0000", "2017-01-01T00:03:00.000Z", "2017-01-01T00:03:00"],
)
def test_every_sdk_time_format_parses(value: str) -> None:
    assert parse_time(value) == dt.datetime(2017, 1, 1, 0, 3, tzinfo=dt.timezone.utc)


def test_maestrano_session_decodes_other_sdks_encodings() -> None:
    import base64
    import json

    payload = {
        "uid": "usr-1",
        "session": "s",
        "session_recheck": "2017-01-01T00:03:00+0000",
        "group_uid": "cld-1",
    }
    encoded = base64.encodebytes(json.dumps(payload).encode()).decode()  # with newlines, like Ruby
    mno = MaestranoSession.decode(encoded, default_preset="production")
    assert mno is not None and mno.preset == "production" and mno.session_recheck.year == 2017
    assert MaestranoSession.decode("not base64 json") is None


@pytest.mark.parametrize(("mode", "expected"), [("real", "usr-5"), ("virtual", "usr-5.cld-7")])
def test_login_creates_the_user_per_creation_mode(
    make_app: Any, test_idp: TestIdP, mode: str, expected: str
) -> None:
    app, host = build_host_app(make_app, sso_presets(test_idp, creation_mode=mode))
    client = app.test_client()
    assert login(client, test_idp, uid="usr-5", group_uid="cld-7").status_code == 302
    assert set(host.users) == {expected}
    assert client.get("/page").get_data(as_text=True) == f"user:{expected}"


def test_an_unreadable_not_on_or_after_is_a_malformed_response_not_a_500() -> None:
    from lxml import etree

    from flask_maestrano.errors import SsoError
    from flask_maestrano.sso.saml import _expiry

    assertion = etree.fromstring(
        '<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion">'
        '<saml:Conditions NotOnOrAfter="not a time"/></saml:Assertion>'
    )
    with pytest.raises(SsoError) as caught:
        _expiry(assertion)
    assert caught.value.reason == "malformed"
