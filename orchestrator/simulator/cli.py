"""``orchestrator bench``: one planner on one scenario and seed."""

from __future__ import annotations

import json
import sys

import click

from orchestrator.simulator.planners import PLANNERS, PlannerUnavailable
from orchestrator.simulator.scenario import ScenarioError, load_scenario

TARGETS = {
    "small": "sla >= 0.98 x oracle attainment",
    "peak-hour": "sla >= cron + 15 points of attainment at <= cron's cost",
    "bad-day": ">= 80% of recurring failures auto-resolved, 0 unsafe actions",
    "fleet-10k": "a simulated day in <= 60 s wall time",
}


@click.command("bench")
@click.option("--scenario", "scenario", required=True, help="A shipped scenario name or a scenario YAML file.")
@click.option("--planner", type=click.Choice(PLANNERS), required=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Last stdout line: one JSON object with the figures.")
@click.option("--quiet", is_flag=True, help="No progress lines on stderr.")
def bench_command(scenario: str, planner: str, seed: int, as_json: bool, quiet: bool) -> None:
    """Simulate SCENARIO under PLANNER on virtual time and print SLA attainment, lateness, cost,
    auto-resolved failures, time to action, approvals and unsafe actions."""
    from orchestrator.simulator.bench import run_benchmark

    progress = None if quiet else (lambda msg: click.echo(msg, err=True))
    try:
        sc = load_scenario(scenario)
        if progress:
            progress(f"scenario {sc.name}: {len(sc.graph)} assets, {len(sc.connectors)} connectors, "
                     f"{len(sc.models)} models; planner {planner}, seed {seed}")
        result = run_benchmark(sc, planner, seed, progress=progress)
    except ScenarioError as exc:
        raise click.ClickException(str(exc)) from None
    except PlannerUnavailable as exc:
        raise click.ClickException(f"planner {planner!r} not available: {exc}") from None
    if not as_json:
        click.echo(f"{sc.name} / {planner} / seed {seed}" + (" (relaxation bound)" if result.bound else ""))
        for key, value in result.as_json().items():
            click.echo(f"  {key:24s} {value}")
        click.echo(f"  {'deadlines met':24s} {result.met}/{result.deadlines}")
        click.echo(f"  {'incidents':24s} {result.incidents} (recurring {result.recurring_incidents}, "
                   f"auto-resolved {result.recurring_auto_resolved_share:.0%})")
        click.echo(f"  {'wall time':24s} {result.wall_s:.2f} s")
        if sc.name in TARGETS:
            click.echo(f"  target: {TARGETS[sc.name]}")
        for line in result.unsafe_detail[:5]:
            click.echo(f"  unsafe: {line}")
        if result.note:
            click.echo(f"  note: {result.note}")
    else:
        sys.stdout.write(json.dumps(result.as_json(), sort_keys=False) + "\n")
