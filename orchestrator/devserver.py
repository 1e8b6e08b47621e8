"""`orchestrator dev`: the embedded default in one command.

Starts the Fivetran and Airbyte emulators, prepares a local DAGSTER_HOME whose instance config
keeps DuckDB writes serial, then runs `dagster dev` on the project workspace and prints the UI URL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
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


class Supervisor:
    """Children started in their own process groups, and stopped with everything they started.

    ``dagster dev`` shuts its webserver, daemon and code servers down on Ctrl-C (SIGINT) but not on
    SIGTERM, and a grandchild can outlive its parent. ``stop()`` (Ctrl-C) sends SIGINT to each
    group (newest first), waits ``grace`` seconds (``ORCHESTRATOR_DEV_STOP_GRACE``, default 3), then
    SIGTERM for ``term_wait`` seconds, then SIGKILL to whatever is left in the groups.
    ``stop(fast=True)`` (SIGTERM/SIGHUP: a supervisor wants it gone now) skips the SIGINT phase:
    every process of every group gets SIGTERM at once, SIGKILL ``term_wait`` seconds later, so the
    whole tree and this process are gone within a few seconds.
    """

    def __init__(self, grace: float | None = None, term_wait: float = 2.0):
        self.grace = float(os.environ.get("ORCHESTRATOR_DEV_STOP_GRACE", "3")) if grace is None else grace
        self.term_wait = term_wait
        self.children: list[subprocess.Popen] = []
        self._stopped = False

    def start(self, cmd: list[str], **kwargs) -> subprocess.Popen:
        child = subprocess.Popen(cmd, start_new_session=True, **kwargs)
        self.children.append(child)
        return child

    @staticmethod
    def _group_alive(pgid: int) -> bool:
        try:
            os.killpg(pgid, 0)
            return True
        except (ProcessLookupError, PermissionError):
            return False

    def _signal_groups(self, sig: int) -> None:
        for child in reversed(self.children):
            try:
                os.killpg(child.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass

    def _wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for child in self.children:
                child.poll()  # reap, so an exited leader does not keep its group "alive"
            if not any(self._group_alive(c.pid) for c in self.children):
                return True
            time.sleep(0.1)
        return False

    @property
    def stopping(self) -> bool:
        return self._stopped

    def stop(self, fast: bool = False) -> None:
        if self._stopped:
            return
        self._stopped = True
        if threading.current_thread() is threading.main_thread():
            # a second Ctrl-C while stopping would raise KeyboardInterrupt in the middle of the
            # stop and leave the stubborn children running: the first one already asked for this
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        if not fast:
            self._signal_groups(signal.SIGINT)
            if self._wait(self.grace):
                return
        self._signal_groups(signal.SIGTERM)
        if self._wait(self.term_wait):
            return
        self._signal_groups(signal.SIGKILL)
        self._wait(2.0)


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
    sup = Supervisor()

    def on_signal(signum, _frame):
        if sup.stopping:
            # a second SIGTERM/SIGHUP while a stop runs: exiting here would skip its SIGKILL phase
            # and orphan whatever ignored SIGTERM; the stop under way finishes and exits
            return
        sup.stop(fast=True)  # SIGTERM/SIGHUP: everything gone within a few seconds, this process too
        os._exit(0 if signum == signal.SIGTERM else 129)  # no cleanup handler may hold the exit

    # SIGTERM (a supervisor, `kill`) and SIGHUP (terminal closed) stop everything started here; the
    # children run in their own process groups, so Ctrl-C reaches them only through this process.
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    try:
        if emulators:
            click.echo(f"Starting Fivetran and Airbyte emulators on 127.0.0.1:{settings.fivetran_port} and "
                       f":{settings.airbyte_port} (ORCHESTRATOR_FIVETRAN_PORT / ORCHESTRATOR_AIRBYTE_PORT) ...")
            sandbox = sup.start([_bin("orchestrator"), "sandbox"], env=env, cwd=PROJECT_ROOT)
            wait_for_http(f"http://127.0.0.1:{settings.fivetran_port}/v1/groups", 60, "Fivetran emulator", sandbox)
            wait_for_http(
                f"http://127.0.0.1:{settings.airbyte_port}/api/public/v1/health", 60, "Airbyte emulator", sandbox
            )
        click.echo("Starting Dagster (loading the code location parses the dbt project) ...")
        dagster = sup.start(
            [_bin("dagster"), "dev", "-w", str(PROJECT_ROOT / "workspace.yaml"), "-h", host, "-p", str(port)],
            env=env,
            cwd=PROJECT_ROOT,
        )
        url = f"http://{host}:{port}"
        wait_for_http(f"{url}/server_info", 300, "Dagster webserver", dagster)
        click.secho(f"\nDagster UI: {url}   (asset graph: {url}/asset-groups)\n", fg="green", bold=True)
        click.echo(f"DAGSTER_HOME={dagster_home}  warehouse={settings.duckdb_path}  Ctrl-C stops everything.")
        dagster.wait()
    except KeyboardInterrupt:
        pass
    finally:
        sup.stop()
