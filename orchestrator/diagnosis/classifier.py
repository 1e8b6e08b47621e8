"""Failure diagnosis: rules + statistical model + failure-memory neighbours -> category, transient,
confidence, evidence.

Pure Python (pydantic for the result type, numpy for the model); no dagster imports. The sensor and
the ``orchestrator diagnose`` CLI both call :func:`diagnose` / :func:`diagnose_records`.

With the shipped model (``model.py``, on by default; ``ORCHESTRATOR_DIAGNOSIS_MODEL=off`` for rules
only) the per-category evidence is combined log-linearly:
``logit(c) = log p_model(c) + rule_weight * rules(c) + memory(c)``, then divided by a temperature;
rule weight, temperature and abstention threshold were fitted by grouped cross-validation inside
the training folds (stored in the artifact). Without a model the scoring is the original one below.

Scoring: each matched rule adds its weight to its category (a rule counts once however many
lines match it). Memory neighbours add up to ``MEMORY_MAX`` to their labelled category, scaled
by similarity and label trust. Confidence is a softmax over the matched categories plus an
"unknown" baseline, so one weak hint stays below the threshold and a conflict between two
strong hints lowers confidence. Below the threshold the answer is ``unknown``.
"""

from __future__ import annotations

import math
import os
import threading
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
MODEL_FLOOR = 1e-4
_USE_DEFAULT = object()


class Diagnosis(BaseModel):
    category: str
    transient: bool
    confidence: float = Field(ge=0.0, le=1.0)
    evidence: list[str] = Field(default_factory=list)
    scores: dict[str, float] = Field(default_factory=dict)
    neighbours: list[dict[str, Any]] = Field(default_factory=list)
    # what decided: "rules", "model", "memory" (the strongest contributor to the top category)
    basis: str = "rules"
    probabilities: dict[str, float] = Field(default_factory=dict)

    def as_output(self, id: Any) -> dict[str, Any]:
        """The CLI/JSON-lines record: exactly id, category, transient, confidence, evidence."""
        return {
            "id": id,
            "category": self.category,
            "transient": bool(self.transient),
            "confidence": round(float(self.confidence), 4),
            "evidence": list(self.evidence),
        }


def _construct(category, transient, confidence, evidence, scores, neighbours, basis, probabilities) -> Diagnosis:
    """``Diagnosis.model_construct`` with every field given, without its per-field loop (a fifth
    of the answer's assembly on the per-message path): the same ``__dict__`` (field order), fields
    set, no extra, no private (``test_fast_construct_equals_model_construct``)."""
    d = _NEW(Diagnosis)
    _SET(d, "__dict__", {"category": category, "transient": transient, "confidence": confidence,
                         "evidence": evidence, "scores": scores, "neighbours": neighbours, "basis": basis,
                         "probabilities": probabilities})
    _SET(d, "__pydantic_fields_set__", set(_DIAGNOSIS_FIELDS))
    _SET(d, "__pydantic_extra__", None)
    _SET(d, "__pydantic_private__", None)
    return d


_NEW, _SET = object.__new__, object.__setattr__
_DIAGNOSIS_FIELDS = ("category", "transient", "confidence", "evidence", "scores", "neighbours", "basis",
                     "probabilities")
assert tuple(Diagnosis.model_fields) == _DIAGNOSIS_FIELDS


def default_threshold(model_default: float | None = None) -> float:
    """``ORCHESTRATOR_DIAGNOSIS_THRESHOLD`` if set, else the model's fitted threshold, else 0.5."""
    from orchestrator.diagnosis.model import env_get

    env = env_get("ORCHESTRATOR_DIAGNOSIS_THRESHOLD")
    if env:
        try:
            return float(env)
        except ValueError:
            pass
    return DEFAULT_THRESHOLD if model_default is None else model_default


def combine(rule_scores: dict[str, float], model_probs: dict[str, float] | None,
            mem_scores: dict[str, float], *, rule_weight: float, temperature: float) -> dict[str, float]:
    """Calibrated probability per category from the three sources (log-linear, then softmax/T)."""
    cats = CATEGORIES if model_probs else tuple(sorted(set(rule_scores) | set(mem_scores)))
    logits = {}
    for c in cats:
        base = _LOG(max(model_probs.get(c, 0.0), MODEL_FLOOR)) if model_probs else 0.0
        extra = rule_scores.get(c, 0.0) * rule_weight + mem_scores.get(c, 0.0) if (rule_scores or mem_scores) else 0.0
        logits[c] = (base + extra) / temperature
    m = max(logits.values())
    exps = {c: _EXP(v - m) for c, v in logits.items()}
    z = sum(exps.values())
    return {c: v / z for c, v in exps.items()}


_LOG, _EXP = math.log, math.exp
_LOG_NCAT = math.log(len(CATEGORIES))


def _model_evidence(text: str, model, category: str, k: int = 2) -> list[str]:
    """The message lines the model, reading each line alone, finds most indicative of ``category``
    (highest probability of it; ties keep log order). Each line is verbatim from the message."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()][:50]
    if not lines:
        return []
    if len(lines) == 1:  # the whole evidence is that line
        line = lines[0]
        return [line if len(line) <= MAX_EVIDENCE_CHARS else line[:MAX_EVIDENCE_CHARS] + "…"]
    c = model.classes.index(category)
    scored = []
    for pos, line in enumerate(lines):
        if not any(ch.isalpha() for ch in line):
            continue
        p = model.proba(line)[model.classes[c]]
        if p >= 1.0 / len(model.classes):  # the line leans towards the class at all
            scored.append((-p, pos, line))
    out = []
    for _, _, line in sorted(scored)[:k]:
        out.append(line if len(line) <= MAX_EVIDENCE_CHARS else line[:MAX_EVIDENCE_CHARS] + "…")
    return out


def _evidence_line(hit: RuleHit) -> str:
    line = hit.line
    if len(line) <= MAX_EVIDENCE_CHARS:
        return line
    start, end = hit.span
    half = (MAX_EVIDENCE_CHARS - (end - start)) // 2
    lo = max(0, start - max(half, 20))
    hi = min(len(line), lo + MAX_EVIDENCE_CHARS)
    return ("…" if lo > 0 else "") + line[lo:hi] + ("…" if hi < len(line) else "")


# --------------------------------------------------------------------------- rule reliability
# Measured, not shipped: a rule's precision on labelled training items, as a weight multiplier
# (smoothed towards RELIABILITY_PRIOR with RELIABILITY_STRENGTH pseudo-hits; at or below
# RELIABILITY_FLOOR the rule would defer to the model entirely). Issue 16's tenth round measured
# deferral by fold-measured precision in grouped CV (``benchmarks/diagnosis_rule_deferral.py``): it
# changed category accuracy by -0.2 to -0.5 points (noise) and lowered the ECE, so the shipped
# scoring keeps every rule at its written weight (``reliability=None``); see the README.
RELIABILITY_PRIOR = 0.9
RELIABILITY_STRENGTH = 4.0
RELIABILITY_FLOOR = 0.5


def rule_reliability(items: Iterable[Any], *, prior: float = RELIABILITY_PRIOR,
                     strength: float = RELIABILITY_STRENGTH, floor: float = RELIABILITY_FLOOR) -> dict[str, float]:
    """Weight multiplier per rule name from labelled items (objects with ``hits`` and ``category``):
    smoothed precision ``p = (correct + strength * prior) / (hits + strength)`` (a rule counts once
    per item), multiplier ``max(0, (p - floor) / (1 - floor))``. Rules never hit get the prior's
    multiplier; items without a label are ignored."""
    from orchestrator.diagnosis.rules import RULES

    n: dict[str, int] = {}
    ok: dict[str, int] = {}
    for it in items:
        gold = getattr(it, "category", None)
        if not gold:
            continue
        for rule in {h.rule for h in it.hits}:
            n[rule.name] = n.get(rule.name, 0) + 1
            ok[rule.name] = ok.get(rule.name, 0) + (gold == rule.category)
    out = {}
    for rule in RULES:
        p = (ok.get(rule.name, 0) + strength * prior) / (n.get(rule.name, 0) + strength)
        out[rule.name] = round(max(0.0, (p - floor) / (1.0 - floor)), 4)
    return out


def _score(hits: list[RuleHit], system: str | None, reliability: dict[str, float] | None = None) -> dict[str, float]:
    """Rule score per category: each matched rule once, its weight (x1.25 when the origin hint is
    one of its systems), times ``reliability[rule name]`` when given (a multiplier of 0 drops it)."""
    best: dict[str, tuple[str, float]] = {}
    for h in hits:
        w = h.rule.weight * (1.25 if system and system.lower() in h.rule.systems else 1.0)
        if reliability is not None:
            w *= reliability.get(h.rule.name, 1.0)
            if w <= 0.0:
                continue
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
    model: Any = _USE_DEFAULT,
) -> Diagnosis:
    """Diagnose one failure message.

    ``system``: optional origin hint (fivetran, airbyte, dbt, snowflake, bigquery, postgres,
    duckdb, dagster, ...). ``memory``: optional :class:`FailureMemory` whose nearest labelled
    neighbours are combined with the rules and the model. ``model``: a
    :class:`~orchestrator.diagnosis.model.TextModel`, ``None`` for rules (+memory) only, default
    the shipped artifact. Below ``threshold`` (default: the model's fitted threshold, 0.5 without
    a model, env ``ORCHESTRATOR_DIAGNOSIS_THRESHOLD``) the answer is ``unknown``. Evidence lines
    are scrubbed of secrets.
    """
    if model is _USE_DEFAULT:
        from orchestrator.diagnosis.model import load_default

        model = load_default()
    params = model.params if model is not None else {}
    threshold = default_threshold(params.get("threshold")) if threshold is None else threshold
    memo = _memo_for(memory, model)
    if memo is not None:
        key = (message, system, threshold)
        hit = memo.get(key)
        if hit is None:
            hit = memo[key] = _diagnose(message, system, memory, threshold, model)
            if len(memo) > MEMO_MAX:
                memo.clear()
                memo[key] = hit
        return hit.model_copy(deep=True)
    return _diagnose(message, system, memory, threshold, model)


MEMO_MAX = 4096
_MEMO = threading.local()


def _memo_for(memory, model) -> dict | None:
    """Diagnoses already made with this failure memory in its current state (orchestrator.perf).

    Only with a memory: a sensor or the simulator diagnoses the same failures tick after tick,
    and the memory's neighbour search is the costly part. The answer depends on the message,
    system, threshold, model and the memory's loaded index; the memory drops its index whenever
    a write can change a neighbour, so a new index object starts a new memo. Not with embeddings
    (an endpoint answers the query)."""
    from orchestrator import perf

    if memory is None or not perf.enabled() or getattr(memory, "_embedder", None) is not None:
        return None
    load = getattr(memory, "_load_index", None)
    if load is None:
        return None
    index = load()
    state = getattr(_MEMO, "state", None)
    if state is None or state[0] is not memory or state[1] is not index or state[2] is not model:
        state = _MEMO.state = (memory, index, model, {})
    return state[3]


def _diagnose(message: str, system: str | None, memory, threshold: float, model) -> Diagnosis:
    text = scrub(message or "")
    hits = match_rules(text, system)
    scores = _score(hits, system)

    neighbours = []
    mem_scores: dict[str, float] = {}
    mem_evidence: dict[str, str] = {}
    mem_transient: dict[str, bool | None] = {}
    if memory is not None and text.strip():
        for n in memory.nearest(text, k=5, min_similarity=MEMORY_MIN_SIMILARITY, labelled_only=True):
            neighbours.append(n.as_dict())
            if not n.category or n.label_weight <= 0:
                continue
            trust = min(1.0, n.label_weight)
            contrib = MEMORY_MAX * (n.similarity - MEMORY_MIN_SIMILARITY) / (1 - MEMORY_MIN_SIMILARITY) * trust
            if contrib > mem_scores.get(n.category, 0.0):
                mem_scores[n.category] = contrib
                mem_evidence[n.category] = (
                    f"memory: similar to past failure #{n.signature_id} labelled {n.category} "
                    f"(similarity {n.similarity:.2f}, seen {n.occurrences}x)"
                )
                mem_transient[n.category] = n.transient

    if model is not None:
        return _diagnose_with_model(text, hits, scores, mem_scores, mem_evidence, mem_transient,
                                    neighbours, model, threshold)

    for cat, v in mem_scores.items():
        scores[cat] = scores.get(cat, 0.0) + v
    baseline = UNKNOWN_BASELINE + scores.pop("unknown", 0.0)
    probs = _softmax(scores, baseline)
    rounded = {c: round(s, 3) for c, s in sorted(scores.items(), key=lambda x: -x[1])}

    if not probs:
        return Diagnosis(category="unknown", transient=DEFAULT_TRANSIENT["unknown"], confidence=1.0,
                         evidence=[], scores=rounded, neighbours=neighbours)

    top = max(probs, key=lambda c: probs[c])
    p_top = probs[top]
    cat_hits, evidence = _rule_evidence(hits, top)
    if top in mem_evidence:
        evidence.append(mem_evidence[top])
    basis = "memory" if top in mem_scores and not cat_hits else "rules"

    if p_top < threshold:
        return Diagnosis(category="unknown", transient=DEFAULT_TRANSIENT["unknown"],
                         confidence=round(1.0 - p_top, 4), evidence=evidence, scores=rounded,
                         neighbours=neighbours, basis=basis)

    transient = _transient(top, cat_hits, mem_transient)
    return Diagnosis(category=top, transient=transient, confidence=round(p_top, 4),
                     evidence=evidence, scores=rounded, neighbours=neighbours, basis=basis)


def _rule_evidence(hits: list[RuleHit], top: str) -> tuple[list[RuleHit], list[str]]:
    """The rule hits of the winning class, strongest first, and their distinct evidence lines."""
    cat_hits = sorted((h for h in hits if h.rule.category == top), key=lambda h: -h.rule.weight)
    evidence: list[str] = []
    for h in cat_hits:
        line = _evidence_line(h)
        if line not in evidence:
            evidence.append(line)
        if len(evidence) >= MAX_EVIDENCE:
            break
    return cat_hits, evidence


def _transient(top: str, cat_hits: list[RuleHit], mem_transient: dict[str, bool | None]) -> bool:
    overrides = [h for h in cat_hits if h.rule.transient is not None]
    if overrides:
        return bool(overrides[0].rule.transient)
    if not cat_hits and mem_transient.get(top) is not None:
        return bool(mem_transient[top])
    return DEFAULT_TRANSIENT[top]


def _combined(Z, classes, rule_rows, mem_rows, *, rule_weight: float, temperature: float):
    """(model probabilities, combined probabilities) for a batch: row ``i`` of ``Z`` holds one
    message's model logits; ``rule_rows`` / ``mem_rows`` its rule / memory scores (dicts). The same
    arithmetic as :func:`combine`, one numpy pass for the whole batch."""
    import numpy as np

    Z = np.asarray(Z, dtype=np.float64)
    P = np.exp(Z - Z.max(axis=1, keepdims=True))
    P /= P.sum(axis=1, keepdims=True)
    L = np.log(np.maximum(P, MODEL_FLOOR))
    col = {c: j for j, c in enumerate(classes)}
    for i, (rs, ms) in enumerate(zip(rule_rows, mem_rows)):
        for c, v in rs.items():
            j = col.get(c)
            if j is not None:
                L[i, j] += v * rule_weight
        for c, v in ms.items():
            j = col.get(c)
            if j is not None:
                L[i, j] += v
    if temperature != 1.0:
        L /= temperature
    Q = np.exp(L - L.max(axis=1, keepdims=True))
    Q /= Q.sum(axis=1, keepdims=True)
    return P, Q


def _empty_logits(classes):
    """Logits that give the model probability 1 to ``unknown`` (an empty message)."""
    import numpy as np

    z = np.full(len(classes), -1e9)
    z[list(classes).index("unknown")] = 0.0
    return z


def _diagnose_with_model(text, hits, scores, mem_scores, mem_evidence, mem_transient, neighbours,
                         model, threshold) -> Diagnosis:
    # one message: plain-Python softmax/combine (numpy's per-call overhead dominates on 12 numbers)
    # (the same arithmetic as model.proba + combine, on lists in the model's class order)
    classes = model.classes
    if text.strip():
        z = model.logits(text).tolist()
        zm = max(z)
        e = [_EXP(v - zm) for v in z]
        tot = sum(e)
        p_model = [v / tot for v in e]
    else:
        p_model = [1.0 if c == "unknown" else 0.0 for c in classes]
    params = model.params
    rule_weight, temperature = params.get("rule_weight", 1.0), params.get("temperature", 1.0)
    logits = [_LOG(p if p > MODEL_FLOOR else MODEL_FLOOR) for p in p_model]
    if scores or mem_scores:
        for j, c in enumerate(classes):
            logits[j] += scores.get(c, 0.0) * rule_weight + mem_scores.get(c, 0.0)
    if temperature != 1.0:
        logits = [v / temperature for v in logits]
    m = max(logits)
    e = [_EXP(v - m) for v in logits]
    tot = sum(e)
    q = [v / tot for v in e]
    return _finish_with_model(text, hits, scores, mem_scores, mem_evidence, mem_transient, neighbours,
                              model, threshold, p_model, q)


def _finish_with_model(text, hits, scores, mem_scores, mem_evidence, mem_transient, neighbours,
                       model, threshold, p_model, q) -> Diagnosis:
    """The answer from one message's model probabilities ``p_model`` and combined ``q`` (arrays
    in ``model.classes`` order)."""
    params = model.params
    classes = model.classes
    qs = q.tolist() if hasattr(q, "tolist") else q
    ti = max(range(len(qs)), key=qs.__getitem__)  # first maximum, as max() over the dict was
    top, p_top = classes[ti], qs[ti]
    rounded = {c: round(s, 3) for c, s in sorted(scores.items(), key=lambda x: -x[1])}
    cat_hits, evidence = _rule_evidence(hits, top)
    rule_part = params.get("rule_weight", 1.0) * scores.get(top, 0.0)
    model_part = math.log(max(float(p_model[ti]), MODEL_FLOOR)) + _LOG_NCAT
    mem_part = mem_scores.get(top, 0.0)
    basis = max((("rules", rule_part), ("model", model_part), ("memory", mem_part)), key=lambda x: x[1])[0]
    if top != "unknown" and (basis == "model" or not evidence):
        for line in _model_evidence(text, model, top):
            if line not in evidence:
                evidence.append(line)
    if top in mem_evidence:
        evidence.append(mem_evidence[top])
    order = sorted(range(len(qs)), key=lambda j: -qs[j])[:3]
    top_probs = {classes[j]: round(qs[j], 4) for j in order}
    # every field is computed here from validated parts (confidence is a probability in [0, 1]):
    # model_construct skips re-validating them on the hot path
    if top == "unknown" or p_top < threshold:
        p_unknown = qs[classes.index("unknown")]
        return _construct(category="unknown", transient=DEFAULT_TRANSIENT["unknown"],
                          confidence=round(p_unknown if top == "unknown" else 1.0 - p_top, 4),
                          evidence=evidence, scores=rounded, neighbours=neighbours, basis=basis,
                          probabilities=top_probs)
    return _construct(category=top, transient=_transient(top, cat_hits, mem_transient),
                      confidence=round(p_top, 4), evidence=evidence, scores=rounded,
                      neighbours=neighbours, basis=basis, probabilities=top_probs)


def diagnose_batch(
    messages: Iterable[str | tuple[str, str | None]],
    memory: FailureMemory | None = None,
    *,
    threshold: float | None = None,
    model: Any = _USE_DEFAULT,
) -> list[Diagnosis]:
    """Diagnose many messages at once: the same answers as :func:`diagnose` one by one, faster.

    ``messages``: strings or ``(message, system)`` pairs. The model step is vectorised (one numpy
    pass combines every message's model logits with its rule scores) and a message repeated in
    the batch (logs repeat) is diagnosed once. With a failure memory (a neighbour search per
    message) or without a model it falls back to :func:`diagnose` per message."""
    pairs = [(m, None) if isinstance(m, str) or m is None else (m[0], m[1]) for m in messages]
    if model is _USE_DEFAULT:
        from orchestrator.diagnosis.model import load_default

        model = load_default()
    if model is None or memory is not None:
        return [diagnose(m, s, memory, threshold=threshold, model=model) for m, s in pairs]
    threshold = default_threshold(model.params.get("threshold")) if threshold is None else threshold
    first: dict[tuple[str, str | None], int] = {}
    uniq: list[tuple[str, str | None]] = []
    slot = []
    for key in pairs:
        j = first.get(key)
        if j is None:
            j = first[key] = len(uniq)
            uniq.append(key)
        slot.append(j)
    if not uniq:
        return []
    texts = [scrub(m or "") for m, _ in uniq]
    hits = [match_rules(t, s) for t, (_, s) in zip(texts, uniq)]
    scores = [_score(h, s) for h, (_, s) in zip(hits, uniq)]
    Z = [model.logits(t) if t.strip() else _empty_logits(model.classes) for t in texts]
    P, Q = _combined(Z, model.classes, scores, [{}] * len(uniq),
                     rule_weight=model.params.get("rule_weight", 1.0),
                     temperature=model.params.get("temperature", 1.0))
    out = [_finish_with_model(t, h, sc, {}, {}, {}, [], model, threshold, P[i], Q[i])
           for i, (t, h, sc) in enumerate(zip(texts, hits, scores))]
    seen: set[int] = set()
    result = []
    for j in slot:  # a repeated message gets its own copy
        result.append(out[j] if j not in seen else out[j].model_copy(deep=True))
        seen.add(j)
    return result


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


__all__ = ["CATEGORIES", "Diagnosis", "combine", "diagnose", "diagnose_batch", "diagnose_records",
           "default_threshold"]
