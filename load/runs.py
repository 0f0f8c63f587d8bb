"""One load run: virtual users for a bounded time, a fault injected into it, then the verdict.

:func:`run` starts the users, injects the fault at its time, waits for the users (bounded:
the run's seconds plus the settle time in which users come back until their company's import
succeeded), then checks every import the run started against the sandbox: ``succeeded``, and
every entity the sandbox holds delivered exactly as it holds it.
"""

from __future__ import annotations

import itertools
import json
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import requests

from .app import COLLECTIONS, ENTITIES_KEY, GROUPS_KEY, maestrano
from .stack import APP_ID, APP_KEY, Stack
from .users import Recorder, VirtualUser

#: seconds the imports still queued or running when the users are done may take to finish
FINISH_BOUND = 30.0


@dataclass
class Result:
    """One row of the table."""

    run: str
    worker_class: str
    logins_attempted: int
    logins_ok: int
    refused: int
    dropped: int
    errors_500: int
    logins_lost: int
    hangs: int
    wrong: int
    pages_ok: int
    pages_logged_out: int
    imports_started: int
    imports_completed: int
    imports_lost: int
    p50: float
    p95: float
    p99: float
    longest_gap: float
    #: requests answered after the fault was injected (all of them without a fault)
    served_after_fault: int
    seconds: float
    statuses: dict[str, int]
    #: what the fault did (which process it killed, what was running then)
    note: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not (self.errors_500 or self.lost or self.imports_lost)

    @property
    def lost(self) -> int:
        """Logins lost, requests that hung, wrong answers."""
        return self.logins_lost + self.hangs + self.wrong

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


@dataclass
class Fault:
    """What a run does to the stack: ``inject`` at ``at`` seconds into the run, ``before`` and
    ``after`` around it (gunicorn options, the session check's mode)."""

    name: str
    at: float = 0.0
    inject: Callable[[Stack], Any] | None = None
    before: Callable[[Stack], Any] | None = None
    after: Callable[[Stack], Any] | None = None


def _percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def longest_gap(served_at: list[float], start: float, end: float) -> float:
    """The longest time in ``[start, end]`` in which no request was served."""
    moments = [start, *sorted(t for t in served_at if start <= t <= end), end]
    return max(b - a for a, b in itertools.pairwise(moments))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _groups(stack: Stack) -> set[str]:
    client = stack.client()
    try:
        return {_text(key)[len(GROUPS_KEY) :] for key in client.scan_iter(match=GROUPS_KEY + "*")}
    finally:
        client.close()


def import_state(stack: Stack, group: str) -> str | None:
    """The group's import state as every process of the app reads it (its job store in Redis)."""
    app = stack.reader()
    with app.app_context():
        status = maestrano.import_status(group)
    return status.state if status is not None else None


def entities_match(stack: Stack, group: str) -> str | None:
    """``None`` when the app holds every entity of ``group`` exactly as the sandbox does, else
    what differs."""
    client = stack.client()
    try:
        stored: dict[Any, Any] = client.hgetall(ENTITIES_KEY + group)
        held = {_text(key): json.loads(value) for key, value in stored.items()}
    finally:
        client.close()
    expected: dict[str, Any] = {}
    for collection in COLLECTIONS:
        answer = requests.get(
            f"http://127.0.0.1:{stack.sandbox_port}/api/v2/{group}/{collection}",
            params={"$top": "500"},
            auth=(APP_ID, APP_KEY),
            timeout=10,
        )
        answer.raise_for_status()
        for entity in answer.json()[collection]:
            expected[f"{collection}/{entity['id']}"] = entity
    if held != expected:
        missing = sorted(set(expected) - set(held))
        extra = sorted(set(held) - set(expected))
        changed = sorted(k for k in set(held) & set(expected) if held[k] != expected[k])
        return f"missing {missing[:3]}, extra {extra[:3]}, changed {changed[:3]}"
    return None


def run(
    stack: Stack,
    fault: Fault,
    *,
    users: int = 6,
    seconds: float = 8.0,
    settle: float = 45.0,
) -> Result:
    """Run ``users`` virtual users for ``seconds`` with ``fault``; bounded by ``seconds + settle``."""
    if fault.before is not None:
        fault.before(stack)
    known = _groups(stack)
    recorder = Recorder()
    tag = f"{stack.worker_class}-{fault.name}"
    start = time.monotonic()
    stop_at, settle_at = start + seconds, start + seconds + settle
    threads = [VirtualUser(n, tag, stack.app_url, recorder, stop_at, settle_at) for n in range(users)]
    for thread in threads:
        thread.start()
    injected: Any = None
    injected_at = start
    try:
        if fault.inject is not None:
            time.sleep(fault.at)  # the fault's moment in the run
            injected_at = time.monotonic()
            injected = fault.inject(stack)
        while any(thread.is_alive() for thread in threads) and time.monotonic() < settle_at + 30:
            stack.supervise()
            for thread in threads:
                thread.join(timeout=0.2)
    finally:
        if isinstance(injected, threading.Thread):
            injected.join(timeout=30)
        if fault.after is not None:
            fault.after(stack)
    elapsed = time.monotonic() - start
    hung = [thread.name for thread in threads if thread.is_alive()]
    for name in hung:
        recorder.problem(f"{name} still running past the bound")
    started = sorted(_groups(stack) - known)
    # the users are gone; queued and running imports may still be finishing (bounded)
    deadline = time.monotonic() + FINISH_BOUND
    states = {group: import_state(stack, group) for group in started}
    while time.monotonic() < deadline and any(s in ("queued", "running") for s in states.values()):
        time.sleep(0.5)  # another process's work: polled
        states = {group: import_state(stack, group) for group in started}
    completed, lost = 0, 0
    for group in started:
        state = states[group]
        difference = entities_match(stack, group) if state == "succeeded" else f"import {state}"
        if difference is None:
            completed += 1
        else:
            lost += 1
            recorder.problem(f"import of {group}: {difference}")
    return Result(
        run=fault.name,
        worker_class=stack.worker_class + ("+pre" if stack.preload else ""),
        logins_attempted=recorder.logins_attempted,
        logins_ok=recorder.logins_ok,
        refused=recorder.refused,
        dropped=recorder.dropped,
        errors_500=recorder.errors_500,
        logins_lost=recorder.logins_lost,
        hangs=recorder.hangs + len(hung),
        wrong=recorder.wrong,
        pages_ok=recorder.pages_ok,
        pages_logged_out=recorder.pages_logged_out,
        imports_started=len(started),
        imports_completed=completed,
        imports_lost=lost,
        p50=statistics.median(recorder.latencies) if recorder.latencies else 0.0,
        p95=_percentile(recorder.latencies, 0.95),
        p99=_percentile(recorder.latencies, 0.99),
        longest_gap=longest_gap(recorder.served_at, start, min(stop_at, start + elapsed)),
        served_after_fault=sum(1 for moment in recorder.served_at if moment > injected_at),
        seconds=elapsed,
        statuses=dict(sorted(recorder.statuses.items())),
        problems=list(recorder.problems),
        note=injected if isinstance(injected, str) else "",
    )
