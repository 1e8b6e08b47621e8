"""Early warning on generated worlds with precursors: SLA attainment of the ``sla`` planner with
and without the health module's pre-emptive actions, unsafe actions and cost beside it.

    .venv/bin/python benchmarks/bench_early_warning.py [--worlds 20] [--seed 0] [--json]

Worlds from ``orchestrator.simulator.silent_worlds`` (seeded: announced maintenance windows,
rising warnings before an outage, latency creep, and decoys: rising warnings with nothing after);
the same world and seed for both runs.
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

from orchestrator.simulator.bench import run_benchmark  # noqa: E402
from orchestrator.simulator.silent_worlds import precursor_world  # noqa: E402


def run(n: int, seed0: int, out: Path) -> dict:
    rows = []
    for w in range(seed0, seed0 + n):
        path, events = precursor_world(w, out / str(w))
        r = {"world": w, "events": Counter(e["kind"] for e in events)}
        for ew in (True, False):
            res = run_benchmark(path, "sla", 0, early_warning=ew)
            tag = "ew" if ew else "no_ew"
            r[tag] = {"attainment": res.sla_attainment, "unsafe": res.unsafe_actions,
                      "cost": res.cost, "note": res.note}
        rows.append(r)
        print(f"world {w}: {dict(r['events'])} attainment {r['no_ew']['attainment']:.2f} -> {r['ew']['attainment']:.2f}"
              f" unsafe {r['no_ew']['unsafe']} -> {r['ew']['unsafe']}", flush=True)
    mean = lambda tag, f: sum(r[tag][f] for r in rows) / len(rows)  # noqa: E731
    by_kind: dict[str, list[float]] = {}
    for r in rows:
        for k in r["events"]:
            by_kind.setdefault(k, []).append(r["ew"]["attainment"] - r["no_ew"]["attainment"])
    return {
        "worlds": n, "attainment_ew": mean("ew", "attainment"), "attainment_no_ew": mean("no_ew", "attainment"),
        "gain": mean("ew", "attainment") - mean("no_ew", "attainment"),
        "unsafe_ew": sum(r["ew"]["unsafe"] for r in rows), "unsafe_no_ew": sum(r["no_ew"]["unsafe"] for r in rows),
        "cost_ew": mean("ew", "cost"), "cost_no_ew": mean("no_ew", "cost"),
        "better": sum(r["ew"]["attainment"] > r["no_ew"]["attainment"] + 1e-9 for r in rows),
        "worse": sum(r["ew"]["attainment"] < r["no_ew"]["attainment"] - 1e-9 for r in rows),
        "mean_gain_in_worlds_with": {k: sum(v) / len(v) for k, v in by_kind.items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--worlds", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        r = run(args.worlds, args.seed, Path(d))
    r["seconds"] = round(time.perf_counter() - t0, 1)
    print(f"{r['worlds']} worlds ({r['seconds']} s): SLA attainment without early warning {r['attainment_no_ew']:.3f}, "
          f"with {r['attainment_ew']:.3f} (gain {r['gain']:+.3f}; {r['better']} worlds better, {r['worse']} worse)")
    print(f"unsafe actions: {r['unsafe_no_ew']} -> {r['unsafe_ew']} (target: no extra); cost/world "
          f"{r['cost_no_ew']:.1f} -> {r['cost_ew']:.1f} USD")
    print("mean gain in worlds with: " + ", ".join(f"{k} {v:+.3f}" for k, v in sorted(r["mean_gain_in_worlds_with"].items())))
    if args.json:
        print(json.dumps(r, default=str))


if __name__ == "__main__":
    main()
