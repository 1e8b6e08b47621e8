"""A valid upper bound on SLA attainment: no planner can meet a deadline the bound misses.

Relaxed per deadline cycle: for each window opening ``o``, the earliest instant each asset can
hold data newer than ``o`` if every unit of work ran with

* the shortest duration this seed draws for that unit (over all its attempts);
* perfect foresight of faults: an attempt starts the moment nothing blocks it;
* the fastest fix the simulation allows, episode by episode in the engine's order (an attempt
  fails on the first active episode of its unit, so a later episode is reported only once the
  earlier ones have cleared):

  - a fault that clears by itself blocks until it ends;
  - one a person must fix blocks until its first failure is reported (the first attempt once
    nothing earlier blocks, failing after ``fail_after`` of its shortest duration) and then
    until the sooner of the approvers' answer to a request made at that moment
    (``approvals.answer_at``: their delay, after the night when they sleep; none when they
    approve nothing: an approval fixes only what had been reported when it was requested) and
    the on-call engineer (``human_fix_delay`` after it);
  - one a resync clears never holds a connector back (a resync clears it at any moment from its
    start, and cancelled at once lets a plain sync run clean); on a model, the on-call fix.

  (The on-call engineer answers only the episode whose failure opened the unit's incident, so
  one reported behind another may wait longer; the bound does not count on it: an attempt
  started before the first episode can still succeed and close that incident.)

* capacity: every unit upstream must run (and finish) once after ``o``, each no earlier than
  its inputs can be fresh, so on each pool, for any instant ``tau``, the units that cannot start
  before ``tau`` keep its slots busy for their total work / slots after ``tau``, and the last of
  them still has its shortest path of models to the target ahead of it (the release-date and
  tail relaxation of a parallel-machine schedule; ``tau = o`` is the plain load bound).

Each cycle is relaxed on its own (the work for one deadline never delays another's), so the
bound holds for recurring, multi-day and overlapping deadlines alike. Probabilistic per-attempt
faults are assumed not to fire. Data time follows the engine: a sync's data time is its start, a
model's the oldest of its parents' when it starts, a dashboard's the oldest of its parents'.

Only attainment and lateness are bounds; ``cost`` is what running each needed unit once, at the
cheapest price, would cost (a reference, not a bound: a planner that skips work spends less).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from orchestrator.core.graph import DASHBOARD
from orchestrator.simulator.metrics import BenchResult, Deadline, summarise

INF = math.inf
HUMAN, RESYNC, RETRY = "human", "resync_table", "retry"


class CycleBound:
    """Earliest-ready times per deadline cycle for one scenario and seed."""

    def __init__(self, sc, world):
        self.sc = sc
        self.world = world
        self.graph = sc.graph
        spec = sc.spec
        self.dmin = {u: float(min(arr)) for u, arr in world.durations.items()}
        self.fix_delay = spec.human_fix_delay.total_seconds()
        # unit -> [(from, blocks until at the earliest, kind)] in the engine's order
        self.blocks: dict[str, list[tuple[float, float, str]]] = {}
        by_unit: dict[str, list] = {}
        for ep in world.episodes:  # sorted by (start, target): the engine's order per unit
            by_unit.setdefault(ep.target, []).append(ep)
        for unit, eps in by_unit.items():
            self.blocks[unit] = self._clear_times(unit, eps)
        self._units: dict[str, str | None] = {}
        self._tail: dict[str, dict[str, float]] = {}

    # -- faults ----------------------------------------------------------------------------------
    def answer_at(self, reported: float) -> float:
        """The earliest instant a person can fix what was reported at ``reported``."""
        spec = self.sc.spec
        if reported == INF:
            return INF
        options = [reported + self.fix_delay]
        if spec.approvals.approve > 0:
            options.append(spec.approvals.answer_at(self.sc.t0, reported))
        return min(options)

    def _clear_times(self, unit: str, eps) -> list[tuple[float, float, str]]:
        fail = max(1.0, self.dmin.get(unit, 1.0) * self.sc.spec.fail_after)
        is_sync = unit in self.sc.connectors
        out: list[tuple[float, float, str]] = []
        for ep in eps:
            # reported: the first attempt once no earlier episode of the unit blocks, failing
            t = ep.start
            for _ in range(len(out) + 1):
                moved = False
                for a, b, _k in out:
                    if a <= t < b:
                        t, moved = b, True
                if not moved:
                    break
            reported = t + fail if t < INF else INF
            if ep.fix == RETRY:
                until = ep.end if ep.end is not None else INF
            elif ep.fix == RESYNC and is_sync:
                # a resync clears it at any moment from its start (and a plain sync may follow
                # at once, the resync cancelled): it never holds a connector back
                until = ep.start
            else:  # a person: the approvers' answer to a request made at the report, or on-call
                until = self.answer_at(reported) if ep.fix == HUMAN else reported + self.fix_delay
            out.append((ep.start, max(until, ep.start), ep.fix))
        return out

    def unit_of(self, key: str) -> str | None:
        if key not in self._units:
            node = self.graph.node(key)
            if node.connector:
                u = node.connector if node.connector in self.sc.connectors else None
            elif node.role == DASHBOARD:
                u = None
            else:
                u = key
            self._units[key] = u
        return self._units[key]

    def earliest_end(self, unit: str, t: float) -> float:
        """The earliest end of a successful attempt of ``unit`` started at or after ``t``."""
        d = self.dmin.get(unit, 0.0)
        blocks = self.blocks.get(unit, ())
        s = t
        for _ in range(len(blocks) + 2):
            active = [b for a, b, _k in blocks if a <= s < b]
            if not active:
                return s + d
            s = min(active)
            if s == INF:
                return INF
        return INF

    # -- one cycle -------------------------------------------------------------------------------
    def _starts(self, opens: float, need: set[str]) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
        """(asset ready, unit ready, unit earliest start) for one window opening."""
        ready: dict[str, float] = {}
        unit_ready: dict[str, float] = {}
        unit_start: dict[str, float] = {}
        for key in self.graph.topological_order():
            if key not in need:
                continue
            node = self.graph.node(key)
            parents = self.graph.parents(key)
            if node.role == DASHBOARD:
                ready[key] = max((ready[p] for p in parents), default=INF) if parents else INF
                continue
            u = self.unit_of(key)
            if u is None:
                ready[key] = INF
                continue
            if u not in unit_ready:
                if u in self.sc.connectors:
                    start = opens
                else:
                    start = max((ready[p] for p in parents), default=opens) if parents else opens
                unit_start[u] = start
                unit_ready[u] = self.earliest_end(u, start) if start < INF else INF
            ready[key] = unit_ready[u]
        return ready, unit_ready, unit_start

    def ready_times(self, opens: float, targets: Sequence[str]) -> dict[str, float]:
        """Earliest instant each asset upstream of ``targets`` holds data newer than ``opens``
        (critical path with fault blocks; no capacity)."""
        return self._starts(opens, self.graph.upstream_closure(*targets, include_self=True))[0]

    def tails(self, target: str) -> dict[str, float]:
        """Per unit upstream of ``target``: the least time from its fresh run's end to the target
        being fresh (the longest chain of shortest model durations strictly after it)."""
        if target not in self._tail:
            need = self.graph.upstream_closure(target, include_self=True)
            key_tail: dict[str, float] = {}
            for key in reversed(self.graph.topological_order()):
                if key not in need:
                    continue
                after = 0.0
                for ch in self.graph.children(key):
                    if ch not in need:
                        continue
                    cu = self.unit_of(ch)
                    own = self.dmin.get(cu, 0.0) if cu is not None and cu not in self.sc.connectors else 0.0
                    after = max(after, key_tail[ch] + own)
                key_tail[key] = after
            tail: dict[str, float] = {}
            for key, v in key_tail.items():
                u = self.unit_of(key)
                if u is not None:
                    tail[u] = max(tail.get(u, 0.0), v)  # a connector's tables: its slowest path
            self._tail[target] = tail
        return self._tail[target]

    def capacity_ready(self, target: str, unit_start: dict[str, float]) -> float:
        """The release-date/tail bound: per pool, max over tau of tau + (work of the units that
        cannot start before tau) / slots + the least tail among them."""
        tail = self.tails(target)
        by_pool: dict[str, list[tuple[float, float, float]]] = {}
        for u, start in unit_start.items():
            if u not in tail:
                continue
            pool = self.sc.connectors[u].pool if u in self.sc.connectors else self.sc.model_pool[u]
            by_pool.setdefault(pool, []).append((start, self.dmin.get(u, 0.0), tail[u]))
        best = -INF
        for pool, items in by_pool.items():
            slots = self.sc.pools[pool]
            items.sort()
            work, least_tail = 0.0, INF
            for start, d, t in reversed(items):  # latest release first: the set {start >= tau}
                if start == INF:
                    return INF
                work += d
                least_tail = min(least_tail, t)
                best = max(best, start + work / slots + least_tail)
        return best

    def deadline_ready(self, deadlines: Sequence[Deadline]) -> list[float]:
        """For each deadline, the earliest instant its target can be fresh for its cycle."""
        cache: dict[tuple[float, str], float] = {}
        out = []
        for d in deadlines:
            key = (d.opens, d.target)
            if key not in cache:
                need = self.graph.upstream_closure(d.target, include_self=True)
                ready, _, unit_start = self._starts(d.opens, need)
                r = ready.get(d.target, INF)
                if r < INF:
                    r = max(r, self.capacity_ready(d.target, unit_start))
                cache[key] = r
            out.append(cache[key])
        return out


def bound_lateness(sc, world, deadlines: Sequence[Deadline]) -> list[float]:
    """Per deadline, the least lateness (seconds) any planner can achieve (0: it can be met)."""
    ready = CycleBound(sc, world).deadline_ready(deadlines)
    return [max(0.0, min(r, sc.horizon_s) - d.tick) for d, r in zip(deadlines, ready)]


def solve_bound(sc, world, resolution, deadlines: list[Deadline], name: str = "bound") -> BenchResult:
    cb = CycleBound(sc, world)
    ready = cb.deadline_ready(deadlines)
    late = [max(0.0, min(r, sc.horizon_s) - d.tick) for d, r in zip(deadlines, ready)]
    att, wl, met = summarise(deadlines, late)
    # reference cost: each unit a met deadline needs, once, at the cheapest price
    from orchestrator.simulator.engine import Simulation

    sim = Simulation(sc, world.seed)
    cheapest = min(sim._price_f) if sim._price_f else 1.0
    units: set[str] = set()
    for d, r in zip(deadlines, ready):
        if r <= d.tick:
            for k in sc.graph.upstream_closure(d.target, include_self=True):
                if (u := cb.unit_of(k)) is not None:
                    units.add(u)
    cost = 0.0
    for u in units:
        if u in sc.connectors:
            cost += sc.spec.cost.sync_fixed_usd
        else:
            cost += max(cb.dmin.get(u, 0.0), sc.spec.cost.min_billed_s) * sim._wh_rate * cheapest
    # a bound schedules nothing: it has no incidents to resolve, no actions, nothing to audit
    return BenchResult(sc.name, name, world.seed, round(att, 4), round(wl, 2), round(cost, 2), None, None, 0, 0,
                       deadlines=len(deadlines), met=met, runs=len(units), bound=True,
                       recurring_auto_resolved_share=None,
                       note="valid upper bound (per-cycle relaxation): attainment upper, lateness lower; "
                            "cost = each needed unit once at the cheapest price (reference only)")
