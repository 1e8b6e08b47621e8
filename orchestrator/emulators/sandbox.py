"""`orchestrator sandbox`: both emulators in the foreground until Ctrl-C."""

from __future__ import annotations

import shlex
import signal
import threading
from pathlib import Path

import click

from orchestrator.emulators.scenario import ScenarioError
from orchestrator.emulators.server import (
    DEFAULT_AIRBYTE_CLIENT_SECRET,
    DEFAULT_FIVETRAN_API_SECRET,
    start_emulators,
)
from orchestrator.settings import get_settings

_SECRET_DEFAULTS = {DEFAULT_FIVETRAN_API_SECRET, DEFAULT_AIRBYTE_CLIENT_SECRET}


@click.command("sandbox")
@click.option("--scenario", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Scenario YAML (default: settings.scenario).")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where emulator state persists (default: settings.emulator_state_dir).")
@click.option("--landing-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where syncs land Parquet files (default: settings.landing_dir).")
@click.option("--fivetran-port", type=int, default=None, help="Default: settings.fivetran_port.")
@click.option("--airbyte-port", type=int, default=None, help="Default: settings.airbyte_port.")
@click.option("--time-scale", type=float, default=1.0, show_default=True,
              help="Multiplier on sync durations (0.1 = ten times faster).")
@click.option("--schedule-scale", type=float, default=1.0, show_default=True,
              help="Multiplier on auto-sync periods (sync_frequency, basic schedules).")
@click.option("--no-auto-sync", is_flag=True, help="Never start scheduled syncs.")
def sandbox_command(
    scenario: Path | None,
    state_dir: Path | None,
    landing_dir: Path | None,
    fivetran_port: int | None,
    airbyte_port: int | None,
    time_scale: float,
    schedule_scale: float,
    no_auto_sync: bool,
) -> None:
    """Run the Fivetran and Airbyte emulators on loopback with the sandbox scenario."""
    settings = get_settings()
    try:
        handle = start_emulators(
            scenario or settings.scenario,
            state_dir or settings.emulator_state_dir,
            landing_dir or settings.landing_dir,
            fivetran_port=settings.fivetran_port if fivetran_port is None else fivetran_port,
            airbyte_port=settings.airbyte_port if airbyte_port is None else airbyte_port,
            time_scale=time_scale,
            schedule_scale=schedule_scale,
            auto_sync=not no_auto_sync,
        )
    except ScenarioError as exc:
        raise click.ClickException(f"invalid scenario: {exc}") from None
    except (OSError, RuntimeError) as exc:
        raise click.ClickException(f"could not start the emulators: {exc}") from None

    click.echo(f"Scenario      {handle.scenario.name} ({scenario or settings.scenario})")
    click.echo(f"Fivetran API  {handle.fivetran_url}/v1")
    if handle.airbyte is not None:
        click.echo(f"Airbyte API   {handle.airbyte_rest_url}  (config API {handle.airbyte_config_url})")
    click.echo(f"State         {handle.state_dir}")
    click.echo(f"Landing       {handle.landing_dir}")
    click.echo(f"Control       {handle.fivetran_url}/_emulator/state, POST /_emulator/faults (either port)")
    click.echo("\nPoint Dagster at the emulators:")
    for name, value in handle.env().items():
        # Only the emulator's own well-known defaults are shown; real-looking secrets never are.
        shown = value if not name.endswith("SECRET") or value in _SECRET_DEFAULTS else "<as configured>"
        click.echo(f"  export {name}={shlex.quote(shown)}")
    # Handlers go in before the prompt: a Ctrl-C right after it must stop cleanly, not abort.
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    click.echo("\nPress Ctrl-C to stop.")
    try:
        while not stop.wait(0.5):
            pass
    finally:
        handle.stop()
        click.echo("Emulators stopped; state kept in " + str(handle.state_dir))
