"""A connector's sync priced from the rows it will load when its own gaps cannot tell its bill's
fixed part from its rows (orchestrator/core/pricing.py).

With one cadence or a single priced gap, the sync was priced as all rows: a connector with few
rows synced twice 0.5 h apart ($1.34: nearly all fixed part) was priced $16.70 for a 5 h backlog
(its real sync: $1.79), and the refresh a cron job runs within budget waited for a person past
its deadline (generated world 103, -1.3 points on worlds 100-119). Where the connector reports
rows (Airbyte ``rowsSynced``, the simulator), the extra hours are priced at its rows per hour of
gap times the fleet's cheapest sync per row, an upper bound of the per-row price: never below a
bill of fixed part plus rows, far closer to it for a quiet connector.

The property test draws fleets (a per-row price, each connector's fixed part, rows per hour and
cadence) and checks every estimate against the bill that connector would send.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.core.graph import CONNECTOR_TABLE, AssetGraph, AssetNode
from orchestrator.core.pricing import EXTRAPOLATION_MARGIN, SyncPricer
from orchestrator.core.records import CostRecord, Snapshot, SyncRecord

UTC = timezone.utc
NOW = datetime(2026, 7, 9, 5, 30, tzinfo=UTC)


def _history(conn: str, n: int, every_h: float, fixed: float, rows_per_h: float, usd_per_row: float,
             last_h: float, rows: bool = True):
    """n good syncs every ``every_h`` hours, the last ``last_h`` hours ago, each billed
    fixed + its gap's rows x usd_per_row, reporting its rows (or not)."""
    syncs, costs = [], []
    for i in range(n):
        start = NOW - timedelta(hours=last_h + (n - 1 - i) * every_h)
        end = start + timedelta(minutes=5)
        loaded = int(rows_per_h * every_h)
        syncs.append(SyncRecord(conn, f"{conn}-{i}", "succeeded", start, end, triggered_by="schedule",
                                rows=loaded if rows else None))
        if i:
            costs.append(CostRecord(end, fixed + loaded * usd_per_row, "sync", connector=conn,
                                    detail={"triggered_by": "schedule", "rows": loaded}))
    return syncs, costs


def _snapshot(fleet, gap_h: float) -> Snapshot:
    """``fleet``: [(connector, n, every_h, fixed, rows_per_h, rows reported)]; the first one's
    table holds data ``gap_h`` old, the others' an hour old."""
    nodes, syncs, costs, data_time = [], [], [], {}
    for i, (conn, n, every_h, fixed, rows_per_h, usd_per_row, rows) in enumerate(fleet):
        key = f"{conn}/t"
        nodes.append(AssetNode(key, CONNECTOR_TABLE, kinds=frozenset({"airbyte"}), connector=conn))
        last = gap_h if i == 0 else 1.0
        s, c = _history(conn, n, every_h, fixed, rows_per_h, usd_per_row, last, rows)
        syncs += s
        costs += c
        data_time[key] = NOW - timedelta(hours=last)
    graph = AssetGraph(nodes)
    return Snapshot(taken_at=NOW, graph=graph, runs=[], failures=[], syncs=syncs, costs=costs,
                    last_success={k: data_time[k] for k in graph.keys}, data_time=data_time)


def _all_rows_price(fleet, gap_h: float) -> float:
    """What the rule priced before rows counted: all of a sync's bill grows with its gap."""
    snap = _snapshot([(*f[:6], False) for f in fleet], gap_h)
    return SyncPricer(snap).estimate(fleet[0][0], NOW)


connector = st.tuples(st.integers(2, 6), st.floats(0.25, 12), st.floats(0.05, 3), st.floats(500, 500_000))


@settings(max_examples=150, deadline=None)
@given(usd_per_row=st.floats(1e-6, 2e-5), target=connector, others=st.lists(connector, min_size=0, max_size=4),
       gap_h=st.floats(0, 48))
def test_a_sync_priced_by_rows_is_never_below_its_bill_and_never_above_the_all_rows_price(
        usd_per_row, target, others, gap_h):
    fleet = [(f"c{i}", n, every, fixed, rph, usd_per_row, True)
             for i, (n, every, fixed, rph) in enumerate([target, *others])]
    snap = _snapshot(fleet, gap_h)
    price = SyncPricer(snap).estimate("c0", NOW)
    _, every_h, fixed, rows_per_h = target
    bill = fixed + int(rows_per_h * gap_h) * usd_per_row
    assert price >= bill * (1 - 1e-6) - 1e-4, (price, bill)
    assert price <= _all_rows_price(fleet, gap_h) + 1e-6
    # where some sync of the fleet was mostly rows (the fleet's price per row is then at most twice
    # the per-row price), the price is within a few times the bill
    if any(f[4] * f[2] * usd_per_row >= f[3] for f in fleet):
        assert price <= 3.0 * EXTRAPOLATION_MARGIN * max(bill, fixed + rows_per_h * every_h * usd_per_row) + 1e-6


def test_a_quiet_connector_synced_once_half_an_hour_apart_is_priced_near_its_bill_world_103():
    """World 103: fivetran:kippnewark (2,000 rows an hour) synced 0.5 h apart for $1.34; the refresh
    five hours later was priced $16.70 and held over dash-1's budget. Its bill: about $1.35."""
    usd_per_row = 15.0 / 1e6 * 0.35
    fleet = [("fivetran:kippnewark", 2, 0.5, 1.33, 2000.0, usd_per_row, True),
             ("fivetran:kippmiami", 8, 1.0, 2.2, 400_000.0, usd_per_row, True)]
    price = SyncPricer(_snapshot(fleet, 5.0)).estimate("fivetran:kippnewark", NOW)
    bill = 1.33 + 2000 * 5 * usd_per_row
    assert bill <= price <= 2 * bill, price
    assert _all_rows_price(fleet, 5.0) > 15.0  # what it was priced at before
