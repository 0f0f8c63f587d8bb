"""Checks of how the app is deployed, made once the server says how it runs.

An in-process store (``MAESTRANO_STORE`` unset) only works when one process serves the app:
under several worker processes, a login started on one worker and answered on another
fails, and keep-alive clients can hide it in testing. WSGI servers say whether other processes
serve the same app (``wsgi.multiprocess``, true for gunicorn with more than one worker), so
the first such request logs a warning.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from flask import Flask, request, request_started

from .state import MaestranoState
from .store import MemoryStore

log = logging.getLogger("flask_maestrano.deployment")


def setup(app: Flask, state: MaestranoState) -> Callable[[], None] | None:
    """Warn once, on the first multi-process request, when the store is in-process."""
    if not isinstance(state.store, MemoryStore):
        return None

    def check(sender: Flask, **extra: object) -> None:
        # once is enough: disconnected at once, so later requests do not pay for the signal
        # (from every sender: blinker keeps a receiver disconnected from one sender in its
        # receivers, and every request of every app in the process then looks it up again)
        request_started.disconnect(check)
        if request.environ.get("wsgi.multiprocess"):
            log.warning(
                "Maestrano: MAESTRANO_STORE is in-process but several processes serve this app "
                "(wsgi.multiprocess): logins that cross workers will fail and imports run once per "
                "process; set MAESTRANO_STORE to a redis:// URL"
            )

    request_started.connect(check, sender=app, weak=False)
    return lambda: request_started.disconnect(check)
