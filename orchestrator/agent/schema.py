"""The structured plan the LLM must return (pydantic), and its merge with the baseline."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.core.records import Action
from orchestrator.planning.common import AgentPlan, action_id


class LLMAction(BaseModel):
    model_config = ConfigDict(extra="ignore")

    ref: str | None = Field(None, description="id of the baseline action this keeps or changes; null for a new action")
    type: str
    asset_keys: list[str] = Field(default_factory=list)
    partitions: list[str] = Field(default_factory=list)
    connector: str | None = None
    tables: dict[str, list[str]] = Field(default_factory=dict)
    priority: int = 0
    not_before: datetime | None = None
    run_id: str | None = None
    rationale: str = Field(min_length=1)
    confidence: float = Field(ge=0.0, le=1.0)


class LLMDrop(BaseModel):
    model_config = ConfigDict(extra="ignore")

    ref: str
    rationale: str = ""


class LLMPlan(BaseModel):
    model_config = ConfigDict(extra="ignore")

    actions: list[LLMAction]
    dropped: list[LLMDrop] = Field(default_factory=list)
    rationale: str = ""


SCHEMA_HINT = """{
  "actions": [ {"ref": "<baseline id or null>", "type": "<allowed type>", "asset_keys": ["..."],
                "partitions": ["YYYY-MM-DD"], "connector": "fivetran:<id>|airbyte:<id>|null",
                "tables": {"<schema>": ["<table>"]}, "priority": <int>, "not_before": "<ISO-8601 UTC or null>",
                "run_id": "<queued run id or null>", "rationale": "<why>", "confidence": <0..1>} ],
  "dropped": [ {"ref": "<baseline id>", "rationale": "<why>"} ],
  "rationale": "<overall reasoning, short>"
}"""


@dataclass
class LLMAgentPlan(AgentPlan):
    """The LLM's plan, with why it dropped or replaced baseline actions (baseline id -> the
    model's words, unscrubbed: the envelope scrubs what it keeps)."""

    drop_reasons: dict[str, str] = field(default_factory=dict)


def _same_subject(a: Action, b: LLMAction) -> bool:
    return (
        a.type == b.type and tuple(a.asset_keys) == tuple(b.asset_keys)
        and tuple(a.partitions) == tuple(b.partitions) and a.connector == b.connector
        and {k: tuple(v) for k, v in a.tables.items()} == {k: tuple(v) for k, v in b.tables.items()}
        and a.run_id == b.run_id
    )


def merge(baseline: AgentPlan, answer: LLMPlan, model: str) -> AgentPlan:
    """The LLM's plan over the baseline: its order, its changes, its drops (explicit only);
    baseline actions it does not mention are kept at the end."""
    by_id = {a.action_id: a for a in baseline.actions}
    dropped = {d.ref for d in answer.dropped if d.ref in by_id}
    used: set[str] = set()
    actions: list[Action] = []
    links = dict(baseline.failure_links)
    reasons = {d.ref: " ".join(d.rationale.split())[:300] for d in answer.dropped if d.ref in by_id}
    for la in answer.actions:
        base = by_id.get(la.ref or "")
        note = " ".join(la.rationale.split())[:300]
        if base is not None and base.action_id not in used and _same_subject(base, la):
            used.add(base.action_id)
            dropped.discard(base.action_id)
            reasons.pop(base.action_id, None)
            actions.append(Action(
                action_id=base.action_id, type=base.type, reason=f"{base.reason} | LLM: {note}",
                asset_keys=base.asset_keys, partitions=base.partitions, connector=base.connector,
                tables=base.tables, priority=la.priority, not_before=la.not_before or base.not_before,
                run_id=base.run_id, confidence=la.confidence, estimated_cost_usd=base.estimated_cost_usd,
                source="planner" if la.priority == base.priority and la.not_before in (None, base.not_before) else "llm",
            ))
            continue
        if base is not None and base.action_id not in used:
            used.add(base.action_id)  # replaced by a changed version
            reasons[base.action_id] = f"replaced by {la.type} on {', '.join(la.asset_keys[:3]) or la.connector}: {note}"
        new_id = action_id("llm-" + la.type, la.asset_keys, la.partitions, la.connector, la.tables,
                           la.run_id, la.not_before, la.ref)
        actions.append(Action(
            action_id=new_id, type=la.type, reason=f"LLM: {note}", asset_keys=tuple(la.asset_keys),
            partitions=tuple(la.partitions), connector=la.connector,
            tables={k: tuple(v) for k, v in la.tables.items()}, priority=la.priority,
            not_before=la.not_before, run_id=la.run_id, confidence=la.confidence,
            estimated_cost_usd=base.estimated_cost_usd if base is not None else 0.0, source="llm",
        ))
        if base is not None and base.action_id in links:
            links[new_id] = links[base.action_id]
    for a in baseline.actions:
        if a.action_id not in used and a.action_id not in dropped:
            actions.append(a)
    rationale = " ".join(answer.rationale.split())[:1000]
    if dropped:
        rationale += f" (dropped: {', '.join(sorted(dropped))})"
    return LLMAgentPlan(
        created_at=baseline.created_at, actions=actions, planner=f"llm:{model}",
        rationale=rationale or baseline.rationale, escalations=list(baseline.escalations),
        failure_links=links, drop_reasons=reasons,
    )
