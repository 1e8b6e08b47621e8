"""The budget forecast (orchestrator.core.standing.budget_forecast) keeps what depends only on the
resolution -- each policy's direct targets, each budget's governed set and each lineage inside it
-- between planning cycles, and reads each asset's refresh cost once per cycle. On generated
fleets (sizes, seeds, failure and at-risk rates, costs, budgets) the forecast is the very one the
plain computation gives -- one pass over every SLA, a fresh set per budget, every asset read per
deadline -- on the first cycle and on the next ones; a new resolution is read afresh."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.core import standing
from orchestrator.core.pricing import CostHistory
from orchestrator.core.records import CostRecord
from orchestrator.planning.synthetic import fleet


def _plain_refresh_cost(keys, graph, runs, syncs, durations, usd_per_hour):
    total = 0.0
    conns = set()
    for k in keys:
        node = graph.get(k)
        if node is None:
            continue
        if node.connector or node.role == "connector_table":
            if node.connector:
                conns.add(node.connector)
            continue
        if k in runs:
            total += runs[k]
        elif durations is not None:
            try:
                total += durations.seconds(node) / 3600.0 * usd_per_hour
            except Exception:  # noqa: BLE001
                pass
    return total + sum(syncs.get(c, 0.0) for c in conns)


def _plain_forecast(resolution, snapshot, spent_today, now, durations, days=standing.EXTENSION_DAYS,
                    usd_per_hour=standing.FALLBACK_USD_PER_HOUR):
    """budget_forecast as written before anything was kept: every pass every cycle."""
    graph = snapshot.graph
    h = CostHistory(snapshot.costs)
    runs, syncs = h.run_mean, h.triggered_sync_mean
    usd_per_hour = max(h.usd_per_hour if h.usd_per_hour is not None else 0.0, usd_per_hour)
    today = now.astimezone(UTC).date()
    end = datetime.combine(today, datetime.min.time(), tzinfo=UTC) + timedelta(days=days)
    data_time = snapshot.data_time or {}
    targets: dict[str, list[str]] = {}
    for k, sla in resolution.slas.items():
        for name in sla.policies:
            targets.setdefault(name, []).append(k)
    ticks, lin = {}, {}
    for p in resolution.policy_set.policies:
        sched = p.schedule()
        if sched is None:
            continue
        window = p.deadline.effective_window(sched)
        mine = targets.get(p.name, [])
        ts = [t for t in sched.ticks(now, end) if t > now and not (
            t - window <= now and mine and all((dt := data_time.get(k)) is not None and dt >= t - window
                                               for k in mine))]
        if ts:
            ticks[p.name] = ts
            lin[p.name] = frozenset(graph.upstream_closure(*[k for k in resolution.governed_by(p.name) if k in graph],
                                                           include_self=True))
    out = {}
    for name, (spent, per_day) in spent_today.items():
        scope = frozenset(resolution.governed_by(name))
        per = {q: _plain_refresh_cost(lin[q] & scope, graph, runs, syncs, durations, usd_per_hour) for q in ticks}
        need = {today + timedelta(days=i): 0.0 for i in range(days)}
        need[today] = spent
        for q, ts in ticks.items():
            for t in ts:
                d = t.astimezone(UTC).date()
                if d in need:
                    need[d] += per[q]
        out[name] = [(d, round(v, 4), per_day) for d, v in sorted(need.items())]
    return out


def _budgeted(f, spent: float, budget: float) -> dict[str, tuple[float, float]]:
    return {p.name: (spent, budget) for p in f.resolution.policy_set.policies}  # every policy, budgeted or not


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(60, 900), seed=st.integers(0, 10_000), failure_rate=st.floats(0.0, 0.3),
       at_risk_rate=st.floats(0.0, 1.0), hours=st.floats(-30.0, 30.0), spent=st.floats(0.0, 500.0),
       syncs=st.lists(st.tuples(st.integers(0, 50), st.floats(0.0, 40.0), st.booleans()), max_size=8))
def test_forecast_is_the_plain_one_on_every_cycle(n, seed, failure_rate, at_risk_rate, hours, spent, syncs):
    f = fleet(n, seed=seed, failure_rate=failure_rate, at_risk_rate=at_risk_rate)
    conns = sorted(f.snapshot.graph.connectors)
    if conns:  # triggered and scheduled syncs priced against the budgets
        f.snapshot.costs = list(f.snapshot.costs) + [
            CostRecord(at=f.now, amount_usd=usd, source="sync", connector=conns[i % len(conns)],
                       detail={"triggered_by": "schedule"} if scheduled else {}) for i, usd, scheduled in syncs]
    now = f.now + timedelta(hours=hours)
    spent_today = _budgeted(f, spent, 100.0)
    want = _plain_forecast(f.resolution, f.snapshot, spent_today, now, f.durations)
    for _ in range(2):  # the first cycle fills what is kept, the second reads it
        got = standing.budget_forecast(f.resolution, f.snapshot, spent_today, now, f.durations)
        assert got == want
        assert all(isinstance(d, date) for days in got.values() for d, _, _ in days)
    # a new resolution of the same graph: read afresh, the same forecast
    g = fleet(n, seed=seed, failure_rate=failure_rate, at_risk_rate=at_risk_rate)
    g.snapshot.costs = f.snapshot.costs
    assert standing.budget_forecast(g.resolution, g.snapshot, spent_today, now, g.durations) == want


@settings(max_examples=40, deadline=None)
@given(n=st.integers(30, 300), seed=st.integers(0, 10_000),
       picks=st.lists(st.lists(st.integers(0, 10_000), max_size=80), min_size=1, max_size=4),
       with_durations=st.booleans())
def test_refresh_cost_of_kept_units_is_each_sum_read_afresh(n, seed, picks, with_durations):
    """The graph's part of a refresh (standing.refresh_units), split once and priced on later
    cycles, costs the very float the asset-by-asset sum gives (same order, same set of syncs)."""
    f = fleet(n, seed=seed)
    graph, keys = f.snapshot.graph, f.snapshot.graph.keys
    h = CostHistory(f.snapshot.costs)
    conns = sorted(graph.connectors)
    syncs = {c: 0.5 + i for i, c in enumerate(conns[::2])}  # some connectors priced, the others not
    durations = f.durations if with_durations else None
    for pick in picks:
        subset = [keys[i % len(keys)] for i in pick] + ["not-an-asset"]
        plain = _plain_refresh_cost(subset, graph, h.run_mean, syncs, durations, 2.0)
        units = standing.refresh_units(subset, graph)
        for _ in range(2):
            assert repr(standing.refresh_cost(units, graph, h.run_mean, syncs, durations, 2.0)) == repr(plain)
        assert repr(standing.refresh_cost(subset, graph, h.run_mean, syncs, durations, 2.0)) == repr(plain)
