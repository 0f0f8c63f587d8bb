"""The extension object: init_app, per-app state, defaults, default preset, isolation."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
from flask import Blueprint, Flask, url_for

from flask_maestrano import Maestrano, get_state, signals
from flask_maestrano.config import DEFAULTS, apply_defaults
from flask_maestrano.errors import ConfigurationError
from flask_maestrano.extension import MaestranoState
from flask_maestrano.store import MemoryStore
from tests.support.presets import preset_data


def bare_app(**config: object) -> Flask:
    app = Flask("bare")
    app.config.update({"SECRET_KEY": "x", "MAESTRANO_PRESETS": {"production": preset_data()}, **config})
    return app


def test_state_lives_in_app_extensions() -> None:
    maestrano = Maestrano()
    app = bare_app()
    maestrano.init_app(app)
    state = app.extensions["maestrano"]
    assert isinstance(state, MaestranoState)
    assert state is get_state(app)
    assert state.extension is maestrano
    assert isinstance(state.store, MemoryStore)
    assert list(state.presets) == ["production"]
    assert not hasattr(maestrano, "app")


def test_constructor_with_app_initialises_it() -> None:
    app = bare_app()
    maestrano = Maestrano(app)
    assert get_state(app).extension is maestrano


def test_second_init_app_is_refused() -> None:
    app = bare_app()
    maestrano = Maestrano(app)
    with pytest.raises(RuntimeError, match="already initialised on this app; call init_app once per app"):
        maestrano.init_app(app)
    with pytest.raises(RuntimeError, match="already initialised"):
        Maestrano(app)


def test_use_before_init_app_is_explained() -> None:
    maestrano = Maestrano()
    app = bare_app()
    with app.app_context():
        with pytest.raises(RuntimeError, match=r"not initialised on this app: call Maestrano\(app\) or"):
            _ = maestrano.presets
        with pytest.raises(RuntimeError, match=r"maestrano\.init_app"):
            maestrano.preset()
    with pytest.raises(RuntimeError, match="not initialised"):
        get_state(app)


def _registered(app: Flask) -> dict[str, Any]:
    """Everything init_app registers on an app, in a comparable form."""
    return {
        "blueprints": dict(app.blueprints),
        "rules": sorted((rule.rule, str(rule.endpoint)) for rule in app.url_map.iter_rules()),
        "view_functions": dict(app.view_functions),
        "before_request": {key: list(funcs) for key, funcs in app.before_request_funcs.items() if funcs},
        "extensions": dict(app.extensions),
        "commands": dict(app.cli.commands),
        "login_receivers": list(signals.login_succeeded.receivers_for(app)),
        "config": dict(app.config),
    }


def test_a_failed_init_app_leaves_nothing_behind_and_can_be_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    app = bare_app(MAESTRANO_PRESETS={"production": preset_data(app={"host": "broken"})})

    @app.route("/dashboard")
    def dashboard() -> str:
        return "dashboard"

    maestrano = Maestrano()
    before = _registered(app)
    # an invalid preset is refused before anything is registered
    with pytest.raises(ConfigurationError, match=r"app\.host"):
        maestrano.init_app(app)
    assert _registered(app) == before

    # a failure late in init_app, after the blueprint and the hooks are registered
    app.config["MAESTRANO_PRESETS"] = {"production": preset_data()}
    before = _registered(app)
    seen_at_failure: dict[str, Any] = {}

    def failing_add_command(*args: Any, **kwargs: Any) -> None:
        seen_at_failure.update(_registered(app))
        raise RuntimeError("injected failure")

    monkeypatch.setattr(app.cli, "add_command", failing_add_command)
    with pytest.raises(RuntimeError, match="injected failure"):
        maestrano.init_app(app)
    assert "maestrano" in seen_at_failure["blueprints"]
    assert ("/maestrano/metadata", "maestrano.metadata") in seen_at_failure["rules"]
    assert seen_at_failure["before_request"]
    assert seen_at_failure["login_receivers"] == []  # the library never listens to its own signals
    assert _registered(app) == before
    monkeypatch.undo()

    # fixed, the same app takes the same extension, exactly once
    maestrano.init_app(app)
    assert get_state(app).preset().app.host == "http://127.0.0.1:5000"
    assert len(app.before_request_funcs[None]) == 1
    assert (
        len(list(signals.login_succeeded.receivers_for(app))) == 0
    )  # the import starts from the login code, not a receiver
    client = app.test_client()
    assert client.get("/dashboard").get_data(as_text=True) == "dashboard"
    assert client.options("/dashboard").status_code == 200  # the host's rules survived the rollback
    assert client.get("/maestrano/metadata").status_code == 401  # served, asks for credentials


def test_an_init_app_refused_by_flask_leaves_nothing_behind() -> None:
    app = bare_app()
    app.register_blueprint(Blueprint("maestrano", __name__))  # the host took the name
    before = _registered(app)
    with pytest.raises(ValueError, match="The name 'maestrano' is already registered"):
        Maestrano(app)
    assert _registered(app) == before


def test_every_setting_is_defaulted_and_explicit_values_are_kept() -> None:
    app = bare_app(MAESTRANO_DEV_PLATFORM_TIMEOUT=3.0)
    Maestrano(app)
    for key, default in DEFAULTS.items():
        assert key in app.config
        if key not in ("MAESTRANO_PRESETS", "MAESTRANO_DEV_PLATFORM_TIMEOUT"):
            assert app.config[key] == default
    assert app.config["MAESTRANO_DEV_PLATFORM_TIMEOUT"] == 3.0
    assert all(key.startswith("MAESTRANO_") for key in DEFAULTS)


def test_mutable_defaults_are_copied_per_app() -> None:
    first: dict[str, object] = {}
    second: dict[str, object] = {}
    apply_defaults(first)
    apply_defaults(second)
    assert first["MAESTRANO_PRESETS"] == {}
    assert first["MAESTRANO_PRESETS"] is not second["MAESTRANO_PRESETS"]
    assert first["MAESTRANO_PRESETS"] is not DEFAULTS["MAESTRANO_PRESETS"]


def test_one_extension_two_apps_keep_their_own_presets() -> None:
    maestrano = Maestrano()
    one = bare_app(MAESTRANO_PRESETS={"production": preset_data(api={"id": "app-one", "key": "k1"})})
    two = bare_app(MAESTRANO_PRESETS={"acme": preset_data(api={"id": "app-two", "key": "k2"})})
    maestrano.init_app(one)
    maestrano.init_app(two)
    with one.app_context():
        assert maestrano.preset().api.id == "app-one"
        assert list(maestrano.presets) == ["production"]
    with two.app_context():
        assert maestrano.preset().api.id == "app-two"
        assert list(maestrano.presets) == ["acme"]


def test_presets_are_isolated_within_one_app(make_app: Callable[..., Flask]) -> None:
    app = make_app(
        presets={
            "production": preset_data(api={"id": "app-a", "key": "key-a"}),
            "acme": preset_data(
                environment="uat",
                app={"host": "https://acme.example"},
                api={"id": "app-b", "key": "key-b"},
                sso={"creation_mode": "virtual"},
            ),
        }
    )
    state = get_state(app)
    production, acme = state.preset("production"), state.preset("acme")
    assert (production.api.id, acme.api.id) == ("app-a", "app-b")
    assert (production.api.host, acme.api.host) == ("http://localhost:3001", "https://uat.maestrano.io")
    assert (production.consume_url, acme.consume_url) == (
        "http://127.0.0.1:5000/maestrano/auth/saml/consume",
        "https://acme.example/maestrano/auth/saml/consume",
    )
    assert production.mask_user("usr-1", "cld-1") == "usr-1"
    assert acme.mask_user("usr-1", "cld-1") == "usr-1.cld-1"
    assert not production.authenticate("app-b", "key-b")
    assert not acme.authenticate("app-a", "key-a")
    client = app.test_client()
    assert client.get("/maestrano/metadata/acme", auth=("app-b", "key-b")).get_json()["api"]["id"] == "app-b"
    assert client.get("/maestrano/metadata/acme", auth=("app-a", "key-a")).status_code == 401


def test_default_preset_is_production_when_configured(make_app: Callable[..., Flask]) -> None:
    app = make_app(presets={"acme": preset_data(), "production": preset_data()})
    assert get_state(app).default_preset == "production"


def test_default_preset_is_the_only_preset(make_app: Callable[..., Flask]) -> None:
    app = make_app(presets={"acme": preset_data()})
    assert get_state(app).preset().name == "acme"


def test_default_preset_setting(make_app: Callable[..., Flask]) -> None:
    app = make_app(
        presets={"acme": preset_data(), "production": preset_data()}, MAESTRANO_DEFAULT_PRESET="acme"
    )
    assert get_state(app).preset().name == "acme"


def test_no_default_among_several_presets(make_app: Callable[..., Flask]) -> None:
    app = make_app(presets={"acme": preset_data(), "other": preset_data()})
    state = get_state(app)
    assert state.default_preset is None
    with pytest.raises(ConfigurationError, match="several presets and no default"):
        state.preset()
    assert state.preset("other").name == "other"


def test_unknown_preset_lists_the_configured_ones(make_app: Callable[..., Flask]) -> None:
    state = get_state(make_app(presets={"acme": preset_data(), "other": preset_data()}))
    with pytest.raises(
        ConfigurationError, match=r"preset 'nope': unknown preset \(configured: acme, other\)"
    ):
        state.preset("nope")


def test_presets_mapping_is_read_only(make_app: Callable[..., Flask]) -> None:
    state = get_state(make_app())
    with pytest.raises(TypeError):
        state.presets["x"] = state.preset()  # type: ignore[index]


def test_blueprint_and_cli_are_registered(make_app: Callable[..., Flask]) -> None:
    app = make_app()
    assert "maestrano" in app.blueprints
    assert "maestrano" in app.cli.commands
    with app.test_request_context():
        assert url_for("maestrano.metadata") == "/maestrano/metadata"
        assert url_for("maestrano.metadata", preset="production") == "/maestrano/metadata/production"


def test_store_setting_accepts_an_object(make_app: Callable[..., Flask]) -> None:
    store = MemoryStore()
    assert get_state(make_app(MAESTRANO_STORE=store)).store is store


def test_importing_the_package_does_nothing() -> None:
    code = (
        "import logging, threading, flask_maestrano\n"
        "assert threading.active_count() == 1\n"
        "assert not logging.getLogger('flask_maestrano').handlers\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ok\n"
    assert result.stderr == ""


def test_the_http_sessions_and_the_import_pool_close_with_the_state(make_app: Any) -> None:
    app = make_app()
    state = get_state(app)
    preset = state.preset()
    session = state.sessions.api(preset)
    assert state.sessions.api(preset) is session  # one pooled session per preset
    state.close()  # what runs at process exit (weakref.finalize)
    with pytest.raises(RuntimeError, match="shutdown"):
        state.imports.executor.submit(print)
    assert state.sessions.api(preset) is not session  # the closed one is gone
    state.close()  # at most once
