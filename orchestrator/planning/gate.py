"""The risk gate: execute now, wait for approval, or record only.

``gate(actions, snapshot, assessment, resolution, memory=None, breaker=None) -> [GateDecision]``

**Risk** (0..1, low < 0.35 <= medium < 0.6 <= high) adds up the action type (a materialize is
cheap to undo, a full resync is not), the most critical tier it touches, the rollout mode of the
governing policy (``recommend`` adds), its size, its estimated cost (and whether a budget covering
it is already forecast over) and whether the LLM proposed it.

**Confidence** of a failure-driven action comes from the failure memory, not from the LLM: the
diagnosis confidence x how similar the failure is to past cases of the same class x how often
this resolution worked for that class (Laplace-smoothed, so a resolution never tried starts at
2/3). An LLM's own confidence can only lower it. Without memory, failures count as never seen
(similarity 0), so nothing failure-driven runs automatically. Freshness work not tied to a failure
has confidence 1 from the planner, at most 0.9 from the LLM.

**Decision**: any subject with an open circuit breaker -> ``record_only``; a touched asset under
``shadow`` (or no policy: ungoverned assets never act on their own) -> ``record_only`` /
``await_approval``; ``recommend`` -> ``await_approval``; ``auto`` -> ``execute`` only when every
touched asset's policy lists the action in ``auto_approve``, risk is low and confidence >=
``min_confidence``. A ``full_resync`` never executes automatically.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from orchestrator.core.records import Action, Assessment, DiagnosedFailure, Snapshot
from orchestrator.planning.breaker import CircuitBreaker
from orchestrator.planning.common import action_type, subjects
from orchestrator.policies import ActionType

EXECUTE = "execute"
AWAIT_APPROVAL = "await_approval"
RECORD_ONLY = "record_only"

TYPE_RISK = {
    "defer": 0.05, "materialize": 0.10, "retry": 0.15, "backfill": 0.30, "resume_connector": 0.30,
    "resync_table": 0.35, "cancel_run": 0.35, "reschedule_connector": 0.40, "pause_connector": 0.45,
    "full_resync": 0.90,
}
TIER_RISK = {"low": 0.0, "standard": 0.05, "high": 0.10, "critical": 0.15}
ROLLOUT_RISK = {"auto": 0.0, "recommend": 0.10, "shadow": 0.0}
NEVER_AUTOMATIC = frozenset({ActionType.full_resync})


@dataclass
class GateConfig:
    low_risk: float = 0.35
    high_risk: float = 0.60
    min_confidence: float = 0.5
    cost_high_usd: float = 25.0
    llm_risk: float = 0.10
    llm_max_confidence: float = 0.9


@dataclass
class GateDecision:
    action: Action
    decision: str  # execute | await_approval | record_only
    risk: str  # low | medium | high
    risk_score: float
    confidence: float
    reason: str
    owners: tuple[str, ...] = ()
    factors: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"action_id": self.action.action_id, "decision": self.decision, "risk": self.risk,
                "risk_score": round(self.risk_score, 3), "confidence": round(self.confidence, 3),
                "reason": self.reason, "owners": list(self.owners), "factors": self.factors}


def _val(x) -> str:
    return str(getattr(x, "value", x))


def related_failures(action: Action, assessment: Assessment) -> list[DiagnosedFailure]:
    keys = set(action.asset_keys)
    return [d for d in assessment.failures
            if d.root_failure_id is None and (
                (d.failure.asset_key is not None and d.failure.asset_key in keys)
                or (action.connector is not None and d.failure.connector == action.connector))]


def memory_confidence(action: Action, failures: Sequence[DiagnosedFailure], memory) -> tuple[float, str]:
    """Confidence that ``action`` resolves ``failures``, from the failure memory."""
    best, why = 0.0, "no failure memory"
    for d in failures:
        sim, rate, att = 0.0, 2 / 3, 0
        if memory is not None:
            try:
                near = memory.nearest(d.failure.message, k=5, labelled_only=True)
                sim = max((n.similarity for n in near if n.category == d.category), default=0.0)
                stats = memory.success_rates(d.category).get((d.category, action.type))
                if stats:
                    att = int(stats["attempts"])
                    rate = (stats["successes"] + 2) / (att + 3)
            except Exception:  # memory is advisory: an error counts as no history
                sim, rate = 0.0, 2 / 3
        conf = d.confidence * (0.5 + 0.5 * sim) * rate
        if conf >= best:
            best = conf
            why = (f"{d.category}: diagnosis {d.confidence:.2f}, similarity to past cases {sim:.2f}, "
                   f"{action.type} worked {rate:.2f} (smoothed, {att} attempts)")
    return min(1.0, best), why


def gate(
    actions: Iterable[Action],
    snapshot: Snapshot,
    assessment: Assessment,
    resolution,
    memory=None,
    breaker: CircuitBreaker | None = None,
    *,
    now: datetime | None = None,
    config: GateConfig | None = None,
) -> list[GateDecision]:
    cfg = config or GateConfig()
    now = now or snapshot.taken_at
    graph = snapshot.graph
    conn_tables: dict[str, list[str]] = {}
    for n in graph:
        if n.connector:
            conn_tables.setdefault(n.connector, []).append(n.key)
    burning: set[str] = set()
    for c in assessment.cost:
        if c.over_budget:
            kind, _, name = c.scope.partition(":")
            if kind == "policy":
                burning.add(name)
    out: list[GateDecision] = []
    for a in actions:
        t = action_type(a)
        touched = list(a.asset_keys) or conn_tables.get(a.connector or "", [])
        slas = {k: resolution.sla(k) if resolution is not None else None for k in touched}
        governed = [s for s in slas.values() if s is not None]
        owners = tuple(dict.fromkeys(o for s in governed for o in s.owners))
        tiers = [_val(s.tier) for s in governed] or ["standard"]
        tier = max(tiers, key=lambda x: TIER_RISK.get(x, 0.05))
        rollouts = [_val(s.rollout) for s in governed]
        if len(governed) < len(touched) or not touched:
            rollouts.append("recommend")  # ungoverned assets never act on their own
        rollout = min(rollouts, key=lambda r: {"shadow": 0, "recommend": 1, "auto": 2}[r])

        factors = {
            "type": TYPE_RISK.get(a.type, 0.5),
            "tier": TIER_RISK.get(tier, 0.05),
            "rollout": ROLLOUT_RISK.get(rollout, 0.1),
            "size": min(0.2, 0.005 * max(0, len(a.asset_keys) - 1) + 0.01 * len(a.partitions)),
            "cost": 0.2 if a.estimated_cost_usd > cfg.cost_high_usd else 0.0,
            "budget": 0.2 if any(name in burning for s in governed for name, _ in s.budgets) else 0.0,
            "llm": cfg.llm_risk if a.source == "llm" else 0.0,
        }
        score = min(1.0, sum(factors.values()))
        level = "low" if score < cfg.low_risk else ("medium" if score < cfg.high_risk else "high")

        fails = related_failures(a, assessment)
        if fails:
            confidence, conf_why = memory_confidence(a, fails, memory)
            if a.source == "llm":
                confidence = min(confidence, a.confidence)
        else:
            confidence = 1.0 if a.source != "llm" else min(a.confidence, cfg.llm_max_confidence)
            conf_why = "freshness work, no failure involved"

        def decide(decision: str, reason: str) -> GateDecision:
            return GateDecision(a, decision, level, score, confidence, reason, owners, factors)

        open_subjects = [s for s in subjects(a) if breaker is not None and breaker.is_open(s, now)]
        if t is None:
            out.append(decide(RECORD_ONLY, f"unknown action type {a.type!r}"))
        elif open_subjects:
            out.append(decide(RECORD_ONLY, f"circuit breaker open for {', '.join(open_subjects)}: "
                                           f"{breaker.reason(open_subjects[0])}; owners escalated"))
        elif rollout == "shadow":
            out.append(decide(RECORD_ONLY, "rollout shadow: recorded only"))
        elif rollout == "recommend":
            out.append(decide(AWAIT_APPROVAL, "rollout recommend (or an ungoverned asset): waits for approval"))
        else:
            needed = [t] + ([ActionType.cancel_run] if a.run_id and t is ActionType.materialize else [])
            not_listed = sorted({n.value for n in needed for s in governed if not s.may_run_without_approval(n)})
            if t in NEVER_AUTOMATIC:
                out.append(decide(AWAIT_APPROVAL, f"{t.value} always needs approval"))
            elif not_listed:
                out.append(decide(AWAIT_APPROVAL, f"{', '.join(not_listed)} not in auto_approve"))
            elif level != "low":
                out.append(decide(AWAIT_APPROVAL, f"risk {level} ({score:.2f}): waits for approval"))
            elif confidence < cfg.min_confidence:
                out.append(decide(AWAIT_APPROVAL, f"confidence {confidence:.2f} < {cfg.min_confidence} ({conf_why})"))
            else:
                out.append(decide(EXECUTE, f"auto: low risk ({score:.2f}), confidence {confidence:.2f} ({conf_why})"))
    return out
