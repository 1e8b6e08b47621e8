"""Run both emulators on loopback in background threads: the Python API for tests and launchers.

    with start_emulators("scenarios/default.yaml", state_dir, landing_dir) as emulators:
        dagster_fivetran.resources.FIVETRAN_API_BASE = emulators.fivetran_url
        AirbyteWorkspace(rest_api_base_url=emulators.airbyte_rest_url,
                         configuration_api_base_url=emulators.airbyte_config_url, ...)
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn

from orchestrator.emulators.airbyte_app import CONFIG_PREFIX, PUBLIC_PREFIX, build_airbyte_app
from orchestrator.emulators.airbyte_engine import AirbyteEmulator
from orchestrator.emulators.control import inject_fault
from orchestrator.emulators.fivetran_app import build_fivetran_app
from orchestrator.emulators.fivetran_engine import FivetranEmulator
from orchestrator.emulators.scenario import Scenario, ScenarioError, load_scenario

# The sandbox credentials the resources in orchestrator/resources use when no real ones are set.
DEFAULT_FIVETRAN_API_KEY = "sandbox-api-key"
DEFAULT_FIVETRAN_API_SECRET = "sandbox-api-secret"
DEFAULT_AIRBYTE_CLIENT_ID = "sandbox-client-id"
DEFAULT_AIRBYTE_CLIENT_SECRET = "sandbox-client-secret"
TICK_SECONDS = 0.25

log = logging.getLogger(__name__)


class _BackgroundServer:
    """A uvicorn server on its own thread, stoppable, with the port it actually bound."""

    def __init__(self, app: Any, host: str, port: int, name: str):
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                                lifespan="off")
        self.server = uvicorn.Server(config)
        # Signal handlers belong to the main thread's owner (the sandbox command), not to us.
        self.server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        try:
            asyncio.run(self.server.serve())
        except BaseException as exc:  # surfaced by start()
            self.error = exc

    def start(self, timeout: float = 15.0) -> int:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if self.error is not None or not self.thread.is_alive():
                raise RuntimeError(f"emulator server failed to start: {self.error!r}")
            if time.monotonic() > deadline:
                raise RuntimeError("emulator server did not start in time")
            time.sleep(0.02)
        return self.server.servers[0].sockets[0].getsockname()[1]

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@dataclass
class EmulatorHandle:
    """Running emulators. URLs have no trailing slash."""

    fivetran: FivetranEmulator
    airbyte: AirbyteEmulator | None
    fivetran_url: str
    airbyte_base_url: str
    fivetran_api_key: str
    fivetran_api_secret: str
    airbyte_client_id: str
    airbyte_client_secret: str
    landing_dir: Path
    state_dir: Path
    _servers: list[_BackgroundServer] = field(default_factory=list, repr=False)
    _ticker_stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _ticker: threading.Thread | None = field(default=None, repr=False)

    @property
    def airbyte_rest_url(self) -> str:
        return f"{self.airbyte_base_url}{PUBLIC_PREFIX}"

    @property
    def airbyte_config_url(self) -> str:
        return f"{self.airbyte_base_url}{CONFIG_PREFIX}"

    @property
    def airbyte_workspace_id(self) -> str | None:
        return self.airbyte.spec_root.workspace_id if self.airbyte else None

    @property
    def scenario(self) -> Scenario:
        return self.fivetran.scenario

    def env(self) -> dict[str, str]:
        """Environment variables that point orchestrator/resources (and Dagster) at the emulators."""
        env = {
            "FIVETRAN_API_BASE_URL": self.fivetran_url,
            "FIVETRAN_ACCOUNT_ID": "sandbox",
            "FIVETRAN_API_KEY": self.fivetran_api_key,
            "FIVETRAN_API_SECRET": self.fivetran_api_secret,
            "ORCHESTRATOR_LANDING_DIR": str(self.landing_dir),
        }
        if self.airbyte is not None:
            env.update({
                "AIRBYTE_REST_API_BASE_URL": self.airbyte_rest_url,
                "AIRBYTE_CONFIGURATION_API_BASE_URL": self.airbyte_config_url,
                "AIRBYTE_WORKSPACE_ID": self.airbyte_workspace_id or "",
                "AIRBYTE_CLIENT_ID": self.airbyte_client_id,
                "AIRBYTE_CLIENT_SECRET": self.airbyte_client_secret,
            })
        return env

    def inject_fault(self, fault: dict[str, Any]) -> dict[str, Any]:
        """Adds a fault (scenario fault schema) to whichever emulator owns its target."""
        api = self.scenario.api_of(fault.get("target") or "") or fault.get("api")
        engine = self.airbyte if api == "airbyte" else self.fivetran if api == "fivetran" else None
        if engine is None:
            raise ScenarioError(
                f"fault.target: unknown connector/connection {fault.get('target')!r}"
                if fault.get("target") else "fault.api: give api (fivetran or airbyte) when target is omitted"
            )
        return inject_fault(engine, api, fault)

    def clear_faults(self, target: str | None = None) -> int:
        removed = 0
        for engine in (self.fivetran, self.airbyte):
            if engine is not None:
                with engine.lock:
                    removed += engine.faults.clear(target)
                    engine.save()
        return removed

    def advance(self) -> None:
        self.fivetran.advance()
        if self.airbyte is not None:
            self.airbyte.advance()

    def _tick_forever(self) -> None:
        # Finishes syncs and starts scheduled ones even when nobody is polling.
        while not self._ticker_stop.wait(TICK_SECONDS):
            try:
                self.advance()
            except Exception:  # keep ticking; the next API call will surface a real problem
                log.exception("emulator tick failed")

    def stop(self) -> None:
        self._ticker_stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=10)
        for server in self._servers:
            server.stop()
        self._servers.clear()

    def __enter__(self) -> EmulatorHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_emulators(
    scenario_path: str | Path,
    state_dir: str | Path,
    landing_dir: str | Path,
    fivetran_port: int = 0,
    airbyte_port: int = 0,
    *,
    host: str = "127.0.0.1",
    time_scale: float = 1.0,
    schedule_scale: float = 1.0,
    auto_sync: bool = True,
    fivetran_api_key: str = DEFAULT_FIVETRAN_API_KEY,
    fivetran_api_secret: str = DEFAULT_FIVETRAN_API_SECRET,
    airbyte_client_id: str = DEFAULT_AIRBYTE_CLIENT_ID,
    airbyte_client_secret: str = DEFAULT_AIRBYTE_CLIENT_SECRET,
    airbyte_token_ttl_s: int = 180,
) -> EmulatorHandle:
    """Starts the Fivetran and Airbyte emulators (port 0 = any free port) and returns a handle.

    time_scale multiplies sync durations (0.05 makes a 4 s sync take 0.2 s); schedule_scale
    multiplies auto-sync periods (Fivetran sync_frequency, Airbyte basic schedules); auto_sync
    False disables scheduled syncs entirely.
    """
    scenario = load_scenario(scenario_path)
    state_dir, landing_dir = Path(state_dir), Path(landing_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    landing_dir.mkdir(parents=True, exist_ok=True)
    timing = {"time_scale": time_scale, "schedule_scale": schedule_scale, "auto_sync": auto_sync}

    fivetran = FivetranEmulator(scenario, state_dir, landing_dir, **timing)
    airbyte = (
        AirbyteEmulator(scenario, state_dir, landing_dir, client_id=airbyte_client_id,
                        client_secret=airbyte_client_secret, token_ttl_s=airbyte_token_ttl_s, **timing)
        if scenario.airbyte is not None
        else None
    )
    servers = [_BackgroundServer(build_fivetran_app(fivetran, fivetran_api_key, fivetran_api_secret),
                                 host, fivetran_port, "fivetran-emulator")]
    if airbyte is not None:
        servers.append(_BackgroundServer(build_airbyte_app(airbyte), host, airbyte_port, "airbyte-emulator"))
    ports = []
    try:
        for server in servers:
            ports.append(server.start())
    except BaseException:
        for server in servers:
            if server.thread.is_alive():
                server.stop()
        raise

    handle = EmulatorHandle(
        fivetran=fivetran,
        airbyte=airbyte,
        fivetran_url=f"http://{host}:{ports[0]}",
        airbyte_base_url=f"http://{host}:{ports[1]}" if airbyte is not None else "",
        fivetran_api_key=fivetran_api_key,
        fivetran_api_secret=fivetran_api_secret,
        airbyte_client_id=airbyte_client_id,
        airbyte_client_secret=airbyte_client_secret,
        landing_dir=landing_dir,
        state_dir=state_dir,
        _servers=servers,
    )
    handle._ticker = threading.Thread(target=handle._tick_forever, name="emulator-ticker", daemon=True)
    handle._ticker.start()
    return handle
