"""The compact, scrubbed context the LLM agent gets (pure Python).

Only the at-risk subgraph goes out: targets at risk or breached (least slack first), the assets
on their critical paths and around failures, their predicted durations, failures with their
class and evidence, budgets that are burning, in-flight runs touching the subgraph and the
baseline plan, and a count by kind of the targets at risk and failures not listed. Every string
passes through :func:`scrub_pii` once (credentials, e-mail addresses, IP addresses, phone and card
numbers); owners are never sent. The largest of a few sizes whose token estimate fits
``max_tokens`` (default 4,000) is sent; the work is linear in the assessment and otherwise bounded
by the largest size, and a time budget can stop growing it (the smallest size is always built).
"""

from __future__ import annotations

import heapq
import json
import math
import re
import time
from collections import Counter
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


def _widen(part: str, whole: str) -> str:
    """``part`` (evidence: a slice of the message) widened to whole words of ``whole``: a slice
    that cut a credential in two would leave a prefix no pattern recognises."""
    i = whole.find(part) if part else -1
    if i < 0:
        return part
    j = i + len(part)
    while i > 0 and not whole[i - 1].isspace():
        i -= 1
    while j < len(whole) and not whole[j].isspace():
        j += 1
    return whole[i:j]


def _scrubber():
    """scrub_pii with a memo: each distinct string of one context is scrubbed once, however many
    sizes are tried and however often it appears (asset keys repeat across sections)."""
    memo: dict[str, str] = {}

    def s(text) -> str | None:
        if text is None:
            return None
        text = str(text)
        out = memo.get(text)
        if out is None:
            out = memo[text] = scrub_pii(text)
        return out

    def obj(o):
        if isinstance(o, str):
            return s(o)
        if isinstance(o, dict):
            return {s(k): obj(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [obj(v) for v in o]
        return o

    return s, obj


class ScrubbedContext(dict):
    """A context whose every string (keys included) went through :func:`scrub_pii`:
    ``orchestrator.agent.review`` serialises it as it is (a plain dict is scrubbed there)."""


# (targets, failures, nodes, baseline actions, characters of evidence), smallest first: the
# largest that fits max_tokens (and the time budget) is sent
SIZES = ((3, 2, 8, 5, 60), (5, 3, 15, 8, 80), (8, 5, 25, 12, 100), (12, 8, 40, 20, 120),
         (20, 10, 60, 30, 160), (30, 15, 80, 40, 200))
_RAW_CHARS = 4000  # a message is scrubbed whole up to this many characters, then clipped


def build_context(
    plan: Plan,
    snapshot: Snapshot,
    assessment: Assessment,
    resolution=None,
    durations=None,
    *,
    max_tokens: int = 4000,
    time_budget_s: float | None = None,
) -> tuple[dict, int]:
    """Returns (context, estimated tokens of its JSON).

    Bounded work whatever the fleet's size: one linear pass over the assessment (targets at risk,
    root failures: top-N by slack / recency with a count-by-kind summary of the rest), then
    contexts of growing size built from rows computed once (each distinct string scrubbed once,
    a failure message scrubbed whole before it is clipped) until the next size would exceed
    ``max_tokens`` or ``time_budget_s`` (seconds of this call) is spent; the smallest size is
    always built."""
    t_end = None if time_budget_s is None else time.monotonic() + time_budget_s
    s, sobj = _scrubber()
    graph = snapshot.graph
    model = durations if isinstance(durations, DurationModel) else DurationModel(durations or {})
    top_t, top_f, top_n, top_a, _ = SIZES[-1]
    risky = [fa for fa in assessment.freshness.values()
             if fa.status in (FreshnessStatus.at_risk, FreshnessStatus.breached)]
    inf = float("inf")
    urgent = heapq.nsmallest(top_t, risky, key=lambda fa: (fa.slack_s if fa.slack_s is not None else inf, fa.asset_key))
    roots = [d for d in assessment.failures if d.root_failure_id is None]
    fails = heapq.nlargest(top_f, roots, key=lambda d: d.failure.at)
    actions = list(plan.actions[:top_a])
    in_flight = snapshot.in_flight()
    parents: dict[str, list[str]] = {}
    node_rows: dict[str, tuple] = {}

    def node(k: str) -> tuple:
        row = node_rows.get(k)
        if row is None:
            n = graph.node(k)
            row = node_rows[k] = (round(model.seconds(n) / 60, 1), bool(n.partitioning), n.connector)
        return row

    def _tier(fa) -> str:
        return str(getattr(fa.tier, "value", fa.tier))

    # counted once (linear); a size's summary subtracts what it lists
    all_status = Counter(fa.status.value for fa in risky)
    all_tier = Counter(_tier(fa) for fa in risky)
    all_class = Counter(str(d.category) for d in roots)

    def rest(n_targets: int, n_fail: int) -> dict:
        """What is not listed, counted by kind: the model knows how much it does not see."""
        out: dict = {}
        if len(risky) > n_targets:
            status, tier = all_status.copy(), all_tier.copy()
            status.subtract(fa.status.value for fa in urgent[:n_targets])
            tier.subtract(_tier(fa) for fa in urgent[:n_targets])
            out["at_risk"] = {"n": len(risky) - min(n_targets, len(urgent)),
                              "by_status": {k: v for k, v in status.items() if v > 0},
                              "by_tier": {k: v for k, v in tier.most_common(6) if v > 0}}
        if len(roots) > n_fail:
            cls = all_class.copy()
            cls.subtract(str(d.category) for d in fails[:n_fail])
            out["failures"] = {"n": len(roots) - min(n_fail, len(fails)),
                               "by_class": {k: v for k, v in cls.most_common(8) if v > 0}}
        return out

    msg_cache: dict[int, tuple[str, list[str]]] = {}

    def scrubbed_failure(d) -> tuple[str, list[str]]:
        hit = msg_cache.get(id(d))
        if hit is None:
            raw = str(d.failure.message or "")[:_RAW_CHARS]
            hit = msg_cache[id(d)] = (s(" ".join(raw.split())),
                                      [s(" ".join(_widen(str(e)[:_RAW_CHARS], raw).split())) for e in d.evidence[:2]])
        return hit

    def make(n_targets: int, n_fail: int, n_nodes: int, n_actions: int, ev_chars: int) -> dict:
        nodes: list[str] = []
        seen: set[str] = set()

        def add(k: str | None) -> None:
            if k and k not in seen and len(nodes) < n_nodes and k in graph:
                seen.add(k)
                nodes.append(k)

        for a in actions[:n_actions]:
            for k in a.asset_keys[:8]:
                add(k)
        for fa in urgent[:n_targets]:
            add(fa.asset_key)
            add(fa.blocking_asset)
        for d in fails[:n_fail]:
            add(d.failure.asset_key)
        sub = {}
        for k in nodes:
            ps = parents.get(k)
            if ps is None:
                ps = parents[k] = list(graph.parents(k))
            sub[k] = [u for u in ps if u in seen]
        failures = []
        for d in fails[:n_fail]:
            message, evidence = scrubbed_failure(d)
            failures.append(
                {"id": d.failure.failure_id, "asset": d.failure.asset_key, "connector": d.failure.connector,
                 "partition": d.failure.partition, "class": d.category, "transient": d.transient,
                 "conf": round(d.confidence, 2), "at": _iso(d.failure.at),
                 "evidence": [_clip(e, ev_chars) for e in evidence], "message": _clip(message, ev_chars)})
        ctx = {
            "now": _iso(snapshot.taken_at),
            "allowed_types": [t.value for t in ActionType],
            "at_risk": [
                {"key": fa.asset_key, "tier": str(getattr(fa.tier, "value", fa.tier)), "status": fa.status.value,
                 "slack_min": None if fa.slack_s is None else round(fa.slack_s / 60),
                 "deadline": _iso(fa.deadline), "blocker": fa.blocking_asset}
                for fa in urgent[:n_targets]
            ],
            "n_at_risk": len(risky),
            "subgraph": sub,
            "p90_min": {k: node(k)[0] for k in nodes},
            "partitioned": [k for k in nodes if node(k)[1]],
            "connectors": {k: node(k)[2] for k in nodes if node(k)[2]},
            "failures": failures,
            "n_failures": len(roots),
            "budgets": [
                {"scope": c.scope, "spent_day": round(c.spent_today_usd, 2),
                 "forecast_day": round(c.forecast_day_usd, 2), "budget_day": c.budget_day_usd}
                for c in assessment.cost if c.over_budget or c.spike
            ][:10],
            "in_flight": [
                {"run": r.run_id, "status": r.status.value, "priority": r.priority,
                 "assets": [k for k in r.asset_keys if k in seen][:6]}
                for r in in_flight if seen.intersection(r.asset_keys)
            ][:15],
            "baseline": [
                {"id": a.action_id, "type": a.type, "assets": list(a.asset_keys[:12]),
                 **({"n_assets": len(a.asset_keys)} if len(a.asset_keys) > 12 else {}),
                 "partitions": list(a.partitions), "connector": a.connector,
                 "tables": {sc: list(t) for sc, t in a.tables.items()} or None,
                 "priority": a.priority, "not_before": _iso(a.not_before), "run_id": a.run_id,
                 "why": _clip(s(" ".join(str(a.reason)[:_RAW_CHARS].split())), 160)}
                for a in actions[:n_actions]
            ],
            "n_baseline": len(plan.actions),
        }
        more = rest(n_targets, n_fail)
        if more:
            ctx["not_shown"] = more
        return ScrubbedContext(sobj(ctx))

    best, best_tokens = None, 0
    for size in SIZES:
        ctx = make(*size)
        tokens = estimate_tokens(json.dumps(ctx, separators=(",", ":")))
        if best is not None and tokens > max_tokens:
            break
        best, best_tokens = ctx, tokens
        if tokens > max_tokens or (t_end is not None and time.monotonic() > t_end):
            break
    return best, best_tokens
