"""The :class:`Maestrano` extension object: ``init_app`` wires every concern into the app."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, TypeVar

from flask import Blueprint, Flask

from . import deployment, jobs, metadata, webhooks
from .account.client import AccountClient
from .breaker import breaker_for
from .callbacks import Callbacks
from .cli import maestrano_cli
from .config import apply_defaults
from .connec.client import ConnecClient
from .connec.importer import ImportService, ImportStatus
from .devplatform import DevPlatformSettings, auto_configure
from .errors import ConfigurationError, StoreUnavailable
from .http import SessionPool, redact_secrets_in_logs
from .presets import Preset, load_presets
from .routing import PresetRouter
from .settings import Settings
from .sso import migration, openid_views, views
from .sso.saml import SamlCache
from .state import MaestranoState as MaestranoState
from .state import get_state
from .store import store_from_config
from .web import exempt_before_csrf, exempt_from_csrf, store_unavailable

log = logging.getLogger("flask_maestrano")

F = TypeVar("F", bound=Callable[..., Any])


def _default_preset(settings: Settings, presets: Mapping[str, Preset]) -> str | None:
    name = settings.default_preset
    if name is not None:
        if name not in presets:
            raise ConfigurationError(
                f"names no configured preset ({', '.join(sorted(presets)) or 'none'})",
                key="MAESTRANO_DEFAULT_PRESET",
            )
        return str(name)
    if "production" in presets:
        return "production"
    if len(presets) == 1:
        return next(iter(presets))
    return None


#: The app's registries ``init_app`` may add to (Flask's ``Scaffold`` and ``App``).
_REGISTRIES = (
    "blueprints",
    "extensions",
    "view_functions",
    "error_handler_spec",
    "before_request_funcs",
    "after_request_funcs",
    "teardown_request_funcs",
    "template_context_processors",
    "url_value_preprocessors",
    "url_default_functions",
    "teardown_appcontext_funcs",
    "shell_context_processors",
)


def _copy_containers(value: Any) -> Any:
    """Copy nested dicts and lists, keeping the functions and objects they hold."""
    if isinstance(value, dict):
        copied = value.copy()  # a defaultdict stays one
        for key, item in value.items():
            copied[key] = _copy_containers(item)
        return copied
    if isinstance(value, list):
        return [_copy_containers(item) for item in value]
    return value


class _Registrations:
    """What an app had registered before ``init_app``, to put back if ``init_app`` fails."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.registries = {name: _copy_containers(getattr(app, name)) for name in _REGISTRIES}
        self.commands = dict(app.cli.commands)
        self.rules = list(app.url_map.iter_rules())

    def restore(self) -> None:
        app = self.app
        for name, saved in self.registries.items():
            registry = getattr(app, name)
            if isinstance(registry, dict):
                registry.clear()
                registry.update(saved)
            else:
                registry[:] = saved
        app.cli.commands.clear()
        app.cli.commands.update(self.commands)
        if {id(rule) for rule in app.url_map.iter_rules()} != {id(rule) for rule in self.rules}:
            self._restore_rules()

    def _restore_rules(self) -> None:
        """A Werkzeug map cannot drop rules: rebuild it with the rules it had before."""
        old = self.app.url_map
        new = type(old)(
            default_subdomain=old.default_subdomain,
            strict_slashes=old.strict_slashes,
            merge_slashes=old.merge_slashes,
            redirect_defaults=old.redirect_defaults,
            converters=old.converters,
            sort_parameters=old.sort_parameters,
            sort_key=old.sort_key,
            host_matching=old.host_matching,
        )
        for rule in self.rules:
            rule.map = None  # type: ignore[assignment]  # unbound, so the new map can bind it
            new.add(rule)
        self.app.url_map = new


class Maestrano:
    """Connects a Flask application to the Maestrano platform.

    >>> from flask import Flask
    >>> from flask_maestrano import Maestrano
    >>> maestrano = Maestrano()
    >>> def create_app():
    ...     app = Flask(__name__)
    ...     app.config["MAESTRANO_PRESETS"] = {"production": {
    ...         "app": {"host": "https://myapp.example"},
    ...         "api": {"id": "app-1", "key": "secret"}}}
    ...     maestrano.init_app(app)
    ...     return app

    Required behaviour is a decorator callback with one implementation (for example
    :meth:`find_or_create_user`); observation is a signal (:mod:`flask_maestrano.signals`).
    """

    def __init__(self, app: Flask | None = None) -> None:
        #: the host's callbacks, set by the decorators below
        self.callbacks = Callbacks()
        if app is not None:
            self.init_app(app)

    # -- set-up ---------------------------------------------------------------------

    def init_app(self, app: Flask) -> None:
        """Check the settings, build the presets and register the views and hooks.

        Every check runs before anything is registered; if a registration still fails, the
        app is left as it was found, so ``init_app`` can be called again once fixed.
        """
        if "maestrano" in app.extensions:
            raise RuntimeError(
                "flask_maestrano is already initialised on this app; call init_app once per app"
            )
        settings = Settings.from_config(app.config)
        redact_secrets_in_logs()  # before auto-configuration makes its first call
        presets = self._load_presets(app, settings)
        if not presets:
            raise ConfigurationError(
                "no preset configured: set MAESTRANO_PRESETS or MAESTRANO_AUTO_CONFIGURE",
                key="MAESTRANO_PRESETS",
            )
        default = _default_preset(settings, presets)
        frozen = MappingProxyType(presets)
        sessions = SessionPool(settings)
        store = store_from_config(
            settings.store, timeout=settings.store_timeout, connect_timeout=settings.store_connect_timeout
        )
        state = MaestranoState(
            extension=self,
            settings=settings,
            presets=frozen,
            default_preset=default,
            router=PresetRouter(frozen, default),
            store=store,
            sessions=sessions,
            callbacks=self.callbacks,
            imports=ImportService(
                settings,
                sessions,
                self.callbacks,
                frozen,
                sender=app,
                context=app.app_context,
                backend=jobs.backend_for(store),
            ),
            saml=SamlCache(),
            breaker=breaker_for(
                store,
                failures=settings.session_check_breaker_failures,
                window=settings.session_check_breaker_window,
                cooldown=settings.session_check_breaker_cooldown,
                probe_ttl=settings.session_check_timeout + 1.0,
            ),
        )
        migration.check(state)
        blueprint = Blueprint("maestrano", __name__)
        blueprint.url_value_preprocessor(exempt_before_csrf)  # Flask-WTF initialised later
        metadata.register(blueprint, state.router)
        webhooks.register(blueprint, state.router)
        views.register(blueprint, state.router)
        openid_views.register(blueprint, state.router)
        registrations = _Registrations(app)
        try:
            app.extensions["maestrano"] = state
            app.register_blueprint(blueprint)
            views.setup(app, state)
            app.cli.add_command(maestrano_cli)
            exempt_from_csrf(app, blueprint)  # the platform's POSTs carry no CSRF token
            app.register_error_handler(StoreUnavailable, store_unavailable)  # a 503, never a 500
            deployment.setup(app, state)  # last: a signal connection, not undone by restore()
        except BaseException:
            registrations.restore()
            raise
        apply_defaults(app.config)
        state.close_at_exit()

    def _load_presets(self, app: Flask, settings: Settings) -> dict[str, Preset]:
        presets = load_presets(settings.presets)
        if settings.auto_configure:
            platform = DevPlatformSettings.load(settings.dev_platform_file)
            cache = settings.dev_platform_cache or os.path.join(
                app.instance_path, "maestrano-dev-platform.json"
            )
            fetched = auto_configure(
                platform,
                cache_path=cache,
                timeout=settings.dev_platform_timeout,
                proxies=settings.http_proxies,
            )
            for name in fetched.keys() & presets.keys():
                log.warning(
                    "Maestrano: preset %r from the developer platform replaces MAESTRANO_PRESETS", name
                )
            presets.update(fetched)
        return presets

    # -- accessors ------------------------------------------------------------------

    @property
    def presets(self) -> Mapping[str, Preset]:
        """The current app's presets, by name."""
        return get_state().presets

    def preset(self, name: str | None = None) -> Preset:
        """The current app's preset ``name``, or its default preset."""
        return get_state().preset(name)

    # -- callbacks ------------------------------------------------------------------

    def _callback(self, name: str, fn: F) -> F:
        return self.callbacks.register(name, fn)

    # -- inbound calls: account webhooks and Connec! entities (webhooks.py, entities.py)

    def on_group_cancelled(self, fn: F) -> F:
        """Register ``fn(group_id, preset)``, called when the platform cancels a group.

        Runs before :data:`~flask_maestrano.signals.group_cancelled`; if it raises, the
        webhook answers 500 and the platform delivers again, so make it idempotent.

        >>> @maestrano.on_group_cancelled  # doctest: +SKIP
        ... def cancel(group_id, preset):
        ...     Company.query.filter_by(uid=group_id).delete()
        """
        return self._callback("on_group_cancelled", fn)

    def on_member_removed(self, fn: F) -> F:
        """Register ``fn(group_id, user_id, preset)``, called when a member leaves a group.

        ``user_id`` is masked per the preset's creation mode (``usr-1.cld-2`` in virtual
        mode), so it is the uid the app stored at login. Make it idempotent.

        >>> @maestrano.on_member_removed  # doctest: +SKIP
        ... def remove(group_id, user_id, preset):
        ...     Membership.query.filter_by(group_uid=group_id, user_uid=user_id).delete()
        """
        return self._callback("on_member_removed", fn)

    def on_entities(self, fn: F) -> F:
        """Register ``fn(preset, group_id, collection, entities, source)`` for Connec! entities.

        Called once per (group, collection) batch of a notification (``source`` is
        ``"notification"``) or of the initial import (``"import"``), before
        :data:`~flask_maestrano.signals.entities_received`. ``entities`` is a sequence of
        :class:`~flask_maestrano.entities.Entity` (:class:`~flask_maestrano.entities.Entities`,
        or a list when :meth:`entity_lookup` is set). Make it idempotent.

        >>> @maestrano.on_entities  # doctest: +SKIP
        ... def upsert(preset, group_id, collection, entities, source):
        ...     for entity in entities:
        ...         contact = entity.known or Contact(connec_id=entity.id, group_uid=group_id)
        ...         contact.name = entity.data.get("name")
        ...         db.session.add(contact)
        ...     db.session.commit()
        """
        return self._callback("on_entities", fn)

    def entity_lookup(self, fn: F) -> F:
        """Register ``fn(preset, collection, entity) -> host object or None``.

        The result is :attr:`Entity.known <flask_maestrano.entities.Entity.known>` of the
        entity handed to :meth:`on_entities` and the signal: ``None`` means a new entity
        (create), anything else the object the host already has (update).

        >>> @maestrano.entity_lookup  # doctest: +SKIP
        ... def lookup(preset, collection, entity):
        ...     return Contact.query.filter_by(connec_id=entity.id).first()
        """
        return self._callback("entity_lookup", fn)

    # -- single sign-on loaders (flask_maestrano.sso) ---------------------------------

    def find_or_create_group(self, fn: F) -> F:
        """Register ``fn(group, preset) -> (host_group, created)``, called at each login.

        ``group`` is a :class:`~flask_maestrano.sso.identity.Group` from the signed
        assertion. Raise :class:`~flask_maestrano.errors.SsoError` to refuse the login.

        >>> @maestrano.find_or_create_group  # doctest: +SKIP
        ... def load_group(group, preset):
        ...     found = Company.query.filter_by(uid=group.uid, tenant=preset.name).first()
        ...     if found:
        ...         return found, False
        ...     company = Company(uid=group.uid, tenant=preset.name, name=group.name)
        ...     db.session.add(company)
        ...     return company, True
        """
        return self._callback("find_or_create_group", fn)

    def find_or_create_user(self, fn: F) -> F:
        """Register ``fn(user, host_group, preset) -> (host_user, created)``.

        ``user`` is a :class:`~flask_maestrano.sso.identity.User`; store
        ``user.app_uid`` and ``user.app_email`` (real or virtual per the creation mode).
        ``host_user`` is what ``flask_login.login_user`` receives.

        >>> @maestrano.find_or_create_user  # doctest: +SKIP
        ... def load_user(user, group, preset):
        ...     found = User.query.filter_by(uid=user.app_uid, tenant=preset.name).first()
        ...     if found:
        ...         return found, False
        ...     account = User(uid=user.app_uid, tenant=preset.name, email=user.app_email)
        ...     db.session.add(account)
        ...     return account, True
        """
        return self._callback("find_or_create_user", fn)

    def link_membership(self, fn: F) -> F:
        """Register ``fn(host_user, host_group, membership, preset) -> None``.

        ``membership`` is a :class:`~flask_maestrano.sso.identity.Membership` carrying
        the user's ``role`` in the group; create or update the link.

        >>> @maestrano.link_membership  # doctest: +SKIP
        ... def link(user, group, membership, preset):
        ...     link = Member.query.filter_by(user_id=user.id, company_id=group.id).first()
        ...     if link is None:
        ...         link = Member(user=user, company=group)
        ...         db.session.add(link)
        ...     link.role = membership.role
        ...     db.session.commit()
        """
        return self._callback("link_membership", fn)

    def link_account(self, fn: F) -> F:
        """Register ``fn(account_id, link, preset) -> bool``: write a confirmed migration link.

        Called by :func:`~flask_maestrano.sso.migration.confirm_link` once the existing
        owner proved ownership of the local account ``account_id``; ``link`` is the
        :class:`~flask_maestrano.sso.migration.PendingLink` (``uid``, ``email``...). Store
        ``link.uid`` (and the preset) on the account and return ``True``; return ``False``
        for an account that already has a Maestrano uid (never relink it).
        :func:`~flask_maestrano.contrib.sqlalchemy.install_loaders` registers one.

        >>> @maestrano.link_account  # doctest: +SKIP
        ... def link(account_id, link, preset):
        ...     query = User.query.filter_by(id=account_id, uid=None)  # never relink
        ...     linked = query.update({"uid": link.uid, "tenant": preset.name}) == 1
        ...     db.session.commit()
        ...     return linked
        """
        return self._callback("link_account", fn)

    # -- outbound calls: account API, Connec!, initial import ---------------------------

    def account(self, preset: str | None = None) -> AccountClient:
        """The account API client of ``preset`` (default preset when ``None``).

        >>> maestrano.account().bills.list(group_id="cld-1")  # doctest: +SKIP
        """
        state = get_state()
        found = state.preset(preset)
        return AccountClient(found, state.sessions.api(found), timeout=state.sessions.timeout())

    def connec(self, group_id: str, preset: str | None = None, **options: Any) -> ConnecClient:
        """The Connec! client of ``group_id`` as ``preset``; ``options`` go to
        :class:`~flask_maestrano.connec.ConnecClient` (e.g. ``external_ids=True``).

        >>> maestrano.connec("cld-1").get("organizations", top=10)  # doctest: +SKIP
        """
        state = get_state()
        return state.imports.client(state.preset(preset), group_id, **options)

    def start_import(self, group_id: str, preset: str | None = None, collections: Any = None) -> Any:
        """Queue the Connec! import of ``group_id`` off the request; returns the executor's
        future (see :func:`flask_maestrano.importer.start_import`)."""
        state = get_state()
        return state.imports.start(state.preset(preset), group_id, collections)

    def run_import(
        self, group_id: str, preset: str | None = None, collections: Any = None, *, restart: bool = False
    ) -> ImportStatus:
        """Import ``group_id`` now, in this thread; returns the final status (failures recorded)."""
        state = get_state()
        return state.imports.run(state.preset(preset), group_id, collections, restart=restart)

    def import_status(self, group_id: str, preset: str | None = None) -> ImportStatus | None:
        """The latest :class:`~flask_maestrano.importer.ImportStatus` of ``group_id``, or ``None``."""
        state = get_state()
        return state.imports.status(state.preset(preset).name, group_id)
