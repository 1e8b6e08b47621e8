"""One benchmark run: a scenario, a planner, a seed -> :class:`~orchestrator.simulator.metrics.BenchResult`."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from orchestrator.policies import DurationModel, load_policies, resolve
from orchestrator.simulator.engine import Simulation
from orchestrator.simulator.metrics import BenchResult, deadlines_of, lateness, result_from_sim
from orchestrator.simulator.planners import make_planner
from orchestrator.simulator.scenario import Scenario, ScenarioError, load_scenario


def resolve_policies(sc: Scenario, world, now=None):
    """The scenario's policies resolved over its graph (errors are scenario errors)."""
    res = resolve(load_policies(sc.policy_paths), sc.graph, DurationModel(world.history), now or sc.t0)
    if not res.ok:
        raise ScenarioError([str(e) for e in res.errors[:20]])
    return res


def run_benchmark(scenario: Scenario | str | Path, planner: str, seed: int = 0, *,
                  progress: Callable[[str], None] | None = None, **planner_kwargs) -> BenchResult:
    sc = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
    started = time.perf_counter()
    world = sc.realise(seed)
    res = resolve_policies(sc, world)
    deadlines = deadlines_of(res, sc.t0, sc.horizon_s)
    if planner in ("bound", "oracle"):
        from orchestrator.simulator.bound import solve_bound

        result = solve_bound(sc, world, res, deadlines, name=planner)
        result.wall_s = round(time.perf_counter() - started, 2)
        return result
    if planner == "cron-tuned":
        from orchestrator.simulator.planners.cron_tuned import describe, tune

        result, setting, n = tune(sc, seed, lambda p: simulate(sc, seed, p, res, deadlines))
        result.planner = "cron-tuned"
        result.note = f"best of {n} settings: {describe(setting)}"
        result.wall_s = round(time.perf_counter() - started, 2)
        return result
    p = make_planner(planner, **planner_kwargs)
    return simulate(sc, seed, p, res, deadlines, progress=progress, started=started)


def simulate(sc: Scenario, seed: int, p, res, deadlines, *, progress: Callable[[str], None] | None = None,
             started: float | None = None) -> BenchResult:
    """One planner object on one seed's world; figures from the finished simulation."""
    return simulate_keeping(sc, seed, p, res, deadlines, progress=progress, started=started)[0]


def simulate_keeping(sc: Scenario, seed: int, p, res, deadlines, *, progress: Callable[[str], None] | None = None,
                     started: float | None = None) -> tuple[BenchResult, Simulation]:
    """:func:`simulate`, and the finished simulation itself (its audit, runs and costs: what the
    loss studies and the world tests read)."""
    started = time.perf_counter() if started is None else started
    sim = Simulation(sc, seed, progress=progress)
    sim.set_resolution(res)
    for d in deadlines:
        sim.watch.setdefault(d.target, [])
    p.start(sim)
    sim.run()
    p.finish(sim)
    result = result_from_sim(sim, p.name, deadlines, time.perf_counter() - started)
    note = getattr(p, "note", "")
    if note:
        result.note = note
    if getattr(sim, "schema_changes", None) is not None:  # scripted schema changes: how they were handled
        s = sim.schema_changes.summary()
        result.note = (result.note + "; " if result.note else "") + (
            f"schema changes: {s['breaking']} breaking of {s['delivered']} delivered, detected within one sensor tick "
            f"{s['detected_within_one_tick']}/{s['delivered']}, fixed by an approved patch {s['fixed_by_patch']}, "
            f"by a person {s['fixed_by_person']}, unfixed {s['unfixed']}, failed attempts {s['failed_attempts']}, "
            f"patches applied without approval {s['applied_without_approval']}")
    result.lateness = [lateness(d, sim.watch.get(d.target, []), sim.horizon) for d in deadlines]
    return result, sim
