"""The window's edge and data times (``orchestrator.core.datatime``).

A model that read an input's data from before the history window (the snapshot's
materializations start at its edge) has a data time only known to predate the edge: it is
``BEFORE_HISTORY``, a fixed value, not the input's first recorded data time (which moved with the
edge: once an hour ~76,000 data times at 100,000 assets). Checked on random graphs and histories
(runs spanning the edge, durations, syncs, late runs, several materializations a day):

* against the whole history: every data time computed from the window equals the one computed
  from every row, or both predate the edge (and ``BEFORE_HISTORY`` only stands for one that does),
  so every comparison with an opening at or after the edge - what freshness and the planner ask -
  has the same answer, and the freshness statuses are the same when every window opening and
  max_lag limit lies inside the history;
* the edge passing an hour moves no data time at or after the new edge, nor the input holding it
  back, and the carried update equals a computation from scratch.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.assessment import freshness as freshness_module
from orchestrator.assessment import assess_freshness
from orchestrator.assessment.freshness import history_reach
from orchestrator.core import datatime
from orchestrator.core.datatime import BEFORE_HISTORY, data_time_text
from orchestrator.core.graph import AssetGraph, AssetNode
from orchestrator.core.records import (
    FreshnessStatus, Materialization, RunRecord, RunStatus, Snapshot, SyncRecord)
from orchestrator.policies import DurationModel, resolve
from orchestrator.policies.model import load_policies_from_text

NOW = datetime(2026, 3, 10, 14, 20, tzinfo=UTC)
DAYS = 4


def _world(seed: int):
    """A random graph (connector tables, models, dashboards) and ``DAYS`` of history up to NOW:
    every asset materializes 0-3 times a day, some in runs that started before their rows (and
    span several assets), some tables by a connector sync, some with a step duration."""
    rng = random.Random(seed)
    n_src, n_mod = rng.randint(2, 5), rng.randint(3, 14)
    nodes, keys = [], []
    for i in range(n_src):
        nodes.append(AssetNode(f"src/t{i}", role="connector_table", connector=f"fivetran:c{i % 2}"))
        keys.append(f"src/t{i}")
    for i in range(n_mod):
        ups = tuple(rng.sample(keys, k=min(len(keys), rng.randint(1, 3))))
        nodes.append(AssetNode(f"m{i}", role="dbt_model", upstream=ups))
        keys.append(f"m{i}")
    for i in range(rng.randint(1, 3)):
        nodes.append(AssetNode(f"dash/d{i}", role="dashboard", upstream=tuple(rng.sample(keys, k=min(2, len(keys))))))
        keys.append(f"dash/d{i}")
    graph = AssetGraph(nodes)
    start = NOW - timedelta(days=DAYS)
    mats: list[Materialization] = []
    runs: dict[str, RunRecord] = {}
    syncs: list[SyncRecord] = []
    for day in range(DAYS + 1):
        for k in graph.topological_order():
            for _ in range(rng.choice((0, 1, 1, 1, 2, 3))):
                at = start + timedelta(days=day, seconds=rng.uniform(0, 86_400))
                if at >= NOW:
                    continue
                kind = rng.random()
                run_id = dur = None
                if kind < 0.35:  # in a run (sometimes shared with an earlier row's run)
                    shared = [r for r in runs.values() if r.started_at < at - timedelta(minutes=1)
                              and at - r.started_at < timedelta(hours=3)]
                    if shared and rng.random() < 0.5:
                        run_id = rng.choice(shared).run_id
                    else:
                        run_id = f"r{len(runs)}"
                        began = at - timedelta(minutes=rng.uniform(1, 150))
                        runs[run_id] = RunRecord(run_id, RunStatus.success, (k,), began - timedelta(seconds=30),
                                                 started_at=began, ended_at=at)
                elif kind < 0.55:
                    dur = rng.uniform(10, 5_000)
                elif kind < 0.7 and k.startswith("src/"):
                    syncs.append(SyncRecord(graph.get(k).connector, f"s{len(syncs)}", "succeeded",
                                            at - timedelta(minutes=rng.uniform(1, 90)),
                                            ended_at=at + timedelta(seconds=rng.uniform(-300, 300)), tables=(k,)))
                mats.append(Materialization(k, at, run_id, None, dur))
    mats.sort(key=lambda m: m.at)
    last: dict[str, datetime] = {}
    for m in mats:
        last[m.asset_key] = m.at
    return graph, mats, last, list(runs.values()), syncs


def _snap(world, edge: datetime | None, now: datetime = NOW) -> Snapshot:
    graph, mats, last, runs, syncs = world
    rows = mats if edge is None else [m for m in mats if m.at >= edge]
    return Snapshot(taken_at=now, graph=graph, last_success=dict(last), materializations=rows, runs=list(runs),
                    syncs=list(syncs))


def _scratch(snapshot: Snapshot):
    return datatime._compute(snapshot)


def _agree(full: datetime | None, windowed: datetime | None, edge: datetime) -> bool:
    """Equal, or both before the edge (then no opening at or after the edge tells them apart)."""
    if full == windowed:
        return True
    return full is not None and windowed is not None and full < edge and windowed < edge


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 1_000_000), hours_back=st.integers(2, 24 * (DAYS - 1)))
def test_a_data_time_from_the_window_is_the_true_one_or_both_predate_the_edge(seed, hours_back):
    world = _world(seed)
    edge = NOW.replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours_back)
    full, _ = _scratch(_snap(world, None))
    windowed, held = _scratch(_snap(world, edge))
    assert full.keys() == windowed.keys()
    # (the whole history has a start too: a model that ran before its input's first row there has
    # BEFORE_HISTORY for a data time before that start, older than the edge as well)
    for k in full:
        assert _agree(full[k], windowed[k], edge), (k, full[k], windowed[k], edge)
        if windowed[k] == BEFORE_HISTORY:
            assert full[k] < edge
            assert held[k] != k and held[k] in world[0]  # the input whose old data it read
        # what freshness and the planner ask: fresh for an opening at or after the edge
        for opening in (edge, edge + timedelta(minutes=17), NOW - timedelta(hours=1)):
            assert (full[k] >= opening) == (windowed[k] >= opening), (k, opening)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 1_000_000), hours_back=st.integers(3, 24 * (DAYS - 1)), hours=st.integers(1, 3))
def test_the_edge_passing_an_hour_moves_no_data_time_inside_the_window(seed, hours_back, hours):
    world = _world(seed)
    e1 = NOW.replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours_back)
    e2 = e1 + timedelta(hours=hours)
    carry = datatime._CARRY
    datatime._CARRY = datatime._Carry()
    try:
        before = tuple(dict(x) for x in datatime.data_times(_snap(world, e1)))
        s2 = _snap(world, e2, NOW + timedelta(seconds=1))
        after = datatime.data_times(s2)
        assert datatime._CARRY.partial + datatime._CARRY.hits == 1  # carried (rows dropped from the front)
        assert after == _scratch(s2)  # ... equal to a computation from scratch
        moved = {k for k in after[0] if before[0].get(k) != after[0][k] or before[1].get(k) != after[1][k]}
        said = datatime.changed_since(before, after)  # (other objects: the caller compares)
        assert said is None or moved <= said
        for k in moved:
            # only data times that predate the new edge move, and they stay before it
            assert before[0][k] < e2 and after[0][k] < e2, (k, before[0][k], after[0][k], e2)
        for k, dt in before[0].items():
            if dt == BEFORE_HISTORY:  # known only to predate the edge: still so, the same value
                assert after[0][k] < e2
                assert after[0][k] is BEFORE_HISTORY or after[0][k] != BEFORE_HISTORY
    finally:
        datatime._CARRY = carry


POLICY = """
policies:
  - name: exec
    select: [{key: "dash/*"}]
    deadline: {cron: "0 * * * *", timezone: UTC, window: 3h}
  - name: lag
    select: [{key: "m*"}]
    max_lag: 5h
"""


def _assess(snapshot: Snapshot, res, durations):
    carry, tick = datatime._CARRY, dict(freshness_module._TICK)
    datatime._CARRY = datatime._Carry()
    freshness_module._TICK.clear()
    try:
        return assess_freshness(snapshot, res, durations, snapshot.taken_at)
    finally:
        datatime._CARRY = carry
        freshness_module._TICK.clear()
        freshness_module._TICK.update(tick)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 1_000_000), extra_h=st.integers(0, 30))
def test_freshness_decisions_are_the_whole_historys_when_the_window_covers_every_opening(seed, extra_h):
    world = _world(seed)
    graph = world[0]
    durations = DurationModel({k: [600.0] * 5 for k in graph.keys})
    res = resolve(load_policies_from_text(POLICY), graph, durations, NOW)
    assert res.ok, res.errors
    reach = history_reach(res, NOW)
    assert reach == timedelta(hours=5)  # max_lag 5h; hourly ticks + a 3h window: 4h
    edge = (NOW - reach).replace(minute=0, second=0, microsecond=0) - timedelta(hours=extra_h)
    full = _assess(_snap(world, None), res, durations)
    windowed = _assess(_snap(world, edge), res, durations)
    assert full.keys() == windowed.keys() and full
    for k, a in full.items():
        b = windowed[k]
        assert (a.status, a.predicted_ready, a.blocking_asset, a.window_open) == (
            b.status, b.predicted_ready, b.blocking_asset, b.window_open), k
        if b.data_time == BEFORE_HISTORY:
            assert a.data_time < edge
            assert "a time before the history window" in b.reason or b.policy == "lag"
            if b.policy == "lag":  # breached at a time not known: no limit made up
                assert b.status is FreshnessStatus.breached and b.deadline is None and b.slack_s is None
        else:
            assert a.data_time == b.data_time or (a.data_time < edge and b.data_time < edge)


def test_history_reach_covers_long_max_lags_and_weekly_deadlines():
    graph = AssetGraph([AssetNode("src/a", role="connector_table", connector="fivetran:c"),
                        AssetNode("m", role="dbt_model", upstream=("src/a",))])
    durations = DurationModel({})
    weekly = resolve(load_policies_from_text("""
policies:
  - name: weekly
    select: [{key: "m"}]
    deadline: {cron: "0 6 * * 1", timezone: UTC, window: 1d}
  - name: lag
    select: [{key: "src/*"}]
    max_lag: 3d
"""), graph, durations, NOW)
    assert weekly.ok, weekly.errors
    assert history_reach(weekly, NOW) == timedelta(days=8)  # the previous Monday's tick, minus a day
    assert history_reach(weekly, NOW) is history_reach(weekly, NOW + timedelta(days=3))  # once per resolution
    lag = resolve(load_policies_from_text("""
policies:
  - name: lag
    select: [{key: "m"}]
    max_lag: 3d
"""), graph, durations, NOW)
    assert history_reach(lag, NOW) == timedelta(days=3)
    assert history_reach(None) == timedelta(0)


def test_the_ui_says_a_data_time_predates_the_history():
    from sensors.freshness import check_metadata

    assert data_time_text(BEFORE_HISTORY) == "a time before the history window"
    assert data_time_text(NOW) == NOW.isoformat()
    from orchestrator.core.records import FreshnessAssessment

    a = FreshnessAssessment("m", FreshnessStatus.breached, "standard", "exec", NOW, NOW, 0.0, None, "r",
                            data_time=BEFORE_HISTORY, data_held_by="src/a")
    meta = check_metadata(a)
    assert meta["data_time"] == "a time before the history window" and meta["data_held_back_by"] == "src/a"


def test_the_snapshot_reads_as_far_back_as_the_policies_reach():
    """``build_snapshot(reach=...)``: the materializations from at least ``reach`` before now (the
    edge still on the hour), the runs keep the two days; without it two days back."""
    import dagster as dg
    import sqlalchemy as db
    from dagster._core.storage.event_log.schema import SqlEventLogStorageTable as E

    import orchestrator.event_log_cache as cache
    from orchestrator.snapshot import build_snapshot

    graph = AssetGraph([AssetNode("src/a", role="connector_table", connector="fivetran:c"),
                        AssetNode("m", role="dbt_model", upstream=("src/a",))])
    now = datetime(2026, 3, 10, 10, 20, tzinfo=UTC)
    at = [("src/a", now - timedelta(days=3, hours=2)), ("m", now - timedelta(days=2, hours=5)),
          ("src/a", now - timedelta(hours=3))]
    cache.clear()
    try:
        with dg.instance_for_test() as inst:
            for key, t in at:
                inst.report_runless_asset_event(dg.AssetMaterialization(dg.AssetKey.from_user_string(key)))
                with inst.event_log_storage.index_connection() as conn:
                    sid = conn.execute(db.select(db.func.max(E.c.id))).scalar()
                    conn.execute(E.update().where(E.c.id == sid).values(timestamp=t.replace(tzinfo=None)))
            plain = build_snapshot(inst, graph, now=now, failures=False)
            assert [m.asset_key for m in plain.materializations] == ["src/a"]
            dts, held = datatime.data_times(plain)
            assert dts["m"] == BEFORE_HISTORY and held["m"] == "src/a"  # read src/a's row of 3 days ago
            far = build_snapshot(inst, graph, now=now, failures=False, reach=timedelta(days=3, hours=2, minutes=30))
            assert [m.asset_key for m in far.materializations] == ["src/a", "m", "src/a"]
            dts, held = datatime.data_times(far)
            assert dts["m"] == at[0][1] and held["m"] == "src/a"  # now known: src/a's sync of then
            short = build_snapshot(inst, graph, now=now, failures=False, reach=timedelta(hours=1))
            assert [m.asset_key for m in short.materializations] == ["src/a"]  # never less than since
    finally:
        cache.clear()
