"""The per-app state of the extension: typed services built once by ``init_app``.

``app.extensions["maestrano"]`` holds a :class:`MaestranoState`; :func:`get_state` reads
it. Every service is made in ``init_app`` (no lazily created locks or pools) and the
pooled HTTP sessions and the import thread pool are closed when the process exits.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import Flask, current_app

from ._version import __version__
from .breaker import Breaker
from .callbacks import Callbacks
from .connec.importer import ImportService
from .errors import ConfigurationError
from .http import SessionPool
from .jobs import DaemonExecutor
from .presets import Preset
from .routing import PresetRouter
from .settings import Settings
from .store import Store

if TYPE_CHECKING:  # types only: the SSO package's views import this module
    from .extension import Maestrano
    from .sso.saml import SamlCache
    from .syncing import SyncSetup


@dataclass(eq=False)
class MaestranoState:
    """What the extension keeps per application, in ``app.extensions["maestrano"]``."""

    #: the :class:`~flask_maestrano.Maestrano` object that initialised the app
    extension: Maestrano
    #: every ``MAESTRANO_*`` key, parsed and checked
    settings: Settings
    presets: Mapping[str, Preset]
    default_preset: str | None
    router: PresetRouter
    #: server-side entries (pending logins, replay cache...): in-process or Redis
    store: Store
    #: the pooled HTTP sessions of every outbound call
    sessions: SessionPool
    #: the host's callbacks (the extension's; shared by every app it initialised)
    callbacks: Callbacks
    #: the Connec! import: statuses, executor, clients
    imports: ImportService
    #: python3-saml settings per preset
    saml: SamlCache
    #: the session check's circuit breaker, per preset: on the Redis store's server, shared
    #: by every worker, or in the process with the in-process store
    breaker: Breaker
    #: the sync mappings and store, once :func:`flask_maestrano.syncing.configure` declared them
    sync: SyncSetup | None = None
    #: seconds since the epoch, as the single-logout check, the migration links and OpenID
    #: read them; a test sets another (``get_state(app).clock = lambda: time.time() + 3600``)
    clock: Callable[[], float] = time.time
    version: str = __version__

    def preset(self, name: str | None = None) -> Preset:
        """The preset called ``name``, or the default preset."""
        if name is None:
            name = self.default_preset
            if name is None:
                raise ConfigurationError(
                    "several presets and no default: pass a preset name or set MAESTRANO_DEFAULT_PRESET"
                )
        try:
            return self.presets[name]
        except KeyError:
            known = ", ".join(sorted(self.presets)) or "none"
            raise ConfigurationError(f"unknown preset (configured: {known})", preset=name) from None

    def close_at_exit(self) -> None:
        """Close the session pool and the import thread pool when the process exits (or when
        this state is collected, or :meth:`close` is called, whichever comes first)."""
        self._closer = weakref.finalize(self, _close, self.sessions, self.imports.own_pool)

    def close(self) -> None:
        """Close the pooled HTTP sessions and the import thread pool now (at most once)."""
        closer = getattr(self, "_closer", None)
        if closer is not None:
            closer()


def _close(sessions: SessionPool, pool: DaemonExecutor | None) -> None:
    sessions.close()
    if pool is not None:
        # imports not started are cancelled; running ones are not waited for: their daemon
        # threads record them as interrupted at exit (flask_maestrano.jobs)
        pool.shutdown(wait=False, cancel_futures=True)


def current() -> Flask:
    """The app handling the current request or app context (the real object, not the proxy)."""
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    return app


def get_state(app: Flask | None = None) -> MaestranoState:
    """The extension state of ``app`` (default: the current app)."""
    app = app if app is not None else current()
    try:
        state: MaestranoState = app.extensions["maestrano"]
    except KeyError:
        raise RuntimeError(
            "flask_maestrano is not initialised on this app: call Maestrano(app) or "
            "maestrano.init_app(app) in your application factory"
        ) from None
    return state
