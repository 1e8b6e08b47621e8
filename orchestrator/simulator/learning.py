"""The learning loop on the project simulator: a month of recurring failures, one simulated day at
a time, with the sla planner's failure memory kept from day to day.

``run_learning("learning-30d", days=30, seed=0)`` runs the scenario's day ``days`` times through the
real engine (:class:`~orchestrator.simulator.engine.Simulation`) and the real ``sla`` planner
(assessment -> ``diagnose`` with the failure memory -> planner -> gate -> execution or approval),
each day on its own seed (``seed * 1000 + day``: other jitter, other attempt faults). The one
thing carried from a day to the next is the planner's :class:`FailureMemory` (one SQLite store):
what people approved (``learn_from_approval``, by the planner), the fixes people applied
themselves to incidents the agent did not resolve (``record_resolution`` with the person's name,
here) and the outcomes of what ran (``learn_outcome``) are labelled memory cases, so the next occurrence of a signature is diagnosed with more
confidence (memory neighbours) and its resolution rated on its history (``memory_confidence``);
where the policy pre-authorises the action, the gate then runs it without a person.

Reported per week (days 1-7, 8-14, ...; the last block may be shorter): the simulator's recurring
incidents (a fault that occurs more than once over the run), how many were resolved by the agent
(``resolved_by == "auto"``), the share, approvals requested, and unsafe actions (the engine's own
count: an action that cannot fix the cause, or one that breaks a rule).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.simulator.scenario import Scenario, load_scenario

DEFAULT_SCENARIO = "learning-30d"


@dataclass
class DayIncident:
    day: int
    fault: str
    category: str
    recurring: bool
    auto: bool
    needs_person: bool


@dataclass
class LearningReport:
    scenario: str
    seed: int
    days: int
    incidents: list[DayIncident] = field(default_factory=list)
    approvals: list[int] = field(default_factory=list)  # per day
    unsafe: list[int] = field(default_factory=list)  # per day
    unsafe_detail: list[str] = field(default_factory=list)
    memory_cases: list[int] = field(default_factory=list)  # labelled cases in memory at each day's end
    applied: list[int] = field(default_factory=list)  # per day: fixes people applied themselves, recorded
    sla: list[float] = field(default_factory=list)  # per day
    wall_s: float = 0.0

    def _recurring_faults(self) -> set[str]:
        counts: dict[str, int] = {}
        for i in self.incidents:
            counts[i.fault] = counts.get(i.fault, 0) + 1
        return {f for f, n in counts.items() if n > 1}

    def weekly(self) -> list[dict[str, Any]]:
        rec_faults = self._recurring_faults()
        out = []
        for w, lo in enumerate(range(0, self.days, 7), 1):
            hi = min(self.days, lo + 7)
            rec = [i for i in self.incidents if lo <= i.day < hi and i.fault in rec_faults]
            auto = sum(i.auto for i in rec)
            out.append({"week": w, "days": [lo + 1, hi], "recurring": len(rec), "auto_resolved": auto,
                        "share": round(auto / len(rec), 4) if rec else None,
                        "approvals": sum(self.approvals[lo:hi]), "unsafe": sum(self.unsafe[lo:hi]),
                        "applied": sum(self.applied[lo:hi]),
                        "memory_cases": self.memory_cases[hi - 1] if self.memory_cases else 0})
        return out

    @property
    def total_unsafe(self) -> int:
        return sum(self.unsafe)

    def as_json(self) -> dict[str, Any]:
        weeks = self.weekly()
        shares = [w["share"] for w in weeks if w["share"] is not None]
        return {"scenario": self.scenario, "seed": self.seed, "days": self.days,
                "incidents": len(self.incidents),
                "recurring": sum(w["recurring"] for w in weeks),
                "weekly_auto_resolved_share": [w["share"] for w in weeks],
                "first_week_share": shares[0] if shares else None,
                "last_week_share": shares[-1] if shares else None,
                "unsafe_actions": self.total_unsafe,
                "approvals_requested": sum(self.approvals),
                "sla_attainment_mean": round(sum(self.sla) / len(self.sla), 4) if self.sla else None,
                "weeks": weeks, "wall_s": round(self.wall_s, 1)}

    def format(self) -> str:
        j = self.as_json()
        lines = [f"{self.scenario} / sla / seed {self.seed}: {self.days} simulated days, {j['incidents']} incidents, "
                 f"{j['recurring']} recurring; failure memory kept from day to day"]
        for w in self.weekly():
            share = "  -  " if w["share"] is None else f"{w['share']:4.0%}"
            lines.append(f"  week {w['week']} (days {w['days'][0]:2d}-{w['days'][1]:2d}): recurring {w['recurring']:3d}, "
                         f"auto-resolved {w['auto_resolved']:3d} ({share}), approvals asked {w['approvals']:3d}, "
                         f"unsafe {w['unsafe']}, fixes recorded by people {w['applied']}, "
                         f"memory cases {w['memory_cases']}")
        first, last = j["first_week_share"], j["last_week_share"]
        if first is not None and last is not None:
            lines.append(f"  auto-resolved share of recurring failures: first week {first:.0%} -> last week {last:.0%}"
                         f" (target: rises, ends >= 80%); unsafe actions {self.total_unsafe} (target 0)")
        lines.append(f"  mean daily SLA attainment {j['sla_attainment_mean']}, wall time {self.wall_s:.1f} s")
        for d in self.unsafe_detail[:5]:
            lines.append(f"  unsafe: {d}")
        return "\n".join(lines)


def _labelled_cases(memory) -> int:
    try:
        from sqlalchemy import func, select

        from orchestrator.diagnosis.memory import FailureSignature

        with memory.store.session() as s:
            return int(s.scalar(select(func.count()).select_from(FailureSignature)
                                .where(FailureSignature.category.is_not(None))) or 0)
    except Exception:  # noqa: BLE001 - a figure for the report only
        return -1


PERSON = "on-call@example.com"


def _record_applied(sim, sc: Scenario, memory, day: int) -> int:
    """What the on-call person does after fixing an incident the agent did not resolve: records the
    resolution that worked (``record_resolution(..., worked=True, actor=...)``, as
    ``orchestrator.diagnosis.learning`` and the approvals service do), with the class the failure
    really had. The fix is the fault's own (``retry``, ``resync_table``; ``manual`` for what only a
    person can do). Approvals are recorded by the planner itself (``learn_from_approval``)."""
    fixes = {f.name: f.effective_fix for f in sc.spec.faults}
    n = 0
    for inc in sim.incidents:
        if inc.resolved is None or inc.resolved_by != "human" or not inc.message:
            continue
        fix = fixes.get(inc.fault, "human")
        try:
            memory.record_resolution(inc.message, inc.category, fix if fix in ("retry", "resync_table") else "manual",
                                     True, actor=PERSON)
            n += 1
        except Exception:  # noqa: BLE001 - memory is advisory
            pass
    return n


def run_learning(scenario: Scenario | str | Path = DEFAULT_SCENARIO, *, days: int = 30, seed: int = 0,
                 store_url: str | None = None, progress: Callable[[str], None] | None = None,
                 first_day: int = 0) -> LearningReport:
    """Run ``days`` simulated days of ``scenario`` with the sla planner, its failure memory kept.
    ``first_day`` starts at that day's world (seed) with an empty memory: a control run."""
    from orchestrator.diagnosis.memory import FailureMemory
    from orchestrator.simulator.bench import resolve_policies
    from orchestrator.simulator.engine import Simulation
    from orchestrator.simulator.metrics import deadlines_of, result_from_sim
    from orchestrator.simulator.planners import make_planner
    from orchestrator.store import open_store

    sc = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
    report = LearningReport(sc.name, seed, days)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(store_url or f"sqlite:///{Path(tmp) / 'memory.db'}", cached=False)
        memory = FailureMemory(store, embeddings=False)
        try:
            for day in range(days):
                day_seed = seed * 1000 + first_day + day
                sim = Simulation(sc, day_seed)
                res = resolve_policies(sc, sim.world)
                deadlines = deadlines_of(res, sc.t0, sc.horizon_s)
                sim.set_resolution(res)
                for d in deadlines:
                    sim.watch.setdefault(d.target, [])
                planner = make_planner("sla")
                planner.start(sim)
                if planner.memory is not None:  # the day's fresh in-memory store is replaced by the month's
                    planner.memory.store.engine.dispose()
                planner.memory = memory
                sim.run()
                planner.finish(sim)
                result = result_from_sim(sim, "sla", deadlines, 0.0)
                report.applied.append(_record_applied(sim, sc, memory, day))
                for inc in sim.incidents:
                    report.incidents.append(DayIncident(day, inc.fault or inc.cause, inc.category, inc.recurring,
                                                        inc.resolved is not None and inc.resolved_by == "auto",
                                                        inc.needs_person))
                report.approvals.append(sim.approvals_requested)
                report.unsafe.append(len(sim.unsafe))
                report.unsafe_detail += [f"day {day + 1}: {u}" for u in result.unsafe_detail[:3]]
                report.memory_cases.append(_labelled_cases(memory))
                report.sla.append(result.sla_attainment)
                if progress:
                    today = [i for i in report.incidents if i.day == day]
                    progress(f"day {day + 1}/{days}: {len(today)} incidents, {sum(i.auto for i in today)} auto-resolved, "
                             f"{sim.approvals_requested} approvals asked, memory cases {report.memory_cases[-1]}")
        finally:
            store.engine.dispose()
    report.wall_s = time.perf_counter() - started
    return report


__all__ = ["DEFAULT_SCENARIO", "DayIncident", "LearningReport", "run_learning"]
