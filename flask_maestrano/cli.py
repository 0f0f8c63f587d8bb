"""``flask maestrano ...`` commands."""

from __future__ import annotations

import json

import click
from flask import current_app
from flask.cli import AppGroup

from .errors import MaestranoError
from .extension import get_state

maestrano_cli = AppGroup("maestrano", help="Maestrano platform integration.")


@maestrano_cli.command("presets")
def presets_command() -> None:
    """List the configured presets and where each came from."""
    state = get_state()
    for name, preset in sorted(state.presets.items()):
        marker = " (default)" if name == state.default_preset else ""
        click.echo(
            f"{name}{marker}\tapi.id={preset.api.id}\tenvironment={preset.environment}\tsource={preset.source}"
        )


@maestrano_cli.command("config")
@click.argument("preset")
def config_command(preset: str) -> None:
    """Show the configuration of PRESET, secrets masked."""
    try:
        found = get_state().preset(preset)
    except MaestranoError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(found.to_dict(), indent=2))


@maestrano_cli.command("autoconfigure")
def autoconfigure_command() -> None:
    """Fetch the presets from the developer platform and report them (nothing is changed)."""
    from .devplatform import DevPlatformSettings, auto_configure

    config = current_app.config
    try:
        settings = DevPlatformSettings.load(config["MAESTRANO_DEV_PLATFORM_FILE"])
        presets = auto_configure(
            settings,
            timeout=config["MAESTRANO_DEV_PLATFORM_TIMEOUT"],
            proxies=config["MAESTRANO_HTTP_PROXIES"],
        )
    except MaestranoError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{settings.url}: {len(presets)} marketplace(s)")
    for name, preset in sorted(presets.items()):
        click.echo(f"{name}\tapi.id={preset.api.id}\tapp.host={preset.app.host}\tidp={preset.sso.idp}")


@maestrano_cli.command("sandbox")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=5001, show_default=True, help="Port to listen on.")
@click.option("--database", type=click.Path(dir_okay=False), help="SQLite file of the sandbox's state.")
@click.option("--app-host", help="Base URL of the app to register as app-sandbox on first run.")
def sandbox_command(host: str, port: int, database: str | None, app_host: str | None) -> None:
    """Run the embedded Maestrano sandbox platform alone.

    Settings prefixed ``SANDBOX_`` in the current app's config (``SANDBOX_APPS``...) are
    passed on; the database defaults to the current app's instance folder.
    """
    import os

    from .sandbox.__main__ import serve

    extra = {key: value for key, value in current_app.config.items() if key.startswith("SANDBOX_")}
    extra.pop("SANDBOX_URL", None)  # the command decides where it listens
    if database is None and not extra.get("SANDBOX_DATABASE"):
        database = os.path.join(current_app.instance_path, "maestrano-sandbox.sqlite3")
    serve(host=host, port=port, database=database, app_host=app_host, extra=extra)


@maestrano_cli.command("import")
@click.argument("group")
@click.option(
    "--preset", "preset_name", help="Preset (marketplace) of the group; default: the default preset."
)
@click.option(
    "--collections", help="Comma-separated collections, e.g. organizations,people (default: subscriptions)."
)
@click.option("--restart", is_flag=True, help="Start over instead of resuming a failed import.")
def import_command(group: str, preset_name: str | None, collections: str | None, restart: bool) -> None:
    """Import GROUP's Connec! data now, with a progress bar per collection.

    A failed import is resumed where it stopped when run again (unless --restart).
    """
    from typing import Any

    from .importer import import_collections, run_import

    state = get_state()
    try:
        preset = state.preset(preset_name)
        wanted = collections if collections is not None else import_collections(current_app, preset)
    except (MaestranoError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    if not wanted:
        raise click.ClickException(
            "nothing to import: pass --collections or subscribe the preset to collections "
            "(webhooks.connec.subscriptions or MAESTRANO_IMPORT_COLLECTIONS)"
        )
    bars: dict[str, Any] = {}

    def on_page(status: Any, page: Any) -> None:
        bar = bars.get(page.collection)
        if bar is None:
            for other in bars.values():
                other.render_finish()
            length = page.total if page.total is not None else len(page.entities)
            bar = click.progressbar(length=max(length, 1), label=page.collection)
            bar.__enter__()
            bars[page.collection] = bar
        bar.update(len(page.entities))

    try:
        status = run_import(current_app, preset, group, wanted, restart=restart, on_page=on_page)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        for bar in bars.values():
            bar.render_finish()
    # in the import's collection order (collections read concurrently finish in any order)
    ordered = [name for name in status.collections if name in status.counts]
    ordered += [name for name in status.counts if name not in ordered]
    counts = ", ".join(f"{name}: {status.counts[name]}" for name in ordered) or "no entities"
    if status.state != "succeeded":
        raise click.ClickException(
            f"import of {group} failed after {status.delivered} entities ({counts}): {status.error}. "
            "Run the command again to resume."
        )
    click.echo(f"imported {group} ({preset.name}): {counts}")
