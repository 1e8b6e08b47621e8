"""Declarative automation's ``AutomationCondition.eager()``: connectors sync on their own
schedules; a model is requested when any upstream updated since it was last requested, it is not
in progress and no upstream is in progress. One run per evaluation tick (like the automation
sensor), steps ordered by their in-run dependencies. A failed asset is not re-requested until an
upstream updates again (eager does not retry)."""

from __future__ import annotations

from orchestrator.simulator.planners import Planner


class EagerPlanner(Planner):
    name = "eager"

    def __init__(self) -> None:
        self.candidates: set[str] = set()

    def start(self, sim) -> None:
        sim.start_native_schedules()
        sim.listeners.append(self)
        sim.every(sim.spec.baseline.eager_tick.total_seconds(), self.tick)

    def on_step_end(self, sim, step, ok: bool) -> None:
        if not ok:
            return
        for k in sim.assets_of(step.unit):
            for ch in sim.graph.children(k):
                u = sim.unit_of(ch)
                if u is not None and u not in sim.sc.connectors:
                    self.candidates.add(u)

    def tick(self, sim) -> None:
        if not self.candidates:
            return
        active = sim.active_units
        request, keep = [], set()
        for u in self.candidates:
            busy = active.get(u) or any(
                active.get(pu) for p in sim.graph.parents(u) if (pu := sim.unit_of(p)) is not None
            )
            (keep.add(u) if busy else request.append(u))
        self.candidates = keep
        if request:
            sim.submit(sorted(request), source="eager")
