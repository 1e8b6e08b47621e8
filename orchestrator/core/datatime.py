"""Data time: the time an asset's data is current as of (no Dagster imports).

Freshness is judged by how old the data is, not by when the asset last ran:

* a connector table: when the sync that landed it *started* (rows changed after the start may
  be missing);
* a model (or dashboard): the oldest data time of the inputs it read when its run started.

``Snapshot.data_time`` carries it when the source knows it (the simulator does, exactly). For the
rest it is derived here from the snapshot: syncs (start of the succeeded sync that landed a
table), runs (start of the run that materialized a model) and the materialization history (the
inputs' data time as of that start). Without any of that, the data time is the latest
materialization (the old behaviour).

The snapshot's materializations start at its window's edge (``orchestrator.snapshot``). A model
that read an input's data from before it (no row of the input at or before the run's start) has
a data time only known to predate the edge: ``BEFORE_HISTORY``, a fixed value (not the edge, nor
the input's first recorded data time, which both move with the edge), held back by the input it
read (the first such input in the graph's order of its parents). An input with no row in the
window (its latest materialization only, older than the edge) bounds it by that one's data time
instead, as before: older than the edge too, and the edge does not move it.
So every data time computed from the window equals the one the whole history gives, or both
predate the edge; the edge passing an hour moves only data times older than the new edge; and a
comparison with any window opening or max_lag limit after the edge (freshness, the planner) has
the answer the whole history gives (``tests/test_datatime_edge.py``).

:func:`data_times` returns ``(data_time, held_by)``: ``held_by[k]`` is the upstream asset whose
data time ``k`` inherits (the input that holds it back), ``k`` itself for a source.
"""

from __future__ import annotations

import gc
import threading
from contextlib import contextmanager
from bisect import bisect_right
from datetime import datetime, timedelta, timezone

from orchestrator.core.records import Snapshot

UTC = timezone.utc
# The data time of an asset that read an input's data from before the history window (the
# snapshot's materializations start at its edge): only known to be older than the edge. A fixed
# value, not the edge itself nor an input's first recorded data time, so that the edge moving
# does not move it; older than any window opening or max_lag limit the history covers, so every
# freshness decision is the one the true (older) data time gives when those lie inside the
# window (``orchestrator.assessment.freshness.history_reach``).
BEFORE_HISTORY = datetime(1970, 1, 1, tzinfo=UTC)
BEFORE_HISTORY_TEXT = "a time before the history window"


def data_time_text(dt: datetime) -> str:
    """A data time as shown (UI metadata, reasons): ISO format, or that it predates the history."""
    return BEFORE_HISTORY_TEXT if dt == BEFORE_HISTORY else dt.isoformat()


_SYNC_MATCH = timedelta(minutes=10)  # a sync ending this close to a table's materialization landed it


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def data_times(snapshot: Snapshot) -> tuple[dict[str, datetime], dict[str, str]]:
    """(asset key -> data time, asset key -> the input holding it back). Memoised per snapshot."""
    memo = getattr(snapshot, "_data_times_memo", None)
    sig = (id(snapshot.data_time), len(snapshot.data_time), len(snapshot.last_success),
           len(snapshot.materializations), len(snapshot.syncs), snapshot.taken_at,
           tuple(sorted(getattr(snapshot, "anomalous_loads", None) or ())))
    if memo is not None and memo[0] == sig:
        return memo[1], memo[2]
    dts, held = _carried(snapshot)
    if getattr(snapshot, "anomalous_loads", None):  # untrusted loads are not fresh (orchestrator.health)
        from orchestrator.health.hold import cap_untrusted

        dts, held = dict(dts), dict(held)  # the carried result stays as computed
        cap_untrusted(snapshot, dts, held)
    try:
        snapshot._data_times_memo = (sig, dts, held)  # type: ignore[attr-defined]
    except AttributeError:  # a slotted snapshot: no memo
        pass
    return dts, held


class _Carry:
    """The last computation's inputs, per-asset intermediate results and result, for the next
    snapshot (the next sensor tick) of the same graph. When every input is equal the result is
    returned again, read-only (``hits``). Otherwise only the assets whose own inputs changed (a
    materialization added or gone, a latest materialization, a given data time, a run's start, a
    sync landing it) are computed again, then their children, in topological order, as long as an
    asset's result (history of data times, the input holding it back, the data times per run)
    differs from the one held (``partial``; ``recomputed``: assets computed by the last update).
    A new graph, or a source that gives every data time, computes everything (``misses``)."""

    __slots__ = ("graph", "inputs", "result", "hits", "misses", "partial", "recomputed",
                 "mats", "by_key", "hist", "held", "of_run", "dts", "changed")

    def __init__(self) -> None:
        self.graph = None
        self.inputs: tuple | None = None
        self.result: tuple[dict[str, datetime], dict[str, str]] | None = None
        self.hits = self.misses = self.partial = self.recomputed = 0
        self.mats: list = []
        self.by_key: dict[str, list] | None = None  # asset key -> its unpartitioned materializations
        self.hist: dict[str, tuple[list[datetime], list[datetime]]] = {}
        self.held: dict[str, str] = {}
        self.of_run: dict[str, dict[str, datetime]] = {}
        self.dts: dict[str, datetime] = {}
        # (the result before the last update, keys whose data time or holder it changed): lets
        # a caller holding that result find what moved without comparing every key
        self.changed: tuple = (None, set())


_CARRY = _Carry()
_CARRY_LOCK = threading.Lock()


def _inputs(snapshot: Snapshot) -> tuple:
    return (dict(snapshot.data_time or {}), dict(snapshot.last_success), list(snapshot.materializations),
            {r.run_id: r.started_at or r.created_at for r in snapshot.runs}, list(snapshot.syncs))


def _all_given(graph, given: dict, last: dict) -> bool:
    """The source gives the data time of every materialized asset (the simulator)."""
    return bool(given) and all(k in given or k not in last for k in graph.topological_order())


def _changed_keys(old: dict, new: dict) -> set[str]:
    """Keys whose value differs between two dicts (added and removed ones too)."""
    if old is new:
        return set()
    out = {k for k, v in new.items() if (o := old.get(k, _MISSING)) is not v and o != v}
    added = sum(1 for k in out if k not in old)
    if len(new) - added < len(old):  # some keys of ``old`` are gone
        out.update(k for k in old if k not in new)
    return out


_MISSING = object()


def _mats_delta(old: list, new: list) -> tuple[list, list] | None:
    """(rows added, rows removed) when ``new`` is ``old`` with rows dropped from its front (the
    window's edge) and rows appended (the usual tick); None: anything else."""
    d = 0
    if new:
        first = new[0]
        for d, m in enumerate(old):
            if m is first:
                break
        else:
            d = len(old)
    k = len(old) - d
    if new[:k] != old[d:]:
        return None
    return new[k:], old[:d]


def changed_since(old: tuple, new: tuple) -> set[str] | None:
    """Keys whose data time or holder may differ between ``old`` and ``new``, two results
    ``(data times, held by)`` of ``data_times`` in a row; None: not known (compare them)."""
    with _CARRY_LOCK:
        prev, keys = _CARRY.changed
        cur = _CARRY.result
        if (prev is not None and cur is not None and prev[0] is old[0] and prev[1] is old[1]
                and cur[0] is new[0] and cur[1] is new[1]):
            return set(keys)
    return None


@contextmanager
def gc_paused():
    """The cyclic garbage collector paused for a block that builds many objects but no reference
    cycles (the carried per-asset results): at 100,000 assets a collection walks millions of
    live objects, and the allocations of one tick would start several."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _carried(snapshot: Snapshot) -> tuple[dict[str, datetime], dict[str, str]]:
    with gc_paused():
        return _carried_unpaused(snapshot)


def _carried_unpaused(snapshot: Snapshot) -> tuple[dict[str, datetime], dict[str, str]]:
    inputs = _inputs(snapshot)
    with _CARRY_LOCK:
        c = _CARRY
        if c.graph is snapshot.graph and c.inputs is not None and c.result is not None:
            if c.inputs == inputs:
                c.hits += 1
                c.recomputed = 0
                c.changed = (c.result, set())
                return c.result
            if c.by_key is not None and not _all_given(snapshot.graph, inputs[0], inputs[1]):
                result = _update(c, snapshot, inputs)
                c.inputs, c.result = inputs, result
                c.partial += 1
                return result
    result = _compute(snapshot, keep := _Carry())
    with _CARRY_LOCK:
        c = _CARRY
        c.graph, c.inputs, c.result = snapshot.graph, inputs, result
        c.hist, c.held, c.of_run, c.dts, c.by_key = keep.hist, keep.held, keep.of_run, keep.dts, keep.by_key
        c.mats = inputs[2]  # (by_key None: every data time was given, nothing per asset to carry)
        c.misses += 1
        c.recomputed = len(result[0])
        c.changed = (None, set())
    return result


def _update(c: _Carry, snapshot: Snapshot, inputs: tuple) -> tuple[dict[str, datetime], dict[str, str]]:
    """Bring the carried per-asset results to ``snapshot`` (see ``_Carry``)."""
    import heapq

    old_given, old_last, old_mats, old_starts, old_syncs = c.inputs  # type: ignore[misc]
    given, last, mats, starts, syncs = inputs
    graph = snapshot.graph
    by_key = c.by_key
    # -- the assets whose own inputs changed ----------------------------------------------------
    dirty: set[str] = set()
    if given != old_given:
        dirty |= _changed_keys(old_given, given)
    if last != old_last:
        dirty |= _changed_keys(old_last, last)
    had: dict[str, bool] = {}  # key -> whether it had rows in the window before they changed
    if mats != old_mats:
        delta = _mats_delta(old_mats, mats)
        if delta is not None:  # rows dropped from the front, rows appended: by_key follows
            added, removed = delta
            for m in removed:
                dirty.add(m.asset_key)
                if m.partition is None:
                    if m.asset_key not in had:
                        had[m.asset_key] = m.asset_key in by_key
                    own = by_key.get(m.asset_key)
                    if own:
                        # the same object, else an equal one: a snapshot equal to the last (an
                        # equal row read again) leaves by_key holding the earlier object
                        i = next((i for i, x in enumerate(own) if x is m), None)
                        if i is None:
                            i = next((i for i, x in enumerate(own) if x == m), None)
                        if i is not None:
                            del own[i]
                    if not own:
                        by_key.pop(m.asset_key, None)
            for m in added:
                dirty.add(m.asset_key)
                if m.partition is None:
                    if m.asset_key not in had:
                        had[m.asset_key] = m.asset_key in by_key
                    by_key.setdefault(m.asset_key, []).append(m)
        else:
            # by identity: the snapshot reader hands out the same objects for rows it carried
            before = {id(m) for m in old_mats}
            now_ids = set()
            changed = set()
            for m in mats:
                now_ids.add(id(m))
                if id(m) not in before:
                    changed.add(m.asset_key)
            changed.update(m.asset_key for m in old_mats if id(m) not in now_ids)
            dirty |= changed
            for k in changed:  # their own materializations, in snapshot order
                had[k] = by_key.pop(k, None) is not None
            for m in mats:
                if m.partition is None and m.asset_key in changed:
                    by_key.setdefault(m.asset_key, []).append(m)
    runs_changed = _changed_keys(old_starts, starts) if starts != old_starts else ()
    if runs_changed:
        dirty.update(m.asset_key for m in mats if m.run_id in runs_changed)
        dirty.update(m.asset_key for m in old_mats if m.run_id in runs_changed)
    if syncs != old_syncs:
        a, b = set(syncs), set(old_syncs)
        for s in a ^ b:
            dirty.update(s.tables)
    dirty = {k for k in dirty if k in graph}
    c.mats = mats
    c.changed = (c.result, set())
    if not dirty:
        c.recomputed = 0
        return c.result  # type: ignore[return-value]
    run_start = {r.run_id: _aware(r.started_at or r.created_at) for r in snapshot.runs}
    syncs_of = _syncs_of(syncs)
    pos = graph.topological_index()
    upstream = graph.upstream_map()
    children = graph.children
    hist, held, of_run = c.hist, c.held, c.of_run
    dts = dict(c.result[0])  # type: ignore[index]
    new_held = dict(c.result[1])  # type: ignore[index]
    heap = [(pos[k], k) for k in dirty]
    heapq.heapify(heap)
    queued = set(dirty)
    moved = c.changed[1]  # keys whose data time or holder is not the same object as before
    n = 0
    while heap:
        _, k = heapq.heappop(heap)
        n += 1
        entries = _with_last([(_aware(m.at), m.run_id, m.duration_s) for m in by_key.get(k, ())], last.get(k))
        out = _one(k, entries, given, upstream[k], graph.get(k), run_start, syncs_of, hist, held, of_run, by_key)
        prev = (hist.get(k), held.get(k), of_run.get(k))
        before_dt, before_held = dts.get(k), new_held.get(k)
        if out is None:
            changed = prev != (None, None, None)
            hist.pop(k, None), held.pop(k, None), of_run.pop(k, None)
            dts.pop(k, None), new_held.pop(k, None)
        else:
            h, dt, hb, ofr = out
            changed = prev != (h, hb, ofr)
            hist[k], held[k], of_run[k] = h, hb, ofr
            dts[k], new_held[k] = dt, hb
        if dts.get(k) is not before_dt or new_held.get(k) is not before_held:
            moved.add(k)
        if changed or had.get(k, k in by_key) != (k in by_key):  # (its rows in the window: the children's rule)
            for ch in children(k):
                if ch not in queued:
                    queued.add(ch)
                    heapq.heappush(heap, (pos[ch], ch))
    c.recomputed = n
    return dts, new_held


def _syncs_of(syncs) -> dict[str, list[tuple[datetime, datetime]]]:
    out: dict[str, list[tuple[datetime, datetime]]] = {}
    for s in syncs:
        if s.status == "succeeded" and s.ended_at is not None:
            for t in s.tables:
                out.setdefault(t, []).append((_aware(s.ended_at), _aware(s.started_at)))
    return out


def _with_last(entries: list, latest: datetime | None) -> list:
    """An asset's materializations plus its latest one when the window does not hold it."""
    if latest is None:
        return entries
    t = _aware(latest)
    if not entries or max(x[0] for x in entries) < t:
        return [*entries, (t, None, None)]
    return entries


def _one(k, entries, given, ps, node, run_start, syncs_of, hist, held, of_run, windowed):
    """One asset's (history of (landed at, data time), data time, held back by, data time per
    run id) from its own materializations and its parents' results; None: never materialized."""
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

    def as_of(key: str, t: datetime, run_id: str | None) -> datetime | None:
        if run_id is not None:  # built in the same run: read that output
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
                        continue  # no history at all: unknown
                    # no data of the input recorded at or before the start: what it read landed
                    # before the history window, so its data time is only known to predate it;
                    # an input with no row in the window (its latest only, older than the edge):
                    # older than that latest one's data time, which the edge does not move
                    t = BEFORE_HISTORY if p in windowed else h[1][0]
                known.append((t, p))
            if known:
                dt, p = min(known, key=lambda x: x[0])
                # data from before the history: held back by the input it read it from (where
                # that data came from is outside the window; and a change of that input's own
                # holder does not travel down the graph each time the edge passes an hour)
                hb = p if dt == BEFORE_HISTORY else held.get(p, p)
            else:
                dt = start
        at_l.append(at)
        dt_l.append(min(dt, at))
        if run_id is not None:
            mine[run_id] = dt_l[-1]
    # data time never goes back (a late run on older data does not make it older)
    for i in range(1, len(dt_l)):
        if dt_l[i] < dt_l[i - 1]:
            dt_l[i] = dt_l[i - 1]
    return (at_l, dt_l), dt_l[-1], hb, mine


def _compute(snapshot: Snapshot, keep: _Carry | None = None) -> tuple[dict[str, datetime], dict[str, str]]:
    """Everything from scratch (``keep``: receives the per-asset results for ``_update``)."""
    graph = snapshot.graph
    given = snapshot.data_time or {}
    last = snapshot.last_success
    parents = graph.parents
    order = graph.topological_order()
    held: dict[str, str] = {}
    if _all_given(graph, given, last):
        # the source knows every data time: only find who holds each one back
        dts = {k: _aware(v) for k, v in given.items()}
        for k in order:
            ps = [p for p in parents(k) if p in dts]
            if not ps:
                held[k] = k
                continue
            p = min(ps, key=lambda x: dts[x])
            held[k] = held.get(p, p) if k not in dts or dts[p] <= dts[k] else k
        return dts, held

    # derive: per asset, its materializations (at, data time), oldest first
    run_start = {r.run_id: _aware(r.started_at or r.created_at) for r in snapshot.runs}
    mat_runs: dict[str, list[tuple[datetime, str | None, float | None]]] = {}
    by_key: dict[str, list] = {}
    for m in snapshot.materializations:
        if m.partition is not None:
            continue
        mat_runs.setdefault(m.asset_key, []).append((_aware(m.at), m.run_id, m.duration_s))
        if keep is not None:
            by_key.setdefault(m.asset_key, []).append(m)
    syncs_of = _syncs_of(snapshot.syncs)
    hist: dict[str, tuple[list[datetime], list[datetime]]] = {}  # key -> (landed at, data time) sorted
    dts: dict[str, datetime] = {}
    of_run: dict[str, dict[str, datetime]] = {}  # key -> run id -> data time it materialized with
    upstream = graph.upstream_map()
    for k in order:
        out = _one(k, _with_last(mat_runs.get(k, []), last.get(k)), given, upstream[k], graph.get(k),
                   run_start, syncs_of, hist, held, of_run, mat_runs)
        if out is None:
            continue
        hist[k], dts[k], held[k], of_run[k] = out
    if keep is not None:
        keep.hist, keep.held, keep.of_run, keep.dts, keep.by_key = hist, dict(held), of_run, dts, by_key
    return dts, held
