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

:func:`data_times` returns ``(data_time, held_by)``: ``held_by[k]`` is the upstream asset whose
data time ``k`` inherits (the input that holds it back), ``k`` itself for a source.
"""

from __future__ import annotations

import threading
from bisect import bisect_right
from datetime import datetime, timedelta, timezone

from orchestrator.core.records import Snapshot

UTC = timezone.utc
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
    """The inputs and result of the last computation, for the next snapshot (the next sensor
    tick): when its inputs are equal (compared by value; the snapshot reader hands out the same
    objects for what did not change, so the comparison is mostly identity checks) the result is
    the same and is returned again, read-only."""

    __slots__ = ("graph", "inputs", "result", "hits", "misses")

    def __init__(self) -> None:
        self.graph = None
        self.inputs: tuple | None = None
        self.result: tuple[dict[str, datetime], dict[str, str]] | None = None
        self.hits = self.misses = 0


_CARRY = _Carry()
_CARRY_LOCK = threading.Lock()


def _inputs(snapshot: Snapshot) -> tuple:
    return (dict(snapshot.data_time or {}), dict(snapshot.last_success), list(snapshot.materializations),
            {r.run_id: r.started_at or r.created_at for r in snapshot.runs}, list(snapshot.syncs))


def _carried(snapshot: Snapshot) -> tuple[dict[str, datetime], dict[str, str]]:
    inputs = _inputs(snapshot)
    with _CARRY_LOCK:
        if _CARRY.graph is snapshot.graph and _CARRY.inputs == inputs and _CARRY.result is not None:
            _CARRY.hits += 1
            return _CARRY.result
    result = _compute(snapshot)
    with _CARRY_LOCK:
        _CARRY.graph, _CARRY.inputs, _CARRY.result = snapshot.graph, inputs, result
        _CARRY.misses += 1
    return result


def _compute(snapshot: Snapshot) -> tuple[dict[str, datetime], dict[str, str]]:
    graph = snapshot.graph
    given = snapshot.data_time or {}
    last = snapshot.last_success
    parents = graph.parents
    order = graph.topological_order()
    held: dict[str, str] = {}
    if given and all(k in given or k not in last for k in order):
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
    mats: dict[str, list[datetime]] = {}
    mat_runs: dict[str, list[tuple[datetime, str | None, float | None]]] = {}
    for m in snapshot.materializations:
        if m.partition is not None:
            continue
        mat_runs.setdefault(m.asset_key, []).append((_aware(m.at), m.run_id, m.duration_s))
    for k, v in last.items():
        lst = mat_runs.setdefault(k, [])
        t = _aware(v)
        if not lst or max(x[0] for x in lst) < t:
            lst.append((t, None, None))
    syncs_of: dict[str, list[tuple[datetime, datetime]]] = {}
    for s in snapshot.syncs:
        if s.status == "succeeded" and s.ended_at is not None:
            for t in s.tables:
                syncs_of.setdefault(t, []).append((_aware(s.ended_at), _aware(s.started_at)))
    hist: dict[str, tuple[list[datetime], list[datetime]]] = {}  # key -> (landed at, data time) sorted
    dts: dict[str, datetime] = {}
    of_run: dict[tuple[str, str], datetime] = {}  # (key, run id) -> data time it materialized with

    def as_of(key: str, t: datetime, run_id: str | None = None) -> datetime | None:
        if run_id is not None and (key, run_id) in of_run:  # built in the same run: read that output
            return of_run[(key, run_id)]
        h = hist.get(key)
        if not h or not h[0]:
            return None
        i = bisect_right(h[0], t)
        return h[1][i - 1] if i else None

    for k in order:
        if k in given:
            landed = sorted(x[0] for x in mat_runs.get(k, ())) or [_aware(given[k])]
            hist[k] = (landed, [_aware(given[k])] * len(landed))
            dts[k] = _aware(given[k])
            held[k] = k
            continue
        entries = sorted(mat_runs.get(k, ()), key=lambda x: x[0])
        if not entries:
            continue
        ps = parents(k)
        node = graph.get(k)
        is_table = node is not None and node.connector is not None
        at_l: list[datetime] = []
        dt_l: list[datetime] = []
        hb = k
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
                inputs = [(p, as_of(p, start, run_id)) for p in ps]
                # an input with no data recorded before the start: it read something older than
                # the input's first recorded data time (an upper bound); no history at all: unknown
                inputs = [(p, t if t is not None else (hist[p][1][0] if hist.get(p) and hist[p][1] else None))
                          for p, t in inputs]
                known = [(p, t) for p, t in inputs if t is not None]
                if known:
                    p, dt = min(known, key=lambda x: x[1])
                    hb = held.get(p, p)
                else:
                    dt = start
            at_l.append(at)
            dt_l.append(min(dt, at))
            if run_id is not None:
                of_run[(k, run_id)] = dt_l[-1]
        # data time never goes back (a late run on older data does not make it older)
        for i in range(1, len(dt_l)):
            if dt_l[i] < dt_l[i - 1]:
                dt_l[i] = dt_l[i - 1]
        hist[k] = (at_l, dt_l)
        dts[k] = dt_l[-1]
        held[k] = hb
    return dts, held
