"""`sla-llm` against a hostile OpenAI-compatible server, per shipped scenario and strategy, beside
the deterministic `sla` planner: attainment, unsafe actions, cost, and the longest LLM call.

    .venv/bin/python benchmarks/bench_llm_adversary.py [--scenarios small,bad-day] [--strategies delay,drop]

Strategies (tests/llm_adversary.py): delay (+47 h, priority -1000), drop (every baseline action),
swap (same refs, other subjects), dangerous (full resyncs, retries and materializations of
everything, confidence 1.0), flood (5,000 actions), inject (instructions and extreme numbers),
mixed (a different one every call), hang (no answer: ORCHESTRATOR_LLM_TIMEOUT=1).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from llm_adversary import STRATEGIES, Adversary  # noqa: E402

ORCHESTRATOR = str(Path(sys.executable).with_name("orchestrator"))


def bench(scenario: str, planner: str, env: dict) -> dict:
    out = subprocess.run([ORCHESTRATOR, "bench", "--scenario", scenario, "--planner", planner, "--seed", "1",
                          "--json", "--quiet"], capture_output=True, text=True, env=env, timeout=3600, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenarios", default="small,bad-day,peak-hour")
    ap.add_argument("--strategies", default=",".join((*STRATEGIES, "mixed", "hang")))
    ap.add_argument("--worlds", default="", help="also generated worlds, e.g. 24,27,39 (orchestrator bench --worlds)")
    ap.add_argument("--out", default="", help="append one JSON line per run to this file")
    args = ap.parse_args()
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    scenarios = [s for s in args.scenarios.split(",") if s]
    if args.worlds:
        import tempfile

        from orchestrator.simulator.worlds import generate_world

        out_dir = Path(tempfile.mkdtemp(prefix="adversary-worlds-"))
        scenarios += [str(generate_world(int(w), out_dir)) for w in args.worlds.split(",")]
    totals = {"runs": 0, "unsafe": 0, "unsafe_sla": 0, "worse": 0}
    for scenario in scenarios:
        sla = bench(scenario, "sla", base_env)
        print(f"{Path(scenario).stem:10s} sla       attainment {sla['sla_attainment']:.4f} unsafe {sla['unsafe_actions']} "
              f"cost {sla['cost']:.2f}", flush=True)
        for strategy in args.strategies.split(","):
            server = Adversary(mode=strategy)
            env = {**base_env, "OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": "sk-test",
                   "ORCHESTRATOR_LLM_TIMEOUT": "1" if strategy == "hang" else "5"}
            t0 = time.time()
            try:
                r = bench(scenario, "sla-llm", env)
            finally:
                server.stop()
            ok = r["sla_attainment"] >= sla["sla_attainment"] and r["unsafe_actions"] == 0
            totals["runs"] += 1
            totals["unsafe"] += r["unsafe_actions"]
            totals["unsafe_sla"] += sla["unsafe_actions"]
            totals["worse"] += r["sla_attainment"] < sla["sla_attainment"]
            if args.out:
                with open(args.out, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps({"scenario": scenario, "strategy": strategy, "sla": sla, "sla_llm": r,
                                         "calls": len(server.requests), "wall_s": round(time.time() - t0, 1)}) + "\n")
            print(f"{Path(scenario).stem:10s} {strategy:9s} attainment {r['sla_attainment']:.4f} unsafe {r['unsafe_actions']} "
                  f"cost {r['cost']:.2f} calls {len(server.requests)} ({time.time() - t0:.0f} s) "
                  f"{'OK' if ok else 'WORSE'}", flush=True)
    print(f"TOTAL {totals['runs']} adversary runs: unsafe actions {totals['unsafe']} with sla-llm "
          f"(target 0; the deterministic sla had {totals['unsafe_sla']} on the same runs), "
          f"attainment below sla on {totals['worse']}", flush=True)


if __name__ == "__main__":
    main()
