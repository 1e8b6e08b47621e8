"""Round-six rules, written from vendors' documented error identifiers after the shipped model's misses
on the fourth collection were read (so the fourth collection's items they match are flagged
``seen_by_rules`` and the benchmarks report the figures without them): server-side query memory
limits (ClickHouse error 241, Trino/Presto EXCEEDED_*_MEMORY_LIMIT), container images that cannot
be pulled (Kubernetes ErrImagePull/ImagePullBackOff, Docker "manifest unknown", Airbyte "Could not
find image"), and Airflow's unmet task dependencies. The messages below follow the documented
formats; none is a corpus item."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.diagnosis import diagnose
from orchestrator.diagnosis.normalize import scrub
from orchestrator.diagnosis.rules import match_rules

ROOT = Path(__file__).resolve().parent.parent
NEW = {"query_memory_limit", "image_not_found", "airflow_dependencies"}


@pytest.mark.parametrize("message, category", [
    ("Code: 241. DB::Exception: Memory limit (for query) exceeded: would use 9.31 GiB (attempt to allocate "
     "chunk of 1048576 bytes), maximum: 9.31 GiB. (MEMORY_LIMIT_EXCEEDED)", "destination_capacity"),
    ("DB::Exception: Memory limit (total) exceeded: would use 30.02 GiB, maximum: 30.00 GiB", "destination_capacity"),
    ("io.trino.ExceededMemoryLimitException: Query exceeded distributed user memory limit of 50GB",
     "destination_capacity"),
    ("Query failed (#20250101_000000_00001_abcde): Query exceeded per-node memory limit of 8GB "
     "[Allocated: 8.00GB, Delta: 1.2MB]", "destination_capacity"),
    ("Failed to pull image \"ghcr.io/acme/sync:2.1\": rpc error: code = NotFound desc = manifest unknown",
     "config_error"),
    ("Warning  Failed  kubelet  Error: ImagePullBackOff", "config_error"),
    ("Warning  Failed  kubelet  Failed to pull image \"acme/loader:9.9\": ErrImagePull", "config_error"),
    ("io.airbyte.workers.exception.WorkerException: Could not find image: airbyte/source-stripe:9.9.9",
     "config_error"),
    ("{taskinstance.py:1035} INFO - Dependencies not met for <TaskInstance: etl.load 2024-01-01 [None]>, "
     "dependency 'Trigger Rule' FAILED: Task's trigger rule 'all_success' requires all upstream tasks to have "
     "succeeded, but found 1 non-success(es).", "upstream_delay"),
    ("Marking task as UPSTREAM_FAILED. dag_id=etl, task_id=publish", "upstream_delay"),
])
def test_new_rules_read_the_documented_identifiers(message, category):
    assert diagnose(message).category == category


@pytest.mark.parametrize("message, category", [
    # an embedded engine (DuckDB) running out of the job's own memory stays resource_exhausted
    ("duckdb.OutOfMemoryException: Out of Memory Error: could not allocate block of 262144 bytes",
     "resource_exhausted"),
    ("java.lang.OutOfMemoryError: Java heap space", "resource_exhausted"),
    # a request-rate limit is still a rate limit
    ("HTTP 429 Too Many Requests: rate limit exceeded, retry after 30s", "rate_limit"),
])
def test_neighbouring_failures_keep_their_class(message, category):
    hits = {h.rule.name for h in match_rules(scrub(message))}
    assert not hits & NEW
    assert diagnose(message).category == category


def test_fourth_collection_items_the_new_rules_match_are_flagged_seen_by_rules():
    rows = [json.loads(x) for x in (ROOT / "tests/data/failure_corpus_threads.jsonl").read_text().splitlines() if x]
    matched = {r["id"] for r in rows if {h.rule.name for h in match_rules(scrub(r["message"]), r["system"])} & NEW}
    assert matched  # not vacuous
    assert matched == {r["id"] for r in rows if r["seen_by_rules"]}


def test_new_rules_touch_no_held_out_or_earlier_consensus_item():
    for name in ("failure_heldout", "failure_corpus", "failure_corpus_extra", "failure_corpus_round4"):
        for line in (ROOT / f"tests/data/{name}.jsonl").read_text().splitlines():
            r = json.loads(line)
            hits = {h.rule.name for h in match_rules(scrub(r["message"]), r.get("system"))}
            assert not (hits & NEW and (r.get("category") or name == "failure_heldout")), (name, r["id"])
