"""All planners x all shipped scenarios x seeds -> artifacts/bench/results.{json,md} + bench.png,
then every planner on generated worlds -> artifacts/bench/worlds.{json,md} + worlds.png (the
distribution of attainment per planner).

    python benchmarks/run_bench.py [--seeds 3] [--scenarios small,bad-day] [--planners cron,sla,bound]
                                   [--worlds 200] [--world-seed 0] [--jobs 2]

Progress on stderr. Planners that cannot run here (sla-llm without an endpoint) are listed as n/a.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orchestrator.simulator import load_scenario, shipped_scenarios  # noqa: E402
from orchestrator.simulator.bench import run_benchmark  # noqa: E402
from orchestrator.simulator.cli import TARGETS  # noqa: E402
from orchestrator.simulator.planners import PLANNERS, PlannerUnavailable  # noqa: E402

ORDER = ["small", "peak-hour", "bad-day", "fleet-10k"]


def mean(xs):
    xs = [x for x in xs if x is not None]
    return statistics.fmean(xs) if xs else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--scenarios", default=",".join(s for s in ORDER if s in shipped_scenarios()))
    ap.add_argument("--planners", default=",".join(p for p in PLANNERS if p != "oracle"))
    ap.add_argument("--out", default="artifacts/bench")
    ap.add_argument("--worlds", type=int, default=0, help="also compare planners on N generated worlds")
    ap.add_argument("--world-seed", type=int, default=0)
    ap.add_argument("--world-planners", default="cron,cron-tuned,eager,sla,bound")
    ap.add_argument("--jobs", type=int, default=None)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows, raw = [], []
    for name in args.scenarios.split(","):
        sc = load_scenario(name)
        for planner in args.planners.split(","):
            results, error = [], None
            for seed in range(args.seeds):
                t = time.perf_counter()
                try:
                    r = run_benchmark(sc, planner, seed)
                except PlannerUnavailable as exc:
                    error = str(exc)
                    break
                results.append(r)
                raw.append({"scenario": name, "planner": planner, "seed": seed, **r.as_json(),
                            "wall_s": r.wall_s, "bound": r.bound, "deadlines": r.deadlines,
                            "recurring_auto_resolved_share": r.recurring_auto_resolved_share, "note": r.note})
                print(f"[bench] {name:10s} {planner:8s} seed {seed}: attainment {r.sla_attainment:.3f} "
                      f"cost ${r.cost:,.2f} unsafe {r.unsafe_actions} ({time.perf_counter() - t:.1f}s)",
                      file=sys.stderr, flush=True)
            if error or not results:
                rows.append({"scenario": name, "planner": planner, "error": error or "no result"})
                print(f"[bench] {name:10s} {planner:8s} n/a: {error}", file=sys.stderr, flush=True)
                continue
            rows.append({
                "scenario": name, "planner": planner, "seeds": len(results),
                "sla_attainment": mean([r.sla_attainment for r in results]),
                "weighted_lateness": mean([r.weighted_lateness for r in results]),
                "cost": mean([r.cost for r in results]),
                "auto_resolved_share": mean([r.auto_resolved_share for r in results]),
                "recurring_auto_resolved_share": mean([r.recurring_auto_resolved_share for r in results]),
                "mean_time_to_action_s": mean([r.mean_time_to_action_s for r in results]),
                "approvals_requested": mean([r.approvals_requested for r in results]),
                "unsafe_actions": sum(r.unsafe_actions for r in results),
                "wall_s": max(r.wall_s for r in results),
                "bound": any(r.bound for r in results),
            })
    (out / "results.json").write_text(json.dumps({"rows": rows, "runs": raw}, indent=2))
    md = render(rows, args.seeds)
    (out / "results.md").write_text(md)
    print(md)
    chart(rows, out / "bench.png")
    print(f"wrote {out / 'results.md'}, {out / 'results.json'}, {out / 'bench.png'}", file=sys.stderr)
    if args.worlds:
        from orchestrator.simulator.world_bench import render_worlds, run_worlds

        report = run_worlds(args.worlds, args.world_seed, args.world_planners.split(","), out_dir=out / "worlds",
                            jobs=args.jobs, progress=lambda m: print(m, file=sys.stderr, flush=True))
        (out / "worlds.json").write_text(json.dumps(report, indent=2))
        text = render_worlds(report)
        (out / "worlds.md").write_text(text + "\n")
        print(text)
        distribution_chart(report, out / "worlds.png")
        print(f"wrote {out / 'worlds.md'}, {out / 'worlds.json'}, {out / 'worlds.png'}", file=sys.stderr)
    return 0


def _get(rows, sc, pl):
    return next((r for r in rows if r["scenario"] == sc and r["planner"] == pl and "error" not in r), None)


def verdicts(rows) -> list[str]:
    out = []
    sla, cron = (lambda s: _get(rows, s, "sla")), (lambda s: _get(rows, s, "cron"))
    orc = lambda s: _get(rows, s, "bound") or _get(rows, s, "oracle")  # noqa: E731
    if sla("small") and orc("small"):
        a, b = sla("small")["sla_attainment"], orc("small")["sla_attainment"]
        out.append(f"small: sla {a:.3f} vs 0.98 x bound {0.98 * b:.3f} -> {'MET' if a >= 0.98 * b else 'NOT MET'}")
    for name in dict.fromkeys(r["scenario"] for r in rows):
        tuned, s = _get(rows, name, "cron-tuned"), sla(name)
        if tuned and cron(name):
            ok = tuned["sla_attainment"] >= cron(name)["sla_attainment"]
            out.append(f"{name}: cron-tuned {tuned['sla_attainment']:.3f} >= cron as written "
                       f"{cron(name)['sla_attainment']:.3f} -> {'MET' if ok else 'NOT MET'}")
        if tuned and s:
            ok = s["sla_attainment"] >= tuned["sla_attainment"]
            out.append(f"{name}: sla {s['sla_attainment']:.3f} >= cron-tuned {tuned['sla_attainment']:.3f} -> "
                       f"{'MET' if ok else 'NOT MET'}")
    if sla("peak-hour") and cron("peak-hour"):
        s, c = sla("peak-hour"), cron("peak-hour")
        ok = s["sla_attainment"] >= c["sla_attainment"] + 0.15 and s["cost"] <= c["cost"]
        out.append(f"peak-hour: sla {s['sla_attainment']:.3f} vs cron+0.15 {c['sla_attainment'] + 0.15:.3f}, "
                   f"cost ${s['cost']:.2f} vs ${c['cost']:.2f} -> {'MET' if ok else 'NOT MET'}")
    if sla("bad-day"):
        s = sla("bad-day")
        ok = s["recurring_auto_resolved_share"] >= 0.8 and s["unsafe_actions"] == 0
        out.append(f"bad-day: recurring auto-resolved {s['recurring_auto_resolved_share']:.0%} (>= 80%), unsafe "
                   f"{s['unsafe_actions']} (0) -> {'MET' if ok else 'NOT MET'}")
    for r in rows:
        if r["scenario"] == "fleet-10k" and "error" not in r and not r.get("bound"):
            out.append(f"fleet-10k/{r['planner']}: {r['wall_s']:.1f} s per simulated day (<= 60 s) -> "
                       f"{'MET' if r['wall_s'] <= 60 else 'NOT MET'}")
    return out


def render(rows, seeds: int) -> str:
    lines = [f"## Simulator benchmark ({seeds} seeds, means)", "",
             "| scenario | planner | attainment | w. lateness (min) | cost (USD) | auto-resolved | recurring auto-resolved | time to action (s) | approvals | unsafe | wall (s) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['scenario']} | {r['planner']} | n/a: {r['error'][:90]} |||||||||")
            continue
        b = " (bound)" if r["bound"] else ""
        lines.append(
            f"| {r['scenario']} | {r['planner']}{b} | {r['sla_attainment']:.3f} | {r['weighted_lateness']:.1f} | "
            f"{r['cost']:.2f} | {r['auto_resolved_share']:.0%} | {r['recurring_auto_resolved_share']:.0%} | "
            f"{r['mean_time_to_action_s']:.0f} | {r['approvals_requested']:.1f} | {r['unsafe_actions']} | {r['wall_s']:.1f} |")
    lines += ["", "Targets:"] + [f"- {k}: {v}" for k, v in TARGETS.items()] + ["", "Verdicts:"]
    lines += [f"- {v}" for v in verdicts(rows)]
    return "\n".join(lines) + "\n"


def chart(rows, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing: no chart", file=sys.stderr)
        return
    ok = [r for r in rows if "error" not in r]
    scenarios = list(dict.fromkeys(r["scenario"] for r in ok))
    planners = list(dict.fromkeys(r["planner"] for r in ok))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    width = 0.8 / max(1, len(planners))
    for i, pl in enumerate(planners):
        xs, att, cost = [], [], []
        for j, sc in enumerate(scenarios):
            r = _get(ok, sc, pl)
            if r:
                xs.append(j + i * width)
                att.append(r["sla_attainment"])
                cost.append(r["cost"])
        axes[0].bar(xs, att, width, label=pl)
        axes[1].bar(xs, cost, width, label=pl)
    for ax, title in zip(axes, ("SLA attainment", "cost (USD / simulated day)")):
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(scenarios))], scenarios)
        ax.set_title(title)
    axes[0].set_ylim(0, 1.05)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def distribution_chart(report: dict, path: Path) -> None:
    """Attainment per world, one box per planner (the spread, not only the mean)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing: no chart", file=sys.stderr)
        return
    planners = list(report["planners"])
    data = [[r["sla_attainment"] for r in report["per_world"] if r["planner"] == p and "error" not in r]
            for p in planners]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.boxplot(data, showmeans=True)
    ax.set_xticks(range(1, len(planners) + 1), planners)
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("SLA attainment per world")
    ax.set_title(f"{report['worlds']} generated worlds (seed {report['seed']})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    raise SystemExit(main())
