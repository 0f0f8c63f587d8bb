"""``python -m bench`` (``make bench``): the performance targets of DESIGN.md as ratios.

Each benchmark runs the extension's path and its baseline side by side in this process
and prints one row: name, ours, baseline, ratio, target, pass/fail. A JSON copy of the
table goes to ``bench/results/`` (``latest.json`` plus a timestamped file for history).
Exit status 0 when every row meets its target, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

from .harness import Row, save_results
from .scenarios import BENCHMARKS

RESULTS = Path(__file__).parent / "results"


def _fmt(value: float, unit: str) -> str:
    if unit == "s":
        if value < 1e-3:
            return f"{value * 1e6:.1f} µs"
        if value < 1:
            return f"{value * 1e3:.2f} ms"
        return f"{value:.2f} s"
    if unit == "B":
        return f"{value / 1e6:.2f} MB"
    return f"{value:g} {unit}".strip()


def print_table(rows: list[Row]) -> None:
    header = f"{'benchmark':<34} {'ours':>12} {'baseline':>12} {'ratio':>7} {'target':>10}  result"
    print(header)
    print("-" * len(header))
    for row in rows:
        ratio = f"{row.ratio:.3f}" if row.ratio is not None else "-"
        verdict = "PASS" if row.passed else "FAIL"
        print(
            f"{row.name:<34} {_fmt(row.ours, row.unit):>12} {_fmt(row.baseline, row.unit):>12} "
            f"{ratio:>7} {row.target:>10}  {verdict}"
        )
        for key, value in row.notes.items():
            print(f"{'':<36}{key}: {value}")


def save(rows: list[Row], elapsed: float) -> Path:
    return save_results(RESULTS, "bench", "rows", [row.to_dict() for row in rows], elapsed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", help="run only these benchmarks")
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run)")
    args = parser.parse_args(argv)
    selected: list[tuple[str, Callable[[bool], list[Row]]]] = [
        (name, fn) for name, fn in BENCHMARKS if not args.names or name in args.names
    ]
    start = time.perf_counter()
    rows: list[Row] = []
    for name, fn in selected:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        rows.extend(fn(args.quick))
    elapsed = time.perf_counter() - start
    print()
    print_table(rows)
    path = save(rows, elapsed)
    print(f"\n{len(rows)} rows in {elapsed:.0f} s; JSON copy in {path}")
    return 0 if all(row.passed for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
