"""Freshness SLA assessment: ok / at_risk / breached for every governed asset.

One pass in topological order over the whole graph per tick (no per-asset graph walks):

* each asset's *cycle*: the upcoming effective deadline ``next`` (= target tick - lead) and the
  previous one ``prev``; the cycle opens ``window`` before the target tick (the policy's
  ``deadline.window``). Ticks are computed once per policy and found per asset by bisection.
* ``needs_run``: the asset's latest success predates the cycle opening, or an upstream needs to
  run (its new data has not propagated).
* ``ready``: predicted ready time. Not needing a run: its latest success. In flight: the run's
  start (now for queued runs) + the predicted duration (never before now). Otherwise: the
  latest of now, the cycle opening and every upstream's ready time, + the predicted duration
  (a quantile of past durations from ``DurationModel``).
* ``blocking``: the first not-yet-ready asset of the critical (latest-ready) upstream chain.

Status: ``breached`` when the previous effective deadline passed and nothing fresh for that
cycle materialized (cleared by the next success: a recovery), or the data is older than its
effective ``max_lag``; ``at_risk`` when ``predicted ready + margin`` > the upcoming deadline
(or the max-lag limit); else ``ok``.
"""

from __future__ import annotations

import sys
import threading
from array import array
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta, timezone

from orchestrator.core.datatime import BEFORE_HISTORY, data_time_text
from orchestrator.core.records import (
    FreshnessAssessment,
    FreshnessStatus,
    RunRecord,
    RunStatus,
    Snapshot,
)

UTC = timezone.utc
DEFAULT_MARGIN_S = 300.0


@dataclass(frozen=True, slots=True)
class _Cycle:
    prev: datetime | None  # previous effective deadline (this asset's share of the last target tick)
    prev_open: datetime | None  # when work for that previous cycle could start
    next: datetime  # effective deadline for the upcoming target tick (may already have passed)
    open: datetime  # when work for the upcoming target tick may start
    after: datetime  # effective deadline of the tick after (reported once this cycle is done)
    policy: str
    # the reasons' text of prev, prev_open and next, formatted once per cycle (shared by assets)
    text: tuple[str, str, str] = field(default=("", "", ""), compare=False, repr=False)
    # prev, next and open in microseconds since the epoch (None: no previous tick)
    us: tuple[int | None, int, int] = field(default=(None, 0, 0), compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "text", (self.prev.isoformat() if self.prev else "",
                                          self.prev_open.isoformat() if self.prev_open else "",
                                          self.next.isoformat()))
        object.__setattr__(self, "us", (_us(self.prev) if self.prev else None, _us(self.next), _us(self.open)))


def _policy_ticks(schedule, now: datetime) -> tuple[datetime | None, datetime, datetime]:
    """(last target tick <= now, first tick > now, the tick after that), in UTC."""
    nxt = schedule.next_tick(now).astimezone(UTC)
    after = schedule.next_tick(nxt).astimezone(UTC)
    try:
        prev = schedule.prev_tick(now + timedelta(microseconds=1)).astimezone(UTC)
    except ValueError:
        prev = None
    return prev, nxt, after


def _in_flight_start(runs: list[RunRecord], now: datetime, syncs=()) -> dict[str, datetime]:
    """Asset key -> when its in-flight run (or running connector sync, whoever started it)
    started (now when queued/starting)."""
    started: dict[str, datetime] = {}
    for sync in syncs:
        if sync.status == "running":
            for key in sync.tables:
                cur = started.get(key)
                if cur is None or sync.started_at < cur:
                    started[key] = sync.started_at
    for run in runs:
        if not run.status.in_flight:
            continue
        at = run.started_at if run.status is RunStatus.running and run.started_at else now
        for key in run.asset_keys:
            cur = started.get(key)
            if cur is None or at < cur:
                started[key] = at
    return started


_SCOPE: dict[str, tuple] = {}
_SCOPE_LOCK = threading.Lock()


def _scope(graph, resolution) -> tuple[str, ...]:
    """The governed assets and their ancestors, in topological order: computed once per graph
    and resolution (both immutable once built) and kept for the next tick."""
    with _SCOPE_LOCK:
        hit = _SCOPE.get("last")
        if (hit is not None and hit[0] is graph and hit[1] is resolution and hit[3] is resolution.slas
                and hit[4] == len(resolution.slas)):
            return hit[2]
    governed = [k for k in resolution.slas if k in graph]
    wanted = graph.upstream_closure(*governed, include_self=True) if governed else set()
    order = tuple(k for k in graph.topological_order() if k in wanted)
    with _SCOPE_LOCK:
        _SCOPE["last"] = (graph, resolution, order, resolution.slas, len(resolution.slas))
    return order


_REACH: dict[int, tuple] = {}
_REACH_LOCK = threading.Lock()
_GAP_SAMPLE_TICKS = 1_000  # consecutive ticks sampled (back from now) for a schedule's longest gap
_GAP_SAMPLE_SPAN = timedelta(days=400)  # ... or as far back as this, whichever comes first


def _longest_gap(schedule, now: datetime) -> timedelta:
    """The longest time between consecutive ticks of ``schedule`` over the last
    ``_GAP_SAMPLE_TICKS`` ticks or ``_GAP_SAMPLE_SPAN`` (business calendars included)."""
    gap = timedelta(0)
    t = schedule.prev_tick(now)
    stop = now - _GAP_SAMPLE_SPAN
    for _ in range(_GAP_SAMPLE_TICKS):
        try:
            p = schedule.prev_tick(t)
        except ValueError:
            break
        gap = max(gap, t - p)
        if p < stop:
            break
        t = p
    return max(gap, schedule.next_tick(now) - schedule.prev_tick(now))


def history_reach(resolution, now: datetime | None = None) -> timedelta:
    """How far back the materializations must be read for every freshness decision to be the
    one the true data times give: the longest ``max_lag`` and, per deadline policy, its longest
    gap between ticks plus its window (the oldest opening a cycle compares a data time with is
    the previous tick's). A data time only known to predate the history
    (``orchestrator.core.datatime.BEFORE_HISTORY``) is older than every opening after the edge,
    so reading from ``now - history_reach`` back (``build_snapshot(reach=...)``) keeps every
    decision. Computed once per resolution."""
    if resolution is None or getattr(resolution, "policy_set", None) is None:
        return timedelta(0)
    with _REACH_LOCK:
        hit = _REACH.get(id(resolution))
        if hit is not None and hit[0] is resolution:
            return hit[1]
    now = (now or datetime.now(UTC)).astimezone(UTC)
    reach = timedelta(0)
    for policy in resolution.policy_set.policies:
        if policy.max_lag is not None:
            reach = max(reach, policy.max_lag)
        if policy.deadline is not None:
            try:
                schedule = policy.schedule()
                reach = max(reach, _longest_gap(schedule, now) + policy.deadline.effective_window(schedule))
            except Exception:  # noqa: BLE001 - an odd schedule only leaves the default window
                continue
    with _REACH_LOCK:
        if len(_REACH) >= 8:
            _REACH.clear()
        _REACH[id(resolution)] = (resolution, reach)
    return reach


def assess_freshness(
    snapshot: Snapshot,
    resolution,
    durations=None,
    now: datetime | None = None,
    *,
    margin_s: float = DEFAULT_MARGIN_S,
) -> dict[str, FreshnessAssessment]:
    """Assess every asset governed by a deadline or a max_lag in ``resolution``.

    ``durations``: an ``orchestrator.policies.DurationModel`` (default: one built from
    ``snapshot.durations``). ``now`` defaults to ``snapshot.taken_at``.

    Incremental across calls (sensor ticks) on the same graph and resolution: see ``_Tick``.
    """
    from orchestrator.policies import DurationModel

    if resolution is None or not getattr(resolution, "ok", False):
        return {}
    now = (now or snapshot.taken_at).astimezone(UTC)
    graph = snapshot.graph
    if durations is None:
        durations = DurationModel(snapshot.durations)
    from orchestrator.core.datatime import data_times, gc_paused

    dts, held_by = data_times(snapshot)  # freshness is judged by data time, not by run time
    with _TICK_LOCK:
        state = _TICK.get("last")
        if state is None or not state.carries(graph, resolution, durations, now, margin_s):
            state = _Tick(graph, resolution, margin_s)
        with gc_paused():
            state.update(snapshot, durations, now, dts, held_by)
        _TICK["last"] = state
        return dict(state.out)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_NEG = -(1 << 62)  # "minus infinity" in microseconds (no such term)
_POS = 1 << 62


def _us(t: datetime) -> int:
    return (t - _EPOCH) // _US


def _at(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def _dur_us(durations, node) -> int:
    return timedelta(seconds=durations.seconds(node)) // _US


def _history_of(durations):
    """What a duration model's estimates are a function of, besides the history per key."""
    return (type(durations), getattr(durations, "q", None), getattr(durations, "min_samples", None),
            getattr(durations, "max_samples", None), getattr(durations, "priors", None))


class _Tick:
    """What the last call computed, per asset, for the next call (the next sensor tick).

    The topological pass keeps, per asset of the scope (governed assets and their ancestors),
    ``(needs_run, A, B, blocking)``: its predicted ready time is ``max(now + A, B)`` (integer
    microseconds; ``A``/``B`` may be minus infinity), which holds for any ``now`` - the pass
    itself does not depend on the clock, except where a max_lag makes data stale at a known
    time or the critical input changes when one input's ready time overtakes another's: those
    instants are kept per asset (``pass_until``) and the asset is computed again once ``now``
    reaches them. A call computes again only the assets whose own inputs changed (data time,
    latest materialization, cycle, in-flight run or sync, predicted duration) or whose instant
    came, then, in topological order, the children of those whose result changed. Statuses the
    same way: an assessment is made again when its pass result or inputs changed or when ``now``
    crosses one of its deadlines or limits (``status_until``). Every assessment is a lazy
    ``_Moving`` (its reason formatted when read); one whose predicted ready time is
    ``max(now + A, B)`` waits in ``waiting`` until ``now + A`` reaches ``B`` (a window opening, an
    input's run: the instant is the same for every member of a policy), then is made for each new
    ``now`` from its shared parts (``lazy``), never assessed again for it.
    A new graph, resolution, margin, duration model of another kind, or a clock going back:
    everything is computed again (the same code, every asset dirty)."""

    def __init__(self, graph, resolution, margin_s: float):
        self.graph = graph
        self.resolution = resolution
        self.margin_s = margin_s
        self.margin_us = timedelta(seconds=margin_s) // _US
        self.scope = _scope(graph, resolution)
        pos = graph.topological_index()
        self.pos = pos
        self.in_scope = bytearray(len(pos))  # by topological position: 1 in the scope
        for k in self.scope:
            self.in_scope[pos[k]] = 1
        self.by_policy: dict[str, list[str]] = {}
        for k, sla in resolution.slas.items():
            if sla.deadline is not None:
                self.by_policy.setdefault(sla.deadline.policy, []).append(k)
        self.first = True
        self.now_us = 0
        self.durations = None
        self.dts: dict = {}
        self.held: dict = {}
        self.last: dict = {}
        self.last_version = 0  # (``self.last``'s version when read: the data-time carry edits it)
        self.ticks: dict[str, tuple] = {}
        self.shared: dict[tuple[str, timedelta], _Cycle] = {}
        self.cycles: dict[str, _Cycle] = {}
        self.in_flight: dict[str, tuple[int | None, bool]] = {}
        self.rec = _Results(pos)
        # predicted durations (microseconds) by topological position, _NEG: not computed yet
        self.dur = array("q", [_NEG]) * len(pos)
        self.pass_until: dict[str, int] = {}
        self.pass_heap: list[tuple[int, str]] = []
        self.status_until: dict[str, int] = {}
        self.status_heap: list[tuple[int, str]] = []
        self.moving: set[str] = set()  # assessed again every call with a new now
        # key -> A: an assessment whose predicted ready time is now + A (the pass's A; 0 for an
        # asset needing no run and never materialized), made (a ``_Moving``) for each new now from
        # the shared parts of the one in ``out``, without assessing it again
        # (a byte per topological position; A is the pass's, read from ``rec``)
        self.lazy = bytearray(len(pos))
        # by topological position, the instant B - A (``_NEG``: none): one whose predicted ready
        # time is max(now + A, B), still waiting for B (a window opening, an input's run); it
        # joins ``lazy`` at that instant. The heap holds ``instant * len(pos) + position``: one
        # int per entry (a window opening makes every member wait at once)
        self.wait_at = array("q", [_NEG]) * len(pos)
        self.wait_heap: list[int] = []
        self.lazy_now = 0
        self.refreshed = 0  # lazy assessments the last call made for its now
        self.out: dict[str, FreshnessAssessment] = {}
        self.computed = 0  # assets the last call ran the pass for
        self.assessed = 0  # assessments the last call made

    def carries(self, graph, resolution, durations, now: datetime, margin_s: float) -> bool:
        return (graph is self.graph and resolution is self.resolution and margin_s == self.margin_s
                and _us(now) >= self.now_us and _history_of(durations) == _history_of(self.durations)
                and getattr(resolution, "slas", None) is not None
                and len(resolution.slas) == len(self.resolution.slas))

    # -- one call ---------------------------------------------------------------------------------
    def update(self, snapshot: Snapshot, durations, now: datetime, dts: dict, held_by: dict) -> None:
        import heapq

        from orchestrator.core.datatime import _changed_keys, carried_last_success, changed_since, last_success_moved

        now_us = _us(now)
        first = self.first
        graph = self.graph
        slas = self.resolution.slas
        last = snapshot.last_success
        pass_dirty: set[str] = set()
        status_dirty: set[str] = set()
        if first:  # (the pass computes the whole scope, in its order: see below)
            status_dirty.update(slas)  # (the ones with a deadline or a max_lag are assessed)
        else:
            # own inputs that changed since the last call
            if dts is not self.dts or held_by is not self.held:
                moved = changed_since((self.dts, self.held), (dts, held_by))
                if moved is None:
                    moved = _changed_keys(self.dts, dts) | _changed_keys(self.held, held_by)
                # the pass reads data times only; the input holding one back is in the assessment
                old_dts = self.dts
                pass_dirty.update(k for k in moved if (v := dts.get(k)) is not (o := old_dts.get(k)) and v != o)
                status_dirty |= moved
            moved = last_success_moved(self.last, self.last_version, last)
            if moved:
                pass_dirty |= moved
                status_dirty |= moved
            if durations is not self.durations:
                old_h = getattr(self.durations, "history", None)
                new_h = getattr(durations, "history", None)
                if old_h is None or new_h is None:
                    order = graph.topological_order()
                    moved = {order[i] for i, d in enumerate(self.dur) if d != _NEG}
                else:
                    moved = _changed_keys(old_h, new_h)
                for k in moved:
                    if (i := self.pos.get(k)) is not None:
                        self.dur[i] = _NEG
                pass_dirty |= moved
                status_dirty |= moved
            # instants reached
            for heap, until, dirty in ((self.pass_heap, self.pass_until, pass_dirty),
                                       (self.status_heap, self.status_until, status_dirty)):
                while heap and heap[0][0] <= now_us:
                    v, k = heapq.heappop(heap)
                    if until.get(k) == v:
                        del until[k]
                        dirty.add(k)
            if now_us != self.now_us:
                status_dirty |= self.moving
        # cycles: policies whose ticks moved give their assets new cycles
        for policy, keys in self.by_policy.items():
            pol = self.resolution.policy(policy)
            schedule = pol.schedule()
            t = (*_policy_ticks(schedule, now), pol.deadline.effective_window(schedule))
            if not first and self.ticks.get(policy) == t:
                continue
            self.ticks[policy] = t
            prev_tick, next_tick, after_tick, win = t
            for key in keys:
                dl = slas[key].deadline
                pair = (dl.policy, dl.lead)
                cyc = self.shared.get(pair)
                if cyc is None or cyc.open != next_tick - win or cyc.next != next_tick - dl.lead or cyc.after != after_tick - dl.lead or cyc.prev != (prev_tick - dl.lead if prev_tick else None):
                    cyc = self.shared[pair] = _Cycle(
                        prev=prev_tick - dl.lead if prev_tick else None,
                        prev_open=prev_tick - win if prev_tick else None,
                        next=next_tick - dl.lead,
                        open=next_tick - win,
                        after=after_tick - dl.lead,
                        policy=dl.policy,
                    )
                if self.cycles.get(key) is not cyc:
                    self.cycles[key] = cyc
                    if not first:
                        pass_dirty.add(key)
                    status_dirty.add(key)
        # in flight: key -> (earliest fixed start, whether a queued run starts "now")
        flight = _in_flight(snapshot.runs, snapshot.syncs)
        if flight != self.in_flight:
            moved = {k for k in flight.keys() | self.in_flight.keys() if flight.get(k) != self.in_flight.get(k)}
            pass_dirty |= moved
            self.in_flight = flight
        # (a copy - the data-time carry's own, not a second one: a caller may change its dict in place)
        self.last, self.last_version = carried_last_success(snapshot)
        self.dts, self.held, self.durations = dts, held_by, durations
        self.now_us = now_us
        self.first = False

        # -- the pass, over the dirty assets and the children their change reaches ---------------
        in_scope = self.in_scope
        pos = self.pos
        upstream = graph.upstream_map()
        children = graph.children
        rec = self.rec
        pass_until, pass_heap = self.pass_until, self.pass_heap

        def compute(key: str) -> bool:
            """The pass for ``key``; whether its result changed."""
            got, until = self._one(key, upstream[key], now_us, dts, last, durations)
            if until < _POS:
                pass_until[key] = until
                heapq.heappush(pass_heap, (until, key))
            else:
                pass_until.pop(key, None)
            return rec.put(key, got)

        n = 0
        if first:
            # every asset of the scope is dirty: its own topological order is the heap's, without
            # the heap, the queue and the dirty set of the whole scope (~15 MiB at 100,000
            # assets, still held while the statuses are made)
            for key in self.scope:
                n += 1
                if compute(key):
                    status_dirty.add(key)
        else:
            heap = [(i, k) for k in pass_dirty if (i := pos.get(k)) is not None and in_scope[i]]
            heapq.heapify(heap)
            queued = {k for _, k in heap}
            while heap:
                _, key = heapq.heappop(heap)
                n += 1
                if compute(key):
                    status_dirty.add(key)
                    for ch in children(key):
                        i = pos[ch]
                        if in_scope[i] and ch not in queued:
                            queued.add(ch)
                            heapq.heappush(heap, (i, ch))
            del heap, queued
        del pass_dirty
        self.computed = n
        if len(self.pass_heap) > 4 * len(self.pass_until) + 1024:  # stale entries
            self.pass_heap = [(v, k) for k, v in self.pass_until.items()]
            heapq.heapify(self.pass_heap)

        # -- statuses ------------------------------------------------------------------------------
        node_of = graph.get
        margin = timedelta(seconds=self.margin_s)
        margin_s = self.margin_s
        margin_us = self.margin_us
        out = self.out
        moving = self.moving
        lazy = self.lazy
        wait_at = self.wait_at
        npos = len(pos)
        m = 0
        for key in status_dirty:
            sla = slas.get(key)
            if sla is None or (sla.deadline is None and sla.max_lag is None):
                continue
            m += 1
            cyc = self.cycles.get(key)
            r = rec.get(key)
            dt = dts.get(key)
            ls = last.get(key)
            # the predicted ready time: ``p`` (microseconds, or the latest success), or
            # ``max(now + pa, pb)`` from now on while ``pa`` is set (it moves with the clock once
            # ``now + pa`` passes ``pb``; nothing is assessed again at that instant)
            pa = pb = None
            block = None
            if r is None:  # not in the graph: never assessed by the pass
                need, p = None, None
            else:
                need, a, b, block = r
                if not need:
                    if ls is not None:
                        p = ls
                    else:
                        pa, pb = 0, _NEG  # predicted ready: now
                elif a > _NEG // 2:
                    pa, pb = a, b
                else:
                    p = b
            if pa is not None:
                p = now_us + pa
                if p < pb:
                    p = pb
            predicted = None if p is None else (_at(p) if p.__class__ is int else p)
            # when this assessment stops holding: now crossing a deadline or a limit, or the
            # predicted time (plus the margin) passing one
            until = _POS
            if cyc is not None:
                for tu in cyc.us[:2]:
                    if tu is not None and now_us < tu < until:
                        until = tu
            moves = False  # every field but the predicted time's may move too: made again each call
            if sla.max_lag is not None:
                if dt is None:
                    moves = True
                else:
                    limit = _us(dt + sla.max_lag)
                    if limit >= now_us:
                        until = min(until, limit + 1)
                    if cyc is None and node_of(key) is not None:
                        edge = limit - self._dur(key, durations) - margin_us + 1
                        if edge > now_us:
                            until = min(until, edge)
                    if pa is not None and cyc is None and pb + margin_us <= limit:
                        flip = limit - margin_us - pa + 1  # predicted + margin passing the limit
                        if flip > now_us:
                            until = min(until, flip)
            if pa is not None and cyc is not None and pb + margin_us <= cyc.us[1]:
                flip = cyc.us[1] - margin_us - pa + 1  # predicted + margin passing the deadline
                if flip > now_us:
                    until = min(until, flip)
            i = pos.get(key)
            if moves:
                if i is not None:
                    lazy[i] = 0
                    wait_at[i] = _NEG
                out[key] = _assess_one(key, sla, cyc, ls, dt, predicted, need, block, held_by, now, margin,
                                       margin_s, durations, node_of)
                moving.add(key)
            else:
                # the fields that do not move with the clock, the reason formatted when read
                status, deadline, kind = _judge(key, sla, cyc, ls, dt, predicted, need, now, margin, durations,
                                                node_of)
                base = (key, status, sla, cyc, ls, dt, held_by.get(key, key), block, deadline, kind, margin_s)
                out[key] = _moving(base, p)
                if pa is None:
                    if i is not None:
                        lazy[i] = 0
                        wait_at[i] = _NEG
                elif now_us + pa >= pb:
                    lazy[i] = 1
                    wait_at[i] = _NEG
                else:
                    lazy[i] = 0
                    wait_at[i] = pb - pa
                    heapq.heappush(self.wait_heap, (pb - pa) * npos + i)
                moving.discard(key)
            if until < _POS:
                self.status_until[key] = until
                heapq.heappush(self.status_heap, (until, key))
            else:
                self.status_until.pop(key, None)
        self.assessed = m
        # the clock moved: the lazy ones not assessed again above take the new now
        refreshed = 0
        if now_us != self.lazy_now:
            # the ones whose wait is over (now + A reached B) move with the clock from now on
            wait_heap = self.wait_heap
            due = (now_us + 1) * npos  # entries of instants <= now
            while wait_heap and wait_heap[0] < due:
                t, i = divmod(heapq.heappop(wait_heap), npos)
                if wait_at[i] == t:
                    wait_at[i] = _NEG
                    lazy[i] = 1
            order = graph.topological_order()
            r_need, r_a = rec.need, rec.a
            i = lazy.find(1)
            while i >= 0:
                key = order[i]
                if key not in status_dirty:
                    _moved(out, key, now_us + (r_a[i] if r_need[i] == 2 else 0))
                    refreshed += 1
                i = lazy.find(1, i + 1)
            self.lazy_now = now_us
            if len(wait_heap) > 4 * (npos - wait_at.count(_NEG)) + 1024:
                self.wait_heap = [t * npos + i for i, t in enumerate(wait_at) if t != _NEG]
                heapq.heapify(self.wait_heap)
        self.refreshed = refreshed
        if len(self.status_heap) > 4 * len(self.status_until) + 1024:
            self.status_heap = [(v, k) for k, v in self.status_until.items()]
            heapq.heapify(self.status_heap)

    def _dur(self, key: str, durations) -> int:
        i = self.pos.get(key)
        if i is None:
            return _dur_us(durations, self.graph.get(key))
        d = self.dur[i]
        if d == _NEG:
            d = self.dur[i] = _dur_us(durations, self.graph.get(key))
        return d

    def _one(self, key, parents, now_us, dts, last, durations):
        """One asset's pass result ``(needs_run, A, B, blocking)`` and until when it holds."""
        until = _POS
        cyc = self.cycles.get(key)
        sla = self.resolution.slas.get(key)
        dt = dts.get(key)
        if cyc is not None:
            stale = dt is None or dt < cyc.open
        elif sla is not None and sla.max_lag is not None:
            if dt is None:
                stale = True
            else:
                edge = _us(dt + sla.max_lag)  # stale once now - max_lag > dt
                stale = now_us > edge
                if not stale:
                    until = edge + 1
        else:
            stale = dt is None
        rec = self.rec
        pos = self.pos
        r_need, r_a, r_b = rec.need, rec.a, rec.b
        crit = None
        crit_ready = None
        up_needs = False
        max_a = _NEG
        max_b = _NEG
        needing = []
        for p in parents:
            i = pos[p]
            if r_need[i] == 2:
                up_needs = True
                pa, pb = r_a[i], r_b[i]
                needing.append((p, pa, pb))
                r = max(now_us + pa, pb)
                if crit_ready is None or r > crit_ready:
                    crit, crit_ready = p, r
                if pa > max_a:
                    max_a = pa
                if pb > max_b:
                    max_b = pb
        if len(needing) > 1:
            # the critical input changes when another input's ready time overtakes its own
            t = _overtaken(needing, crit, now_us)
            if t < until:
                until = t
        need = stale or up_needs
        if not need:
            ls = last.get(key)
            return ((False, _NEG, _us(ls), None) if ls is not None else (False, 0, _NEG, None)), until
        dur = self._dur(key, durations)
        fl = self.in_flight.get(key)
        if fl is not None and not up_needs:
            fixed, queued = fl
            if fixed is None:  # only queued: ready = now + duration
                a, b = max(0, dur), _NEG
            elif queued and fixed > now_us:  # started "in the future": queued wins until then
                a, b = max(0, dur), _NEG
                until = min(until, fixed)
            else:
                a, b = 0, fixed + dur
        else:
            a = dur + max(0, max_a)
            opened = cyc.us[2] if cyc is not None else _NEG
            top = max(opened, max_b)
            b = top + dur if top > _NEG // 2 else _NEG
        block = None
        if crit is not None:
            block = rec.block[pos[crit]] or crit
        return (True, a, b, block), until


class _Results:
    """The pass results ``(needs_run, A, B, blocking)`` of a graph's assets, in arrays by
    topological position (``pos``): 1 byte, two 8-byte integers and a pointer to the graph's own
    key per asset, where a tuple per asset with its two ints took ~170 bytes."""

    __slots__ = ("pos", "need", "a", "b", "block")

    def __init__(self, pos: dict[str, int]):
        n = len(pos)
        self.pos = pos
        self.need = bytearray(n)  # 0: not computed, 1: needs no run, 2: needs a run
        self.a = array("q", bytes(8 * n))
        self.b = array("q", bytes(8 * n))
        self.block: list[str | None] = [None] * n

    def get(self, key: str) -> tuple[bool, int, int, str | None] | None:
        i = self.pos.get(key)
        if i is None or not self.need[i]:
            return None
        return (self.need[i] == 2, self.a[i], self.b[i], self.block[i])

    def put(self, key: str, got: tuple[bool, int, int, str | None]) -> bool:
        """Keep ``got`` as ``key``'s result; whether it differs from the one held."""
        i = self.pos[key]
        need, a, b, block = got
        f = 2 if need else 1
        if self.need[i] == f and self.a[i] == a and self.b[i] == b and self.block[i] == block:
            return False
        self.need[i], self.a[i], self.b[i], self.block[i] = f, a, b, block
        return True


def _overtaken(needing: list, crit: str, now_us: int) -> int:
    """The first instant after ``now_us`` at which an input of ``needing`` (``(key, A, B)`` in
    the parents' order, ready at ``max(now + A, B)``) takes the critical place from ``crit`` (the
    first input with the latest ready time): a later ready time, or an equal one and earlier in
    the order. ``_POS``: none does. Both ready times are piecewise linear in now (slope 0, then 1),
    so whether one beats the other is constant between the instants where either changes slope or
    they cross: only those instants and the microsecond after each need checking."""
    for i, (p, ca, cb) in enumerate(needing):
        if p == crit:
            break
    until = _POS
    for j, (q, qa, qb) in enumerate(needing):
        if j == i:
            continue
        first = j < i
        best = _POS
        for t in (now_us + 1, cb - ca, qb - qa, cb - qa, qb - ca):
            for u in (t, t + 1):
                if now_us < u < best:
                    rq = u + qa if u + qa > qb else qb
                    rc = u + ca if u + ca > cb else cb
                    if rq > rc or (first and rq == rc):
                        best = u
        if best < until:
            until = best
    return until


_FIELDS = tuple(f.name for f in fields(FreshnessAssessment))


# A ``_Moving`` keeps its parts in the plain assessment's own twelve slots (a subclass of a slotted
# class has them whether it uses them or not; its properties below read the parts, not the
# fields): the eleven judged parts, then the predicted ready time. No tuple of parts per asset
# beside the object (~120 bytes each, 7.5 MiB at 100,000 assets).
_SLOTS = tuple(FreshnessAssessment.__dict__[f] for f in _FIELDS)
_GET = tuple(d.__get__ for d in _SLOTS)
_PUT = tuple(d.__set__ for d in _SLOTS)
(_G_KEY, _G_STATUS, _G_SLA, _G_CYC, _G_LS, _G_DT, _G_HELD, _G_BLOCK, _G_DEADLINE, _G_KIND, _G_MARGIN,
 _G_P) = _GET
_PUT_PARTS = tuple(zip(_PUT[:11], range(11)))
_PUT_P = _PUT[11]
_COPY_PARTS = tuple(zip(_GET[:11], _PUT[:11]))
_new = object.__new__


def _moving(base: tuple, predicted) -> _Moving:
    """A ``_Moving`` of the judged parts ``base`` (key, status, SLA, cycle, latest success, data
    time, holder, blocking asset, deadline, the reason's kind, margin) and predicted time."""
    obj = _new(_Moving)
    for put, j in _PUT_PARTS:
        put(obj, base[j])
    _PUT_P(obj, predicted)
    return obj


def _moved(out: dict, key: str, predicted: int) -> None:
    """``out[key]`` with ``predicted`` as its predicted time (microseconds): set in place when
    nothing else holds it, else a copy (assessments handed out keep their values)."""
    obj = out[key]
    if sys.getrefcount(obj) <= _ALONE:
        _PUT_P(obj, predicted)
        return
    new = _new(_Moving)
    for get, put in _COPY_PARTS:
        put(new, get(obj))
    _PUT_P(new, predicted)
    out[key] = new


class _Moving(FreshnessAssessment):
    """A ``FreshnessAssessment`` made lazily: the fields that do not move with the clock are kept
    as judged (key, status, SLA, cycle, latest success, data time, holder, blocking asset,
    deadline, the reason's kind, margin: the plain assessment's slots, see ``_SLOTS``), the
    predicted ready time as integer microseconds, the latest success, or None; the predicted
    time's datetime, the slack and the reason (which quotes the predicted time) are made when
    read. One whose predicted time is ``now + A`` (an asset waiting only for its own run) gets each
    tick's now (``_moved``). Equal to, hashes, prints and pickles as the plain assessment with the
    same fields; ``dataclasses.replace`` gives a plain one."""

    __slots__ = ()

    def __new__(cls, *args, **kwargs):  # dataclasses.replace and the like: a plain assessment
        return FreshnessAssessment(*args, **kwargs)

    @property
    def _b(self) -> tuple:
        return tuple(get(self) for get in _GET[:11])

    @property
    def asset_key(self) -> str:
        return _G_KEY(self)

    @property
    def status(self) -> FreshnessStatus:
        return _G_STATUS(self)

    @property
    def tier(self) -> str:
        return _G_SLA(self).tier.value

    @property
    def policy(self) -> str | None:
        cyc = _G_CYC(self)
        return cyc.policy if cyc is not None else _G_SLA(self).max_lag_policy

    @property
    def deadline(self) -> datetime | None:
        return _G_DEADLINE(self)

    @property
    def blocking_asset(self) -> str | None:
        return _G_BLOCK(self)

    @property
    def data_time(self) -> datetime | None:
        return _G_DT(self)

    @property
    def data_held_by(self) -> str | None:
        held = _G_HELD(self)
        return held if held != _G_KEY(self) else None

    @property
    def window_open(self) -> datetime | None:
        cyc = _G_CYC(self)
        return cyc.open if cyc is not None else None

    @property
    def predicted_ready(self) -> datetime | None:
        p = _G_P(self)
        return _at(p) if p.__class__ is int else p

    @property
    def slack_s(self) -> float | None:
        deadline = _G_DEADLINE(self)
        predicted = self.predicted_ready
        return (deadline - predicted).total_seconds() if deadline and predicted else None

    @property
    def reason(self) -> str:
        key, _, sla, cyc, ls, dt, held, block, deadline, kind, margin_s = self._b
        predicted = self.predicted_ready
        return _text(kind, key, sla, cyc, ls, dt, held, block, deadline, margin_s,
                     predicted.isoformat() if predicted is not None else None)

    def plain(self) -> FreshnessAssessment:
        return FreshnessAssessment(*(getattr(self, f) for f in _FIELDS))

    def __eq__(self, other):
        if isinstance(other, FreshnessAssessment):
            return all(getattr(self, f) == getattr(other, f) for f in _FIELDS)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(getattr(self, f) for f in _FIELDS))

    def __repr__(self) -> str:
        return repr(self.plain())

    def __reduce__(self):
        return (FreshnessAssessment, tuple(getattr(self, f) for f in _FIELDS))


def _references_when_alone() -> int:
    """The references ``_moved`` sees to an assessment held by ``out`` alone (``out``, its name
    and the argument): nobody else can read one with no more, so a new predicted time is set in
    it rather than in a copy (the previous tick's result, while still held, keeps its own)."""
    out = {"": _moving(("", None, None, None, None, None, "", None, None, 0, 0.0), None)}
    obj = out[""]
    return sys.getrefcount(obj)


_ALONE = _references_when_alone()


_TICK: dict[str, _Tick] = {}
_TICK_LOCK = threading.Lock()


def _in_flight(runs: list[RunRecord], syncs=()) -> dict[str, tuple[int | None, bool]]:
    """Asset key -> (earliest start of its running runs and syncs, whether a queued or starting
    run counts from now): ``_in_flight_start`` without a clock."""
    fixed: dict[str, int] = {}
    queued: set[str] = set()
    for sync in syncs:
        if sync.status == "running":
            at = _us(sync.started_at)
            for key in sync.tables:
                cur = fixed.get(key)
                if cur is None or at < cur:
                    fixed[key] = at
    for run in runs:
        if not run.status.in_flight:
            continue
        if run.status is RunStatus.running and run.started_at:
            at = _us(run.started_at)
            for key in run.asset_keys:
                cur = fixed.get(key)
                if cur is None or at < cur:
                    fixed[key] = at
        else:
            queued.update(run.asset_keys)
    return {k: (fixed.get(k), k in queued) for k in fixed.keys() | queued}


# the reasons' kinds (``_judge``), formatted by ``_text`` when read
(_PREV, _LATE, _FRESH, _RISK, _BEFORE, _LAG_OLD, _LAG_RISK, _LAG_REFRESH, _LAG_WITHIN, _LAG_PREDICTED,
 _NONE) = range(11)


def _judge(key, sla, cyc, ls, dt, predicted, need, now, margin, durations, node_of):
    """One asset's ``(status, deadline, the reason's kind)``."""
    status = FreshnessStatus.ok
    deadline: datetime | None = None
    kind = _NONE
    if cyc is not None:
        deadline = cyc.next
        if cyc.prev is not None and cyc.prev <= now and (dt is None or dt < cyc.prev_open):
            status = FreshnessStatus.breached
            deadline = cyc.prev
            kind = _PREV
        elif cyc.next <= now and (dt is None or dt < cyc.open):
            status = FreshnessStatus.breached
            kind = _LATE
        elif not need:
            if deadline <= now:
                deadline = cyc.after
            kind = _FRESH
        elif predicted + margin > cyc.next:
            status = FreshnessStatus.at_risk
            kind = _RISK
        else:
            kind = _BEFORE
    if sla.max_lag is not None and status is not FreshnessStatus.breached:
        limit = (dt + sla.max_lag) if dt is not None else now
        if dt is None or now > limit:
            status = FreshnessStatus.breached
            # data from before the history window: the limit passed at a time not known
            deadline = None if dt == BEFORE_HISTORY else limit
            kind = _LAG_OLD
        elif cyc is None:
            deadline = limit
            # the next refresh would have to start now to land before the limit
            if need and predicted + margin > limit:
                status = FreshnessStatus.at_risk
                kind = _LAG_RISK
            elif not need:
                full = now + timedelta(seconds=durations.seconds(node_of(key))) + margin
                if full > limit:
                    status = FreshnessStatus.at_risk
                    kind = _LAG_REFRESH
                else:
                    kind = _LAG_WITHIN
            else:
                kind = _LAG_PREDICTED
    return status, deadline, kind


def _text(kind, key, sla, cyc, ls, dt, held, block, deadline, margin_s, ptext) -> str:
    """The reason of kind ``kind`` (``held``: ``held_by.get(key, key)``; ``ptext``: the predicted
    ready time's text)."""
    if kind == _PREV:
        return (
            f"deadline {cyc.text[0]} passed without data newer than "
            f"{cyc.text[1]}"
            + (f" (data as of {data_time_text(dt)}"
               + (f", held back by {held})" if held != key else ")") if dt else "")
            + (f"; predicted ready {ptext}" if ptext else "")
            + (f" (blocked by {block})" if block else "")
        )
    if kind == _LATE:
        return (
            f"late for its share of the {cyc.policy} deadline: needed by "
            f"{cyc.text[2]}; predicted ready {ptext}"
            + (f" (blocked by {block})" if block else "")
        )
    if kind == _FRESH:
        return (
            f"fresh for the deadline {cyc.text[2]}"
            + (f" (data as of {data_time_text(dt)}" if dt else "")
            + (f", materialized {ls.isoformat()})" if ls and dt else (")" if dt else ""))
        )
    if kind == _RISK:
        return (
            f"predicted ready {ptext} is after the deadline "
            f"{cyc.text[2]} minus a {int(margin_s)}s margin"
            + (f"; critical path held by {block}" if block else "")
        )
    if kind == _BEFORE:
        return f"predicted ready {ptext} before the deadline {cyc.text[2]}"
    if kind == _LAG_OLD:
        return (f"data older than max_lag {sla.max_lag}" if dt else "never materialized") + (
            f" (policy {sla.max_lag_policy})"
        )
    if kind == _LAG_RISK:
        return f"predicted ready {ptext} after the max_lag limit {deadline.isoformat()}"
    if kind == _LAG_REFRESH:
        return f"a refresh started now would land after the max_lag limit {deadline.isoformat()}"
    if kind == _LAG_WITHIN:
        return f"within max_lag until {deadline.isoformat()}"
    if kind == _LAG_PREDICTED:
        return f"predicted ready {ptext} within max_lag until {deadline.isoformat()}"
    return ""


def _assess_one(key, sla, cyc, ls, dt, predicted, need, block, held_by, now, margin, margin_s, durations,
                node_of) -> FreshnessAssessment:
    """One asset's assessment, plain (every field made now)."""
    status, deadline, kind = _judge(key, sla, cyc, ls, dt, predicted, need, now, margin, durations, node_of)
    held = held_by.get(key, key)
    slack = (deadline - predicted).total_seconds() if deadline and predicted else None
    return FreshnessAssessment(
        asset_key=key,
        status=status,
        tier=sla.tier.value,
        policy=cyc.policy if cyc is not None else sla.max_lag_policy,
        deadline=deadline,
        predicted_ready=predicted,
        slack_s=slack,
        blocking_asset=block,
        reason=_text(kind, key, sla, cyc, ls, dt, held, block, deadline, margin_s,
                     predicted.isoformat() if predicted is not None else None),
        data_time=dt,
        data_held_by=held_by.get(key) if held != key else None,
        window_open=cyc.open if cyc is not None else None,
    )


def recoveries(
    previous: Mapping[str, str], current: Mapping[str, FreshnessAssessment]
) -> list[str]:
    """Keys that were at_risk/breached before (``previous``: key -> status value) and are ok now."""
    return [
        key
        for key, status in previous.items()
        if status != FreshnessStatus.ok.value
        and key in current
        and current[key].status is FreshnessStatus.ok
    ]
