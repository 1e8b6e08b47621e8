"""``orchestrator bench``: one planner on one scenario and seed, or every planner on generated worlds."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from orchestrator.simulator.planners import PLANNERS, PlannerUnavailable
from orchestrator.simulator.scenario import ScenarioError, load_scenario

TARGETS = {
    "small": "sla >= 0.98 x the bound's attainment",
    "peak-hour": "sla >= cron + 15 points of attainment at <= cron's cost",
    "bad-day": ">= 80% of recurring failures auto-resolved, 0 unsafe actions",
    "fleet-10k": "a simulated day in <= 60 s wall time",
    "learning-30d": "the weekly auto-resolved share of recurring failures rises and ends >= 80%, 0 unsafe actions",
}


@click.command("bench")
@click.option("--scenario", "scenario", help="A shipped scenario name or a scenario YAML file.")
@click.option("--worlds", type=click.IntRange(1, 100_000),
              help="Instead of a scenario: N generated worlds (seeds SEED..SEED+N-1), every planner on each.")
@click.option("--planner", "planners", type=click.Choice(PLANNERS), multiple=True,
              help="With --scenario: exactly one. With --worlds: any number (default: "
                   "cron, cron-tuned, eager, sla, bound).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--jobs", type=click.IntRange(1, 256), default=None,
              help="With --worlds: worker processes (default: one per core).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="artifacts/worlds", show_default=True,
              help="With --worlds: where the world files and report.{json,md} are written.")
@click.option("--json", "as_json", is_flag=True, help="Last stdout line: one JSON object with the figures.")
@click.option("--quiet", is_flag=True, help="No progress lines on stderr.")
@click.option("--days", type=click.IntRange(1, 366), default=30, show_default=True,
              help="With --scenario learning-30d: simulated days (one simulation per day, failure memory kept).")
def bench_command(scenario: str | None, worlds: int | None, planners: tuple[str, ...], seed: int,
                  jobs: int | None, out_dir: str, as_json: bool, quiet: bool, days: int = 30) -> None:
    """Simulate SCENARIO under PLANNER on virtual time and print SLA attainment, lateness, cost,
    auto-resolved failures, time to action, approvals and unsafe actions; or, with --worlds N,
    compare planners over N generated worlds."""
    progress = None if quiet else (lambda msg: click.echo(msg, err=True))
    if (scenario is None) == (worlds is None):
        raise click.UsageError("give exactly one of --scenario NAME|FILE or --worlds N")
    if worlds is not None:
        _bench_worlds(worlds, seed, planners, jobs, Path(out_dir), as_json, progress)
        return
    if len(planners) != 1:
        raise click.UsageError("with --scenario give exactly one --planner")
    planner = planners[0]
    from orchestrator.simulator.bench import run_benchmark

    try:
        sc = load_scenario(scenario)
        if sc.name == "learning-30d":  # the month-long learning loop (orchestrator/simulator/learning.py)
            _bench_learning(sc, planner, seed, days, as_json, progress)
            return
        if progress:
            progress(f"scenario {sc.name}: {len(sc.graph)} assets, {len(sc.connectors)} connectors, "
                     f"{len(sc.models)} models; planner {planner}, seed {seed}")
        result = run_benchmark(sc, planner, seed, progress=progress)
    except ScenarioError as exc:
        raise click.ClickException(str(exc)) from None
    except PlannerUnavailable as exc:
        raise click.ClickException(f"planner {planner!r} not available: {exc}") from None
    if not as_json:
        click.echo(f"{sc.name} / {planner} / seed {seed}" + (" (upper bound)" if result.bound else ""))
        for key, value in result.as_json().items():
            click.echo(f"  {key:24s} {value}")
        click.echo(f"  {'deadlines met':24s} {result.met}/{result.deadlines}")
        if not result.bound:
            click.echo(f"  {'incidents':24s} {result.incidents} (recurring {result.recurring_incidents}, "
                       f"auto-resolved {result.recurring_auto_resolved_share:.0%}; "
                       f"{result.person_incidents} need a person)")
        if result.unsafe_by_kind:
            click.echo(f"  {'unsafe by kind':24s} " + ", ".join(f"{k} {v}" for k, v in sorted(result.unsafe_by_kind.items())))
        click.echo(f"  {'wall time':24s} {result.wall_s:.2f} s")
        if sc.name in TARGETS:
            click.echo(f"  target: {TARGETS[sc.name]}")
        for line in result.unsafe_detail[:5]:
            click.echo(f"  unsafe: {line}")
        if result.note:
            click.echo(f"  note: {result.note}")
    else:
        sys.stdout.write(json.dumps(result.as_json(), sort_keys=False) + "\n")


def _bench_learning(sc, planner: str, seed: int, days: int, as_json: bool, progress) -> None:
    from orchestrator.simulator.learning import run_learning

    if planner != "sla":
        raise click.UsageError("the learning-30d scenario runs the sla planner (its failure memory learns)")
    report = run_learning(sc, days=days, seed=seed, progress=progress)
    if as_json:
        sys.stdout.write(json.dumps(report.as_json()) + "\n")
        return
    click.echo(report.format())
    click.echo(f"  target: {TARGETS['learning-30d']}")


def _bench_worlds(n: int, seed: int, planners: tuple[str, ...], jobs: int | None, out_dir: Path,
                  as_json: bool, progress) -> None:
    from orchestrator.simulator.world_bench import DEFAULT_PLANNERS, render_worlds, run_worlds

    chosen = tuple(dict.fromkeys(planners)) or DEFAULT_PLANNERS
    if "sla-llm" in chosen:
        from orchestrator.agent import LLMConfig

        if LLMConfig.from_env() is None:
            raise click.ClickException("planner 'sla-llm' not available: set OPENAI_API_KEY and/or OPENAI_BASE_URL")
    report = run_worlds(n, seed, chosen, out_dir=out_dir, jobs=jobs, progress=progress)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    text = render_worlds(report)
    (out_dir / "report.md").write_text(text + "\n", encoding="utf-8")
    if progress:
        progress(f"report: {out_dir / 'report.md'} and report.json")
    if as_json:
        slim = {k: v for k, v in report.items() if k != "per_world"}
        sys.stdout.write(json.dumps(slim, sort_keys=False) + "\n")
    else:
        click.echo(text)
