"""``flask maestrano ...`` commands."""

from __future__ import annotations

import json
import os
from typing import Any

import click
from flask.cli import AppGroup

from . import syncing
from .connec.importer import FAILED, INTERRUPTED, ImportStatus, JobImportStatusStore
from .devplatform import DevPlatformSettings, auto_configure
from .errors import MaestranoError
from .sandbox.__main__ import serve
from .state import current, get_state

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
    configured = get_state().settings
    try:
        settings = DevPlatformSettings.load(configured.dev_platform_file)
        presets = auto_configure(
            settings,
            timeout=configured.dev_platform_timeout,
            proxies=configured.http_proxies,
        )
    except MaestranoError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{settings.url}: {len(presets)} marketplace(s)")
    for name, preset in sorted(presets.items()):
        click.echo(f"{name}\tapi.id={preset.api.id}\tapp.host={preset.app.host}\tidp={preset.sso.idp}")


@maestrano_cli.command("sandbox", with_appcontext=False)
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=5001, show_default=True, help="Port to listen on.")
@click.option(
    "--database",
    type=click.Path(dir_okay=False),
    help="SQLite file of the sandbox's state  [default: instance/maestrano-sandbox.sqlite3]",
)
@click.option(
    "--app-host", help="Base URL of your app (registered or updated)  [default: http://127.0.0.1:5000]"
)
@click.option("--app-id", help="Id (api.id) of your app in the sandbox  [default: app-sandbox]")
@click.option("--app-key", help="API key (api.key) of your app  [default: generated once and kept]")
@click.option(
    "--recheck",
    type=click.FloatRange(min=1),
    help="Seconds until apps check a session again (SANDBOX_SESSION_RECHECK)  [default: 180]",
)
@click.option(
    "--allow-remote",
    is_flag=True,
    help="Allow a --host other machines can reach (the admin page has no login).",
)
@click.option("--print-env", is_flag=True, help="Print the export lines that configure your app, and exit.")
def sandbox_command(database: str | None, **options: Any) -> None:
    """Run the embedded Maestrano sandbox platform for your app.

    It needs no configured extension: run it before your app has any preset. At start (or
    with --print-env, alone) it prints the MNO_DEVPL_* lines that make your app configure
    itself from the sandbox; the app id, key and secrets are kept in the database.
    """
    if database is None:
        database = os.path.join(os.getcwd(), "instance", "maestrano-sandbox.sqlite3")
    try:
        serve(database=database, **options)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


@maestrano_cli.command("sync")
@click.argument("group", required=False)
@click.option(
    "--preset", "preset_name", help="Preset (marketplace) of the group; default: the default preset."
)
@click.option("--full", is_flag=True, help="Read everything, not only what changed since the last run.")
@click.option("--only", "only", multiple=True, help="Only this collection (repeat for several).")
@click.option(
    "--all",
    "every",
    is_flag=True,
    help="Every group with sync on, one after the other, as automatic runs (for cron).",
)
def sync_command(
    group: str | None, preset_name: str | None, full: bool, only: tuple[str, ...], every: bool
) -> None:
    """Synchronize GROUP with Connec! now (both ways), with a progress bar per collection.

    Needs the mappings declared with flask_maestrano.syncing.configure. Takes the group's
    lock: while another run holds it, nothing runs and the command fails. With --all (and no
    GROUP), every group with sync on is synchronized in turn as an automatic run: a group
    that is running elsewhere or in recovery mode is skipped; the command fails if a run failed.
    """
    state = get_state()
    setup = syncing.setup_of(current())
    if setup is None:
        raise click.ClickException("no sync mappings: call flask_maestrano.syncing.configure(app, ...)")
    if every == (group is not None):
        raise click.ClickException("give a GROUP, or --all for every group with sync on")
    names = [name.strip() for item in only for name in item.split(",") if name.strip()]
    unknown = [name for name in names if name not in setup.collections()]
    if unknown:
        raise click.ClickException(
            f"no mapping for {', '.join(unknown)} (mapped: {', '.join(setup.collections())})"
        )
    if every:
        failed = False
        for found_preset, found_group in setup.store.enabled_groups():
            if found_preset not in state.presets or (preset_name and found_preset != preset_name):
                continue
            run = syncing.run_sync(
                current(),
                state.preset(found_preset),
                found_group,
                full=full,
                only=tuple(names) or None,
                forced=False,
            )
            outcome = "skipped" if run is None else run.status + (f": {run.message}" if run.message else "")
            click.echo(f"{found_preset}\t{found_group}\t{outcome}")
            failed = failed or (run is not None and run.status != "SUCCESS")
        if failed:
            raise SystemExit(1)
        return
    assert group is not None
    try:
        preset = state.preset(preset_name)
    except MaestranoError as exc:
        raise click.ClickException(str(exc)) from None
    bars: dict[str, Any] = {}

    def on_page(collection: str, page: Any) -> None:
        bar = bars.get(collection)
        if bar is None:
            for other in bars.values():
                other.render_finish()
            length = page.total if page.total is not None else len(page.entities)
            bar = click.progressbar(length=max(length, 1), label=collection)
            bar.__enter__()
            bars[collection] = bar
        bar.update(len(page.entities))

    run = syncing.run_sync(
        current(), preset, group, full=full, only=tuple(names) or None, forced=True, on_page=on_page
    )
    for bar in bars.values():
        bar.render_finish()
    if run is None:
        raise click.ClickException(
            f"{group} was not synchronized: its sync is switched off or another run holds its lock"
        )
    for collection, counts in run.counts.items():
        click.echo(f"{collection}: " + ", ".join(f"{name} {value}" for name, value in counts.items()))
    click.echo(f"{run.status}" + (f": {run.message}" if run.message else ""))
    if run.status != "SUCCESS":
        raise SystemExit(1)


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
    state = get_state()
    try:
        preset = state.preset(preset_name)
        wanted = collections if collections is not None else state.imports.collections(preset)
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
        status = state.imports.run(preset, group, wanted, restart=restart, on_page=on_page)
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


jobs_cli = AppGroup("jobs", help="Background jobs (the Connec! imports) in the job store.")
maestrano_cli.add_command(jobs_cli)


_OWN_STORE = "MAESTRANO_IMPORT_STATUS_STORE is the host's own store: it cannot be "


def _job_line(status: ImportStatus) -> str:
    line = f"import\t{status.preset}\t{status.group_id}\t{status.state}\t{status.delivered} entities"
    return f"{line}\t{status.error}" if status.error else line


@jobs_cli.command("list")
def jobs_list_command() -> None:
    """List the imports in the job store and their state."""
    store = get_state(current()).imports.statuses
    if not isinstance(store, JobImportStatusStore):
        raise click.ClickException(_OWN_STORE + "listed")
    for status in store.all():
        click.echo(_job_line(status))


@jobs_cli.command("resume")
def jobs_resume_command() -> None:
    """Run now every import that failed or was interrupted, resuming where each stopped; with
    sync mappings, also every synchronization whose process died, the stored Connec!
    notifications no job applied, and the local changes committed but never answered by
    Connec! (the outbox of sync_on_commit)."""
    imports = get_state(current()).imports
    if not isinstance(imports.statuses, JobImportStatusStore):
        raise click.ClickException(_OWN_STORE + "swept")
    results = imports.resume()
    for status in results:
        click.echo(_job_line(status))
    synced = syncing.setup_of(current()) is not None
    runs = syncing.resume_runs(current()) if synced else []
    for run in runs:
        click.echo(f"sync\t{run.preset}\t{run.group_id}\t{run.status}")
    applied = syncing.resume_notifications(current()) if synced else []
    for preset_name, group_id in applied:
        click.echo(f"notifications\t{preset_name}\t{group_id}\tapplied")
    pushed = syncing.resume_outbox(current()) if synced else []
    for preset_name, group_id, left in pushed:
        click.echo(f"outbox\t{preset_name}\t{group_id}\t" + (f"{left} waiting" if left else "pushed"))
    if not results and not runs and not applied and not pushed:
        click.echo("nothing to resume")
    failed = any(status.state in (FAILED, INTERRUPTED) for status in results)
    if failed or any(run.status != "SUCCESS" for run in runs) or any(left for *_, left in pushed):
        raise SystemExit(1)
