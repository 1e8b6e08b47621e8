"""The freshness sensor's cursor stays small however many assets are bad (a base in the instance's
key-value store plus what changed since), and reports exactly what the first format (every non-ok
asset's status and slack in the cursor, kept here as the oracle) reported: after restarts of the
process, cursors that were not committed, rebases, and a base that is gone."""

import json
from datetime import UTC, datetime

import dagster as dg
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from orchestrator.core.records import FreshnessAssessment, FreshnessStatus
from sensors import freshness as fs

OK, RISK, BREACH = FreshnessStatus.ok, FreshnessStatus.at_risk, FreshnessStatus.breached


@pytest.fixture(scope="module")
def instance():
    with dg.DagsterInstance.ephemeral() as inst:  # its run storage has the key-value store
        yield inst


def _a(key: str, status: FreshnessStatus, slack: float | None) -> FreshnessAssessment:
    return FreshnessAssessment(key, status, "gold", "p", datetime(2026, 1, 1, tzinfo=UTC), None, slack, None,
                               f"{status.value} {slack}")


def _oracle(out, keys, state):
    """The first format, as the sensor was: the whole map of non-ok assets in the cursor."""
    bad_before = state.get("bad", {})
    first = not state.get("init")
    reported, bad_now = [], {}
    for key in sorted(keys & out.keys()):
        a = out[key]
        before = bad_before.get(key)
        if a.status is not OK:
            bad_now[key] = [a.status.value, a.slack_s]
            if first or before is None or before[0] != a.status.value or (
                    a.slack_s is not None and before[1] is not None and abs(a.slack_s - before[1]) > fs.RESLACK_S):
                reported.append((a, False))
            elif before is not None:
                bad_now[key] = before
        elif first or before is not None:
            reported.append((a, before is not None))
    return reported, {"init": True, "bad": bad_now}


def _forget_process():
    fs._SAVED.clear()
    fs._BASES.clear()


STATUS = st.sampled_from([OK, OK, RISK, BREACH])
SLACK = st.one_of(st.none(), st.floats(-5000, 5000).map(lambda x: round(x, 3)))
STEP = st.tuples(st.dictionaries(st.integers(0, 39), st.tuples(STATUS, SLACK), max_size=25),
                 st.sampled_from(["tick", "tick", "tick", "restart", "uncommitted", "ungoverned"]))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(STEP, min_size=1, max_size=12), max_delta=st.integers(0, 6), scope=st.integers())
def test_reports_what_the_full_cursor_reported_with_a_bounded_cursor(instance, steps, max_delta, scope):
    store = fs.BaseStore(instance, f"test-{scope}")
    keys = {f"a{i}" for i in range(40)}
    statuses = {k: (OK, None) for k in keys}
    state, oracle_state = {}, {}
    prev = None
    for changes, how in steps:
        for i, value in changes.items():
            statuses[f"a{i}"] = value
        governed = set(keys) - ({"a0", "a1", "a2"} if how == "ungoverned" else set())
        out = {k: _a(k, s, slack) for k, (s, slack) in statuses.items()}
        if how == "restart":
            _forget_process()
        if how == "uncommitted" and prev is not None:  # the last tick's cursor was never saved
            state, oracle_state = prev
        prev = (state, oracle_state)
        got, state = fs.report_changes(out, governed, state, store, max_delta=max_delta)
        want, oracle_state = _oracle(out, governed, oracle_state)
        assert [(a.asset_key, a.status, rec) for a, rec in got] == [(a.asset_key, a.status, rec) for a, rec in want]
        assert len(state["delta"]) <= max_delta
        state = json.loads(json.dumps(state))  # what Dagster stores
        assert fs._load_bad(state, store) == oracle_state["bad"]


def test_a_status_change_is_reported_once_and_the_cursor_stays_small_with_thousands_bad(instance):
    store = fs.BaseStore(instance, "test-once")
    keys = {f"asset/with/a/long/enough/path/{i:05d}" for i in range(3000)}
    bad = {k: _a(k, FreshnessStatus.breached, -100.0) for k in keys}
    out = dict(bad)
    reported, state = fs.report_changes(out, keys, {}, store)
    assert len(reported) == 3000  # the first tick reports every status
    old_size = len(json.dumps({"init": True, "bad": {k: ["breached", -100.0] for k in keys}}))
    watched = "asset/with/a/long/enough/path/00042"
    for status, slack, expect in [(BREACH, -100.0, None), (RISK, 30.0, (RISK, False)), (RISK, 31.0, None),
                                  (RISK, 29.0, None), (BREACH, -5.0, (BREACH, False)), (BREACH, -5.0, None),
                                  (OK, 900.0, (OK, True)), (OK, 900.0, None), (RISK, 10.0, (RISK, False))]:
        for restart in (False, True):
            out[watched] = _a(watched, status, slack)
            if restart:
                _forget_process()  # a new code server process: the base is read back from the store
            reported, state = fs.report_changes(out, keys, json.loads(json.dumps(state)), store)
            got = [(a.status, rec) for a, rec in reported]
            assert got == ([expect] if expect and not restart else []), (status, slack, restart)
            assert len(json.dumps(state)) < 600 < old_size / 100
    assert store.writes == 1  # the base was written once, the changes ride in the cursor


def test_many_changes_move_the_base_and_a_base_gone_reports_everything_again(instance):
    store = fs.BaseStore(instance, "test-rebase")
    keys = {f"k{i}" for i in range(500)}
    out = {k: _a(k, RISK, float(i)) for i, k in enumerate(sorted(keys))}
    _, state = fs.report_changes(out, keys, {}, store, max_delta=50)
    first_base = state["base"]
    out = {k: _a(k, BREACH, -1.0) for k in keys}  # all change at once: a new base, an empty delta
    reported, state = fs.report_changes(out, keys, state, store, max_delta=50)
    assert len(reported) == 500 and state["base"] != first_base and state["delta"] == {}
    assert store.writes == 2
    _forget_process()
    other = fs.BaseStore(dg.DagsterInstance.ephemeral(), "test-rebase")  # the store lost its bases
    reported, state = fs.report_changes(out, keys, state, other, max_delta=50)
    assert len(reported) == 500  # as on a first tick: nothing is silently dropped
    reported, _ = fs.report_changes(out, keys, state, other, max_delta=50)
    assert reported == []


def test_a_cursor_of_the_first_format_is_read_once(instance):
    store = fs.BaseStore(instance, "test-format")
    keys = {"a", "b", "c"}
    out = {"a": _a("a", RISK, 10.0), "b": _a("b", OK, 50.0), "c": _a("c", BREACH, -3.0)}
    old = {"init": True, "bad": {"a": ["at_risk", 12.0], "b": ["breached", -1.0], "c": ["breached", -3.0]}}
    reported, state = fs.report_changes(out, keys, old, store)
    assert [(a.asset_key, rec) for a, rec in reported] == [("b", True)]
    assert state["v"] == 2 and "bad" not in state
    assert fs._load_bad(json.loads(json.dumps(state)), store) == {"a": ["at_risk", 12.0], "c": ["breached", -3.0]}


def test_many_ticks_in_a_row_whose_cursors_are_never_committed_keep_the_committed_base(instance):
    """Each uncommitted tick starts again from the last committed cursor and writes a base of its
    own; more of them than ``KEEP_BASES`` evicted the committed cursor's base, and the next tick
    reported every status again instead of what changed (found by the property test above)."""
    store = fs.BaseStore(instance, "test-uncommitted-run")
    keys = {f"a{i}" for i in range(10)}
    statuses = {k: (OK, None) for k in keys}
    statuses["a0"] = (RISK, None)
    out = {k: _a(k, s, slack) for k, (s, slack) in statuses.items()}
    _, committed = fs.report_changes(out, keys, {}, store, max_delta=0)
    committed = json.loads(json.dumps(committed))
    for i in range(fs.KEEP_BASES + 2):  # each a different map, each never committed
        statuses[f"a{1 + i % 9}"] = (BREACH, float(i))
        out = {k: _a(k, s, slack) for k, (s, slack) in statuses.items()}
        fs.report_changes(out, keys, committed, store, max_delta=0)
    _forget_process()
    statuses = {k: (OK, None) for k in keys} | {"a0": (RISK, None), "a5": (BREACH, None)}
    out = {k: _a(k, s, slack) for k, (s, slack) in statuses.items()}
    got, _ = fs.report_changes(out, keys, committed, store, max_delta=0)
    assert [(a.asset_key, a.status.value) for a, _ in got] == [("a5", "breached")]
