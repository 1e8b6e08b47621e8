"""What `sla` asks a person for, per generated world: every approval request, by kind.

    .venv/bin/python benchmarks/approvals_by_incident.py --worlds 20 --seed 100 [--only 101,107] [--json]

Counts as the benchmark does (``approvals_requested`` / ``person_incidents``, ``world_bench``):
every request the simulation sends to a person (``Simulation.request_approval``; scripted schema
changes' requests too), over the incidents whose cause only a person can clear. Each request is
classed by what it asks for:

* ``standing``: a standing approval of a policy's routine refreshes;
* ``extension``: a budget extension;
* ``incident``: an action on a subject with a failure incident open (pause, retry, resync...);
* ``over_budget``: other work held as over budget;
* ``blackout``: other work held for a blackout window;
* ``routine``: other work (not pre-authorised, risk, confidence) -- typically freshness work.

It also prints, per incident that needs a person, how many requests named its subject, and the
unsafe events the audit found (with their spend).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

KINDS = ("standing", "extension", "incident", "over_budget", "blackout", "routine")


def _classify(action, reason: str, open_units: set[str], units) -> str:
    from orchestrator.core.standing import STANDING

    if action.type == STANDING:
        from orchestrator.core.standing import BUDGET_PREFIX

        return "extension" if (action.cause or "").startswith(BUDGET_PREFIX) else "standing"
    if set(units) & open_units:
        return "incident"
    if reason.startswith("over budget"):
        return "over_budget"
    if "blackout" in reason:
        return "blackout"
    return "routine"


def measure(path: str, seed: int) -> dict:
    from orchestrator.simulator.bench import resolve_policies, simulate
    from orchestrator.simulator.engine import Simulation
    from orchestrator.simulator.metrics import deadlines_of
    from orchestrator.simulator.planners.sla import SLAPlanner
    from orchestrator.simulator.scenario import load_scenario

    sc = load_scenario(path)
    world = sc.realise(seed)
    res = resolve_policies(sc, world)
    deadlines = deadlines_of(res, sc.t0, sc.horizon_s)
    asks: list[dict] = []
    reasons: dict[str, str] = {}

    class Recording(SLAPlanner):
        def start(self, sim) -> None:
            inner = self._decide

            def decide(*a, **kw):
                d = inner(*a, **kw)
                for g in list(d.decisions) + list(d.standing_requests):
                    reasons[g.action.action_id] = g.reason
                return d

            self._decide = decide
            super().start(sim)

    original = Simulation.request_approval

    def request(self, action, on_approved):
        open_units = set(self.open_incidents)
        units = self._units_of_action(action) if action.type != "standing_approval" else []
        why = reasons.get(action.action_id, "")
        asks.append({"t": round(self.now), "at": f"{self.dt():%m-%d %H:%M}", "type": action.type,
                     "cause": action.cause, "kind": _classify(action, why, open_units, units),
                     "subject": action.connector or ",".join(sorted(action.asset_keys))[:60],
                     "units": units, "reason": why[:120]})
        return original(self, action, on_approved)

    Simulation.request_approval = request
    try:
        p = Recording()
        sim_holder = {}
        orig_run = Simulation.run

        def run(self):
            sim_holder["sim"] = self
            return orig_run(self)

        Simulation.run = run
        try:
            r = simulate(sc, seed, p, res, deadlines)
        finally:
            Simulation.run = orig_run
    finally:
        Simulation.request_approval = original
    sim = sim_holder["sim"]
    person = [i for i in sim.incidents if i.needs_person]
    per_incident = []
    for inc in person:
        n = sum(1 for a in asks if inc.unit in a["units"] and a["t"] >= inc.opened
                and (inc.resolved is None or a["t"] <= inc.resolved))
        per_incident.append({"unit": inc.unit, "category": inc.category, "asks_naming_it": n,
                             "resolved_by": inc.resolved_by})
    return {"world": seed, "attainment": r.sla_attainment, "approvals_requested": r.approvals_requested,
            "recorded_asks": len(asks), "person_incidents": r.person_incidents, "incidents": r.incidents,
            "by_kind": dict(Counter(a["kind"] for a in asks)), "by_type": dict(Counter(a["type"] for a in asks)),
            "asks": asks, "per_incident": per_incident, "unsafe": r.unsafe_actions,
            "unsafe_detail": r.unsafe_detail, "cost": r.cost}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worlds", type=int, default=20)
    ap.add_argument("--seed", type=int, default=100)
    ap.add_argument("--only", default="", help="comma-separated world seeds (default: all)")
    ap.add_argument("--out", default=None)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--verbose", action="store_true", help="print every request")
    args = ap.parse_args()
    from orchestrator.simulator.worlds import generate_world

    out = Path(args.out or tempfile.mkdtemp(prefix="approvals-"))
    seeds = [int(s) for s in args.only.split(",") if s] or list(range(args.seed, args.seed + args.worlds))
    rows = []
    total = Counter()
    for s in seeds:
        row = measure(str(generate_world(s, out)), s)
        rows.append(row)
        total.update(row["by_kind"])
        print(f"world {s}: attainment {row['attainment']:.3f}, {row['approvals_requested']} asks / "
              f"{row['person_incidents']} person-incidents, kinds {row['by_kind']}, unsafe {row['unsafe']}",
              flush=True)
        if args.verbose:
            for a in row["asks"]:
                print(f"    {a['at']} {a['kind']:<11} {a['type']:<18} {a['cause'] or '':<24} {a['subject']}"
                      f" | {a['reason']}")
            for d in row["unsafe_detail"]:
                print(f"    UNSAFE {d}")
    asks = sum(r["approvals_requested"] for r in rows)
    person = sum(r["person_incidents"] for r in rows)
    print(f"total: {asks} asks / {person} person-incidents = {asks / person if person else float('nan'):.2f}; "
          f"by kind {dict(total)}; unsafe {sum(r['unsafe'] for r in rows)}; "
          f"mean attainment {sum(r['attainment'] for r in rows) / len(rows):.3f}")
    if args.json:
        print(json.dumps(rows, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
