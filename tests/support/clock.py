"""A clock ahead of the real one, for tests of what happens later."""

from __future__ import annotations

import time


class ClockAhead:
    """Stands in for the ``time`` module: ``seconds`` in the future."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def time(self) -> float:
        return time.time() + self.seconds
