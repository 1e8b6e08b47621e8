"""The one place where the code location's Definitions are assembled."""

from __future__ import annotations

import logging
import os

import dagster as dg

from assets.airbyte import build_airbyte_assets
from assets.dashboards import build_dashboard_assets
from assets.dbt import (
    ManifestUnavailable,
    ProjectDbtTranslator,
    build_dbt_assets,
    daily_partitions,
    ensure_manifest,
)
from assets.fivetran import build_fivetran_assets
from orchestrator.dagster_policies import apply_sla_to_spec, load_resolution, policy_status_metadata
from orchestrator.project_graph import asset_graph_from_assets
from orchestrator.resources import airbyte_workspace, dbt_cli, dbt_env, fivetran_workspace
from orchestrator.resources.connector_state import LOAD_OUTCOMES, ConnectorStateUnavailable
from orchestrator.settings import get_settings
from sensors import ProjectContext, sensor_definitions

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
    loaded = {
        "fivetran": _connector_assets("fivetran", build_fivetran_assets, fivetran, fivetran.account_id),
        "airbyte": _connector_assets("airbyte", build_airbyte_assets, airbyte, airbyte.workspace_id),
    }
    connector_assets = [a for assets_defs in loaded.values() for a in assets_defs]
    unavailable = [system for system, assets_defs in loaded.items() if not assets_defs]
    connector_keys = {key for assets_def in connector_assets for key in assets_def.keys}
    try:
        dbt_defs = build_dbt_assets(connector_keys)
        dashboards = [build_dashboard_assets(ensure_manifest(), ProjectDbtTranslator(connector_keys))]
    except ManifestUnavailable as exc:  # the connectors and the rest still load
        log.error("dbt models and dashboards not loaded: %s", exc)
        dbt_defs, dashboards = [], []
    assets = [*connector_assets, *dbt_defs, *dashboards]

    # SLA policies: resolved over the plain graph, compiled onto the specs. Invalid policies
    # apply nothing; the reason shows in the code location's metadata and the sensors skip.
    graph = asset_graph_from_assets(assets)
    resolution = load_resolution(graph, [get_settings().policies_dir], unavailable_kinds=unavailable)
    if not resolution.ok:
        log.error("SLA policies not applied: %s", resolution.skip_reason)
    assets = dg.map_asset_specs(lambda spec: apply_sla_to_spec(spec, resolution), assets)
    specs = {spec.key: spec for a in assets for spec in a.specs}
    context = ProjectContext(graph=graph, resolution=resolution, asset_specs=specs)

    fragments = sensor_definitions(context)
    # Checks the sensors report (freshness SLA, connector sync state) are evaluated by their
    # sensors or on demand from the UI, not as extra steps at the end of every refresh.
    sensor_checks = dg.AssetSelection.checks(
        *[check for fragment in fragments for check in (fragment.asset_checks or [])]
    )
    # Assets the sensor modules own (the digest) are not data: no refresh job picks them up.
    # (asset definitions or external AssetSpecs: selected by key)
    sensor_assets = dg.AssetSelection.assets(*[
        key for fragment in fragments for a in (fragment.assets or [])
        for key in (a.keys if isinstance(a, dg.AssetsDefinition) else [a.key])])
    partitioned = dg.AssetSelection.assets(*[a for a in dbt_defs if a.partitions_def is not None])
    core = dg.Definitions(
        metadata=policy_status_metadata(resolution),
        assets=assets,
        jobs=[
            dg.define_asset_job(
                "refresh_everything",
                # Dashboards reading a daily-partitioned model refresh after that day is built.
                selection=dg.AssetSelection.all() - partitioned.downstream() - sensor_assets - sensor_checks,
                description=(
                    "Sync every connector, build every unpartitioned dbt model, refresh the "
                    "dashboards that read only those."
                ),
            ),
            dg.define_asset_job(
                "daily_partitioned_models",
                selection=partitioned - sensor_checks,
                partitions_def=daily_partitions,
                description="The daily-partitioned dbt models, one day per run.",
            ),
        ],
        resources={"fivetran": fivetran, "airbyte": airbyte, "dbt": dbt_cli()},
    )
    return dg.Definitions.merge(core, *fragments)


@dg.definitions
def defs() -> dg.Definitions:
    # Loaded lazily by Dagster, so importing this module (tests, the CLI) calls no API.
    return build_definitions()
