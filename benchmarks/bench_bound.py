"""Is the bound valid? Many (world, seed, planner) runs, each deadline checked against it.

    python benchmarks/bench_bound.py [--worlds 125] [--seeds 8] [--jobs 2]
                                     [--planners cron,eager,random,cron-candidate[,cron-tuned,sla]]

For every generated world and seed, each planner is simulated on that seed's world: ``cron`` (as
written), ``eager``, ``random`` (the adversary of tests/sim_adversary.py: random runs, resyncs,
approvals, cancellations), ``cron-candidate`` (one of the tuned baseline's candidate settings,
rotating), and optionally ``cron-tuned`` (the whole search) and ``sla`` (the decision core; both
slow). A run "beats the bound" when any single deadline is met earlier (less late) than the bound
allows. Prints the world-seed pairs, runs and deadlines checked, the violations (target: 0 over
>= 1,000 world-seed runs), the largest excess (seconds a planner was earlier than the bound allows:
<= 0 when valid) and how tight the bound is: the share of deadlines it declares unattainable and,
of those the bound allows, the share some checked planner met.
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

DEFAULT = "cron,eager,random,cron-candidate"


def check_world(path: str, world_seed: int, seeds: int, planners: tuple[str, ...]) -> dict:
    from sim_adversary import RandomPlanner

    from orchestrator.simulator.bench import resolve_policies, simulate
    from orchestrator.simulator.bound import bound_lateness
    from orchestrator.simulator.metrics import deadlines_of
    from orchestrator.simulator.planners import make_planner
    from orchestrator.simulator.planners.cron import CronPlanner
    from orchestrator.simulator.planners.cron_tuned import candidates, tune
    from orchestrator.simulator.scenario import load_scenario

    sc = load_scenario(path)
    out = {"name": sc.name, "pairs": 0, "runs": 0, "checked": 0, "bad": [], "violations": 0,
           "max_excess": -float("inf"), "bound_late": 0, "bound_met": 0, "met_by_some": 0}
    for seed in range(seeds):
        world = sc.realise(seed)
        res = resolve_policies(sc, world)
        deadlines = deadlines_of(res, sc.t0, sc.horizon_s)
        floor = bound_lateness(sc, world, deadlines)
        out["pairs"] += 1
        met_any = [False] * len(deadlines)
        for name in planners:
            if name == "random":
                p = RandomPlanner(seed, (900.0, 3600.0)[(world_seed + seed) % 2], native=(world_seed + seed) % 3 != 0)
            elif name == "cron-candidate":
                cands = candidates(sc, res)
                if not cands:
                    continue
                p = CronPlanner(cands[(world_seed + seed) % len(cands)])
                p.name = "cron-candidate"
            elif name == "cron-tuned":
                r, _, _ = tune(sc, seed, lambda q: simulate(sc, seed, q, res, deadlines))
                p = None
            else:
                p = make_planner(name)
            if p is not None:
                r = simulate(sc, seed, p, res, deadlines)
            out["runs"] += 1
            for i, (d, mine, best) in enumerate(zip(deadlines, r.lateness, floor)):
                out["checked"] += 1
                out["max_excess"] = max(out["max_excess"], best - mine)
                met_any[i] = met_any[i] or mine <= 0
                if mine < best - 1e-6:
                    out["violations"] += 1
                    if len(out["bad"]) < 5:
                        out["bad"].append(f"world {world_seed} seed {seed} {name}: {d.target} tick {d.tick:.0f}s "
                                          f"late {mine:.0f}s < bound {best:.0f}s")
        out["bound_late"] += sum(1 for b in floor if b > 0)
        out["bound_met"] += sum(1 for b in floor if b <= 0)
        out["met_by_some"] += sum(1 for b, m in zip(floor, met_any) if b <= 0 and m)
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--worlds", type=int, default=125)
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--first", type=int, default=1000, help="first world seed")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--planners", default=DEFAULT)
    ap.add_argument("--out", default="artifacts/bound-worlds")
    args = ap.parse_args()
    from orchestrator.simulator.worlds import generate_world

    planners = tuple(p for p in args.planners.split(",") if p)
    out = Path(args.out)
    paths = [(str(generate_world(s, out)), s) for s in range(args.first, args.first + args.worlds)]
    started = time.perf_counter()
    tot = {"pairs": 0, "runs": 0, "checked": 0, "violations": 0, "bound_late": 0, "bound_met": 0, "met_by_some": 0}
    max_excess = -float("inf")
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futs = [pool.submit(check_world, p, s, args.seeds, planners) for p, s in paths]
        for i, fut in enumerate(as_completed(futs), 1):
            r = fut.result()
            for k in tot:
                tot[k] += r[k]
            max_excess = max(max_excess, r["max_excess"])
            print(f"[{i}/{len(futs)} {time.perf_counter() - started:5.0f}s] {r['name']}: {r['pairs']} seeds, "
                  f"{r['runs']} runs, {r['checked']} deadlines, {r['violations']} beat the bound",
                  file=sys.stderr, flush=True)
            for e in r["bad"]:
                print("  VIOLATION " + e, file=sys.stderr)
    allowed = tot["bound_met"]
    print(f"bound check: {tot['pairs']} world-seed runs ({args.worlds} worlds x {args.seeds} seeds), "
          f"{tot['runs']} planner runs ({', '.join(planners)}), {tot['checked']} deadlines checked, "
          f"{tot['violations']} met earlier than the bound allows; max excess "
          f"{max_excess:+.0f} s (<= 0: never exceeded); the bound declares "
          f"{tot['bound_late']}/{tot['bound_late'] + allowed} deadlines unattainable; of those it allows, "
          f"{tot['met_by_some'] / allowed if allowed else 1:.1%} were met by some checked planner "
          f"({time.perf_counter() - started:.0f} s)")
    return 1 if tot["violations"] else 0


if __name__ == "__main__":
    sys.exit(main())
