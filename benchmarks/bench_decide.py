"""Decision-cycle benchmark: ``orchestrator.core.decide.decide`` (no LLM) on a synthetic fleet on a
bad day (default 10,000 assets, 5% of connectors failed, 30% of dashboards at risk).

    .venv/bin/python benchmarks/bench_decide.py [--assets 10000] [--repeat 3] [--json]

Two figures: the cycle on the fleet's (synthetic) assessment -- plan -> ledger -> validate -> gate,
what the target "<= 1 s at 10,000 assets" measures -- and the whole cycle including ``assess``
(the assessment of the snapshot itself), with a ledger of 200 earlier actions.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orchestrator.core.decide import decide  # noqa: E402
from orchestrator.core.incidents import ActionLedger  # noqa: E402
from orchestrator.planning import CircuitBreaker  # noqa: E402
from orchestrator.planning.synthetic import fleet  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--assets", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--failure-rate", type=float, default=0.05)
    ap.add_argument("--at-risk-rate", type=float, default=0.30)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    f = fleet(args.assets, seed=1, failure_rate=args.failure_rate, at_risk_rate=args.at_risk_rate)
    # a ledger as a day of cycles leaves it: the actions of a first cycle, half pending, half done
    first = decide(f.snapshot, f.resolution, assessment=f.assessment, durations=f.durations, now=f.now,
                   breaker=CircuitBreaker())
    ledger = ActionLedger()
    for i, d in enumerate(first.decisions[:200]):
        ledger.record(d.action, "pending" if i % 2 else "succeeded", f.now)
    rows = {}
    for label, kw in (("plan+ledger+validate+gate", {"assessment": f.assessment}), ("assess+all", {})):
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            d = decide(f.snapshot, f.resolution, durations=f.durations, now=f.now, breaker=CircuitBreaker(),
                       ledger=ledger, **kw)
            times.append(time.perf_counter() - t0)
        rows[label] = {"median_s": round(statistics.median(times), 3), "max_s": round(max(times), 3),
                       **d.counts(), "actions": len(d.plan.actions)}
    at_risk = sum(1 for fa in f.assessment.freshness.values() if fa.status.value != "ok")
    out = {"assets": args.assets, "failures": len(f.assessment.failures), "at_risk": at_risk,
           "dashboards": len(f.assessment.freshness), **rows}
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{args.assets} assets, {out['failures']} failures, {at_risk}/{out['dashboards']} dashboards at risk")
        for label, r in rows.items():
            print(f"  decide ({label}): median {r['median_s']} s, max {r['max_s']} s; {r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
