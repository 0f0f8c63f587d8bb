"""One HTTP layer for every call the app makes to the platform (SECURITY.md 13-15).

:func:`build_session` gives a pooled :class:`requests.Session` per preset: HTTP Basic with
the preset's ``api.id``/``api.key``, TLS verification per ``api.verify_ssl_certs`` (on by
default), a truthful ``User-Agent`` and urllib3 :class:`~urllib3.util.Retry` retries:

* connection errors (nothing was sent) are retried for every method;
* 429 and 5xx answers, and broken reads, only for idempotent methods (GET, PUT, DELETE...),
  with exponential backoff and a ``Retry-After`` capped at ``retry_after_max`` seconds;
* a POST whose answer did not arrive in time is never sent twice:
  :func:`send` raises :class:`~flask_maestrano.errors.OutcomeUnknownError`.

:func:`send` makes one call with a ``(connect, read)`` timeout and turns every failure into a
typed :class:`~flask_maestrano.errors.ApiError` carrying the status, the body and the parsed
JSON. No secret reaches an error message or a log line: credentials travel only in the
``Authorization`` header, which is never logged, and :func:`redact_secrets_in_logs` strips
query strings and URL credentials from what urllib3 and requests log (urllib3 logs every
request line at DEBUG; the single-logout check carries the session token in its query).

:func:`fetch_within` makes one GET under ONE wall-clock deadline (connect, headers and body
together, however slowly the peer trickles bytes), with no redirect followed and a byte cap.

>>> session = build_session(preset)  # doctest: +SKIP
>>> response = send(session, "GET", preset.account_api_url + "ping", timeout=(5, 30))  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import platform
import re
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import MaxRetryError, ProtocolError, ReadTimeoutError
from urllib3.poolmanager import PoolManager
from urllib3.util.retry import Retry

from ._version import __version__
from .errors import (
    APIConnectionError,
    ApiError,
    AuthenticationError,
    InvalidRequestError,
    OutcomeUnknownError,
)
from .perpreset import PerPreset
from .presets import Preset
from .settings import Settings

log = logging.getLogger("flask_maestrano.http")

#: Methods that may be sent again after a 429, a 5xx or a broken read.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
#: Statuses retried for idempotent methods.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: How much of a body an error message quotes.
BODY_EXCERPT = 300

USER_AGENT = (
    f"flask-maestrano/{__version__} python/{platform.python_version()} requests/{requests.__version__}"
)

Timeout = tuple[float, float]


class CappedRetry(Retry):
    """urllib3 ``Retry`` whose ``Retry-After`` wait never exceeds ``retry_after_cap`` seconds."""

    def __init__(self, *args: Any, retry_after_cap: float = 30.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.retry_after_cap = retry_after_cap

    def new(self, **kw: Any) -> CappedRetry:
        kw.setdefault("retry_after_cap", self.retry_after_cap)
        return super().new(**kw)  # type: ignore[return-value]

    def get_retry_after(self, response: Any) -> float | None:
        seconds = super().get_retry_after(response)
        return None if seconds is None else min(seconds, self.retry_after_cap)


def build_retry(retries: int, *, backoff_factor: float = 0.5, retry_after_max: float = 30.0) -> CappedRetry:
    """The retry policy of SECURITY.md 14 with ``retries`` attempts after the first."""
    return CappedRetry(
        total=retries,
        connect=retries,
        read=retries,  # read errors: idempotent methods only (allowed_methods)
        status=retries,
        other=0,
        redirect=0,
        allowed_methods=IDEMPOTENT_METHODS,
        status_forcelist=RETRY_STATUSES,
        backoff_factor=backoff_factor,
        respect_retry_after_header=True,
        raise_on_status=False,  # the last answer is mapped to a typed error by send()
        raise_on_redirect=False,
        retry_after_cap=retry_after_max,
    )


def plain_session(*, verify: bool = True, proxies: Mapping[str, str] | None = None) -> requests.Session:
    """The base of every session the extension makes: a truthful ``User-Agent``, TLS checked
    per ``verify``, and ``proxies`` as the only proxy (environment variables and ``.netrc``
    are ignored, so nothing changes behind the app's back)."""
    session = requests.Session()
    session.verify = verify
    session.trust_env = False
    session.headers["User-Agent"] = USER_AGENT
    session.proxies.update(proxies or {})
    return session


def build_session(
    preset: Preset,
    *,
    retries: int = 3,
    backoff_factor: float = 0.5,
    retry_after_max: float = 30.0,
    pool_maxsize: int = 10,
    proxies: Mapping[str, str] | None = None,
) -> requests.Session:
    """A pooled session that authenticates as ``preset`` (one per preset and app).

    ``proxies`` (``{"https": "http://proxy:3128"}``) is the only proxy used: environment
    variables and ``.netrc`` are ignored so nothing changes behind the app's back.

    >>> session = build_session(preset, retries=2)  # doctest: +SKIP
    """
    session = plain_session(verify=preset.api.verify_ssl_certs, proxies=proxies)
    session.auth = (preset.api.id, preset.api.key)
    adapter = HTTPAdapter(
        max_retries=build_retry(retries, backoff_factor=backoff_factor, retry_after_max=retry_after_max),
        pool_connections=4,
        pool_maxsize=pool_maxsize,
    )
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def without_userinfo(url: str, *, query: bool = True) -> str:
    """``url`` without its ``user:password@`` (and without its query and fragment unless ``query``).

    >>> without_userinfo("https://id:key@api.example/v1/x?token=t", query=False)
    'https://api.example/v1/x'
    """
    parts = urlsplit(url)
    if "@" not in parts.netloc and query:
        return url
    host = parts.netloc.rpartition("@")[2]
    if query:
        return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _where(method: str, url: str) -> str:
    # no query (filters, session tokens) and no user:password@ in what errors and logs show
    return f"{method} {without_userinfo(url, query=False)}"


def send(
    session: requests.Session,
    method: str,
    url: str,
    *,
    timeout: Timeout,
    params: Any = None,
    data: Any = None,
    json: Any = None,
    headers: Mapping[str, str] | None = None,
) -> requests.Response:
    """Make one call; a non-2xx answer or a network failure raises a typed error.

    Raises :class:`~flask_maestrano.errors.APIConnectionError` when nothing usable came
    back, :class:`~flask_maestrano.errors.OutcomeUnknownError` when a non-idempotent call
    was sent but its answer did not arrive, and :func:`error_for_response` of the answer
    for any status outside 2xx.
    """
    method = method.upper()
    started = time.perf_counter()
    try:
        response = session.request(
            method, url, params=params, data=data, json=json, headers=headers, timeout=timeout
        )
    except requests.exceptions.ConnectTimeout:
        raise APIConnectionError(
            f"Could not connect to Maestrano ({_where(method, url)}): no connection within {timeout[0]:g}s"
        ) from None
    except requests.exceptions.SSLError:
        raise APIConnectionError(
            f"Could not verify Maestrano's SSL certificate ({_where(method, url)})"
        ) from None
    except requests.exceptions.ReadTimeout:
        raise _no_answer(method, url, timeout, "no answer within {read:g}s") from None
    except requests.exceptions.ConnectionError as exc:
        reason = _reason(exc)
        if isinstance(reason, ReadTimeoutError):  # idempotent calls whose retries all timed out
            raise _no_answer(method, url, timeout, "no answer within {read:g}s") from None
        if isinstance(reason, ProtocolError):  # the request went out, the connection broke
            raise _no_answer(method, url, timeout, "the connection broke before the answer") from None
        raise APIConnectionError(
            f"Could not connect to Maestrano ({_where(method, url)}): the connection failed "
            "(refused, reset or name not resolved); check the preset's host and the network"
        ) from None
    except requests.exceptions.RequestException as exc:
        raise APIConnectionError(f"{_where(method, url)} failed: {type(exc).__name__}") from None
    if log.isEnabledFor(logging.DEBUG):
        log.debug(
            "%s -> %s in %.1f ms",
            _where(method, url),
            response.status_code,
            (time.perf_counter() - started) * 1000,
        )
    if not 200 <= response.status_code < 300:
        raise error_for_response(response)
    return response


def _reason(exc: requests.exceptions.ConnectionError) -> BaseException | None:
    # requests wraps urllib3's MaxRetryError, whose .reason is the last underlying error
    inner = exc.args[0] if exc.args and isinstance(exc.args[0], BaseException) else None
    if isinstance(inner, MaxRetryError):
        return inner.reason
    return inner


def _no_answer(method: str, url: str, timeout: Timeout, what: str) -> APIConnectionError:
    detail = what.format(read=timeout[1])
    if method not in IDEMPOTENT_METHODS:
        return OutcomeUnknownError(
            f"{_where(method, url)} was sent but {detail}: it may or may not have been "
            "carried out, so it was not sent again"
        )
    return APIConnectionError(f"{_where(method, url)}: {detail}")


def parse_json(response: requests.Response) -> Any:
    """The JSON body of ``response``, or :class:`~flask_maestrano.errors.ApiError` when it is not JSON."""
    try:
        return response.json()
    except ValueError:
        raise ApiError(
            f"Invalid response object from API: {excerpt(response.text)!r} "
            f"(HTTP response code was {response.status_code})",
            http_status=response.status_code,
            http_body=response.text,
        ) from None


def excerpt(text: str | None) -> str:
    """At most :data:`BODY_EXCERPT` characters of ``text``, for messages."""
    if not text:
        return ""
    return text if len(text) <= BODY_EXCERPT else text[:BODY_EXCERPT] + "..."


def describe_errors(errors: Any) -> tuple[str | None, str | None]:
    """``(message, param)`` from an error payload of the account API or of Connec!.

    Account API: ``{"id": ["does not exist"]}`` -> ``("id does not exist", "id")``.
    Connec!: ``[{"title": "Resource not found", "detail": "..."}]`` -> ``("Resource not found: ...", None)``.
    """
    if isinstance(errors, Mapping) and errors:
        param, messages = next(iter(errors.items()))
        text = " ".join(str(m) for m in messages) if isinstance(messages, list | tuple) else str(messages)
        if str(param) in ("system", "message", "base"):
            return text, None
        return f"{param} {text}".strip(), str(param)
    if isinstance(errors, list) and errors:
        first = errors[0]
        if isinstance(first, Mapping):
            title = first.get("title") or first.get("message") or first.get("code")
            detail = first.get("detail")
            if title and detail and detail != title:
                return f"{title}: {detail}", None
            found = title or detail
            return (str(found) if found else None), None
        return str(first), None
    if isinstance(errors, str) and errors:
        return errors, None
    return None, None


def error_for_response(response: requests.Response, json_body: Any = None) -> ApiError:
    """The typed error of a failed answer (PLATFORM.md 5.4): 401 authentication, 400/404/409/422
    invalid request (naming the field), anything else a generic :class:`~flask_maestrano.errors.ApiError`."""
    status = response.status_code
    body = response.text
    if json_body is None:
        try:
            json_body = response.json()
        except ValueError:
            json_body = None
    message: str | None = None
    param: str | None = None
    if isinstance(json_body, Mapping):
        message, param = describe_errors(json_body.get("errors"))
        if message is None:
            found = json_body.get("message") or json_body.get("error")
            message = str(found) if found else None
    if message is None:
        message = f"HTTP {status}" + (f": {excerpt(body)}" if body and json_body is None else "")
    kwargs: dict[str, Any] = {"http_status": status, "http_body": body, "json_body": json_body}
    if status == 401:
        return AuthenticationError(message, **kwargs)
    if status in (400, 404, 409, 422):
        return InvalidRequestError(message, param=param, **kwargs)
    return ApiError(message, **kwargs)


class SessionPool:
    """The pooled sessions of one app, built from its settings: one per preset for API calls
    (:func:`build_session`) and one per preset for deadline-bound fetches
    (:func:`deadline_session`, the single-logout check). :meth:`close` closes them all.

    >>> pool = SessionPool(settings)  # doctest: +SKIP
    >>> url = preset.account_api_url + "ping"  # doctest: +SKIP
    >>> send(pool.api(preset), "GET", url, timeout=pool.timeout())  # doctest: +SKIP
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._api: PerPreset[Preset, requests.Session] = PerPreset(self._build_api)
        self._deadline: PerPreset[Preset, requests.Session] = PerPreset(self._build_deadline)
        self._plain: PerPreset[Preset, requests.Session] = PerPreset(self._build_plain)

    def _build_api(self, preset: Preset) -> requests.Session:
        settings = self.settings
        return build_session(
            preset,
            retries=settings.http_retries,
            backoff_factor=settings.http_backoff,
            retry_after_max=settings.http_retry_after_max,
            pool_maxsize=settings.http_pool_size,
            proxies=settings.http_proxies,
        )

    def _build_deadline(self, preset: Preset) -> requests.Session:
        return deadline_session(verify=preset.api.verify_ssl_certs, proxies=self.settings.http_proxies)

    def _build_plain(self, preset: Preset) -> requests.Session:
        return plain_session(verify=preset.api.verify_ssl_certs, proxies=self.settings.http_proxies)

    def api(self, preset: Preset) -> requests.Session:
        """The pooled, retrying session that authenticates as ``preset``."""
        return self._api.get(preset)

    def deadline(self, preset: Preset) -> requests.Session:
        """The session for :func:`fetch_within` calls about ``preset`` (no retry, no credentials)."""
        return self._deadline.get(preset)

    def plain(self, preset: Preset) -> requests.Session:
        """A session with no credentials and no retry, for a library that makes its own calls
        about ``preset`` (python3-openid's discovery and associations)."""
        return self._plain.get(preset)

    def timeout(self, read: float | None = None) -> Timeout:
        """``(connect, read)`` from ``MAESTRANO_HTTP_CONNECT_TIMEOUT``/``MAESTRANO_HTTP_READ_TIMEOUT``."""
        settings = self.settings
        return settings.http_connect_timeout, settings.http_read_timeout if read is None else float(read)

    def close(self) -> None:
        """Close every session (their pooled connections); later calls build new ones."""
        for session in [*self._api.clear(), *self._deadline.clear(), *self._plain.clear()]:
            session.close()


# -- no secret in third-party log lines ------------------------------------------------------

#: Loggers of the HTTP stack whose records may quote a request URL (urllib3 logs
#: ``"GET /path?query HTTP/1.1" 200`` at DEBUG and the URL of every retry at WARNING).
THIRD_PARTY_LOGGERS = (
    "urllib3",
    "urllib3.connection",
    "urllib3.connectionpool",
    "urllib3.poolmanager",
    "urllib3.response",
    "urllib3.util.retry",
    "urllib3.util.ssl_",
    "requests",
)
_QUERY = re.compile(r"\?[^\s\"'<>]+")
_URL_USERINFO = re.compile(r"(//)[^/\s@\"'<>]+@")


class RedactUrlSecrets(logging.Filter):
    """Rewrites a record so no query string and no ``user:password@`` of a URL remains.

    ``keys`` limits the redaction to the values of those query parameters (for an access log,
    where the rest of the query is useful); ``None`` redacts every query.
    """

    def __init__(self, keys: frozenset[str] | None = None) -> None:
        super().__init__()
        self.keys = keys
        names = "|".join(re.escape(k) for k in sorted(keys or ()))
        self._param = re.compile(rf"([?&](?:{names})=)[^&\s\"'<>]*") if keys else None

    def redact(self, text: str) -> str:
        """``text`` without the secrets this filter removes."""
        if self._param is not None:
            text = self._param.sub(r"\1[redacted]", text)
        else:
            text = _QUERY.sub("?[redacted]", text)
        return _URL_USERINFO.sub(r"\1", text)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken record is the logging module's to report, not ours
            return True
        redacted = self.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def install_redaction(names: tuple[str, ...], redactor: RedactUrlSecrets) -> None:
    """Add ``redactor`` (once) to each named logger and to every existing child of one.

    A logger's filters see only the records created on that logger, not those of its
    children, hence one filter per logger.
    """
    existing = [n for n in logging.root.manager.loggerDict if n.startswith(tuple(f"{p}." for p in names))]
    for name in (*names, *existing):
        logger = logging.getLogger(name)
        if not any(
            type(f) is type(redactor) and getattr(f, "keys", 0) == redactor.keys for f in logger.filters
        ):
            logger.addFilter(redactor)


def redact_secrets_in_logs() -> None:
    """Keep session tokens and URL credentials out of urllib3's and requests' log records.

    Called by :meth:`~flask_maestrano.Maestrano.init_app`; idempotent.
    """
    install_redaction(THIRD_PARTY_LOGGERS, RedactUrlSecrets())


# -- one deadline for a whole call -----------------------------------------------------------


class _Deadline:
    """Shuts down every socket of one call when its time is up.

    Socket timeouts bound each read, not the call: a peer that sends one byte per second
    never trips a 2 s read timeout. A timer shuts the call's sockets down at the deadline,
    which makes the blocked read return at once, whatever phase (TLS, headers, body) it is in.
    """

    def __init__(self, seconds: float) -> None:
        self.fired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            fired = self.fired
        if fired:  # the time ran out while this socket was connecting
            _shutdown(sock)

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shutdown(sock)

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        self._timer.join()  # no timer thread outlives the call


def _shutdown(sock: socket.socket) -> None:
    # the plain socket's shutdown (not SSLSocket's, which also tears down the TLS object under
    # a reader in another thread): the blocked read sees end of file
    with contextlib.suppress(OSError):  # already closed
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


_CURRENT_DEADLINE: contextvars.ContextVar[_Deadline | None] = contextvars.ContextVar(
    "flask_maestrano_deadline", default=None
)


def _watch(sock: socket.socket | None) -> None:
    deadline = _CURRENT_DEADLINE.get()
    if deadline is not None and sock is not None:
        deadline.watch(sock)


class _DeadlineHTTPConnection(HTTPConnection):
    """A connection whose sockets the current call's deadline can shut down."""

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _watch(sock)  # before TLS: a trickled handshake is bounded too
        return sock

    def request(self, *args: Any, **kwargs: Any) -> None:
        _watch(self.sock)  # a pooled connection used again
        super().request(*args, **kwargs)


class _DeadlineHTTPSConnection(_DeadlineHTTPConnection, HTTPSConnection):
    """HTTPS flavour of :class:`_DeadlineHTTPConnection`."""


class _DeadlineHTTPPool(HTTPConnectionPool):
    ConnectionCls = _DeadlineHTTPConnection


class _DeadlineHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _DeadlineHTTPSConnection


_DEADLINE_POOLS = {"http": _DeadlineHTTPPool, "https": _DeadlineHTTPSPool}


class DeadlineAdapter(HTTPAdapter):
    """An adapter whose connections :func:`fetch_within` can bound in wall-clock time."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_DEADLINE_POOLS)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> PoolManager:
        manager: PoolManager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = dict(_DEADLINE_POOLS)
        return manager


def deadline_session(*, verify: bool = True, proxies: Mapping[str, str] | None = None) -> requests.Session:
    """A session for :func:`fetch_within`: no retry, no environment proxy or ``.netrc``."""
    session = plain_session(verify=verify, proxies=proxies)
    adapter = DeadlineAdapter(max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


@dataclass(frozen=True)
class Fetched:
    """What :func:`fetch_within` read: the status, the headers and the whole body."""

    status: int
    headers: Mapping[str, str]
    body: bytes


def fetch_within(
    session: requests.Session,
    url: str,
    *,
    deadline: float,
    max_bytes: int,
    headers: Mapping[str, str] | None = None,
) -> Fetched:
    """GET ``url``, the whole call (connect, TLS, headers, body) within ``deadline`` seconds.

    No redirect is followed (a 3xx is returned as is) and at most ``max_bytes`` of body are
    read. ``session`` must come from :func:`deadline_session`. Raises
    :class:`~flask_maestrano.errors.APIConnectionError` when no complete answer arrived in
    time or the call failed, :class:`~flask_maestrano.errors.ApiError` when the body is larger
    than ``max_bytes``. Messages never quote the URL's query.
    """
    where = _where("GET", url)
    guard = _Deadline(deadline)
    token = _CURRENT_DEADLINE.set(guard)
    try:
        with guard:
            response = session.get(
                url,
                headers=headers,
                timeout=(deadline, deadline),
                allow_redirects=False,
                stream=True,
            )
            try:
                body = _read_capped(response, max_bytes, where)
            finally:
                response.close()
    except (requests.RequestException, Urllib3Error, OSError) as exc:
        if guard.fired:
            raise APIConnectionError(f"{where}: no complete answer within {deadline:g}s") from None
        if isinstance(exc, requests.exceptions.ConnectTimeout):
            raise APIConnectionError(
                f"Could not connect to Maestrano ({where}) within {deadline:g}s"
            ) from None
        raise APIConnectionError(f"{where} failed: {type(exc).__name__}") from None
    finally:
        _CURRENT_DEADLINE.reset(token)
    return Fetched(response.status_code, dict(response.headers), body)


def _read_capped(response: requests.Response, max_bytes: int, where: str) -> bytes:
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise ApiError(
            f"{where}: the answer is larger than {max_bytes} bytes", http_status=response.status_code
        )
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(chunk_size=8192):
        size += len(chunk)
        if size > max_bytes:
            raise ApiError(
                f"{where}: the answer is larger than {max_bytes} bytes", http_status=response.status_code
            )
        chunks.append(chunk)
    return b"".join(chunks)
