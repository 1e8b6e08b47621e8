"""Freshness by data time: a sync's data dates from its start, a model's from the oldest input it read."""

from __future__ import annotations

import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.assessment import assess
from orchestrator.core.datatime import data_times
from orchestrator.core.graph import CONNECTOR_TABLE, DASHBOARD, DBT_MODEL, AssetGraph, AssetNode
from orchestrator.core.records import FreshnessStatus, Materialization, RunRecord, RunStatus, Snapshot, SyncRecord
from orchestrator.planning import plan
from orchestrator.policies import DurationModel, load_policies, resolve

UTC = timezone.utc
T = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
POLICIES = """
policies:
  - name: early
    select: [{key: "dash/a"}]
    deadline: {cron: "0 6 * * *", timezone: UTC, window: 8h}
    tier: critical
    rollout: auto
    auto_approve: [retry, materialize]
  - name: late
    select: [{key: "dash/b"}]
    deadline: {cron: "0 8 * * *", timezone: UTC, window: 6h}
    tier: high
    rollout: auto
    auto_approve: [retry, materialize]
"""


def _graph() -> AssetGraph:
    n = AssetNode
    return AssetGraph([
        n("src/t", CONNECTOR_TABLE, kinds=frozenset({"fivetran"}), connector="fivetran:src"),
        n("m", DBT_MODEL, upstream=("src/t",)),
        n("dash/a", DASHBOARD, upstream=("m",)),
        n("dash/b", DASHBOARD, upstream=("m",)),
    ])


def _res(g, now):
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "p.yaml"
        p.write_text(POLICIES)
        res = resolve(load_policies([p]), g, DurationModel(), now)
    assert res.ok, res.skip_reason
    return res


def _snap(now, sync_start, sync_end, model_start, model_end, **kw):
    g = _graph()
    runs = [RunRecord("r1", RunStatus.success, ("m", "dash/a", "dash/b"), model_start, model_start, model_end)]
    mats = [Materialization("src/t", sync_end, None, None, (sync_end - sync_start).total_seconds()),
            Materialization("m", model_end, "r1", None, 60.0),
            Materialization("dash/a", model_end, "r1"), Materialization("dash/b", model_end, "r1")]
    syncs = [SyncRecord("fivetran:src", "s1", "succeeded", sync_start, sync_end, tables=("src/t",))]
    last = {m.asset_key: m.at for m in mats}
    return Snapshot(taken_at=now, graph=g, last_success=last, materializations=mats, runs=runs, syncs=syncs,
                    durations={k: [600.0] * 5 for k in g.keys}, **kw)


def test_derived_data_time_sync_start_and_oldest_input():
    # the sync started 21:50 (before the 22:00 window) and landed 22:10; the model ran at 22:15
    s = _snap(T + timedelta(hours=1), T - timedelta(minutes=130), T - timedelta(minutes=110),
              T - timedelta(minutes=105), T - timedelta(minutes=100))
    dts, held = data_times(s)
    assert dts["src/t"] == T - timedelta(minutes=130)
    assert dts["m"] == dts["dash/a"] == T - timedelta(minutes=130)
    assert held["dash/a"] == "src/t" and held["src/t"] == "src/t"


def test_a_model_run_after_the_window_opened_on_older_data_is_not_fresh():
    now = T + timedelta(hours=5, minutes=40)  # 05:40, deadline 06:00 (window from 22:00)
    s = _snap(now, T - timedelta(minutes=130), T - timedelta(minutes=110),
              T - timedelta(minutes=105), T - timedelta(minutes=100))
    res = _res(s.graph, now)
    a = assess(s, res, DurationModel(s.durations), now=now)
    fa = a.freshness["dash/a"]
    # it ran at 22:20, after the window opened, but its data dates from 21:50: it must run again
    assert "fresh for" not in fa.reason and fa.predicted_ready > now, fa.reason
    assert fa.data_time == T - timedelta(minutes=130) and fa.data_held_by == "src/t"
    # the planner refreshes the source (data time, not run time), then what depends on it
    p = plan(s, a, res, DurationModel(s.durations), now=now)
    run_keys = {k for act in p.actions for k in act.asset_keys}
    assert "src/t" in run_keys, p.rationale
    # a sync that started after the window opened makes it fresh
    ok = _snap(now, T - timedelta(minutes=110), T - timedelta(minutes=90),
               T - timedelta(minutes=85), T - timedelta(minutes=80))
    fa = assess(ok, res, DurationModel(ok.durations), now=now).freshness["dash/a"]
    assert fa.status is FreshnessStatus.ok and "data as of" in fa.reason


def test_given_data_time_wins_and_the_sensor_shows_it():
    now = T + timedelta(hours=5)
    s = _snap(now, T - timedelta(minutes=110), T - timedelta(minutes=90),
              T - timedelta(minutes=85), T - timedelta(minutes=80),
              data_time={"src/t": T - timedelta(hours=3), "m": T - timedelta(hours=3),
                         "dash/a": T - timedelta(hours=3), "dash/b": T - timedelta(hours=3)})
    res = _res(s.graph, now)
    fa = assess(s, res, DurationModel(s.durations), now=now).freshness["dash/a"]
    assert "fresh for" not in fa.reason and fa.data_held_by == "src/t"
    from sensors.freshness import check_metadata

    meta = check_metadata(fa)
    assert meta["data_time"] == (T - timedelta(hours=3)).isoformat() and meta["data_held_back_by"] == "src/t"


def test_one_upstream_two_deadlines_each_cycle_gets_newer_data():
    # 07:35: dash/a (06:00, window from 22:00) was served by the 23:00 refresh; dash/b (08:00, window
    # from 02:00) needs data newer than 02:00: the shared upstream is refreshed again for it
    now = T + timedelta(hours=7, minutes=35)
    s = _snap(now, T - timedelta(minutes=60), T - timedelta(minutes=40),
              T - timedelta(minutes=35), T - timedelta(minutes=30))
    res = _res(s.graph, now)
    a = assess(s, res, DurationModel(s.durations), now=now)
    assert a.freshness["dash/a"].status is FreshnessStatus.ok  # its cycle was served
    assert "fresh for" not in a.freshness["dash/b"].reason
    p = plan(s, a, res, DurationModel(s.durations), now=now)
    keys = {k for act in p.actions for k in act.asset_keys}
    assert {"src/t", "m"} <= keys, p.rationale  # (the dashboard follows: run size limit on 4 assets)


@settings(max_examples=50, deadline=None)
@given(events=st.lists(st.tuples(st.sampled_from(["sync", "m", "dash"]), st.integers(1, 90)), min_size=1, max_size=12))
def test_data_time_never_exceeds_an_input_or_the_last_run(events):
    """Random histories of syncs and runs: a model's data time is never newer than its inputs'
    nor than its own last materialization."""
    g = _graph()
    t = T
    mats, runs, syncs = [], [], []
    for i, (what, gap) in enumerate(events):
        start = t + timedelta(minutes=gap)
        end = start + timedelta(minutes=10)
        if what == "sync":
            syncs.append(SyncRecord("fivetran:src", f"s{i}", "succeeded", start, end, tables=("src/t",)))
            mats.append(Materialization("src/t", end, None))
        else:
            keys = ("m",) if what == "m" else ("dash/a", "dash/b")
            runs.append(RunRecord(f"r{i}", RunStatus.success, keys, start, start, end))
            mats += [Materialization(k, end, f"r{i}") for k in keys]
        t = end
    last: dict = {}
    for m in mats:
        last[m.asset_key] = max(last.get(m.asset_key, m.at), m.at)
    s = Snapshot(taken_at=t, graph=g, last_success=last, materializations=mats, runs=runs, syncs=syncs)
    dts, _ = data_times(s)
    for k, v in dts.items():
        assert v <= last[k]
        for p in g.parents(k):
            if p in dts:
                assert v <= dts[p], (k, p)
