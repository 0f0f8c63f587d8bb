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
        presets = auto_configure(settings, timeout=config["MAESTRANO_DEV_PLATFORM_TIMEOUT"])
    except MaestranoError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{settings.url}: {len(presets)} marketplace(s)")
    for name, preset in sorted(presets.items()):
        click.echo(f"{name}\tapi.id={preset.api.id}\tapp.host={preset.app.host}\tidp={preset.sso.idp}")
