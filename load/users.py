"""Virtual users: each a thread with its own ``requests.Session`` doing the full browser flow.

app init -> the sandbox IdP (pick or create a user and a company) -> POST to consume -> 303 to
finish with the binding cookie -> logged-in pages -> logout. A user's first login creates its
company, whose import starts; later logins are the same user coming back. A refused step
(503, a "sign in again" page, a reset connection) is retried from the start, a bounded number
of times; what never succeeds is lost.
"""

from __future__ import annotations

import html
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

import requests

#: a request that takes longer than this hangs (counted lost)
REQUEST_TIMEOUT = (5.0, 20.0)
#: attempts of one login before it is counted lost
LOGIN_ATTEMPTS = 5
#: logged-in pages per login, and the think time between them (seconds)
PAGES, THINK_TIME = 5, 0.5
#: statuses that are a clear refusal the user can retry (the page says so)
REFUSALS = {400, 403, 409, 429, 502, 503, 504}


class Refused(Exception):
    """A clear refusal (status in :data:`REFUSALS` or a reset connection): retry the login."""


class Wrong(Exception):
    """A wrong answer: a 500, a hang, a page that is not the one expected."""

    def __init__(self, message: str, *, status: int | None = None, hang: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.hang = hang


@dataclass
class Recorder:
    """What every virtual user saw, under one lock."""

    logins_attempted: int = 0
    logins_ok: int = 0
    refused: int = 0
    dropped: int = 0
    errors_500: int = 0
    logins_lost: int = 0
    hangs: int = 0
    #: wrong answers to logged-in pages and logouts (a login's are in logins_lost)
    wrong: int = 0
    pages_ok: int = 0
    pages_logged_out: int = 0
    latencies: list[float] = field(default_factory=list)
    served_at: list[float] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    groups: dict[str, str] = field(default_factory=dict)  # group uid -> user uid
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, name: str, amount: int = 1) -> None:
        with self.lock:
            setattr(self, name, getattr(self, name) + amount)

    def request(self, status: int | None, elapsed: float) -> None:
        with self.lock:
            key = str(status) if status is not None else "reset"
            self.statuses[key] = self.statuses.get(key, 0) + 1
            if status is not None:  # an answer, even a refusal: the app is serving
                self.latencies.append(elapsed)
                self.served_at.append(time.monotonic())

    def problem(self, text: str) -> None:
        with self.lock:
            if len(self.problems) < 50:
                self.problems.append(text)


def form_of(page: str, after: str | None = None) -> tuple[str, dict[str, str]]:
    """The action and hidden fields of the (first) form of ``page`` (after the text ``after``)."""
    if after is not None:
        page = page.split(after, 1)[1]
    action = re.search(r'<form method="post"(?: action="([^"]+)")?', page)
    if action is None:
        raise Wrong(f"no form in the page: {page[:200]!r}")
    fields = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page)
    return html.unescape(action.group(1) or ""), {name: html.unescape(value) for name, value in fields}


class VirtualUser(threading.Thread):
    """Logs in, views pages, logs out, again, until ``stop_at`` (monotonic); then comes back
    until its company's import succeeded, until ``settle_at``."""

    def __init__(
        self, number: int, tag: str, app_url: str, recorder: Recorder, stop_at: float, settle_at: float
    ) -> None:
        super().__init__(name=f"vu-{tag}-{number}", daemon=True)
        self.number = number
        self.tag = tag
        self.app_url = app_url
        self.recorder = recorder
        self.stop_at = stop_at
        self.settle_at = settle_at
        self.browser = requests.Session()
        self.user: str | None = None
        self.group: str | None = None
        self.import_done = False

    # -- one request ------------------------------------------------------------------------------

    def call(self, method: str, url: str, *, app: bool = True, **kwargs: Any) -> requests.Response:
        start = time.monotonic()
        try:
            answer = self.browser.request(
                method, url, timeout=REQUEST_TIMEOUT, allow_redirects=False, **kwargs
            )
        except requests.Timeout:
            self.recorder.add("hangs")
            raise Wrong(f"{method} {url} hung", hang=True) from None
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError):
            # refused, or cut off mid-answer (a worker killed while it wrote the body): what a
            # browser shows as a failed page, and what the user retries
            self.recorder.request(None, 0.0)
            self.recorder.add("dropped")
            raise Refused(f"{method} {url}: connection reset") from None
        if app:
            self.recorder.request(answer.status_code, time.monotonic() - start)
        if answer.status_code >= 500 and answer.status_code not in REFUSALS:
            self.recorder.add("errors_500")
            raise Wrong(
                f"{method} {url}: {answer.status_code} {answer.text[:200]!r}", status=answer.status_code
            )
        if answer.status_code in REFUSALS:
            if not answer.text.strip():
                raise Wrong(
                    f"{method} {url}: {answer.status_code} without a message", status=answer.status_code
                )
            raise Refused(f"{method} {url}: {answer.status_code}")
        return answer

    def expect_redirect(self, answer: requests.Response, codes: tuple[int, ...] = (302, 303)) -> str:
        if answer.status_code not in codes:
            raise Wrong(f"{answer.request.method} {answer.url}: {answer.status_code}, expected {codes}")
        return urljoin(answer.url, answer.headers["Location"])

    @staticmethod
    def logged_out(answer: requests.Response) -> bool:
        """A redirect to sign in again: what the single-logout check answers when it ends a session."""
        return answer.status_code in (302, 303) and "/maestrano/auth/" in answer.headers.get("Location", "")

    # -- the flow -----------------------------------------------------------------------------------

    def login_once(self) -> None:
        params = {"group_id": self.group} if self.group else None
        idp = self.expect_redirect(
            self.call("GET", f"{self.app_url}/maestrano/auth/saml/init", params=params)
        )
        page = self.call("GET", idp, app=False)
        if "Pick or create" in page.text:  # not signed in at the platform: the chooser
            action, fields = form_of(page.text, "Pick or create")
            if self.user is None:
                fields.update(
                    user="new",
                    group="new",
                    role="",
                    name="Load",
                    surname=f"User{self.number}",
                    email=f"load-{self.tag}-{self.number}@example.com",
                    group_name=f"Load {self.tag} {self.number}",
                )
            else:
                fields.update(user=self.user, group=self.group or "", role="")
            page = self.call("POST", urljoin(idp, action or idp), data=fields, app=False)
        if page.status_code != 200:
            raise Wrong(f"the IdP answered {page.status_code}")
        action, posted = form_of(page.text)
        finish = self.expect_redirect(self.call("POST", action, data=posted), (303,))
        home = self.expect_redirect(self.call("GET", finish))
        landed = self.call("GET", home)
        if self.logged_out(landed):
            # the platform's session check fell due on landing and ended the session
            self.recorder.add("pages_logged_out")
            raise Refused("logged out by the session check on landing")
        match = re.fullmatch(r"hello (\S+) of (\S+)", landed.text)
        if landed.status_code != 200 or match is None:
            raise Wrong(f"landed on {landed.status_code} {landed.text[:200]!r}")
        if self.user is not None and (match.group(1), match.group(2)) != (self.user, self.group):
            raise Wrong(f"logged in as {match.group(1)} of {match.group(2)}, not {self.user} of {self.group}")
        if self.user is None:
            self.user, self.group = match.group(1), match.group(2)
            with self.recorder.lock:
                self.recorder.groups[self.group] = self.user

    def login(self) -> bool:
        """One login, retried after a refusal; ``False`` when it did not succeed."""
        last = ""
        for attempt in range(LOGIN_ATTEMPTS):
            self.recorder.add("logins_attempted")
            try:
                self.login_once()
                self.recorder.add("logins_ok")
                return True
            except Refused as exc:
                self.recorder.add("refused")
                last = str(exc)
                time.sleep(min(0.2 * 2**attempt, 2.0))  # the Retry-After of a real browser user
            except Wrong as exc:
                self.recorder.problem(f"{self.name}: {exc}")
                self.recorder.add("logins_lost")
                return False
        self.recorder.problem(f"{self.name}: login refused {LOGIN_ATTEMPTS} times, last {last}")
        self.recorder.add("logins_lost")
        return False

    def pages(self) -> None:
        """A few logged-in pages, a user's think time apart (so that the platform's session
        check falls due); a session the check ends is logged out (a clear outcome)."""
        for number in range(PAGES):
            if number:
                time.sleep(THINK_TIME)
            try:
                answer = self.call("GET", f"{self.app_url}/")
                if answer.status_code == 200:
                    self.recorder.add("pages_ok")
                elif self.logged_out(answer):
                    self.recorder.add("pages_logged_out")  # the session check ended the session
                    return
                else:
                    raise Wrong(f"page answered {answer.status_code}")
                if self.group and not self.import_done:
                    status = self.call("GET", f"{self.app_url}/status/{self.group}")
                    if self.logged_out(status):
                        self.recorder.add("pages_logged_out")
                        return
                    if status.status_code != 200:
                        raise Wrong(f"the status page answered {status.status_code}")
                    self.import_done = status.json().get("state") == "succeeded"
            except Refused:
                self.recorder.add("refused")
                return
            except Wrong as exc:
                self.recorder.problem(f"{self.name}: {exc}")
                self.recorder.add("wrong")
                return

    def logout(self) -> None:
        try:
            answer = self.call("GET", f"{self.app_url}/logout")
            if answer.status_code in (302, 303):
                self.call("GET", urljoin(answer.url, answer.headers["Location"]), app=False)
        except Refused:
            self.recorder.add("refused")
        except Wrong as exc:
            self.recorder.problem(f"{self.name}: logout: {exc}")
            self.recorder.add("wrong")

    def run(self) -> None:
        try:
            while time.monotonic() < self.stop_at or (
                not self.import_done and time.monotonic() < self.settle_at
            ):
                if self.login():
                    self.pages()
                    self.logout()
                elif self.user is None:
                    time.sleep(0.5)
        except Exception as exc:  # a harness bug must show in the table, not vanish in a thread
            self.recorder.problem(f"{self.name}: crashed: {exc!r}")
            self.recorder.add("logins_lost")
        finally:
            self.browser.close()
