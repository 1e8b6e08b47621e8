"""Planner benchmark: one planning cycle (deterministic part: plan + validate + gate) at 1,000 and
10,000 assets, time and memory; the LLM context at 1,000 assets, tokens.

    .venv/bin/python benchmarks/bench_planner.py [--sizes 1000 10000] [--repeat 5]
    .venv/bin/python benchmarks/bench_planner.py --at-risk-rate 1 --failure-rate 0.2   # stress

Targets: <= 1 s per cycle at 10,000 assets; <= 4,000 context tokens at 1,000 assets. Prints the
growth exponent of the cycle time between consecutive sizes.
Tokens are a conservative estimate (orchestrator.planning.estimate_tokens; no tokenizer download).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orchestrator.planning import build_context, gate, plan, validate  # noqa: E402
from orchestrator.planning.synthetic import fleet  # noqa: E402


def cycle(f):
    p = plan(f.snapshot, f.assessment, f.resolution, f.durations, now=f.now)
    accepted, rejected = validate(p, f.snapshot, f.resolution, now=f.now)
    decisions = gate(accepted, f.snapshot, f.assessment, f.resolution, now=f.now)
    return p, accepted, rejected, decisions


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--at-risk-rate", type=float, default=0.05, help="share of dashboards at risk")
    ap.add_argument("--failure-rate", type=float, default=0.02, help="share of connectors failing")
    args = ap.parse_args(argv)
    rows = []
    for n in args.sizes:
        f = fleet(n, seed=1, at_risk_rate=args.at_risk_rate, failure_rate=args.failure_rate)
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            p, acc, rej, dec = cycle(f)
            times.append(time.perf_counter() - t0)
        tracemalloc.start()
        cycle(f)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        ctx, tokens = build_context(p, f.snapshot, f.assessment, f.resolution, f.durations)
        rows.append({
            "assets": n, "at_risk": sum(1 for fa in f.assessment.freshness.values() if fa.status.value != "ok"),
            "failures": len(f.assessment.failures), "actions": len(p.actions), "rejected": len(rej),
            "cycle_median_s": round(statistics.median(times), 4), "cycle_max_s": round(max(times), 4),
            "peak_mem_mb": round(peak / 1e6, 2), "context_tokens": tokens,
            "context_chars": len(json.dumps(ctx, separators=(",", ":"))),
        })
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(f"{'assets':>7} {'at risk':>7} {'fails':>5} {'actions':>7} {'cycle median':>12} {'max':>8} "
              f"{'peak MB':>8} {'ctx tokens':>10}")
        for r in rows:
            print(f"{r['assets']:>7} {r['at_risk']:>7} {r['failures']:>5} {r['actions']:>7} "
                  f"{r['cycle_median_s']:>11.3f}s {r['cycle_max_s']:>7.3f}s {r['peak_mem_mb']:>8.2f} "
                  f"{r['context_tokens']:>10}")
    for a, b in zip(rows, rows[1:]):  # log(t2/t1) / log(n2/n1) between consecutive sizes
        exp = math.log(b["cycle_median_s"] / a["cycle_median_s"]) / math.log(b["assets"] / a["assets"])
        print(f"growth exponent {a['assets']} -> {b['assets']} assets, cycle median: {exp:.2f}")
    ok = all(r["cycle_max_s"] <= 1.0 for r in rows if r["assets"] >= 10000) and all(
        r["context_tokens"] <= 4000 for r in rows if r["assets"] == 1000)
    print("targets (<= 1 s at 10k, <= 4,000 tokens at 1k):", "met" if ok else "MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
