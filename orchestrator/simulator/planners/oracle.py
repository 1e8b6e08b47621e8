"""The offline optimum: full knowledge of this seed's durations and faults.

Exact (CP-SAT) when the scenario is small: one run per unit (connector sync or model) in the
upstream closure of the deadline targets, released when the latest window needing it opens,
never started while a fault it would hit is active (for faults only a resync clears, the oracle
resyncs at once; for faults only a human clears, it waits for the on-call fix), durations as
realised (a first attempt that would fail a probabilistic fault costs its failed part and a
second attempt), capacity per pool (cumulative), dependencies as precedences. Objective:
tier-weighted lateness first, then cost (off-peak windows priced). One run per unit per horizon
is the schedule class, so scenarios whose deadlines recur within the horizon get the bound.

Bound (large scenarios, or when CP-SAT is unavailable): capacity relaxed, each target's earliest
possible completion along its critical path; attainment is then an upper bound and lateness and
cost lower bounds (``BenchResult.bound``).
"""

from __future__ import annotations

from orchestrator.core.graph import DASHBOARD
from orchestrator.simulator.engine import RESYNC_FACTOR, Simulation
from orchestrator.simulator.metrics import TIER_WEIGHT, BenchResult, summarise


def _units_for(sim: Simulation, key: str, memo: dict) -> set[str]:
    if key in memo:
        return memo[key]
    out: set[str] = set()
    for k in sim.graph.upstream_closure(key, include_self=True):
        u = sim.unit_of(k)
        if u is not None:
            out.add(u)
    memo[key] = out
    return out


def _unit_parents(sim: Simulation, u: str, cache: dict) -> list[str]:
    """Units a unit's data depends on directly (through dashboards / tables)."""
    if u in cache:
        return cache[u]
    if u in sim.sc.connectors:
        cache[u] = []
        return cache[u]
    out: list[str] = []
    for p in sim.graph.parents(u):
        pu = sim.unit_of(p)
        if pu is not None and pu != u:
            out.append(pu)
    cache[u] = list(dict.fromkeys(out))
    return cache[u]


def _task_facts(sim: Simulation, u: str) -> tuple[float, list[tuple[float, float]], bool]:
    """(effective duration, blocked intervals, resync?) of one run of ``u`` started in the clear."""
    w = sim.world
    d0 = w.duration(u, 0)
    blocked: list[tuple[float, float]] = []
    resync = False
    for i, ep in sim._episodes.get(u, ()):
        if ep.fix == "retry":
            blocked.append((ep.start, ep.end))
        elif ep.fix == "human":
            blocked.append((ep.start, ep.start + sim.spec.human_fix_delay.total_seconds()))
        else:
            resync = True
    if resync:
        d0 *= RESYNC_FACTOR["resync_table"]
    u0 = w.draw(u, 0)
    acc = 0.0
    for f, targets, _ in w.attempt_faults:
        if u in targets:
            acc += f.probability or 0.0
            if u0 < acc:
                d0 = d0 * sim.spec.fail_after + w.duration(u, 1)
                break
    return d0, blocked, resync


def solve(sc, world, resolution, deadlines) -> BenchResult:
    sim = Simulation(sc, world.seed)
    sim.set_resolution(resolution)
    memo: dict = {}
    release: dict[str, float] = {}
    for d in deadlines:
        for u in _units_for(sim, d.target, memo):
            release[u] = max(release.get(u, 0.0), d.opens)
    targets = {d.target for d in deadlines}
    recurring = len({(d.target) for d in deadlines}) < len(deadlines)
    facts = {u: _task_facts(sim, u) for u in release}
    exact = (not recurring and 0 < len(release) <= sc.spec.oracle.max_tasks)
    if exact:
        try:
            from ortools.sat.python import cp_model  # noqa: F401
        except ImportError:
            exact = False
    if exact:
        return _cp_sat(sim, sc, deadlines, release, facts, targets)
    return _bound(sim, sc, deadlines, release, facts)


def _finish_time_expr(sim, key, ends, cache, model=None):
    """Completion of a target: its unit's end, or (dashboard) the latest end of its parents."""
    node = sim.graph.node(key)
    if node.role != DASHBOARD:
        return [ends[sim.unit_of(key)]]
    out = []
    for p in sim.graph.parents(key):
        out.extend(_finish_time_expr(sim, p, ends, cache, model))
    return out


def _cp_sat(sim, sc, deadlines, release, facts, targets) -> BenchResult:
    from ortools.sat.python import cp_model

    m = cp_model.CpModel()
    H = int(sc.horizon_s) + 1
    horizon_ub = H * 3
    starts, ends, intervals, pools = {}, {}, {}, {}
    pcache: dict = {}
    for u, (dur, blocked, _) in facts.items():
        d = max(1, int(round(dur)))
        s = m.NewIntVar(int(release[u]), horizon_ub, f"s_{u}")
        e = m.NewIntVar(0, horizon_ub + d, f"e_{u}")
        iv = m.NewIntervalVar(s, d, e, f"i_{u}")
        starts[u], ends[u], intervals[u] = s, e, iv
        pool = sc.connectors[u].pool if u in sc.connectors else sc.model_pool[u]
        pools.setdefault(pool, []).append(iv)
        for j, (a, b) in enumerate(blocked):
            before = m.NewBoolVar(f"b_{u}_{j}")
            m.Add(s < int(a)).OnlyEnforceIf(before)
            m.Add(s >= int(b + 0.999)).OnlyEnforceIf(before.Not())
    for pool, ivs in pools.items():
        m.AddCumulative(ivs, [1] * len(ivs), sc.pools[pool])
    for u in facts:
        for pu in _unit_parents(sim, u, pcache):
            if pu in ends:
                m.Add(starts[u] >= ends[pu])
    # cost: warehouse compute per second, cheaper inside off-peak segments
    off = []
    for i in range(len(sim._price_t)):
        f = sim._price_f[i]
        a = sim._price_t[i]
        b = sim._price_t[i + 1] if i + 1 < len(sim._price_t) else 1e12
        if f < 1.0 and b > 0 and a < horizon_ub:
            off.append((max(0, int(a)), min(horizon_ub, int(b)), f))
    cost_terms = []
    for u, (dur, _, _) in facts.items():
        if u in sc.connectors:
            continue
        cents = int(round(max(dur, sc.spec.cost.min_billed_s) * sim._wh_rate * 100))
        saved = []
        for j, (a, b, f) in enumerate(off):
            o = m.NewBoolVar(f"o_{u}_{j}")
            m.Add(starts[u] >= a).OnlyEnforceIf(o)
            m.Add(ends[u] <= b).OnlyEnforceIf(o)
            saved.append((o, int(round(cents * (1 - f)))))
        m.AddAtMostOne([o for o, _ in saved]) if saved else None
        cost_terms.append(cents - sum(c * o for o, c in saved))
    late_terms = []
    finish: dict[str, cp_model.IntVar] = {}
    for t in targets:
        parts = _finish_time_expr(sim, t, ends, {})
        f = m.NewIntVar(0, horizon_ub * 2, f"f_{t}")
        m.AddMaxEquality(f, parts)
        finish[t] = f
    late_vars = []
    for i, d in enumerate(deadlines):
        late = m.NewIntVar(0, horizon_ub * 2, f"late_{i}")
        m.Add(late >= finish[d.target] - int(d.tick))
        late_vars.append(late)
        late_terms.append(int(TIER_WEIGHT.get(d.tier, 1.0)) * late)
    m.Minimize(sum(late_terms) * 100_000 + sum(cost_terms))
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = sc.spec.oracle.time_limit_s
    solver.parameters.num_workers = 8
    solver.parameters.random_seed = 0
    status = solver.Solve(m)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return _bound(sim, sc, deadlines, release, facts)
    late = [max(0.0, min(float(solver.Value(finish[d.target])), sc.horizon_s) - d.tick) for d in deadlines]
    att, wl, met = summarise(deadlines, late)
    cost = 0.0
    for u, (dur, _, resync) in facts.items():
        s = float(solver.Value(starts[u]))
        if u in sc.connectors:
            usd, _ = sim.sync_cost(u, s, s + dur, "resync_table" if resync else None)
            cost += usd
        else:
            cost += sim.compute_cost(s, s + dur)
    note = "CP-SAT optimal" if status == cp_model.OPTIMAL else "CP-SAT feasible (time limit)"
    return BenchResult(sc.name, "oracle", sim.seed, round(att, 4), round(wl, 2), round(cost, 2), 1.0, 0.0, 0, 0,
                       deadlines=len(deadlines), met=met, runs=len(facts), note=note)


def _bound(sim, sc, deadlines, release, facts) -> BenchResult:
    """Capacity-relaxed earliest completions (upper bound on attainment)."""
    pcache: dict = {}
    earliest: dict[str, float] = {}
    order = [u for u in list(sc.connectors) + sc.models if u in facts]
    for u in order:
        dur, blocked, _ = facts[u]
        s = max([release[u]] + [earliest[p] for p in _unit_parents(sim, u, pcache) if p in earliest])
        for a, b in sorted(blocked):
            if a <= s < b or (s < a < s + 1e-9):
                s = b
        earliest[u] = s + dur
    late = []
    for d in deadlines:
        units = [sim.unit_of(k) for k in sim.graph.upstream_closure(d.target, include_self=True)]
        fin = max((earliest[u] for u in units if u is not None and u in earliest), default=d.opens)
        late.append(max(0.0, min(fin, sc.horizon_s) - d.tick))
    att, wl, met = summarise(deadlines, late)
    cheapest = min(sim._price_f) if sim._price_f else 1.0
    cost = 0.0
    for u, (dur, _, resync) in facts.items():
        if u in sc.connectors:
            usd, _ = sim.sync_cost(u, release[u], release[u] + dur, "resync_table" if resync else None)
            cost += usd
        else:
            cost += max(dur, sc.spec.cost.min_billed_s) * sim._wh_rate * cheapest
    return BenchResult(sc.name, "oracle", sim.seed, round(att, 4), round(wl, 2), round(cost, 2), 1.0, 0.0, 0, 0,
                       deadlines=len(deadlines), met=met, runs=len(facts), bound=True,
                       note="relaxation bound (capacity ignored): attainment upper, lateness/cost lower bounds")
