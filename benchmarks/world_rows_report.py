"""The world report from the rows a run has written so far (``<out>/rows.jsonl``), for a long
``orchestrator bench --worlds N`` cut short: only worlds every planner finished are counted.

    python benchmarks/world_rows_report.py artifacts/worlds/rows.jsonl [--json] [--rebound]

``--rebound`` recomputes the bound's rows with the current code from the world files beside
``rows.jsonl`` (the bound takes well under a second a world; the planners are not re-run).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orchestrator.simulator.world_bench import render_worlds, summarise_worlds  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("rows")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--rebound", action="store_true")
    args = ap.parse_args()
    rows = [json.loads(line) for line in Path(args.rows).read_text(encoding="utf-8").splitlines() if line.strip()]
    if args.rebound:
        from orchestrator.simulator.world_bench import _run_one

        base = Path(args.rows).parent
        rows = [_run_one(str(base / f"world-{r['world']}.yaml"), r["world"], r["planner"])
                if r["planner"] in ("bound", "oracle") else r for r in rows]
    from orchestrator.simulator.world_bench import DEFAULT_PLANNERS

    seen = list(dict.fromkeys(r["planner"] for r in rows))
    planners = [p for p in DEFAULT_PLANNERS if p in seen] + [p for p in seen if p not in DEFAULT_PLANNERS]
    by_world: dict[int, set[str]] = {}
    for r in rows:
        by_world.setdefault(r["world"], set()).add(r["planner"])
    whole = sorted(w for w, ps in by_world.items() if ps == set(planners))
    keep = [r for r in rows if r["world"] in set(whole)]
    report = summarise_worlds(keep, planners)
    report.update(worlds=len(whole), seed=f"{min(whole)}..{max(whole)}" if whole else "-",
                  wall_s="(cut short)", jobs="?")
    if args.json:
        print(json.dumps({k: v for k, v in report.items() if k != "per_world"}))
    else:
        print(render_worlds(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
