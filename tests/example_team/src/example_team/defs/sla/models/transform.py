"""The team's dbt project: the weekly-partitioned models (tag ``weekly``, one ISO week per run)
and the rest. Owners, groups and tags come from dbt ``meta`` through the library's translator;
dbt sources point at the Airbyte tables with ``meta.dagster.asset_key``.

It lives under the SLA component's folder (``defs/sla/models``, listed in its ``governs``): the
component loads it and compiles the policies onto these specs (SLA tags, owners, FreshnessPolicy)."""

import json
import os
from pathlib import Path

import dagster as dg
from dagster_dbt import DbtCliResource, DbtProject, dbt_assets

from orchestrator.lib.assets.dbt import ProjectDbtTranslator

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").exists())
PROJECT = DbtProject(project_dir=ROOT / "dbt", profiles_dir=Path(os.environ.get("DBT_PROFILES_DIR") or ROOT / "dbt"))
weekly = dg.WeeklyPartitionsDefinition(start_date="2026-09-07", timezone="UTC")
translator = ProjectDbtTranslator()


@dbt_assets(manifest=PROJECT.manifest_path, select="tag:weekly", partitions_def=weekly,
            dagster_dbt_translator=translator, name="team_weekly_models")
def weekly_models(context: dg.AssetExecutionContext, dbt: DbtCliResource):
    window = context.partition_time_window
    week = {"week_start": window.start.date().isoformat(), "week_end": window.end.date().isoformat()}
    yield from dbt.cli(["build", "--vars", json.dumps(week)], context=context).stream()


@dbt_assets(manifest=PROJECT.manifest_path, exclude="tag:weekly", dagster_dbt_translator=translator,
            name="team_models")
def models(context: dg.AssetExecutionContext, dbt: DbtCliResource):
    yield from dbt.cli(["build"], context=context).stream()


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(assets=[weekly_models, models], resources={"dbt": DbtCliResource(project_dir=PROJECT)})
