"""The compact, scrubbed context the LLM agent gets (pure Python).

Only the at-risk subgraph goes out: targets at risk or breached (least slack first), the assets
on their critical paths and around failures, their predicted durations, failures with their
class and evidence, budgets that are burning, in-flight runs touching the subgraph and the
baseline plan. Every string passes through :func:`scrub_pii` (credentials, e-mail addresses,
IP addresses, phone and card numbers); owners are never sent. The context is shrunk until its
token estimate fits ``max_tokens`` (default 4,000).
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime

from orchestrator.core.records import Assessment, FreshnessStatus, Plan, Snapshot
from orchestrator.scrubbing import scrub_obj, scrub_pii  # noqa: F401 (re-exported)
from orchestrator.policies import ActionType, DurationModel

_WORD = re.compile(r"\w+|[^\w\s]")


def estimate_tokens(text: str) -> int:
    """A conservative BPE token estimate (no tokenizer download needed): words split every 5
    characters, each punctuation mark one token. Over-counts tiktoken's cl100k on JSON by ~10-30%."""
    return sum(math.ceil(len(w) / 5) if w[0].isalnum() or w[0] == "_" else 1 for w in _WORD.findall(text))


def _iso(t: datetime | None) -> str | None:
    return t.strftime("%Y-%m-%dT%H:%MZ") if t else None


def _clip(text: str, n: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def build_context(
    plan: Plan,
    snapshot: Snapshot,
    assessment: Assessment,
    resolution=None,
    durations=None,
    *,
    max_tokens: int = 4000,
) -> tuple[dict, int]:
    """Returns (context, estimated tokens of its JSON)."""
    graph = snapshot.graph
    model = durations if isinstance(durations, DurationModel) else DurationModel(durations or {})
    urgent = sorted(
        (fa for fa in assessment.freshness.values()
         if fa.status in (FreshnessStatus.at_risk, FreshnessStatus.breached)),
        key=lambda fa: (fa.slack_s if fa.slack_s is not None else float("inf"), fa.asset_key),
    )
    fails = [d for d in assessment.failures if d.root_failure_id is None]
    fails.sort(key=lambda d: d.failure.at, reverse=True)

    def make(n_targets: int, n_fail: int, n_nodes: int, n_actions: int, ev_chars: int) -> dict:
        nodes: list[str] = []
        seen: set[str] = set()

        def add(k: str | None) -> None:
            if k and k in graph and k not in seen and len(nodes) < n_nodes:
                seen.add(k)
                nodes.append(k)

        for a in plan.actions[:n_actions]:
            for k in a.asset_keys[:8]:
                add(k)
        for fa in urgent[:n_targets]:
            add(fa.asset_key)
            add(fa.blocking_asset)
        for d in fails[:n_fail]:
            add(d.failure.asset_key)
        sub = {k: [u for u in graph.parents(k) if u in seen] for k in nodes}
        ctx = {
            "now": _iso(snapshot.taken_at),
            "allowed_types": [t.value for t in ActionType],
            "at_risk": [
                {"key": fa.asset_key, "tier": str(getattr(fa.tier, "value", fa.tier)), "status": fa.status.value,
                 "slack_min": None if fa.slack_s is None else round(fa.slack_s / 60),
                 "deadline": _iso(fa.deadline), "blocker": fa.blocking_asset}
                for fa in urgent[:n_targets]
            ],
            "n_at_risk": len(urgent),
            "subgraph": {k: v for k, v in sub.items()},
            "p90_min": {k: round(model.seconds(graph.node(k)) / 60, 1) for k in nodes},
            "partitioned": [k for k in nodes if graph.node(k).partitioning],
            "connectors": {k: graph.node(k).connector for k in nodes if graph.node(k).connector},
            "failures": [
                {"id": d.failure.failure_id, "asset": d.failure.asset_key, "connector": d.failure.connector,
                 "partition": d.failure.partition, "class": d.category, "transient": d.transient,
                 "conf": round(d.confidence, 2), "at": _iso(d.failure.at),
                 "evidence": [_clip(e, ev_chars) for e in d.evidence[:2]],
                 "message": _clip(d.failure.message, ev_chars)}
                for d in fails[:n_fail]
            ],
            "budgets": [
                {"scope": c.scope, "spent_day": round(c.spent_today_usd, 2),
                 "forecast_day": round(c.forecast_day_usd, 2), "budget_day": c.budget_day_usd}
                for c in assessment.cost if c.over_budget or c.spike
            ][:10],
            "in_flight": [
                {"run": r.run_id, "status": r.status.value, "priority": r.priority,
                 "assets": [k for k in r.asset_keys if k in seen][:6]}
                for r in snapshot.in_flight() if seen.intersection(r.asset_keys)
            ][:15],
            "baseline": [
                {"id": a.action_id, "type": a.type, "assets": list(a.asset_keys[:12]),
                 **({"n_assets": len(a.asset_keys)} if len(a.asset_keys) > 12 else {}),
                 "partitions": list(a.partitions), "connector": a.connector,
                 "tables": {s: list(t) for s, t in a.tables.items()} or None,
                 "priority": a.priority, "not_before": _iso(a.not_before), "run_id": a.run_id,
                 "why": _clip(a.reason, 160)}
                for a in plan.actions[:n_actions]
            ],
            "n_baseline": len(plan.actions),
        }
        return scrub_obj(ctx)

    sizes = [(30, 15, 80, 40, 200), (20, 10, 60, 30, 160), (12, 8, 40, 20, 120),
             (8, 5, 25, 12, 100), (5, 3, 15, 8, 80), (3, 2, 8, 5, 60)]
    ctx, tokens = {}, 0
    for s in sizes:
        ctx = make(*s)
        tokens = estimate_tokens(json.dumps(ctx, separators=(",", ":")))
        if tokens <= max_tokens:
            break
    return ctx, tokens
