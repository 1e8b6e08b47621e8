"""The one place where the code location's Definitions are assembled."""

from __future__ import annotations

import logging
import os

import dagster as dg

from assets.airbyte import build_airbyte_assets
from assets.dashboards import build_dashboard_assets
from assets.dbt import ProjectDbtTranslator, build_dbt_assets, ensure_manifest
from assets.fivetran import build_fivetran_assets
from orchestrator.resources import airbyte_workspace, dbt_cli, dbt_env, fivetran_workspace
from orchestrator.resources.connector_state import LOAD_OUTCOMES, ConnectorStateUnavailable

log = logging.getLogger(__name__)


def _connector_assets(system: str, build, workspace, account: str) -> list[dg.AssetsDefinition]:
    try:
        assets = build(workspace)
    except ConnectorStateUnavailable as exc:
        log.error("%s assets not loaded: %s", system, exc)
        return []
    outcome = LOAD_OUTCOMES.get(f"{system}/{account}")
    if outcome is None:  # rebuilt from the state attached at load (run workers): nothing to add
        return assets
    return dg.map_asset_specs(
        lambda spec: spec.merge_attributes(metadata={"connector_state": outcome.describe()}), assets
    )


def build_definitions() -> dg.Definitions:
    # dbt subprocesses read the warehouse and landing paths from the environment.
    for name, value in dbt_env().items():
        os.environ.setdefault(name, value)

    fivetran = fivetran_workspace()
    airbyte = airbyte_workspace()
    connector_assets = [
        *_connector_assets("fivetran", build_fivetran_assets, fivetran, fivetran.account_id),
        *_connector_assets("airbyte", build_airbyte_assets, airbyte, airbyte.workspace_id),
    ]
    connector_keys = {key for assets_def in connector_assets for key in assets_def.keys}
    dbt_defs = build_dbt_assets(connector_keys)
    dashboards = build_dashboard_assets(ensure_manifest(), ProjectDbtTranslator(connector_keys))

    return dg.Definitions(
        assets=[*connector_assets, *dbt_defs, dashboards],
        resources={"fivetran": fivetran, "airbyte": airbyte, "dbt": dbt_cli()},
    )


defs = build_definitions()
