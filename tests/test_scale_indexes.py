"""The indexes that keep a bad day's planning cycle linear answer exactly what the scans they
replace answered: the asset graph's connector/group/role indexes, the gate's failure index, the
ledger's screening index, and validation's in-flight / already-covered checks. Random worlds
(hypothesis) against a brute-force reference."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.core.graph import CONNECTOR_TABLE, DBT_MODEL, AssetGraph, AssetNode
from orchestrator.core.incidents import OPEN, ActionLedger
from orchestrator.core.records import (
    Action,
    Assessment,
    DiagnosedFailure,
    FailureRecord,
    Plan,
    RunRecord,
    RunStatus,
    Snapshot,
)
from orchestrator.planning.gate import FailureIndex, related_failures
from orchestrator.planning.validate import validate

UTC = timezone.utc
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
KEYS = [f"k{i}" for i in range(8)]
CONNECTORS = [None, "fivetran:a", "fivetran:b", "airbyte:c"]

nodes_st = st.lists(
    st.tuples(st.sampled_from(CONNECTORS), st.sampled_from([None, "g1", "g2"]),
              st.sampled_from([CONNECTOR_TABLE, DBT_MODEL])),
    min_size=len(KEYS), max_size=len(KEYS))


def _graph(spec) -> AssetGraph:
    return AssetGraph(AssetNode(k, role=role, connector=conn, group=group,
                                upstream=tuple(KEYS[:i][-2:]))
                      for i, (k, (conn, group, role)) in enumerate(zip(KEYS, spec)))


@settings(max_examples=60, deadline=None)
@given(nodes_st)
def test_graph_indexes_equal_the_scans(spec):
    graph = _graph(spec)
    for conn in CONNECTORS:
        assert list(graph.connector_tables(conn)) == ([n.key for n in graph if n.connector == conn] if conn else [])
    assert graph.connectors == {c: tuple(n.key for n in graph if n.connector == c)
                                for c in dict.fromkeys(n.connector for n in graph) if c}
    for group in ("g1", "g2", "none"):
        assert list(graph.group_keys(group)) == [n.key for n in graph if n.group == group]
    for role in (CONNECTOR_TABLE, DBT_MODEL, "dashboard"):
        assert graph.by_role(role) == [n for n in graph if n.role == role]


failure_st = st.tuples(st.sampled_from([None, *KEYS[:4]]), st.sampled_from(CONNECTORS),
                       st.sampled_from([None, "f0", "f1"]))
action_st = st.builds(
    lambda i, typ, keys, conn, cause, cycle: Action(
        f"a{i}", typ, "r", asset_keys=tuple(dict.fromkeys(keys)), connector=conn, cause=cause, cycle=cycle),
    st.integers(0, 5), st.sampled_from(["retry", "materialize"]), st.lists(st.sampled_from(KEYS[:4]), max_size=3),
    st.sampled_from(CONNECTORS), st.sampled_from([None, "freshness", "rate_limit"]),
    st.sampled_from([None, "c1", "c2"]))


@settings(max_examples=80, deadline=None)
@given(st.lists(failure_st, max_size=10), st.lists(action_st, max_size=8))
def test_gate_failure_index_finds_the_same_failures_in_the_same_order(failures, actions):
    diagnosed = [
        DiagnosedFailure(FailureRecord(f"f{i}", NOW, "boom", "dagster", asset_key=key, connector=conn),
                         "unknown", False, 0.5, (), root_failure_id=root)
        for i, (key, conn, root) in enumerate(failures)]
    assessment = Assessment(taken_at=NOW, failures=diagnosed)
    index = FailureIndex(assessment)
    for a in actions:
        assert related_failures(a, assessment, index) == related_failures(a, assessment)


@settings(max_examples=120, deadline=None)
@given(st.lists(st.tuples(action_st, st.sampled_from(sorted(OPEN | {"succeeded", "failed", "declined"}))),
                max_size=10),
       st.lists(action_st, max_size=8))
def test_ledger_index_screens_as_the_ledger_does(entries, actions):
    ledger = ActionLedger()
    for i, (a, status) in enumerate(entries):
        ledger.record(a, status, NOW - timedelta(minutes=i))
    index = ledger.index()
    for a in actions:
        assert index.open_duplicate(a) == ledger.open_duplicate(a)
        assert index.done_before(a) == ledger.done_before(a)


def _reference_overlap(actions, in_flight):
    """The pairwise scans validation used to do: per action, every in-flight run, then every
    earlier accepted run-launching action of the plan (all actions here are otherwise valid)."""
    out, launched, seen = [], [], set()
    for a in actions:
        reason = None
        for r in in_flight:
            if set(a.asset_keys) <= set(r.asset_keys) and (
                    not a.partitions or not r.partitions or set(a.partitions) <= set(r.partitions)):
                reason = f"already in flight: run {r.run_id} ({r.status.value}) covers these assets"
                break
        sig = (a.type, tuple(sorted(a.asset_keys)))
        if reason is None and sig in seen:
            reason = "duplicate of an earlier action in this plan"
        if reason is None:
            for other_id, keys in launched:
                if set(a.asset_keys) <= keys:
                    reason = f"already covered by action {other_id} of this plan"
                    break
        if reason is None:
            seen.add(sig)
            launched.append((a.action_id, set(a.asset_keys)))
        out.append(reason)
    return out


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.lists(st.sampled_from(KEYS), min_size=1, max_size=4, unique=True),
                          st.sampled_from([RunStatus.running, RunStatus.queued, RunStatus.success])),
                max_size=6),
       st.lists(st.lists(st.sampled_from(KEYS), min_size=1, max_size=4, unique=True), min_size=1, max_size=10))
def test_validation_in_flight_and_covered_checks_match_the_pairwise_scan(runs, plan_keys):
    graph = AssetGraph(AssetNode(k, role=DBT_MODEL) for k in KEYS)
    run_records = [RunRecord(f"r{i}", status, tuple(keys), NOW - timedelta(minutes=5))
                   for i, (keys, status) in enumerate(runs)]
    snapshot = Snapshot(taken_at=NOW, graph=graph, runs=run_records)
    actions = [Action(f"a{i}", "materialize", "r", asset_keys=tuple(keys)) for i, keys in enumerate(plan_keys)]
    accepted, rejected = validate(Plan(NOW, actions, "deterministic"), snapshot, None, now=NOW)
    reasons = {a.action_id: why for a, why in rejected}
    got = [reasons.get(a.action_id) for a in actions]
    assert got == _reference_overlap(actions, snapshot.in_flight())
    assert [a.action_id for a in accepted] == [a.action_id for a, r in zip(actions, got) if r is None]


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["pause_connector", "resume_connector", "retry"]),
                          st.sampled_from(CONNECTORS), st.sampled_from(["succeeded", "failed", "pending"]),
                          st.integers(0, 5)), max_size=12))
def test_paused_connectors_in_one_pass_equals_paused_per_connector(entries):
    ledger = ActionLedger()
    for i, (typ, conn, status, minute) in enumerate(entries):
        ledger.record(Action(f"a{i}", typ, "r", connector=conn), status, NOW + timedelta(minutes=minute))
    conns = {e.action.connector for e in ledger.entries.values() if e.action.connector}
    assert ledger.paused_connectors() == {c for c in conns if ledger.paused(c)}


# -- planner data structures: the same answers, computed once or along the target's lineage ------

dag_st = st.lists(st.lists(st.integers(min_value=0, max_value=30), max_size=3), min_size=2, max_size=14)


def _dag(spec) -> AssetGraph:
    return AssetGraph(AssetNode(f"n{i}", upstream=tuple(f"n{u % i}" for u in ups) if i else ())
                      for i, ups in enumerate(spec))


@settings(max_examples=80, deadline=None)
@given(dag_st)
def test_between_equals_the_closure_intersection(spec):
    graph = _dag(spec)
    for a in graph.keys:
        for b in graph.keys:
            assert graph.between(a, b) == graph.downstream_closure(a) & graph.upstream_closure(b), (a, b)
    order = graph.topological_order()
    assert graph.topological_index() == {k: i for i, k in enumerate(order)}
    assert graph.topological_index() is graph.topological_index()  # built once


def _old_norm(p):  # the normalisation action ids were computed with before the string fast path
    import datetime as _dt
    from collections.abc import Mapping

    if isinstance(p, (set, frozenset)):
        return sorted(p)
    if isinstance(p, _dt.datetime):
        return p.astimezone(UTC).isoformat()
    if isinstance(p, Mapping):
        return {k: _old_norm(v) for k, v in sorted(p.items())}
    if isinstance(p, (list, tuple)):
        return [_old_norm(x) for x in p]
    return p


part_st = st.recursive(
    st.one_of(st.none(), st.text(max_size=6), st.integers(), st.datetimes(timezones=st.just(UTC)),
              st.frozensets(st.text(max_size=4), max_size=3)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.tuples(inner, inner),
                            st.lists(st.text(max_size=6), max_size=5).map(tuple),
                            st.dictionaries(st.text(max_size=3), inner, max_size=3)),
    max_leaves=10)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["retry", "materialize", "resync_table"]), st.lists(part_st, max_size=4))
def test_action_ids_are_unchanged_by_the_fast_path(kind, parts):
    import hashlib
    import json

    from orchestrator.planning.common import action_id

    blob = json.dumps([kind, *[_old_norm(p) for p in parts]], sort_keys=True, default=str)
    assert action_id(kind, *parts) == f"{kind[:4]}-{hashlib.sha1(blob.encode()).hexdigest()[:12]}"


def test_bad_day_plans_are_identical_with_the_scans_they_replace(monkeypatch):
    """Whole plans on seeded bad-day fleets: the lineage walk (``between``), the cached topological
    index and the action-id fast path give the same actions, in the same order, as the scans."""
    from orchestrator.planning import common
    from orchestrator.planning.planner import plan
    from orchestrator.planning.synthetic import fleet

    def run(seed):
        f = fleet(600, seed=seed, failure_rate=0.08, at_risk_rate=0.4)
        p = plan(f.snapshot, f.assessment, f.resolution, f.durations, f.now)
        return [(a.action_id, a.type, a.asset_keys, a.priority, a.not_before, a.reason) for a in p.actions], p.rationale

    seeds = range(4)
    new = [run(s) for s in seeds]
    monkeypatch.setattr(AssetGraph, "between",
                        lambda self, a, b: self.downstream_closure(a) & self.upstream_closure(b))
    monkeypatch.setattr(AssetGraph, "topological_index",
                        lambda self: {k: i for i, k in enumerate(self.topological_order())})
    monkeypatch.setattr(common, "_norm", _old_norm)
    old = [run(s) for s in seeds]
    assert new == old
    assert any(actions for actions, _ in new)


def _reference_roots(failures, graph, window=timedelta(hours=6), grace=timedelta(minutes=5)):
    """link_root_causes by brute force: the upstream failures of an asset are those on any of its
    strict ancestors (no shared lists, no cut: fewer failures than the function keeps)."""
    from orchestrator.assessment.failures import _CONNECTOR_SYSTEMS, _assets_of

    failures = sorted(failures, key=lambda f: (f.at, f.failure_id))
    tables_of: dict[str, list[str]] = {}
    for node in graph:
        if node.connector:
            tables_of.setdefault(node.connector, []).append(node.key)
    on = {f.failure_id: [k for k in _assets_of(f, tables_of) if k in graph] for f in failures}

    def upstream(key):
        anc = graph.upstream_closure(key)
        return [f for f in failures if any(k in anc for k in on[f.failure_id])]

    def caused(e, later):
        return later.at - window <= e.at <= later.at + grace and e.failure_id != later.failure_id

    root = {}
    for f in failures:
        cause = None
        if f.system not in _CONNECTOR_SYSTEMS:
            conn = f.connector or (graph.node(f.asset_key).connector if f.asset_key and f.asset_key in graph else None)
            if conn:
                same = [g for g in failures if g.connector == conn and g.system in _CONNECTOR_SYSTEMS
                        and caused(g, f) and abs((g.at - f.at).total_seconds()) <= window.total_seconds()]
                if same:
                    cause = min(same, key=lambda g: abs((g.at - f.at).total_seconds()))
        if cause is None:
            cands = [g for k in _assets_of(f, tables_of) if k in graph for g in upstream(k) if caused(g, f)]
            if cands:
                cause = min(cands, key=lambda g: (g.at, g.failure_id))
        root[f.failure_id] = cause.failure_id if cause else None
    for fid in list(root):
        seen, cur = {fid}, root[fid]
        while cur is not None and root.get(cur) is not None and cur not in seen:
            seen.add(cur)
            cur = root[cur]
        root[fid] = cur
    return root


@settings(max_examples=120, deadline=None)
@given(dag_st, st.lists(st.tuples(st.integers(0, 13), st.sampled_from([None, "fivetran:a", "airbyte:b"]),
                                  st.sampled_from(["dbt", "dagster", "fivetran", "airbyte"]),
                                  st.integers(0, 600)), max_size=12))
def test_root_causes_with_shared_upstream_lists_equal_the_brute_force(spec, raw):
    """The upstream-failure lists shared along chains and diamonds link every failure to the same
    root as a brute-force walk over each asset's ancestors."""
    from orchestrator.assessment.failures import link_root_causes

    base = _dag(spec)
    # the roots' tables belong to connectors, so connector failures reach down the graph
    graph = AssetGraph(AssetNode(n.key, upstream=n.upstream,
                                 connector=(["fivetran:a", "airbyte:b"][i % 2] if not n.upstream else None))
                       for i, n in enumerate(base))
    keys = graph.keys
    failures = [FailureRecord(f"f{j}", NOW + timedelta(minutes=m), "boom", system,
                              asset_key=None if conn and system in ("fivetran", "airbyte") else keys[i % len(keys)],
                              connector=conn)
                for j, (i, conn, system, m) in enumerate(raw)]
    assert link_root_causes(failures, graph) == _reference_roots(failures, graph)
