"""A small fake of the platform's account API and of Connec!, served for real on 127.0.0.1.

It answers like the sandbox (PLATFORM.md 5.3, 6.2) and can be told to misbehave:
``fail(path, times, status)`` answers an error ``times`` times then normally,
``override(path, ...)`` always answers a given status/body, ``delay(path, seconds)`` holds
the answer (to trigger read timeouts). Every request is recorded with its client port, so a
test can count connections.

Werkzeug's development server closes every connection ("Connection: close"), which would
hide connection reuse; :class:`KeepAliveServer` serves a WSGI app over HTTP/1.1 keep-alive.
"""

from __future__ import annotations

import base64
import io
import sys
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from flask import Flask, Response, jsonify, request

API_ID = "app-test"
API_KEY = "test-secret-key"
#: the longest a held request waits for `FakePlatform.release` (seconds)
HOLD_BOUND = 60.0


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    form: dict[str, str]
    json: Any
    headers: dict[str, str]
    port: int


@dataclass
class Failure:
    times: int
    status: int
    body: str
    content_type: str
    method: str | None
    retry_after: str | None = None
    #: matching requests answered normally before the failures start
    after: int = 0


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def envelope(data: Any, status: int = 200, errors: dict[str, list[str]] | None = None) -> Response:
    response = jsonify({"success": errors is None, "errors": errors or {}, "data": data})
    response.status_code = status
    return response


@dataclass
class FakePlatform:
    api_id: str = API_ID
    api_key: str = API_KEY
    page_size: int = 10
    requests: list[Recorded] = field(default_factory=list)
    failures: dict[str, Failure] = field(default_factory=dict)
    overrides: dict[str, Failure] = field(default_factory=dict)
    delays: dict[str, float] = field(default_factory=dict)
    #: path -> answers left before every further request of it waits for ``release``
    holds: dict[str, int] = field(default_factory=dict)
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    bills: dict[str, dict[str, Any]] = field(default_factory=dict)
    recurring_bills: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: group id -> collection -> entities
    data: dict[str, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.app = self._build()
        self.groups["cld-1"] = {
            "object": "account_group",
            "id": "cld-1",
            "name": "Doe Corp",
            "status": "running",
            "has_credit_card": True,
            "free_trial_end_at": "2030-01-01T00:00:00Z",
            "email": "doe@example.com",
            "currency": "AUD",
            "timezone": "Australia/Sydney",
            "country": "AU",
            "city": "Sydney",
            "created_at": "2024-05-01T10:00:00+02:00",
            "updated_at": "2024-05-02 08:00:00.123456789Z",
        }
        self.users["usr-1"] = {
            "object": "account_user",
            "id": "usr-1",
            "name": "John",
            "surname": "Doe",
            "email": "john@example.com",
            "company_name": "Doe Corp",
            "country": "AU",
            "group_id": "cld-1",
            "created_at": "2024-05-01T00:00:00Z",
            "updated_at": "2024-05-01T00:00:00Z",
        }

    # -- controls ----------------------------------------------------------------------

    def fail(
        self,
        path: str,
        times: int,
        status: int = 500,
        body: str = '{"success": false, "errors": {"system": ["A system error occured"]}, "data": {}}',
        content_type: str = "application/json",
        method: str | None = None,
        retry_after: str | None = None,
        after: int = 0,
    ) -> None:
        self.failures[path] = Failure(times, status, body, content_type, method, retry_after, after)

    def override(self, path: str, status: int, body: str, content_type: str = "application/json") -> None:
        self.overrides[path] = Failure(1 << 30, status, body, content_type, None)

    def delay(self, path: str, seconds: float) -> None:
        self.delays[path] = seconds

    def hold(self, path: str, after: int) -> None:
        """Answer ``path`` ``after`` times, then keep every further request of it waiting until
        :attr:`release` is set (at most :data:`HOLD_BOUND` seconds): a run stopped mid-way
        whatever the load on the machine."""
        self.holds[path] = after

    def seeded(self, group_id: str, collection: str, count: int) -> list[dict[str, Any]]:
        entities = [
            {"id": f"{collection}-{i}", "name": f"{collection} {i}", "group_id": group_id}
            for i in range(count)
        ]
        self.data.setdefault(group_id, {})[collection] = entities
        return entities

    def calls(self, path: str, method: str | None = None) -> list[Recorded]:
        return [r for r in self.requests if r.path == path and (method is None or r.method == method)]

    def ports(self) -> set[int]:
        return {r.port for r in self.requests}

    # -- the app -------------------------------------------------------------------------

    def _authorized(self) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return user == self.api_id and password == self.api_key

    def _build(self) -> Flask:
        app = Flask("fake_platform")

        @app.before_request
        def record_and_misbehave() -> Any:
            with self.lock:
                self.requests.append(
                    Recorded(
                        method=request.method,
                        path=request.path,
                        query={k: request.args.getlist(k) for k in request.args},
                        form=request.form.to_dict(),
                        json=request.get_json(silent=True),
                        headers={k: v for k, v in request.headers.items()},
                        port=int(request.environ.get("REMOTE_PORT", 0)),
                    )
                )
                held = request.path in self.holds and self.holds[request.path] <= 0
                if request.path in self.holds and not held:
                    self.holds[request.path] -= 1
                failure = self.overrides.get(request.path) or self.failures.get(request.path)
                if failure is not None and failure.method not in (None, request.method):
                    failure = None
                if failure is not None and failure.after > 0:
                    failure.after -= 1
                elif failure is not None and failure.times > 0:
                    failure.times -= 1
                    response = Response(failure.body, failure.status, content_type=failure.content_type)
                    if failure.retry_after is not None:
                        response.headers["Retry-After"] = failure.retry_after
                    return response
            seconds = self.delays.get(request.path)
            if seconds:
                self.release.wait(seconds)
            if held:
                self.release.wait(HOLD_BOUND)
            if not self._authorized():
                if request.path.startswith("/api/v1/"):
                    return envelope({}, 401, {"authentication": ["Invalid API token"]})
                return jsonify(
                    {"errors": [{"status": "401", "code": "unauthorized", "title": "Unauthorized Access"}]}
                ), 401
            return None

        # -- account API ---------------------------------------------------------------

        @app.get("/api/v1/ping")
        def ping() -> Response:
            return envelope({"msg": "Ping successful! (API Authentication successful)"})

        def listing(items: dict[str, dict[str, Any]]) -> Response:
            result = list(items.values())
            for key, value in request.args.items():
                if key.endswith("_after"):
                    column = key[: -len("_after")]
                    result = [i for i in result if str(i.get(column, "")) >= value]
                else:
                    result = [i for i in result if str(i.get(key)) == value]
            return envelope(result)

        def show(items: dict[str, dict[str, Any]], item_id: str) -> Response:
            if item_id not in items:
                return envelope({}, 200, {"id": ["does not exist"]})
            return envelope(items[item_id])

        @app.get("/api/v1/account/groups")
        def groups_index() -> Response:
            return listing(self.groups)

        @app.get("/api/v1/account/groups/<item_id>")
        def groups_show(item_id: str) -> Response:
            return show(self.groups, item_id)

        @app.get("/api/v1/account/users")
        def users_index() -> Response:
            return listing(self.users)

        @app.get("/api/v1/account/users/<item_id>")
        def users_show(item_id: str) -> Response:
            return show(self.users, item_id)

        def create(items: dict[str, dict[str, Any]], obj: str, prefix: str) -> Response:
            form = request.form.to_dict()
            if form.get("group_id") not in self.groups:
                return envelope(
                    {}, 400, {"group_id": ["does not exist or cannot be charged by your service"]}
                )
            if "start_date" in form:
                start = datetime.fromisoformat(form["start_date"].replace("Z", "+00:00"))
                if start < datetime.now(timezone.utc) - timedelta(hours=1):
                    return envelope({}, 400, {"start_date": ["cannot be in the past"]})
            with self.lock:
                item_id = f"{prefix}-{len(items) + 1}"
                item: dict[str, Any] = {
                    "object": obj,
                    "id": item_id,
                    "status": "submitted",
                    "currency": "AUD",
                    "created_at": _now(),
                    "updated_at": _now(),
                    **form,
                }
                item["price_cents"] = int(form["price_cents"])
                items[item_id] = item
            return envelope(item)

        def cancel(items: dict[str, dict[str, Any]], item_id: str) -> Response:
            if item_id not in items:
                return envelope({}, 404, {"id": ["does not exist"]})
            if items[item_id]["status"] == "invoiced":
                return envelope(
                    {}, 400, {"status": ["has already been set to invoiced and cannot be changed"]}
                )
            items[item_id]["status"] = "cancelled"
            return envelope(items[item_id])

        @app.get("/api/v1/account/bills")
        def bills_index() -> Response:
            return listing(self.bills)

        @app.get("/api/v1/account/bills/<item_id>")
        def bills_show(item_id: str) -> Response:
            return show(self.bills, item_id)

        @app.post("/api/v1/account/bills")
        def bills_create() -> Response:
            return create(self.bills, "account_bill", "bill")

        @app.delete("/api/v1/account/bills/<item_id>")
        def bills_cancel(item_id: str) -> Response:
            return cancel(self.bills, item_id)

        @app.get("/api/v1/account/recurring_bills")
        def rbills_index() -> Response:
            return listing(self.recurring_bills)

        @app.get("/api/v1/account/recurring_bills/<item_id>")
        def rbills_show(item_id: str) -> Response:
            return show(self.recurring_bills, item_id)

        @app.post("/api/v1/account/recurring_bills")
        def rbills_create() -> Response:
            return create(self.recurring_bills, "account_recurring_bill", "rbill")

        @app.delete("/api/v1/account/recurring_bills/<item_id>")
        def rbills_cancel(item_id: str) -> Response:
            return cancel(self.recurring_bills, item_id)

        # -- Connec! ----------------------------------------------------------------------

        def not_found() -> tuple[Response, int]:
            return jsonify(
                {
                    "errors": [
                        {
                            "status": "404",
                            "code": "resource-not-found",
                            "title": "Resource not found",
                            "detail": "Resource not found",
                        }
                    ]
                }
            ), 404

        @app.get("/api/v2/<group_id>/<collection>")
        def collection_index(group_id: str, collection: str) -> Any:
            items = self.data.get(group_id, {}).get(collection)
            if items is None:
                return not_found()
            top = int(request.args.get("$top", self.page_size))
            skip = int(request.args.get("$skip", 0))
            page = items[skip : skip + top]
            pagination: dict[str, Any] = {"total": len(items)}
            if skip + top < len(items):
                # an absolute next link, as Connec! sends it
                pagination["next"] = (
                    f"{request.host_url.rstrip('/')}{request.path}?%24skip={skip + top}&%24top={top}"
                )
            return jsonify({collection: page, "pagination": pagination})

        @app.get("/api/v2/<group_id>/<collection>/<item_id>")
        def collection_show(group_id: str, collection: str, item_id: str) -> Any:
            for item in self.data.get(group_id, {}).get(collection, []):
                if item["id"] == item_id:
                    return jsonify({collection: item})
            return not_found()

        @app.post("/api/v2/<group_id>/<collection>")
        def collection_create(group_id: str, collection: str) -> Any:
            body = request.get_json(silent=True) or {}
            entity = dict(body.get(collection) or {})
            if "id" in entity:
                return jsonify(
                    {"errors": [{"status": "409", "title": "Conflict", "detail": "id given"}]}
                ), 409
            items = self.data.setdefault(group_id, {}).setdefault(collection, [])
            entity.update(id=f"{collection}-new-{len(items)}", group_id=group_id)
            items.append(entity)
            return (
                jsonify({collection: entity}),
                201,
                {"Location": f"/api/v2/{group_id}/{collection}/{entity['id']}"},
            )

        @app.put("/api/v2/<group_id>/<collection>/<item_id>")
        def collection_update(group_id: str, collection: str, item_id: str) -> Any:
            body = request.get_json(silent=True) or {}
            for item in self.data.get(group_id, {}).get(collection, []):
                if item["id"] == item_id:
                    item.update(body.get(collection) or {})
                    return jsonify({collection: item})
            return not_found()

        @app.post("/batch")
        def batch() -> Any:
            body = request.get_json(silent=True) or {}
            results = []
            for op in body.get("ops", []):
                parts = op["url"].strip("/").split("/")  # api v2 <group> <collection> [id]
                group_id, collection = parts[2], parts[3]
                params = op.get("params") or {}
                items = self.data.setdefault(group_id, {}).setdefault(collection, [])
                if op["method"] == "post":
                    entity = dict(params.get(collection) or {}, id=f"{collection}-b{len(items)}")
                    items.append(entity)
                    results.append({"status": 201, "body": {collection: entity}})
                else:
                    found = next((i for i in items if i["id"] == parts[4]), None)
                    if found is None:
                        results.append({"status": 404, "body": {"errors": [{"title": "Resource not found"}]}})
                    else:
                        found.update(params.get(collection) or {})
                        results.append({"status": 200, "body": {collection: found}})
            return jsonify({"results": results})

        @app.get("/api/reports/<group_id>/<name>")
        def report(group_id: str, name: str) -> Any:
            if name != "accounts_summary":
                return not_found()
            return jsonify(
                {
                    "group_id": group_id,
                    "to": request.args.get("to"),
                    "period": request.args.get("period", "MONTHLY"),
                    "accounts": [],
                }
            )

        @app.get("/version")
        def version() -> Any:
            return jsonify({"ci_branch": "v1.2.3", "ci_commit": "abc"})

        return app


def platform_preset_data(url: str, **overrides: Any) -> dict[str, Any]:
    """A preset whose account API and Connec! are the fake platform served at ``url``."""
    data: dict[str, Any] = {
        "environment": "local",
        "app": {"host": "http://127.0.0.1:5000"},
        "api": {"id": API_ID, "key": API_KEY, "host": url},
        "connec": {"host": url},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return data


class _KeepAliveHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: every answer carries Content-Length
    disable_nagle_algorithm = True  # headers and body go in two writes: no 40 ms delayed-ACK stall

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path, _, query = self.path.partition("?")
        environ: dict[str, Any] = {
            "REQUEST_METHOD": self.command,
            "SCRIPT_NAME": "",
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": str(self.server.server_address[1]),
            "SERVER_PROTOCOL": self.request_version,
            "REMOTE_ADDR": self.client_address[0],
            "REMOTE_PORT": self.client_address[1],
            "CONTENT_LENGTH": str(length),
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        for key, value in self.headers.items():
            name = "HTTP_" + key.upper().replace("-", "_")
            if name not in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
                environ[name] = value
        started: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            started[:] = [status, headers]
            return lambda data: None

        app = self.server.app  # type: ignore[attr-defined]
        result = app(environ, start_response)
        try:
            payload = b"".join(result)
        finally:
            if hasattr(result, "close"):
                result.close()
        status, headers = started
        code, _, reason = status.partition(" ")
        self.send_response(int(code), reason)
        for key, value in headers:
            if key.lower() not in ("content-length", "connection"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_OPTIONS = _serve


class KeepAliveServer:
    """A WSGI app over HTTP/1.1 keep-alive on 127.0.0.1, one thread per connection."""

    def __init__(self, app: Any) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _KeepAliveHandler)
        self.server.daemon_threads = True
        self.server.app = app  # type: ignore[attr-defined]
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
