"""A clock ahead of the real one, for tests of what happens later."""

from __future__ import annotations

import time


class ClockAhead:
    """An app's clock ``seconds`` in the future: ``monkeypatch.setattr(get_state(app), "clock",
    ClockAhead(3600))``."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __call__(self) -> float:
        return time.time() + self.seconds
