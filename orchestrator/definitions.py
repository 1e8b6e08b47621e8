"""The one place where the code location's Definitions are assembled."""

from __future__ import annotations

import logging
import os
from typing import NamedTuple

import dagster as dg

from orchestrator.lib.assets.airbyte import build_airbyte_assets
from orchestrator.lib.assets.dashboards import build_dashboard_assets
from orchestrator.lib.assets.dbt import (
    ManifestUnavailable,
    ProjectDbtTranslator,
    build_daily_partitioned_job,
    build_dbt_assets,
    load_manifest,
)
from orchestrator.lib.assets.fivetran import build_fivetran_assets
from orchestrator.lib.project import sla_definitions
from orchestrator.load_gc import long_lived_load
from orchestrator.resources import (
    SYSTEMS,
    airbyte_selector,
    airbyte_workspace,
    dbt_cli,
    dbt_env,
    enabled_systems,
    fivetran_selector,
    fivetran_workspace,
)
from orchestrator.resources.connector_state import LOAD_OUTCOMES, NOT_LOADED, ConnectorStateUnavailable
from orchestrator.settings import get_settings
from orchestrator.lib.sensors import ProjectContext  # noqa: F401 - imported from here by callers
from orchestrator.lib.sensors.execution import warehouse_tag

log = logging.getLogger(__name__)


def _connector_assets(system: str, build, workspace, account: str) -> list[dg.AssetsDefinition]:
    try:
        assets = build(workspace)
    except ConnectorStateUnavailable as exc:
        log.error("%s assets not loaded: %s", system, exc)
        NOT_LOADED[system] = str(exc)
        return []
    outcome = LOAD_OUTCOMES.get(f"{system}/{account}")
    if outcome is None:  # rebuilt from the state attached at load (run workers): nothing to add
        return assets
    state = {"connector_state": outcome.describe()}  # one text for every table of the system
    return dg.map_asset_specs(lambda spec: spec.merge_attributes(metadata=state), assets)


def _absent(system: str) -> dg.ResourceDefinition:
    """The resource of a connector system this code location does not use: ``None``, which the
    sensors and checks read as "not configured" and skip."""
    return dg.ResourceDefinition.none_resource(
        description=f"{system} is not used by this code location (ORCHESTRATOR_CONNECTORS)")


class Project(NamedTuple):
    """The code location and what its sensors were given: the plain graph and policy resolution
    they decide on (``context``) and the connector systems that loaded nothing
    (``unavailable_kinds``, whose policies are disabled). ``orchestrator plan`` plans on this very
    graph (``orchestrator.graph_cache``), not one re-derived from the Definitions' specs (which
    carry the SLA owners and tags merged in, and the sensors' own assets)."""

    defs: dg.Definitions
    context: ProjectContext
    unavailable_kinds: tuple[str, ...]


def build_definitions() -> dg.Definitions:
    return build_project().defs


def build_project() -> Project:
    # Built with the cyclic garbage collector paused, and what is alive after it (the imports, the
    # parsed manifest, the Definitions) frozen once per process (orchestrator/load_gc.py): the
    # build allocates ~300,000 long-lived objects and next to no cyclic garbage (~150 objects on
    # teamster), so every collection during it would rescan a growing heap and free nothing.
    return long_lived_load(_build_project)


def _build_project() -> Project:
    # dbt subprocesses read the warehouse and landing paths from the environment.
    for name, value in dbt_env().items():
        os.environ.setdefault(name, value)

    # Each connector system is optional (ORCHESTRATOR_CONNECTORS); a system left out gets no
    # assets, a None resource (sensors skip it) and its policies disabled, not invalid.
    systems = enabled_systems()
    NOT_LOADED.clear()
    for system in SYSTEMS:
        if system not in systems:
            NOT_LOADED[system] = f"not used by this code location (ORCHESTRATOR_CONNECTORS={','.join(systems) or 'none'})"
    fivetran = fivetran_workspace() if "fivetran" in systems else None
    airbyte = airbyte_workspace() if "airbyte" in systems else None
    loaded: dict[str, list[dg.AssetsDefinition]] = {}
    if fivetran is not None:
        select = fivetran_selector()
        loaded["fivetran"] = _connector_assets(
            "fivetran", lambda w: build_fivetran_assets(w, connector_selector_fn=select), fivetran, fivetran.account_id)
    if airbyte is not None:
        select_ab = airbyte_selector()
        loaded["airbyte"] = _connector_assets(
            "airbyte", lambda w: build_airbyte_assets(w, connection_selector_fn=select_ab), airbyte, airbyte.workspace_id)
    connector_assets = [a for assets_defs in loaded.values() for a in assets_defs]
    unavailable = [system for system in SYSTEMS if not loaded.get(system)]
    for system in SYSTEMS:
        if system not in systems:
            log.info("%s not used by this code location (ORCHESTRATOR_CONNECTORS=%s)", system, ",".join(systems) or "none")
    connector_keys = {key for assets_def in connector_assets for key in assets_def.keys}
    try:
        # parsed once for the dbt assets and the dashboards (the collector paused: build_project)
        manifest = load_manifest()
        dbt_defs = build_dbt_assets(connector_keys, manifest)
        # the daily-partitioned models' op job and their dbt tests as checks (external assets)
        daily = build_daily_partitioned_job(connector_keys, manifest, tags=warehouse_tag()) if any(
            isinstance(a, dg.AssetSpec) for a in dbt_defs) else []
        dashboards = [d for d in [build_dashboard_assets(manifest, ProjectDbtTranslator(connector_keys))] if d]
    except ManifestUnavailable as exc:  # the connectors and the rest still load
        log.error("dbt models and dashboards not loaded: %s", exc)
        dbt_defs, dashboards, daily = [], [], []
    assets = [*connector_assets, *dbt_defs, *dashboards]

    # SLA policies: resolved over the plain graph, compiled onto the specs, with the sensors,
    # checks, digest and approvals: this code location is one user of the library
    # (``orchestrator.lib.project.sla_definitions``, as the SlaPoliciesComponent is). Invalid
    # policies apply nothing; the reason shows in the code location's metadata and the sensors skip.
    sla = sla_definitions([], [get_settings().policies_dir], unavailable_kinds=unavailable, governed=assets,
                          recording_jobs=[j for j in daily if isinstance(j, dg.JobDefinition)])
    if not sla.resolution.ok:
        log.error("SLA policies not applied: %s", sla.resolution.skip_reason)
    assets = sla.governed
    # Checks the sensors report (freshness SLA, connector sync state) are evaluated by their
    # sensors or on demand from the UI, not as extra steps at the end of every refresh.
    sensor_checks = dg.AssetSelection.checks(*(sla.definitions.asset_checks or []))
    # Assets the sensor modules own (the digest) are not data: no refresh job picks them up.
    # (asset definitions or external AssetSpecs: selected by key)
    sensor_assets = dg.AssetSelection.assets(*[
        key for a in (sla.definitions.assets or [])
        for key in (a.keys if isinstance(a, dg.AssetsDefinition) else [a.key])])
    # The daily-partitioned models are external (recorded by their op job): "Materialize all"
    # and refresh_everything build everything else; the dashboards reading them refresh after
    # their day is built. Their dbt tests are checks of their own (not run by refresh_everything).
    partitioned = dg.AssetSelection.assets(*[a.key for a in dbt_defs if isinstance(a, dg.AssetSpec)])
    daily_checks = dg.AssetSelection.checks(*[c for c in daily if isinstance(c, dg.AssetChecksDefinition)])
    core = dg.Definitions(
        assets=assets,
        asset_checks=[c for c in daily if isinstance(c, dg.AssetChecksDefinition)],
        jobs=[
            dg.define_asset_job(
                "refresh_everything",
                selection=(dg.AssetSelection.all() - partitioned.downstream() - sensor_assets - sensor_checks
                           - daily_checks),
                description=(
                    "Sync every connector, build every unpartitioned dbt model, refresh the "
                    "dashboards that read only those."
                ),
                tags=warehouse_tag(),  # run tag the deploy's run queue limits per warehouse
            ),
            *[j for j in daily if isinstance(j, dg.JobDefinition)],
        ],
        resources={
            "fivetran": fivetran if fivetran is not None else _absent("Fivetran"),
            "airbyte": airbyte if airbyte is not None else _absent("Airbyte"),
            "dbt": dbt_cli(),
        },
    )
    return Project(dg.Definitions.merge(core, sla.definitions), sla.context, tuple(unavailable))


@dg.definitions
def defs() -> dg.Definitions:
    # Loaded lazily by Dagster, so importing this module (tests, the CLI) calls no API.
    return build_definitions()
