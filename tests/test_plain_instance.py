"""The dagster-free reads behind ``orchestrator plan --dry-run`` (issue 15, item 7: fast CLI).

``orchestrator.plain_instance`` reads a SQLite Dagster instance's tables and must answer what
``orchestrator.snapshot.InstanceReader`` gets from Dagster's own API: here both read an instance
whose runs Dagster itself executed - a success, a failed step carrying dbt run results and an
exception chain, a run failure without a step, a partitioned run, a run not started yet, a wiped
asset - and must give the same snapshot parts. ``orchestrator.plain_clients`` must return what
the resources' dagster-fivetran / dagster-airbyte clients return from the emulators. And the
dry-run's read path must not import Dagster at all (what makes it fast).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from orchestrator.core.graph import DBT_MODEL, AssetGraph, AssetNode
from orchestrator.plain_instance import plain_instance
from orchestrator.snapshot import InstanceReader, build_snapshot, read_last_success

ROOT = Path(__file__).resolve().parent.parent
daily = dg.DailyPartitionsDefinition("2026-01-01")


@dg.asset(key=["raw", "orders"])
def orders():
    return 1


@dg.asset(deps=[orders], key=["marts", "revenue"])
def revenue():
    return 2


@dg.asset(deps=[revenue], key=["marts", "broken"])
def broken():
    try:
        raise ConnectionError("warehouse closed the connection")
    except ConnectionError as exc:
        raise dg.Failure(
            description="dbt build failed: 1 error",
            metadata={"dbt_run_results": dg.MetadataValue.json(
                {"results": [{"unique_id": "model.analytics.broken", "status": "error",
                              "message": "Database Error: relation missing"}]})},
        ) from exc


@dg.asset(partitions_def=daily, key=["events", "daily"])
def events_daily():
    return 3


@dg.asset(key=["wiped"])
def wiped():
    return 4


GRAPH = AssetGraph([
    AssetNode("raw/orders"), AssetNode("marts/revenue", upstream=("raw/orders",)),
    AssetNode("marts/broken", role=DBT_MODEL, upstream=("marts/revenue",), dbt_name="model.analytics.broken"),
    AssetNode("events/daily", partitioning="daily"), AssetNode("wiped"),
])


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """A SQLite instance (the default layout) holding runs Dagster executed."""
    path = tmp_path_factory.mktemp("plain_instance_home")
    with dg.DagsterInstance.local_temp(str(path)) as instance:
        dg.materialize([orders, revenue], instance=instance, tags={"team": "revops"})
        dg.materialize([orders, revenue, broken], instance=instance, raise_on_error=False)
        dg.materialize([events_daily], instance=instance, partition_key="2026-01-02")
        dg.materialize([wiped], instance=instance)
        instance.wipe_assets([dg.AssetKey("wiped")])
        job = dg.Definitions(assets=[orders], jobs=[dg.define_asset_job("later", selection=[orders])]
                             ).resolve_job_def("later")
        instance.create_run_for_job(job, run_config={})  # NOT_STARTED: in flight
        # a run that failed before any step: a RUN_FAILURE event and no STEP_FAILURE
        run = instance.create_run_for_job(job, run_config={})
        instance.report_run_failed(run, "the run worker was lost before its first step")
    return path


def _both(home):
    from dagster._core.instance.ref import InstanceRef

    instance = dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))
    plain = plain_instance(home)
    assert plain is not None
    return instance, plain


def test_plain_reads_what_dagster_reads(home):
    instance, plain = _both(home)
    since = datetime.now(UTC) - timedelta(days=2)
    resolvers = {"job_assets": lambda job: ("raw/orders",) if job == "later" else (),
                 "step_assets": lambda job, step: (step.replace("__", "/"),)}
    parts = []
    for source in (instance, plain):
        reader = InstanceReader(source, **resolvers)
        runs = reader.runs(since)
        mats, durations = reader.materializations(since, GRAPH, {r.run_id: r for r in runs})
        failures = reader.failures(since, GRAPH, {r.run_id: r for r in runs})
        parts.append((sorted(runs, key=lambda r: r.run_id), mats, durations,
                      sorted(failures, key=lambda f: f.failure_id), read_last_success(source, GRAPH.keys)))
    d_runs, d_mats, d_dur, d_fail, d_last = parts[0]
    p_runs, p_mats, p_dur, p_fail, p_last = parts[1]
    assert p_runs == d_runs and len(d_runs) == 6
    assert {r.status.value for r in d_runs} >= {"success", "failure", "queued"}
    assert any(r.partitions == ("2026-01-02",) for r in d_runs) and any(r.tags.get("team") == "revops" for r in d_runs)
    assert p_mats == d_mats and len(d_mats) >= 5
    assert p_dur == d_dur
    assert p_fail == d_fail
    # the dbt step split per node from the run results it carried; the lost run as a run failure
    assert any(f.failure_id.startswith("run:") and "lost before" in f.message for f in d_fail)
    assert any(f.asset_key == "marts/broken" and "relation missing" in f.message for f in d_fail)
    assert p_last == d_last
    assert set(d_last) == {"raw/orders", "marts/revenue", "events/daily"}  # the wiped asset has none


def test_other_storage_is_read_through_dagster(tmp_path, home):
    (tmp_path / "history" / "runs").mkdir(parents=True)
    (tmp_path / "history" / "runs.db").write_bytes((home / "history" / "runs.db").read_bytes())
    (tmp_path / "history" / "runs" / "index.db").write_bytes((home / "history" / "runs" / "index.db").read_bytes())
    assert plain_instance(tmp_path) is not None
    (tmp_path / "dagster.yaml").write_text("storage:\n  postgres:\n    postgres_url: postgresql://x/y\n")
    assert plain_instance(tmp_path) is None  # configured storage: the caller opens a DagsterInstance
    assert plain_instance(tmp_path / "nothing-ran-yet") is None


def test_the_dry_run_read_path_imports_no_dagster(home):
    """In a fresh interpreter: the CLI's plan module, the plain readers, the snapshot and the
    decision cycle run without ``dagster`` ever being imported."""
    code = textwrap.dedent(f"""
        import sys
        from datetime import datetime, timezone
        import orchestrator.planning.cli
        from orchestrator.core.graph import AssetGraph, AssetNode
        from orchestrator.plain_instance import plain_instance
        from orchestrator.snapshot import build_snapshot
        from orchestrator.assessment import assess
        from orchestrator.policies import load_and_resolve, DurationModel
        from orchestrator.proposals import Proposals
        from orchestrator.store import open_store
        graph = AssetGraph([AssetNode("raw/orders"), AssetNode("marts/revenue", upstream=("raw/orders",))])
        snap = build_snapshot(plain_instance({str(home)!r}), graph, now=datetime.now(timezone.utc))
        assert snap.runs and snap.last_success, snap
        res = load_and_resolve([], graph)
        Proposals(open_store()).run_cycle(snap, assess(snap, res, DurationModel({{}})), res, DurationModel({{}}),
                                          llm=None, dry_run=True)
        print("dagster" in sys.modules, sorted(m for m in sys.modules if m.startswith("dagster")) [:5])
    """)
    env = {**os.environ, "ORCHESTRATOR_STORE_URL": f"sqlite:///{home}/store.db"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().startswith("False"), out.stdout
