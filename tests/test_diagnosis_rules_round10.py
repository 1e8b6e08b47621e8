"""Issue 16, tenth round: rules written from the label guide's definitions, stack frames ignored by
the rules, and a rule's precision measured on labelled items (``rule_reliability``).

The messages below are written from the definitions (RUBRIC.md rows 2, 5, 8, 9; the decision rules
K1-K5 / C1-C5 of ``tests/data/failure_corpus/README.md``); none is a corpus item
(``test_examples_are_not_corpus_items``)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.diagnosis import diagnose
from orchestrator.diagnosis.classifier import _score, rule_reliability
from orchestrator.diagnosis.normalize import is_frame_line, scrub
from orchestrator.diagnosis.rules import RULES, ROUND10_RULES, match_rules

ROOT = Path(__file__).resolve().parent.parent

# (message, the rule that must read it, the category the whole diagnosis must give)
DEFINITIONS = [
    # rubric row 2: identity not accepted
    ("JWT rejected: invalid audience for client 'etl-runner'", "rubric_identity_rejected", "auth_expired"),
    ("Signature verification failed for the id_token presented by the warehouse", "rubric_identity_rejected",
     "auth_expired"),
    # rubric row 5: a remote system could not be reached or answered badly
    ("Network error while fetching page 12 of /v3/invoices", "rubric_remote_failed", "source_unavailable"),
    ("Peer closed connection before sending the full response body", "rubric_remote_failed", "source_unavailable"),
    # rubric row 8: a data value cannot be parsed / converted / is null where not allowed
    ("Cannot parse value '31/02/2024' in column signup_date", "rubric_value_unparseable", "data_quality"),
    ("Field customer_id is not nullable but row 8812 has no value", "rubric_value_unparseable", "data_quality"),
    # rubric row 9: waiting on something else ran out of time
    ("Timed out waiting for run 7d1e to finish after 3600 seconds", "rubric_wait_timed_out", "upstream_delay"),
    # K1 wrong type, K2 undefined in code, K4 API misuse, K5 invariant
    ("partition_fn must be a callable, got list", "k1_wrong_type", "code_error"),
    ("Subclass LoaderBase must implement load_batch: abstract method not overridden", "k2_undefined_in_code",
     "code_error"),
    ("Cannot send the request: the session has already been closed", "k4_invalid_operation", "code_error"),
    ("Internal error: this should never happen (watermark went backwards), please report this", "k5_invariant",
     "code_error"),
    # C1 names configuration, C2 install / version, C3 path, C5 option values
    ("Environment variable WAREHOUSE_DSN is empty; set it in the deployment", "c1_names_configuration",
     "config_error"),
    ("The parquet extra is not installed. Run: pip install 'loader[parquet]'", "c2_install_or_version",
     "config_error"),
    ("Directory /srv/dbt/project does not exist", "c3_path_not_found", "config_error"),
    ("batch_size must be between 1 and 10000 (got 0)", "c5_option_value", "config_error"),
]


@pytest.mark.parametrize("message, rule, category", DEFINITIONS)
def test_definitions_are_read_by_their_rule(message, rule, category):
    hits = {h.rule.name for h in match_rules(scrub(message))}
    assert rule in hits
    d = diagnose(message)
    assert d.category == category, d
    assert d.evidence and all(e in scrub(message) for e in d.evidence)


@pytest.mark.parametrize("message, not_rule", [
    # a value-parse rule is not a code-parse rule (K3 is about code, a query or a template)
    ("Cannot parse value 'abc' as integer", "k3_cannot_parse_code"),
    # a connection closed by the remote side is rubric row 5, not K4's API misuse
    ("WebSocket connection is already closed", "k4_invalid_operation"),
    # "not yet implemented" is a capability the installed version lacks (C2), not K2
    ("Streaming uploads are not yet implemented for this backend", "k2_undefined_in_code"),
    # the rubric's wait row needs a wait: a connect timeout is row 5
    ("Connect timed out after 30s to db.internal:5432", "rubric_wait_timed_out"),
    # a named resource that does not exist *or* is not authorised is permission wording
    ("Database 'ANALYTICS' does not exist or not authorized.", "c4_named_resource_missing"),
])
def test_neighbouring_wording_does_not_fire(message, not_rule):
    assert not_rule not in {h.rule.name for h in match_rules(scrub(message))}


def test_examples_are_not_corpus_items():
    messages = set()
    for name in ("failure_corpus.jsonl", "failure_corpus_extra.jsonl", "failure_corpus_round4.jsonl",
                 "failure_corpus_threads.jsonl", "failure_heldout.jsonl", "failure_messages.jsonl"):
        path = ROOT / "tests" / "data" / name
        if path.exists():
            messages |= {json.loads(x)["message"] for x in path.read_text(encoding="utf-8").splitlines() if x.strip()}
    assert not {m for m, _, _ in DEFINITIONS} & messages


def test_round10_rules_are_named_and_part_of_the_catalog():
    names = {r.name for r in RULES}
    assert ROUND10_RULES <= names and len(ROUND10_RULES) == 14
    assert len(names) == len(RULES), "rule names are unique (the reliability table is keyed by them)"


# ------------------------------------------------------------------------------ stack frames
FRAMES = [
    'File "/opt/venv/lib/python3.11/site-packages/urllib3/util/timeout.py", line 141, in _validate_timeout',
    'File "/app/pipelines/config.py", line 9, in <module>',
    "at com.acme.loader.RateLimitedClient.send(RateLimitedClient.java:88)",
    "at Object.permissionDenied (/app/node_modules/pg/lib/client.js:12:5)",
    "... 42 more",
]


@pytest.mark.parametrize("frame", FRAMES)
def test_a_stack_frame_is_no_evidence(frame):
    assert is_frame_line(frame)
    assert match_rules(frame) == []


def test_the_failure_line_of_a_trace_still_decides():
    trace = "\n".join(["Traceback (most recent call last):", FRAMES[0], FRAMES[1],
                       "psycopg2.OperationalError: could not connect to server: Connection refused"])
    hits = match_rules(scrub(trace))
    assert {h.rule.category for h in hits} == {"source_unavailable"}
    assert all(not is_frame_line(h.line) for h in hits)
    assert diagnose(trace).category == "source_unavailable"


@pytest.mark.parametrize("line", ["at least one of 'name' or 'id' is required", "File not found: /tmp/x.csv",
                                  "at 02:00 the sync timed out", "... retrying in 5 seconds"])
def test_failure_wording_is_not_taken_for_a_frame(line):
    assert not is_frame_line(line)


_word = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12)
_keyword = st.sampled_from(["timeout", "config", "permission", "ratelimit", "oom", "schema", "auth", "quota",
                            "syntax", "deadlock", "unauthorized", "forbidden", "429", "403"])


@settings(max_examples=60, deadline=None)
@given(mods=st.lists(st.one_of(_word, _keyword), min_size=1, max_size=4), fn=st.one_of(_word, _keyword),
       line=st.integers(1, 99999), kind=st.sampled_from(["py", "java", "js"]),
       message=st.sampled_from([m for m, _, _ in DEFINITIONS] + ["failed", "Sync failed"]))
def test_frames_never_change_the_rule_hits(mods, fn, line, kind, message):
    """Frame lines whose module / function names carry rule words add no hit to any message."""
    if kind == "py":
        frame = f'File "/srv/{"/".join(mods)}.py", line {line}, in {fn}'
    elif kind == "java":
        frame = f"at com.{'.'.join(mods)}.{fn}({mods[-1]}.java:{line})"
    else:
        frame = f"at {fn} (/app/{'/'.join(mods)}.js:{line}:7)"
    base = {(h.rule.name, h.line) for h in match_rules(scrub(message))}
    with_frames = {(h.rule.name, h.line) for h in match_rules(scrub(frame + "\n" + message + "\n" + frame))}
    assert with_frames == base


# ------------------------------------------------------------------------------ rule reliability
def _items(rule_name, correct, wrong, unlabelled=0):
    rule = next(r for r in RULES if r.name == rule_name)
    hit = SimpleNamespace(rule=rule, line="x", span=(0, 1))
    other = "unknown" if rule.category != "unknown" else "code_error"
    return ([SimpleNamespace(category=rule.category, hits=[hit, hit])] * correct
            + [SimpleNamespace(category=other, hits=[hit])] * wrong
            + [SimpleNamespace(category=None, hits=[hit])] * unlabelled)


def test_a_rule_that_is_usually_wrong_defers_and_one_that_is_right_keeps_its_weight():
    rel = rule_reliability(_items("timeout_generic", 3, 17) + _items("http_429", 40, 0))
    assert rel["timeout_generic"] == 0.0
    assert rel["http_429"] > 0.95
    # a rule never hit gets the prior's multiplier
    assert rel["kafka_leader"] == pytest.approx((0.9 - 0.5) / 0.5)
    hits = match_rules("HTTP 429 Too Many Requests after a read timeout")
    assert "source_unavailable" in _score(hits, None)
    deferred = _score(hits, None, rel)
    assert "source_unavailable" not in deferred and deferred["rate_limit"] > 2.8


@settings(max_examples=80, deadline=None)
@given(correct=st.integers(0, 60), wrong=st.integers(0, 60), unlabelled=st.integers(0, 30),
       more=st.integers(1, 20))
def test_reliability_is_a_bounded_monotone_function_of_precision(correct, wrong, unlabelled, more):
    r = rule_reliability(_items("throttled", correct, wrong, unlabelled))["throttled"]
    assert 0.0 <= r <= 1.0
    # unlabelled items do not count
    assert r == rule_reliability(_items("throttled", correct, wrong))["throttled"]
    # more correct hits never lower it, more wrong hits never raise it
    assert rule_reliability(_items("throttled", correct + more, wrong))["throttled"] >= r
    assert rule_reliability(_items("throttled", correct, wrong + more))["throttled"] <= r
