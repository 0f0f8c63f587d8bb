"""flask_maestrano: connect a Flask application to the Maestrano marketplace platform.

Single sign-on with single logout, account webhooks and billing, and Connec! data sharing.
"""

from __future__ import annotations

from . import signals
from ._version import __version__
from .errors import (
    APIConnectionError,
    ApiError,
    AuthenticationError,
    ConfigurationError,
    DevPlatformError,
    InvalidRequestError,
    MaestranoError,
    OutcomeUnknownError,
    SsoError,
)
from .extension import Maestrano
from .presets import Preset
from .state import get_state

__all__ = [
    "APIConnectionError",
    "ApiError",
    "AuthenticationError",
    "ConfigurationError",
    "DevPlatformError",
    "InvalidRequestError",
    "Maestrano",
    "MaestranoError",
    "OutcomeUnknownError",
    "Preset",
    "SsoError",
    "__version__",
    "get_state",
    "signals",
]
