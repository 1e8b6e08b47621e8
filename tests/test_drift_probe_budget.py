"""A schema-drift resync over the budget does not block its lineage: a plain sync probes instead.

Generated world 15233: a table resync of fivetran:src1 ($59) was over its policy's $44.55 daily
budget. Validation rejected it every cycle for three days, the planner kept the drifted table
blocked for the resync, and both deadlines were lost; on-call had fixed the drift hours after it
appeared, and cron-tuned's plain syncs landed the table within the budget. ``decide.drift_probes``
runs one plain sync of the connector in its place (a planner probe: validated and gated like any
action, dropped when the gate would ask a person), spaced so that a drift that persists never
opens the circuit breaker.
"""

from __future__ import annotations

import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.core.decide import DRIFT_PROBE_SPACING, decide
from orchestrator.core.graph import CONNECTOR_TABLE, DASHBOARD, DBT_MODEL, AssetGraph, AssetNode
from orchestrator.core.records import CostRecord, FailureRecord, Snapshot, SyncRecord
from orchestrator.planning.planner import PROBE
from orchestrator.policies import DurationModel, load_policies, resolve

UTC = timezone.utc
DAY = datetime(2026, 3, 10, tzinfo=UTC)
CONN = "fivetran:src1"
DRIFT = "Column 'amount' changed type from INTEGER to VARCHAR in the source schema"
POLICY = """
policies:
  - name: dash-1
    select: [{key: "dashboard/d1"}]
    deadline: {cron: "0 11 * * *", timezone: UTC, window: 4h}
    tier: standard
    owners: [team:t1]
    rollout: auto
    budget: {per_day: %s}
    auto_approve: [retry, materialize, resync_table]
"""
GRAPH = AssetGraph([
    AssetNode("src1/t1", CONNECTOR_TABLE, kinds=frozenset({"fivetran"}), connector=CONN),
    AssetNode("m1", DBT_MODEL, upstream=("src1/t1",)),
    AssetNode("dashboard/d1", DASHBOARD, upstream=("m1",)),
])
DURATIONS = {"src1/t1": [1200.0] * 6, "m1": [60.0] * 6, "dashboard/d1": [5.0] * 6}


def _resolution(budget: float, now: datetime):
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "p.yaml"
        p.write_text(POLICY % budget)
        res = resolve(load_policies([p]), GRAPH, DurationModel(DURATIONS), now)
    assert res.ok, res.skip_reason
    return res


def _snapshot(now: datetime, drift_age: timedelta, sync_usd: float) -> tuple[Snapshot, float]:
    """Six good 6-hourly syncs the orchestrator ran ($``sync_usd`` each), the last an hour before a
    breaking drift failed the next one ``drift_age`` ago; (snapshot, spent today on the policy)."""
    fail_at = now - drift_age
    syncs, costs = [], []
    for i in range(6):
        start = fail_at - timedelta(hours=1 + 6 * (5 - i))
        end = start + timedelta(minutes=20)
        syncs.append(SyncRecord(CONN, f"s{i}", "succeeded", start, end, "dagster", rows=1000, tables=("src1/t1",)))
        costs.append(CostRecord(end, sync_usd, "sync", connector=CONN, compute_s=1200.0,
                                detail={"rows": 1000, "triggered_by": "dagster"}))
    syncs.append(SyncRecord(CONN, "sf", "failed", fail_at - timedelta(minutes=5), fail_at, "dagster",
                            error_message=DRIFT, tables=("src1/t1",)))
    last = syncs[-2].ended_at
    snap = Snapshot(taken_at=now, graph=GRAPH, durations=DURATIONS, syncs=syncs, costs=costs,
                    failures=[FailureRecord("f1", fail_at, DRIFT, "fivetran", connector=CONN)],
                    last_success={k: last for k in GRAPH.keys}, data_time={k: last for k in GRAPH.keys})
    spent = sum(c.amount_usd for c in costs if c.at.date() == now.date())
    return snap, spent


def _is_probe(action) -> bool:
    return (action.cycle or "").startswith(PROBE) and "src1/t1" in action.asset_keys


@settings(max_examples=60, deadline=None)
@given(budget=st.floats(2.0, 80.0), sync_usd=st.floats(0.5, 8.0), age_min=st.integers(10, 12 * 60),
       at_min=st.integers(0, 11 * 60 - 1))
def test_a_probe_stands_in_only_for_a_resync_over_budget_and_keeps_the_budget(budget, sync_usd, age_min, at_min):
    now = DAY + timedelta(minutes=at_min)
    snap, spent = _snapshot(now, timedelta(minutes=age_min), sync_usd)
    d = decide(snap, _resolution(round(budget, 2), now), now=now)
    resync_over = [w for a, w in d.rejected if a.type == "resync_table" and w.startswith("over budget")]
    probes = [g for g in d.decisions if _is_probe(g.action)]
    assert len(probes) <= 1
    # the gate keeps its word: nothing runs past the budget without a person
    ran = [g for g in d.decisions if g.decision == "execute" and g.budget_usd > 0]
    assert not ran or spent + sum(g.budget_usd for g in ran) <= round(budget, 2) + 1e-6, [(g.action.type, g.budget_usd) for g in ran]
    assert not any(g.action.type == "resync_table" for g in ran) or not resync_over
    window_open = now >= DAY + timedelta(hours=7)
    if probes:
        (g,) = probes
        assert g.decision == "execute", g.reason  # a probe is never a request to a person
        assert resync_over and window_open and timedelta(minutes=age_min) >= DRIFT_PROBE_SPACING
    if resync_over and not window_open:
        assert not probes  # no deadline can use the data yet: nothing spent for it
    if resync_over and timedelta(minutes=age_min) < DRIFT_PROBE_SPACING:
        assert not probes  # too soon after the drift (or the last probe) failed


@settings(max_examples=25, deadline=None)
@given(sync_usd=st.floats(0.5, 4.0), age_min=st.integers(int(DRIFT_PROBE_SPACING.total_seconds() // 60), 12 * 60),
       at_min=st.integers(7 * 60 + 5, 10 * 60))
def test_with_room_for_a_plain_sync_but_not_for_the_resync_the_table_is_synced(sync_usd, age_min, at_min):
    """A budget with room for about two plain syncs but not for the resync (4x the dearest sync):
    before, nothing ran on the drifted table; now one probe syncs it."""
    now = DAY + timedelta(minutes=at_min)
    snap, spent = _snapshot(now, timedelta(minutes=age_min), sync_usd)
    backlog_h = age_min / 60 + 1
    budget = spent + 4 * sync_usd - 0.01
    d = decide(snap, _resolution(round(budget, 2), now), now=now)
    assert any(a.type == "resync_table" and w.startswith("over budget") for a, w in d.rejected)
    ran = [g for g in d.decisions if g.decision == "execute" and "src1/t1" in g.action.asset_keys]
    if backlog_h <= 6:  # a backlog no longer than the usual gap: a plain sync prices within the room
        assert ran and _is_probe(ran[0].action), [(g.action.type, g.decision, g.reason) for g in d.decisions]


def _world(seed: int, tmp_path):
    from orchestrator.simulator import load_scenario
    from orchestrator.simulator.bench import resolve_policies, simulate
    from orchestrator.simulator.metrics import deadlines_of
    from orchestrator.simulator.planners.sla import SLAPlanner
    from orchestrator.simulator.worlds import generate_world

    sc = load_scenario(generate_world(seed, tmp_path))
    res = resolve_policies(sc, sc.realise(seed))
    return simulate(sc, seed, SLAPlanner(), res, deadlines_of(res, sc.t0, sc.horizon_s))


@pytest.mark.xdist_group("worlds")
def test_world_15233_drifted_table_lands_within_budget(tmp_path):
    """World 15233: both deadlines lost before (0/2, the resync rejected 169 times); the probes
    land fivetran:src1 once on-call fixed the drift: both met, no unsafe action."""
    r = _world(15233, tmp_path)
    assert r.unsafe_actions == 0, r.unsafe_by_kind
    assert r.met == r.deadlines == 2, (r.met, r.deadlines, r.note)
