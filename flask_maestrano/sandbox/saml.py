"""The sandbox IdP's signed SAML responses; moved to :mod:`flask_maestrano.saml_idp` (shared
with :mod:`flask_maestrano.testing`), importable from here too."""

from __future__ import annotations

from ..saml_idp import ASSERTION_NS as ASSERTION_NS
from ..saml_idp import PROTOCOL_NS as PROTOCOL_NS
from ..saml_idp import build_response as build_response
from ..saml_idp import encode as encode
from ..saml_idp import generate_keypair as generate_keypair
from ..saml_idp import sign_element as sign_element
