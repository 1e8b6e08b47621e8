"""Scripted schema changes in the simulator (scenario ``schema_changes``), the way the project
handles them for real (``orchestrator/schema_changes``, ``sensors/schema_changes.py``):

1. from ``at``, the next successful sync of the table's connector *delivers* the change;
2. from that instant every attempt of the broken models fails with the warehouse's error (a
   Binder/Conversion error: the diagnosis calls it ``schema_drift``), while their data ages;
3. the schema-change sensor, on its grid of ``schema_sensor_tick``, *detects* it at its first tick
   after the delivery and tells the owners (those of the broken models and of the dashboards
   downstream, as the graph and the policies name them);
4. ``fix: patch``: a patch verified in ``verify`` is *proposed* and waits for approval (answered as
   ``approvals`` says, drawn from its own random stream); approved, it is applied and the models
   build again; declined, a person fixes it. ``fix: human``: no patch, a person fixes it (on-call
   after ``human_fix_delay`` once a model has failed). An approved action of the planner on a
   broken model counts as a person acting on it (``Simulation.human_fix_unit``);
5. once fixed (patch or person), the sensor's next tick sees the table match the project again and
   reports the broken models repaired (``Simulation.repairs``): the ``sla`` planner records it in
   its ledger (``ActionLedger.record_repair``) and retries them at once.

Nothing is applied without an approval: ``records`` keep each change's delivery, detection,
proposal, answer and fix, and ``applied_without_approval`` counts patches applied with no approval
answered before them (independently of how the approval is wired), which must stay 0.
"""

from __future__ import annotations

import bisect
import fnmatch
import math
from dataclasses import dataclass, field

import numpy as np

from orchestrator.core.graph import DASHBOARD
from orchestrator.core.incidents import ANY_CLASS
from orchestrator.simulator.scenario import FaultEpisode, SchemaChangeSpec

MESSAGES = {
    "rename_column": 'Runtime Error in model {model} (models/{model}.sql)\n  Binder Error: Referenced column "{column}" '
                     'not found in FROM clause!\n  Candidate bindings: "{to}"',
    "drop_column": 'Runtime Error in model {model} (models/{model}.sql)\n  Binder Error: Referenced column "{column}" '
                   "not found in FROM clause!",
    "change_type": "Runtime Error in model {model} (models/{model}.sql)\n  Conversion Error: Could not convert "
                   "string 'n/a' to INT64 in column \"{column}\"",
    "add_column": "Runtime Error in model {model} (models/{model}.sql)\n  Compilation Error: This model has an "
                  "enforced contract that failed: column \"{column}\" is not in the contract",
}


@dataclass
class ChangeRecord:
    name: str
    table: str
    change: str
    fix: str
    models: tuple[str, ...]
    at: float  # scripted instant (seconds since the start)
    delivered: float | None = None  # the sync that landed it ended
    detected: float | None = None  # the schema sensor's tick
    owners: tuple[str, ...] = ()
    proposed: float | None = None
    answered: float | None = None
    approved: bool | None = None
    fixed: float | None = None
    fixed_by: str | None = None  # patch | person
    failed_attempts: int = 0  # attempts of the broken models that failed on it
    episodes: list[int] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "episodes"}


class SchemaChangeScript:
    """Attached to a Simulation whose scenario scripts schema changes (a step listener)."""

    def __init__(self, sim):
        self.sim = sim
        self.tick = sim.spec.schema_sensor_tick.total_seconds()
        self.rng = np.random.default_rng([sim.seed, 271828])
        self.records: list[ChangeRecord] = []
        self.pending: dict[str, list[tuple[SchemaChangeSpec, ChangeRecord]]] = {}  # connector -> changes
        self.applied: list[tuple[float, str]] = []  # (instant, change) each patch applied
        self.approvals: list[tuple[float, str]] = []  # (instant, change) each approval answered yes
        self._next_index = len(sim.world.episodes)
        self._by_episode: dict[int, ChangeRecord] = {}
        for spec in sim.spec.schema_changes:
            node = sim.graph.node(spec.table)
            record = ChangeRecord(spec.name, spec.table, spec.change, spec.effective_fix, self._broken(spec),
                                  self._instant(spec))
            self.records.append(record)
            if 0 <= record.at < sim.horizon:
                self.pending.setdefault(node.connector, []).append((spec, record))
        sim.listeners.append(self)

    def _instant(self, spec: SchemaChangeSpec) -> float:
        from datetime import datetime, time, timedelta, timezone

        hh, mm = (int(x) for x in spec.at.split(":"))
        day0 = datetime.combine(self.sim.t0.date(), time(0), tzinfo=timezone.utc)
        return (day0 + timedelta(days=spec.day, hours=hh, minutes=mm) - self.sim.t0).total_seconds()

    def _broken(self, spec: SchemaChangeSpec) -> tuple[str, ...]:
        models = self.sim.sc.models
        if spec.breaks is not None:
            return tuple(m for m in models if any(fnmatch.fnmatchcase(m, p) for p in spec.breaks))
        if spec.change == "add_column":
            return ()
        return tuple(c for c in self.sim.graph.children(spec.table) if c in set(models))

    # -- the listener ---------------------------------------------------------------------------
    def on_step_end(self, sim, st, ok: bool) -> None:
        if not ok or not st.is_sync or st.unit not in self.pending:
            return
        waiting = []
        for spec, record in self.pending.pop(st.unit):
            if st.start is not None and st.start >= record.at:
                self._deliver(spec, record)
            else:
                waiting.append((spec, record))
        if waiting:
            self.pending[st.unit] = waiting

    def on_run_end(self, sim, run) -> None:
        pass

    # -- what happens -----------------------------------------------------------------------------
    def _deliver(self, spec: SchemaChangeSpec, record: ChangeRecord) -> None:
        sim = self.sim
        record.delivered = sim.now
        for model in record.models:
            index = self._next_index
            self._next_index += 1
            message = MESSAGES[spec.change].format(model=model, column=spec.column, to=spec.to or "")
            episode = FaultEpisode(spec.name, "schema_drift", model, sim.now, None, "human", message, False, 0)
            bisect.insort(sim._episodes.setdefault(model, []), (index, episode), key=lambda x: x[1].start)
            record.episodes.append(index)
            self._by_episode[index] = record
        sim._snapshot_cache = None
        detect_at = self._next_tick()
        sim.at(detect_at, self._detect, spec, record)
        sim.at(detect_at, self._watch, record)

    def _next_tick(self) -> float:
        at = math.ceil(self.sim.now / self.tick) * self.tick
        return at + self.tick if at <= self.sim.now else at

    def _watch(self, record: ChangeRecord) -> None:
        """The schema-change sensor's tick: once every episode of the change is fixed (a patch
        applied, or a person's fix), the table matches the project again and the sensor reports
        the broken models repaired (``sim.repairs``; the planner retries them at once)."""
        sim = self.sim
        if record.episodes and all(i in sim._fixed for i in record.episodes):
            if record.fixed is None:  # a person got there first: the patch is not applied on top
                record.fixed, record.fixed_by = max(sim._fixed[i] for i in record.episodes), "person"
            for model in record.models:
                sim.repairs.append((f"asset:{model}", ANY_CLASS, sim.now))  # however it was diagnosed
            return
        if sim.now + self.tick < sim.horizon:
            sim.at(self._next_tick(), self._watch, record)

    def _detect(self, spec: SchemaChangeSpec, record: ChangeRecord) -> None:
        sim = self.sim
        record.detected = sim.now
        record.owners = self._owners(record)
        if spec.effective_fix == "patch" and record.models:
            sim.at(sim.now + spec.verify.total_seconds(), self._propose, spec, record)

    def _owners(self, record: ChangeRecord) -> tuple[str, ...]:
        sim, owners = self.sim, []
        reached, stack = set(record.models), list(record.models)
        while stack:
            for child in sim.graph.children(stack.pop()):
                if child not in reached:
                    reached.add(child)
                    stack.append(child)
        for key in sorted(reached):
            node = sim.graph.node(key)
            found = list(node.owners)
            sla = sim.resolution.sla(key) if sim.resolution is not None and node.role == DASHBOARD else None
            if sla is not None:
                found += list(sla.owners)
            owners.extend(o for o in found if o not in owners)
        return tuple(owners)

    def _propose(self, spec: SchemaChangeSpec, record: ChangeRecord) -> None:
        sim = self.sim
        if record.fixed is not None:
            return  # a person got there first
        record.proposed = sim.now
        sim.approvals_requested += 1
        approve = bool(self.rng.random() < sim.spec.approvals.approve)
        sim.at(sim.spec.approvals.answer_at(sim.t0, sim.now), self._answer, record, approve)

    def _answer(self, record: ChangeRecord, approve: bool) -> None:
        sim = self.sim
        record.answered, record.approved = sim.now, approve
        if not approve or record.fixed is not None:
            return
        self.approvals.append((sim.now, record.name))
        self._apply(record)

    def _apply(self, record: ChangeRecord) -> None:
        sim = self.sim
        self.applied.append((sim.now, record.name))
        for index in record.episodes:
            if index not in sim._fixed:
                sim._fixed[index] = sim.now
        record.fixed, record.fixed_by = sim.now, "patch"
        sim._snapshot_cache = None

    def finish(self) -> None:
        """Fixes a person made (on-call, or approving an action on a broken model); the failed
        attempts of the broken models while the change was unfixed."""
        sim = self.sim
        for record in self.records:
            if record.fixed is None and record.episodes and all(i in sim._fixed for i in record.episodes):
                record.fixed = max(sim._fixed[i] for i in record.episodes)
                record.fixed_by = "person"
            if record.delivered is not None:
                end = record.fixed if record.fixed is not None else sim.horizon
                record.failed_attempts = sum(1 for f in sim.failures if f.asset_key in record.models
                                             and record.delivered <= sim.secs(f.at) < end + 1e-6)

    @property
    def applied_without_approval(self) -> int:
        """Patches applied with no approval of that change answered at or before the instant."""
        return sum(1 for at, name in self.applied
                   if not any(a_name == name and a_at <= at for a_at, a_name in self.approvals))

    def summary(self) -> dict:
        self.finish()
        delivered = [r for r in self.records if r.delivered is not None]
        breaking = [r for r in delivered if r.models]
        tell = [r.detected - r.delivered for r in delivered if r.detected is not None]
        return {
            "changes": len(self.records), "delivered": len(delivered), "breaking": len(breaking),
            "detected_within_one_tick": sum(1 for d in tell if d <= self.tick),
            "max_detection_delay_s": max(tell, default=None),
            "owners_told": sum(1 for r in delivered if r.detected is not None and r.owners),
            "fixed_by_patch": sum(1 for r in breaking if r.fixed_by == "patch"),
            "fixed_by_person": sum(1 for r in breaking if r.fixed_by == "person"),
            "unfixed": sum(1 for r in breaking if r.fixed is None),
            "failed_attempts": sum(r.failed_attempts for r in breaking),
            "patches_applied": len(self.applied),
            "applied_without_approval": self.applied_without_approval,
            "records": [r.as_dict() for r in self.records],
        }
