"""The processes of a load run, each started on a free 127.0.0.1 port in a session of its own
and stopped (its whole process group) by :meth:`Stack.stop`, whatever happened before.

:class:`Stack` is a context manager: a private ``redis-server`` (append-only file, fsync
always, so a restart keeps what was acknowledged), the sandbox platform behind the fault proxy
(:mod:`load.proxy`), :mod:`load.app` under gunicorn with 4 workers and an RQ worker; and the
faults: Redis restarted or paused, the session check slow or down, a web worker killed, the
gunicorn master sent HUP, the job worker killed and started again.

If the process that started them dies without stopping them (``kill -9``, a test timeout's
``os._exit``), Linux kills each direct child with it (``PR_SET_PDEATHSIG``); gunicorn's workers
notice their master is gone and exit within its timeout.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import redis
import requests
from flask import Flask

from flask_maestrano import get_state
from flask_maestrano.importer import JobImportStatusStore
from flask_maestrano.sandbox import create_app as create_sandbox
from flask_maestrano.sandbox import preset_for

from .app import QUEUE, create_app, on_rq

ROOT = Path(__file__).resolve().parents[1]
APP_ID = "app-load"
APP_KEY = "load-key"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


def wait_until(condition: Any, seconds: float, what: str) -> None:
    """Poll ``condition`` (another process's state: no event to await) for at most ``seconds``."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not happen within {seconds:g} s")
        time.sleep(0.05)


def _die_with_parent() -> None:  # runs in the child, before exec
    """Linux: the child gets SIGKILL when the process that started it dies, even by ``kill -9``
    or a test timeout's ``os._exit`` (where no finalizer runs)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


#: prctl(2) option: the signal the child gets when its parent dies
PR_SET_PDEATHSIG = 1


class Process:
    """One started process (its own session, so its group can be signalled and killed)."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.command = command
        self.env = env
        self.log = log
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        with open(self.log, "ab") as out:
            self.popen = subprocess.Popen(
                self.command,
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal(self, signum: int) -> None:
        if self.alive():
            os.kill(self.pid, signum)

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM to the process group, SIGKILL after ``grace`` seconds; reaps the process."""
        if self.popen is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGCONT)  # a paused process cannot exit
            os.killpg(self.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=grace)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)  # the group: a work horse, gunicorn workers
        self.popen.wait(timeout=10)
        self.popen = None

    def kill(self) -> None:
        """SIGKILL to the process group, as a crash or the OOM killer would; reaps it."""
        if self.popen is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)
            self.popen = None


class Stack:
    """Everything a load run talks to; ``with Stack(...) as stack:`` starts and stops it."""

    def __init__(
        self,
        workdir: Path,
        worker_class: str = "sync",
        *,
        workers: int = 4,
        page_delay: float = 0.1,
        recheck: float = 2.0,
        max_requests: int = 0,
        preload: bool = False,
        executor: str = "split",
    ) -> None:
        self.workdir = workdir
        self.worker_class = worker_class
        self.workers = workers
        self.page_delay = page_delay
        self.recheck = recheck
        self.max_requests = max_requests
        self.preload = preload
        self.executor = executor
        self.processes: list[Process] = []
        self.redis_port = free_port()
        self.sandbox_port = free_port()
        self.proxy_port = free_port()
        self.app_port = free_port()
        self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0"
        self.platform_url = f"http://127.0.0.1:{self.proxy_port}"
        self.app_url = f"http://127.0.0.1:{self.app_port}"
        self.redis: Process | None = None
        self.web: Process | None = None
        self.job_worker: Process | None = None
        self.job_worker_restarts = 0
        self.env: dict[str, str] = {}
        self._lock = threading.Lock()
        self._reader: Flask | None = None

    # -- start and stop ------------------------------------------------------------------------

    def __enter__(self) -> Stack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _process(self, name: str, command: list[str]) -> Process:
        process = Process(name, command, self.env, self.workdir / f"{name}.log").start()
        self.processes.append(process)
        return process

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        sandbox_config = {
            "SANDBOX_DATABASE": str(self.workdir / "sandbox.sqlite3"),
            "SANDBOX_URL": self.platform_url,
            "SANDBOX_APPS": [{"id": APP_ID, "key": APP_KEY, "host": self.app_url, "name": "Load"}],
            "SANDBOX_SESSION_RECHECK": self.recheck,
        }
        config_file = self.workdir / "sandbox.json"
        config_file.write_text(json.dumps(sandbox_config))
        preset_file = self.workdir / "preset.json"
        preset_file.write_text(json.dumps(preset_for(create_sandbox(sandbox_config), APP_ID)))
        self.env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "PYTHONWARNINGS": "ignore",
            "LOAD_PRESET": str(preset_file),
            "LOAD_REDIS": self.redis_url,
            "LOAD_PAGE_DELAY": str(self.page_delay),
            "LOAD_EXECUTOR": self.executor,
        }
        self.start_redis()
        python = sys.executable
        self._process("sandbox", [python, "-m", "load.sandbox", str(config_file), str(self.sandbox_port)])
        self._process(
            "proxy",
            [python, "-m", "load.proxy", f"http://127.0.0.1:{self.sandbox_port}", str(self.proxy_port)],
        )
        self._wait_http(f"{self.platform_url}/idp/certificate.pem", "the sandbox behind the proxy")
        self.start_web()
        self.start_job_worker()

    def stop(self) -> None:
        for process in reversed(self.processes):
            with contextlib.suppress(Exception):
                process.stop()
        self.processes.clear()

    def _wait_http(self, url: str, what: str, seconds: float = 30.0) -> None:
        def answers() -> bool:
            try:
                requests.get(url, timeout=2, allow_redirects=False)
                return True
            except requests.RequestException:
                return False

        wait_until(answers, seconds, f"{what} answering")

    # -- redis -------------------------------------------------------------------------------------

    def start_redis(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        data = self.workdir / "redis"
        data.mkdir(exist_ok=True)
        command = [binary, "--port", str(self.redis_port), "--bind", "127.0.0.1", "--dir", str(data)]
        command += ["--save", "", "--appendonly", "yes", "--appendfsync", "always"]
        self.redis = self._process("redis", command)
        client = redis.Redis.from_url(self.redis_url, socket_connect_timeout=0.5, socket_timeout=2)

        def pings() -> bool:
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False

        try:
            wait_until(pings, 30, "redis-server start")
        finally:
            client.close()

    def restart_redis(self) -> None:
        """kill -9 and start again on the same port and data directory."""
        assert self.redis is not None
        self.redis.kill()
        self.processes.remove(self.redis)
        self.start_redis()

    def pause_redis(self, seconds: float) -> threading.Thread:
        """SIGSTOP now, SIGCONT after ``seconds`` (on a thread; join it to wait for the end)."""
        assert self.redis is not None
        redis_process = self.redis
        redis_process.signal(signal.SIGSTOP)
        resumed = threading.Event()

        def resume() -> None:
            resumed.wait(seconds)
            redis_process.signal(signal.SIGCONT)

        thread = threading.Thread(target=resume, daemon=True)
        thread.start()
        return thread

    def reader(self) -> Flask:
        """An instance of the load app in this process, to read import statuses as the app does."""
        if self._reader is None:
            self._reader = create_app(self.env)
        return self._reader

    def running_imports(self, where: str | None = None) -> list[str]:
        """The groups whose import reads ``running`` (as every process of the app reads it);
        ``where`` ``"rq"`` or ``"threads"``: only those running there."""
        app = self.reader()
        with app.app_context():
            statuses = get_state(app).imports.statuses
            assert isinstance(statuses, JobImportStatusStore)
            groups = [s.group_id for s in statuses.all() if s.state == "running"]
        if where is None:
            return groups
        return [group for group in groups if on_rq(group, self.executor) == (where == "rq")]

    def wait_for_running_import(self, where: str, seconds: float = 20.0) -> None:
        """Wait (bounded) until an import runs ``where`` (``"rq"`` or ``"threads"``)."""
        wait_until(lambda: bool(self.running_imports(where)), seconds, f"an import running on {where}")

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_url, socket_timeout=5, socket_connect_timeout=5)

    # -- web -----------------------------------------------------------------------------------------

    def start_web(self, max_requests: int | None = None) -> None:
        if max_requests is not None:
            self.max_requests = max_requests
        command = [sys.executable, "-m", "gunicorn", "-w", str(self.workers), "-k", self.worker_class]
        if self.worker_class == "gthread":
            command += ["--threads", "4"]
        command += ["-b", f"127.0.0.1:{self.app_port}", "--timeout", "30", "--graceful-timeout", "10"]
        if self.preload:
            command += ["--preload"]
        if self.max_requests:
            command += ["--max-requests", str(self.max_requests), "--max-requests-jitter", "10"]
        self.web = self._process(f"gunicorn-{self.worker_class}", [*command, "load.app:create_app()"])
        self._wait_http(f"{self.app_url}/", "gunicorn")
        wait_until(lambda: len(self.web_workers()) >= self.workers, 30, "gunicorn's workers")

    def restart_web(self, max_requests: int) -> None:
        assert self.web is not None
        self.web.stop()
        self.processes.remove(self.web)
        self.start_web(max_requests)

    def web_workers(self) -> list[int]:
        return children(self.web.pid) if self.web is not None and self.web.alive() else []

    def busy_web_workers(self) -> list[int]:
        """The web workers holding a connection of a client (sync workers: a request in flight)."""
        inodes = set()
        with contextlib.suppress(OSError):
            for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
                fields = line.split()
                local_port = int(fields[1].rsplit(":", 1)[1], 16)
                if local_port == self.app_port and fields[3] == "01":  # ESTABLISHED
                    inodes.add(f"socket:[{fields[9]}]")
        busy = []
        for pid in self.web_workers():
            with contextlib.suppress(OSError):
                fds = Path(f"/proc/{pid}/fd")
                if any(os.readlink(fd) in inodes for fd in fds.iterdir()):
                    busy.append(pid)
        return busy

    def kill_web_worker(self) -> str:
        """kill -9 a web worker, one serving a client if one does within 5 s."""
        deadline = time.monotonic() + 5
        busy = self.busy_web_workers()
        while not busy and time.monotonic() < deadline:
            time.sleep(0.005)  # polling /proc for a worker mid-request (no event to await)
            busy = self.busy_web_workers()
        pid = busy[0] if busy else self.web_workers()[0]
        os.kill(pid, signal.SIGKILL)
        return f"killed web worker {pid} ({'serving a client' if busy else 'idle'})"

    def hup_web(self) -> str:
        assert self.web is not None
        running = self.running_imports("threads")
        self.web.signal(signal.SIGHUP)
        return f"HUP with {len(running)} imports running on the web workers"

    # -- job worker ----------------------------------------------------------------------------------

    def start_job_worker(self) -> None:
        rq = str(Path(sys.executable).parent / "rq")
        self.job_worker = self._process("rq-worker", [rq, "worker", "--url", self.redis_url, QUEUE])

    def kill_job_worker(self) -> str:
        """kill -9 the worker and its work horse (in a session of its own), then start a new
        one; says whether an import was running."""
        assert self.job_worker is not None
        horses = children(self.job_worker.pid)
        running = self.running_imports("rq")
        for pid in [*horses, self.job_worker.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.job_worker.kill()
        self.processes.remove(self.job_worker)
        self.start_job_worker()
        busy = "with its work horse" if horses else "idle"
        return f"killed the RQ worker {busy}; imports running on RQ then: {len(running)}"

    def supervise(self) -> None:
        """What a process supervisor does: a job worker that exited is started again."""
        with self._lock:
            if self.job_worker is not None and not self.job_worker.alive():
                self.processes.remove(self.job_worker)
                self.job_worker_restarts += 1
                self.start_job_worker()

    # -- the platform -----------------------------------------------------------------------------

    def session_check(self, mode: str, seconds: float = 3.0) -> None:
        """The platform's session check: ``pass``, ``slow`` (``seconds`` each) or ``down``."""
        answer = requests.post(
            f"{self.platform_url}/__fault__/{mode}", params={"seconds": seconds}, timeout=5
        )
        answer.raise_for_status()

    @contextlib.contextmanager
    def session_check_fault(self, mode: str, seconds: float = 3.0) -> Iterator[None]:
        self.session_check(mode, seconds)
        try:
            yield
        finally:
            self.session_check("pass")
