"""Assessment (decision core, no Dagster imports): Snapshot -> Assessment.

    from orchestrator.assessment import assess
    a = assess(snapshot, resolution, DurationModel(snapshot.durations), memory=FailureMemory(),
               rates=CostRates())
    a.freshness["dashboard/executive_revenue"].status   # ok | at_risk | breached
    a.cost        # list[CostAssessment], over budget / spikes first
    a.failures    # list[DiagnosedFailure], downstream ones linked to their root
"""

from __future__ import annotations

from datetime import datetime

from orchestrator.assessment.cost import CostRates, assess_cost, attribute
from orchestrator.assessment.failures import diagnose_failures, link_root_causes
from orchestrator.assessment.freshness import DEFAULT_MARGIN_S, assess_freshness, recoveries
from orchestrator.core.records import Assessment, Snapshot

__all__ = [
    "CostRates", "DEFAULT_MARGIN_S", "assess", "assess_cost", "assess_freshness", "attribute",
    "diagnose_failures", "link_root_causes", "recoveries",
]


def assess(
    snapshot: Snapshot,
    resolution,
    durations=None,
    *,
    memory=None,
    rates: CostRates | None = None,
    now: datetime | None = None,
    margin_s: float = DEFAULT_MARGIN_S,
    known_diagnoses=None,
) -> Assessment:
    """Freshness, cost and failures of one snapshot. Invalid policies: ``skipped`` says why;
    failures are still diagnosed (they do not depend on policies). ``known_diagnoses``: failure
    id -> a stored diagnosis (the failure sensor's), reused instead of diagnosing again."""
    now = now or snapshot.taken_at
    out = Assessment(taken_at=now)
    out.failures = diagnose_failures(snapshot.failures, snapshot.graph, memory, known=known_diagnoses)
    if resolution is None or not getattr(resolution, "ok", False):
        out.skipped = getattr(resolution, "skip_reason", None) or "no SLA policies resolved"
        return out
    out.freshness = assess_freshness(snapshot, resolution, durations, now, margin_s=margin_s)
    if getattr(snapshot, "anomalous_loads", None):  # untrusted loads (orchestrator.health.hold)
        from orchestrator.health.hold import annotate

        out.freshness = annotate(snapshot, out.freshness)
    out.cost = assess_cost(snapshot, resolution, rates, now)
    return out
