"""The data-time carry's compact form (``orchestrator.core.datatime._Hist``: histories as
microseconds in flat columns, the window rows it is computed from kept there, a run-id map only for
assets with run ids) against the plain computation it replaced, kept below as the oracle: random
graphs, histories and tick sequences (rows appended, dropped at the edge, read again as equal
objects, forgotten; latest materializations, given data times, run starts and syncs changing), the
carried update after every step and a computation from scratch giving the plain data times,
holders, histories and data times per run."""

from __future__ import annotations

import dataclasses
import random
from bisect import bisect_right
from datetime import datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.core import datatime
from orchestrator.core.datatime import _SYNC_MATCH, BEFORE_HISTORY, _Hist, _NOT_ROW
from orchestrator.core.graph import CONNECTOR_TABLE, DASHBOARD, DBT_MODEL, AssetGraph, AssetNode
from orchestrator.core.records import Materialization, RunRecord, RunStatus, Snapshot, SyncRecord

UTC = timezone.utc
EST = timezone(timedelta(hours=-5))
NOW = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)

# -- the plain computation (the module's before the compact carry), kept here as the oracle -------
def _aware(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _plain_syncs_of(syncs):
    out: dict[str, list[tuple[datetime, datetime]]] = {}
    for s in syncs:
        if s.status == "succeeded" and s.ended_at is not None:
            for t in s.tables:
                out.setdefault(t, []).append((_aware(s.ended_at), _aware(s.started_at)))
    return out


def _plain_with_last(entries: list, latest: datetime | None) -> list:
    if latest is None:
        return entries
    t = _aware(latest)
    if not entries or max(x[0] for x in entries) < t:
        return [*entries, (t, None, None)]
    return entries


def _plain_one(k, entries, given, ps, node, run_start, syncs_of, hist, held, of_run, windowed):
    if k in given:
        g = _aware(given[k])
        landed = sorted(x[0] for x in entries) or [g]
        return (landed, [g] * len(landed)), g, k, {}
    if not entries:
        return None
    entries = sorted(entries, key=lambda x: x[0])
    is_table = node is not None and node.connector is not None
    at_l: list[datetime] = []
    dt_l: list[datetime] = []
    mine: dict[str, datetime] = {}
    hb = k

    def as_of(key, t, run_id):
        if run_id is not None:
            r = of_run.get(key)
            if r is not None and run_id in r:
                return r[run_id]
        h = hist.get(key)
        if not h or not h[0]:
            return None
        i = bisect_right(h[0], t)
        return h[1][i - 1] if i else None

    for at, run_id, dur in entries:
        start = run_start.get(run_id) if run_id else None
        if start is None:
            start = at - timedelta(seconds=dur) if dur else at
        if is_table or not ps:
            dt = start
            for ended, started in syncs_of.get(k, ()):
                if abs((ended - at).total_seconds()) <= _SYNC_MATCH.total_seconds() and started <= at:
                    dt = started
            hb = k
        else:
            known = []
            for p in ps:
                t = as_of(p, start, run_id)
                if t is None:
                    h = hist.get(p)
                    if not h or not h[1]:
                        continue
                    t = BEFORE_HISTORY if p in windowed else h[1][0]
                known.append((t, p))
            if known:
                dt, p = min(known, key=lambda x: x[0])
                hb = p if dt == BEFORE_HISTORY else held.get(p, p)
            else:
                dt = start
        at_l.append(at)
        dt_l.append(min(dt, at))
        if run_id is not None:
            mine[run_id] = dt_l[-1]
    for i in range(1, len(dt_l)):
        if dt_l[i] < dt_l[i - 1]:
            dt_l[i] = dt_l[i - 1]
    return (at_l, dt_l), dt_l[-1], hb, mine


def plain(snapshot: Snapshot):
    """(data times, held by, histories, data times per run) computed from scratch, as before."""
    graph = snapshot.graph
    given = snapshot.data_time or {}
    last = snapshot.last_success
    run_start = {r.run_id: _aware(r.started_at or r.created_at) for r in snapshot.runs}
    mat_runs: dict[str, list] = {}
    for m in snapshot.materializations:
        if m.partition is None:
            mat_runs.setdefault(m.asset_key, []).append((_aware(m.at), m.run_id, m.duration_s))
    syncs_of = _plain_syncs_of(snapshot.syncs)
    hist: dict = {}
    dts: dict = {}
    held: dict = {}
    of_run: dict = {}
    for k in graph.topological_order():
        out = _plain_one(k, _plain_with_last(mat_runs.get(k, []), last.get(k)), given, graph.parents(k),
                         graph.get(k), run_start, syncs_of, hist, held, of_run, mat_runs)
        if out is None:
            continue
        hist[k], dts[k], held[k], of_run[k] = out
    return dts, held, hist, of_run


def plain_result(snapshot: Snapshot):
    graph = snapshot.graph
    given_ = snapshot.data_time or {}
    if given_ and all(k in given_ or k not in snapshot.last_success for k in graph.topological_order()):
        return datatime._compute(snapshot), None  # (every data time given: not the compact path)
    dts, held, hist, of_run = plain(snapshot)
    return (dts, held), (hist, of_run)


# -- random worlds ------------------------------------------------------------------------------
def _graph(rng: random.Random) -> AssetGraph:
    nodes, keys = [], []
    for i in range(rng.randint(1, 4)):
        key = f"src/t{i}"
        nodes.append(AssetNode(key, CONNECTOR_TABLE, connector=f"fivetran:c{i % 2}"))
        keys.append(key)
    for i in range(rng.randint(1, 9)):
        ups = tuple(rng.sample(keys, k=min(len(keys), rng.randint(0 if i == 0 else 1, 3))))
        key = f"m{i}"
        nodes.append(AssetNode(key, DBT_MODEL, upstream=ups))
        keys.append(key)
    nodes.append(AssetNode("dash/d", DASHBOARD, upstream=tuple(rng.sample(keys, k=min(2, len(keys))))))
    return AssetGraph(nodes)


def _time(rng: random.Random, t: datetime) -> datetime:
    """The same instant, sometimes naive (UTC) or in another time zone."""
    x = rng.random()
    if x < 0.1:
        return t.replace(tzinfo=None)
    if x < 0.2:
        return t.astimezone(EST)
    return t


class World:
    def __init__(self, seed: int):
        self.rng = rng = random.Random(seed)
        self.graph = _graph(rng)
        self.keys = list(self.graph.topological_order())
        self.now = NOW
        self.mats: list[Materialization] = []
        self.last: dict[str, datetime] = {}
        self.given: dict[str, datetime] = {}
        self.runs: dict[str, RunRecord] = {}
        self.syncs: list[SyncRecord] = []
        for _ in range(rng.randint(0, 30)):
            self.append(self.now - timedelta(hours=rng.uniform(0, 48)))
        self.mats.sort(key=lambda m: _aware(m.at))
        for k in rng.sample(self.keys, rng.randint(0, len(self.keys))):  # older latest ones
            self.last[k] = self.now - timedelta(hours=rng.uniform(40, 200))
        for m in self.mats:
            if m.partition is None and (m.asset_key not in self.last or _aware(self.last[m.asset_key]) < _aware(m.at)):
                self.last[m.asset_key] = m.at

    def append(self, at: datetime) -> None:
        rng = self.rng
        k = rng.choice(self.keys)
        run_id = dur = partition = None
        kind = rng.random()
        if kind < 0.35:
            shared = [r for r in self.runs.values() if _aware(r.created_at) < at]
            if shared and rng.random() < 0.5:
                run_id = rng.choice(shared).run_id
            else:
                run_id = f"r{len(self.runs)}"
                began = at - timedelta(minutes=rng.choice((0, rng.uniform(1, 150))))
                self.runs[run_id] = RunRecord(run_id, RunStatus.success, (k,), _time(rng, began - timedelta(seconds=30)),
                                              started_at=rng.choice((None, _time(rng, began))))
        elif kind < 0.55:
            dur = rng.choice((0.0, 0.4, rng.uniform(1, 5_000)))
        elif kind < 0.7 and k.startswith("src/"):
            self.syncs.append(SyncRecord(self.graph.get(k).connector, f"s{len(self.syncs)}",
                                         rng.choice(("succeeded", "succeeded", "failed")),
                                         _time(rng, at - timedelta(minutes=rng.uniform(1, 90))),
                                         ended_at=at + timedelta(seconds=rng.choice((-300, 0, 600, 601, rng.uniform(-900, 900)))),
                                         tables=(k,)))
        elif kind < 0.75:
            partition = rng.choice(("2026-05-01", "2026-05-02"))
        if rng.random() < 0.15 and self.mats:  # at the very time of another row, often the same asset's
            other = rng.choice(self.mats)
            at = _aware(other.at)
            k = other.asset_key if rng.random() < 0.5 else k
        m = Materialization(k, _time(rng, at), run_id, partition, dur)
        self.mats.append(m)
        if partition is None and (k not in self.last or _aware(self.last[k]) <= at):
            self.last[k] = m.at if rng.random() < 0.7 else _time(rng, at)

    def step(self, kind: str, x: int) -> None:
        rng = random.Random(x)
        self.rng = rng
        if kind == "new":
            for _ in range(1 + x % 4):
                self.now += timedelta(seconds=rng.uniform(1, 3_000))
                self.append(self.now)
        elif kind == "edge":
            del self.mats[:1 + x % 5]
        elif kind == "reread" and self.mats:  # an equal row of another identity
            i = x % len(self.mats)
            self.mats[i] = dataclasses.replace(self.mats[i])
            if rng.random() < 0.5:
                self.mats = [dataclasses.replace(m) for m in self.mats]
        elif kind == "forget" and self.mats:
            del self.mats[x % len(self.mats)]
        elif kind == "latest":
            k = rng.choice(self.keys)
            if k in self.last and rng.random() < 0.3:
                del self.last[k]
            else:
                self.last[k] = _time(rng, self.now - timedelta(hours=rng.uniform(0, 100)))
        elif kind == "given":
            k = rng.choice(self.keys)
            if k in self.given and rng.random() < 0.5:
                del self.given[k]
            else:
                self.given[k] = _time(rng, self.now - timedelta(hours=rng.uniform(0, 60)))
        elif kind == "run" and self.runs:
            rid = rng.choice(sorted(self.runs))
            r = self.runs[rid]
            self.runs[rid] = dataclasses.replace(r, started_at=_aware(r.created_at) + timedelta(minutes=rng.uniform(-60, 60)))
        elif kind == "sync" and self.syncs:
            if rng.random() < 0.5:
                del self.syncs[x % len(self.syncs)]
            else:
                s = self.syncs[x % len(self.syncs)]
                self.syncs.append(dataclasses.replace(s, sync_id=s.sync_id + "b",
                                                      started_at=_aware(s.started_at) - timedelta(minutes=5)))

    def snapshot(self) -> Snapshot:
        return Snapshot(taken_at=self.now, graph=self.graph, last_success=dict(self.last),
                        materializations=list(self.mats), runs=list(self.runs.values()), syncs=list(self.syncs),
                        data_time=dict(self.given))


def _check(snap: Snapshot, got: tuple) -> bool:
    """The result and what is carried equal the plain computation's; False: every data time was
    given (computed in full, nothing carried)."""
    want, carried = plain_result(snap)
    assert got == want
    assert datatime._compute(snap) == want
    for k, v in got[0].items():  # data from before the history is that one value, not a copy
        assert (v is BEFORE_HISTORY) == (want[0][k] == BEFORE_HISTORY), k
        assert v.tzinfo is not None
    c = datatime._CARRY
    if carried is None or c.store is None:
        return False
    hist, of_run = carried
    pos = snap.graph.topological_index()
    for k in snap.graph.topological_order():
        assert c.store.history(pos[k]) == (None if k not in hist else (hist[k][0], hist[k][1])), k
        want_runs = {r: datatime._us(t) for r, t in of_run.get(k, {}).items()}
        assert c.of_run.get(k, {}) == want_runs, k
        assert c.of_run.get(k) != {}  # (no map for an asset without run ids)
    return True


STEPS = st.lists(st.tuples(st.sampled_from(("new", "new", "edge", "reread", "forget", "latest", "given", "run",
                                            "sync", "same")), st.integers(0, 10**6)), max_size=14)


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 10**6), steps=STEPS)
def test_the_compact_carry_equals_the_plain_computation_after_every_tick(seed, steps):
    world = World(seed)
    saved = datatime._CARRY
    datatime._CARRY = datatime._Carry()
    try:
        snap = world.snapshot()
        carried = _check(snap, datatime.data_times(snap))
        full = 1
        for kind, x in steps:
            if kind != "same":
                world.step(kind, x)
            prev = datatime._CARRY.result
            snap = world.snapshot()
            got = datatime.data_times(snap)
            was, carried = carried, _check(snap, got)
            full += not (was and carried)  # (after every data time given, nothing was carried)
            if kind == "same":
                assert got[0] is prev[0] and got[1] is prev[1]  # equal inputs: the carried result, as it was
        # every step carried (an update or the same result), not computed again
        assert datatime._CARRY.misses <= full
    finally:
        datatime._CARRY = saved


@settings(max_examples=60, deadline=None)
@given(ops=st.lists(st.tuples(st.integers(0, 39), st.integers(-1, 40), st.integers(0, 10**9)), max_size=120))
def test_the_history_columns_hold_what_was_put_through_replacements_and_compaction(ops):
    """``_Hist`` against a dict of lists: histories put, replaced in place or by longer or shorter
    ones (the dead space compacted), cleared; rows (not the latest-only entry) read back."""
    class Small(_Hist):  # compacted past 16 dead entries, not 4,096
        __slots__ = ()
        MIN_DEAD = 16

    store = Small(40)
    model: dict[int, tuple] = {}
    compactions = 0
    for i, n, seed in ops:
        rng = random.Random(seed)
        if n < 0:
            store.clear(i)
            model.pop(i, None)
            assert store.history(i) is None
            continue
        n = n if rng.random() < 0.5 else max(1, n % 5)
        at = sorted(rng.randrange(-10**15, 10**15) for _ in range(n))
        dt = [rng.randrange(0, 10**15) for _ in range(n)]
        dur = [rng.choice((0.0, rng.uniform(0, 9e3))) for _ in range(n)]
        run = [rng.choice((None, "r1", "r2")) for _ in range(n)]
        if n and rng.random() < 0.3:
            run[-1] = _NOT_ROW
        before = store.dead
        store.put(i, at, dt, dur, run)
        compacted = store.dead < before
        compactions += compacted
        model[i] = (at, dt, dur, run) if n else None
        if not n:
            model.pop(i)
        for j in (range(40) if compacted else (i,)):  # every history after a compaction
            want = model.get(j)
            if want is None:
                assert store.history(j) is None and not store.windowed(j) and store.rows(j) == []
                continue
            assert store.same(j, want[0], want[1])
            assert store.history(j) == ([datatime._at_us(x) for x in want[0]], [datatime._at_us(x) for x in want[1]])
            assert store.rows(j) == [(a, r, d, None) for a, r, d in zip(want[0], want[3], want[2]) if r is not _NOT_ROW]
            assert store.windowed(j) == (want[3][0] is not _NOT_ROW)
    for j in range(40):
        want = model.get(j)
        assert store.history(j) == (None if want is None else
                                    ([datatime._at_us(x) for x in want[0]], [datatime._at_us(x) for x in want[1]]))
    assert len(store.at) == len(store.dt) == len(store.dur) == len(store.run)
    assert len(store.at) <= 2 * sum(store.cnt) + 16  # the dead space stays bounded


def test_data_times_at_microsecond_edges_and_in_other_time_zones_keep_their_values():
    """Microseconds are exact: a sync ending exactly 10 minutes from the row lands it, one
    microsecond more does not; a duration rounds as timedelta does; values in another time zone
    come back equal (the datetime the row gave, when the data time is that row's)."""
    g = AssetGraph([AssetNode("src/t", CONNECTOR_TABLE, connector="fivetran:c"),
                    AssetNode("m", DBT_MODEL, upstream=("src/t",))])
    at = datetime(2026, 5, 4, 10, 0, 0, 1, tzinfo=EST)
    syncs = [SyncRecord("fivetran:c", "s1", "succeeded", at - timedelta(hours=1), ended_at=at + timedelta(minutes=10),
                        tables=("src/t",)),
             SyncRecord("fivetran:c", "s2", "succeeded", at - timedelta(hours=2),
                        ended_at=at - timedelta(minutes=10, microseconds=1), tables=("src/t",))]
    mats = [Materialization("src/t", at, None, None, None), Materialization("m", at + timedelta(hours=1), None, None, 0.0000015)]
    snap = Snapshot(taken_at=NOW, graph=g, last_success={"src/t": at, "m": at + timedelta(hours=1)},
                    materializations=mats, syncs=syncs)
    saved = datatime._CARRY
    datatime._CARRY = datatime._Carry()
    try:
        dts, held = datatime.data_times(snap)
        want, _ = plain_result(snap)
        assert (dts, held) == want
        assert dts["src/t"] == at - timedelta(hours=1) and dts["src/t"] is syncs[0].started_at
        assert dts["m"] == at - timedelta(hours=1) and held["m"] == "src/t"
    finally:
        datatime._CARRY = saved


def test_the_carried_latest_materializations_are_a_private_copy_whose_edits_are_known():
    """``carried_last_success``: equal to the snapshot's, the carry's own dict (no second copy
    per tick), not changed when the snapshot's dict changes; a later snapshot edits it in place,
    and ``last_success_moved`` names exactly the keys whose latest success differs from the one
    read (the holder's comparison with the next snapshot stays right)."""
    world = World(7)
    saved = datatime._CARRY
    datatime._CARRY = datatime._Carry()
    try:
        snap = world.snapshot()
        datatime.data_times(snap)
        held, version = datatime.carried_last_success(snap)
        assert held == snap.last_success and held is not snap.last_success
        assert datatime.carried_last_success(snap)[0] is held  # the same one: not copied again
        before = dict(held)
        snap.last_success["src/t0"] = NOW + timedelta(days=1)  # the snapshot's changed in place
        assert held == before
        other, _ = datatime.carried_last_success(snap)  # not what the carry read: a new copy
        assert other == snap.last_success and other is not held and other is not snap.last_success
        for kind in ("new", "latest", "latest", "new", "latest"):
            world.step(kind, 3)
            nxt = world.snapshot()
            datatime.data_times(nxt)
            want = {k for k in before.keys() | nxt.last_success.keys() if before.get(k) != nxt.last_success.get(k)}
            assert datatime.last_success_moved(held, version, nxt.last_success) == want
            assert datatime.carried_last_success(nxt)[0] is held  # edited, not copied
            held, version = datatime.carried_last_success(nxt)
            before = dict(held)
    finally:
        datatime._CARRY = saved


@settings(max_examples=80, deadline=None)
@given(rows=st.lists(st.tuples(st.integers(0, 12), st.booleans()), max_size=40),
       visit=st.lists(st.booleans(), min_size=13, max_size=13))
def test_row_edits_grouped_by_position_read_back_as_each_asset_s_rows_in_order(rows, visit):
    """``_edits`` (the rows that left or came, grouped by topological position for the update)
    against a dict of lists: read forward over the positions (some skipped), each position gives
    its unpartitioned rows in the order given; keys outside the graph give nothing."""
    pos = {f"k{i}": i for i in range(10)}  # k10..k12: not in the graph
    mats = [Materialization(f"k{i}", NOW + timedelta(seconds=j), None, "2026-05-01" if part else None)
            for j, (i, part) in enumerate(rows)]
    want: dict[int, list] = {}
    for m in mats:
        if m.partition is None and m.asset_key in pos:
            want.setdefault(pos[m.asset_key], []).append(m)
    edits = datatime._edits(mats, pos)
    for i in range(13):
        if visit[i]:
            got = edits.at(i)
            assert got == want.get(i, []) and all(a is b for a, b in zip(got, want.get(i, [])))


@settings(max_examples=80, deadline=None)
@given(ops=st.lists(st.tuples(st.integers(0, 11), st.one_of(st.none(), st.integers(0, 5))), max_size=60))
def test_results_by_position_read_as_the_dict_of_the_same_writes(ops):
    """``ByPosition`` (the data times and holders as a list by topological position) against a
    dict given the same writes and removals: equal both ways, same lookups, length, keys in
    topological order; a copy made before later writes keeps its items; pickles as the dict."""
    import pickle

    order = tuple(f"k{i}" for i in range(10))
    pos = {k: i for i, k in enumerate(order)}
    got = datatime.ByPosition(pos, order)
    want: dict[str, str] = {}
    copies = []
    for j, (i, v) in enumerate(ops):
        key = f"k{i}"  # k10, k11: not in the graph (never written, read as missing)
        if i < 10:
            if v is None:
                got._drop(i)
                want.pop(key, None)
            else:
                got._set(i, f"v{v}")
                want[key] = f"v{v}"
        if j % 7 == 0:
            copies.append((got._copy(), dict(want)))
        assert got == want and want == got and len(got) == len(want)
        assert (key in got) == (key in want) and got.get(key) == want.get(key) and got.get(key, 0) == want.get(key, 0)
        assert list(got) == [k for k in order if k in want] and dict(got.items()) == want
        assert sorted(got.values()) == sorted(want.values())
    for c, w in copies:
        assert c == w
    assert pickle.loads(pickle.dumps(got)) == want


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10**6), steps=STEPS)
def test_unchanged_latest_successes_and_rows_are_not_copied_again(seed, steps):
    """A tick whose snapshot holds the same latest successes and rows (the same objects, in the
    same order) keeps the carry's copies instead of making new ones; any other tick copies, and
    the carry's copies never follow a later change to a snapshot's own dict or list."""
    world = World(seed)
    saved = datatime._CARRY
    datatime._CARRY = datatime._Carry()
    try:
        datatime.data_times(world.snapshot())
        for kind, x in steps:
            if kind != "same":
                world.step(kind, x)
            held = datatime._CARRY.inputs
            snap = world.snapshot()
            same_last = list(snap.last_success.items()) == list(held[1].items()) and all(
                a is b for a, b in zip(snap.last_success.values(), held[1].values()))
            same_rows = len(snap.materializations) == len(held[2]) and all(
                a is b for a, b in zip(snap.materializations, held[2]))
            got = datatime.data_times(snap)
            assert got == plain_result(snap)[0]
            now = datatime._CARRY.inputs
            # (equal parts of other objects: the carry keeps what it held, as before)
            assert (now[1] is held[1]) >= same_last and (now[2] is held[2]) >= same_rows
            assert now[1] == snap.last_success and now[2] == snap.materializations
            assert now[1] is not snap.last_success and now[2] is not snap.materializations
            kept_last, kept_rows = dict(now[1]), list(now[2])
            snap.last_success.clear()
            snap.materializations.clear()
            assert now[1] == kept_last and now[2] == kept_rows
    finally:
        datatime._CARRY = saved


@settings(max_examples=150, deadline=None)
@given(st.lists(st.dictionaries(st.sampled_from([f"k{i}" for i in range(8)]),
                                st.one_of(st.none(), st.integers(0, 3)), max_size=5), max_size=40),
       st.lists(st.booleans(), min_size=40, max_size=40))
def test_a_holder_of_the_edited_latest_successes_learns_every_key_that_moved(edits, reads):
    """``HeldLastSuccess`` edited in place snapshot after snapshot (keys set, changed, removed),
    read by a holder at some versions only (more edits in between than the log keeps, sometimes):
    ``last_success_moved`` covers every key whose value differs from what the holder read, and
    names no other key while the log reaches back."""
    held = datatime.HeldLastSuccess({})
    seen, version, current = {}, 0, {}
    for step, (change, read) in enumerate(zip(edits, reads)):
        for k, v in change.items():
            if v is None:
                current.pop(k, None)
            else:
                current[k] = NOW + timedelta(hours=v)
        snapshot_last = dict(current)
        moved = datatime._changed_keys(held, snapshot_last)
        if moved:
            held.edit(snapshot_last, moved)
        assert held == snapshot_last
        if read or step == len(edits) - 1:
            got = datatime.last_success_moved(held, version, snapshot_last)
            want = {k for k in seen.keys() | current.keys() if seen.get(k) != current.get(k)}
            assert want <= got
            if held.log and held.log[0][0] <= version + 1:
                assert got <= {k for _, ks in held.log for k in ks}
            seen, version = dict(held), held.version
