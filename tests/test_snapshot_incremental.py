"""The snapshot carried across sensor ticks (``orchestrator.event_log_cache``: a storage-id cursor
on the event log; durations, data times and root-cause links carried over) gives, tick after
tick, what a full read of the instance gives: random event histories (materializations with and
without runs and partitions, wipes, observations, late commits below the cursor, events deleted
with a run) are read both ways after every step and compared."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import orchestrator.event_log_cache as cache
import orchestrator.snapshot as snapshot
from orchestrator.core import datatime
from orchestrator.core.graph import AssetGraph, AssetNode
from orchestrator.core.records import Materialization, RunRecord, RunStatus, Snapshot


@pytest.fixture
def instance(monkeypatch):
    cache.clear()
    monkeypatch.delenv(cache.RESYNC_ENV, raising=False)
    with dg.instance_for_test() as inst:
        yield inst
    cache.clear()


def _graph(prefix: str, n: int = 6) -> AssetGraph:
    nodes = [AssetNode(f"{prefix}src/a", role="connector_table", connector="fivetran:c")]
    nodes += [AssetNode(f"{prefix}m{i}", role="dbt_model", upstream=(f"{prefix}src/a",) if i == 0 else (f"{prefix}m{i - 1}",))
              for i in range(n)]
    return AssetGraph(nodes)


def _last_id(instance) -> int:
    import sqlalchemy as db
    from dagster._core.storage.event_log.schema import SqlEventLogStorageTable as E

    with instance.event_log_storage.index_connection() as conn:
        return conn.execute(db.select(db.func.max(E.c.id))).scalar()


def _set_row(instance, sid: int, **values) -> None:
    import sqlalchemy as db  # noqa: F401
    from dagster._core.storage.event_log.schema import SqlEventLogStorageTable as E

    with instance.event_log_storage.index_connection() as conn:
        conn.execute(E.update().where(E.c.id == sid).values(**values))


def _materialize(instance, key: str, partition=None, run_id: str | None = None) -> int:
    instance.report_runless_asset_event(
        dg.AssetMaterialization(dg.AssetKey.from_user_string(key), partition=partition))
    sid = _last_id(instance)
    if run_id:  # the columns the snapshot reads (the event JSON keeps the runless id)
        _set_row(instance, sid, run_id=run_id)
    return sid


def _reference(instance, graph, since, runs):
    """A full read, as before the cache: every tick reads everything, durations by one loop."""
    mp = pytest.MonkeyPatch()
    mp.setenv(cache.RESYNC_ENV, "0")
    try:
        last = snapshot.read_last_success(instance, graph.keys)
        rows = snapshot._materialization_rows(instance, since, 0)
    finally:
        mp.undo()
    mats, durations, in_run = [], defaultdict(list), defaultdict(dict)
    for key, ts, run_id, partition in reversed(rows):
        dur = None
        run = runs.get(run_id) if run_id else None
        if run is not None and run.started_at is not None:
            begin = run.started_at.timestamp()
            if key in graph:
                for parent in graph.parents(key):
                    t = in_run[run_id].get(parent)
                    if t is not None and t > begin:
                        begin = t
            dur = max(0.0, ts - begin)
            durations[key].append(dur)
            in_run[run_id][key] = ts
        mats.append(Materialization(key, datetime.fromtimestamp(ts, UTC), run_id or None, partition, dur))
    return last, mats, dict(durations)


def _carried(instance, graph, since, runs):
    last = snapshot.read_last_success(instance, graph.keys)
    mats, durations = snapshot.InstanceReader(instance).materializations(since, graph, runs)
    return last, mats, durations


def _run(run_id: str, started: datetime | None) -> RunRecord:
    return RunRecord(run_id, RunStatus.running if started else RunStatus.queued, (), started or datetime.now(UTC),
                     started_at=started)


OPS = st.lists(st.tuples(st.sampled_from(["mat", "mat", "mat_run", "partition", "wipe", "observe", "start_run",
                                          "late", "delete_run"]),
                         st.integers(0, 6), st.integers(0, 2)), min_size=1, max_size=8)


@pytest.fixture(scope="module")
def shared_instance():
    cache.clear()
    with dg.instance_for_test() as inst:
        yield inst
    cache.clear()


_EXAMPLE = iter(range(10**6))


@settings(max_examples=10, deadline=None)
@given(ops=OPS)
def test_carried_reads_equal_full_reads_after_every_step(shared_instance, ops):
    # one instance for every example (each with its own keys and runs): the held state carries
    # from example to example as it does from tick to tick
    instance = shared_instance
    if True:
        prefix = f"x{next(_EXAMPLE)}_"
        graph = _graph(prefix)
        keys = graph.keys
        since = datetime.now(UTC) - timedelta(hours=1)
        runs: dict[str, RunRecord] = {}
        t0 = datetime.now(UTC) - timedelta(minutes=5)
        for op, i, r in ops:
            key, run_id = keys[i], f"{prefix}run{r}"
            if op == "mat":
                _materialize(instance, key)
            elif op == "mat_run":
                _materialize(instance, key, run_id=run_id)
            elif op == "partition":
                _materialize(instance, key, partition=f"2024-01-0{r + 1}", run_id=run_id)
            elif op == "wipe":
                instance.wipe_assets([dg.AssetKey.from_user_string(key)])
            elif op == "observe":
                instance.report_runless_asset_event(dg.AssetObservation(dg.AssetKey.from_user_string(key)))
            elif op == "start_run":
                runs[run_id] = _run(run_id, t0 + timedelta(seconds=r))
            elif op == "late":
                # a row stored with an id below the cursor already read (PostgreSQL: id taken at
                # insert, visible at commit): move the newest row up, tick, then fill the gap
                top = _materialize(instance, key)
                _set_row(instance, top, id=top + 10)
                assert _carried(instance, graph, since, runs) == _reference(instance, graph, since, runs)
                sid = _materialize(instance, keys[(i + 1) % len(keys)], run_id=run_id)
                _set_row(instance, sid, id=top + 5)
            elif op == "delete_run":
                instance.event_log_storage.delete_events(run_id)
                # deletions are not in the cursor's view: caught by the periodic full re-read
                for state in cache._STATES.values():
                    state.synced_at = -1e9
            got, want = _carried(instance, graph, since, runs), _reference(instance, graph, since, runs)
            assert got[0] == want[0], op
            assert [m for m in got[1] if m not in want[1]] == [m for m in want[1] if m not in got[1]], op
            assert got == want, op


def test_only_new_rows_are_read_and_a_wiped_asset_goes_through_the_public_api(instance):
    graph = _graph("")
    since = datetime.now(UTC) - timedelta(hours=1)
    for key in graph.keys:
        _materialize(instance, key)
    _carried(instance, graph, since, {})
    (state,) = cache._STATES.values()
    assert state.reads["full"] == 1 and state.reads["rows_full"] == 1
    _materialize(instance, "m2")
    last, mats, _ = _carried(instance, graph, since, {})
    assert state.reads["full"] == 1 and state.reads["rows_full"] == 1 and state.reads["incremental"] >= 1
    assert [m.asset_key for m in mats].count("m2") == 2
    instance.wipe_assets([dg.AssetKey("m2")])
    last, _, _ = _carried(instance, graph, since, {})
    assert "m2" not in last  # wiped: Dagster's own wipe filter applies
    _materialize(instance, "m2")
    last, _, _ = _carried(instance, graph, since, {})
    assert "m2" in last
    assert (last, mats) [0] == _reference(instance, graph, since, {})[0]


def test_a_wiped_storage_or_the_resync_interval_reads_everything_again(instance, monkeypatch):
    graph = _graph("")
    since = datetime.now(UTC) - timedelta(hours=1)
    for key in graph.keys:
        _materialize(instance, key)
    _carried(instance, graph, since, {})
    (state,) = cache._STATES.values()
    instance.wipe()  # every event and asset key gone
    _materialize(instance, "m0")
    assert _carried(instance, graph, since, {}) == _reference(instance, graph, since, {})
    assert state.reads["full"] == 2
    full = state.reads["full"]
    monkeypatch.setenv(cache.RESYNC_ENV, "0.000001")
    _carried(instance, graph, since, {})
    assert state.reads["full"] > full
    for bad in ("-1", "soon"):
        monkeypatch.setenv(cache.RESYNC_ENV, bad)
        with pytest.raises(ValueError, match=cache.RESYNC_ENV):
            cache.resync_seconds()


def test_a_wider_window_and_the_cap_fall_back_to_a_full_read(instance):
    graph = _graph("")
    for key in graph.keys:
        _materialize(instance, key)
    now = datetime.now(UTC)
    _carried(instance, graph, now - timedelta(minutes=30), {})
    wide = _carried(instance, graph, now - timedelta(hours=5), {})
    assert wide == _reference(instance, graph, now - timedelta(hours=5), {})
    capped = snapshot.build_snapshot(instance, graph, now=now + timedelta(seconds=1), failures=False,
                                     caps=snapshot.SnapshotCaps(max_materializations=3))
    assert len(capped.materializations) == 3 and "materializations" in snapshot.caps_hit(capped)
    assert [m.at for m in capped.materializations] == sorted(m.at for m in _reference(
        instance, graph, now - timedelta(days=2), {})[1])[-3:]


# -- durations carried across ticks (no instance: rows and runs generated) -----------------------

ROWS = st.lists(st.tuples(st.integers(0, 5), st.floats(0, 3600), st.sampled_from(["", "r0", "r1", "r2"]),
                          st.sampled_from([None, "p1"])), max_size=40)


@settings(max_examples=60, deadline=None)
@given(batches=st.lists(st.tuples(ROWS, st.integers(0, 20), st.sets(st.sampled_from(["r0", "r1", "r2"]))),
                        min_size=1, max_size=5))
def test_durations_memo_equals_the_loop_over_every_row(batches):
    graph = _graph("", 5)
    keys = graph.keys
    memo = snapshot._DurationsMemo(graph)
    held: list[tuple] = []
    sid = 0
    base = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    for new, drop, started in batches:
        for k, ts, run_id, part in new:
            sid += 1
            held.append((sid, keys[k], base + ts, run_id, part))
        held = held[min(drop, len(held)):]  # the window's edge moved past the oldest rows
        runs = {r: _run(r, datetime.fromtimestamp(base - 60, UTC)) for r in started}
        memo.update(list(held), runs)
        fresh = snapshot._DurationsMemo(graph)
        fresh.update(list(held), runs)
        assert memo.mats == fresh.mats
        assert {k: v for k, v in memo.durations.items() if v} == {k: v for k, v in fresh.durations.items() if v}


def test_data_times_are_carried_for_equal_inputs_and_recomputed_otherwise():
    graph = _graph("", 3)
    now = datetime.now(UTC)
    mats = [Materialization(k, now - timedelta(minutes=10 - i)) for i, k in enumerate(graph.keys)]
    snap = Snapshot(taken_at=now, graph=graph, materializations=list(mats),
                    last_success={m.asset_key: m.at for m in mats})
    first = datatime.data_times(snap)
    again = Snapshot(taken_at=now + timedelta(seconds=15), graph=graph, materializations=list(mats),
                     last_success=dict(snap.last_success))
    hits = datatime._CARRY.hits
    assert datatime.data_times(again) == first and datatime._CARRY.hits == hits + 1
    newer = Materialization("src/a", now)
    changed = Snapshot(taken_at=now, graph=graph, materializations=[*mats, newer],
                       last_success={**snap.last_success, "src/a": now})
    assert datatime.data_times(changed) == datatime._compute(changed)
    assert datatime.data_times(changed)[0]["src/a"] == now


def test_rows_take_the_graph_key_objects_and_no_key_map_is_kept(instance):
    """Cold and warm reads (rows read in full, then applied from the cursor, keys with a "/" and
    a wiped one): every materialization's key and every last-success key is the graph's own
    object, and no db string <-> user string map is kept in the process."""
    graph = _graph("p/")
    since = datetime.now(UTC) - timedelta(hours=1)
    for key in graph.keys:
        _materialize(instance, "".join(key))  # other string objects, equal to the graph's
    mine = {k: k for k in graph.keys}
    for step in range(3):
        last, mats, _ = _carried(instance, graph, since, {})
        assert mats and all(m.asset_key is mine[m.asset_key] for m in mats), step
        assert last and all(k is mine[k] for k in last), step
        assert not snapshot._USER_KEY and not snapshot._DB_KEY
        _materialize(instance, "p/m1")
        if step == 1:
            instance.wipe_assets([dg.AssetKey(["p", "m3"])])
    last, mats, _ = _carried(instance, graph, since, {})
    assert all(m.asset_key is mine[m.asset_key] for m in mats) and all(k is mine[k] for k in last)
    assert "p/m3" not in last and last == _reference(instance, graph, since, {})[0]
