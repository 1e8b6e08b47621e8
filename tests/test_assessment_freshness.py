"""Freshness assessment on small DST-free graphs (UTC deadlines)."""

from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.assessment import assess, assess_freshness, recoveries
from orchestrator.core.graph import AssetGraph, AssetNode
from orchestrator.core.records import RunRecord, RunStatus, Snapshot
from orchestrator.policies import DurationModel, load_policies, resolve

POLICY = """
policies:
  - name: exec
    select: [{key: "dashboard/exec"}]
    deadline: {cron: "0 6 * * *", timezone: UTC, window: 8h}
    tier: critical
"""

# source/a (connector, 10 min) -> stg_a (5 min) -> mart (5 min) -> dashboard/exec (1 min)
#                 source/b (10 min) -> stg_b (5 min) --^
DURATIONS = {"source/a": [600] * 5, "source/b": [600] * 5, "stg_a": [300] * 5,
             "stg_b": [300] * 5, "mart": [300] * 5, "dashboard/exec": [60] * 5}


def _graph() -> AssetGraph:
    return AssetGraph([
        AssetNode("source/a", role="connector_table", connector="fivetran:a", kinds=frozenset({"fivetran"})),
        AssetNode("source/b", role="connector_table", connector="airbyte:b", kinds=frozenset({"airbyte"})),
        AssetNode("stg_a", role="dbt_model", upstream=("source/a",)),
        AssetNode("stg_b", role="dbt_model", upstream=("source/b",)),
        AssetNode("mart", role="dbt_model", upstream=("stg_a", "stg_b")),
        AssetNode("dashboard/exec", role="dashboard", upstream=("mart",)),
    ])


def T(h, m=0, day=10):
    return datetime(2026, 3, day, h, m, tzinfo=UTC)


@pytest.fixture
def setup(tmp_path):
    (tmp_path / "p.yaml").write_text(POLICY)
    graph = _graph()
    durations = DurationModel(DURATIONS)
    res = resolve(load_policies([tmp_path]), graph, durations, T(1))
    assert res.ok, res.errors
    return graph, res, durations


def snap(graph, now, last, runs=()):
    return Snapshot(taken_at=now, graph=graph, last_success=dict(last), runs=list(runs),
                    durations=DURATIONS)


def test_ok_when_everything_fresh(setup):
    graph, res, durations = setup
    last = {k: T(2) for k in graph.keys}
    out = assess_freshness(snap(graph, T(3), last), res, durations)
    assert out["dashboard/exec"].status.value == "ok"
    assert out["dashboard/exec"].deadline == T(6)
    # upstream effective deadlines: lead = the path duration below them
    assert out["mart"].deadline == T(6) - timedelta(seconds=60)
    assert out["source/a"].deadline == T(6) - timedelta(seconds=660)


def test_ok_with_enough_slack_to_run_now(setup):
    graph, res, durations = setup
    last = {k: T(23, day=8) for k in graph.keys}  # stale for the 10th 06:00 cycle (opens 22:00 on 9th)
    a = assess_freshness(snap(graph, T(3), last), res, durations)["dashboard/exec"]
    assert a.status.value == "ok"
    # critical path: source (10m) -> stg (5m) -> mart (5m) -> dashboard (1m) = 21 min
    assert a.predicted_ready == T(3, 21)
    assert a.slack_s == pytest.approx(3 * 3600 - 21 * 60)


def test_slow_upstream_makes_dashboard_at_risk_before_deadline(setup):
    graph, res, _ = setup
    last = {k: T(23, day=8) for k in graph.keys}
    # source/b sync running since 05:00 and predicted to take 90 minutes
    slow = DurationModel({**DURATIONS, "source/b": [5400] * 5})
    run = RunRecord("r1", RunStatus.running, ("source/b",), created_at=T(5), started_at=T(5))
    now = T(5, 10)
    a = assess_freshness(snap(graph, now, last, [run]), res, slow, now)["dashboard/exec"]
    assert now < a.deadline
    assert a.status.value == "at_risk"
    assert a.blocking_asset == "source/b"
    assert a.predicted_ready == T(6, 30) + timedelta(minutes=11)
    assert a.slack_s < 0
    assert "source/b" in a.reason


def test_queued_run_starts_now(setup):
    graph, res, durations = setup
    last = {k: T(23, day=8) for k in graph.keys}
    run = RunRecord("r1", RunStatus.queued, ("source/a", "source/b"), created_at=T(5, 30))
    a = assess_freshness(snap(graph, T(5, 40), last, [run]), res, durations)["dashboard/exec"]
    assert a.predicted_ready == T(6, 1)
    assert a.status.value == "at_risk"


def test_breached_after_deadline_then_recovery(setup):
    graph, res, durations = setup
    last = {k: T(23, day=8) for k in graph.keys}
    now = T(6, 30)
    out = assess_freshness(snap(graph, now, last), res, durations)
    a = out["dashboard/exec"]
    assert a.status.value == "breached"
    assert a.deadline == T(6)
    prev = {k: v.status.value for k, v in out.items()}
    # the late refresh lands at 06:45: recovered, assessed against the next day's deadline
    last2 = {k: T(6, 45) for k in graph.keys}
    out2 = assess_freshness(snap(graph, T(7), last2), res, durations)
    assert out2["dashboard/exec"].status.value == "ok"
    assert out2["dashboard/exec"].deadline == T(6, day=11)
    assert "dashboard/exec" in recoveries(prev, out2)


def test_upstream_late_for_its_effective_deadline(setup):
    graph, res, durations = setup
    # everything fresh except source/b, still at 05:58: its effective deadline (05:39) passed
    last = {k: T(2) for k in graph.keys}
    last["source/b"] = T(23, day=8)
    out = assess_freshness(snap(graph, T(5, 58), last), res, durations)
    assert out["source/b"].status.value == "breached"
    assert out["dashboard/exec"].status.value == "at_risk"
    assert out["dashboard/exec"].blocking_asset == "source/b"


def test_before_window_opens_work_waits(setup):
    graph, res, durations = setup
    last = {k: T(2, day=9) for k in graph.keys}  # fresh for the 9th; 10th's window opens 22:00 on the 9th
    a = assess_freshness(snap(graph, T(12, day=9), last), res, durations)["dashboard/exec"]
    assert a.status.value == "ok" and a.deadline == T(6)


def test_max_lag(tmp_path):
    (tmp_path / "p.yaml").write_text(
        "policies:\n  - name: lag\n    select: [{key: mart}]\n    max_lag: 2h\n"
    )
    graph = _graph()
    durations = DurationModel(DURATIONS)
    res = resolve(load_policies([tmp_path]), graph, durations, T(1))
    last = {k: T(1) for k in graph.keys}
    out = assess_freshness(snap(graph, T(2), last), res, durations)
    assert out["mart"].status.value == "ok"
    out = assess_freshness(snap(graph, T(2, 55), last), res, durations)
    assert out["mart"].status.value == "at_risk"
    out = assess_freshness(snap(graph, T(3, 30), last), res, durations)
    assert out["mart"].status.value == "breached"


def test_invalid_policies_skip(tmp_path):
    (tmp_path / "p.yaml").write_text("policies:\n  - name: bad\n    select: [{key: nope}]\n    max_lag: 2h\n")
    graph = _graph()
    res = resolve(load_policies([tmp_path]), graph, DurationModel(), T(1))
    assert not res.ok
    a = assess(snap(graph, T(2), {}), res)
    assert a.skipped and "invalid" in a.skipped
    assert a.freshness == {}
