"""The event log cache's compact latest-materialization store (slots: ids in an array, datetimes
in a list, the slots interning keys) against the plain dict it replaced, kept here as the oracle;
and the db string -> user string parse against ``json``."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator import event_log_cache
from orchestrator.event_log_cache import EventLogState, Rows
from orchestrator.snapshot import _db_key, _user_key

T0 = datetime(2026, 11, 1, 12, 0)
KEYS = ["a", "b/c", "d/e/f", "g", "h", "x/y"]


class PlainLatest:
    """The former representation: user key -> (storage id, time) | None (read in full, none)."""

    def __init__(self):
        self.latest: dict[str, tuple[int, datetime] | None] = {}

    def reset(self):
        self.latest = {}

    def apply(self, rows):
        for sid, key, at in rows:
            cur = self.latest.get(key)
            if cur is None or sid > cur[0]:
                self.latest[key] = (sid, at)

    def last_success(self, keys, db, wiped):
        for k in keys:
            if k not in self.latest:
                self.latest[k] = db.get(_db_key(k))
        return {k: self.latest[k][1] for k in keys if self.latest[k] is not None and k not in wiped}


def _utc(t: datetime) -> datetime:
    return t.replace(tzinfo=event_log_cache.UTC)


step = st.one_of(
    st.tuples(st.just("rows"), st.lists(st.tuples(st.integers(1, 60), st.sampled_from(KEYS),
                                                  st.integers(0, 500)), max_size=8, unique_by=lambda r: r[0])),
    st.tuples(st.just("read"), st.lists(st.sampled_from(KEYS), min_size=1, max_size=6, unique=True)),
    st.tuples(st.just("store"), st.tuples(st.integers(1, 60), st.sampled_from(KEYS), st.integers(0, 500))),
    st.just(("reset", None)),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(step, max_size=25), st.sets(st.sampled_from(KEYS), max_size=2))
def test_the_slots_answer_what_the_plain_dict_answered(steps, wiped):
    """Random rows applied (out of order, repeated, for keys held or not), full reads of any keys
    (some never stored), database rows stored and full re-reads: ``last_success`` and
    ``latest_of`` equal the plain dict's every time."""
    state, plain = EventLogState(), PlainLatest()
    state.wiped_keys = set(wiped)
    db: dict[str, tuple[int, datetime]] = {}  # what the full read finds: db key -> newest (id, time)
    for kind, arg in steps:
        if kind == "rows":
            rows = [(sid, key, T0 + timedelta(minutes=m)) for sid, key, m in arg]
            state._apply((sid, _db_key(k), t, "run", None) for sid, k, t in rows)
            plain.apply((sid, k, _utc(t)) for sid, k, t in rows)
            # (the cache's own de-duplication by id: the plain model sees each id once too)
            state.recent_ids.clear()
        elif kind == "store":
            sid, key, m = arg
            d = _db_key(key)
            if d not in db or sid > db[d][0]:
                db[d] = (sid, _utc(T0 + timedelta(minutes=m)))
        elif kind == "reset":
            state._reset(0, 0.0)
            plain.reset()
        else:
            keys = ["".join(k) for k in arg]  # new string objects equal to the keys
            got = state.last_success(None, keys, _db_key, lambda conn, dks: {d: db[d] for d in dks if d in db},
                                     chunk=2)
            assert got == plain.last_success(keys, db, wiped)
        for k in KEYS:
            want = plain.latest.get(k, False)
            assert state.latest_of(k) == want
        assert all(at is None or at.tzinfo is event_log_cache.UTC for at in state._lat_at)


def test_rows_read_in_full_take_the_key_objects_the_caller_read():
    """The window's rows, read in full, take the graph's key objects (the slots intern them): no
    string per row, no map of db strings kept; keys no slot holds share one object per key."""
    state = EventLogState()
    state._reset(10, 0.0)
    graph_keys = ["".join(k) for k in ("src/t1", "m1", "dashboard/d1")]
    state.last_success(None, graph_keys, _db_key, lambda conn, dks: {})

    def read(conn, after, limit, key_of):
        out = Rows()
        for sid, key in enumerate(["src/t1", "m1", "src/t1", "other/k", "other/k", "m1"], start=1):
            out.append(sid, key_of(json.dumps(key.split("/"))), (T0 + timedelta(minutes=sid)).timestamp(), "r", None)
        return out

    rows = state.window_rows(None, T0 - timedelta(hours=1), T0 + timedelta(hours=1), 0, read)
    by_value = {k: k for k in graph_keys}
    for k in rows.keys:
        if k in by_value:
            assert k is by_value[k]
    others = [k for k in rows.keys if k == "other/k"]
    assert len(others) == 2 and others[0] is others[1]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.text(min_size=0, max_size=6), min_size=1, max_size=4))
def test_the_user_string_of_a_db_string_is_the_json_one(path):
    """The parse without ``json`` gives what ``AssetKey.from_db_string(...).to_user_string()``
    gives (the path joined by "/"), quotes, separators, escapes and non-ASCII included."""
    db = json.dumps(path)
    assert _user_key(db) == "/".join(path)
    assert _user_key(json.dumps(path, separators=(",", ":"))) == "/".join(path)
    assert _user_key(json.dumps(path, ensure_ascii=False)) == "/".join(path)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.lists(st.integers(0, 999), max_size=3), min_size=300, max_size=700), st.randoms())
def test_the_slots_and_the_graph_positions_share_their_int_objects(parents, rnd):
    """Positions above the interpreter's small-int cache (256): the graph's key -> position map
    equals the plain ``enumerate`` one, and the cache's key -> slot map holds, for each number, the
    very int object the graph's map holds (one set of ints for both, not one each)."""
    from orchestrator.core.graph import AssetGraph, AssetNode

    keys = [f"k{i}" for i in range(len(parents))]
    nodes = [AssetNode(key=k, upstream=tuple(keys[p] for p in ps if p < i)) for i, (k, ps) in enumerate(zip(keys, parents))]
    graph = AssetGraph(nodes)
    order = graph.topological_order()
    index = graph.topological_index()
    assert index == {k: i for i, k in enumerate(order)}
    by_number = {v: v for v in index.values()}
    state = EventLogState()
    asked = list(order)
    rnd.shuffle(asked)
    state.last_success(None, asked, _db_key, lambda conn, dks: {}, chunk=97)
    assert sorted(state._slot.values()) == list(range(len(keys)))
    assert all(v is by_number[v] for v in state._slot.values())


ROW = st.tuples(st.integers(0, 10**6), st.sampled_from(["a", "b/c", "d"]), st.integers(0, 40).map(float),
                st.sampled_from(["", "r1", "r2"]), st.sampled_from([None, "p1"]))


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(ROW, max_size=30), cut=st.integers(-1, 41).map(float), with_ids=st.booleans(),
       sort_ts=st.booleans())
def test_keeping_the_rows_after_a_cut_in_place_leaves_what_after_gives(rows, cut, with_ids, sort_ts):
    """The held rows lose their old front in place (the window's edge passing an hour): every
    column ends as the one ``after(cut)`` returns, timestamps in order or not (rows stored late)."""
    if sort_ts:
        rows = sorted(rows, key=lambda r: r[2])
    if not with_ids:
        rows = [(None, *r[1:]) for r in rows]
    held = Rows.from_tuples(rows)
    expected = Rows.from_tuples(rows).after(cut)
    columns = [held.ts, held.keys, held.runs, held.parts, held.ids]
    held.keep_after(cut)
    assert list(held.tuples()) == list(expected.tuples())
    assert held.ts.typecode == "d" and (held.ids is None) == (expected.ids is None)
    # the same column objects, changed in place
    assert [held.ts, held.keys, held.runs, held.parts, held.ids] == columns
    assert all(a is b for a, b in zip([held.ts, held.keys, held.runs, held.parts], columns))
