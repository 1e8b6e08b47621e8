"""Shared helpers of the decision core's planning stage (no Dagster imports)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone

from orchestrator.core.records import Action, Plan
from orchestrator.core.vocab import CONNECTOR_ACTIONS, PAUSE_AND_ESCALATE, RUN_ACTIONS, ActionType

UTC = timezone.utc


def aware(t: datetime) -> datetime:
    """``t`` with UTC attached when it carries no zone (records read from storage may not)."""
    return t if t.tzinfo else t.replace(tzinfo=UTC)

__all__ = ["CONNECTOR_ACTIONS", "ESCALATE_CATEGORIES", "RUN_ACTIONS"]

# Failure classes the planner never retries: a person must fix something first (vocab).
ESCALATE_CATEGORIES = PAUSE_AND_ESCALATE


@dataclass(frozen=True, slots=True)
class Escalation:
    """Something the planner will not fix by itself and tells the owners about."""

    subject: str  # "asset:<key>" | "connector:<id>"
    category: str
    owners: tuple[str, ...]
    reason: str
    failure_id: str | None = None


@dataclass
class AgentPlan(Plan):
    """A ``Plan`` with what does not fit in actions: escalations and per-action notes."""

    escalations: list[Escalation] = field(default_factory=list)
    # action_id -> failure ids that motivated it (for the failure memory and the gate)
    failure_links: dict[str, tuple[str, ...]] = field(default_factory=dict)
    fallback_reason: str | None = None


def action_type(action: Action) -> ActionType | None:
    return ActionType.parse(action.type)


def action_id(kind: str, *parts: object) -> str:
    """Deterministic id: the same decision in the same situation gets the same id (run keys and
    the store deduplicate on it)."""
    blob = json.dumps([kind, *[_norm(p) for p in parts]], sort_keys=True, default=str)
    return f"{kind[:4]}-{hashlib.sha1(blob.encode()).hexdigest()[:12]}"


def _norm(p: object) -> object:
    if type(p) is str:
        return p
    if isinstance(p, (list, tuple)) and all(type(x) is str for x in p):
        return list(p)  # asset keys: the common case, no recursion per key
    if isinstance(p, (set, frozenset)):
        return sorted(p)
    if isinstance(p, datetime):
        return p.astimezone(UTC).isoformat()
    if isinstance(p, Mapping):
        return {k: _norm(v) for k, v in sorted(p.items())}
    if isinstance(p, (list, tuple)):
        return [_norm(x) for x in p]
    return p


def subjects(action: Action) -> list[str]:
    """What an action acts on, for the circuit breaker and duplicate checks."""
    out = [f"asset:{k}" for k in action.asset_keys]
    if action.connector:
        out.append(f"connector:{action.connector}")
    return out


def action_to_dict(action: Action) -> dict:
    return {
        "action_id": action.action_id,
        "type": action.type,
        "reason": action.reason,
        "asset_keys": list(action.asset_keys),
        "partitions": list(action.partitions),
        "connector": action.connector,
        "tables": {k: list(v) for k, v in action.tables.items()},
        "priority": action.priority,
        "not_before": action.not_before.isoformat() if action.not_before else None,
        "run_id": action.run_id,
        "confidence": action.confidence,
        "estimated_cost_usd": action.estimated_cost_usd,
        "source": action.source,
        "cause": action.cause,
        "cycle": action.cycle,
    }


def action_from_dict(d: Mapping) -> Action:
    nb = d.get("not_before")
    return Action(
        action_id=d["action_id"],
        type=d["type"],
        reason=d.get("reason", ""),
        asset_keys=tuple(d.get("asset_keys") or ()),
        partitions=tuple(d.get("partitions") or ()),
        connector=d.get("connector"),
        tables={k: tuple(v) for k, v in (d.get("tables") or {}).items()},
        priority=int(d.get("priority") or 0),
        not_before=datetime.fromisoformat(nb) if isinstance(nb, str) else nb,
        run_id=d.get("run_id"),
        confidence=float(d.get("confidence", 1.0)),
        estimated_cost_usd=float(d.get("estimated_cost_usd") or 0.0),
        source=d.get("source", "planner"),
        cause=d.get("cause"),
        cycle=d.get("cycle"),
    )


def units_of_work(keys: Iterable[str], graph, connector: str | None = None) -> int:
    """Units of work of an action: one per connector sync (however many tables it lands), one
    per other asset. A connector syncs all its tables in one call; its tables are not N jobs."""
    conns: set[str] = {connector} if connector else set()
    other = 0
    for k in keys:
        node = graph.get(k) if graph is not None else None
        if node is not None and node.connector:
            conns.add(node.connector)
        else:
            other += 1
    return len(conns) + other


def connector_tables(graph, connector: str) -> list[str]:
    return list(graph.connector_tables(connector))


def tables_of(keys: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """Connector table asset keys ("schema/table") as {schema: (table, ...)}."""
    out: dict[str, list[str]] = {}
    for key in keys:
        schema, _, table = key.rpartition("/")
        out.setdefault(schema or "default", []).append(table)
    return {s: tuple(sorted(set(t))) for s, t in sorted(out.items())}
