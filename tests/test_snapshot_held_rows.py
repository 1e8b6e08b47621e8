"""The window's materializations are handed to the durations memo as the event log cache holds
them (no copy per tick): the memo must keep none of their columns, since the cache changes its
rows in place (appended rows, late commits inserted below the highest id) and drops the ones that
left the window. Checked against a memo fed private copies, on generated row histories; and the
cache's lock is held while the held rows are read."""

from __future__ import annotations

from bisect import bisect_left
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import orchestrator.event_log_cache as cache
import orchestrator.snapshot as snapshot
from orchestrator.core.graph import AssetGraph, AssetNode
from orchestrator.core.records import RunRecord, RunStatus
from orchestrator.event_log_cache import Rows

KEYS = ["src/a", "m0", "m1", "m2", "m3"]
GRAPH = AssetGraph([AssetNode("src/a", role="connector_table", connector="fivetran:c")]
                   + [AssetNode(f"m{i}", role="dbt_model", upstream=("src/a",) if i == 0 else (f"m{i - 1}",))
                      for i in range(4)])
BASE = datetime(2026, 1, 1, tzinfo=UTC).timestamp()

NEW = st.lists(st.tuples(st.sampled_from(KEYS), st.floats(0, 3600), st.sampled_from(["", "r0", "r1", "r2"]),
                         st.sampled_from([None, "p1"]), st.booleans()), max_size=12)


def _copy(rows: Rows) -> Rows:
    return Rows.from_tuples(list(rows.tuples()))


@settings(max_examples=80, deadline=None)
@given(ticks=st.lists(st.tuples(NEW, st.floats(0, 3600), st.sets(st.sampled_from(["r0", "r1", "r2"]))),
                      min_size=1, max_size=6))
def test_a_memo_fed_the_held_rows_equals_one_fed_copies(ticks):
    """Tick after tick, the rows one ``Rows`` object holds are changed in place as the event log
    cache changes them (appended, a late commit inserted below the highest id, the front dropped
    when the window's edge passes): a memo given that object each tick answers what a memo given
    a private copy answers, and what a fresh memo computes from the same rows."""
    held = Rows()
    on_held, on_copies = snapshot._DurationsMemo(GRAPH), snapshot._DurationsMemo(GRAPH)
    sid = 0
    for new, edge, started in ticks:
        for key, ts, run_id, part, late in new:
            sid += 2  # even ids in order; a late commit takes the odd id below the newest
            if late and len(held):
                late_id = held.ids[-1] - 1
                if late_id not in held.ids:
                    held.insert(bisect_left(held.ids, late_id), late_id, key, BASE + ts, run_id, part)
                    continue
            held.append(sid, key, BASE + ts, run_id, part)
        held = held.after(BASE + edge)  # what left the window goes (a new object, or the same one)
        runs = {r: RunRecord(r, RunStatus.running, (), datetime.fromtimestamp(BASE - 60, UTC),
                             started_at=datetime.fromtimestamp(BASE - 60, UTC)) for r in started}
        on_held.update(held, runs)
        on_copies.update(_copy(held), runs)
        fresh = snapshot._DurationsMemo(GRAPH)
        fresh.update(_copy(held), runs)
        assert on_held.mats == on_copies.mats == fresh.mats
        assert ({k: v for k, v in on_held.durations.items() if v}
                == {k: v for k, v in fresh.durations.items() if v})
        assert on_held.ids is not held.ids and list(on_held.ids) == list(held.ids)


@pytest.fixture
def instance(monkeypatch):
    cache.clear()
    monkeypatch.delenv(cache.RESYNC_ENV, raising=False)
    with dg.instance_for_test() as inst:
        yield inst
    cache.clear()


def test_the_held_rows_are_read_under_the_cache_lock_and_equal_a_copy(instance):
    for key in KEYS * 2:
        instance.report_runless_asset_event(dg.AssetMaterialization(dg.AssetKey.from_user_string(key)))
    since = datetime.now(UTC) - timedelta(hours=1)
    copied = snapshot._materialization_columns(instance, since, 0)  # no consumer: a copy, as before
    seen = []

    def consume(rows):
        (state,) = cache._STATES.values()
        seen.append((state.lock.locked(), rows is state.rows, list(rows.tuples())))
        return len(rows)

    assert snapshot._materialization_columns(instance, since, 0, consume) == len(copied) == 2 * len(KEYS)
    locked, is_held, rows = seen[0]
    assert locked and is_held and rows == list(copied.tuples())
    (state,) = cache._STATES.values()
    assert copied.ids is not state.rows.ids and not state.lock.locked()
    # the next tick appends to the held rows in place; the copy handed out before stays as it was
    instance.report_runless_asset_event(dg.AssetMaterialization(dg.AssetKey.from_user_string("m0")))
    snapshot._materialization_columns(instance, since, 0, consume)
    assert len(copied) == 2 * len(KEYS) and len(seen[1][2]) == 2 * len(KEYS) + 1
    mats, _ = snapshot.InstanceReader(instance).materializations(since, GRAPH, {})
    assert [m.asset_key for m in mats] == [k for _, k, *_ in seen[1][2]]
