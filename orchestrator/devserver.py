"""`orchestrator dev`: the embedded default in one command.

Starts the Fivetran and Airbyte emulators, prepares a local DAGSTER_HOME whose instance config
keeps DuckDB writes serial, then runs `dagster dev` on the project workspace and prints the UI URL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import click
import httpx

from orchestrator.settings import PROJECT_ROOT, get_settings

DAGSTER_YAML = """\
# Written by `orchestrator dev` when missing; edit freely.
telemetry:
  enabled: false
concurrency:
  runs:
    max_concurrent_runs: 4
  pools:
    # Assets in a pool (the DuckDB warehouse) run one at a time: DuckDB has a single writer.
    default_limit: 1
# Loading the code location parses the dbt project; on a busy machine that takes minutes.
code_servers:
  local_startup_timeout: 600
# Sensors tick side by side: a long planning cycle never delays the failure sensor's retries.
sensors:
  use_threads: true
  num_workers: 4
"""


def prepare_dagster_home(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    config = path / "dagster.yaml"
    if not config.exists():
        config.write_text(DAGSTER_YAML)
    return path


def wait_for_http(url: str, timeout_s: float, what: str, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise click.ClickException(f"{what} exited with code {process.returncode} before it was ready")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise click.ClickException(f"{what} did not answer at {url} within {timeout_s:.0f} s")


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


@click.command("dev")
@click.option("--port", default=3000, show_default=True, help="Dagster UI port.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--emulators/--no-emulators", default=True, show_default=True,
              help="Start the local Fivetran/Airbyte emulators (off when using real accounts).")
def dev_command(port: int, host: str, emulators: bool) -> None:
    """Start the product on its embedded defaults and print the UI URL."""
    settings = get_settings()
    dagster_home = prepare_dagster_home(settings.dagster_home)
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home)}
    children: list[subprocess.Popen] = []

    def stop(*_):
        for child in reversed(children):
            if child.poll() is None:
                child.terminate()
        for child in children:
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()

    signal.signal(signal.SIGTERM, lambda *_: (stop(), sys.exit(0)))
    try:
        if emulators:
            click.echo("Starting Fivetran and Airbyte emulators ...")
            sandbox = subprocess.Popen([_bin("orchestrator"), "sandbox"], env=env, cwd=PROJECT_ROOT)
            children.append(sandbox)
            wait_for_http(f"http://127.0.0.1:{settings.fivetran_port}/v1/groups", 60, "Fivetran emulator", sandbox)
            wait_for_http(
                f"http://127.0.0.1:{settings.airbyte_port}/api/public/v1/health", 60, "Airbyte emulator", sandbox
            )
        click.echo("Starting Dagster (loading the code location parses the dbt project) ...")
        dagster = subprocess.Popen(
            [_bin("dagster"), "dev", "-w", str(PROJECT_ROOT / "workspace.yaml"), "-h", host, "-p", str(port)],
            env=env,
            cwd=PROJECT_ROOT,
        )
        children.append(dagster)
        url = f"http://{host}:{port}"
        wait_for_http(f"{url}/server_info", 300, "Dagster webserver", dagster)
        click.secho(f"\nDagster UI: {url}   (asset graph: {url}/asset-groups)\n", fg="green", bold=True)
        click.echo(f"DAGSTER_HOME={dagster_home}  warehouse={settings.duckdb_path}  Ctrl-C stops everything.")
        dagster.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop()
