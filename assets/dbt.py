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
from dagster_dbt.dbt_manifest import validate_manifest

from .dbt_meta import (
    MetaReport,
    dagster_meta,
    map_group,
    map_kinds,
    map_metadata,
    map_owners,
    map_tags,
    node_meta,
    valid_tag_key,
)
from orchestrator.resources import dbt_cli_args, dbt_env, dbt_project, warehouse_pool
from orchestrator.resources.dbt_failures import stream_dbt

PARTITIONED_SELECTOR = "tag:partitioned_daily"
# DuckDB allows one writer per file across processes: every asset that opens the warehouse runs
# in this pool, limited to 1 in the instance's dagster.yaml. Other warehouses get a pool of their
# own (``orchestrator.resources.warehouse_pool``: ``warehouse/<name>``).
WAREHOUSE_POOL = "duckdb_warehouse"
DEFAULT_OWNER = "team:analytics-engineering"

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
            if dg.AssetKey([table]) in self._connector_keys:  # dagster-airbyte's default key
                return dg.AssetKey([table])
        return super().get_asset_key(dbt_resource_props)

    # dbt meta is free-form; everything that reaches Dagster is mapped to a valid value or
    # dropped, and reported once (assets/dbt_meta.py): one odd owner never fails the load.
    @property
    def meta_report(self) -> MetaReport:
        if not hasattr(self, "_meta_report"):
            self._meta_report = MetaReport()
        return self._meta_report

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        where = dbt_resource_props.get("unique_id", "?")
        explicit = dagster_meta(dbt_resource_props).get("group")
        if explicit:
            return map_group(explicit, self.meta_report, where)
        fqn = dbt_resource_props.get("fqn") or []
        if dbt_resource_props["resource_type"] == "model" and len(fqn) > 2:
            return map_group(f"dbt_{fqn[1]}", self.meta_report, where)
        return map_group((dbt_resource_props.get("config") or {}).get("group"), self.meta_report, where)

    def get_owners(self, dbt_resource_props: Mapping[str, Any]):
        where = dbt_resource_props.get("unique_id", "?")
        meta = node_meta(dbt_resource_props)
        group = dbt_resource_props.get("group")
        owners = map_owners(
            (
                meta.get("owner"),
                dagster_meta(dbt_resource_props).get("owners"),
                group.get("owner") if isinstance(group, Mapping) else None,
            ),
            self.meta_report,
            where,
        )
        return owners or [DEFAULT_OWNER]

    def get_tags(self, dbt_resource_props: Mapping[str, Any]) -> Mapping[str, str]:
        where = dbt_resource_props.get("unique_id", "?")
        # dbt tags are keys with an empty value (dagster-dbt's default); meta.dagster.tags add to them.
        tags = {t: "" for t in dbt_resource_props.get("tags") or [] if valid_tag_key(t)}
        tags.update(map_tags(dagster_meta(dbt_resource_props).get("tags"), self.meta_report, where))
        return tags

    def get_metadata(self, dbt_resource_props: Mapping[str, Any]) -> Mapping[str, Any]:
        metadata = dict(super().get_metadata(dbt_resource_props))
        extra = dagster_meta(dbt_resource_props).get("metadata")
        if extra is not None:
            where = dbt_resource_props.get("unique_id", "?")
            for key, value in map_metadata(extra, self.meta_report, where).items():
                metadata.setdefault(key, value)
        return metadata

    def exposure_owners(self, exposure: Mapping[str, Any]) -> list[str]:
        """An exposure's owner ({email, name}) as Dagster owners: the e-mail, else team:<name>."""
        return map_owners([exposure.get("owner")], self.meta_report, exposure.get("unique_id", "?"))

    def exposure_kinds(self, exposure: Mapping[str, Any]) -> set[str]:
        extra = dagster_meta(exposure).get("kinds") or []
        return map_kinds(["dashboard", *(extra if isinstance(extra, list) else [extra])],
                         self.meta_report, exposure.get("unique_id", "?"))


class ManifestUnavailable(RuntimeError):
    """The dbt manifest is missing, truncated or stale and ``dbt parse`` could not rebuild it."""


_PARSED: dict[str, tuple[tuple[int, int], Mapping[str, Any]]] = {}  # path -> ((mtime_ns, size), manifest)


def read_manifest(manifest: Path) -> Mapping[str, Any]:
    """The parsed manifest (orjson, as dagster-dbt parses it), once per file version: checking
    it, building the dbt assets and the dashboards share one parse (a manifest of 1,000 models
    is ~0.3 s with orjson, ~1 s with the json module). Raises OSError / ValueError."""
    import orjson

    path = Path(manifest).resolve()
    st = path.stat()
    version = (st.st_mtime_ns, st.st_size)
    hit = _PARSED.get(str(path))
    if hit is not None and hit[0] == version:
        return hit[1]
    data = orjson.loads(path.read_bytes())
    _PARSED.clear()  # one project per code location: keep only the latest manifest
    _PARSED[str(path)] = (version, data)
    return data


def manifest_problem(manifest: Path) -> str | None:
    """Why a manifest cannot be used (None when it can): truncated or not dbt's JSON."""
    try:
        data = read_manifest(manifest)
    except (OSError, ValueError) as exc:
        return f"unreadable ({type(exc).__name__}: {str(exc)[:200]})"
    if not isinstance(data, dict) or not isinstance(data.get("nodes"), dict) or "metadata" not in data:
        return "not a dbt manifest (no nodes/metadata)"
    return None


def ensure_manifest() -> Path:
    """Parse the dbt project when its manifest is missing, older than any project file, or
    unreadable (a truncated file is rebuilt, not loaded). Raises ``ManifestUnavailable`` with
    dbt's own error when parsing fails (or the project / profiles folder is not usable)."""
    try:
        project = dbt_project()
    except ValueError as exc:  # no dbt_project.yml / no profiles.yml: the rest still loads
        raise ManifestUnavailable(str(exc)) from exc
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
            [str(dbt), "parse", "--quiet", *dbt_cli_args()],
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


def _has_partitioned_nodes(manifest: Mapping[str, Any]) -> bool:
    tag = PARTITIONED_SELECTOR.split(":", 1)[1]
    return any(tag in (node.get("tags") or ()) for node in manifest.get("nodes", {}).values())


def load_manifest() -> Mapping[str, Any]:
    """``ensure_manifest()``, parsed (once per file version, see ``read_manifest``)."""
    return read_manifest(ensure_manifest())


def build_dbt_assets(connector_keys: Set[dg.AssetKey],
                     manifest: Mapping[str, Any] | None = None) -> list[dg.AssetsDefinition]:
    # Parsed once (``read_manifest``) and shared by both decorators and the dashboards.
    manifest = validate_manifest(dict(manifest) if manifest is not None else dict(load_manifest()))
    translator = ProjectDbtTranslator(connector_keys)
    partitioned = _has_partitioned_nodes(manifest)
    pool = warehouse_pool(manifest)  # duckdb_warehouse on the embedded default, else warehouse/<name>

    # Without daily-partitioned models there is one dbt_assets with dagster-dbt's default
    # selection: evaluating a dbt selector costs a pass of dbt's graph over the whole manifest.
    @dbt_assets(
        manifest=manifest,
        project=dbt_project(),
        exclude=PARTITIONED_SELECTOR if partitioned else None,
        name="dbt_models",
        dagster_dbt_translator=translator,
        pool=pool,
    )
    def dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource):
        yield from stream_dbt(dbt.cli(["build"], context=context))  # failed nodes carried in the event

    if not partitioned:
        return [dbt_models]

    @dbt_assets(
        manifest=manifest,
        project=dbt_project(),
        select=PARTITIONED_SELECTOR,
        name="dbt_daily_partitioned",
        dagster_dbt_translator=translator,
        partitions_def=daily_partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=pool,
    )
    def dbt_daily_partitioned(context: dg.AssetExecutionContext, dbt: DbtCliResource):
        window = context.partition_time_window
        dbt_vars = {"min_date": window.start.isoformat(), "max_date": window.end.isoformat()}
        yield from stream_dbt(dbt.cli(["build", "--vars", json.dumps(dbt_vars)], context=context))

    return [dbt_models, dbt_daily_partitioned]
