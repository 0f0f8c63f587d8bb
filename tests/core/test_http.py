"""The HTTP layer against a real local server: retries, timeouts, pooling, error mapping."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest

from flask_maestrano.account import AccountClient
from flask_maestrano.errors import (
    APIConnectionError,
    ApiError,
    AuthenticationError,
    InvalidRequestError,
    OutcomeUnknownError,
)
from flask_maestrano.http import USER_AGENT, build_session, deadline_session, fetch_within
from flask_maestrano.presets import Preset
from tests.support.fake_platform import API_KEY, FakePlatform, platform_preset_data
from tests.support.servers import free_port
from tests.support.trickle import TrickleServer


def make_account(
    url: str, *, retries: int = 2, timeout: tuple[float, float] = (2.0, 5.0), **kw: Any
) -> AccountClient:
    preset = Preset.from_dict("production", platform_preset_data(url))
    session = build_session(preset, retries=retries, backoff_factor=0, **kw)
    return AccountClient(preset, session, timeout=timeout)


def test_get_is_retried_after_two_server_errors_then_answers(platform: FakePlatform, server: Any) -> None:
    platform.fail("/api/v1/ping", times=2, status=503)
    data = make_account(server.url).ping()
    assert data["msg"].startswith("Ping successful")
    assert len(platform.calls("/api/v1/ping")) == 3


def test_get_gives_up_after_the_configured_retries(platform: FakePlatform, server: Any) -> None:
    platform.fail("/api/v1/ping", times=10, status=500)
    with pytest.raises(ApiError) as info:
        make_account(server.url, retries=2).ping()
    assert info.value.http_status == 500
    assert len(platform.calls("/api/v1/ping")) == 3


def test_post_is_not_retried_on_a_server_error(platform: FakePlatform, server: Any) -> None:
    platform.fail("/api/v1/account/bills", times=1, status=503, method="POST")
    with pytest.raises(ApiError) as info:
        make_account(server.url).bills.create(group_id="cld-1", price_cents=100, description="x")
    assert info.value.http_status == 503
    assert len(platform.calls("/api/v1/account/bills", "POST")) == 1
    assert platform.bills == {}


def test_post_read_timeout_is_sent_once_and_reports_an_unknown_outcome(
    platform: FakePlatform, server: Any
) -> None:
    platform.delay("/api/v1/account/bills", 5.0)
    account = make_account(server.url, retries=3, timeout=(2.0, 0.3))
    with pytest.raises(OutcomeUnknownError) as info:
        account.bills.create(group_id="cld-1", price_cents=100, description="x")
    assert "not sent again" in str(info.value)
    assert isinstance(info.value, APIConnectionError)
    platform.release.set()
    assert len(platform.calls("/api/v1/account/bills", "POST")) == 1


def test_get_read_timeout_is_a_connection_error_after_retries(platform: FakePlatform, server: Any) -> None:
    platform.delay("/api/v1/ping", 5.0)
    started = time.monotonic()
    with pytest.raises(APIConnectionError) as info:
        make_account(server.url, retries=1, timeout=(2.0, 0.2)).ping()
    assert not isinstance(info.value, OutcomeUnknownError)
    assert "no answer within 0.2s" in str(info.value)
    assert time.monotonic() - started < 3
    assert len(platform.calls("/api/v1/ping")) == 2


def test_unreachable_platform_is_a_connection_error_for_every_method() -> None:
    account = make_account(f"http://127.0.0.1:{free_port()}", retries=1)
    with pytest.raises(APIConnectionError) as info:
        account.ping()
    assert not isinstance(info.value, OutcomeUnknownError)
    assert "Could not connect" in str(info.value)
    with pytest.raises(APIConnectionError) as info:
        account.bills.create(group_id="cld-1", price_cents=100, description="x")
    assert not isinstance(info.value, OutcomeUnknownError)


def test_retry_after_is_honoured_but_capped(platform: FakePlatform, server: Any) -> None:
    platform.fail("/api/v1/ping", times=1, status=429, retry_after="3600")
    started = time.monotonic()
    make_account(server.url, retry_after_max=0.05).ping()
    assert time.monotonic() - started < 2
    assert len(platform.calls("/api/v1/ping")) == 2


def test_many_calls_share_one_pooled_connection(platform: FakePlatform, server: Any) -> None:
    account = make_account(server.url)
    for _ in range(20):
        account.ping()
    account.groups.list()
    account.bills.create(group_id="cld-1", price_cents=100, description="x")
    assert len(platform.requests) == 22
    assert len(platform.ports()) == 1


def test_requests_carry_a_truthful_user_agent_and_basic_auth(platform: FakePlatform, server: Any) -> None:
    make_account(server.url).ping()
    headers = platform.requests[0].headers
    assert headers["User-Agent"] == USER_AGENT
    assert (
        USER_AGENT.startswith("flask-maestrano/") and " python/" in USER_AGENT and " requests/" in USER_AGENT
    )
    assert headers["Authorization"].startswith("Basic ")


def test_tls_verification_follows_the_preset() -> None:
    on = Preset.from_dict("p", platform_preset_data("https://platform.example"))
    off = Preset.from_dict(
        "p", platform_preset_data("https://platform.example", api={"verify_ssl_certs": False})
    )
    assert build_session(on).verify is True
    assert build_session(off).verify is False


@pytest.mark.parametrize(
    ("setup", "call", "error", "status", "param", "message"),
    [
        (None, "create_unknown_group", InvalidRequestError, 400, "group_id", "group_id does not exist"),
        (None, "wrong_key", AuthenticationError, 401, "authentication", "authentication Invalid API token"),
        (None, "cancel_unknown", InvalidRequestError, 404, "id", "id does not exist"),
        (None, "retrieve_unknown", InvalidRequestError, 200, "id", "id does not exist"),
        ("system_error", "ping", ApiError, 500, None, "A system error occured"),
        ("not_json", "ping", ApiError, 200, None, "Invalid response object from API"),
        ("not_json_502", "ping", ApiError, 502, None, "HTTP 502"),
        ("success_false_system", "ping", ApiError, 200, None, "retry later"),
    ],
)
def test_error_mapping(
    platform: FakePlatform,
    server: Any,
    setup: str | None,
    call: str,
    error: type[ApiError],
    status: int,
    param: str | None,
    message: str,
) -> None:
    if setup == "system_error":
        platform.override(
            "/api/v1/ping",
            500,
            '{"success": false, "errors": {"system": ["A system error occured"]}, "data": {}}',
        )
    elif setup == "not_json":
        platform.override("/api/v1/ping", 200, "<html>maintenance</html>", "text/html")
    elif setup == "not_json_502":
        platform.override("/api/v1/ping", 502, "<html>bad gateway</html>", "text/html")
    elif setup == "success_false_system":
        platform.override(
            "/api/v1/ping",
            200,
            '{"success": false, "errors": {"system": ["Please retry later"]}, "data": {}}',
        )
    account = make_account(server.url, retries=0)
    with pytest.raises(error) as info:
        if call == "create_unknown_group":
            account.bills.create(group_id="cld-404", price_cents=100, description="x")
        elif call == "wrong_key":
            preset = Preset.from_dict("p", platform_preset_data(server.url, api={"key": "wrong-key"}))
            AccountClient(preset, build_session(preset, retries=0)).ping()
        elif call == "cancel_unknown":
            account.bills.cancel("bill-404")
        elif call == "retrieve_unknown":
            account.bills.retrieve("bill-404")
        else:
            account.ping()
    exc = info.value
    assert type(exc) is error
    assert exc.http_status == status
    assert message in str(exc)
    assert exc.http_body
    if isinstance(exc, InvalidRequestError):
        assert exc.param == param
    if "json" not in (setup or ""):
        assert exc.json_body is None or isinstance(exc.json_body, dict)
    assert API_KEY not in str(exc)


def test_no_secret_in_log_lines_or_errors(platform: FakePlatform, server: Any, caplog: Any) -> None:
    caplog.set_level(logging.DEBUG)
    platform.fail("/api/v1/ping", times=1, status=503)
    account = make_account(server.url)
    account.ping()
    with pytest.raises(InvalidRequestError) as info:
        account.bills.retrieve("bill-404")
    assert "GET /api/v1/ping" in caplog.text or "/api/v1/ping" in caplog.text
    assert API_KEY not in caplog.text
    assert API_KEY not in repr(info.value) and API_KEY not in str(info.value)


class _ForwardProxy:
    """A forward HTTP proxy on 127.0.0.1 that answers for any host and records what it was asked."""

    def __init__(self) -> None:
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.requests: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return None

            def do_GET(self) -> None:
                owner.requests.append(self.path)  # absolute URL: that is how clients talk to proxies
                body = json.dumps({"success": True, "errors": {}, "data": {"msg": "via proxy"}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_calls_go_through_the_configured_proxy_and_only_that_one(
    make_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flask_maestrano import Maestrano

    proxy = _ForwardProxy()
    try:
        # an environment proxy is ignored: the configured one is used, for a host only it can reach
        monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
        maestrano = Maestrano()
        app = make_app(
            presets={"production": platform_preset_data("http://platform.invalid")},
            maestrano=maestrano,
            MAESTRANO_HTTP_PROXIES={"http": proxy.url},
        )
        with app.app_context():
            assert maestrano.account().ping() == {"msg": "via proxy"}
        assert proxy.requests == ["http://platform.invalid/api/v1/ping"]
    finally:
        proxy.stop()


def test_environment_proxies_are_ignored_without_configuration(
    platform: FakePlatform, server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("NO_PROXY", "")
    assert make_account(server.url).ping()


def test_errors_and_log_lines_show_no_url_credentials_or_query(caplog: Any) -> None:
    caplog.set_level(logging.DEBUG)
    port = free_port()
    account = make_account(f"http://someone:url-password-do-not-leak@127.0.0.1:{port}", retries=0)
    with pytest.raises(APIConnectionError) as info:
        account.bills.list(group_id="cld-1", session="session-token-do-not-leak")
    message = str(info.value)
    assert f"GET http://127.0.0.1:{port}/api/v1/account/bills" in message
    for secret in ("url-password-do-not-leak", "session-token-do-not-leak", "someone"):
        assert secret not in message and secret not in caplog.text


def _watchdogs() -> list[Any]:
    """Deadline timer threads still alive (each call must end its own)."""
    functions = [getattr(t, "function", None) for t in threading.enumerate()]
    return [f for f in functions if type(getattr(f, "__self__", None)).__name__ == "_Deadline"]


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
@pytest.mark.parametrize("phase", ["tls-handshake", "tls-body"])
def test_one_deadline_bounds_a_trickling_tls_peer_in_every_phase(tmp_path: Any, phase: str) -> None:
    server = TrickleServer(phase, tls_dir=tmp_path)
    try:
        # each byte comes well within the 1 s socket timeout: only the deadline ends the call
        with pytest.raises(APIConnectionError, match=r"no complete answer within 1s") as failed:
            url = f"{server.url}/check?session=tok"
            fetch_within(deadline_session(verify=False), url, deadline=1.0, max_bytes=1024)
        assert "tok" not in str(failed.value)
    finally:
        server.close()
    assert not _watchdogs()


def test_fetch_within_follows_no_redirect_and_caps_the_body(server: Any, platform: FakePlatform) -> None:
    platform.override("/api/v1/ping", 302, "", content_type="text/plain")
    answer = fetch_within(deadline_session(), f"{server.url}/api/v1/ping", deadline=5.0, max_bytes=1024)
    assert answer.status == 302 and len(platform.requests) == 1
    assert not _watchdogs()  # a call that finished early cancelled and joined its timer
    platform.override("/api/v1/ping", 200, "x" * 2048, content_type="text/plain")
    with pytest.raises(ApiError, match="larger than 1024 bytes"):
        fetch_within(deadline_session(), f"{server.url}/api/v1/ping", deadline=5.0, max_bytes=1024)
