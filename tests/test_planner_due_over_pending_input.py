"""A due step does not wait for an input's rebuild when the input's data already serves its cycle.

Generated world 15029 (main 3a481ce): dashboard/d3's sources landed data fresh for its 06:30-08:30
window by 07:10, but dashboard/d2's window opened at 07:30 and re-synced the same sources one after
the other; d3's staging models, due (breached), waited behind every re-sync ("an input still being
rebuilt") and the dashboard landed at 09:28. cron-tuned met it. ``planner._serves_due_cycle``: an
input rebuilt in flight no longer holds back a due step its current data already serves.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.core.decide import decide
from orchestrator.core.graph import CONNECTOR_TABLE, DASHBOARD, DBT_MODEL, AssetGraph, AssetNode
from orchestrator.core.records import RunRecord, RunStatus, Snapshot
from orchestrator.policies import DurationModel, resolve
from orchestrator.policies.model import load_policies_from_text

UTC = timezone.utc
EARLY_TICK = datetime(2026, 10, 25, 22, 0, tzinfo=UTC)
EARLY_OPENS = EARLY_TICK - timedelta(hours=6)
LATE_OPENS = datetime(2026, 10, 25, 21, 30, tzinfo=UTC)

TWO_DEADLINES = """
policies:
  - name: early
    select: [{key: "dash/a"}]
    deadline: {cron: "0 22 * * *", timezone: UTC, window: 6h}
    tier: high
    owners: [team:a]
    rollout: auto
    auto_approve: [retry, materialize, resync_table]
  - name: late
    select: [{key: "dash/b"}]
    deadline: {cron: "30 5 * * *", timezone: UTC, window: 8h}
    tier: low
    owners: [team:b]
    rollout: auto
    auto_approve: [retry, materialize, resync_table]
"""


def _world(now: datetime, sync_s: float, model_s: float, src_data: datetime, rebuild_started: datetime):
    """src/t feeds m, which feeds dash/a (due at 22:00) and dash/b (its window opened at 21:30);
    a sync of src/t started at ``rebuild_started`` is still running."""
    n = AssetNode
    g = AssetGraph([
        n("src/t", CONNECTOR_TABLE, kinds=frozenset({"fivetran"}), connector="fivetran:src"),
        n("m", DBT_MODEL, upstream=("src/t",)),
        n("dash/a", DASHBOARD, upstream=("m",)),
        n("dash/b", DASHBOARD, upstream=("m",)),
    ])
    durations = {"src/t": [sync_s] * 6, "m": [model_s] * 6, "dash/a": [5.0] * 6, "dash/b": [5.0] * 6}
    res = resolve(load_policies_from_text(TWO_DEADLINES), g, DurationModel(durations), now)
    assert res.ok, res.skip_reason
    old = EARLY_OPENS - timedelta(hours=1)  # fresh for the cycles before, not for these
    rebuild = RunRecord("sync-for-late", RunStatus.running, ("src/t",), rebuild_started, rebuild_started)
    snap = Snapshot(taken_at=now, graph=g, durations=durations, runs=[rebuild],
                    last_success={"src/t": src_data + timedelta(seconds=sync_s), "m": old, "dash/a": old, "dash/b": old},
                    data_time={"src/t": src_data, "m": old, "dash/a": old, "dash/b": old},
                    connector_schedules={"fivetran:src": "15 */6 * * *"})
    return snap, res


def _started(d) -> set[str]:
    return {k for g in d.decisions if g.action.type == "materialize" and g.decision == "execute"
            for k in g.action.asset_keys}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(to_tick_min=st.integers(8, 28), sync_min=st.integers(20, 120), model_s=st.integers(10, 300),
       data_min=st.integers(-300, 300), rebuilding_min=st.integers(1, 25))
def test_a_due_step_runs_on_input_data_fresh_for_its_cycle_while_the_input_is_rebuilt(
        to_tick_min, sync_min, model_s, data_min, rebuilding_min):
    now = EARLY_TICK - timedelta(minutes=to_tick_min)
    # the input's current data: before or after the opening of dash/a's window (16:00)
    src_data = min(EARLY_OPENS + timedelta(minutes=data_min), LATE_OPENS - timedelta(minutes=1))
    snap, res = _world(now, sync_min * 60.0, float(model_s), src_data, now - timedelta(minutes=rebuilding_min))
    d = decide(snap, res, now=now)
    started = _started(d)
    rebuild_lands = now - timedelta(minutes=rebuilding_min) + timedelta(minutes=sync_min)
    if src_data < EARLY_OPENS:
        # the input's data is older than dash/a's window: only the rebuild in flight can serve it
        assert "m" not in started, f"m ran at {now:%H:%M} on data of {src_data:%H:%M}, stale for dash/a"
        return
    assert "src/t" not in started  # no second sync while one is running
    if rebuild_lands + timedelta(seconds=model_s + 5) > EARLY_TICK:
        # the rebuild works for dash/b's later window and lands too late for dash/a; m's input
        # already serves dash/a's cycle: waiting for the rebuild would cost dash/a its deadline
        assert "m" in started, (f"m waited at {now:%H:%M} for a rebuild landing {rebuild_lands:%H:%M} although "
                                f"src/t's data {src_data:%H:%M} is fresh for dash/a's window", d.plan.rationale)


def test_a_step_not_due_yet_still_waits_for_the_inputs_rebuild():
    # hours before dash/a's deadline the rebuild lands in time: m runs once, on the newer data
    now = EARLY_TICK - timedelta(hours=3)
    snap, res = _world(now, 1800.0, 60.0, EARLY_OPENS + timedelta(minutes=30), now - timedelta(minutes=5))
    assert "m" not in _started(decide(snap, res, now=now))


def test_sla_meets_the_deadline_world_15029_lost_behind_another_policys_resyncs(tmp_path):
    from orchestrator.simulator import load_scenario
    from orchestrator.simulator.bench import resolve_policies, simulate_keeping
    from orchestrator.simulator.metrics import deadlines_of
    from orchestrator.simulator.planners.sla import SLAPlanner
    from orchestrator.simulator.worlds import generate_world

    seed = 15029
    sc = load_scenario(generate_world(seed, tmp_path))
    res = resolve_policies(sc, sc.realise(seed))
    deadlines = deadlines_of(res, sc.t0, sc.horizon_s)
    r, sim = simulate_keeping(sc, seed, SLAPlanner(), res, deadlines)
    late = {(d.target, f"{sim.dt(d.tick):%m-%d %H:%M}"): s for d, s in zip(deadlines, r.lateness)}
    assert late[("dashboard/d3", "10-11 08:30")] <= 0, late
    assert r.unsafe_actions == 0, r.unsafe_by_kind
