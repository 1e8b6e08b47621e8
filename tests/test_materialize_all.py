""""Materialize all" in one click on the embedded default, by Dagster's own rule.

The UI (dagster-webserver 1.13, ``LaunchAssetExecutionButton.stateForLaunchingAssets``) launches
one run straight away only when every selected executable asset is unpartitioned, none needs
config, and they share a job; a partitioned asset in the selection opens the partitions/backfill
dialog, a non-executable (external) asset is never selected. This checks the project's
definitions against that rule: the refresh_everything job's "Materialize all" is one run; the
digest is external (no "Materialize all" selects it) and recorded by its own job."""

from __future__ import annotations

import dagster as dg

DIGEST = dg.AssetKey("orchestrator_digest")


def _launch_state(defs: dg.Definitions, keys: set[dg.AssetKey], preferred_job: str | None = None) -> str:
    """The UI's decision for a "Materialize all" over ``keys``: single-run | partitions | launchpad."""
    graph = defs.resolve_asset_graph()
    repo = defs.get_repository_def()
    materializable = [k for k in keys if graph.get(k).is_executable and not graph.get(k).is_observable]
    jobs = {job.name: job.asset_layer.selected_asset_keys for job in repo.get_all_jobs()}
    common = [name for name, selected in jobs.items() if all(k in selected for k in materializable)]
    job = preferred_job if preferred_job in common else (common[0] if common else None)
    if any(graph.get(k).partitions_def is not None for k in materializable):
        return "partitions"
    if job is None:
        return "error"
    assets_defs = {k: graph.assets_def_for_key(k) for k in materializable}
    needs_config = any(a.op.config_schema is not None and a.op.config_schema.as_field().is_required
                       for a in assets_defs.values() if a.op is not None)
    return "launchpad" if needs_config else "single-run"


def test_refresh_everything_materializes_all_in_one_run(project_defs):
    job = project_defs.resolve_job_def("refresh_everything")
    keys = set(job.asset_layer.selected_asset_keys)
    assert len(keys) > 20
    assert _launch_state(project_defs, keys, preferred_job="refresh_everything") == "single-run"


def test_the_digest_is_in_no_materialize_all(project_defs):
    graph = project_defs.resolve_asset_graph()
    node = graph.get(DIGEST)
    assert not node.is_executable  # an external asset: the UI filters it out of every "Materialize all"
    digest_job = project_defs.resolve_job_def("daily_digest")
    assert "orchestrator_digest" in digest_job.graph.node_dict  # recorded by its own op job
    everything = {k for k in graph.get_all_asset_keys() if graph.get(k).is_executable}
    assert DIGEST not in everything
    # What the global lineage's "Materialize all" still asks (Dagster's rule, documented in README):
    # the daily-partitioned model makes it a partitions/backfill dialog.
    partitioned = {k for k in everything if graph.get(k).partitions_def is not None}
    assert partitioned and _launch_state(project_defs, everything) == "partitions"
