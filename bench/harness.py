"""Side-by-side timing: ours and the baseline alternate in rounds within one process.

The machine is shared (2 cores, several jobs), so every figure is built to resist it:

* rounds alternate (A B, B A, A B ...) and each round is short, so the two sides of a pair
  run a few milliseconds apart and see the same load;
* the ratio of each pair is taken, and the reported ratio is the **median** of the pair
  ratios (a burst of load spoils a pair or two, not the median);
* CPU-bound rows count the CPU time of this thread (``time.thread_time``): time spent
  waiting for a core while other jobs run is not work done by either side. Rows whose cost
  is waiting (network, another process) use the wall clock.

The times printed are the medians of each side's rounds. Every benchmark is bounded in
count and time and stops by itself.
"""

from __future__ import annotations

import datetime as dt
import gc
import json
import platform
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
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


#: the clocks a benchmark can be timed with
CPU = time.thread_time
WALL = time.perf_counter


def time_per_call(fn: Callable[[], Any], calls: int, clock: Callable[[], float] = WALL) -> float:
    """Seconds per call of ``fn`` over ``calls`` calls on ``clock``, with the GC paused."""
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = clock()
        for _ in range(calls):
            fn()
        return (clock() - start) / calls
    finally:
        if gc_was_enabled:
            gc.enable()


@dataclass
class Comparison:
    """Seconds per call of each side (median of its rounds), the median pair ratio, and a
    95% confidence interval of that median (distribution-free: the order statistics
    ``n/2 -+ 0.98 sqrt(n)`` of the sorted pair ratios), which says whether the noise of the
    run is well under the margin to the target."""

    ours: float
    baseline: float
    ratio: float
    low: float = 0.0
    high: float = 0.0

    def interval(self) -> str:
        return f"{self.low:.3f} .. {self.high:.3f}"


def median_interval(values: list[float]) -> tuple[float, float]:
    """A 95% confidence interval of the median of ``values`` (sign-test order statistics)."""
    ordered = sorted(values)
    n = len(ordered)
    half = 0.98 * n**0.5
    low = max(0, int(n / 2 - half))
    high = min(n - 1, int(n / 2 + half + 0.999))
    return ordered[low], ordered[high]


def compare(
    ours: Callable[[], Any],
    baseline: Callable[[], Any],
    *,
    calls: int,
    rounds: int = 15,
    warmup: int = 1,
    clock: Callable[[], float] = CPU,
) -> Comparison:
    """``ours`` against ``baseline`` in alternating rounds of ``calls`` calls each."""
    for _ in range(warmup):
        time_per_call(ours, max(1, calls // 4), clock)
        time_per_call(baseline, max(1, calls // 4), clock)
    ours_times, base_times, ratios = [], [], []
    for index in range(rounds):
        # alternate who goes first so neither side always runs on a warmer cache
        if index % 2:
            base_t = time_per_call(baseline, calls, clock)
            ours_t = time_per_call(ours, calls, clock)
        else:
            ours_t = time_per_call(ours, calls, clock)
            base_t = time_per_call(baseline, calls, clock)
        ours_times.append(ours_t)
        base_times.append(base_t)
        ratios.append(ours_t / base_t)
    low, high = median_interval(ratios)
    return Comparison(
        statistics.median(ours_times), statistics.median(base_times), statistics.median(ratios), low, high
    )


def peak_memory(fn: Callable[[], Any]) -> int:
    """Peak bytes allocated by Python while ``fn`` runs (tracemalloc)."""
    gc.collect()
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def save_results(directory: Path, prefix: str, key: str, items: list[dict[str, Any]], elapsed: float) -> Path:
    """Write ``items`` under ``key`` with the run's context as JSON to ``directory``:
    ``<prefix>-<UTC stamp>.json`` (history) and ``latest.json``; returns the latter."""
    directory.mkdir(exist_ok=True)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    payload = {
        "when": stamp,
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "elapsed_seconds": round(elapsed, 1),
        key: items,
    }
    text = json.dumps(payload, indent=2)
    (directory / f"{prefix}-{stamp}.json").write_text(text)
    latest = directory / "latest.json"
    latest.write_text(text)
    return latest
