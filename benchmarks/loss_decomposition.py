"""Why `sla` misses deadlines `cron-tuned` meets: a per-world, per-deadline loss decomposition.

    .venv/bin/python benchmarks/loss_decomposition.py --worlds 12 --seed 7000 [--out DIR] [--json]

For every generated world it runs `cron-tuned` and `sla` (the same code as ``orchestrator bench``)
and, for each deadline `sla` misses, looks at what the decision core did with work on the
target's lineage (the target and everything upstream) between the window's opening and the tick:

* ``rejected_budget``: validation rejected it as over budget;
* ``held_budget``: the gate held it for approval as over budget;
* ``held_blackout``: the gate held it for a blackout window;
* ``held_approval``: held for another reason (not pre-authorised, rollout recommend, risk,
  confidence) -- the person's answer came too late;
* ``approved_late``: an approval was asked and answered, but after the tick;
* ``failure``: the lineage failed in the window (a fault) and nothing above applies;
* ``ran_late``: work ran without being held, but landed after the tick;
* ``nothing_proposed``: no action on the lineage in the window.

The first matching cause (in that order) is the deadline's. Also printed: per world the
approvals asked, the budget unsafe events, and how much of each budgeted policy's daily spend
the connectors' own scheduled syncs took.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CAUSES = ("rejected_budget", "held_budget", "held_blackout", "held_approval", "approved_late", "failure",
          "ran_late", "nothing_proposed")


def _recording_sla():
    from orchestrator.simulator.planners.sla import SLAPlanner

    class Recording(SLAPlanner):
        def __init__(self) -> None:
            super().__init__()
            self.log: list[tuple[float, str, str, frozenset[str]]] = []  # (t, kind, reason, keys)
            inner = self._decide

            def decide(*args, **kw):
                d = inner(*args, **kw)
                t = self._sim.now
                for a, why in d.rejected:
                    kind = "rejected_budget" if "over budget" in why else "rejected_other"
                    self.log.append((t, kind, why, frozenset(a.asset_keys) | self._conn_keys(a)))
                for g in d.decisions:
                    keys = frozenset(g.action.asset_keys) | self._conn_keys(g.action)
                    if g.decision == "await_approval":
                        kind = ("held_budget" if g.reason.startswith("over budget") else
                                "held_blackout" if "blackout" in g.reason else "held_approval")
                        self.log.append((t, kind, g.reason, keys))
                    elif g.decision == "execute":
                        self.log.append((t, "execute", g.reason, keys))
                return d

            self._decide = decide

        def _conn_keys(self, a) -> frozenset[str]:
            if a.connector and a.connector in self._sim.sc.connectors:
                return frozenset(self._sim.sc.connectors[a.connector].tables)
            return frozenset()

        def start(self, sim) -> None:
            self._sim = sim
            super().start(sim)

    return Recording()


def decompose(path: str, seed: int, sla_only: bool = False) -> dict:
    from orchestrator.simulator.bench import resolve_policies, run_benchmark, simulate
    from orchestrator.simulator.metrics import deadlines_of, summarise
    from orchestrator.simulator.scenario import load_scenario

    sc = load_scenario(path)
    world = sc.realise(seed)
    res = resolve_policies(sc, world)
    deadlines = deadlines_of(res, sc.t0, sc.horizon_s)
    if sla_only:  # quick look: no cron-tuned search (its figures are zeros)
        from types import SimpleNamespace

        ct = SimpleNamespace(lateness=[1.0] * len(deadlines), met=0, sla_attainment=0.0, unsafe_by_kind={}, cost=0.0)
    else:
        ct = run_benchmark(sc, "cron-tuned", seed)
    p = _recording_sla()
    holder: dict = {}
    orig_sim = None

    from orchestrator.simulator import engine

    orig_sim = engine.Simulation.__init__

    def keep(self, *a, **kw):
        orig_sim(self, *a, **kw)
        holder["sim"] = self
        charged = holder.setdefault("charged", [])
        inner = self._charge

        def charge(rec, keys, source="", what="", **kw):
            charged.append((rec, source))
            inner(rec, keys, source, what, **kw)

        self._charge = charge

    engine.Simulation.__init__ = keep
    try:
        r = simulate(sc, seed, p, res, deadlines)
    finally:
        engine.Simulation.__init__ = orig_sim
    sim = holder["sim"]
    graph = sc.graph
    approvals = [(a.at, a.action) for a in sim.actions if a.decision == "approved"]
    failed_units = defaultdict(list)  # unit -> [(t)]
    for inc in sim.incidents:
        failed_units[inc.unit].append((inc.opened, inc.resolved if inc.resolved is not None else sim.horizon))
    causes: Counter = Counter()
    lost: list[dict] = []
    for d, mine, theirs in zip(deadlines, r.lateness, ct.lateness):
        if mine <= 0:
            continue
        lineage = set(graph.upstream_closure(d.target)) | {d.target}
        window = [(t, kind, why) for t, kind, why, keys in p.log if d.opens <= t <= d.tick and keys & lineage]
        kinds = {k for _, k, _ in window}
        cause = None
        for c in ("rejected_budget", "held_budget", "held_blackout", "held_approval"):
            if c in kinds:
                cause = c
                break
        if cause is None:
            late_ok = [t for t, a in approvals if d.opens <= t and t > d.tick
                       and set(a.asset_keys) & lineage]
            if late_ok:
                cause = "approved_late"
        if cause is None:
            units = {u for k in lineage if (u := sim.unit_of(k))}
            if any(o <= d.tick and e >= d.opens for u in units for o, e in failed_units.get(u, ())):
                cause = "failure"
        if cause is None:
            cause = "ran_late" if "execute" in kinds else "nothing_proposed"
        causes[cause] += 1
        lost.append({"policy": d.policy, "target": d.target, "tick": str(sim.dt(d.tick)), "cause": cause,
                     "cron_tuned_met": theirs <= 0,
                     "first_reason": next((why for t, k, why in window if k == cause), None),
                     "window": dict(Counter(k for _, k, _ in window)),
                     "sample": [f"{sim.dt(t):%m-%d %H:%M} {k}: {why[:90]}" for t, k, why in window[:4]]})
    # scheduled (native) sync spend per budgeted policy and day
    native = Counter()
    budgets = {}
    for pol in res.policy_set.policies:
        if pol.budget is not None and pol.budget.per_day is not None:
            budgets[pol.name] = pol.budget.per_day
    gov = {name: set(res.governed_by(name)) for name in budgets}
    conn_of = {n.key: n.connector for n in graph if n.connector}
    for rec, source in holder["charged"]:
        if rec.source != "sync" or rec.connector is None or source != "native":
            continue
        tables = {k for k, c in conn_of.items() if c == rec.connector}
        for name, keys in gov.items():
            if tables & keys:
                native[(name, rec.at.date().isoformat())] += rec.amount_usd
    sync_share = {f"{n}@{day}": f"{usd:.2f}/{budgets[n]:.2f}" for (n, day), usd in sorted(native.items())}
    return {"world": seed, "deadlines": len(deadlines), "sla_met": r.met, "cron_tuned_met": ct.met,
            "sla_attainment": r.sla_attainment, "cron_tuned_attainment": ct.sla_attainment,
            "sla_unsafe": r.unsafe_by_kind, "cron_tuned_unsafe": ct.unsafe_by_kind,
            "approvals": r.approvals_requested, "person_incidents": r.person_incidents,
            "sla_cost": r.cost, "cron_tuned_cost": ct.cost, "causes": dict(causes),
            "causes_where_cron_tuned_met": dict(Counter(x["cause"] for x in lost if x["cron_tuned_met"])),
            "budgets": budgets, "sync_spend_vs_budget": sync_share, "lost": lost[:12],
            "approved_over_budget_usd": r.approved_over_budget_usd, "approved_by_kind": r.approved_by_kind,
            "asks": [f"{sim.dt(a.at):%m-%d %H:%M} {a.action.action_id}" for a in sim.actions
                     if a.decision == "approved" and a.action.type == "standing_approval"]}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--worlds", type=int, default=12)
    ap.add_argument("--seed", type=int, default=7000)
    ap.add_argument("--out", default=None)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--only", type=int, nargs="*", default=None, help="these seeds only")
    ap.add_argument("--sla-only", action="store_true", help="skip the cron-tuned search (quick look)")
    ap.add_argument("--verbose", action="store_true", help="what the core did in each lost deadline's window")
    args = ap.parse_args()
    from orchestrator.simulator.worlds import generate_world

    out = Path(args.out or tempfile.mkdtemp(prefix="loss-"))
    seeds = args.only or list(range(args.seed, args.seed + args.worlds))
    total, where = Counter(), Counter()
    rows = []
    for s in seeds:
        row = decompose(str(generate_world(s, out)), s, args.sla_only)
        rows.append(row)
        total.update(row["causes"])
        where.update(row["causes_where_cron_tuned_met"])
        if not args.json:
            print(f"world {s}: sla {row['sla_met']}/{row['deadlines']} cron-tuned {row['cron_tuned_met']}/"
                  f"{row['deadlines']}  approvals {row['approvals']} (person incidents {row['person_incidents']})  "
                  f"unsafe sla {row['sla_unsafe']} ct {row['cron_tuned_unsafe']}  cost {row['sla_cost']:.0f}/"
                  f"{row['cron_tuned_cost']:.0f}")
            if row["causes"]:
                print(f"   lost: {row['causes']}  (where cron-tuned met: {row['causes_where_cron_tuned_met']})")
            if row["asks"] or row["approved_over_budget_usd"]:
                print(f"   standing/budget asks approved: {row['asks']}; approved over budget "
                      f"${row['approved_over_budget_usd']:.2f} {row['approved_by_kind']}")
            if row["budgets"]:
                print(f"   budgets {row['budgets']}  scheduled (native) sync spend/day: {row['sync_spend_vs_budget']}")
            for x in row["lost"][:3]:
                print(f"     {x['tick']} {x['target']} ({x['policy']}): {x['cause']}: {(x['first_reason'] or '')[:140]}"
                      f" {x['window']}")
                for line in x["sample"] if args.verbose else ():
                    print(f"        {line}")
            sys.stdout.flush()
    summary = {"worlds": len(seeds), "lost_by_cause": dict(total), "lost_where_cron_tuned_met": dict(where)}
    if args.json:
        print(json.dumps({"summary": summary, "rows": rows}, default=str))
    else:
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
