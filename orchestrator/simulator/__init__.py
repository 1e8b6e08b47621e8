"""Discrete-event fleet simulator on virtual time (decision core only, no Dagster).

    from orchestrator.simulator import load_scenario, run_benchmark
    scenario = load_scenario("small")                 # a shipped name or a YAML path
    result = run_benchmark(scenario, "eager", seed=1)  # -> metrics.BenchResult
    result.as_json()                                   # the `orchestrator bench --json` object

Modules: ``scenario`` (YAML format, validation, realisation per seed), ``engine`` (event queue,
capacity pools, priority run queue, faults, costs), ``planners`` (cron, eager, sla, sla-llm,
oracle), ``metrics`` (SLA attainment, lateness, cost, incidents, unsafe actions), ``cli``.
"""

from orchestrator.simulator.scenario import ScenarioError, load_scenario, shipped_scenarios

__all__ = ["ScenarioError", "load_scenario", "run_benchmark", "shipped_scenarios"]


def run_benchmark(scenario, planner: str, seed: int = 0, **kwargs):
    from orchestrator.simulator.bench import run_benchmark as _run

    return _run(scenario, planner, seed=seed, **kwargs)
