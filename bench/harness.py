"""Side-by-side timing: ours and the baseline alternate in rounds within one process.

Alternating rounds (A B A B ...) spreads the noise of a busy 2-core machine over both
sides; the fastest round of each side is the figure reported (noise only ever adds time,
so the minimum is the most repeatable estimate of the work itself), and the ratio is
ours / baseline. Every benchmark is bounded in count and time and stops by itself.
"""

from __future__ import annotations

import gc
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Row:
    """One line of the results table."""

    name: str
    ours: float
    baseline: float
    unit: str
    target: str
    passed: bool
    ratio: float | None = None
    notes: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def time_per_call(fn: Callable[[], Any], calls: int) -> float:
    """Seconds per call of ``fn`` over ``calls`` calls, with the GC paused."""
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        return (time.perf_counter() - start) / calls
    finally:
        if gc_was_enabled:
            gc.enable()


def compare(
    ours: Callable[[], Any],
    baseline: Callable[[], Any],
    *,
    calls: int,
    rounds: int = 15,
    warmup: int = 1,
) -> tuple[float, float]:
    """Seconds per call of ``ours`` and ``baseline`` (fastest round each), in alternating rounds."""
    for _ in range(warmup):
        time_per_call(ours, max(1, calls // 4))
        time_per_call(baseline, max(1, calls // 4))
    ours_times, base_times = [], []
    for index in range(rounds):
        # alternate who goes first so neither side always runs on a warmer cache
        pair = [(ours, ours_times), (baseline, base_times)]
        if index % 2:
            pair.reverse()
        for fn, sink in pair:
            sink.append(time_per_call(fn, calls))
    return min(ours_times), min(base_times)


def peak_memory(fn: Callable[[], Any]) -> int:
    """Peak bytes allocated by Python while ``fn`` runs (tracemalloc)."""
    gc.collect()
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
