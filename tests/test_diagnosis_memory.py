"""Failure memory: nearest neighbours, learning from resolutions and approvals, success rates."""

from __future__ import annotations

import pytest

from orchestrator.diagnosis import diagnose
from orchestrator.diagnosis.memory import FailureMemory, lexical_similarity
from orchestrator.store import open_store

# An in-house failure no vendor rule knows about (the rules must say "unknown").
PAST = (
    "LedgerBridgeError: upstream ledger export for partition 2024-05-01 returned status EXPORT_WEDGED "
    "(batch 8812, shard eu-3); export worker must be restarted"
)
NEW = (
    "LedgerBridgeError: upstream ledger export for partition 2024-06-17 returned status EXPORT_WEDGED "
    "(batch 9120, shard us-1); export worker must be restarted"
)


@pytest.fixture()
def memory(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}", cached=False)
    yield FailureMemory(store, embeddings=False)
    store.dispose()


def test_similarity_is_high_for_same_failure_low_for_other():
    assert lexical_similarity(PAST, NEW) > 0.8
    assert lexical_similarity(PAST, "permission denied for schema analytics") < 0.2


def test_unknown_becomes_confident_after_labelled_resolution(memory):
    before = diagnose(NEW, memory=memory, model=None)
    assert before.category == "unknown"  # no rule knows it
    assert diagnose(NEW, memory=memory).category != "source_unavailable"  # nor does the model

    memory.record_resolution(PAST, "source_unavailable", "restart_source_export", worked=True,
                             system="ledger", transient=True)
    after = diagnose(NEW, memory=memory)
    assert after.category == "source_unavailable"
    assert after.confidence >= 0.8
    assert after.transient is True
    assert any(e.startswith("memory: similar to past failure") for e in after.evidence)
    assert after.neighbours and after.neighbours[0]["similarity"] > 0.8
    # unrelated failures are not captured by the neighbour
    assert diagnose("Job failed: 1234", memory=memory).category == "unknown"
    # the same holds with the rules alone
    assert diagnose(NEW, memory=memory, model=None).category == "source_unavailable"


def test_failed_resolution_does_not_teach_category(memory):
    memory.record_resolution(PAST, "rate_limit", "retry_with_backoff", worked=False)
    assert diagnose(NEW, memory=memory, model=None).category == "unknown"
    assert diagnose(NEW, memory=memory).category != "rate_limit"


def test_success_rates_update(memory):
    memory.record_resolution(PAST, "source_unavailable", "retry_with_backoff", worked=True)
    memory.record_resolution(PAST, "source_unavailable", "retry_with_backoff", worked=False)
    memory.record_resolution(NEW, "source_unavailable", "retry_with_backoff", worked=True)
    memory.record_resolution(NEW, "source_unavailable", "restart_source_export", worked=True)
    rates = memory.success_rates("source_unavailable")
    assert rates[("source_unavailable", "retry_with_backoff")] == {"attempts": 3, "successes": 2, "rate": 2 / 3}
    assert rates[("source_unavailable", "restart_source_export")]["rate"] == 1.0
    # Laplace-smoothed: 2/3 successes -> 0.6, 1/1 -> 0.67
    assert memory.best_resolution("source_unavailable") == "restart_source_export"
    memory.record_resolution(NEW, "source_unavailable", "restart_source_export", worked=False)
    memory.record_resolution(NEW, "source_unavailable", "restart_source_export", worked=False)
    assert memory.best_resolution("source_unavailable") == "retry_with_backoff"


def test_learns_from_approvals_and_rejections(memory):
    memory.learn_from_approval(PAST, "upstream_delay", "wait_for_upstream", approved=True, actor="alice")
    assert diagnose(NEW, memory=memory).category == "upstream_delay"
    memory.learn_from_approval(PAST, "upstream_delay", "wait_for_upstream", approved=False, actor="bob")
    memory.learn_from_approval(PAST, "upstream_delay", "wait_for_upstream", approved=False, actor="bob")
    assert diagnose(NEW, memory=memory, model=None).category == "unknown"
    assert diagnose(NEW, memory=memory).category != "upstream_delay"
    kinds = [e["kind"] for e in memory.store.audit_events()]
    assert "failure_memory.learn" in kinds and "failure_memory.rejection" in kinds


def test_observations_do_not_self_reinforce(memory):
    for _ in range(5):
        memory.observe(PAST, "code_error", confidence=0.55)
    assert diagnose(NEW, memory=memory, model=None).category == "unknown"
    # the memory adds nothing to the model's own answer either
    assert diagnose(NEW, memory=memory).probabilities == diagnose(NEW).probabilities
    stats = memory.stats()
    assert stats["signatures"] == 1 and stats["occurrences"] == 5


def test_memory_does_not_override_strong_rules(memory):
    msg = "HTTP 429 Too Many Requests: rate limit exceeded for endpoint /v1/orders"
    memory.record(msg.replace("orders", "users"), "permission_denied", source="label")
    d = diagnose(msg, memory=memory)
    # a single (wrong) label cannot flip a strong, specific vendor signal into a confident wrong answer
    assert d.category in {"rate_limit", "unknown"}
