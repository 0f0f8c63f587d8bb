"""The Connec! data-sharing API client (PLATFORM.md 6) for one group of one preset.

Paths are scoped to the group: ``client.get("people")`` calls
``{connec.host}{connec.base_path}/<group_id>/people``. Every call goes through the preset's
pooled session (:mod:`flask_maestrano.http`): timeouts, retries, typed errors.
:meth:`~flask_maestrano.connec.ConnecClient.pages` and
:meth:`~flask_maestrano.connec.ConnecClient.iterate` follow ``pagination.next`` one page at a
time, so a collection of any size is read in constant memory over one pooled connection.

>>> connec = maestrano.connec("cld-1")  # doctest: +SKIP
>>> for person in connec.iterate("people", filter="updated_at gt '2024-01-01T00:00:00Z'"):
...     print(person["first_name"])  # doctest: +SKIP

With the ``DEBUG_CONNEC`` environment variable set, every request and response is written
under ``<tmpdir>/connec/<verb>/<group>/<path>/<hex>/{request,response}`` (JSON, without the
``Authorization`` header).
"""

from __future__ import annotations

import json as jsonlib
import logging
import os
import re
import secrets
import stat
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urljoin, urlsplit, urlunsplit

import requests

from ..errors import ApiError, ConfigurationError, InvalidArgumentError
from ..http import Timeout, parse_json, send, without_userinfo
from ..presets import Preset

log = logging.getLogger("flask_maestrano")

JSON_API = "application/vnd.api+json"
#: Upper bound of pages one :meth:`ConnecClient.pages` call follows (a loop guard).
MAX_PAGES = 1_000_000
_SAFE_SEGMENT = re.compile(r"[^A-Za-z0-9._-]+")
# what a path segment keeps as is (RFC 3986 pchar, plus "%" for ids the caller encoded)
_PCHAR = "-._~!$&'()*+,;=:@%"
#: headers never written by DEBUG_CONNEC: credentials and session cookies
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})


@dataclass(frozen=True)
class Page:
    """One page of a collection: its entities and where the next page is."""

    collection: str
    #: the entities of this page, as Connec! sent them
    entities: list[dict[str, Any]]
    #: ``pagination.total`` (every page of the collection), when Connec! sent it
    total: int | None
    #: the absolute URL of the next page on ``connec.host``, ``None`` on the last one
    next_url: str | None
    #: the URL this page was read from
    url: str
    #: 1 for the first page read by this call
    number: int


class ConnecClient:
    """Connec! for ``group_id`` as ``preset``, over a pooled ``requests.Session``.

    ``external_ids`` sends ``CONNEC-EXTERNAL-IDS: true`` (ids become lists of
    ``{id, provider, realm}``); it defaults to ``preset.webhooks.external_ids``.
    ``debug_dir`` overrides where ``DEBUG_CONNEC`` dumps go (default: the system temp dir).
    """

    def __init__(
        self,
        preset: Preset,
        session: requests.Session,
        group_id: str,
        *,
        timeout: Timeout | None = None,
        external_ids: bool | None = None,
        debug_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        if not preset.connec.enabled or not preset.connec.host:
            raise ConfigurationError("Connec! is not enabled for this preset", preset=preset.name)
        if not isinstance(group_id, str) or not group_id or "/" in group_id:
            raise InvalidArgumentError(
                f"group_id must be a group uid such as 'cld-1234', got {group_id!r}", param="group_id"
            )
        self.preset = preset
        self.session = session
        self.group_id = group_id
        self.timeout: Timeout = timeout or (min(10.0, preset.connec.timeout), preset.connec.timeout)
        self.host = preset.connec.host.rstrip("/")
        self.base_url = f"{self.host}{preset.connec.base_path}/{quote(group_id, safe='')}"
        self.external_ids = preset.webhooks.external_ids if external_ids is None else external_ids
        self.headers = {"Accept": JSON_API}
        if self.external_ids:
            self.headers["CONNEC-EXTERNAL-IDS"] = "true"
        self._body_headers = {**self.headers, "Content-Type": JSON_API}
        self._origin = urlsplit(self.host)[:2]
        self.debug_dir = debug_dir

    # -- URLs ------------------------------------------------------------------------------

    def url(self, path: str) -> str:
        """The absolute URL of ``path`` scoped to the group: ``"/people/"`` -> ``.../<group>/people``.

        Each segment is percent-encoded (an id with ``?`` or ``#`` stays one segment) and
        ``.``/``..`` segments are refused, so a path built from an id never leaves the group.
        """
        segments = path.strip("/").split("/") if path.strip("/") else []
        if any(segment in ("", ".", "..") for segment in segments):
            raise InvalidArgumentError(
                f"a Connec! path has no empty, '.' or '..' segment, got {path!r}", param="path"
            )
        encoded = "/".join(quote(segment, safe=_PCHAR) for segment in segments)
        return f"{self.base_url}/{encoded}" if encoded else self.base_url

    def _same_origin(self, url: str, current: str | None = None) -> str:
        # credentials go to connec.host only: a next link elsewhere keeps its path and query
        parts = urlsplit(url)
        if not parts.scheme and not parts.netloc:
            if url.startswith("/"):
                return self.host + url
            # relative to the page it came from ("?$skip=10", "people?$skip=10")
            url = urljoin(current or self.base_url + "/", url)
            parts = urlsplit(url)
        if parts[:2] == self._origin:
            return urlunsplit((*parts[:4], ""))
        return urlunsplit((*self._origin, parts.path, parts.query, ""))

    # -- verbs -----------------------------------------------------------------------------

    def get(
        self,
        path: str,
        *,
        filter: str | None = None,
        orderby: str | None = None,
        top: int | None = None,
        skip: int | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> Any:
        """``GET`` a collection, an entity or a singular resource; returns the parsed JSON.

        >>> connec.get("organizations", filter="name match /Doe/", top=10)  # doctest: +SKIP
        """
        query = query_params(filter=filter, orderby=orderby, top=top, skip=skip, params=params)
        return self._call("GET", self.url(path), params=query or None)

    def post(self, path: str, body: Mapping[str, Any]) -> Any:
        """``POST`` ``body`` (e.g. ``{"people": {...}}``) to ``path``; returns the parsed JSON."""
        return self._call("POST", self.url(path), json=body)

    def put(self, path: str, body: Mapping[str, Any]) -> Any:
        """``PUT`` ``body`` to ``path`` (a merge of the fields sent); returns the parsed JSON."""
        return self._call("PUT", self.url(path), json=body)

    def batch(self, ops: Sequence[Mapping[str, Any]], *, sequential: bool = True) -> list[dict[str, Any]]:
        """``POST {connec.host}/batch``: several operations in one call; returns ``results``,
        one ``{"status", "body"}`` per operation in order. Build operations with :meth:`op`.

        >>> connec.batch([connec.op("post", "people", {"people": {"first_name": "Jo"}})])  # doctest: +SKIP
        [{'status': 201, 'body': {'people': {...}}}]
        """
        body = {"sequential": sequential, "ops": list(ops)}
        answer = self._call("POST", f"{self.host}/batch", json=body)
        results = answer.get("results") if isinstance(answer, Mapping) else None
        if not isinstance(results, list):
            raise ApiError("the batch answer has no 'results' list", json_body=answer)
        return results

    def op(self, method: str, path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """One batch operation on ``path`` of this group (``method``: ``post``, ``put``, ``get``)."""
        url = self.url(path)[len(self.host) :]
        operation: dict[str, Any] = {"method": method.lower(), "url": url}
        if params is not None:
            operation["params"] = dict(params)
        return operation

    def report(self, name: str, **params: Any) -> Any:
        """``GET {connec.host}/api/reports/<group>/<name>`` (e.g. ``"profit_and_loss"``,
        ``from=``, ``to=``, ``period="MONTHLY"``); returns the parsed JSON."""
        url = f"{self.host}/api/reports/{quote(self.group_id, safe='')}/{quote(name.strip('/'), safe='')}"
        return self._call("GET", url, params={k: v for k, v in params.items() if v is not None} or None)

    def version(self) -> Any:
        """``GET {connec.host}/version``: the Connec! version information (``ci_branch``...)."""
        return self._call("GET", f"{self.host}/version", accept="application/json")

    # -- pagination ------------------------------------------------------------------------

    def pages(
        self,
        collection: str,
        *,
        filter: str | None = None,
        orderby: str | None = None,
        top: int | None = None,
        params: Mapping[str, Any] | None = None,
        start_url: str | None = None,
    ) -> Iterator[Page]:
        """Read ``collection`` page by page, following ``pagination.next``.

        A generator: one page is in memory at a time. ``start_url`` resumes from a page's
        :attr:`Page.next_url`. Stops at a page without ``next``, an empty page, or a ``next``
        that repeats the current URL.
        """
        query = query_params(filter=filter, orderby=orderby, top=top, params=params)
        url: str | None = self._same_origin(start_url) if start_url else self.url(collection)
        send_query: dict[str, Any] | None = query or None if start_url is None else None
        seen_url = ""
        number = 0
        while url is not None and number < MAX_PAGES:
            body = self._call("GET", url, params=send_query)
            send_query = None  # the next link carries the query
            number += 1
            entities, total, next_link = read_page(body, collection)
            # absolute and on connec.host: what is followed, and what a resumed import starts from
            next_abs = self._same_origin(next_link, url) if next_link else None
            yield Page(collection, entities, total, next_abs, url, number)
            if not entities or next_abs is None:
                return
            if next_abs in (url, seen_url):
                return
            seen_url, url = url, next_abs

    def iterate(
        self,
        collection: str,
        *,
        filter: str | None = None,
        orderby: str | None = None,
        top: int | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every entity of ``collection``, page after page (see :meth:`pages`).

        >>> sum(1 for _ in connec.iterate("people", top=100))  # doctest: +SKIP
        2500
        """
        for page in self.pages(collection, filter=filter, orderby=orderby, top=top, params=params):
            yield from page.entities

    # -- plumbing ----------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        accept: str | None = None,
    ) -> Any:
        headers = self._body_headers if json is not None else self.headers
        if accept is not None:
            headers = {**headers, "Accept": accept}
        dump = _debug_target(self, method, url) if os.environ.get("DEBUG_CONNEC") else None
        if dump is not None:
            _write_request(dump, method, url, params, headers, json)
        try:
            response = send(
                self.session, method, url, timeout=self.timeout, params=params, json=json, headers=headers
            )
        except ApiError as exc:
            if dump is not None:
                _write_json(
                    dump / "response", {"status": exc.http_status, "error": str(exc), "body": exc.http_body}
                )
            raise
        if dump is not None:
            _write_json(
                dump / "response",
                {"status": response.status_code, "headers": _safe(response.headers), "body": response.text},
            )
        if not response.content:
            return None
        return parse_json(response)


def query_params(
    *,
    filter: str | None = None,
    orderby: str | None = None,
    top: int | None = None,
    skip: int | None = None,
    params: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The OData-like query of Connec! (``$filter``, ``$orderby``, ``$top``, ``$skip``) plus ``params``.

    >>> query_params(filter="code eq 'CT3'", top=10)
    {'$filter': "code eq 'CT3'", '$top': 10}
    """
    query: dict[str, Any] = dict(params or {})
    for key, value in (("$filter", filter), ("$orderby", orderby), ("$top", top), ("$skip", skip)):
        if value is None:
            continue
        if key in ("$top", "$skip") and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise InvalidArgumentError(f"{key} must be a non-negative integer, got {value!r}", param=key)
        query[key] = value
    return query


def read_page(body: Any, collection: str) -> tuple[list[dict[str, Any]], int | None, str | None]:
    """``(entities, total, next_url)`` of one page of ``collection``; a singular resource
    (``{"company": {...}}``) is a page of one entity."""
    if not isinstance(body, Mapping):
        raise ApiError(f"a page of {collection!r} must be a JSON object", json_body=body)
    items = body.get(collection)
    if items is None:
        entities: list[dict[str, Any]] = []
    elif isinstance(items, list):
        entities = items
    elif isinstance(items, dict):
        entities = [items]
    else:
        raise ApiError(f"{collection!r} in a page must be a list of entities", json_body=body)
    pagination = body.get("pagination")
    total: int | None = None
    next_url: str | None = None
    if isinstance(pagination, Mapping):
        raw_total = pagination.get("total")
        total = raw_total if isinstance(raw_total, int) and not isinstance(raw_total, bool) else None
        raw_next = pagination.get("next")
        next_url = raw_next if isinstance(raw_next, str) and raw_next else None
    return entities, total, next_url


# -- DEBUG_CONNEC dumps --------------------------------------------------------------------------


def _debug_target(client: ConnecClient, method: str, url: str) -> Path | None:
    """A fresh private folder (0700 from the dump root down) for one call's dump.

    ``None``, with a warning, when the root exists but is not a private folder of this user
    (another local user may have created ``/tmp/connec`` to read or swap the dumps).
    """
    base = Path(client.debug_dir or tempfile.gettempdir())
    path = urlsplit(url).path
    if path.startswith(client.base_url[len(client.host) :]):
        path = path[len(client.base_url) - len(client.host) :]
    segments = [_SAFE_SEGMENT.sub("_", s) for s in path.split("/") if s and s not in (".", "..")]
    group = _SAFE_SEGMENT.sub("_", client.group_id)
    try:
        for missing in [p for p in (*reversed(base.parents), base) if not p.exists()]:
            _private_dir(missing)  # a debug_dir that does not exist yet is created private too
        target = base
        for name in ("connec", method.lower(), group, *segments, secrets.token_hex(8)):
            target = target / name
            _private_dir(target)
    except OSError as exc:
        log.warning("DEBUG_CONNEC: no dump written: %s", exc)
        return None
    return target


def _private_dir(path: Path) -> None:
    """Create ``path`` with mode 0700, or accept an existing folder owned by this user (made 0700)."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        info = os.lstat(path)
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
            raise PermissionError(
                f"{path} is not a folder of this user; remove it or set debug_dir"
            ) from None
    os.chmod(path, 0o700)  # whatever the umask, and for folders an older version left open


def _write_request(
    target: Path, method: str, url: str, params: Any, headers: Mapping[str, str], body: Any
) -> None:
    # the session adds Authorization on the wire; it is never part of what is written
    _write_json(
        target / "request",
        {
            "method": method,
            "url": without_userinfo(url),
            "params": params,
            "headers": _safe(headers),
            "body": body,
        },
    )


def _safe(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() not in SECRET_HEADERS}


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    # 0600 whatever the umask; O_EXCL|O_NOFOLLOW: never through a planted file or link
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    os.fchmod(fd, 0o600)
    with open(fd, "w", encoding="utf-8") as handle:
        handle.write(jsonlib.dumps(data, indent=2, default=str))
