"""A schema-drift resync only when a deadline reads the connector's tables (issue 11, the cost target).

A table resync re-reads whole tables at full price where a sync reads only the new rows (a table
of 400k rows an hour: $145 a resync against cents a sync). On seeds 14000-14199 `sla` cost 1.07x
`cron-tuned`, most of the excess in resyncs: world 14080 resynced a connector 8 times ($1,161)
whose tables no deadline reads (cron-tuned waited for on-call and met 18/18).

* A drifting connector whose tables no deadline reads is never resynced: the drift is escalated
  to the owners. One table of it that a deadline reads is enough for the resync (the drift fails
  the connector's whole sync; world 14027). Random worlds: which table drifts, whether the other
  table feeds the deadline, the deadline, its window and the planning instant are drawn by Hypothesis.
* ``PlannerConfig.resync_waits_for_window`` (off: a resync also fixes the drift, and a fault
  arriving while it waits left no time in worlds 14027, 14038, 14044): the resync waits for the
  window of the cycle that needs the tables to open; one a person must approve is asked at once
  with ``not_before`` at that opening.
* Validation drops a resync whose tables all landed after the failure it answers (the drift was
  fixed meanwhile: an approved resync waiting for its start).
"""

from __future__ import annotations

import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.core.decide import decide
from orchestrator.core.graph import CONNECTOR_TABLE, DASHBOARD, DBT_MODEL, AssetGraph, AssetNode
from orchestrator.core.records import Action, FailureRecord, FreshnessStatus, Plan, Snapshot
from orchestrator.planning import PlannerConfig
from orchestrator.planning.validate import validate
from orchestrator.policies import DurationModel, load_policies, resolve

UTC = timezone.utc
DAY = datetime(2026, 10, 26, tzinfo=UTC)
DRIFT = "Column 'amount' changed type from INTEGER to STRING in the source: incompatible with the destination"

POLICY = """
policies:
  - name: dash
    select: [{{key: "dash/a"}}]
    deadline: {{cron: "0 {hour} * * *", timezone: UTC, window: {window}h}}
    tier: high
    owners: [team:a]
    rollout: auto
    auto_approve: [retry, materialize{resync}]
  - name: platform
    select: [{{role: connector_table}}]
    tier: standard
    owners: [team:platform]
    rollout: auto
    auto_approve: [retry, materialize{resync}]
"""


def _world(now: datetime, *, sync_s: float, hour: int = 22, window: int = 6, drifted: str = "src/t",
           preauthorised: bool = True, landed_after: bool = False, data_at: datetime | None = None,
           t_connector: str = "fivetran:src"):
    """src/t (read by m -> dash/a under a deadline, synced by ``t_connector``) and src/u (read by
    an ungoverned model, synced by fivetran:src); ``drifted`` failed on a breaking schema change
    20 minutes ago."""
    n = AssetNode
    g = AssetGraph([
        n("src/t", CONNECTOR_TABLE, kinds=frozenset({"fivetran"}), connector=t_connector),
        n("src/u", CONNECTOR_TABLE, kinds=frozenset({"fivetran"}), connector="fivetran:src"),
        n("m", DBT_MODEL, upstream=("src/t",)),
        n("side", DBT_MODEL, upstream=("src/u",)),
        n("dash/a", DASHBOARD, upstream=("m",)),
    ])
    durations = {"src/t": [sync_s] * 6, "src/u": [sync_s] * 6, "m": [60.0] * 6, "side": [60.0] * 6,
                 "dash/a": [5.0] * 6}
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "p.yaml"
        p.write_text(POLICY.format(hour=hour, window=window, resync=", resync_table" if preauthorised else ""))
        res = resolve(load_policies([p]), g, DurationModel(durations), now)
    assert res.ok, res.skip_reason
    failed_at = now - timedelta(minutes=20)
    old = data_at or now - timedelta(hours=30)  # by default older than any window
    last = {k: old for k in g.keys}
    if landed_after:  # the drift was fixed and the connector's own sync landed the tables since
        last["src/t"] = last["src/u"] = failed_at + timedelta(minutes=5)
    snap = Snapshot(taken_at=now, graph=g, durations=durations, last_success=last,
                    data_time={k: old for k in g.keys},
                    failures=[FailureRecord("f-drift", failed_at, DRIFT, "fivetran", asset_key=drifted,
                                            connector=g.node(drifted).connector)],
                    schema_change_handling={"fivetran:src": "BLOCK_ALL", "fivetran:other": "BLOCK_ALL"})
    return snap, res


def _resyncs(d):
    return [g for g in d.decisions if g.action.type == "resync_table"]


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sync_min=st.integers(3, 120), hour=st.integers(0, 23), window=st.integers(2, 12),
       now_min=st.integers(0, 24 * 60 - 1), drifted=st.sampled_from(["src/t", "src/u"]),
       shared=st.booleans())
def test_a_connector_no_deadline_reads_is_escalated_never_resynced(sync_min, hour, window, now_min, drifted, shared):
    """``shared``: src/t (the deadline's table) is synced by the drifting connector too."""
    now = DAY + timedelta(minutes=now_min)
    snap, res = _world(now, sync_s=sync_min * 60.0, hour=hour, window=window, drifted=drifted,
                       t_connector="fivetran:src" if shared else "fivetran:other")
    d = decide(snap, res, now=now)
    read_by_deadline = shared or drifted == "src/t"
    if read_by_deadline:
        # the cycle of a 30-hour-old table is open or breached: resynced now, as before
        assert [g.action.asset_keys for g in _resyncs(d)] == [(drifted,)], [g.reason for g in d.decisions]
    else:
        assert not _resyncs(d), [g.action.reason for g in _resyncs(d)]
        assert any(e.category == "schema_drift" and drifted in e.reason for e in d.plan.escalations), \
            [e.reason for e in d.plan.escalations]


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sync_min=st.integers(3, 120), hour=st.integers(0, 23), window=st.integers(2, 12),
       now_min=st.integers(0, 24 * 60 - 1), age_h=st.integers(1, 30))
def test_waiting_for_the_window_a_resync_runs_once_the_cycle_that_needs_the_table_opens(
        sync_min, hour, window, now_min, age_h):
    now = DAY + timedelta(minutes=now_min)
    snap, res = _world(now, sync_s=sync_min * 60.0, hour=hour, window=window,
                       data_at=now - timedelta(hours=age_h))
    d = decide(snap, res, now=now, planner_config=PlannerConfig(resync_waits_for_window=True))
    fa = d.assessment.freshness["src/t"]
    resynced = [g for g in _resyncs(d) if g.decision == "execute"]
    if fa.window_open is None:
        return
    data_at = now - timedelta(hours=age_h)
    if resynced:
        # a resync now lands data newer than the opening of a cycle that needs it
        assert fa.window_open <= now or fa.status is not FreshnessStatus.ok, (fa.window_open, now, fa.status)
    elif fa.window_open <= now and data_at < fa.window_open:
        raise AssertionError(f"stale for the cycle open since {fa.window_open:%H:%M} and not resynced "
                             f"({fa.status.value}): {[n for n in d.plan.rationale.split('; ')]}")


def test_waiting_for_the_window_a_resync_that_needs_approval_is_asked_now_to_start_at_the_opening():
    # 14:00, the 22:00 deadline's window opens at 16:00; the data served yesterday's cycle
    now = DAY + timedelta(hours=14)
    snap, res = _world(now, sync_s=1800.0, preauthorised=False, data_at=DAY - timedelta(hours=4))
    d = decide(snap, res, now=now, planner_config=PlannerConfig(resync_waits_for_window=True))
    asked = _resyncs(d)
    assert [g.decision for g in asked] == ["await_approval"], [(g.decision, g.reason) for g in asked]
    assert asked[0].action.not_before == DAY + timedelta(hours=16), asked[0].action.not_before
    # by default (not waiting for the window) it is asked to run at once, as before
    d = decide(snap, res, now=now)
    assert [(g.decision, g.action.not_before) for g in _resyncs(d)] == [("await_approval", None)]


def test_a_resync_whose_tables_landed_after_the_drift_is_stale():
    now = DAY + timedelta(hours=12)
    snap, res = _world(now, sync_s=1800.0, landed_after=True)
    a = Action("resync-1", "resync_table", "drift", asset_keys=("src/t",), connector="fivetran:src",
               tables={"src": ("t",)}, cause="schema_drift", cycle="f-drift")
    accepted, rejected = validate(Plan(now, [a], "test"), snap, res, now=now)
    assert not accepted and "stale" in rejected[0][1], rejected
    snap, res = _world(now, sync_s=1800.0)  # still failing: the resync is valid
    accepted, rejected = validate(Plan(now, [a], "test"), snap, res, now=now)
    assert accepted and not rejected, rejected


def _simulate(sc, seed, resync_when_needed: bool):
    from orchestrator.simulator.bench import resolve_policies, simulate
    from orchestrator.simulator.metrics import deadlines_of
    from orchestrator.simulator.planners.sla import SLAPlanner

    res = resolve_policies(sc, sc.realise(seed))
    planner = SLAPlanner()
    planner.resync_when_needed = resync_when_needed
    return simulate(sc, seed, planner, res, deadlines_of(res, sc.t0, sc.horizon_s))


@pytest.mark.parametrize("seed", [14080])
def test_the_world_that_resynced_tables_no_deadline_reads(tmp_path, seed):
    """14080: a drifting connector (400k rows an hour) whose tables no deadline reads, resynced 8
    times. Now: the same deadlines met, at less than a third of the cost (main $1,645, cron-tuned
    $506)."""
    from orchestrator.simulator import load_scenario
    from orchestrator.simulator.worlds import generate_world

    sc = load_scenario(generate_world(seed, tmp_path))
    before = _simulate(sc, seed, False)
    after = _simulate(sc, seed, True)
    assert after.unsafe_actions == 0, after.unsafe_by_kind
    assert after.met >= before.met, (after.met, before.met, after.deadlines)
    assert after.cost < 0.5 * before.cost, (after.cost, before.cost)
