"""Shared fixtures for the emulator tests: a small scenario and emulators on free ports.

Import the fixtures into a test module with
`from emulator_fixtures import emulators, small_scenario  # noqa: F401`.
"""

from __future__ import annotations

import copy
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dagster_fivetran.resources as fivetran_resources
import pytest
import yaml
from dagster_airbyte import AirbyteWorkspace
from dagster_fivetran import FivetranWorkspace

from orchestrator.emulators.server import EmulatorHandle, start_emulators

SALESFORCE = "sf_conn"
STRIPE = "stripe_conn"
PRODUCT = "0a1b2c3d-0000-4000-8000-000000000001"
WORKSPACE = "0a1b2c3d-0000-4000-8000-0000000000ff"

SMALL_SCENARIO: dict[str, Any] = {
    "name": "small",
    "seed": 7,
    "history_days": 10,
    "fivetran": {
        "groups": [{"id": "grp", "name": "Warehouse",
                    "destination": {"service": "duckdb", "database": "analytics"}}],
        "connectors": [
            {
                "id": SALESFORCE, "group": "grp", "service": "salesforce", "schema": "salesforce",
                "sync_frequency": 60, "sync_duration_s": {"mean": 0.3},
                "tables": {
                    "account": {"rows": 40, "rows_per_sync": 5, "columns": {
                        "id": {"type": "string", "primary_key": True},
                        "name": {"type": "string"},
                        "industry": {"type": "string", "values": ["Software", "Retail"]},
                        "owner_id": {"type": "string", "references": "salesforce.user.id"},
                        "annual_revenue": {"type": "integer", "min": 1000, "max": 90000},
                        "created_date": {"type": "timestamp"},
                    }},
                    "user": {"rows": 6, "rows_per_sync": 1, "columns": {
                        "id": {"type": "string", "primary_key": True},
                        "email": {"type": "email"},
                        "is_active": {"type": "boolean"},
                    }},
                },
            },
            {
                "id": STRIPE, "group": "grp", "service": "stripe", "schema": "stripe",
                "sync_duration_s": {"mean": 0.3},
                "tables": {
                    "customer": {"rows": 30, "rows_per_sync": 3, "columns": {
                        "id": {"type": "string", "primary_key": True},
                        "salesforce_account_id": {"type": "string", "references": "salesforce.account.id"},
                        "balance": {"type": "decimal", "min": 0, "max": 500},
                        "created": {"type": "timestamp"},
                        "closed_on": {"type": "date", "nullable": 0.5},
                    }},
                },
            },
        ],
    },
    "airbyte": {
        "workspace_id": WORKSPACE,
        "destination": {"id": "0a1b2c3d-0000-4000-8000-0000000000de", "name": "DuckDB", "type": "duckdb",
                        "database": "analytics"},
        "connections": [
            {
                "id": PRODUCT, "name": "Product DB", "source_type": "postgres", "schema": "product",
                "sync_duration_s": {"mean": 0.3},
                "streams": {
                    "users": {"rows": 50, "rows_per_sync": 5, "columns": {
                        "user_id": {"type": "string", "primary_key": True},
                        "account_id": {"type": "string", "references": "salesforce.account.id"},
                        "plan": {"type": "string", "values": ["starter", "team"]},
                        "signed_up_at": {"type": "timestamp"},
                    }},
                    "events": {"rows": 200, "rows_per_sync": 20, "append_only": True, "columns": {
                        "event_id": {"type": "string", "primary_key": True},
                        "user_id": {"type": "string", "references": "product.users.user_id"},
                        "occurred_at": {"type": "timestamp"},
                    }},
                },
            },
        ],
    },
}


@pytest.fixture
def small_scenario() -> dict[str, Any]:
    return copy.deepcopy(SMALL_SCENARIO)


@pytest.fixture
def emulators(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., EmulatorHandle]]:
    """Factory: emulators(scenario_dict_or_path=None, **start_kwargs) -> running handle.

    Calls with the same `name` share state/landing directories (to test restarts). Fivetran's
    module-global API base is pointed at the last started emulator.
    """
    started: list[EmulatorHandle] = []

    def start(scenario: dict[str, Any] | Path | None = None, name: str = "run", **kwargs: Any) -> EmulatorHandle:
        if scenario is None or isinstance(scenario, dict):
            path = tmp_path / f"{name}-scenario.yaml"
            path.write_text(yaml.safe_dump(scenario or SMALL_SCENARIO, sort_keys=False), encoding="utf-8")
        else:
            path = scenario
        kwargs.setdefault("auto_sync", False)
        handle = start_emulators(path, tmp_path / name / "state", tmp_path / name / "landing", **kwargs)
        started.append(handle)
        monkeypatch.setattr(fivetran_resources, "FIVETRAN_API_BASE", handle.fivetran_url)
        return handle

    yield start
    for handle in started:
        handle.stop()


def fivetran_workspace(handle: EmulatorHandle, **overrides: Any) -> FivetranWorkspace:
    settings = {"account_id": "sandbox", "api_key": handle.fivetran_api_key,
                "api_secret": handle.fivetran_api_secret, "request_retry_delay": 0.02, **overrides}
    return FivetranWorkspace(**settings)


def airbyte_workspace(handle: EmulatorHandle, **overrides: Any) -> AirbyteWorkspace:
    settings = {
        "rest_api_base_url": handle.airbyte_rest_url,
        "configuration_api_base_url": handle.airbyte_config_url,
        "workspace_id": handle.airbyte_workspace_id,
        "client_id": handle.airbyte_client_id,
        "client_secret": handle.airbyte_client_secret,
        "poll_interval": 0.1,
        "request_retry_delay": 0.02,
        **overrides,
    }
    return AirbyteWorkspace(**settings)


def fast_fivetran_sleep(monkeypatch: pytest.MonkeyPatch, cap_s: float = 0.05) -> None:
    """dagster-fivetran binds poll_interval=10 s as a default argument; cap its sleeps instead."""
    real_sleep = time.sleep
    monkeypatch.setattr(fivetran_resources, "time",
                        types.SimpleNamespace(sleep=lambda seconds: real_sleep(min(seconds, cap_s))))


def airbyte_client(emu: EmulatorHandle):
    """The project's Airbyte client (the resource's) pointed at these emulators."""
    from orchestrator.resources.airbyte import AirbyteWorkspaceResource

    return AirbyteWorkspaceResource(
        rest_api_base_url=emu.airbyte_rest_url, configuration_api_base_url=emu.airbyte_config_url,
        workspace_id=emu.airbyte_workspace_id, client_id=emu.airbyte_client_id,
        client_secret=emu.airbyte_client_secret,
    ).get_client()


def wait_airbyte_job(client, job_id, timeout_s: float = 30) -> dict:
    """The job's details once it is over (succeeded, failed or cancelled); fails the test after
    ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = client.get_job_details(job_id)
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish within {timeout_s:.0f} s")
