"""``python -m load`` (``make load``): the load-and-fault runs, one table row each.

For each gunicorn worker class (sync, gthread) one stack is started (:class:`load.stack.Stack`)
and the runs follow in turn on it, each with new virtual users (so new companies and new
imports): no fault, Redis restarted (kill -9, started again on its port), Redis paused
(SIGSTOP/SIGCONT), the platform's session check slow (3 s) and down, one web worker killed
with -9, the gunicorn master sent HUP while imports run, the RQ worker killed with -9
mid-import (and started again), and gunicorn recycling its workers (``max_requests``) while
imports run. Every run is bounded in time; everything started is stopped at the end.

Exit status 1 when any run saw a 500, lost a login or an import, or hung past its bound.
A JSON copy of the table goes to ``load/results/`` (``latest.json`` and a timestamped file).
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from bench.harness import save_results

from .runs import Fault, Result, run
from .stack import Stack

RESULTS = Path(__file__).parent / "results"
WORKER_CLASSES = ("sync", "gthread")
#: the runs repeated with ``gunicorn --preload`` (a recycled worker is a fork of the loaded app)
PRELOAD_RUNS = ("web-hup", "max-requests-30")


def hup_while_importing(stack: Stack) -> str:
    stack.wait_for_running_import("threads")  # an import on a web worker's own threads
    return stack.hup_web()


def kill_job_worker_mid_import(stack: Stack) -> str:
    stack.wait_for_running_import("rq")
    return stack.kill_job_worker()


def faults(pause: float) -> list[Fault]:
    """The runs, in order (``max-requests`` last: it restarts gunicorn with the option)."""
    return [
        Fault("baseline"),
        Fault("redis-restart", at=2.0, inject=lambda s: s.restart_redis()),
        Fault("redis-pause", at=2.0, inject=lambda s: s.pause_redis(pause)),
        Fault(
            "check-slow-3s",
            before=lambda s: s.session_check("slow", 3.0),
            after=lambda s: s.session_check("pass"),
        ),
        Fault(
            "check-down", before=lambda s: s.session_check("down"), after=lambda s: s.session_check("pass")
        ),
        Fault("web-kill-9", at=2.0, inject=lambda s: s.kill_web_worker()),
        Fault("web-hup", at=1.0, inject=hup_while_importing),
        Fault("job-worker-kill-9", at=1.0, inject=kill_job_worker_mid_import),
        Fault("max-requests-30", before=lambda s: s.restart_web(30), after=lambda s: s.restart_web(0)),
    ]


HEADER = (
    f"{'run':<18} {'class':<9} {'logins':>6} {'ok':>5} {'refusd':>6} {'drop':>4} {'500':>4} {'lost':>4} "
    f"{'imp':>4} {'done':>4} {'lost':>4} {'p50':>7} {'p95':>7} {'p99':>7} {'gap':>6}  result"
)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:>5.0f}ms"


def row(result: Result) -> str:
    return (
        f"{result.run:<18} {result.worker_class:<9} {result.logins_attempted:>6} {result.logins_ok:>5} "
        f"{result.refused:>6} {result.dropped:>4} {result.errors_500:>4} "
        f"{result.lost:>4} "
        f"{result.imports_started:>4} {result.imports_completed:>4} {result.imports_lost:>4} "
        f"{_ms(result.p50)} {_ms(result.p95)} {_ms(result.p99)} {result.longest_gap:>5.1f}s  "
        f"{'PASS' if result.passed else 'FAIL'}"
    )


def save(results: list[Result], elapsed: float) -> Path:
    return save_results(RESULTS, "load", "runs", [result.to_dict() for result in results], elapsed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m load", description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", help="only these runs (default: all)")
    parser.add_argument("--classes", nargs="+", default=list(WORKER_CLASSES), choices=WORKER_CLASSES)
    parser.add_argument("--users", type=int, default=6, help="virtual users per run (default 6)")
    parser.add_argument("--seconds", type=float, default=8.0, help="seconds of traffic per run (default 8)")
    parser.add_argument("--pause", type=float, default=6.0, help="seconds Redis stays paused (default 6)")
    parser.add_argument(
        "--no-preload",
        action="store_true",
        help=f"skip the runs under gunicorn --preload ({', '.join(PRELOAD_RUNS)})",
    )
    args = parser.parse_args(argv)
    # a SIGTERM (make interrupted, a CI timeout) unwinds like Ctrl-C: the stack stops what it started
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    selected = [fault for fault in faults(args.pause) if not args.runs or fault.name in args.runs]
    start = time.monotonic()
    results: list[Result] = []
    print(HEADER, flush=True)
    print("-" * len(HEADER), flush=True)
    configurations = [(worker_class, False, selected) for worker_class in args.classes]
    preloaded = [fault for fault in selected if fault.name in PRELOAD_RUNS]
    if preloaded and not args.no_preload:
        configurations.append((args.classes[0], True, preloaded))
    for worker_class, preload, runs in configurations:
        workdir = Path(tempfile.mkdtemp(prefix=f"load-{worker_class}-"))
        with Stack(workdir, worker_class, preload=preload) as stack:
            for fault in runs:
                result = run(stack, fault, users=args.users, seconds=args.seconds)
                results.append(result)
                print(row(result), flush=True)
                if result.note:
                    print(f"    {result.note}", flush=True)
                for problem in result.problems[:5]:
                    print(f"    {problem}", flush=True)
        if all(result.passed for result in results):
            shutil.rmtree(workdir, ignore_errors=True)
        else:  # the processes' logs, the sandbox and Redis data of a failed run
            print(f"    logs kept in {workdir}", flush=True)
    elapsed = time.monotonic() - start
    path = save(results, elapsed)
    failed = [r for r in results if not r.passed]
    print(f"\n{len(results)} runs in {elapsed:.0f} s, {len(failed)} failed; JSON copy in {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
