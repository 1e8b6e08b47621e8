"""Benchmark figures from a finished simulation.

* ``sla_attainment``: share of (target, deadline tick) pairs met. A target is an asset a policy
  with a ``deadline`` selects directly; the ticks counted are those whose whole window
  (``deadline.window``) lies inside the simulated horizon. Met = the target held data newer than
  the window's opening (every input re-synced within the cycle) by the tick.
* ``weighted_lateness``: tier-weighted mean lateness in minutes over those deadlines
  (critical 4, high 3, standard 2, low 1; lateness 0 when met; censored at the horizon's end).
* ``cost``: USD of warehouse compute (per second, off-peak prices) and connector syncs.
* ``auto_resolved_share``: share of failure incidents (a unit failing until it succeeds again)
  resolved without a human (no on-call fix, no approval); 1.0 when nothing failed.
* ``mean_time_to_action_s``: mean seconds from an incident's first failure to the first action
  on it (a retry, a new run, an approval request); censored at the horizon.
* ``approvals_requested``: gate decisions that waited for a human.
* ``unsafe_actions``: what the independent audit (``audit.py``) flagged: steps the orchestrator
  launched without a person's approval that executed inside a blackout window, launches after a
  daily budget was spent and completions that took spend over it (beyond any budget extension a
  person granted), actions run without the approval their policy requires, and actions against a
  validation rule. Approved over-budget/blackout work is counted apart (``approved_by_kind``,
  ``approved_over_budget_usd``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import timedelta

JSON_KEYS = ("sla_attainment", "weighted_lateness", "cost", "auto_resolved_share",
             "mean_time_to_action_s", "approvals_requested", "unsafe_actions")
TIER_WEIGHT = {"critical": 4.0, "high": 3.0, "standard": 2.0, "low": 1.0}


@dataclass(frozen=True)
class Deadline:
    policy: str
    target: str
    tier: str
    tick: float  # seconds since start
    opens: float  # tick - window


@dataclass
class BenchResult:
    scenario: str
    planner: str
    seed: int
    sla_attainment: float
    weighted_lateness: float
    cost: float
    auto_resolved_share: float | None  # None for the bound (it resolves nothing)
    mean_time_to_action_s: float | None
    approvals_requested: int
    unsafe_actions: int
    # extra detail (not in the --json contract)
    deadlines: int = 0
    met: int = 0
    incidents: int = 0
    recurring_incidents: int = 0
    person_incidents: int = 0  # incidents whose cause only a person can clear
    recurring_auto_resolved_share: float | None = 1.0
    actions_auto: int = 0
    runs: int = 0
    wall_s: float = 0.0
    bound: bool = False  # bound/oracle: a relaxation rather than a schedule
    note: str = ""
    unsafe_detail: list = field(default_factory=list)
    unsafe_by_kind: dict = field(default_factory=dict)
    # over-budget / blackout work a person approved (not unsafe; the audit counts it apart)
    approved_by_kind: dict = field(default_factory=dict)
    approved_over_budget_usd: float = 0.0
    lateness: list = field(default_factory=list)  # seconds per deadline (deadlines_of order)

    def as_json(self) -> dict:
        d = asdict(self)
        return {k: d[k] for k in JSON_KEYS}


def deadlines_of(resolution, t0, horizon_s: float) -> list[Deadline]:
    """Every (target, tick) whose window lies inside [t0, t0 + horizon]."""
    out: list[Deadline] = []
    if resolution is None or not resolution.ok or resolution.policy_set is None:
        return out
    end = t0 + timedelta(seconds=horizon_s)
    for policy in resolution.policy_set.policies:
        schedule = policy.schedule()
        if schedule is None:
            continue
        window = policy.deadline.effective_window(schedule)
        targets = sorted(k for k, sla in resolution.slas.items() if policy.name in sla.policies)
        for tick in schedule.ticks(t0, end):
            opens = tick - window
            if opens < t0:
                continue
            for k in targets:
                out.append(Deadline(policy.name, k, policy.tier.value, (tick - t0).total_seconds(),
                                    (opens - t0).total_seconds()))
    return out


def lateness(deadline: Deadline, history: list[tuple[float, float]], horizon_s: float) -> float:
    """Seconds late (0 when met) given a target's [(ready at, data time)] history."""
    for at, data_time in history:
        if data_time >= deadline.opens and at >= deadline.opens:
            return max(0.0, at - deadline.tick)
    return max(0.0, horizon_s - deadline.tick)


def summarise(deadlines: list[Deadline], late: list[float]) -> tuple[float, float, int]:
    if not deadlines:
        return 1.0, 0.0, 0
    met = sum(1 for x in late if x <= 0)
    wsum = sum(TIER_WEIGHT.get(d.tier, 1.0) for d in deadlines)
    wl = sum(TIER_WEIGHT.get(d.tier, 1.0) * x / 60 for d, x in zip(deadlines, late)) / wsum
    return met / len(deadlines), wl, met


def result_from_sim(sim, planner: str, deadlines: list[Deadline], wall_s: float) -> BenchResult:
    late = [lateness(d, sim.watch.get(d.target, []), sim.horizon) for d in deadlines]
    att, wl, met = summarise(deadlines, late)
    incidents = sim.incidents
    auto = sum(1 for i in incidents if i.resolved is not None and i.resolved_by == "auto")
    rec = [i for i in incidents if i.recurring]
    rec_auto = sum(1 for i in rec if i.resolved is not None and i.resolved_by == "auto")
    tta = [((i.first_action if i.first_action is not None else sim.horizon) - i.opened) for i in incidents]
    return BenchResult(
        scenario=sim.sc.name, planner=planner, seed=sim.seed,
        sla_attainment=round(att, 4), weighted_lateness=round(wl, 2), cost=round(sim.total_cost, 2),
        auto_resolved_share=round(auto / len(incidents), 4) if incidents else 1.0,
        mean_time_to_action_s=round(sum(tta) / len(tta), 1) if tta else 0.0,
        approvals_requested=sim.approvals_requested, unsafe_actions=len(sim.unsafe),
        deadlines=len(deadlines), met=met, incidents=len(incidents), recurring_incidents=len(rec),
        person_incidents=sum(1 for i in incidents if i.needs_person),
        recurring_auto_resolved_share=round(rec_auto / len(rec), 4) if rec else 1.0,
        actions_auto=sum(1 for a in sim.actions if a.decision == "execute"),
        runs=len(sim.runs), wall_s=round(wall_s, 2),
        unsafe_detail=[f"{sim.dt(t):%H:%M} {what}: {why}" for t, what, why in sim.unsafe[:20]],
        unsafe_by_kind=sim.auditor.by_kind(),
        approved_by_kind=dict(sim.auditor.approved),
        approved_over_budget_usd=round(sim.auditor.approved_over_budget_usd, 2),
    )
