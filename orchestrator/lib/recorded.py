"""Assets recorded by an op job: external ``AssetSpec``s (lineage, owners, partitions, checks kept)
whose materializations an op job logs (``AssetMaterialization(partition=...)``).

Why: Dagster's UI launches "Materialize all" as one run only when every selected *executable*
asset is unpartitioned (``LaunchAssetExecutionButton.stateForLaunchingAssets``); a partitioned
asset anywhere in the global graph turns it into a partitions dialog. An external asset is never
selected, so a daily-partitioned model declared external and built by its own partitioned op job
keeps "Materialize all" one click.

The spec names its job and op in its metadata (``RECORDED_BY_JOB`` / ``RECORDED_BY_OP``); the
sensors route run requests for it to that job (``route``), and the snapshot attributes the job's
runs and steps to it (``recorded_assets``)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

import dagster as dg

RECORDED_BY_JOB = "orchestrator/recorded_by_job"
RECORDED_BY_OP = "orchestrator/recorded_by_op"
# on the op job: the asset keys it records (user strings), for readers without the specs
RECORDS = "orchestrator/records"
# the asset job the agent's sensors launch executable assets' runs in when they target jobs (not
# Dagster's "__anonymous_asset_job" prefix: that marks a sensor with a single anonymous target)
AGENT_ASSET_JOB = "orchestrator_agent_runs"


def _value(metadata: Mapping[str, Any] | None, key: str) -> str | None:
    raw = (metadata or {}).get(key)
    raw = getattr(raw, "value", raw)
    return raw if isinstance(raw, str) and raw else None


def recorded_by(metadata: Mapping[str, Any] | None) -> tuple[str, str] | None:
    """(job, op) that records an asset with this metadata, or None (an executable asset)."""
    job = _value(metadata, RECORDED_BY_JOB)
    return (job, _value(metadata, RECORDED_BY_OP) or "") if job else None


def as_recorded(spec: dg.AssetSpec, job: str, op: str) -> dg.AssetSpec:
    """``spec`` as an external asset recorded by ``job``'s op ``op``."""
    return spec.merge_attributes(metadata={RECORDED_BY_JOB: job, RECORDED_BY_OP: op})


def recorded_assets(assets_defs: Iterable[dg.AssetsDefinition]) -> dict[str, dict[str, tuple[str, ...]]]:
    """job -> op -> the asset keys (user strings) it records, from a repository's asset
    definitions (``repo_def.assets_defs_by_key.values()``)."""
    out: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for assets_def in assets_defs:
        for spec in assets_def.specs:
            where = recorded_by(spec.metadata)
            if where is not None:
                out[where[0]][where[1]].add(spec.key.to_user_string())
    return {job: {op: tuple(sorted(keys)) for op, keys in ops.items()} for job, ops in out.items()}


def op_name(assets_def: dg.AssetsDefinition) -> str | None:
    """The op that materializes ``assets_def``: its node, or for an external asset the op of the
    job recording it (None: an external asset nothing records)."""
    try:
        return assets_def.node_def.name
    except Exception:  # noqa: BLE001 - external assets have no node
        for spec in assets_def.specs:
            where = recorded_by(spec.metadata)
            if where is not None and where[1]:
                return where[1]
        return None


def job_asset_keys(job) -> tuple[str, ...]:
    """A job's asset keys (user strings): its asset layer's selection, or for an op job that
    records external assets the keys in its ``RECORDS`` metadata."""
    try:
        keys = tuple(sorted(k.to_user_string() for k in job.asset_layer.selected_asset_keys))
    except Exception:  # noqa: BLE001 - op jobs without an asset layer
        keys = ()
    if keys:
        return keys
    listed = _value(getattr(job, "metadata", None), RECORDS)
    return tuple(sorted(k.strip() for k in listed.split(",") if k.strip())) if listed else ()


def recording_jobs(asset_graph) -> dict[dg.AssetKey, str]:
    """asset key -> the op job recording it, over a Dagster asset graph (``repo_def.asset_graph``)."""
    out: dict[dg.AssetKey, str] = {}
    for key in asset_graph.get_all_asset_keys():
        node = asset_graph.get(key)
        if node.is_executable:
            continue
        where = recorded_by(node.metadata)
        if where is not None:
            out[key] = where[0]
    return out


def route(requests: Iterable[dg.RunRequest], repository_def) -> list[dg.RunRequest]:
    """Run requests with a job: one whose assets an op job records goes to that job (no asset
    selection: the op job records all of them); the others keep their asset selection and get
    the agent's asset job when the repository has one (sensors targeting jobs, see
    ``ProjectContext.run_target``). Raises ``ValueError`` naming the assets when one request mixes
    recorded and executable assets, or assets of two recording jobs."""
    if repository_def is None:
        return list(requests)
    jobs = recording_jobs(repository_def.asset_graph)
    default_job = AGENT_ASSET_JOB if jobs and repository_def.has_job(AGENT_ASSET_JOB) else None
    out = []
    for rr in requests:
        keys = list(rr.asset_selection or [])
        owners = {jobs.get(k) for k in keys}
        if not keys or owners == {None}:
            out.append(rr.with_replaced_attrs(job_name=default_job) if default_job and not rr.job_name else rr)
            continue
        if len(owners) > 1:
            names = ", ".join(sorted(f"{k.to_user_string()} ({jobs.get(k) or 'asset job'})" for k in keys))
            raise ValueError(f"assets recorded by different jobs cannot run in one run: {names}")
        out.append(rr.with_replaced_attrs(job_name=next(iter(owners)), asset_selection=None,
                                          asset_check_keys=None))
    return out
