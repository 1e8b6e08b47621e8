"""A planner that does random things, to probe the bound and the audit with behaviour nobody
designed: random runs over random assets at random times and priorities, resyncs, approvals
asked for whatever failed, cancellations."""

from __future__ import annotations

import numpy as np

from orchestrator.core.records import Action
from orchestrator.simulator.planners import Planner


class RandomPlanner(Planner):
    name = "random"

    def __init__(self, seed: int, mean_gap_s: float = 1800.0, native: bool = True):
        self.rng = np.random.default_rng([seed, 99])
        self.mean_gap_s = mean_gap_s
        self.native = native
        self.n = 0

    def start(self, sim) -> None:
        if self.native:
            sim.start_native_schedules()
        sim.at(float(self.rng.exponential(self.mean_gap_s)), self.act, sim)

    def act(self, sim) -> None:
        rng = self.rng
        keys = [k for k in sim.graph.keys]
        roll = rng.random()
        self.n += 1
        if roll < 0.55:
            size = int(rng.integers(1, min(12, len(keys)) + 1))
            chosen = [keys[i] for i in rng.choice(len(keys), size=size, replace=False)]
            if rng.random() < 0.5:  # with everything upstream, as a +selector would
                chosen = sorted(sim.graph.upstream_closure(*chosen, include_self=True))
            sim.submit(chosen, priority=int(rng.integers(-5, 30)), source="random")
        elif roll < 0.7 and sim.sc.connectors:
            cid = list(sim.sc.connectors)[int(rng.integers(0, len(sim.sc.connectors)))]
            sim.execute(Action(f"a{self.n}", "resync_table", "random", connector=cid), approved=True)
        elif roll < 0.85 and sim.open_incidents:
            unit = list(sim.open_incidents)[int(rng.integers(0, len(sim.open_incidents)))]
            keys_of = sim.assets_of(unit)
            action = Action(f"a{self.n}", "materialize", "ask a person", asset_keys=tuple(keys_of))
            sim.request_approval(action, lambda a: sim.execute(a, approved=True, decision="approved"))
        elif sim.inflight_runs and rng.random() < 0.5:
            run = list(sim.inflight_runs.values())[int(rng.integers(0, len(sim.inflight_runs)))]
            sim.cancel(run)
        sim.at(sim.now + float(rng.exponential(self.mean_gap_s)), self.act, sim)
