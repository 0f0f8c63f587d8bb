"""``DEMO_SSO_PROTOCOL`` switches the demo between SAML (default) and OpenID 2.0."""

from __future__ import annotations

from pathlib import Path

import pytest

from examples.demo import __main__ as demo_main
from examples.demo.server import build
from flask_maestrano import get_state


def test_the_demo_keeps_saml_by_default_and_switches_to_openid(tmp_path: Path) -> None:
    saml = build("http://127.0.0.1:5000", str(tmp_path / "saml"), environ={})
    assert get_state(saml.demo).preset("sandbox").sso.protocol == "saml"
    assert 'href="/maestrano/auth/saml/init"' in saml.demo.test_client().get("/").get_data(as_text=True)

    openid = build("http://127.0.0.1:5000", str(tmp_path / "openid"), environ={"DEMO_SSO_PROTOCOL": "openid"})
    assert get_state(openid.demo).preset("sandbox").sso.protocol == "openid"
    home = openid.demo.test_client().get("/").get_data(as_text=True)
    assert 'href="/maestrano/auth/openid/init"' in home
    # the same instance folder switches back and forth (the sandbox app follows)
    again = build("http://127.0.0.1:5000", str(tmp_path / "openid"), environ={})
    assert get_state(again.demo).preset("sandbox").sso.protocol == "saml"


def test_an_unknown_protocol_stops_the_demo_with_a_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ValueError, match="DEMO_SSO_PROTOCOL"):
        build("http://127.0.0.1:5000", str(tmp_path / "x"), environ={"DEMO_SSO_PROTOCOL": "cas"})
    monkeypatch.setenv("DEMO_SSO_PROTOCOL", "cas")
    monkeypatch.setenv("DEMO_INSTANCE", str(tmp_path / "y"))
    with pytest.raises(SystemExit, match="DEMO_SSO_PROTOCOL must be 'saml' or 'openid'"):
        demo_main.main()
