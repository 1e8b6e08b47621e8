"""A world for the schema-change tests: emulators landing Parquet for a dbt project, synced
through the real dagster-fivetran / dagster-airbyte clients, schema changes injected through the
emulators' control API (``POST /_emulator/faults``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import yaml
from dagster_airbyte import AirbyteWorkspace
from dagster_fivetran import FivetranWorkspace

from orchestrator.emulators.server import EmulatorHandle, start_emulators


def start_world(scenario: Path, root: Path) -> EmulatorHandle:
    import dagster_fivetran.resources as fivetran_resources

    handle = start_emulators(scenario, root / "state", root / "landing", time_scale=0.02, auto_sync=False)
    fivetran_resources.FIVETRAN_API_BASE = handle.fivetran_url
    return handle


def connectors(scenario: Path) -> tuple[list[str], list[str]]:
    data = yaml.safe_load(scenario.read_text())
    fivetran = [c["id"] for c in (data.get("fivetran") or {}).get("connectors", [])]
    airbyte = [c["id"] for c in (data.get("airbyte") or {}).get("connections", [])]
    return fivetran, airbyte


def sync(handle: EmulatorHandle, fivetran_ids: list[str], airbyte_ids: list[str] = ()) -> None:
    ft = FivetranWorkspace(account_id="sandbox", api_key=handle.fivetran_api_key,
                           api_secret=handle.fivetran_api_secret, request_retry_delay=0.02).get_client()
    for connector in fivetran_ids:
        ft.sync_and_poll(connector, poll_interval=0.1, poll_timeout=60)
    if airbyte_ids:
        ab = AirbyteWorkspace(rest_api_base_url=handle.airbyte_rest_url,
                              configuration_api_base_url=handle.airbyte_config_url,
                              workspace_id=handle.airbyte_workspace_id, client_id=handle.airbyte_client_id,
                              client_secret=handle.airbyte_client_secret, request_retry_delay=0.02,
                              poll_interval=0.1, poll_timeout=60).get_client()
        for connection in airbyte_ids:
            ab.sync_and_poll(connection)


def inject(handle: EmulatorHandle, fault: dict[str, Any], api: str = "fivetran") -> dict[str, Any]:
    """A schema change through the control API (the emulator serves it on both ports)."""
    base = handle.fivetran_url if api == "fivetran" else handle.airbyte_base_url
    response = httpx.post(f"{base}/_emulator/faults", json=fault, timeout=10)
    response.raise_for_status()
    return response.json()


def resync(handle: EmulatorHandle, fivetran_tables: dict[str, dict[str, list[str]]],
           airbyte_streams: dict[str, list[str]] | None = None) -> None:
    """Table resyncs (what the connector's schema-change handling does for a drifted table): the
    table's every current row lands again under the current schema."""
    import time

    ft = FivetranWorkspace(account_id="sandbox", api_key=handle.fivetran_api_key,
                           api_secret=handle.fivetran_api_secret, request_retry_delay=0.02).get_client()
    for connector, tables in fivetran_tables.items():
        ft.resync_and_poll(connector, poll_interval=0.1, poll_timeout=60, resync_parameters=tables)
    auth = (handle.airbyte_client_id, handle.airbyte_client_secret)
    for connection, streams in (airbyte_streams or {}).items():
        job = httpx.post(f"{handle.airbyte_config_url}/connections/reset/stream", auth=auth, timeout=10,
                         json={"connectionId": connection, "streams": [{"streamName": s} for s in streams]})
        job.raise_for_status()
        job_id = job.json()["job"]["id"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            status = httpx.post(f"{handle.airbyte_config_url}/jobs/get", auth=auth, json={"id": job_id},
                                timeout=10).json()["job"]["status"]
            if status in ("succeeded", "failed", "cancelled"):
                break
            time.sleep(0.1)
        sync(handle, [], [connection])
