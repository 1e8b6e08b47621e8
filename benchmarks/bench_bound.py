"""Is the bound valid? Many (world, seed, planner) runs, each deadline checked against it.

    python benchmarks/bench_bound.py [--worlds 60] [--seeds 6] [--jobs 2]

For every generated world and seed, the baselines (cron as written, eager), cron with the
tuned-baseline candidate settings, and the random adversary planner (tests/sim_adversary.py)
are simulated; a run "beats the bound" when any single deadline is met earlier (less late) than
the bound allows. Prints the number of runs, deadlines checked and violations (target: 0 over
>= 1,000 runs), with a progress line per world.
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


def check_world(path: str, world_seed: int, seeds: int) -> tuple[int, int, int, list[str], str]:
    from sim_adversary import RandomPlanner

    from orchestrator.simulator.bench import resolve_policies, simulate
    from orchestrator.simulator.bound import bound_lateness
    from orchestrator.simulator.metrics import deadlines_of
    from orchestrator.simulator.planners import make_planner
    from orchestrator.simulator.planners.cron import CronPlanner
    from orchestrator.simulator.planners.cron_tuned import candidates
    from orchestrator.simulator.scenario import load_scenario

    sc = load_scenario(path)
    runs = checked = 0
    bad: list[str] = []
    for seed in range(seeds):
        world = sc.realise(seed)
        res = resolve_policies(sc, world)
        deadlines = deadlines_of(res, sc.t0, sc.horizon_s)
        floor = bound_lateness(sc, world, deadlines)
        cands = candidates(sc, res)
        planners = [make_planner("cron"), make_planner("eager"), RandomPlanner(seed, 900.0),
                    RandomPlanner(seed + 1, 3600.0, native=False)]
        if cands:
            planners.append(CronPlanner(cands[(world_seed + seed) % len(cands)]))
        for p in planners:
            r = simulate(sc, seed, p, res, deadlines)
            runs += 1
            for d, mine, best in zip(deadlines, r.lateness, floor):
                checked += 1
                if mine < best - 1e-6:
                    bad.append(f"world {world_seed} seed {seed} {p.name}: {d.target} tick {d.tick:.0f}s "
                               f"late {mine:.0f}s < bound {best:.0f}s")
    return runs, checked, len(bad), bad[:5], sc.name


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--worlds", type=int, default=60)
    ap.add_argument("--seeds", type=int, default=6)
    ap.add_argument("--first", type=int, default=1000, help="first world seed")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", default="artifacts/bound-worlds")
    args = ap.parse_args()
    from orchestrator.simulator.worlds import generate_world

    out = Path(args.out)
    paths = [(str(generate_world(s, out)), s) for s in range(args.first, args.first + args.worlds)]
    started = time.perf_counter()
    runs = checked = violations = 0
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futs = [pool.submit(check_world, p, s, args.seeds) for p, s in paths]
        for i, fut in enumerate(as_completed(futs), 1):
            r, c, v, examples, name = fut.result()
            runs, checked, violations = runs + r, checked + c, violations + v
            print(f"[{i}/{len(futs)} {time.perf_counter() - started:5.0f}s] {name}: {r} runs, {c} deadlines, "
                  f"{v} beat the bound", file=sys.stderr, flush=True)
            for e in examples:
                print("  VIOLATION " + e, file=sys.stderr)
    print(f"bound check: {runs} world-seed-planner runs over {args.worlds} worlds x {args.seeds} seeds, "
          f"{checked} deadlines checked, {violations} met earlier than the bound allows "
          f"({time.perf_counter() - started:.0f} s)")
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
