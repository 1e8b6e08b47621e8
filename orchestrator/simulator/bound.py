"""A valid upper bound on SLA attainment: no planner can meet a deadline the bound misses.

Relaxed per deadline cycle: for each window opening ``o``, the earliest instant each asset can
hold data newer than ``o`` if every unit of work ran with

* no queue and no other work in the way: only the busiest pool's share of this cycle's own work
  counts (every unit upstream must run once after the window opens, so the target cannot be
  ready before ``opens + work on that pool / its slots``),
* the shortest duration this seed draws for that unit (over all its attempts),
* perfect foresight of faults: an attempt starts the moment nothing blocks it, and
* the fastest fix the simulation allows: a fault that clears by itself blocks until it ends; one a
  person must fix blocks until the earliest moment a fix can land (the first failed attempt at the
  episode's start, then the shorter of the approval delay and the on-call delay, both of which
  need a reported failure); one a resync clears costs a resync (x1.5) at any time.

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
from orchestrator.simulator.engine import RESYNC_FACTOR
from orchestrator.simulator.metrics import BenchResult, Deadline, summarise

INF = math.inf


class CycleBound:
    """Earliest-ready times per deadline cycle for one scenario and seed."""

    def __init__(self, sc, world):
        self.sc = sc
        self.world = world
        self.graph = sc.graph
        spec = sc.spec
        self.dmin = {u: float(min(arr)) for u, arr in world.durations.items()}
        fix_delay = spec.human_fix_delay.total_seconds()
        approve_delay = spec.approvals.delay.total_seconds()
        self.blocks: dict[str, list[tuple[float, float, bool]]] = {}  # unit -> (from, until, resyncable)
        for ep in world.episodes:
            fail = max(1.0, self.dmin.get(ep.target, 1.0) * spec.fail_after)
            if ep.fix == "retry":
                until = ep.end if ep.end is not None else INF
            elif ep.fix == "human":
                until = ep.start + fail + min(approve_delay, fix_delay)
            else:  # resync_table: on-call fix, or any resync clears it at once
                until = ep.start + fail + fix_delay
            self.blocks.setdefault(ep.target, []).append((ep.start, until, ep.fix == "resync_table"))
        for lst in self.blocks.values():
            lst.sort()
        self._units: dict[str, str | None] = {}
        self._load: dict[str, float] = {}

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
        is_sync = unit in self.sc.connectors
        best = INF
        s = t
        for _ in range(len(blocks) + 2):
            active = [(a, b, r) for a, b, r in blocks if a <= s < b]
            if not active:
                return min(best, s + d)
            if is_sync and any(r for _, _, r in active):
                best = min(best, s + d * RESYNC_FACTOR["resync_table"])
            s = min(b for _, b, _ in active)
            if s == INF:
                return best
        return best

    def ready_times(self, opens: float, targets: Sequence[str]) -> dict[str, float]:
        """Earliest instant each asset upstream of ``targets`` holds data newer than ``opens``."""
        need = self.graph.upstream_closure(*targets, include_self=True)
        ready: dict[str, float] = {}
        unit_ready: dict[str, float] = {}
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
                    unit_ready[u] = self.earliest_end(u, opens)
                else:
                    start = max((ready[p] for p in parents), default=opens) if parents else opens
                    unit_ready[u] = self.earliest_end(u, start) if start < INF else INF
            ready[key] = unit_ready[u]
        return ready

    def load_s(self, target: str) -> float:
        """The least time a pool needs for one cycle of ``target``: every unit upstream must run
        once after the window opens, so the busiest pool is busy for at least its work divided
        by its slots (the one capacity fact the relaxation keeps)."""
        if target not in self._load:
            work: dict[str, float] = {}
            units = {u for k in self.graph.upstream_closure(target, include_self=True)
                     if (u := self.unit_of(k)) is not None}
            for u in units:
                pool = self.sc.connectors[u].pool if u in self.sc.connectors else self.sc.model_pool[u]
                work[pool] = work.get(pool, 0.0) + self.dmin.get(u, 0.0)
            self._load[target] = max((w / self.sc.pools[p] for p, w in work.items()), default=0.0)
        return self._load[target]

    def deadline_ready(self, deadlines: Sequence[Deadline]) -> list[float]:
        """For each deadline, the earliest instant its target can be fresh for its cycle."""
        by_opens: dict[float, set[str]] = {}
        for d in deadlines:
            by_opens.setdefault(d.opens, set()).add(d.target)
        cache = {o: self.ready_times(o, sorted(ts)) for o, ts in by_opens.items()}
        return [max(cache[d.opens].get(d.target, INF), d.opens + self.load_s(d.target)) for d in deadlines]


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
