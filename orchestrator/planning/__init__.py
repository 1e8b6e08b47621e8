"""Planning stage of the decision core: plan -> validate -> gate (pure Python, no Dagster).

    from orchestrator.planning import plan, validate, gate, CircuitBreaker
    p = plan(snapshot, assessment, resolution, durations, now=None)      # AgentPlan (a Plan)
    accepted, rejected = validate(p, snapshot, resolution)               # rejected: [(Action, reason)]
    decisions = gate(accepted, snapshot, assessment, resolution, memory=None, breaker=None)
    # GateDecision.decision: "execute" | "await_approval" | "record_only"; .risk, .reason
"""

from orchestrator.planning.breaker import CircuitBreaker, Trip
from orchestrator.planning.common import (
    CONNECTOR_ACTIONS,
    RUN_ACTIONS,
    AgentPlan,
    Escalation,
    action_from_dict,
    action_to_dict,
    subjects,
)
from orchestrator.planning.context import build_context, estimate_tokens, scrub_obj, scrub_pii
from orchestrator.planning.gate import AWAIT_APPROVAL, EXECUTE, RECORD_ONLY, GateConfig, GateDecision, gate
from orchestrator.planning.planner import Backoff, PlannerConfig, plan, priority_for
from orchestrator.planning.validate import ValidationConfig, validate

__all__ = [
    "AWAIT_APPROVAL", "CONNECTOR_ACTIONS", "EXECUTE", "RECORD_ONLY", "RUN_ACTIONS", "AgentPlan",
    "Backoff", "CircuitBreaker", "Escalation", "GateConfig", "GateDecision", "PlannerConfig", "Trip",
    "ValidationConfig", "action_from_dict", "action_to_dict", "build_context", "estimate_tokens",
    "gate", "plan", "priority_for", "scrub_obj", "scrub_pii", "subjects", "validate",
]
