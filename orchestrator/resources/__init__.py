"""Resources configured from the environment, with the sandbox emulators as the embedded default.

Real accounts are configuration only: set FIVETRAN_API_KEY / FIVETRAN_API_SECRET (and
FIVETRAN_ACCOUNT_ID) or AIRBYTE_REST_API_BASE_URL and friends, and the same code talks to them.
"""

from __future__ import annotations

import os
import sys
from functools import lru_cache
from pathlib import Path

import yaml
from dagster import EnvVar
from dagster_dbt import DbtCliResource, DbtProject

from orchestrator.resources.airbyte import AirbyteWorkspaceResource
from orchestrator.resources.fivetran import REAL_FIVETRAN_API_BASE, FivetranWorkspaceResource
from orchestrator.settings import get_settings

SANDBOX_FIVETRAN_KEY = "sandbox-api-key"
SANDBOX_FIVETRAN_SECRET = "sandbox-api-secret"
SANDBOX_AIRBYTE_CLIENT_ID = "sandbox-client-id"
SANDBOX_AIRBYTE_CLIENT_SECRET = "sandbox-client-secret"


def _secret(name: str, sandbox_value: str):
    # EnvVar keeps the value out of the UI's resource config when a real secret is set.
    return EnvVar(name) if os.environ.get(name) else sandbox_value


@lru_cache
def _sandbox_scenario() -> dict:
    with open(get_settings().scenario, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def fivetran_uses_sandbox() -> bool:
    return not os.environ.get("FIVETRAN_API_KEY")


def airbyte_uses_sandbox() -> bool:
    return not os.environ.get("AIRBYTE_REST_API_BASE_URL")


def fivetran_workspace() -> FivetranWorkspaceResource:
    settings = get_settings()
    sandbox = fivetran_uses_sandbox()
    default_base = f"http://127.0.0.1:{settings.fivetran_port}" if sandbox else REAL_FIVETRAN_API_BASE
    return FivetranWorkspaceResource(
        account_id=os.environ.get("FIVETRAN_ACCOUNT_ID", "sandbox"),
        api_key=_secret("FIVETRAN_API_KEY", SANDBOX_FIVETRAN_KEY),
        api_secret=_secret("FIVETRAN_API_SECRET", SANDBOX_FIVETRAN_SECRET),
        api_base_url=os.environ.get("FIVETRAN_API_BASE_URL", default_base),
        poll_interval=float(os.environ.get("FIVETRAN_POLL_INTERVAL", "2" if sandbox else "10")),
        poll_timeout=float(os.environ.get("FIVETRAN_POLL_TIMEOUT", "120" if sandbox else "3600")),
        connector_state_dir=str(settings.home / "connector_state"),
    )


def airbyte_workspace() -> AirbyteWorkspaceResource:
    settings = get_settings()
    sandbox = airbyte_uses_sandbox()
    base = f"http://127.0.0.1:{settings.airbyte_port}"
    workspace_id = os.environ.get("AIRBYTE_WORKSPACE_ID") or (
        _sandbox_scenario()["airbyte"]["workspace_id"] if sandbox else None
    )
    if not workspace_id:
        raise ValueError("AIRBYTE_WORKSPACE_ID must be set when AIRBYTE_REST_API_BASE_URL is set")
    return AirbyteWorkspaceResource(
        rest_api_base_url=os.environ.get("AIRBYTE_REST_API_BASE_URL", f"{base}/api/public/v1"),
        configuration_api_base_url=os.environ.get(
            "AIRBYTE_CONFIGURATION_API_BASE_URL", f"{base}/api/v1"
        ),
        workspace_id=workspace_id,
        client_id=_secret("AIRBYTE_CLIENT_ID", SANDBOX_AIRBYTE_CLIENT_ID),
        client_secret=_secret("AIRBYTE_CLIENT_SECRET", SANDBOX_AIRBYTE_CLIENT_SECRET),
        poll_interval=float(os.environ.get("AIRBYTE_POLL_INTERVAL", "2" if sandbox else "10")),
        poll_timeout=float(os.environ.get("AIRBYTE_POLL_TIMEOUT", "120" if sandbox else "3600")),
        connector_state_dir=str(settings.home / "connector_state"),
    )


@lru_cache
def dbt_project() -> DbtProject:
    settings = get_settings()
    return DbtProject(project_dir=settings.dbt_project_dir, profiles_dir=settings.dbt_project_dir)


def dbt_cli() -> DbtCliResource:
    # The dbt next to this interpreter, so a venv that is not activated still finds it.
    return DbtCliResource(project_dir=dbt_project(), dbt_executable=str(Path(sys.executable).with_name("dbt")))


def dbt_env() -> dict[str, str]:
    """Environment the dbt profile reads: where the warehouse file and the landing zone are."""
    settings = get_settings()
    return {
        "ORCHESTRATOR_DUCKDB_PATH": str(settings.duckdb_path),
        "ORCHESTRATOR_LANDING_DIR": str(settings.landing_dir),
    }
