"""``orchestrator bench --worlds N``: every planner on N generated worlds, in parallel.

Each (world, planner) pair is one task in a process pool (one worker per core by default); the
world files are written first (``artifacts/worlds/`` unless told otherwise) so any world can be
replayed alone with ``orchestrator bench --scenario FILE``. The report gives, per planner, the
mean and 10th-percentile attainment, cost, unsafe actions (independent audit) and approvals per
incident that needs a person; and, across planners, the share of worlds where ``sla`` >=
``cron-tuned``, the cost ratio, ``sla`` against the bound, and how often any planner beat the
bound on any single deadline (it must be 0).
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

DEFAULT_PLANNERS = ("cron", "cron-tuned", "eager", "sla", "bound")
WORLD_KEYS = ("world", "planner", "sla_attainment", "weighted_lateness", "cost", "unsafe_actions",
              "approvals_requested", "person_incidents", "incidents", "deadlines", "met", "wall_s")


def _run_one(path: str, seed: int, planner: str) -> dict:
    from orchestrator.simulator.bench import run_benchmark
    from orchestrator.simulator.bound import bound_lateness
    from orchestrator.simulator.bench import resolve_policies
    from orchestrator.simulator.metrics import deadlines_of
    from orchestrator.simulator.scenario import load_scenario

    sc = load_scenario(path)
    started, cpu = time.perf_counter(), time.process_time()
    try:
        r = run_benchmark(sc, planner, seed)
    except Exception as exc:  # noqa: BLE001 - one broken pair is reported, the rest go on
        return {"world": seed, "planner": planner, "error": f"{type(exc).__name__}: {exc}"}
    row = {k: getattr(r, k, None) for k in WORLD_KEYS if k not in ("world", "planner")}
    row.update(world=seed, planner=planner, wall_s=round(time.perf_counter() - started, 2),
               cpu_s=round(time.process_time() - cpu, 2),
               unsafe_by_kind=r.unsafe_by_kind, note=r.note[:200],
               approved_by_kind=getattr(r, "approved_by_kind", {}) or {},
               approved_over_budget_usd=getattr(r, "approved_over_budget_usd", 0.0) or 0.0)
    if planner not in ("bound", "oracle") and r.lateness:
        world = sc.realise(seed)
        deadlines = deadlines_of(resolve_policies(sc, world), sc.t0, sc.horizon_s)
        floor = bound_lateness(sc, world, deadlines)
        row["beats_bound"] = sum(1 for mine, best in zip(r.lateness, floor) if mine < best - 1e-6)
    spec = sc.spec
    row["contention_or_faults"] = bool(spec.faults) or spec.capacity.warehouse_slots <= 3
    return row


def percentile(xs: Sequence[float], q: float) -> float:
    if not xs:
        return math.nan
    xs = sorted(xs)
    k = (len(xs) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def run_worlds(n: int, seed: int, planners: Sequence[str] = DEFAULT_PLANNERS, *, out_dir: Path,
               jobs: int | None = None, progress: Callable[[str], None] | None = None) -> dict:
    from orchestrator.simulator.worlds import generate_world

    say = progress or (lambda _msg: None)
    seeds = list(range(seed, seed + n))
    paths = {s: str(generate_world(s, out_dir)) for s in seeds}
    say(f"{n} worlds written under {out_dir}; planners: {', '.join(planners)}")
    tasks = [(paths[s], s, p) for s in seeds for p in planners]
    # the slowest planner first, so the pool does not end on one long tail
    # world by world (a run cut short leaves whole worlds in rows.jsonl), the slowest planner of
    # each world first so the pool does not end on one long tail
    tasks.sort(key=lambda t: (t[1], t[2] != "sla", t[2] != "sla-llm", t[2] != "cron-tuned"))
    rows_file = out_dir / "rows.jsonl"
    rows_file.write_text("", encoding="utf-8")
    jobs = max(1, jobs or os.cpu_count() or 1)
    rows: list[dict] = []
    started = time.perf_counter()
    if jobs == 1:
        for i, t in enumerate(tasks, 1):
            rows.append(_run_one(*t))
            _append(rows_file, rows[-1])
            say(_progress_line(i, len(tasks), rows[-1], started))
    else:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = [pool.submit(_run_one, *t) for t in tasks]
            for i, fut in enumerate(as_completed(futures), 1):
                rows.append(fut.result())
                _append(rows_file, rows[-1])
                say(_progress_line(i, len(tasks), rows[-1], started))
    rows.sort(key=lambda r: (r["world"], list(planners).index(r["planner"])))
    report = summarise_worlds(rows, planners)
    report.update(worlds=n, seed=seed, wall_s=round(time.perf_counter() - started, 1), jobs=jobs,
                  # CPU the pairs took (the wall time on an idle box is about this / jobs)
                  cpu_s=round(sum(r.get("cpu_s") or 0.0 for r in rows), 1))
    try:
        report["load_average"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    return report


def _append(path: Path, row: dict) -> None:
    """One finished (world, planner) pair, as it lands (a long run cut short keeps its rows)."""
    import json

    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(row, default=str) + "\n")


def _progress_line(i: int, total: int, row: dict, started: float) -> str:
    what = row.get("error") or f"attainment {row['sla_attainment']:.2f}, {row['wall_s']:.1f}s"
    return f"[{i}/{total} {time.perf_counter() - started:5.0f}s] world {row['world']} {row['planner']}: {what}"


def summarise_worlds(rows: list[dict], planners: Sequence[str]) -> dict:
    ok = [r for r in rows if "error" not in r]
    by = {p: {r["world"]: r for r in ok if r["planner"] == p} for p in planners}
    out: dict = {"planners": {}, "errors": [f"world {r['world']} {r['planner']}: {r['error']}"
                                            for r in rows if "error" in r]}
    for p in planners:
        rs = list(by[p].values())
        if not rs:
            continue
        att = [r["sla_attainment"] for r in rs]
        person = sum(r.get("person_incidents") or 0 for r in rs)
        out["planners"][p] = {
            "worlds": len(rs),
            "mean_attainment": round(statistics.fmean(att), 4),
            "p10_attainment": round(percentile(att, 0.10), 4),
            "mean_weighted_lateness": round(statistics.fmean(r["weighted_lateness"] for r in rs), 2),
            "mean_cost": round(statistics.fmean(r["cost"] for r in rs), 2),
            "unsafe_actions": sum(r["unsafe_actions"] for r in rs),
            # over-budget spend / blackout steps a person approved (not unsafe)
            "approved_over_budget_usd": round(sum(r.get("approved_over_budget_usd") or 0.0 for r in rs), 2),
            "approved_blackout_steps": sum((r.get("approved_by_kind") or {}).get("blackout", 0) for r in rs),
            "approvals_requested": sum(r["approvals_requested"] for r in rs),
            "person_incidents": person,
            "approvals_per_person_incident": round(sum(r["approvals_requested"] for r in rs) / person, 3)
            if person else None,
            "deadlines_beating_bound": sum(r.get("beats_bound", 0) for r in rs),
            "mean_wall_s": round(statistics.fmean(r["wall_s"] for r in rs), 2),
        }
    bound = by.get("bound") or by.get("oracle") or {}
    exceeded = [f"world {w} {p}" for p in planners if p not in ("bound", "oracle")
                for w, r in by[p].items() if (w in bound and r["sla_attainment"] > bound[w]["sla_attainment"] + 1e-9)
                or r.get("beats_bound", 0)]
    out["bound_exceeded"] = len(exceeded)
    out["bound_exceeded_detail"] = exceeded[:20]
    for a, b in (("sla", "cron-tuned"), ("sla", "cron"), ("cron-tuned", "cron")):
        common = sorted(set(by.get(a, {})) & set(by.get(b, {})))
        if not common:
            continue
        key = f"{a}_vs_{b}".replace("-", "_")
        ge = sum(1 for w in common if by[a][w]["sla_attainment"] >= by[b][w]["sla_attainment"] - 1e-9)
        cost_a = sum(by[a][w]["cost"] for w in common)
        cost_b = sum(by[b][w]["cost"] for w in common)
        hard = [w for w in common if by[a][w].get("contention_or_faults")]
        out[key] = {
            "worlds": len(common),
            "share_ge": round(ge / len(common), 4),
            "mean_attainment_diff": round(statistics.fmean(by[a][w]["sla_attainment"] - by[b][w]["sla_attainment"]
                                                           for w in common), 4),
            "mean_attainment_diff_contention_or_faults": round(statistics.fmean(
                by[a][w]["sla_attainment"] - by[b][w]["sla_attainment"] for w in hard), 4) if hard else None,
            "cost_ratio": round(cost_a / cost_b, 4) if cost_b else None,
        }
    if bound:
        # how informative the bound is: worlds it declares lateness on (the world forces it), and
        # the gap to the best planner on each world (the optimum lies between the two)
        out["bound_worlds_below_1"] = sum(1 for r in bound.values() if r["sla_attainment"] < 1 - 1e-9)
        players = [p for p in planners if p not in ("bound", "oracle")]
        best = {w: max(by[p][w]["sla_attainment"] for p in players if w in by[p])
                for w in bound if any(w in by[p] for p in players)}
        if best:
            out["best_planner_mean_attainment"] = round(statistics.fmean(best.values()), 4)
            out["bound_minus_best_planner"] = round(statistics.fmean(bound[w]["sla_attainment"] - best[w]
                                                                     for w in best), 4)
            out["bound_equals_best_planner_share"] = round(sum(
                1 for w in best if bound[w]["sla_attainment"] <= best[w] + 1e-9) / len(best), 4)
    if "sla" in by and bound:
        common = [w for w in by["sla"] if w in bound and bound[w]["sla_attainment"] > 0]
        if common:
            out["sla_over_bound"] = round(statistics.fmean(by["sla"][w]["sla_attainment"] / bound[w]["sla_attainment"]
                                                           for w in common), 4)
    out["per_world"] = [{k: r.get(k) for k in (*WORLD_KEYS, "error", "beats_bound", "contention_or_faults", "cpu_s")
                         if k in r} for r in rows]
    return out


def render_worlds(report: dict) -> str:
    lines = [f"{report.get('worlds')} generated worlds from seed {report.get('seed')} "
             f"({report.get('wall_s')} s on {report.get('jobs')} workers"
             + (f", {report['cpu_s']} s of CPU" if report.get("cpu_s") else "")
             + (f", load average {report['load_average'][0]}" if report.get("load_average") else "") + ")", "",
             "| planner | worlds | mean attainment | p10 attainment | mean cost | unsafe | approvals / person incident |",
             "|---|---|---|---|---|---|---|"]
    for p, s in report["planners"].items():
        apr = s["approvals_per_person_incident"]
        lines.append(f"| {p} | {s['worlds']} | {s['mean_attainment']:.3f} | {s['p10_attainment']:.3f} | "
                     f"${s['mean_cost']:,.2f} | {s['unsafe_actions']} | {'-' if apr is None else f'{apr:.2f}'} |")
    lines.append("")
    approved = [f"{p} ${s.get('approved_over_budget_usd', 0.0):,.2f} over budget, {s.get('approved_blackout_steps', 0)} "
                f"blackout steps" for p, s in report["planners"].items()
                if s.get("approved_over_budget_usd") or s.get("approved_blackout_steps")]
    if approved:  # approved exceptions: not unsafe, reported apart
        lines.append("- approved by a person (not unsafe): " + "; ".join(approved))
    for key in ("sla_vs_cron_tuned", "sla_vs_cron", "cron_tuned_vs_cron"):
        c = report.get(key)
        if c:
            a, b = (x.replace("_", "-") for x in key.split("_vs_"))
            hard = c["mean_attainment_diff_contention_or_faults"]
            lines.append(f"- {a} >= {b} on {c['share_ge']:.1%} of {c['worlds']} worlds; mean attainment "
                         f"difference {c['mean_attainment_diff']:+.3f}"
                         + (f" ({hard:+.3f} with contention or faults)" if hard is not None else "")
                         + (f"; cost ratio {c['cost_ratio']:.2f}" if c["cost_ratio"] is not None else ""))
    if "sla_over_bound" in report:
        lines.append(f"- sla / bound attainment: {report['sla_over_bound']:.3f} on average")
    if "bound_worlds_below_1" in report:
        lines.append(f"- the bound is below 1.0 (the world forces lateness) on {report['bound_worlds_below_1']} "
                     f"of {report['planners'].get('bound', report['planners'].get('oracle', {})).get('worlds', '?')} "
                     "worlds")
    if "best_planner_mean_attainment" in report:
        lines.append(f"- best planner per world: mean attainment {report['best_planner_mean_attainment']:.3f}; "
                     f"bound - best {report['bound_minus_best_planner']:+.3f} on average, equal on "
                     f"{report['bound_equals_best_planner_share']:.1%} of worlds (the optimum lies between)")
    lines.append(f"- bound exceeded (attainment or any single deadline): {report['bound_exceeded']}")
    for e in report.get("errors", [])[:10]:
        lines.append(f"- error: {e}")
    return "\n".join(lines)
