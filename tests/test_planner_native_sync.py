"""One sync per connector and cycle.

* The planner does not sync a connector ahead of its own scheduled sync when that starts after
  the cycle opened, before the table's latest start (minus the planning horizon) and, when
  ``PlannerConfig.native_wait_share`` is set (off by default), within that share of the time to it
  (or ``native_wait_min_s``, an hour): that sync serves the cycle. A scheduled sync later than that
  is not waited for (a fault arriving meanwhile fails it with no time left
  to recover: worlds 13006, 13008, 13021): the table is synced now. Random worlds: the
  connector's schedule (minute, every N hours), its sync duration and the planning instant inside
  the deadline's window are drawn by Hypothesis.
* A sync that served a table's own cycle is not "already done" for a consumer's later cycle whose
  window opened after it (world 547), and the refresh for that later cycle runs once.
"""

from __future__ import annotations

import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cronsim import CronSim
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


from orchestrator.core.decide import decide
from orchestrator.core.graph import CONNECTOR_TABLE, DASHBOARD, DBT_MODEL, AssetGraph, AssetNode
from orchestrator.core.records import FreshnessStatus, Snapshot
from orchestrator.planning import PlannerConfig
from orchestrator.policies import DurationModel, load_policies, resolve

UTC = timezone.utc
DAY = datetime(2026, 10, 26, tzinfo=UTC)  # a Monday
OPENS = DAY + timedelta(hours=16)  # the 22:00 deadline's 6h window
HORIZON = timedelta(minutes=10)  # PlannerConfig: tick_interval_s + min_margin_s

POLICY = """
policies:
  - name: dash
    select: [{key: "dash/a"}]
    deadline: {cron: "0 22 * * *", timezone: UTC, window: 6h}
    tier: high
    owners: [team:a]
    rollout: auto
    auto_approve: [retry, materialize, resync_table]
"""


def _world(sync_s: float, schedule: str, now: datetime):
    n = AssetNode
    g = AssetGraph([
        n("src/t", CONNECTOR_TABLE, kinds=frozenset({"fivetran"}), connector="fivetran:src"),
        n("m", DBT_MODEL, upstream=("src/t",)),
        n("dash/a", DASHBOARD, upstream=("m",)),
    ])
    durations = {"src/t": [sync_s] * 6, "m": [60.0] * 6, "dash/a": [5.0] * 6}
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "p.yaml"
        p.write_text(POLICY)
        res = resolve(load_policies([p]), g, DurationModel(durations), now)
    assert res.ok, res.skip_reason
    old = OPENS - timedelta(hours=1)  # fresh for yesterday's cycle, not for today's
    snap = Snapshot(taken_at=now, graph=g, durations=durations,
                    last_success={k: old + timedelta(minutes=30) for k in ("src/t", "m", "dash/a")},
                    data_time={k: old for k in ("src/t", "m", "dash/a")},
                    connector_schedules={"fivetran:src": schedule})
    return snap, res


def _next_scheduled(schedule: str, after: datetime) -> datetime:
    return next(iter(CronSim(schedule, after - timedelta(seconds=1)))).astimezone(UTC)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(minute=st.integers(0, 59), every_h=st.sampled_from([1, 2, 3, 4, 6, 12]),
       sync_min=st.integers(3, 90), now_min=st.integers(0, 355), share=st.sampled_from([None, 0.25, 0.5]))
def test_the_planner_does_not_sync_a_connector_its_own_scheduled_sync_serves(minute, every_h, sync_min, now_min,
                                                                             share):
    schedule = f"{minute} */{every_h} * * *"
    now = OPENS + timedelta(minutes=now_min)
    snap, res = _world(sync_min * 60.0, schedule, now)
    cfg = PlannerConfig(native_wait_share=share)
    d = decide(snap, res, now=now, planner_config=cfg)
    fa = d.assessment.freshness["src/t"]
    synced = any("src/t" in g.action.asset_keys for g in d.decisions
                 if g.action.type == "materialize" and g.decision == "execute")
    if fa.slack_s is None or fa.status is not FreshnessStatus.ok:
        return  # at risk or late: synced whatever the schedule says (not this property)
    latest_start = now + timedelta(seconds=fa.slack_s)
    scheduled = _next_scheduled(schedule, now)
    # the planner waits for a scheduled sync that starts before the planning horizon (one tick +
    # the 5-minute margin) ahead of the latest start and within the waiting share of the time to
    # it (or within the hour); it syncs now ahead of any later one
    wait_until = latest_start - HORIZON
    if share is not None:
        wait_until = min(wait_until, now + max((latest_start - now) * share, timedelta(seconds=cfg.native_wait_min_s)))
    if synced:
        assert scheduled > wait_until, (
            f"synced at {now:%H:%M} although the schedule {schedule!r} syncs at {scheduled:%H:%M}, "
            f"before {wait_until:%H:%M} (latest start {latest_start:%H:%M})")
    else:
        assert scheduled <= wait_until, (
            f"not synced at {now:%H:%M}: waits for the scheduled sync at {scheduled:%H:%M}, after "
            f"{wait_until:%H:%M} (latest start {latest_start:%H:%M})")


def test_a_due_table_whose_scheduled_sync_starts_before_its_latest_start_waits_for_it():
    # the cycle opened at 16:00; a 60-minute sync, so the latest start is about 20:40; due from
    # about 20:25. The connector's own sync at 20:30 serves the cycle: no second sync at 20:25
    now = OPENS + timedelta(hours=4, minutes=25)
    snap, res = _world(3600.0, "30 */4 * * *", now)
    d = decide(snap, res, now=now)
    assert d.assessment.freshness["src/t"].status is FreshnessStatus.ok
    assert not [g for g in d.decisions if "src/t" in g.action.asset_keys], [g.reason for g in d.decisions]
    # the same instant, a schedule that syncs only after the latest start: synced now
    snap, res = _world(3600.0, "50 */4 * * *", now)
    d = decide(snap, res, now=now)
    assert [g for g in d.decisions if "src/t" in g.action.asset_keys and g.decision == "execute"]


TWO_CYCLES = """
policies:
  - name: early
    select: [{key: "dash/a"}]
    deadline: {cron: "0 22 * * *", timezone: UTC, window: 6h}
    tier: high
    owners: [team:a]
    rollout: auto
    auto_approve: [retry, materialize, resync_table]
  - name: later
    select: [{key: "dash/b"}]
    deadline: {cron: "30 23 * * *", timezone: UTC, window: 4h}
    tier: high
    owners: [team:b]
    rollout: auto
    auto_approve: [retry, materialize, resync_table]
"""


def _two_cycles(now, synced_at):
    n = AssetNode
    g = AssetGraph([
        n("src/t", CONNECTOR_TABLE, kinds=frozenset({"fivetran"}), connector="fivetran:src"),
        n("m", DBT_MODEL, upstream=("src/t",)),
        n("dash/a", DASHBOARD, upstream=("m",)),
        n("dash/b", DASHBOARD, upstream=("m",)),
    ])
    durations = {"src/t": [7200.0] * 6, "m": [60.0] * 6, "dash/a": [5.0] * 6, "dash/b": [5.0] * 6}
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "p.yaml"
        p.write_text(TWO_CYCLES)
        res = resolve(load_policies([p]), g, DurationModel(durations), now)
    assert res.ok, res.skip_reason
    old = OPENS - timedelta(hours=1)
    data = {"src/t": synced_at or old, "m": old, "dash/a": old, "dash/b": old}
    snap = Snapshot(taken_at=now, graph=g, durations=durations,
                    last_success={k: v + (timedelta(hours=2) if k == "src/t" and synced_at else timedelta(minutes=30))
                                  for k, v in data.items()},
                    data_time=data, connector_schedules={"fivetran:src": "0 3 * * *"})
    return snap, res


def test_a_sync_for_a_tables_own_cycle_does_not_count_as_done_for_a_consumers_later_cycle():
    """World 547 (one sync slot per source): a 2-hour sync started at 17:00 for dash/a's cycle
    (window from 16:00) cannot serve dash/b's (window from 19:30); once dash/b's window opened, the
    table needed a second sync, and the ledger dropped it as "already done for this cycle" (the
    table's own deadline had not moved), so dash/b's cycle waited for it."""
    from orchestrator.core.incidents import ActionLedger

    first_at = OPENS + timedelta(hours=1)
    snap, res = _two_cycles(first_at, None)
    d = decide(snap, res, now=first_at)
    first = [g.action for g in d.decisions if "src/t" in g.action.asset_keys and g.decision == "execute"]
    assert first, [g.reason for g in d.decisions]
    ledger = ActionLedger()
    for a in first:
        ledger.record(a, "executing", first_at)
        ledger.update(a.action_id, "succeeded", first_at + timedelta(hours=2))
    later_at = OPENS + timedelta(hours=3, minutes=40)  # dash/b's window opened at 19:30
    snap, res = _two_cycles(later_at, first_at)
    d = decide(snap, res, now=later_at, ledger=ledger)
    again = [g for g in d.decisions if "src/t" in g.action.asset_keys and g.decision == "execute"]
    assert again, (d.suppressed, [g.reason for g in d.decisions])
    # and only once for that cycle: the same refresh, done, is not repeated
    for g in again:
        ledger.record(g.action, "executing", later_at)
        ledger.update(g.action.action_id, "succeeded", later_at + timedelta(minutes=1))
    d = decide(snap, res, now=later_at + timedelta(minutes=5), ledger=ledger)
    assert not [g for g in d.decisions if "src/t" in g.action.asset_keys], [g.reason for g in d.decisions]
