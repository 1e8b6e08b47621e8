"""What `sla` and `cron-tuned` ran for each deadline `sla` misses: a per-deadline timeline.

    .venv/bin/python benchmarks/deadline_timeline.py --only 107 204 [--out DIR] [--all]

For every generated world it runs `cron-tuned` (its best setting, found as ``orchestrator bench``
does) and `sla`, then for each deadline `sla` misses (``--all``: each deadline either misses)
prints, per planner, the steps on the target's lineage that ran between the window's opening
(minus an hour) and the tick: unit, run source, queued/start/end (local to the start, HH:MM),
the data time it landed and whether it was fresh for the window. The warehouse slots, the
sources' slots and the world's faults head each world, so a loss can be read as contention
(steps queued behind others), timing (started too late) or a fault.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _run(sc, seed, planner, res, deadlines):
    from orchestrator.simulator.bench import simulate_keeping

    return simulate_keeping(sc, seed, planner, res, deadlines)


def _steps(sim, units, lo, hi):
    out = []
    for run in sim.runs.values():
        for st in run.steps:
            if st.unit not in units or st.start is None:
                continue
            end = st.end if st.end is not None else sim.horizon
            if end < lo or st.start > hi:
                continue
            out.append((st.start, end, st.unit, run.source, run.created, st.data_time, st.state, run.priority))
    return sorted(out)


def world(path: str, seed: int, show_all: bool) -> None:
    from orchestrator.simulator.bench import resolve_policies
    from orchestrator.simulator.metrics import deadlines_of
    from orchestrator.simulator.planners.cron import CronPlanner
    from orchestrator.simulator.planners.cron_tuned import describe, tune
    from orchestrator.simulator.planners.sla import SLAPlanner
    from orchestrator.simulator.scenario import load_scenario

    sc = load_scenario(path)
    w = sc.realise(seed)
    res = resolve_policies(sc, w)
    deadlines = deadlines_of(res, sc.t0, sc.horizon_s)
    best, setting, _ = tune(sc, seed, lambda p: _run(sc, seed, p, res, deadlines)[0])
    ct, ct_sim = _run(sc, seed, CronPlanner(setting), res, deadlines)
    r, sim = _run(sc, seed, SLAPlanner(), res, deadlines)
    spec = sc.spec
    print(f"== world {seed}: sla {r.met}/{len(deadlines)} cron-tuned {ct.met}/{len(deadlines)}; "
          f"slots {spec.capacity.warehouse_slots}, per source {spec.capacity.per_source}; start {sim.dt(0):%Y-%m-%d %H:%M} "
          f"horizon {sc.horizon_s / 3600:.0f}h; cron-tuned: {describe(setting)}")
    for f in spec.faults:
        print(f"   fault {f.name} on {list(f.targets)[:3]}")
    for d, mine, theirs in zip(deadlines, r.lateness, ct.lateness):
        if mine <= 0 and not show_all:
            continue
        if mine <= 0 and theirs <= 0:
            continue
        lineage = set(sc.graph.upstream_closure(d.target)) | {d.target}
        units = {u for k in lineage if (u := sim.unit_of(k))}
        print(f"-- {d.target} ({d.policy}, {d.tier}) opens {sim.dt(d.opens):%m-%d %H:%M} tick {sim.dt(d.tick):%m-%d %H:%M}:"
              f" sla late {mine / 60:.0f} min, cron-tuned late {theirs / 60:.0f} min; lineage {len(units)} units")
        for name, s in (("cron-tuned", ct_sim), ("sla", sim)):
            print(f"   [{name}]")
            for start, end, unit, source, created, dt, state, prio in _steps(s, units, d.opens - 3600, d.tick):
                fresh = "fresh" if dt >= d.opens else "OLD"
                print(f"     {s.dt(created):%d %H:%M} q {s.dt(start):%d %H:%M}-{s.dt(end):%H:%M} {unit[:40]:40s} "
                      f"{source[:22]:22s} p{prio:<4} data {s.dt(dt):%d %H:%M} {fresh} {state}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", type=int, nargs="+", required=True)
    ap.add_argument("--out", default=None)
    ap.add_argument("--all", action="store_true", help="deadlines either planner misses")
    args = ap.parse_args()
    from orchestrator.simulator.worlds import generate_world

    out = Path(args.out or tempfile.mkdtemp(prefix="timeline-"))
    for s in args.only:
        world(str(generate_world(s, out)), s, args.all)
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
