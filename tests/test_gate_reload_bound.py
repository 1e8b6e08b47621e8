"""A resync no past resync of its connector prices is bounded from what its syncs show (issue 11).

World 15051: a table resync floored at 4 x the connector's dearest sync ($46.16) was billed $149.94
(9.6M rows at the full price) and took a policy over its budget unasked. Holding every such resync
for a person made it safe but had every first drift resync of the 30-day learning run wait.
``reload_price.reload_bound`` prices the reload from the rows per hour the connector's syncs
reported: the yardstick here is the simulator's own bill (``Simulation.sync_cost``) over random
sync histories, billed as the simulator bills them.
"""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

from hypothesis import given, settings
from hypothesis import strategies as st
from test_gate_sync_budget import CONN, GRAPH, NOW

from orchestrator.core.pricing import SyncPricer
from orchestrator.core.records import Action, CostRecord, Snapshot, SyncRecord
from orchestrator.planning.gate import GateConfig
from orchestrator.planning.reload_price import reload_bound
from orchestrator.simulator.engine import RESYNC_FACTOR as RESYNC_DURATION, Simulation
from orchestrator.simulator.scenario import CostSpec

COST = CostSpec()


def _sim_bill(rows_per_hour: float, data_time: float, start: float, minutes: float, factor: float,
              resync: str | None = None) -> tuple[float, int]:
    """The simulator's bill for a sync starting at ``start`` (s) of a connector whose data is as
    of ``data_time``, ``minutes`` long at warehouse price ``factor`` (off-peak 0.6 or 1)."""
    sim = SimpleNamespace(
        sc=SimpleNamespace(connectors={"c": SimpleNamespace(rows_per_hour=rows_per_hour, tables=("t",))}),
        spec=SimpleNamespace(cost=COST), data_time={"t": data_time},
        _wh_rate=COST.warehouse_usd_per_hour / 3600.0, price_integral=lambda a, b: (b - a) * factor)
    return Simulation.sync_cost(sim, "c", start, start + minutes * 60.0, resync)


@st.composite
def histories(draw):
    """A connector's good syncs: irregular gaps (a failed slot, a manual sync), durations and
    warehouse prices, billed and their rows reported as the simulator does."""
    rows_per_hour = draw(st.floats(50.0, 1_000_000.0))
    n = draw(st.integers(2, 8))
    gaps = draw(st.lists(st.floats(0.25, 30.0), min_size=n, max_size=n))
    minutes = draw(st.lists(st.floats(1.0, 90.0), min_size=n, max_size=n))
    factors = draw(st.lists(st.sampled_from([0.6, 1.0]), min_size=n, max_size=n))
    origin = NOW - timedelta(hours=sum(gaps) + 2)
    syncs, costs, t = [], [], 0.0
    data_time = -draw(st.floats(0.5, 6.0)) * 3600.0  # the world's initial data age
    for i, (gap, m, f) in enumerate(zip(gaps, minutes, factors)):
        t += gap * 3600.0
        usd, rows = _sim_bill(rows_per_hour, data_time, t, m, f)
        start, end = origin + timedelta(seconds=t), origin + timedelta(seconds=t + m * 60.0)
        syncs.append(SyncRecord(CONN, f"s{i}", "succeeded", start, end, triggered_by="schedule", rows=rows))
        costs.append(CostRecord(end, usd, "sync", connector=CONN, compute_s=m * 60.0,
                                detail={"rows": rows, "triggered_by": "schedule"}))
        data_time = t
    resync_minutes = RESYNC_DURATION["resync_table"] * draw(st.sampled_from(minutes))
    return rows_per_hour, Snapshot(taken_at=NOW, graph=GRAPH, syncs=syncs, costs=costs), resync_minutes


@settings(max_examples=300, deadline=None)
@given(history=histories(), kind=st.sampled_from(["resync_table", "full_resync"]),
       factor=st.sampled_from([0.6, 1.0]))
def test_the_bound_covers_what_the_simulator_bills_for_the_reload(history, kind, factor):
    """Whatever the rows per hour, cadence, durations and warehouse prices of the connector's syncs:
    the bound of a first resync is at least what the simulator bills for it."""
    rows_per_hour, snap, minutes = history
    minutes *= RESYNC_DURATION[kind] / RESYNC_DURATION["resync_table"]
    action = Action("s1", kind, "schema drift", connector=CONN, cause="schema_drift")
    bound = reload_bound(snap, action, SyncPricer(snap), GateConfig().reload_usd_per_million_rows,
                         GateConfig().reload_hours)
    billed, _ = _sim_bill(rows_per_hour, 0.0, 3600.0, minutes, factor, kind)
    assert bound is not None and bound >= billed, (bound, billed)


def test_no_bound_without_rows_or_for_other_actions():
    """Syncs that report no rows show no rate: nothing bounds the reload (the gate then has a person
    decide); other actions have no reload bound."""
    start = NOW - timedelta(hours=3)
    syncs = [SyncRecord(CONN, f"s{i}", "succeeded", start + timedelta(hours=i), start + timedelta(hours=i, minutes=5))
             for i in range(3)]
    costs = [CostRecord(s.ended_at, 2.0, "sync", connector=CONN) for s in syncs]
    snap = Snapshot(taken_at=NOW, graph=GRAPH, syncs=syncs, costs=costs)
    resync = Action("s1", "resync_table", "schema drift", connector=CONN, cause="schema_drift")
    assert reload_bound(snap, resync, SyncPricer(snap), 15.0) is None
    retry = Action("r1", "retry", "retry", connector=CONN, cause="resource_exhausted")
    assert reload_bound(snap, retry, SyncPricer(snap), 15.0) is None
