"""The statistical tier: deterministic training, the shipped artifact (small, fast to load, fitted
the documented way), how it combines with the rules and the memory, and what a user sees."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.diagnosis import diagnose
from orchestrator.diagnosis.crossval import (
    RULE_WEIGHTS, TEMPERATURES, THRESHOLDS, cross_validate, metrics, prepare, rules_only,
)
from orchestrator.diagnosis.model import ARTIFACT, TextModel, features, load_default, load_model
from orchestrator.diagnosis.normalize import scrub
from orchestrator.diagnosis.rules import CATEGORIES

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "data" / "failure_corpus.jsonl"


@pytest.fixture(scope="module")
def rows():
    return [json.loads(x) for x in CORPUS.read_text(encoding="utf-8").splitlines() if x.strip()]


def test_training_is_deterministic(rows):
    sample = [r for r in rows if r["category"]][::7]
    msgs, labels = [r["message"] for r in sample], [r["category"] for r in sample]
    a = TextModel.fit(msgs, labels, steps=15)
    b = TextModel.fit(list(msgs), list(labels), steps=15)
    assert a.vocab_list == b.vocab_list
    assert np.array_equal(a.W, b.W) and np.array_equal(a.b, b.b)


def test_save_load_roundtrip(tmp_path, rows):
    sample = [r for r in rows if r["category"]][::9]
    m = TextModel.fit([r["message"] for r in sample], [r["category"] for r in sample], steps=10)
    m.params = {"rule_weight": 0.5, "temperature": 1.25, "threshold": 0.3}
    m2 = TextModel.load(m.save(tmp_path / "m.npz"))
    assert m2.params == m.params and m2.classes == tuple(CATEGORIES)
    msg = sample[0]["message"]
    p1, p2 = m.proba(msg), m2.proba(msg)
    assert max(abs(p1[c] - p2[c]) for c in CATEGORIES) < 1e-2  # float16 weights on disk


def test_shipped_artifact_is_small_loads_fast_and_was_fitted_by_cv():
    assert ARTIFACT.exists(), "run: python benchmarks/bench_diagnosis.py --train"
    assert ARTIFACT.stat().st_size < 3_000_000
    m = load_model(ARTIFACT)
    assert m.classes == tuple(CATEGORIES)
    assert m.params["rule_weight"] in RULE_WEIGHTS
    assert m.params["temperature"] in TEMPERATURES
    assert m.params["threshold"] in THRESHOLDS


def test_features_ignore_numbers_ids_and_case():
    a = features("Connection refused to 10.0.0.12:5432 at 2024-01-01T00:00:00Z (run 8f3a9c2e11)")
    b = features("connection REFUSED to 192.168.1.1:6543 at 2025-12-31T23:59:59Z (run 77aa00bb99)")
    assert {k for k in a if not k.startswith(("w:8f", "w:f3"))} >= {"w:connection", "w:refused"}
    assert a["w:connection"] > 0 and b["w:connection"] > 0 and "b:connection refused" in b
    # messages that differ only in numbers, timestamps and case have the very same vector
    c = features("Connection refused to 10.0.0.12:5432 at 2024-01-01 00:00:00 (run 8812)")
    d = features("connection REFUSED to 192.168.1.1:6543 at 2025-12-31 23:59:59 (run 9120)")
    assert c == d


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(list("abcdeXYZ _-:'\"\n0123456789{}()") + ["Error", "HTTP 403 ", "Exception",
                                                                           " status 429", "timeout ", "denied"]),
                max_size=80).map("".join))
def test_fast_logits_equal_the_training_vector(text):
    """Inference sums cached per-word rows; it must give exactly the logits of the training vector."""
    m = load_default()
    idx, val = m.vector(text)
    slow = (val @ m.W[idx] + m.b) if len(idx) else m.b
    assert np.allclose(m.logits(text), slow, atol=1e-4)


@pytest.mark.parametrize("message, category", [
    ("HTTP 429 Too Many Requests", "rate_limit"),
    ("permission denied for schema analytics", "permission_denied"),
    ("FATAL: password authentication failed for user \"loader\"", "auth_expired"),
    ("Database Error in model orders (models/orders.sql)\n  syntax error at or near \"selec\"", "code_error"),
    ("Pod evicted: The node was low on resource: memory. Container main was using 3Gi", "resource_exhausted"),
])
def test_rules_keep_precision_with_the_model_on(message, category):
    d = diagnose(message)
    assert d.category == category, d
    assert d.evidence and all(isinstance(e, str) for e in d.evidence)


def test_model_fills_in_where_no_rule_fires():
    # (no rule names this: the earlier example, "Unable to acquire credentials ...", is now read by the
    # rubric-row-2 rule rubric_identity_rejected)
    msg = "Kerberos ticket for principal svc_etl@CORP.EXAMPLE has no matching key in the keytab for encryption type 18"
    with_rules_only = diagnose(msg, model=None)
    d = diagnose(msg)
    assert with_rules_only.category == "unknown"
    assert d.category != "unknown" and d.basis == "model"
    assert d.evidence, "a model-based answer still points at the line it relied on"
    assert all(e in scrub(msg) for e in d.evidence)  # verbatim lines of the (scrubbed) message


@pytest.mark.parametrize("message", ["", "failed", "Sync failed: failed", "Encountered an error:"])
def test_unknown_when_the_message_does_not_say(message):
    assert diagnose(message).category == "unknown"


def test_memory_of_a_confirmed_case_raises_confidence(tmp_path):
    from orchestrator.diagnosis.memory import FailureMemory
    from orchestrator.store import open_store

    store = open_store(f"sqlite:///{tmp_path}/m.db", cached=False)
    try:
        mem = FailureMemory(store, embeddings=False)
        msg = "Replication slot airbyte_slot is inactive; WAL retention exceeded on primary db-7"
        before = diagnose(msg, memory=mem)
        mem.learn_from_approval(msg, "source_unavailable", "retry_with_backoff", approved=True,
                                actor="alice@example.com")
        after = diagnose(msg.replace("db-7", "db-9"), memory=mem)
        assert after.category == "source_unavailable"
        assert after.confidence > (before.confidence if before.category == "source_unavailable" else 0.0)
        assert any(e.startswith("memory:") for e in after.evidence)
        learned = store.audit_events(kind="failure_memory.learn")
        assert learned and learned[-1]["actor"] == "alice@example.com"
    finally:
        store.dispose()


def test_grouped_cv_beats_rules_alone_on_issue_thread_messages(rows):
    """Small, fast version of the benchmark: 3 grouped folds over the issue-thread messages."""
    items = prepare([r for r in rows if r["kind"] == "issue_thread"])
    preds, params = cross_validate(items, k=3, inner_k=2)  # the shipped family (TF-IDF LR)
    assert len(params) == 3
    model_m = metrics(items, preds)
    rules_m = metrics(items, rules_only(items))
    assert model_m["accuracy"] > rules_m["accuracy"] + 0.1
    assert model_m["abstention"] < rules_m["abstention"]



@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10_000), min_size=0, max_size=40),
       st.lists(st.sampled_from(["", "  ", "failed", "HTTP 429 Too Many Requests\nretrying",
                                 "Expected integer value for `port`, but got {port} instead."]), max_size=5))
def test_batch_gives_the_same_answers_as_one_by_one(picks, odd):
    """diagnose_batch (vectorised model step, repeated messages diagnosed once) answers exactly as
    diagnose() per message, in order, with systems, empties and repeats; each answer is its own copy."""
    from orchestrator.diagnosis import diagnose_batch

    pool = _batch_pool()
    msgs = [pool[i % len(pool)] for i in picks] + [(m, None) for m in odd] + [pool[p % len(pool)] for p in picks[:5]]
    batch = diagnose_batch(msgs)
    assert [d.model_dump() for d in batch] == [diagnose(m, s).model_dump() for m, s in msgs]
    if len(batch) > 1:
        batch[0].evidence.append("changed")
        assert all(d.evidence[-1:] != ["changed"] for d in batch[1:])
    assert [d.category for d in diagnose_batch([m for m, _ in msgs])] == [diagnose(m).category for m, _ in msgs]


_POOL: list = []


def _batch_pool() -> list:
    if not _POOL:
        _POOL.extend((json.loads(x)["message"], json.loads(x)["system"])
                     for x in CORPUS.read_text(encoding="utf-8").splitlines() if x.strip())
    return _POOL
