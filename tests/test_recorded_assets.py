"""External assets recorded by an op job (orchestrator.lib.recorded): the agent's sensors launch
their runs in that job (Dagster itself resolves the requests), the snapshot attributes the job's
runs and steps to them, and mixing them with executable assets in one run is refused by name.

A small code location of its own: an unpartitioned asset, a daily-partitioned external asset
recorded by a partitioned op job (as the daily-partitioned dbt models are), its downstream."""

from __future__ import annotations

import dagster as dg
import pytest

from orchestrator.core.records import Action
from orchestrator.lib.recorded import (
    AGENT_ASSET_JOB,
    RECORDS,
    as_recorded,
    job_asset_keys,
    recorded_assets,
    route,
)
from orchestrator.lib.sensors import ProjectContext
from orchestrator.lib.sensors.execution import run_requests_for

DAYS = dg.DailyPartitionsDefinition(start_date="2026-10-01", timezone="UTC", end_offset=1)


@dg.asset
def events():
    return 1


DAILY = as_recorded(dg.AssetSpec("events_daily", deps=[events], partitions_def=DAYS, owners=["team:product"]),
                    "daily_job", "build_day")


@dg.asset(deps=[DAILY.key])
def report():
    return 1


@dg.op(name="build_day", out={})
def build_day(context):
    yield dg.AssetMaterialization(DAILY.key, partition=context.partition_key)


@dg.job(name="daily_job", partitions_def=DAYS, metadata={RECORDS: "events_daily"})
def daily_job():
    build_day()


def _defs(sensor_target: dict) -> dg.Definitions:
    @dg.sensor(name="agent", **sensor_target)
    def agent(context):
        actions = [
            Action(action_id="a-day", type="backfill", reason="t", asset_keys=("events_daily",),
                   partitions=("2026-10-03",)),
            Action(action_id="a-run", type="materialize", reason="t", asset_keys=("events", "report")),
        ]
        return [rr for a in actions for rr in run_requests_for(a, repository_def=context.repository_def)]

    return dg.Definitions(assets=[events, DAILY, report], jobs=[daily_job], sensors=[agent])


@pytest.fixture(scope="module")
def repo():
    ctx = ProjectContext(graph=None, resolution=None, recording_jobs=(daily_job,))
    return _defs(ctx.run_target()).get_repository_def()


def test_the_sensor_launches_the_day_in_the_op_job_and_the_rest_in_an_asset_job(repo):
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, repository_def=repo, sensor_name="agent")
        result = repo.get_sensor_def("agent").evaluate_tick(context)  # Dagster's own request resolution
    by_key = {rr.run_key: rr for rr in result.run_requests}
    day = by_key["a-day:2026-10-03"]
    assert day.job_name == "daily_job" and day.asset_selection is None
    assert day.partition_key == "2026-10-03" and day.tags["dagster/partition"] == "2026-10-03"
    rest = by_key["a-run"]
    assert rest.job_name == AGENT_ASSET_JOB
    assert set(rest.asset_selection) == {events.key, report.key}
    # the agent's asset job covers every executable asset, not the external one
    assert set(repo.get_job(AGENT_ASSET_JOB).asset_layer.selected_asset_keys) == {events.key, report.key}


def test_an_asset_selection_sensor_is_kept_without_recording_jobs():
    ctx = ProjectContext(graph=None, resolution=None)
    assert ctx.run_target() == {"target": dg.AssetSelection.all()}
    plain = dg.Definitions(assets=[events, report]).get_repository_def()
    rr = run_requests_for(Action(action_id="x", type="materialize", reason="t", asset_keys=("events",)), repository_def=plain)
    assert rr[0].job_name is None and rr[0].asset_selection == [events.key]


def test_mixing_recorded_and_executable_assets_is_refused_by_name(repo):
    mixed = Action(action_id="m", type="backfill", reason="t", asset_keys=("events_daily", "report"),
                   partitions=("2026-10-03",))
    with pytest.raises(ValueError, match=r"events_daily \(daily_job\).*report \(asset job\)"):
        run_requests_for(mixed, repository_def=repo)


def test_the_snapshot_attributes_the_op_jobs_runs_and_steps_to_the_recorded_assets(repo):
    from orchestrator.snapshot import resolvers_from_repository

    job_assets, step_assets = resolvers_from_repository(repo)
    assert job_assets("daily_job") == ("events_daily",)
    assert step_assets("daily_job", "build_day") == ("events_daily",)
    assert job_asset_keys(repo.get_job("daily_job")) == ("events_daily",)
    assert recorded_assets(repo.assets_defs_by_key.values()) == {"daily_job": {"build_day": ("events_daily",)}}


def test_the_op_job_records_the_partition_and_the_lineage_keeps_the_asset(repo):
    with dg.instance_for_test() as instance:
        assert repo.get_job("daily_job").execute_in_process(instance=instance, partition_key="2026-10-03").success
        event = instance.get_latest_materialization_event(DAILY.key)
        assert event.asset_materialization.partition == "2026-10-03"
        assert instance.get_materialized_partitions(DAILY.key) == {"2026-10-03"}
    node = repo.asset_graph.get(DAILY.key)
    assert not node.is_executable and node.partitions_def == DAYS
    assert node.child_keys == {report.key}


def test_route_leaves_requests_alone_without_a_repository():
    rr = dg.RunRequest(run_key="k", asset_selection=[events.key])
    assert route([rr], None) == [rr]
