"""Why deadlines are missed: `sla` vs `cron-tuned`, deadline by deadline, on generated worlds.

    .venv/bin/python benchmarks/miss_decomposition.py --worlds 12 --seed 7000 [--out DIR] [--verbose]

For every deadline a planner misses, one cause (the first that applies, in this order):

* ``approval``   -- work on the target's lineage waited for a person whose answer came after the tick
                    (or never came);
* ``paused``     -- a connector on the lineage was paused during the window;
* ``no_action``  -- nothing the planner launched touched the lineage inside the window (and the
                    connectors' own syncs did not suffice);
* ``fault``      -- a step on the lineage failed inside the window (retries, episodes);
* ``queue``      -- steps on the lineage waited in a pool queue for more than a third of the time
                    from the first launch to the tick;
* ``late_start`` -- the planner's first launch on the lineage inside the window came later than
                    the tick minus the lineage's critical path (p50 of the drawn durations);
* ``stale_input``-- the target was rebuilt by the tick but on data older than the window;
* ``other``.

Prints per planner the count of misses by cause, per world the attainment pair, and (``--verbose``)
each miss of `sla` that `cron-tuned` met, with its timeline.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter, defaultdict
from pathlib import Path


def _keep_sim(sc, seed, planner, res, deadlines):
    from orchestrator.simulator.engine import Simulation

    sim = Simulation(sc, seed)
    sim.set_resolution(res)
    for d in deadlines:
        sim.watch.setdefault(d.target, [])
    queued: dict[int, list[tuple[float, float]]] = defaultdict(list)
    orig = sim._enqueue

    def enqueue(st, _orig=orig):
        before = st.state
        _orig(st)
        if before in ("pending", "retry") and st.state in ("queued", "running"):
            queued[st.sid].append((sim.now, 0.0))

    sim._enqueue = enqueue
    planner.start(sim)
    sim.run()
    planner.finish(sim)
    sim._queued = queued
    return sim


def _lineage_units(sim, target):
    keys = set(sim.graph.upstream_closure(target)) | {target}
    return {u for k in keys if (u := sim.unit_of(k)) is not None}


def classify(sim, d, late: float, durations_p50: dict) -> str:
    units = _lineage_units(sim, d.target)
    o, tick = d.opens, d.tick
    # approvals asked for lineage work, answered after the tick (or declined)
    asked = {}
    answered = {}
    for a in sim.actions:
        aus = set(sim._units_of_action(a.action)) if a.action.type != "standing_approval" else units
        if not (aus & units):
            continue
        if a.decision == "await_approval":
            asked[a.action.action_id] = a.at
        elif a.decision in ("approved", "declined"):
            answered[a.action.action_id] = (a.at, a.decision)
    for aid, at in asked.items():
        if at > tick:
            continue
        ans = answered.get(aid)
        if ans is None or ans[1] == "declined" or ans[0] > tick - 600:
            if at >= o - 86400:
                return "approval"
    steps = [st for r in sim.runs.values() for st in r.steps if st.unit in units]
    mine = [st for st in steps if not st.run.source.startswith("native")]
    win = [st for st in mine if st.run.created >= o - 1 and st.run.created <= tick]
    if not win and not any(st.start is not None and o <= st.start <= tick and st.state == "success"
                           for st in steps):
        return "no_action"
    if any(st.start is not None and o <= st.start <= tick and (st.state == "failure" or st.retries)
           for st in steps) or any(i.unit in units and i.opened <= tick and (i.resolved or 1e18) >= o
                                   for i in sim.incidents):
        return "fault"
    first = min((st.run.created for st in win), default=None)
    wait = 0.0
    for st in win:
        q = sim._queued.get(st.sid)
        if q and st.start is not None:
            wait = max(wait, st.start - q[-1][0])
    if first is not None and wait > (tick - first) / 3:
        return "queue"
    path = _critical_path(sim, d.target, durations_p50)
    if first is not None and first > tick - path:
        return "late_start"
    hist = sim.watch.get(d.target, [])
    if any(at <= tick and at >= o and dt < o for at, dt in hist):
        return "stale_input"
    return "other"


def _critical_path(sim, target, p50) -> float:
    memo: dict[str, float] = {}
    order = [k for k in sim.graph.topological_order() if k in (set(sim.graph.upstream_closure(target)) | {target})]
    for k in order:
        u = sim.unit_of(k)
        own = p50.get(u, 0.0) if u else 0.0
        memo[k] = own + max((memo.get(p, 0.0) for p in sim.graph.parents(k)), default=0.0)
    return memo.get(target, 0.0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--worlds", type=int, default=12)
    ap.add_argument("--seed", type=int, default=7000)
    ap.add_argument("--out", default="/tmp/miss_decomposition")
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--only", type=int, nargs="*")
    args = ap.parse_args()

    import statistics

    from orchestrator.simulator.bench import resolve_policies
    from orchestrator.simulator.metrics import deadlines_of, lateness
    from orchestrator.simulator.planners import make_planner
    from orchestrator.simulator.planners.cron import CronPlanner
    from orchestrator.simulator.planners.cron_tuned import tune
    from orchestrator.simulator.bench import simulate
    from orchestrator.simulator.scenario import load_scenario
    from orchestrator.simulator.worlds import generate_world

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    totals = {"sla": Counter(), "cron-tuned": Counter()}
    lost_vs_cron = Counter()
    rows = []
    seeds = args.only or range(args.seed, args.seed + args.worlds)
    for seed in seeds:
        t = time.perf_counter()
        sc = load_scenario(generate_world(seed, out))
        world = sc.realise(seed)
        res = resolve_policies(sc, world)
        deadlines = deadlines_of(res, sc.t0, sc.horizon_s)
        _, setting, _ = tune(sc, seed, lambda p: simulate(sc, seed, p, res, deadlines))
        sims = {"cron-tuned": _keep_sim(sc, seed, CronPlanner(setting), res, deadlines),
                "sla": _keep_sim(sc, seed, make_planner("sla"), res, deadlines)}
        p50 = {}
        for u in set(sc.model_pool) | set(sc.connectors):
            p50[u] = statistics.median(world.duration(u, k) for k in range(5))
        late = {p: [lateness(d, s.watch.get(d.target, []), s.horizon) for d in deadlines] for p, s in sims.items()}
        causes = {p: [classify(sims[p], d, x, p50) if x > 0 else "met" for d, x in zip(deadlines, late[p])]
                  for p in sims}
        for p in sims:
            totals[p].update(c for c in causes[p] if c != "met")
        spec = sc.spec
        cf = bool(spec.faults) or spec.capacity.warehouse_slots <= 3
        att = {p: (sum(1 for x in late[p] if x <= 0) / len(deadlines) if deadlines else 1.0) for p in sims}
        row = {"world": seed, "deadlines": len(deadlines), "contention_or_faults": cf,
               **{f"{p}": round(att[p], 3) for p in sims},
               "sla_causes": dict(Counter(c for c in causes["sla"] if c != "met")),
               "cron_causes": dict(Counter(c for c in causes["cron-tuned"] if c != "met")),
               "setting": setting.label, "note": sims["sla"].sc.name, "wall_s": round(time.perf_counter() - t, 1)}
        for d, cs, cc in zip(deadlines, causes["sla"], causes["cron-tuned"]):
            if cs != "met" and cc == "met":
                lost_vs_cron[cs] += 1
                if args.verbose:
                    print(f"  w{seed} {d.policy} {d.target} opens {sims['sla'].dt(d.opens):%a %H:%M} "
                          f"tick {sims['sla'].dt(d.tick):%a %H:%M} -> {cs}")
        rows.append(row)
        print(json.dumps(row), flush=True)
    print("misses by cause (all deadlines missed):")
    for p, c in totals.items():
        print(f"  {p:11s} total {sum(c.values()):4d}  " + ", ".join(f"{k} {v}" for k, v in c.most_common()))
    print(f"  sla misses where cron-tuned met: {sum(lost_vs_cron.values())}  "
          + ", ".join(f"{k} {v}" for k, v in lost_vs_cron.most_common()))
    n = len(rows)
    print(f"worlds {n}: sla mean {sum(r['sla'] for r in rows) / n:.3f}, cron-tuned "
          f"{sum(r['cron-tuned'] for r in rows) / n:.3f}, sla>=cron-tuned on "
          f"{sum(1 for r in rows if r['sla'] >= r['cron-tuned'] - 1e-9)}/{n}")


if __name__ == "__main__":
    main()
