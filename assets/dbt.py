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
from orchestrator.lib.recorded import RECORDS, as_recorded
from orchestrator.resources import dbt_cli_args, dbt_env, dbt_project, warehouse_pool
from orchestrator.resources.dbt_failures import stream_dbt

PARTITIONED_SELECTOR = "tag:partitioned_daily"
DAILY_JOB = "daily_partitioned_models"  # the op job recording the daily-partitioned models
DAILY_OP = "dbt_daily_partitioned"
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

    # The daily-partitioned models are external assets recorded by the partitioned op job
    # ``daily_partitioned_models`` (one day per run, ``build_daily_partitioned_job``), not
    # executable assets: Dagster's UI opens a partitions dialog for any "Materialize all" holding a
    # partitioned executable asset (orchestrator/lib/recorded.py). Same keys, deps, owners,
    # partitions and dbt tests (as checks) as a partitioned dbt_assets would have.
    dbt_daily_partitioned = _partitioned_specs(connector_keys, manifest, pool)
    specs = [as_recorded(spec, DAILY_JOB, DAILY_OP) for spec in dbt_daily_partitioned.specs]
    return [dbt_models, *specs]


def dbt_vars_for(window) -> dict[str, str]:
    """The partition window as the dbt vars the partitioned models filter on."""
    return {"min_date": window.start.isoformat(), "max_date": window.end.isoformat()}


def build_daily_partitioned_job(connector_keys: Set[dg.AssetKey], manifest: Mapping[str, Any] | None = None,
                                *, tags: Mapping[str, str] | None = None) -> list[Any]:
    """The op job that builds the daily-partitioned models one day per run, and their dbt tests
    as executable asset checks: ``[job, checks]`` (empty when no model is partitioned).

    The op runs ``dbt build --select tag:partitioned_daily`` with the partition window as vars;
    dagster-dbt logs each model as an ``AssetMaterialization`` (stamped here with the run's
    partition) and each dbt test as an ``AssetCheckEvaluation`` of the check with its name."""
    manifest = validate_manifest(dict(manifest) if manifest is not None else dict(load_manifest()))
    if not _has_partitioned_nodes(manifest):
        return []
    translator = ProjectDbtTranslator(connector_keys)
    pool = warehouse_pool(manifest)
    partitioned = _partitioned_specs(connector_keys, manifest, pool)
    keys = sorted(k.to_user_string() for k in partitioned.keys)

    @dg.op(name=DAILY_OP, out={}, pool=pool, description="dbt build --select tag:partitioned_daily for one day.")
    def build_day(context: dg.OpExecutionContext, dbt: DbtCliResource):
        partition = context.partition_key
        dbt_vars = dbt_vars_for(context.partition_time_window)
        args = ["build", "--select", PARTITIONED_SELECTOR, "--vars", json.dumps(dbt_vars)]
        invocation = dbt.cli(args, manifest=manifest, dagster_dbt_translator=translator, context=context)
        for event in stream_dbt(invocation):
            if isinstance(event, dg.AssetMaterialization) and event.partition is None:
                event = dg.AssetMaterialization(asset_key=event.asset_key, description=event.description,
                                                metadata=event.metadata, partition=partition, tags=event.tags)
            yield event

    @dg.job(name=DAILY_JOB, partitions_def=daily_partitions, tags=dict(tags or {}),
            metadata={RECORDS: ", ".join(keys)},
            description="The daily-partitioned dbt models (" + ", ".join(keys) + "), one day per run; "
                        "they are external assets in the graph, so \"Materialize all\" stays one run.")
    def daily_partitioned_models():
        build_day()

    @dg.multi_asset_check(
        specs=list(partitioned.check_specs),
        name=f"{DAILY_OP}_tests",
        can_subset=True,
        pool=pool,
        description="The dbt tests of the daily-partitioned models (every day built so far).",
    )
    def daily_partitioned_tests(context: dg.AssetCheckExecutionContext, dbt: DbtCliResource):
        selected = {k.name for k in context.selected_asset_check_keys}
        args = ["test", "--select", PARTITIONED_SELECTOR]
        invocation = dbt.cli(args, manifest=manifest, dagster_dbt_translator=translator, raise_on_error=False)
        for event in invocation.stream():
            if isinstance(event, dg.AssetCheckResult) and event.check_name in selected:
                yield event
            elif isinstance(event, dg.AssetCheckEvaluation) and event.check_name in selected:
                yield dg.AssetCheckResult(asset_key=event.asset_key, check_name=event.check_name,
                                          passed=event.passed, severity=event.severity, metadata=event.metadata)

    return [daily_partitioned_models, daily_partitioned_tests]


_SPECS: dict[tuple, dg.AssetsDefinition] = {}


def _partitioned_specs(connector_keys: Set[dg.AssetKey], manifest: Mapping[str, Any], pool) -> dg.AssetsDefinition:
    """The daily-partitioned models as dagster-dbt derives them (specs and check specs only,
    never executed), once per manifest: the assets and the job share one dbt selection pass."""
    memo = (_manifest_identity(manifest), str(dbt_project().project_dir), frozenset(connector_keys), pool)
    hit = _SPECS.get(memo)
    if hit is not None:
        return hit

    @dbt_assets(
        manifest=manifest,
        project=dbt_project(),
        select=PARTITIONED_SELECTOR,
        name=DAILY_OP,
        dagster_dbt_translator=ProjectDbtTranslator(connector_keys),
        partitions_def=daily_partitions,
        pool=pool,
    )
    def specs_only(context: dg.AssetExecutionContext, dbt: DbtCliResource):  # pragma: no cover
        raise NotImplementedError("specs only: the daily_partitioned_models job builds these models")

    _SPECS.clear()
    _SPECS[memo] = specs_only
    return specs_only


def _manifest_identity(manifest: Mapping[str, Any]) -> tuple:
    meta = manifest.get("metadata") or {}
    return (meta.get("invocation_id"), meta.get("generated_at"), len(manifest.get("nodes") or {}))
