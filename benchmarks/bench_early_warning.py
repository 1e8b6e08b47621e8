"""Early warning on generated worlds with precursors: SLA attainment of the ``sla`` planner with
and without the health module's pre-emptive actions, unsafe actions and cost beside it -- overall
and for each pre-emptive action kind (``orchestrator.health.early.KINDS``: ``earlier`` a sync
started earlier, ``pause`` pause ahead of a maintenance window and resume after it, ``off_peak``
move an at-risk connector's next sync to the off-peak window).

    .venv/bin/python benchmarks/bench_early_warning.py [--worlds 20] [--seed 0] [--off-peak] [--kinds] [--json]

Worlds from ``orchestrator.simulator.silent_worlds`` (seeded: announced maintenance windows,
rising warnings before an outage, latency creep, and decoys: rising warnings with nothing after);
the same world and seed for every run. ``--off-peak``: the worlds' policies also declare an
off-peak window (00:00-03:00 UTC), without which the off-peak move never applies. ``--kinds``:
each world is also run with every kind but one (``all - K``); a kind's gain is attainment(all) -
attainment(all - K). A kind that proposed nothing in a world's all-kinds run is not re-run there
(the decisions are deterministic: leaving it out changes nothing). Pre-emptive actions are
counted per kind from the planner's action ledger (proposed through the gate).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orchestrator.health.early import KINDS  # noqa: E402
from orchestrator.simulator.silent_worlds import precursor_world  # noqa: E402


def _kind(action) -> str | None:
    if action.cause != "early_warning":
        return None
    return {"materialize": "earlier", "pause_connector": "pause", "resume_connector": "pause",
            "defer": "off_peak"}.get(str(getattr(action.type, "value", action.type)))


def run_once(path: Path, early_warning) -> dict:
    """One ``sla`` run; ``early_warning``: True, False or the kinds allowed."""
    from orchestrator.simulator.bench import resolve_policies, simulate
    from orchestrator.simulator.metrics import deadlines_of
    from orchestrator.simulator.planners.sla import SLAPlanner
    from orchestrator.simulator.scenario import load_scenario

    sc = load_scenario(path)
    world = sc.realise(0)
    res = resolve_policies(sc, world)
    p = SLAPlanner(early_warning=early_warning)
    r = simulate(sc, 0, p, res, deadlines_of(res, sc.t0, sc.horizon_s))
    done = Counter(k for e in p.ledger.entries.values() if (k := _kind(e.action)) and e.status != "executing")
    tried = Counter(k for e in p.ledger.entries.values() if (k := _kind(e.action)))
    return {"attainment": r.sla_attainment, "unsafe": r.unsafe_actions, "cost": r.cost,
            "preempt": dict(tried), "preempt_done": dict(done)}


def run(n: int, seed0: int, out: Path, *, off_peak: bool = False, per_kind: bool = False) -> dict:
    rows = []
    for w in range(seed0, seed0 + n):
        path, events = precursor_world(w, out / str(w), off_peak=off_peak)
        r = {"world": w, "events": Counter(e["kind"] for e in events)}
        r["ew"], r["no_ew"] = run_once(path, True), run_once(path, False)
        if per_kind:
            used = set(r["ew"]["preempt"])
            for k in KINDS:
                # a kind that proposed nothing with every kind on changes nothing when left out
                # (the decisions are deterministic): that run is the all-kinds run
                r[f"without_{k}"] = run_once(path, frozenset(KINDS) - {k}) if k in used else r["ew"]
        rows.append(r)
        line = (f"world {w}: {dict(r['events'])} attainment {r['no_ew']['attainment']:.2f} -> {r['ew']['attainment']:.2f}"
                f" unsafe {r['no_ew']['unsafe']} -> {r['ew']['unsafe']} pre-emptive {r['ew']['preempt']}")
        if per_kind:
            line += " | without " + ", ".join(f"{k} {r[f'without_{k}']['attainment']:.2f}" for k in KINDS)
        print(line, flush=True)

    def mean(tag, f, rs=rows):
        return sum(r[tag][f] for r in rs) / len(rs) if rs else 0.0

    by_event: dict[str, list[float]] = {}
    for r in rows:
        for k in r["events"]:
            by_event.setdefault(k, []).append(r["ew"]["attainment"] - r["no_ew"]["attainment"])
    out_: dict = {
        "worlds": n, "off_peak_windows": off_peak,
        "attainment_ew": mean("ew", "attainment"), "attainment_no_ew": mean("no_ew", "attainment"),
        "gain": mean("ew", "attainment") - mean("no_ew", "attainment"),
        "unsafe_ew": sum(r["ew"]["unsafe"] for r in rows), "unsafe_no_ew": sum(r["no_ew"]["unsafe"] for r in rows),
        "cost_ew": mean("ew", "cost"), "cost_no_ew": mean("no_ew", "cost"),
        "better": sum(r["ew"]["attainment"] > r["no_ew"]["attainment"] + 1e-9 for r in rows),
        "worse": sum(r["ew"]["attainment"] < r["no_ew"]["attainment"] - 1e-9 for r in rows),
        "mean_gain_in_worlds_with": {k: sum(v) / len(v) for k, v in by_event.items()},
        "preempt_actions": dict(sum((Counter(r["ew"]["preempt"]) for r in rows), Counter())),
    }
    if per_kind:
        kinds = {}
        for k in KINDS:
            used = [r for r in rows if r["ew"]["preempt"].get(k)]
            kinds[k] = {
                "worlds_used": len(used),
                "actions": sum(r["ew"]["preempt"].get(k, 0) for r in rows),
                # gain of the kind: with every kind against every kind but this one
                "attainment_all": mean("ew", "attainment"), "attainment_without": mean(f"without_{k}", "attainment"),
                "gain": mean("ew", "attainment") - mean(f"without_{k}", "attainment"),
                "gain_in_worlds_used": mean("ew", "attainment", used) - mean(f"without_{k}", "attainment", used),
                "unsafe_all": sum(r["ew"]["unsafe"] for r in rows),
                "unsafe_without": sum(r[f"without_{k}"]["unsafe"] for r in rows),
                "cost_all": mean("ew", "cost"), "cost_without": mean(f"without_{k}", "cost"),
                "better": sum(r["ew"]["attainment"] > r[f"without_{k}"]["attainment"] + 1e-9 for r in rows),
                "worse": sum(r["ew"]["attainment"] < r[f"without_{k}"]["attainment"] - 1e-9 for r in rows),
            }
        out_["kinds"] = kinds
    return out_


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--worlds", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--off-peak", action="store_true", help="policies declare an off-peak window (00:00-03:00 UTC)")
    ap.add_argument("--kinds", action="store_true", help="also measure each pre-emptive action kind")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        r = run(args.worlds, args.seed, Path(d), off_peak=args.off_peak, per_kind=args.kinds)
    r["seconds"] = round(time.perf_counter() - t0, 1)
    print(f"{r['worlds']} worlds ({r['seconds']} s): SLA attainment without early warning {r['attainment_no_ew']:.3f}, "
          f"with {r['attainment_ew']:.3f} (gain {r['gain']:+.3f}; {r['better']} worlds better, {r['worse']} worse)")
    print(f"unsafe actions: {r['unsafe_no_ew']} -> {r['unsafe_ew']} (target: no extra); cost/world "
          f"{r['cost_no_ew']:.1f} -> {r['cost_ew']:.1f} USD")
    print("mean gain in worlds with: " + ", ".join(f"{k} {v:+.3f}" for k, v in sorted(r["mean_gain_in_worlds_with"].items())))
    print(f"pre-emptive actions proposed (all kinds on): {r['preempt_actions']}")
    for k, v in (r.get("kinds") or {}).items():
        print(f"kind {k}: {v['actions']} actions in {v['worlds_used']} worlds; attainment with all kinds "
              f"{v['attainment_all']:.3f}, without {k} {v['attainment_without']:.3f} (gain {v['gain']:+.3f}; "
              f"{v['gain_in_worlds_used']:+.3f} in the worlds using it; {v['better']} better, {v['worse']} worse); "
              f"unsafe all/without {v['unsafe_all']}/{v['unsafe_without']} "
              f"(none: {r['unsafe_no_ew']}); cost/world all {v['cost_all']:.1f} without {v['cost_without']:.1f} USD")
    if args.json:
        print(json.dumps(r, default=str))


if __name__ == "__main__":
    main()
