"""Second-round rules (written from documented error identifiers, not from corpus messages) and the
model's guards against learning one source's idiom (min_groups, group_balance)."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.diagnosis import diagnose
from orchestrator.diagnosis.model import TextModel, features

import pytest


@pytest.mark.parametrize("message, category, transient", [
    # Kubernetes scheduler / kubelet: no node fits the requests -> capacity, retry later
    ("Warning FailedScheduling default-scheduler 0/5 nodes are available: 5 Insufficient cpu.",
     "resource_exhausted", True),
    ("pod didn't have enough resource: cpu, requested: 4000, used: 2000, capacity: 4000", "resource_exhausted", True),
    ("Container main: Last State: Terminated, Exit Code: 137", "resource_exhausted", False),
    # MySQL 1205 / PostgreSQL 40P01
    ("(1205, 'Lock wait timeout exceeded; try restarting transaction')", "destination_capacity", True),
    ("ERROR: deadlock detected (SQLSTATE 40P01)", "destination_capacity", True),
    # Kafka NOT_LEADER_OR_FOLLOWER
    ("KafkaError: [Error 6] NotLeaderForPartitionError: this broker is not the leader", "source_unavailable", True),
    # SDK rate-limit exception names
    ("stripe.error.RateLimitError: Request rate limit exceeded", "rate_limit", True),
    ("botocore.exceptions.ClientError: An error occurred (ThrottlingException) when calling GetRecords",
     "rate_limit", True),
    # value longer than the column
    ("ERROR 1406 (22001): Data too long for column 'name' at row 3", "data_quality", False),
    # corrupt payloads
    ("CorruptRecordException: record does not match its CRC", "data_quality", False),
    # Oracle parse errors
    ("ORA-00933: SQL command not properly ended", "code_error", False),
    # a load adds a column that is already there
    ('psycopg.errors.DuplicateColumn: column "email" of relation "users" already exists', "schema_drift", False),
])
def test_documented_identifiers_are_recognised(message, category, transient):
    rules_only = diagnose(message, model=None)
    assert (rules_only.category, rules_only.transient) == (category, transient), rules_only
    assert rules_only.evidence  # the line the rule matched
    with_model = diagnose(message)
    assert with_model.category == category, with_model


@pytest.mark.parametrize("message", [
    "Acquired advisory lock on table orders in 3 ms",          # a lock, no contention
    "Leader election finished: this broker is the leader",     # the leader is there
    "column email of relation users was added",                # no conflict
    # scheduling that fails on taints/selectors is not a resource shortfall
    "Warning FailedScheduling 0/3 nodes are available: 3 node(s) had untolerated taint {role: infra}",
])
def test_neighbouring_phrasings_do_not_fire(message):
    d = diagnose(message, model=None)
    assert d.category not in ("destination_capacity", "source_unavailable", "schema_drift", "resource_exhausted")


# ------------------------------------------------------------------ model guards
WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.lists(st.sampled_from(WORDS), min_size=1, max_size=4),
                          st.sampled_from(["g1", "g2", "g3", "g4"]),
                          st.sampled_from(["code_error", "config_error"])), min_size=2, max_size=30),
       st.integers(min_value=2, max_value=3))
def test_min_groups_keeps_only_features_seen_in_that_many_sources(rows, min_groups):
    msgs = [" ".join(w) for w, _, _ in rows]
    groups = [g for _, g, _ in rows]
    labels = [c for _, _, c in rows]
    m = TextModel.fit(msgs, labels, groups=groups, min_groups=min_groups, min_df=1, steps=2)
    seen: dict[str, set[str]] = {}
    for msg, g in zip(msgs, groups):
        for f in features(msg):
            seen.setdefault(f, set()).add(g)
    assert all(len(seen[f]) >= min_groups for f in m.vocab_list)
    unguarded = TextModel.fit(msgs, labels, min_df=1, steps=2)
    assert set(m.vocab_list) <= set(unguarded.vocab_list)


def test_group_balance_stops_one_large_source_from_outvoting_many_small_ones():
    # one package says "quota setting rejected" 40 times as code_error; four other sources say it
    # once each as config_error
    msgs = ["quota setting rejected"] * 44
    labels = ["code_error"] * 40 + ["config_error"] * 4
    groups = ["big"] * 40 + ["s1", "s2", "s3", "s4"]
    plain = TextModel.fit(msgs, labels, groups=groups, min_df=1, steps=60, balance=0.0)
    balanced = TextModel.fit(msgs, labels, groups=groups, min_df=1, steps=60, balance=0.0, group_balance=1.0)
    top = lambda m: max(m.proba("quota setting rejected").items(), key=lambda kv: kv[1])[0]  # noqa: E731
    assert top(plain) == "code_error"
    assert top(balanced) == "config_error"
    assert Counter(labels)["code_error"] == 40  # inputs untouched
