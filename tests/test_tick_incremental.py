"""The sensor tick's carried state gives what a computation from scratch gives.

Data times (``orchestrator.core.datatime``) are carried from tick to tick and computed again only
for the assets whose own inputs changed and, along lineage, the children of those whose result
moved; freshness assessments (``orchestrator.assessment.freshness``) are reused when their inputs
and the way ``now`` compares with their deadlines are unchanged. After every step of random
histories - new materializations (in runs or not), failed and in-flight runs, runs starting,
succeeded and failed syncs, the window's edge dropping old rows, the clock moving (across deadline
ticks too), policies edited (a new resolution) - the carried results must equal the ones computed
from scratch, and the carried path must actually have been taken.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.assessment import freshness as freshness_module
from orchestrator.assessment import assess_freshness
from orchestrator.core import datatime
from orchestrator.core.graph import AssetGraph, AssetNode
from orchestrator.core.records import Materialization, RunRecord, RunStatus, Snapshot, SyncRecord
from orchestrator.policies import DurationModel, resolve
from orchestrator.policies.model import load_policies_from_text

T0 = datetime(2026, 3, 10, 3, 0, tzinfo=UTC)

POLICIES = [
    """
policies:
  - name: exec
    select: [{key: "dash/*"}]
    deadline: {cron: "0 6 * * *", timezone: UTC, window: 8h}
    tier: critical
""",
    """
policies:
  - name: exec
    select: [{key: "dash/d0"}]
    deadline: {cron: "30 4 * * *", timezone: UTC, window: 3h}
  - name: lag
    select: [{key: "dash/*"}]
    max_lag: 2h
""",
    """
policies:
  - name: hourly
    select: [{key: "dash/*"}]
    deadline: {cron: "15 * * * *", timezone: UTC, window: 50m}
  - name: mart_lag
    select: [{key: "m*"}]
    max_lag: 90m
""",
]


def _graph(seed: int) -> AssetGraph:
    rng = random.Random(seed)
    nodes, keys = [], []
    for i in range(4):
        nodes.append(AssetNode(f"src/t{i}", role="connector_table", connector=f"fivetran:c{i % 2}",
                               kinds=frozenset({"fivetran"})))
        keys.append(f"src/t{i}")
    for i in range(7):
        ups = tuple(rng.sample(keys, k=rng.randint(1, min(3, len(keys)))))
        nodes.append(AssetNode(f"m{i}", role="dbt_model", upstream=ups))
        keys.append(f"m{i}")
    for i in range(2):
        nodes.append(AssetNode(f"dash/d{i}", role="dashboard", upstream=tuple(rng.sample(keys[4:], k=2))))
    return AssetGraph(nodes)


STEP = st.one_of(
    st.tuples(st.just("mat"), st.integers(0, 12), st.booleans(), st.integers(0, 1)),
    st.tuples(st.just("run"), st.integers(0, 12), st.sampled_from(["queued", "running", "failure", "success"]),
              st.integers(0, 3)),
    st.tuples(st.just("start"), st.integers(0, 1), st.integers(1, 30)),
    st.tuples(st.just("sync"), st.integers(0, 1), st.sampled_from(["succeeded", "failed", "running"]),
              st.integers(1, 40)),
    st.tuples(st.just("drop"), st.integers(1, 4)),
    st.tuples(st.just("clock"), st.integers(10, 4 * 3600)),
    # just before or after an asset's effective deadline (its share of the policy's tick)
    st.tuples(st.just("near"), st.integers(0, 12), st.integers(-90, 90)),
    st.tuples(st.just("policy"), st.integers(0, len(POLICIES) - 1)),
    st.tuples(st.just("nothing")),
)


def _from_scratch(snap: Snapshot, res, durations, now):
    """Data times and assessments with every carried state set aside (then put back)."""
    carry, reuse, cycles = datatime._CARRY, dict(freshness_module._REUSE), dict(freshness_module._CYCLES)
    datatime._CARRY = datatime._Carry()
    freshness_module._REUSE.clear()
    freshness_module._CYCLES.clear()
    try:
        fresh = Snapshot(taken_at=snap.taken_at, graph=snap.graph, last_success=dict(snap.last_success),
                         materializations=list(snap.materializations), runs=list(snap.runs),
                         syncs=list(snap.syncs))
        return datatime._compute(fresh), assess_freshness(fresh, res, durations, now)
    finally:
        datatime._CARRY = carry
        freshness_module._REUSE.clear()
        freshness_module._REUSE.update(reuse)
        freshness_module._CYCLES.clear()
        freshness_module._CYCLES.update(cycles)


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 10_000), steps=st.lists(STEP, min_size=1, max_size=14))
def test_carried_tick_equals_a_full_recompute(seed, steps):
    graph = _graph(seed)
    keys = graph.keys
    durations = DurationModel({k: [300 + 60 * (i % 5)] * 5 for i, k in enumerate(keys)})
    policy = 0
    res = resolve(load_policies_from_text(POLICIES[policy]), graph, durations, T0)
    assert res.ok, res.errors
    now = T0
    mats: list[Materialization] = [Materialization(k, T0 - timedelta(hours=20, minutes=i)) for i, k in enumerate(keys)]
    last = {m.asset_key: m.at for m in mats}
    runs: dict[str, RunRecord] = {}
    syncs: list[SyncRecord] = []
    n_run = 0
    partial = datatime._CARRY.partial
    hits = datatime._CARRY.hits
    for step in [("nothing"), *steps]:
        kind = step[0] if isinstance(step, tuple) else step
        if kind == "mat":
            _, i, in_run, r = step
            key = keys[i % len(keys)]
            run_id = f"r{r}" if in_run else None
            if run_id is not None and run_id not in runs:
                runs[run_id] = RunRecord(run_id, RunStatus.success, (key,), now - timedelta(minutes=20),
                                         started_at=now - timedelta(minutes=15), ended_at=now)
            m = Materialization(key, now - timedelta(seconds=5), run_id, None, 300.0 if run_id else None)
            mats.append(m)
            last[key] = max(last.get(key, m.at), m.at)
        elif kind == "run":
            _, i, status, r = step
            n_run += 1
            key = keys[i % len(keys)]
            run_id = f"x{n_run}"
            st_ = RunStatus(status)
            runs[run_id] = RunRecord(run_id, st_, (key,), now - timedelta(minutes=3),
                                     started_at=None if st_ is RunStatus.queued else now - timedelta(minutes=2),
                                     ended_at=now if not st_.in_flight else None)
        elif kind == "start":
            _, r, minutes = step
            run_id = f"r{r}"
            if run_id in runs:
                old = runs[run_id]
                runs[run_id] = RunRecord(run_id, old.status, old.asset_keys, old.created_at,
                                         started_at=(old.started_at or now) - timedelta(minutes=minutes),
                                         ended_at=old.ended_at)
        elif kind == "sync":
            _, c, status, minutes = step
            conn = f"fivetran:c{c}"
            tables = graph.connector_tables(conn)
            syncs.append(SyncRecord(conn, f"s{len(syncs)}", status, now - timedelta(minutes=minutes),
                                    ended_at=None if status == "running" else now - timedelta(minutes=1),
                                    tables=tables))
            if status == "succeeded":
                for t in tables:
                    m = Materialization(t, now - timedelta(minutes=1))
                    mats.append(m)
                    last[t] = max(last.get(t, m.at), m.at)
        elif kind == "near":
            _, i, secs = step
            sla = res.slas.get(keys[i % len(keys)])
            if sla is not None and sla.deadline is not None:
                now = max(now, sla.deadline.next_after(now) + timedelta(seconds=secs))
        elif kind == "drop":
            del mats[:step[1]]  # the window's edge passed the oldest rows (the latest stay known)
        elif kind == "clock":
            now = now + timedelta(seconds=step[1])
        elif kind == "policy":
            policy = step[1]
            res = resolve(load_policies_from_text(POLICIES[policy]), graph, durations, now)
            assert res.ok, res.errors
        snap = Snapshot(taken_at=now, graph=graph, last_success=dict(last), materializations=list(mats),
                        runs=list(runs.values()), syncs=list(syncs))
        got_dt = datatime.data_times(snap)
        got = assess_freshness(snap, res, durations, now)
        want_dt, want = _from_scratch(snap, res, durations, now)
        assert got_dt == want_dt, step
        assert got == want, step
    # the carried path was taken (not a full computation every step)
    assert datatime._CARRY.partial + datatime._CARRY.hits > partial + hits


def test_a_new_materialization_recomputes_its_lineage_only():
    """One new materialization of a source: its data time moves and its children are computed
    again; assets not downstream of it are not."""
    graph = AssetGraph([
        AssetNode("src/a", role="connector_table", connector="fivetran:a"),
        AssetNode("src/b", role="connector_table", connector="fivetran:b"),
        *[AssetNode(f"a{i}", role="dbt_model", upstream=("src/a",)) for i in range(5)],
        *[AssetNode(f"b{i}", role="dbt_model", upstream=("src/b",)) for i in range(50)],
    ])
    mats = [Materialization(k, T0 - timedelta(hours=2)) for k in graph.keys]
    last = {m.asset_key: m.at for m in mats}
    snap = Snapshot(taken_at=T0, graph=graph, last_success=dict(last), materializations=list(mats))
    datatime.data_times(snap)
    new = Materialization("src/a", T0 - timedelta(minutes=1))
    snap2 = Snapshot(taken_at=T0, graph=graph, last_success={**last, "src/a": new.at},
                     materializations=[*mats, new])
    dts, _ = datatime.data_times(snap2)
    assert dts["src/a"] == new.at
    assert datatime._CARRY.recomputed == 6  # src/a and its five children, none of the 51 others
    assert (dts, _) == datatime._compute(snap2)
