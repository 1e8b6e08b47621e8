"""A connector's own scheduled sync that waits for a slot of its source is not counted on.

On a busy source (several connectors, one slot, syncs longer than the schedules' periods) a
connector's scheduled sync starts hours after its tick. The planner counted on it twice over: it
left the table to the schedule ("a sync starts before the latest start"), then, once that sync was
queued, held the table as being rebuilt; the deadline waited for a sync that started hours after
the tick (generated worlds 14030 and 14183: ``ran_late``; cron-tuned's job at the window's opening,
ranked above the routine traffic, met them). With ``PlannerConfig.queued_native_aware`` (off by
default: it lost world 112 on seeds 100-119) (``orchestrator.planning.native_queue``):

* a scheduled sync still queued rebuilds nothing: a due table is synced by the planner, at its
  deadline's priority (the queued one then joins that sync);
* the schedule's next sync is expected as late as the connector's scheduled syncs are waiting now
  (or the latest one waited): a table is synced ahead of it when that is after its latest start.

Random worlds: the schedule, the sync's duration, the planning instant inside the window and how
long the queued scheduled sync has been waiting are drawn by Hypothesis.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from cronsim import CronSim
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.core.decide import decide
from orchestrator.core.graph import CONNECTOR_TABLE, DASHBOARD, DBT_MODEL, AssetGraph, AssetNode
from orchestrator.core.records import FreshnessStatus, RunRecord, RunStatus, Snapshot
from orchestrator.planning import PlannerConfig

from test_planner_native_sync import DAY, HORIZON, OPENS, POLICY, UTC  # the same one-deadline world

AWARE = PlannerConfig(queued_native_aware=True)  # the default, named (README, planner)


def _graph():
    n = AssetNode
    return AssetGraph([
        n("src/t", CONNECTOR_TABLE, kinds=frozenset({"fivetran"}), connector="fivetran:src"),
        n("src/u", CONNECTOR_TABLE, kinds=frozenset({"fivetran"}), connector="fivetran:src"),
        n("m", DBT_MODEL, upstream=("src/t",)),
        n("dash/a", DASHBOARD, upstream=("m",)),
    ])


def _scheduled(run_id, created, started=None, ended=None):
    status = RunStatus.queued if started is None else (RunStatus.running if ended is None else RunStatus.success)
    return RunRecord(run_id, status, ("src/t", "src/u"), created, started, ended,
                     tags={"sim/source": "native"})


def _world(sync_s: float, schedule: str, now: datetime, runs=()):
    from orchestrator.policies import DurationModel, resolve
    from orchestrator.policies.model import load_policies_from_text

    g = _graph()
    durations = {"src/t": [sync_s] * 6, "src/u": [sync_s] * 6, "m": [60.0] * 6, "dash/a": [5.0] * 6}
    res = resolve(load_policies_from_text(POLICY), g, DurationModel(durations), now)
    assert res.ok, res.skip_reason
    old = OPENS - timedelta(hours=1)  # fresh for yesterday's cycle, not for today's
    keys = ("src/t", "src/u", "m", "dash/a")
    snap = Snapshot(taken_at=now, graph=g, durations=durations, runs=list(runs),
                    last_success={k: old + timedelta(minutes=30) for k in keys},
                    data_time={k: old for k in keys},
                    connector_schedules={"fivetran:src": schedule})
    return snap, res


def _synced(d) -> bool:
    return any("src/t" in g.action.asset_keys for g in d.decisions
               if g.action.type == "materialize" and g.decision == "execute")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(minute=st.integers(0, 59), every_h=st.sampled_from([1, 2, 4, 12]), sync_min=st.integers(3, 90),
       now_min=st.integers(5, 355), waited_min=st.integers(1, 600))
def test_a_scheduled_sync_queued_behind_its_source_is_not_waited_for(minute, every_h, sync_min, now_min, waited_min):
    schedule = f"{minute} */{every_h} * * *"
    now = OPENS + timedelta(minutes=now_min)
    queued = _scheduled("native-1", now - timedelta(minutes=waited_min))
    snap, res = _world(sync_min * 60.0, schedule, now, [queued])
    d = decide(snap, res, now=now, planner_config=AWARE)
    fa = d.assessment.freshness["src/t"]
    if fa.slack_s is None:
        return
    latest_start = now + timedelta(seconds=fa.slack_s)
    if fa.status is not FreshnessStatus.ok or latest_start <= now + HORIZON:
        # due (or late): the queued scheduled sync rebuilds nothing yet, so the planner syncs now
        assert _synced(d), (f"due at {now:%H:%M} (latest start {latest_start:%H:%M}) but left to a scheduled sync "
                            f"queued for {waited_min} min", [g.reason for g in d.decisions], d.plan.notes)
        return
    # not due yet: the schedule's next sync starts as late as the queued one has waited so far
    tick = next(iter(CronSim(schedule, now - timedelta(seconds=1)))).astimezone(UTC)
    expected_start = tick + timedelta(minutes=waited_min)
    if expected_start > latest_start - HORIZON:
        assert _synced(d), (f"not synced at {now:%H:%M}: waits for the scheduled sync of {tick:%H:%M}, expected "
                            f"at {expected_start:%H:%M}, after the latest start {latest_start:%H:%M}")
    else:
        assert not _synced(d), f"synced at {now:%H:%M} although the scheduled sync lands at {expected_start:%H:%M}"


def test_a_scheduled_sync_that_started_is_still_waited_for():
    # the connector's own sync is running (not queued): its tables are being rebuilt, no second sync
    now = OPENS + timedelta(hours=5, minutes=20)
    running = _scheduled("native-1", now - timedelta(minutes=40), started=now - timedelta(minutes=10))
    snap, res = _world(1800.0, "0 */4 * * *", now, [running])
    assert not _synced(decide(snap, res, now=now, planner_config=AWARE))


@settings(max_examples=80, deadline=None)
@given(runs=st.lists(st.tuples(st.integers(0, 2000), st.one_of(st.none(), st.integers(0, 2000)),
                               st.booleans()), max_size=6))
def test_the_queue_lag_is_the_longest_wait_seen_now_or_in_the_latest_started_sync(runs):
    from orchestrator.planning.native_queue import ScheduledSyncQueue

    now = DAY + timedelta(days=2)
    records, waits_now, latest = [], [], None
    for i, (created_ago, wait, scheduled) in enumerate(runs):
        created = now - timedelta(minutes=created_ago)
        started = None if wait is None else min(now, created + timedelta(minutes=wait))
        rec = _scheduled(f"r{i}", created, started)
        if not scheduled:
            rec = RunRecord(rec.run_id, rec.status, rec.asset_keys, rec.created_at, rec.started_at, tags={})
        records.append(rec)
        if not scheduled:
            continue
        if started is None:
            waits_now.append((now - created).total_seconds())
        elif now - started <= timedelta(hours=24) and (latest is None or started > latest[0]):
            latest = (started, (started - created).total_seconds())
    q = ScheduledSyncQueue(Snapshot(taken_at=now, graph=_graph(), runs=records), now)
    assert q.waiting == {r.run_id for r, (_c, w, s) in zip(records, runs) if s and w is None}
    expected = max(waits_now + ([latest[1]] if latest else []), default=0.0)
    # several records may start at the same instant: the lag is one of theirs
    if latest is not None and sum(1 for r in records if r.started_at == latest[0] and r.tags) > 1:
        return
    assert q.lag("fivetran:src") == pytest.approx(expected)
    assert q.lag("fivetran:other") == 0.0


@pytest.mark.parametrize("seed,at_least", [(14030, 19), (14183, 4)])
def test_worlds_whose_deadlines_waited_for_a_queued_scheduled_sync(tmp_path, seed, at_least):
    """14030 (one slot per source; airbyte:kippcamden's hourly syncs ran 40-100 minutes, so the
    source's queue grew all day): dim_colleges' input fivetran:kipptaf_1 was left to its own 00:00
    sync, which started at 04:11; main met 11 of 19 deadlines, cron-tuned 19. 14183: the same for
    airbyte:ol_warehouse_raw_data_1 (main 2 of 6, cron-tuned 4)."""
    from orchestrator.simulator import load_scenario
    from orchestrator.simulator.bench import resolve_policies, simulate
    from orchestrator.simulator.metrics import deadlines_of
    from orchestrator.simulator.planners.sla import SLAPlanner
    from orchestrator.simulator.worlds import generate_world

    sc = load_scenario(generate_world(seed, tmp_path))
    res = resolve_policies(sc, sc.realise(seed))
    planner = SLAPlanner()
    planner.queued_native_aware = True
    r = simulate(sc, seed, planner, res, deadlines_of(res, sc.t0, sc.horizon_s))
    assert r.unsafe_actions == 0, r.unsafe_by_kind
    assert r.met >= at_least, (seed, r.met, r.deadlines, r.note)
