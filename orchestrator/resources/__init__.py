"""Resources configured from the environment, with the sandbox emulators as the embedded default.

Real accounts are configuration only: set FIVETRAN_API_KEY / FIVETRAN_API_SECRET (and
FIVETRAN_ACCOUNT_ID) or AIRBYTE_REST_API_BASE_URL and friends, and the same code talks to them.
"""

from __future__ import annotations

import os
import sys
from functools import lru_cache
from pathlib import Path

from dagster import EnvVar

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
def _sandbox_scenario():
    """The emulator scenario, parsed with the policy files' YAML bounds (a hostile file is refused
    with ``file:line``, see ``orchestrator.emulators.scenario.load_scenario``)."""
    from orchestrator.emulators.scenario import load_scenario

    return load_scenario(get_settings().scenario)


# plain Python, shared with the dagster-free `plan --dry-run` (orchestrator.plain_clients)
from orchestrator.plain_clients import SYSTEMS, enabled_systems  # noqa: E402,F401


def _patterns(raw: str) -> list[str]:
    return [p.strip() for p in (raw or "").split(",") if p.strip()]


def fivetran_selector(raw: str | None = None):
    """``connector_selector_fn`` for dagster-fivetran from ``ORCHESTRATOR_FIVETRAN_CONNECTORS``
    (None = every connector)."""
    from fnmatch import fnmatchcase

    patterns = _patterns(get_settings().fivetran_connectors if raw is None else raw)
    if not patterns:
        return None

    def select(connector) -> bool:
        names = [connector.id, connector.name, connector.service, connector.group_id]
        return any(fnmatchcase(str(n), p) for n in names if n for p in patterns)

    return select


def airbyte_selector(raw: str | None = None):
    """``connection_selector_fn`` for dagster-airbyte from ``ORCHESTRATOR_AIRBYTE_CONNECTIONS``."""
    from fnmatch import fnmatchcase

    patterns = _patterns(get_settings().airbyte_connections if raw is None else raw)
    if not patterns:
        return None

    def select(connection) -> bool:
        return any(fnmatchcase(str(n), p) for n in (connection.id, connection.name) if n for p in patterns)

    return select


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
        connector_state_dir=str(settings.connector_state_dir),
    )


def airbyte_workspace() -> AirbyteWorkspaceResource:
    settings = get_settings()
    sandbox = airbyte_uses_sandbox()
    base = f"http://127.0.0.1:{settings.airbyte_port}"
    workspace_id = os.environ.get("AIRBYTE_WORKSPACE_ID") or (
        getattr(_sandbox_scenario().airbyte, "workspace_id", None) if sandbox else None
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
        connector_state_dir=str(settings.connector_state_dir),
    )


@lru_cache
def dbt_project():
    from dagster_dbt import DbtProject  # imported here: dbt costs seconds a CLI command needs not pay

    settings = get_settings()
    project_dir = Path(settings.dbt_project_dir)
    if not (project_dir / "dbt_project.yml").is_file():
        raise ValueError(f"ORCHESTRATOR_DBT_PROJECT_DIR={project_dir}: no dbt_project.yml there")
    profiles_dir = settings.dbt_profiles_dir
    if not (profiles_dir / "profiles.yml").is_file():
        raise ValueError(
            f"dbt profiles directory {profiles_dir} has no profiles.yml (set ORCHESTRATOR_DBT_PROFILES_DIR "
            "or DBT_PROFILES_DIR to the folder that holds it)")
    return DbtProject(project_dir=project_dir, profiles_dir=profiles_dir,
                      profile=settings.dbt_profile or None, target=settings.dbt_target_name)


def dbt_cli_args() -> list[str]:
    """``--profiles-dir``/``--profile``/``--target`` for a dbt command run outside DbtCliResource
    (``dbt parse`` when the manifest is stale), the same as the resource passes."""
    project = dbt_project()
    args = ["--profiles-dir", str(project.profiles_dir)]
    if project.profile:
        args += ["--profile", project.profile]
    if project.target:
        args += ["--target", project.target]
    return args


def dbt_cli():
    from dagster_dbt import DbtCliResource

    # The dbt next to this interpreter, so a venv that is not activated still finds it.
    return DbtCliResource(project_dir=dbt_project(), dbt_executable=str(Path(sys.executable).with_name("dbt")))


def warehouse_pool(manifest=None) -> str:
    """The pool every step that runs on the warehouse shares (dbt models, DuckDB dashboard
    extracts): ``ORCHESTRATOR_WAREHOUSE_POOL``, else ``duckdb_warehouse`` for the embedded DuckDB
    (one writer per file: limit 1), else ``warehouse/<ORCHESTRATOR_WAREHOUSE or the dbt adapter>``
    (``warehouse/snowflake``), sized per warehouse on the instance (deploy/README.md)."""
    explicit = os.environ.get("ORCHESTRATOR_WAREHOUSE_POOL", "").strip()
    if explicit:
        return explicit
    adapter = (((manifest or {}).get("metadata") or {}).get("adapter_type")) or "duckdb"
    if adapter == "duckdb":
        return "duckdb_warehouse"
    return f"warehouse/{os.environ.get('ORCHESTRATOR_WAREHOUSE', '').strip() or adapter}"


def dbt_env() -> dict[str, str]:
    """Environment the dbt profile reads: where the warehouse file and the landing zone are."""
    settings = get_settings()
    return {
        "ORCHESTRATOR_DUCKDB_PATH": str(settings.duckdb_path),
        "ORCHESTRATOR_LANDING_DIR": str(settings.landing_dir),
    }
