"""What the planning cycle now keeps between cycles or reads by membership gives exactly what the
computation it replaced gave, on generated fleets and records:

* validation's spend today of a budgeted policy (its governed set and the connectors landing it
  kept on the resolution, today as a UTC interval) is the per-cycle sum over fresh sets with a
  date conversion per record -- records in other time zones, naive, around midnight, scheduled
  and triggered syncs;
* the planner's "does a burning budget cover this run" (``_burning_assets``, by membership in
  the governed sets) answers as the union of those sets did;
* ``graph.parents`` (one lookup) is the upstream view, and raises for an unknown asset."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.core.graph import UnknownAssetError
from orchestrator.core.records import CostAssessment, CostRecord
from orchestrator.core.standing import governed_connectors, governed_set
from orchestrator.planning.planner import _burning_assets
from orchestrator.planning.synthetic import fleet
from orchestrator.planning.validate import _spent_today, scheduled_sync

UTC = timezone.utc


def _plain_spent_today(snapshot, keys, now):
    """Validation's spend today as written before anything was kept."""
    day = now.astimezone(UTC).date()
    conns = {n.connector for n in snapshot.graph if n.connector and n.key in keys}
    return sum(c.amount_usd for c in snapshot.costs
               if (c.asset_key in keys or (c.asset_key is None and c.connector in conns and not scheduled_sync(c)))
               and (c.at if c.at.tzinfo else c.at.replace(tzinfo=UTC)).astimezone(UTC).date() == day)


zones = st.sampled_from([None, UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8)),
                         timezone(timedelta(hours=14))])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(40, 400), seed=st.integers(0, 10_000), hours=st.floats(-48.0, 48.0),
       records=st.lists(st.tuples(st.integers(0, 10_000), st.floats(-60 * 36, 60 * 36), zones,
                                  st.sampled_from(["run", "sync", "orphan"]),
                                  st.sampled_from([None, "schedule", "orchestrator"]),
                                  st.floats(-5.0, 50.0, allow_nan=False)), max_size=60))
def test_spend_today_with_kept_sets_is_the_plain_sum(n, seed, hours, records):
    f = fleet(n, seed=seed)
    graph = f.snapshot.graph
    keys, conns = graph.keys, sorted(graph.connectors)
    now = f.now + timedelta(hours=hours)
    extra = []
    for i, minutes, zone, kind, trigger, usd in records:
        at = (now + timedelta(minutes=minutes)).astimezone(zone or UTC)
        if zone is None:
            at = at.replace(tzinfo=None)
        extra.append(CostRecord(at=at, amount_usd=usd, source="run" if kind == "run" else "sync",
                                asset_key=keys[i % len(keys)] if kind == "run" else None,
                                connector=None if kind == "orphan" or not conns else conns[i % len(conns)],
                                detail={} if trigger is None else {"triggered_by": trigger}))
    f.snapshot.costs = list(f.snapshot.costs) + extra
    for p in f.resolution.policy_set.policies:
        plain = _plain_spent_today(f.snapshot, set(f.resolution.governed_by(p.name)), now)
        for _ in range(2):  # the first cycle keeps the sets, the next one reads them
            kept = _spent_today(f.snapshot, governed_set(f.resolution, p.name), now,
                                governed_connectors(f.resolution, graph, p.name))
            assert repr(kept) == repr(plain)
        assert repr(_spent_today(f.snapshot, set(f.resolution.governed_by(p.name)), now)) == repr(plain)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(40, 400), seed=st.integers(0, 10_000),
       burning=st.lists(st.tuples(st.sampled_from(["policy", "group", "asset", "other"]), st.integers(0, 10_000),
                                  st.booleans(), st.booleans()), max_size=5),
       picks=st.lists(st.lists(st.integers(0, 10_000), max_size=6), min_size=1, max_size=20))
def test_burning_budgets_cover_a_run_as_the_union_of_their_sets_did(n, seed, burning, picks):
    f = fleet(n, seed=seed)
    graph, res = f.snapshot.graph, f.resolution
    keys = graph.keys
    policies = [p.name for p in res.policy_set.policies] + ["no-such-policy"]
    groups = ["finance", "marketing", "ops", "no-such-group"]
    costs = []
    for kind, i, over, spike in burning:
        name = {"policy": policies, "group": groups, "asset": keys, "other": keys}[kind]
        costs.append(CostAssessment(scope=f"{kind}:{name[i % len(name)]}", spent_today_usd=1.0, spent_month_usd=1.0,
                                    forecast_day_usd=20.0 if over else 5.0, forecast_month_usd=20.0,
                                    budget_day_usd=10.0, budget_month_usd=None, spike=spike,
                                    baseline_day_usd=None, reason=""))
    f.assessment.cost = costs
    union: set[str] = set()  # the planner's set before: every burning scope's assets copied in
    for c in costs:
        if not (c.over_budget or c.spike):
            continue
        kind, _, name = c.scope.partition(":")
        if kind == "policy":
            union |= set(res.governed_by(name))
        elif kind == "group":
            union |= set(graph.group_keys(name))
        elif kind == "asset":
            union.add(name)
    covered = _burning_assets(f.assessment, res, graph)
    for pick in picks:
        run = [keys[i % len(keys)] for i in pick]
        assert covered.intersects(run) == bool(union.intersection(run))
        assert covered.intersects(iter(run)) == bool(union.intersection(run))


@settings(max_examples=20, deadline=None)
@given(n=st.integers(20, 400), seed=st.integers(0, 10_000))
def test_parents_is_the_upstream_view(n, seed):
    graph = fleet(n, seed=seed).snapshot.graph
    view = graph.upstream_map()
    assert all(graph.parents(k) == view[k] for k in graph.keys)
    with pytest.raises(UnknownAssetError):
        graph.parents("no/such/asset")


@settings(max_examples=20, deadline=None)
@given(n=st.integers(20, 300), seed=st.integers(0, 10_000),
       pairs=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 10_000)), min_size=1, max_size=30),
       kept=st.integers(1, 8))
def test_between_kept_per_pair_is_the_closure_intersection(n, seed, pairs, kept):
    import orchestrator.core.graph as graph_module

    graph = fleet(n, seed=seed).snapshot.graph
    keys = graph.keys
    old, graph_module.BETWEEN_KEPT = graph_module.BETWEEN_KEPT, kept  # pairs forgotten as the cap is hit
    try:
        for _ in range(2):  # asked afresh, then (some) kept
            for i, j in pairs:
                s, t = keys[i % len(keys)], keys[j % len(keys)]
                want = graph.downstream_closure(s) & graph.upstream_closure(t)
                got = graph.between(s, t)
                assert got == want
                got.add("changed by the caller")  # a copy: what is kept does not change
                assert graph.between(s, t) == want
        with pytest.raises(UnknownAssetError):
            graph.between("no/such/asset", keys[0])
    finally:
        graph_module.BETWEEN_KEPT = old
