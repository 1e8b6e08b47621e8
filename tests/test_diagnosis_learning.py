"""The learning loop over a simulated month (issue 16, item 6): people's confirmed resolutions
become memory cases, the next occurrence of the signature resolves itself where the policy allows,
and an automatic action is never unsafe."""

from __future__ import annotations

import pytest

from orchestrator.diagnosis.learning import AUTO_APPROVE, PEOPLE, Kind, may_execute, simulate_learning
from orchestrator.diagnosis.memory import FailureMemory
from orchestrator.store import open_store


@pytest.fixture(scope="module")
def month(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('learning') / 'store.db'}"
    run = simulate_learning(30, seed=0, store_url=url, scale=0.5)
    store = open_store(url, cached=False)
    yield run, store
    store.dispose()


def test_auto_resolved_share_rises_over_the_month_and_ends_above_80_percent_with_nothing_unsafe(month):
    run, _ = month
    first, last = run.first_last()
    assert first is not None and last is not None
    assert last > first, run.format()
    assert last >= 0.8, run.format()
    assert run.unsafe == 0, run.format()
    # people are still needed for what only people can fix (re-authenticating, repairing data)
    assert any(not o.worked and o.kind in ("sf_token_expired", "dbt_unique_test") for o in run.outcomes)
    assert not any(o.worked for o in run.outcomes if o.kind in ("sf_token_expired", "dbt_unique_test"))


def test_every_case_a_person_handled_is_remembered_with_who_confirmed_it(month):
    run, store = month
    handled = [o for o in run.outcomes if o.confirmed_by]
    assert handled and {o.confirmed_by for o in handled} <= set(PEOPLE)
    learned = store.audit_events(kind="failure_memory.learn", limit=100000)
    actors = {e["actor"] for e in learned}
    assert set(PEOPLE) & actors
    confirmations = [e for e in learned if e["actor"] in PEOPLE and e["payload"]["worked"] is not False]
    assert len(confirmations) >= len(handled)


def test_next_occurrence_gets_the_fix_that_worked_for_its_signature(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 's.db'}", cached=False)
    try:
        mem = FailureMemory(store, embeddings=False)
        quota = "Warehouse 'COMPUTE_WH' cannot be resumed because resource monitor 'CREDITLIMIT_{}' has exceeded its quota."
        clients = "(psycopg2.OperationalError) FATAL: sorry, too many clients already (job {})"
        assert mem.resolution_for(quota.format(1)) is None
        mem.learn_from_approval(quota.format(1), "destination_capacity", "defer", approved=True, actor="alice")
        mem.record_resolution(quota.format(1), "destination_capacity", "defer", True, actor="alice")
        mem.record_resolution(clients.format(7), "destination_capacity", "retry", True, actor="agent")
        mem.record_resolution(clients.format(8), "destination_capacity", "retry", True, actor="agent")
        # same class, different signatures: each gets its own fix, not the class's most frequent one
        assert mem.resolution_for(quota.format(2))[:2] == ("defer", "destination_capacity")
        assert mem.resolution_for(clients.format(9))[:2] == ("retry", "destination_capacity")
        # a person rejecting it, then it failing, takes it away
        mem.learn_from_approval(quota.format(3), "destination_capacity", "defer", approved=False, actor="bob")
        mem.record_resolution(quota.format(4), "destination_capacity", "defer", False, actor="agent")
        assert mem.resolution_for(quota.format(5)) is None
        assert mem.resolution_for("permission denied for schema analytics") is None
    finally:
        store.dispose()


def test_a_wrong_automatic_action_is_counted_unsafe():
    """The unsafe count can fail: in a world where retrying "too many clients" is *not* harmless
    (say its fix is to defer), the prescribed retry of a transient class runs on first sight."""
    kind = Kind("clients", "(psycopg2.OperationalError) FATAL: sorry, too many clients already (job {id})",
                "postgres", "destination_capacity", "defer", 1.0, harmless=())
    run = simulate_learning(6, seed=1, kinds=(kind,))
    assert run.unsafe >= 1
    assert run.outcomes[0].automatic and run.outcomes[0].proposed == "retry"
    assert run.outcomes[-1].worked and run.outcomes[-1].proposed == "defer"  # learned from the person


@pytest.mark.parametrize("action", sorted(AUTO_APPROVE))
def test_an_llm_only_diagnosis_or_a_low_confidence_never_acts_alone(action):
    assert not may_execute(action, 0.99, "llm")
    assert not may_execute(action, 0.3, "rules")
    assert not may_execute("full_resync", 1.0, "rules")
    assert not may_execute("manual", 1.0, "memory")
