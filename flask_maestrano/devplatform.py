"""Auto-configuration from the developer platform (PLATFORM.md 1.7).

The developer platform answers ``GET <host><api_path>`` (HTTP Basic with the
environment's key and secret) with ``{"marketplaces": [...]}``, one object per
marketplace; each becomes a preset named after its ``marketplace`` key.

Inputs come from a ``dev_platform.yml`` file and the ``MNO_DEVPL_*`` environment
variables (variables win). ``api_path`` may be the Ruby style (ending in
``/marketplaces``) or the Java/PHP base path (``/api/config/v1``); both work.

The last good answer is kept on disk (mode 0600: it holds API keys), so an app can still
boot when the platform is down; the log says so when it happens.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml

from .errors import ConfigurationError, DevPlatformError
from .http import plain_session
from .presets import Preset

log = logging.getLogger("flask_maestrano")

ENV_VARS: Mapping[str, str] = {
    "host": "MNO_DEVPL_HOST",
    "api_path": "MNO_DEVPL_API_PATH",
    "env_name": "MNO_DEVPL_ENV_NAME",
    "api_key": "MNO_DEVPL_ENV_KEY",
    "api_secret": "MNO_DEVPL_ENV_SECRET",
}


@dataclass(frozen=True, slots=True)
class DevPlatformSettings:
    """Where and how to reach the developer platform."""

    host: str
    api_path: str
    env_name: str
    api_key: str
    api_secret: str = field(repr=False)

    @classmethod
    def load(
        cls, path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
    ) -> DevPlatformSettings:
        """Read ``path`` (YAML, optional) then the ``MNO_DEVPL_*`` variables over it."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        absent_file = None
        if path is not None:
            if Path(path).exists():
                values.update(_read_yaml(Path(path)))
            else:  # fine when the variables supply everything
                absent_file = Path(path)
        for name, var in ENV_VARS.items():
            if environ.get(var):
                values[name] = environ[var]
        missing = [name for name in ENV_VARS if not values.get(name)]
        if missing:
            hint = ", ".join(f"{n} ({ENV_VARS[n]})" for n in missing)
            where = f" ({absent_file} does not exist)" if absent_file else ""
            raise DevPlatformError(f"Missing developer platform configuration: {hint}{where}")
        bad = [name for name in ENV_VARS if not isinstance(values[name], str)]
        if bad:
            raise DevPlatformError(f"Developer platform settings must be strings: {', '.join(bad)}")
        return cls(**{name: values[name] for name in ENV_VARS})

    @property
    def url(self) -> str:
        """The marketplaces URL, from either ``api_path`` convention."""
        stripped = self.api_path.strip("/")
        path = f"/{stripped}" if stripped else ""
        if not path.endswith("/marketplaces"):
            path += "/marketplaces"
        return self.host.rstrip("/") + path


def environment_configured(environ: Mapping[str, str] | None = None) -> bool:
    """Whether all five ``MNO_DEVPL_*`` variables are set."""
    environ = os.environ if environ is None else environ
    return all(environ.get(var) for var in ENV_VARS.values())


def check_environment(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the ``MNO_DEVPL_*`` variables configure a developer platform, refusing half of it.

    ``True`` when all five are set, ``False`` when none is and no other ``MNO_DEVPL_*``
    variable is. Anything in between (one missing, empty or misspelt) raises
    :class:`~flask_maestrano.errors.DevPlatformError` naming what is missing and which
    variables are unknown, so an app does not silently fall back to another configuration.

    >>> check_environment({"MNO_DEVPL_HOST": "https://developer.maestrano.com"})  # doctest: +SKIP
    DevPlatformError: Incomplete developer platform configuration: MNO_DEVPL_API_PATH, ... not set
    """
    environ = os.environ if environ is None else environ
    missing = [var for var in ENV_VARS.values() if not environ.get(var)]
    known = set(ENV_VARS.values())
    unknown = sorted(name for name in environ if name.startswith("MNO_DEVPL_") and name not in known)
    if not missing and not unknown:
        return True
    if len(missing) == len(ENV_VARS) and not unknown:
        return False
    parts = []
    if missing:
        parts.append(f"{', '.join(missing)} not set (or empty)")
    if unknown:
        parts.append(f"unknown variable(s) {', '.join(unknown)} (misspelt?)")
    raise DevPlatformError(
        f"Incomplete developer platform configuration: {'; '.join(parts)}. Set all of "
        f"{', '.join(ENV_VARS.values())}, or none of them."
    )


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DevPlatformError(f"Cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        # PyYAML's message quotes the offending line, which may be the secret's: say where only
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "cannot be parsed"
        raise DevPlatformError(f"{path} is not valid YAML: {problem}{where}") from None
    if not isinstance(data, dict):
        raise DevPlatformError(f"{path} must hold a mapping with dev_platform and environment")
    platform = data.get("dev_platform") or {}
    environment = data.get("environment") or {}
    if not isinstance(platform, dict) or not isinstance(environment, dict):
        raise DevPlatformError(f"{path}: dev_platform and environment must be mappings")
    return {
        "host": platform.get("host"),
        "api_path": platform.get("api_path"),
        "env_name": environment.get("name"),
        "api_key": environment.get("api_key"),
        "api_secret": environment.get("api_secret"),
    }


def fetch_marketplaces(
    settings: DevPlatformSettings, *, timeout: float = 10.0, proxies: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """GET the marketplaces list. Raises :class:`~flask_maestrano.errors.DevPlatformError`
    with a secret-free message.

    Like every other platform call, only ``proxies`` (``MAESTRANO_HTTP_PROXIES``) is used:
    environment proxy variables and ``.netrc`` are ignored.
    """
    with plain_session(proxies=proxies) as session:  # the extension's one HTTP stack
        return _fetch(session, settings, timeout)


def _fetch(session: requests.Session, settings: DevPlatformSettings, timeout: float) -> list[dict[str, Any]]:
    try:
        response = session.get(
            settings.url,
            auth=(settings.api_key, settings.api_secret),
            headers={"Accept": "application/json", "Content-Type": "application/json"},
            timeout=timeout,
        )
    except requests.Timeout:
        raise DevPlatformError(f"Developer platform {settings.host} did not answer in {timeout:g}s") from None
    except requests.RequestException as exc:
        raise DevPlatformError(
            f"Developer platform {settings.host} is unreachable ({type(exc).__name__})"
        ) from None
    if response.status_code == 401:
        raise DevPlatformError(
            f"Developer platform {settings.host} rejected the environment credentials "
            f"(key {settings.api_key!r}; HTTP 401)"
        )
    if response.status_code >= 400:
        raise DevPlatformError(f"Developer platform {settings.host} answered HTTP {response.status_code}")
    try:
        body = response.json()
    except ValueError:
        raise DevPlatformError(
            f"Developer platform {settings.host} answered a body that is not JSON "
            f"(HTTP {response.status_code}, {len(response.content)} bytes)"
        ) from None
    return parse_marketplaces(body, source=settings.host)


def parse_marketplaces(body: Any, *, source: str = "developer platform") -> list[dict[str, Any]]:
    """The marketplace objects of a developer-platform answer (a list, or a single object)."""
    if not isinstance(body, dict):
        raise DevPlatformError(f"{source}: the answer is not a JSON object")
    if "error" in body:
        raise DevPlatformError(f"{source}: the platform answered an error: {str(body['error'])[:200]}")
    if "marketplaces" not in body:
        raise DevPlatformError(f"{source}: the answer has no 'marketplaces' key")
    marketplaces = body["marketplaces"]
    if isinstance(marketplaces, dict):
        marketplaces = [marketplaces]
    if not isinstance(marketplaces, list) or not all(isinstance(m, dict) for m in marketplaces):
        raise DevPlatformError(f"{source}: 'marketplaces' must be a list of objects")
    for index, marketplace in enumerate(marketplaces):
        if not isinstance(marketplace.get("marketplace"), str) or not marketplace["marketplace"]:
            raise DevPlatformError(f"{source}: marketplace #{index} has no 'marketplace' name")
    return marketplaces


def presets_from_marketplaces(marketplaces: list[dict[str, Any]], *, source: str) -> dict[str, Preset]:
    """One preset per marketplace; its ``environment`` is the marketplace name, as in the Ruby SDK."""
    presets = {}
    for marketplace in marketplaces:
        name = marketplace["marketplace"]
        data = dict(marketplace)
        data["environment"] = name
        presets[name] = Preset.from_dict(name, data, source=source, strict=False)
    return presets


def _save_cache(path: Path, marketplaces: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = json.dumps({"saved_at": time.time(), "marketplaces": marketplaces})
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".maestrano-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(payload)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _load_cache(path: Path) -> tuple[float, list[dict[str, Any]]] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return float(data["saved_at"]), parse_marketplaces(data, source=str(path))
    except (OSError, ValueError, KeyError, TypeError, DevPlatformError):
        return None


def auto_configure(
    settings: DevPlatformSettings,
    *,
    cache_path: str | os.PathLike[str] | None = None,
    timeout: float = 10.0,
    proxies: Mapping[str, str] | None = None,
) -> dict[str, Preset]:
    """Fetch the presets from the developer platform, falling back to the last good answer.

    Configuration errors in the answer (a marketplace without ``api.id``...) are raised as
    :class:`~flask_maestrano.errors.ConfigurationError` and never fall back: a broken answer
    is not "platform down".
    """
    cache = Path(cache_path) if cache_path is not None else None
    try:
        marketplaces = fetch_marketplaces(settings, timeout=timeout, proxies=proxies)
    except DevPlatformError as exc:
        cached = _load_cache(cache) if cache is not None else None
        if cached is None:
            raise DevPlatformError(f"Error while fetching dynamic configuration: {exc}") from None
        saved_at, marketplaces = cached
        log.warning(
            "Maestrano: %s; booting from the last good configuration in %s (saved %s)",
            exc,
            cache,
            time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(saved_at)),
        )
        return presets_from_marketplaces(marketplaces, source=f"dev_platform_cache:{cache}")
    presets = presets_from_marketplaces(marketplaces, source=f"dev_platform:{settings.host}")
    log.info("Maestrano: configured %d preset(s) from %s", len(presets), settings.host)
    if cache is not None:
        try:
            _save_cache(cache, marketplaces)
        except OSError as exc:
            log.warning("Maestrano: could not save the configuration cache %s: %s", cache, exc.strerror)
        else:
            log.info("Maestrano: kept this configuration in %s for when the platform is down", cache)
    return presets


__all__ = [
    "ConfigurationError",
    "DevPlatformSettings",
    "auto_configure",
    "check_environment",
    "environment_configured",
    "fetch_marketplaces",
    "parse_marketplaces",
    "presets_from_marketplaces",
]
