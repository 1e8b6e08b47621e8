"""dbt models as Dagster assets, with dbt sources linked to the connector tables that feed them."""


import json
import os
import subprocess
import sys
from collections.abc import Mapping, Set
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, dbt_assets

from orchestrator.resources import dbt_env, dbt_project

PARTITIONED_SELECTOR = "tag:partitioned_daily"
# DuckDB allows one writer per file across processes: every asset that opens the warehouse runs
# in this pool, limited to 1 in the instance's dagster.yaml.
WAREHOUSE_POOL = "duckdb_warehouse"

daily_partitions = dg.DailyPartitionsDefinition(
    start_date=os.environ.get("ORCHESTRATOR_PARTITIONS_START", "2026-10-01"),
    timezone="UTC",
    end_offset=1,
)


class ProjectDbtTranslator(DagsterDbtTranslator):
    """Maps each dbt source to the connector table with the same ``<schema>/<table>`` key.

    A source whose table no connector syncs keeps dagster-dbt's default key, so it shows up as an
    unlinked external asset (and the lineage test fails) instead of silently pointing nowhere.
    """

    def __init__(self, connector_keys: Set[dg.AssetKey] = frozenset()):
        super().__init__(settings=DagsterDbtTranslatorSettings(enable_code_references=False))
        self._connector_keys = connector_keys

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            table = dbt_resource_props.get("identifier") or dbt_resource_props["name"]
            candidate = dg.AssetKey([dbt_resource_props["schema"], table])
            if candidate in self._connector_keys:
                return candidate
        return super().get_asset_key(dbt_resource_props)

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        fqn = dbt_resource_props.get("fqn") or []
        if dbt_resource_props["resource_type"] == "model" and len(fqn) > 2:
            return f"dbt_{fqn[1]}"
        return super().get_group_name(dbt_resource_props)

    def get_owners(self, dbt_resource_props: Mapping[str, Any]):
        meta = (dbt_resource_props.get("config") or {}).get("meta") or dbt_resource_props.get("meta") or {}
        owner = meta.get("owner")
        return [owner] if owner else ["team:analytics-engineering"]


class ManifestUnavailable(RuntimeError):
    """The dbt manifest is missing, truncated or stale and ``dbt parse`` could not rebuild it."""


def manifest_problem(manifest: Path) -> str | None:
    """Why a manifest cannot be used (None when it can): truncated or not dbt's JSON."""
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"unreadable ({type(exc).__name__}: {str(exc)[:200]})"
    if not isinstance(data, dict) or not isinstance(data.get("nodes"), dict) or "metadata" not in data:
        return "not a dbt manifest (no nodes/metadata)"
    return None


def ensure_manifest() -> Path:
    """Parse the dbt project when its manifest is missing, older than any project file, or
    unreadable (a truncated file is rebuilt, not loaded). Raises ``ManifestUnavailable`` with
    dbt's own error when parsing fails."""
    project = dbt_project()
    manifest = project.manifest_path
    sources = [
        p
        for p in Path(project.project_dir).rglob("*")
        if p.suffix in {".sql", ".yml", ".yaml"} and "target" not in p.parts and "logs" not in p.parts
    ]
    newest = max((p.stat().st_mtime for p in sources), default=0)
    problem = "missing" if not manifest.exists() else (
        "older than the project files" if manifest.stat().st_mtime < newest else manifest_problem(manifest))
    if problem:
        env = {**os.environ, **dbt_env()}
        dbt = Path(sys.executable).with_name("dbt")
        done = subprocess.run(
            [str(dbt), "parse", "--quiet", "--profiles-dir", str(project.profiles_dir)],
            cwd=project.project_dir,
            env=env,
            capture_output=True,
            text=True,
        )
        after = manifest_problem(manifest) if manifest.exists() else "missing"
        if done.returncode != 0 or after:
            tail = " ".join((done.stderr or done.stdout or "").split())[-600:]
            raise ManifestUnavailable(
                f"dbt manifest {manifest} was {problem} and `dbt parse` could not rebuild it "
                f"(exit {done.returncode}{', ' + after if after else ''}): {tail}"
            )
    return manifest


def build_dbt_assets(connector_keys: Set[dg.AssetKey]) -> list[dg.AssetsDefinition]:
    manifest = ensure_manifest()
    translator = ProjectDbtTranslator(connector_keys)

    @dbt_assets(
        manifest=manifest,
        project=dbt_project(),
        exclude=PARTITIONED_SELECTOR,
        name="dbt_models",
        dagster_dbt_translator=translator,
        pool=WAREHOUSE_POOL,
    )
    def dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource):
        yield from dbt.cli(["build"], context=context).stream()

    @dbt_assets(
        manifest=manifest,
        project=dbt_project(),
        select=PARTITIONED_SELECTOR,
        name="dbt_daily_partitioned",
        dagster_dbt_translator=translator,
        partitions_def=daily_partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=WAREHOUSE_POOL,
    )
    def dbt_daily_partitioned(context: dg.AssetExecutionContext, dbt: DbtCliResource):
        window = context.partition_time_window
        dbt_vars = {"min_date": window.start.isoformat(), "max_date": window.end.isoformat()}
        yield from dbt.cli(["build", "--vars", json.dumps(dbt_vars)], context=context).stream()

    return [dbt_models, dbt_daily_partitioned]
