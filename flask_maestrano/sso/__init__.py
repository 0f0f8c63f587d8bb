"""Single sign-on (SAML 2.0 on python3-saml) and single logout.

The views live in :mod:`flask_maestrano.sso.views`; the host implements three callbacks
(:meth:`~flask_maestrano.Maestrano.find_or_create_group`,
:meth:`~flask_maestrano.Maestrano.find_or_create_user`,
:meth:`~flask_maestrano.Maestrano.link_membership`) and may call :func:`maestrano_logout`
from its own logout view.

>>> from flask_maestrano.sso import maestrano_logout
>>> @app.route("/logout")  # doctest: +SKIP
... def logout():
...     return maestrano_logout()
"""

from __future__ import annotations

from .identity import Group, Identity, Membership, User
from .session import MaestranoSession, current_session, logout_url, maestrano_logout
from .views import SsoFailed, SsoRestart, safe_next

__all__ = [
    "Group",
    "Identity",
    "MaestranoSession",
    "Membership",
    "SsoFailed",
    "SsoRestart",
    "User",
    "current_session",
    "logout_url",
    "maestrano_logout",
    "safe_next",
]
