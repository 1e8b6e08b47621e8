"""`sla-llm` against a hostile OpenAI-compatible server, per scenario and strategy, beside the
deterministic `sla` planner: attainment, unsafe actions, cost, and the wall time of every agent
call (the whole review: context, answer, repair; and the context's share, CPU work no server
controls) against 3 x ORCHESTRATOR_LLM_TIMEOUT.

    .venv/bin/python benchmarks/bench_llm_adversary.py                      # every shipped scenario
    .venv/bin/python benchmarks/bench_llm_adversary.py --scenarios small --strategies delay,hang
    .venv/bin/python benchmarks/bench_llm_adversary.py --scenarios '' --worlds 24,39

Runs in this process (``orchestrator.simulator.bench``), so that each review is timed from outside
the agent. Strategies (tests/llm_adversary.py): delay (+47 h, priority -1000), drop (every
baseline action), swap (same refs, other subjects), dangerous (full resyncs, retries and
materializations of everything, pauses, confidence 1.0), flood (5,000 actions: past the byte cap),
flood_small (1,200 actions under the byte cap: the envelope's action cap), inject (instructions and
extreme numbers), mixed (a different one every call); transport attacks with
ORCHESTRATOR_LLM_TIMEOUT=1: hang (no answer), drip (one byte every 0.5 s), huge (10 MB), http429,
http500.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from llm_adversary import STRATEGIES, Adversary  # noqa: E402

SHIPPED = ("small", "bad-day", "peak-hour", "silent", "schema-change", "learning-30d", "fleet-10k")
TRANSPORT = ("hang", "drip", "huge", "http429", "http500")
FAST_TIMEOUT = 1.0  # transport attacks: every tick waits for the deadline
ANSWER_TIMEOUT = 5.0


def run(scenario, planner: str, env: dict | None = None, seed: int = 1, horizon_h: float | None = None):
    """One simulation; with ``env`` (the LLM endpoint), every review is timed. Returns
    (BenchResult, [review wall seconds])."""
    from orchestrator.simulator.bench import deadlines_of, resolve_policies, simulate
    from orchestrator.simulator.planners.sla import SLAPlanner
    from orchestrator.simulator.scenario import load_scenario

    saved = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        sc = load_scenario(scenario)
        if horizon_h:  # a shorter day (both planners alike), for the largest scenarios
            from datetime import timedelta

            sc.spec = sc.spec.model_copy(update={"horizon": timedelta(hours=horizon_h)})
        world = sc.realise(seed)
        res = resolve_policies(sc, world)
        deadlines = deadlines_of(res, sc.t0, sc.horizon_s)
        p = SLAPlanner(llm=planner == "sla-llm")
        durations: list[tuple[float, float]] = []  # (whole review, of which building the context)
        if p.llm:
            import orchestrator.planning as planning

            inner, build = p._reviewer, planning.build_context
            spent: list[float] = []

            def timed_context(*a, **kw):
                t0 = time.monotonic()
                try:
                    return build(*a, **kw)
                finally:
                    spent.append(time.monotonic() - t0)

            def timed(*a, **kw):
                t0 = time.monotonic()
                spent.clear()
                try:
                    return inner(*a, **kw)
                finally:
                    durations.append((time.monotonic() - t0, sum(spent)))

            p._reviewer, planning.build_context = timed, timed_context
        try:
            result = simulate(sc, seed, p, res, deadlines)
        finally:
            if p.llm:
                planning.build_context = build
        return result, durations, p
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenarios", default=",".join(SHIPPED))
    ap.add_argument("--strategies", default=",".join((*STRATEGIES, "mixed", *TRANSPORT)))
    ap.add_argument("--worlds", default="", help="also generated worlds, e.g. 24,27,39 (orchestrator bench --worlds)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--horizon-h", type=float, default=None, help="simulate this many hours (default: the scenario's)")
    ap.add_argument("--out", default="", help="append one JSON line per run to this file")
    args = ap.parse_args()
    for k in [k for k in os.environ if k.startswith("OPENAI_")]:
        os.environ.pop(k)
    scenarios = [s for s in args.scenarios.split(",") if s]
    if args.worlds:
        import tempfile

        from orchestrator.simulator.worlds import generate_world

        out_dir = Path(tempfile.mkdtemp(prefix="adversary-worlds-"))
        scenarios += [str(generate_world(int(w), out_dir)) for w in args.worlds.split(",")]
    totals = {"runs": 0, "unsafe": 0, "unsafe_sla": 0, "worse": 0, "over": 0, "reviews": 0, "max_ratio": 0.0}
    for scenario in scenarios:
        name = Path(scenario).stem
        t0 = time.time()
        sla, _, _ = run(scenario, "sla", seed=args.seed, horizon_h=args.horizon_h)
        print(f"{name:10s} sla         attainment {sla.sla_attainment:.4f} unsafe {sla.unsafe_actions} "
              f"cost {sla.cost:.2f} ({time.time() - t0:.0f} s)", flush=True)
        for strategy in [s for s in args.strategies.split(",") if s]:
            timeout = FAST_TIMEOUT if strategy in TRANSPORT else ANSWER_TIMEOUT
            server = Adversary(mode=strategy)
            env = {"OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": "sk-adversary-test",
                   "ORCHESTRATOR_LLM_TIMEOUT": str(timeout)}
            t0 = time.time()
            try:
                r, durations, p = run(scenario, "sla-llm", env, seed=args.seed, horizon_h=args.horizon_h)
            finally:
                server.stop()
            bound = 3 * timeout
            longest = max((d for d, _ in durations), default=0.0)
            context = max((c for _, c in durations), default=0.0)
            waited = max((d - c for d, c in durations), default=0.0)  # the agent's own part
            over = sum(d > bound for d, _ in durations)
            ok = r.sla_attainment >= sla.sla_attainment and r.unsafe_actions == 0 and over == 0
            totals["runs"] += 1
            totals["unsafe"] += r.unsafe_actions
            totals["unsafe_sla"] += sla.unsafe_actions
            totals["worse"] += r.sla_attainment < sla.sla_attainment
            totals["over"] += over
            totals["reviews"] += len(durations)
            totals["max_ratio"] = max(totals["max_ratio"], longest / bound)
            row = {"scenario": name, "strategy": strategy, "timeout_s": timeout,
                   "sla": {"attainment": sla.sla_attainment, "unsafe": sla.unsafe_actions, "cost": sla.cost},
                   "sla_llm": {"attainment": r.sla_attainment, "unsafe": r.unsafe_actions, "cost": r.cost,
                               "unsafe_by_kind": r.unsafe_by_kind},
                   "requests": len(server.requests), "reviews": len(durations), "fallbacks": p.llm_fallbacks,
                   "review_s": {"max": round(longest, 3),
                                "median": round(statistics.median(d for d, _ in durations), 3) if durations else None,
                                "max_context": round(context, 3), "max_without_context": round(waited, 3),
                                "bound": bound, "over_bound": over},
                   "wall_s": round(time.time() - t0, 1)}
            if args.out:
                with open(args.out, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(row) + "\n")
            print(f"{name:10s} {strategy:11s} attainment {r.sla_attainment:.4f} unsafe {r.unsafe_actions} "
                  f"cost {r.cost:.2f} reviews {len(durations)} (fallbacks {p.llm_fallbacks}) "
                  f"longest {longest:.2f} s (context {context:.2f} s, without {waited:.2f} s) / bound {bound:.0f} s "
                  f"({time.time() - t0:.0f} s) "
                  f"{'OK' if ok else 'FAIL'}", flush=True)
    print(f"TOTAL {totals['runs']} adversary runs, {totals['reviews']} reviews: unsafe actions {totals['unsafe']} "
          f"with sla-llm (target 0; sla had {totals['unsafe_sla']} on the same runs), attainment below sla on "
          f"{totals['worse']}, reviews over 3 x timeout {totals['over']} (longest {totals['max_ratio']:.2f} of the "
          "bound)", flush=True)


if __name__ == "__main__":
    main()
