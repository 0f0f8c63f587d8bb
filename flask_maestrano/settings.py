"""The ``MAESTRANO_*`` settings, parsed and checked once when the app starts.

:class:`Settings` is a frozen, typed view of the Flask configuration, built by ``init_app``
before anything is registered on the app; components read it instead of ``app.config``.
Plain Python (no Flask), so the core can take it without an app:

>>> settings = Settings.from_config({"MAESTRANO_HTTP_RETRIES": "5"})
>>> settings.http_retries, settings.session_check_fail_open
(5, False)
>>> try:
...     Settings.from_config({"MAESTRANO_SESSION_CHECK_FAIL_OPEN": "no"})
... except ConfigurationError as exc:
...     print(exc)
key 'MAESTRANO_SESSION_CHECK_FAIL_OPEN': must be true or false (True/False, "true"/"false", "1"/"0"), got 'no'

Each setting is one line of :class:`Settings`: the field ``http_retries`` is the key
``MAESTRANO_HTTP_RETRIES``, declared with its parser, its default (the value
``app.config.setdefault`` writes and ``docs/config.rst`` shows) and a one-line description.
A parser takes the raw value and returns the typed one, or raises ``ValueError`` saying what
is wrong; :meth:`Settings.from_config` turns that into a
:class:`~flask_maestrano.errors.ConfigurationError` naming the key.
"""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from .errors import ConfigurationError
from .presets import MIGRATION_POLICIES

T = TypeVar("T")
#: Raw configuration value -> typed value; raises ``ValueError`` with the problem.
Parser = Callable[[Any], T]

PREFIX = "MAESTRANO_"

_TRUE = ("true", "1")
_FALSE = ("false", "0")
_PROXY_SCHEMES = ("http", "https", "socks4", "socks4a", "socks5", "socks5h")
_STORE_SCHEMES = ("redis://", "rediss://", "unix://")


def _shown(value: Any) -> str:
    """A value for an error message: short strings and numbers as they are, else the type."""
    if isinstance(value, str):
        return repr(value) if len(value) <= 40 else repr(value[:40] + "...")
    if isinstance(value, bool | int | float) or value is None:
        return repr(value)
    return f"a {type(value).__name__}"


# -- parsers ------------------------------------------------------------------------------------


def flag(value: Any) -> bool:
    """True/False, the strings ``"true"``/``"false"``/``"1"``/``"0"`` (any case) or 1/0."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError(f'must be true or false (True/False, "true"/"false", "1"/"0"), got {_shown(value)}')


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError
    number = float(value)  # strings too: "2.5", " 10 "
    if not math.isfinite(number):
        raise ValueError
    return number


def seconds(*, minimum: float = 0.0, allow_zero: bool = False) -> Parser[float]:
    """A number of seconds (or a numeric string) above ``minimum`` (or equal if ``allow_zero``)."""
    bound = f">= {minimum:g}" if allow_zero else f"> {minimum:g}"

    def parse(value: Any) -> float:
        try:
            number = _number(value)
        except ValueError:
            raise ValueError(f"must be a number {bound}, got {_shown(value)}") from None
        if number < minimum or (number == minimum and not allow_zero):
            raise ValueError(f"must be a number {bound}, got {_shown(value)}")
        return number

    return parse


def fraction(value: Any) -> float:
    """A number from 0 to 1 (or a numeric string)."""
    try:
        number = _number(value)
    except ValueError:
        raise ValueError(f"must be a number from 0 to 1, got {_shown(value)}") from None
    if not 0.0 <= number <= 1.0:
        raise ValueError(f"must be a number from 0 to 1, got {_shown(value)}")
    return number


def count(*, minimum: int) -> Parser[int]:
    """A whole number (or a numeric string) of at least ``minimum``."""

    def parse(value: Any) -> int:
        problem = f"must be a whole number >= {minimum}, got {_shown(value)}"
        try:
            number = _number(value)
        except ValueError:
            raise ValueError(problem) from None
        if not number.is_integer() or number < minimum:
            raise ValueError(problem)
        return int(number)

    return parse


def choice(*allowed: str) -> Parser[str]:
    """One of ``allowed`` (exactly)."""

    def parse(value: Any) -> str:
        if isinstance(value, str) and value in allowed:
            return value
        names = " or ".join(repr(name) for name in allowed)
        raise ValueError(f"must be {names}, got {_shown(value)}")

    return parse


def optional(parse: Parser[T]) -> Parser[T | None]:
    """``None``, or what ``parse`` accepts."""

    def parse_optional(value: Any) -> T | None:
        return None if value is None else parse(value)

    return parse_optional


def name(value: Any) -> str:
    """A non-empty string."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"must be a non-empty string, got {_shown(value)}")
    return value


def path(value: Any) -> str:
    """A file path (string or ``os.PathLike``); the file need not exist yet."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value.strip() or "\0" in value:
        raise ValueError(f"must be a file path, got {_shown(value)}")
    return value


def landing(value: Any) -> str:
    """Where to send a user: a path of this site (``/dashboard``) or an http(s) URL."""
    if isinstance(value, str):
        if value.startswith("/") and not value.startswith("//") and "\\" not in value:
            return value
        parts = urlsplit(value)
        if parts.scheme in ("http", "https") and parts.netloc:
            return value
    raise ValueError(f"must be a path starting with '/' or an http(s) URL, got {_shown(value)}")


def collection_names(value: Any) -> tuple[str, ...]:
    """Connec! collection names from a list (any iterable) or a comma-separated string."""
    if isinstance(value, str):
        items: list[Any] = value.split(",")
    elif isinstance(value, Iterable) and not isinstance(value, Mapping | bytes):
        items = list(value)
    else:
        raise ValueError(f"must be a list or a comma-separated string, got {_shown(value)}")
    names = tuple(str(item).strip() for item in items if str(item).strip())
    for item in names:
        if "/" in item or item.startswith("."):
            raise ValueError(f"not a Connec! collection name: {item!r}")
    return names


def batch_size(value: Any) -> int:
    """A whole number of operations per Connec! ``/batch`` call: 1 to 50."""
    number = count(minimum=1)(value)
    if number > 50:
        raise ValueError(f"must be at most 50 (Connec!'s limit per /batch call), got {number}")
    return number


def preset_objects(value: Any) -> Mapping[str, Any]:
    """Preset name -> preset object (checked in depth by :func:`~flask_maestrano.presets.load_presets`)."""
    # the objects hold API keys: name their type, never their content
    if not isinstance(value, Mapping):
        raise ValueError(f"must map preset names to preset objects, got {type(value).__name__}")
    return MappingProxyType(dict(value))


def proxies(value: Any) -> Mapping[str, str]:
    """``{"https": "http://proxy.internal:3128"}``, as ``requests`` takes them."""
    if not isinstance(value, Mapping):
        raise ValueError(f"must map URL schemes to proxy URLs, got {_shown(value)}")
    for scheme, url in value.items():
        # a proxy URL may carry credentials: name the entry, never its URL
        if not isinstance(scheme, str) or not scheme:
            raise ValueError(f"proxy keys must be URL schemes like 'https', got {_shown(scheme)}")
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in _PROXY_SCHEMES or not parts.hostname:
            raise ValueError(f"the {scheme!r} proxy must be a URL like http://proxy.internal:3128")
    return MappingProxyType(dict(value))


def store_spec(value: Any) -> Any:
    """``None``, a ``redis://`` URL or an object with ``add`` and ``pop``."""
    if value is None or (isinstance(value, str) and value.startswith(_STORE_SCHEMES)):
        return value
    if isinstance(value, str):  # may be a URL with a password: not shown
        raise ValueError("must be None, a redis:// URL or a store object")
    return _with_methods("add", "pop")(value)


def _with_methods(*methods: str) -> Parser[Any]:
    """An object with these methods (an executor, a status store...)."""

    def parse(value: Any) -> Any:
        missing = [method for method in methods if not callable(getattr(value, method, None))]
        if missing:
            wanted = " and ".join(methods)
            raise ValueError(f"must be an object with {wanted} methods, got {type(value).__name__}")
        return value

    return parse


# -- the table ----------------------------------------------------------------------------------


def setting(parse: Parser[T], default: Any, doc: str, *, secret: bool = False) -> T:
    """Declare one setting: its parser, its raw default and a one-line description.

    ``secret`` keeps the value out of ``repr`` (API keys, passwords in URLs).
    """
    return cast(T, field(repr=not secret, metadata={"parse": parse, "default": default, "doc": doc}))


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Every ``MAESTRANO_*`` setting, typed (one line each; see ``docs/config.rst``)."""

    # presets and the developer platform
    presets: Mapping[str, Any] = setting(preset_objects, {}, "preset name -> preset object", secret=True)
    default_preset: str | None = setting(optional(name), None, "preset of routes that carry none")
    auto_configure: bool = setting(flag, False, "fetch presets from the developer platform")
    dev_platform_file: str | None = setting(optional(path), None, "dev_platform.yml path")
    dev_platform_cache: str | None = setting(optional(path), None, "last good developer-platform answer")
    dev_platform_timeout: float = setting(seconds(), 10.0, "seconds to wait for the developer platform")
    # server-side state
    store: Any = setting(store_spec, None, "None, a redis:// URL or a store", secret=True)
    store_timeout: float = setting(seconds(), 2.0, "seconds to wait for a Redis store's answer")
    store_connect_timeout: float = setting(seconds(), 2.0, "seconds to wait for a Redis connection")
    # single sign-on and single logout
    sso_max_size: int = setting(count(minimum=1), 256 * 1024, "largest SAMLResponse body, bytes")
    sso_error: str = setting(choice("redirect", "abort"), "redirect", "how a refused login is answered")
    sso_request_ttl: float = setting(seconds(), 600.0, "seconds an AuthnRequest waits for its answer")
    sso_default_next: str = setting(landing, "/", "where a user lands after login")
    sso_finish_ttl: float = setting(seconds(), 60.0, "seconds a verified login waits for the finish view")
    sso_pending_per_browser: int = setting(count(minimum=1), 4, "sign-ins one browser may have pending")
    sso_epoch_skew: float = setting(
        seconds(allow_zero=True), 30.0, "seconds an assertion may predate the store's epoch"
    )
    sso_migration: str = setting(
        choice(*MIGRATION_POLICIES), "off", "linking new users to local accounts by email"
    )
    sso_link_confirm_view: str | None = setting(
        optional(name), None, "endpoint or path where an owner confirms a link"
    )
    sso_link_ttl: float = setting(seconds(), 900.0, "seconds a pending link waits for its owner")
    openid_timeout: float = setting(seconds(), 10.0, "seconds to wait for the OpenID provider")
    openid_max_age: float = setting(seconds(), 300.0, "seconds an OpenID answer stays acceptable")
    session_check_timeout: float = setting(seconds(), 2.0, "seconds to wait for the session check")
    session_check_fail_open: bool = setting(flag, False, "keep the session when the check fails")
    session_check_retry: float = setting(seconds(), 60.0, "fail-open: seconds before asking again")
    session_check_jitter: float = setting(fraction, 0.1, "share of a recheck delay it may come earlier")
    session_check_breaker_failures: int = setting(
        count(minimum=1), 5, "consecutive failed session checks that open the breaker"
    )
    session_check_breaker_window: float = setting(seconds(), 60.0, "seconds those failures must fall within")
    session_check_breaker_cooldown: float = setting(
        seconds(), 30.0, "seconds the open breaker skips the platform before one probe"
    )
    # outbound calls to the platform (account API, Connec!)
    session_check_max_recheck: float = setting(
        seconds(), 3600.0, "furthest recheck time a session-check answer may grant, seconds ahead"
    )
    session_check_max_size: int = setting(count(minimum=1), 64 * 1024, "largest session-check answer, bytes")
    http_connect_timeout: float = setting(seconds(), 10.0, "seconds to wait for a connection")
    http_read_timeout: float = setting(seconds(), 60.0, "seconds to wait for an account API answer")
    http_retries: int = setting(count(minimum=0), 3, "retries of a failed call")
    http_backoff: float = setting(seconds(allow_zero=True), 0.5, "urllib3 backoff factor")
    http_retry_after_max: float = setting(seconds(allow_zero=True), 30.0, "longest Retry-After wait")
    http_pool_size: int = setting(count(minimum=1), 10, "pooled connections per host")
    http_proxies: Mapping[str, str] | None = setting(
        optional(proxies), None, "proxies for platform calls", secret=True
    )
    # initial Connec! import on a company's first login
    import_on_first_login: bool = setting(flag, True, "import a company's data on its first login")
    import_collections: tuple[str, ...] | None = setting(
        optional(collection_names), None, "collections an import reads"
    )
    import_page_size: int = setting(count(minimum=1), 100, "entities per Connec! page")
    import_executor: Any = setting(optional(_with_methods("submit")), None, "where imports run")
    import_workers: int = setting(count(minimum=1), 2, "threads of the default import executor")
    import_concurrency: int = setting(count(minimum=1), 4, "collections an import reads at once")
    import_status_store: Any = setting(optional(_with_methods("get", "put")), None, "import statuses")
    job_lease: float = setting(seconds(), 30.0, "seconds a running job's lock lives without a heartbeat")
    job_queued_ttl: float = setting(seconds(), 600.0, "seconds a queued job blocks a second start of it")
    # two-way Connec! synchronization (flask_maestrano.syncing)
    sync_overlap: float = setting(seconds(allow_zero=True), 120.0, "seconds an incremental pull reads again")
    sync_batch_size: int = setting(batch_size, 50, "operations per Connec! /batch call (1..50)")
    sync_retries: int = setting(count(minimum=0), 3, "retries of a push that got 429, 5xx or no answer")
    sync_backoff: float = setting(seconds(allow_zero=True), 1.0, "first retry delay of a push, doubling")
    sync_lock_ttl: float = setting(seconds(), 1800.0, "unused: the sync lock is a job lease")
    sync_notify_inline: bool = setting(flag, False, "apply Connec! notifications in the request")
    # inbound calls from the platform
    webhook_max_size: int = setting(count(minimum=1), 16 * 1024 * 1024, "largest webhook body, bytes")

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Settings:
        """Parse every ``MAESTRANO_*`` key of ``config`` (absent keys take their default).

        Raises :class:`~flask_maestrano.errors.ConfigurationError` naming the first key whose
        value is refused, or an unknown ``MAESTRANO_*`` key (a typo would otherwise be ignored).
        """
        known = keys()
        for key in config:
            if isinstance(key, str) and key.startswith(PREFIX) and key not in known:
                # compared without the common prefix, which makes every key look alike
                names = [known_key.removeprefix(PREFIX) for known_key in known]
                close = difflib.get_close_matches(key.removeprefix(PREFIX), names, n=1)
                hint = (
                    f"; did you mean {PREFIX}{close[0]}?"
                    if close
                    else f" (known: {', '.join(sorted(known))})"
                )
                raise ConfigurationError(f"unknown setting{hint}", key=key)
        values: dict[str, Any] = {}
        for item in fields(cls):
            key = PREFIX + item.name.upper()
            raw = config[key] if key in config else item.metadata["default"]
            try:
                values[item.name] = item.metadata["parse"](raw)
            except ValueError as exc:
                raise ConfigurationError(str(exc), key=key) from None
        return cls(**values)


def keys() -> dict[str, Any]:
    """Every ``MAESTRANO_*`` key with its raw default, in declaration order."""
    return {PREFIX + item.name.upper(): item.metadata["default"] for item in fields(Settings)}
