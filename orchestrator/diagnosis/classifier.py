"""Failure diagnosis: rules + failure-memory neighbours -> category, transient, confidence, evidence.

Pure Python (pydantic for the result type); no dagster imports. The sensor and the
``orchestrator diagnose`` CLI both call :func:`diagnose` / :func:`diagnose_records`.

Scoring: each matched rule adds its weight to its category (a rule counts once however many
lines match it). Memory neighbours add up to ``MEMORY_MAX`` to their labelled category, scaled
by similarity and label trust. Confidence is a softmax over the matched categories plus an
"unknown" baseline, so one weak hint stays below the threshold and a conflict between two
strong hints lowers confidence. Below the threshold the answer is ``unknown``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from orchestrator.diagnosis.normalize import scrub
from orchestrator.diagnosis.rules import CATEGORIES, DEFAULT_TRANSIENT, RuleHit, match_rules

if TYPE_CHECKING:
    from orchestrator.diagnosis.memory import FailureMemory

DEFAULT_THRESHOLD = 0.5
UNKNOWN_BASELINE = 1.5
MEMORY_MIN_SIMILARITY = 0.35
MEMORY_MAX = 6.0
MAX_EVIDENCE = 5
MAX_EVIDENCE_CHARS = 300


class Diagnosis(BaseModel):
    category: str
    transient: bool
    confidence: float = Field(ge=0.0, le=1.0)
    evidence: list[str] = Field(default_factory=list)
    scores: dict[str, float] = Field(default_factory=dict)
    neighbours: list[dict[str, Any]] = Field(default_factory=list)

    def as_output(self, id: Any) -> dict[str, Any]:
        """The CLI/JSON-lines record: exactly id, category, transient, confidence, evidence."""
        return {
            "id": id,
            "category": self.category,
            "transient": bool(self.transient),
            "confidence": round(float(self.confidence), 4),
            "evidence": list(self.evidence),
        }


def default_threshold() -> float:
    try:
        return float(os.environ.get("ORCHESTRATOR_DIAGNOSIS_THRESHOLD", DEFAULT_THRESHOLD))
    except ValueError:
        return DEFAULT_THRESHOLD


def _evidence_line(hit: RuleHit) -> str:
    line = hit.line
    if len(line) <= MAX_EVIDENCE_CHARS:
        return line
    start, end = hit.span
    half = (MAX_EVIDENCE_CHARS - (end - start)) // 2
    lo = max(0, start - max(half, 20))
    hi = min(len(line), lo + MAX_EVIDENCE_CHARS)
    return ("…" if lo > 0 else "") + line[lo:hi] + ("…" if hi < len(line) else "")


def _score(hits: list[RuleHit], system: str | None) -> dict[str, float]:
    best: dict[str, tuple[str, float]] = {}
    for h in hits:
        w = h.rule.weight * (1.25 if system and system.lower() in h.rule.systems else 1.0)
        if h.rule.name not in best or w > best[h.rule.name][1]:
            best[h.rule.name] = (h.rule.category, w)
    scores: dict[str, float] = {}
    for cat, w in best.values():
        scores[cat] = scores.get(cat, 0.0) + w
    return scores


def _softmax(scores: dict[str, float], baseline: float) -> dict[str, float]:
    m = max([baseline, *scores.values()])
    exps = {c: math.exp(s - m) for c, s in scores.items()}
    z = math.exp(baseline - m) + sum(exps.values())
    return {c: v / z for c, v in exps.items()}


def diagnose(
    message: str,
    system: str | None = None,
    memory: FailureMemory | None = None,
    *,
    threshold: float | None = None,
) -> Diagnosis:
    """Diagnose one failure message.

    ``system``: optional origin hint (fivetran, airbyte, dbt, snowflake, bigquery, postgres,
    duckdb, dagster, ...). ``memory``: optional :class:`FailureMemory` whose nearest labelled
    neighbours are combined with the rules. Below ``threshold`` (default 0.5, env
    ``ORCHESTRATOR_DIAGNOSIS_THRESHOLD``) the answer is ``unknown``. Evidence lines are scrubbed
    of secrets.
    """
    threshold = default_threshold() if threshold is None else threshold
    text = scrub(message or "")
    hits = match_rules(text, system)
    scores = _score(hits, system)

    neighbours = []
    mem_evidence: dict[str, str] = {}
    mem_transient: dict[str, bool | None] = {}
    if memory is not None and text.strip():
        for n in memory.nearest(text, k=5, min_similarity=MEMORY_MIN_SIMILARITY, labelled_only=True):
            neighbours.append(n.as_dict())
            if not n.category or n.label_weight <= 0:
                continue
            trust = min(1.0, n.label_weight)
            contrib = MEMORY_MAX * (n.similarity - MEMORY_MIN_SIMILARITY) / (1 - MEMORY_MIN_SIMILARITY) * trust
            if contrib > scores.get(f"__mem_{n.category}", 0.0):
                scores[f"__mem_{n.category}"] = contrib
                mem_evidence[n.category] = (
                    f"memory: similar to past failure #{n.signature_id} labelled {n.category} "
                    f"(similarity {n.similarity:.2f}, seen {n.occurrences}x)"
                )
                mem_transient[n.category] = n.transient
    for key in [k for k in scores if k.startswith("__mem_")]:
        cat = key[len("__mem_"):]
        scores[cat] = scores.get(cat, 0.0) + scores.pop(key)

    baseline = UNKNOWN_BASELINE + scores.pop("unknown", 0.0)
    probs = _softmax(scores, baseline)
    rounded = {c: round(s, 3) for c, s in sorted(scores.items(), key=lambda x: -x[1])}

    if not probs:
        return Diagnosis(category="unknown", transient=DEFAULT_TRANSIENT["unknown"], confidence=1.0,
                         evidence=[], scores=rounded, neighbours=neighbours)

    top = max(probs, key=lambda c: probs[c])
    p_top = probs[top]
    cat_hits = sorted((h for h in hits if h.rule.category == top), key=lambda h: -h.rule.weight)
    evidence: list[str] = []
    for h in cat_hits:
        line = _evidence_line(h)
        if line not in evidence:
            evidence.append(line)
        if len(evidence) >= MAX_EVIDENCE:
            break
    if top in mem_evidence:
        evidence.append(mem_evidence[top])

    if p_top < threshold:
        return Diagnosis(category="unknown", transient=DEFAULT_TRANSIENT["unknown"],
                         confidence=round(1.0 - p_top, 4), evidence=evidence, scores=rounded,
                         neighbours=neighbours)

    transient = DEFAULT_TRANSIENT[top]
    overrides = [h for h in cat_hits if h.rule.transient is not None]
    if overrides:
        transient = bool(overrides[0].rule.transient)
    elif not cat_hits and mem_transient.get(top) is not None:
        transient = bool(mem_transient[top])
    return Diagnosis(category=top, transient=transient, confidence=round(p_top, 4),
                     evidence=evidence, scores=rounded, neighbours=neighbours)


def diagnose_records(
    records: Iterable[dict[str, Any]],
    memory: FailureMemory | None = None,
    *,
    threshold: float | None = None,
) -> Iterator[dict[str, Any]]:
    """Diagnose ``{"id", "message", "system"?}`` records -> output records (same order)."""
    for rec in records:
        d = diagnose(rec["message"], rec.get("system"), memory, threshold=threshold)
        yield d.as_output(rec.get("id"))


__all__ = ["CATEGORIES", "Diagnosis", "diagnose", "diagnose_records", "default_threshold"]
