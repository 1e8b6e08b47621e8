"""The snapshot's caps are explicit, configurable and reported when hit; diagnoses are kept by
failure id across ticks and equal what the decision core's diagnose_failures gives."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import orchestrator.snapshot as snapshot
from orchestrator.assessment import diagnose_failures, link_root_causes
from orchestrator.core.graph import AssetGraph, AssetNode
from orchestrator.core.records import FailureRecord


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst


def _graph(n=6):
    return AssetGraph([AssetNode("src/a", role="connector_table", connector="fivetran:c1"),
                       *[AssetNode(f"m{i}", role="dbt_model", upstream=("src/a",) if i == 0 else (f"m{i - 1}",))
                         for i in range(n)]])


def test_caps_come_from_the_environment_and_bad_values_are_named():
    assert snapshot.SnapshotCaps.from_env({}) == snapshot.SnapshotCaps()
    caps = snapshot.SnapshotCaps.from_env({"ORCHESTRATOR_SNAPSHOT_MAX_RUNS": "500",
                                           "ORCHESTRATOR_SNAPSHOT_MAX_MATERIALIZATIONS": "1_000"})
    assert (caps.max_runs, caps.max_materializations) == (500, 1000)
    for bad in ("0", "-3", "many"):
        with pytest.raises(ValueError, match="ORCHESTRATOR_SNAPSHOT_MAX_MATERIALIZATIONS"):
            snapshot.SnapshotCaps.from_env({"ORCHESTRATOR_SNAPSHOT_MAX_MATERIALIZATIONS": bad})


def test_materialization_cap_hit_is_logged_and_reported(instance, monkeypatch, caplog):
    graph = _graph()
    for _ in range(3):
        for key in graph.keys:
            instance.report_runless_asset_event(dg.AssetMaterialization(dg.AssetKey.from_user_string(key)))
    total = 3 * len(graph.keys)
    now = datetime.now(UTC) + timedelta(seconds=1)

    snap = snapshot.build_snapshot(instance, graph, now=now, failures=False)
    assert len(snap.materializations) == total and snapshot.caps_hit(snap) == {}

    monkeypatch.setenv("ORCHESTRATOR_SNAPSHOT_MAX_MATERIALIZATIONS", "10")
    with caplog.at_level(logging.WARNING, logger="orchestrator.snapshot"):
        snap = snapshot.build_snapshot(instance, graph, now=now, failures=False)
    assert len(snap.materializations) == 10  # the newest 10, oldest first as before
    assert snap.materializations == sorted(snap.materializations, key=lambda m: m.at)
    hit = snapshot.caps_hit(snap)
    assert set(hit) == {"materializations"}
    assert "ORCHESTRATOR_SNAPSHOT_MAX_MATERIALIZATIONS" in hit["materializations"]
    assert any("snapshot cap hit: materializations" in r.getMessage() for r in caplog.records)

    # Exactly at the cap is not "hit": nothing was left out.
    caps = snapshot.SnapshotCaps(max_materializations=total)
    snap = snapshot.build_snapshot(instance, graph, now=now, failures=False, caps=caps)
    assert len(snap.materializations) == total and snapshot.caps_hit(snap) == {}


def test_run_cap_hit_is_reported(instance):
    for i in range(4):
        instance.add_run(dg.DagsterRun(job_name="j", run_id=f"r{i:032d}"[-32:], status=dg.DagsterRunStatus.STARTED))
    snap = snapshot.build_snapshot(instance, _graph(), failures=False, history=False,
                                   caps=snapshot.SnapshotCaps(max_runs=2))
    assert len(snap.runs) <= 4
    assert "runs_in_flight" in snapshot.caps_hit(snap)


# -- diagnosis cache ------------------------------------------------------------------------------

MESSAGES = [
    "HTTP 429 Too Many Requests, Retry-After: 120",
    "Binder Error: Referenced column \"amount\" not found in FROM clause!",
    "OAuth token expired: 401 Unauthorized",
    "Got 3 results, configured to fail if != 0",
    "connection reset by peer",
    "",
]


@st.composite
def failure_sets(draw):
    graph = _graph(5)
    keys = sorted(graph.keys)
    n = draw(st.integers(1, 8))
    base = datetime(2026, 1, 1, tzinfo=UTC)
    out = []
    for i in range(n):
        key = draw(st.sampled_from(keys))
        out.append(FailureRecord(
            failure_id=f"step:r{i}:{key}", at=base + timedelta(minutes=draw(st.integers(0, 300))),
            message=draw(st.sampled_from(MESSAGES)), system=draw(st.sampled_from(["dbt", "fivetran", "dagster"])),
            asset_key=key, connector="fivetran:c1" if key == "src/a" else None, run_id=f"r{i}"))
    return graph, out


@settings(max_examples=80, deadline=None)
@given(failure_sets(), st.integers(1, 3))
def test_cached_diagnoses_equal_the_cores_across_ticks(data, ticks):
    graph, failures = data
    cache = snapshot.DiagnosisCache()
    expected = diagnose_failures(failures, graph)
    for _ in range(ticks):
        got = cache.diagnose(failures, graph, roots=link_root_causes(failures, graph))
        assert got == expected
    roots = [f for f in failures if link_root_causes(failures, graph).get(f.failure_id) is None]
    assert cache.misses == len(roots)  # each root diagnosed once, whatever the number of ticks
    assert cache.hits == (ticks - 1) * len(roots)


def test_changed_message_or_other_memory_is_diagnosed_again():
    graph = _graph(2)
    f = FailureRecord("step:r1:m0", datetime(2026, 1, 1, tzinfo=UTC), MESSAGES[0], "fivetran", "m0", run_id="r1")
    cache = snapshot.DiagnosisCache()
    assert cache.diagnose([f], graph)[0].category == "rate_limit"
    changed = FailureRecord(f.failure_id, f.at, MESSAGES[2], "fivetran", "m0", run_id="r1")
    assert cache.diagnose([changed], graph)[0].category == diagnose_failures([changed], graph)[0].category
    assert cache.misses == 2

    class Memory:
        def __init__(self, url):
            self.store = type("S", (), {"url": url})()

        def nearest(self, *a, **k):
            return []

    cache.diagnose([changed], graph, Memory("sqlite:///a"))
    cache.diagnose([changed], graph, Memory("sqlite:///a"))  # a new FailureMemory each tick, same store
    cache.diagnose([changed], graph, Memory("sqlite:///b"))
    assert cache.misses == 4 and cache.hits == 1


def test_cache_is_bounded():
    graph = _graph(1)
    cache = snapshot.DiagnosisCache(max_entries=5)
    base = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(20):
        cache.diagnose([FailureRecord(f"f{i}", base, MESSAGES[i % 5], "dbt", "m0", run_id=f"r{i}")], graph)
    assert len(cache) == 5
