"""The most a resync may cost before any resync of its connector was seen (no Dagster imports).

A reload re-reads its tables whole and bills every row at the full price, where an incremental
sync bills only the rows new to the month (MAR): neither the number of rows nor their price follows
from a multiple of an incremental sync (generated world 15051: a table resync floored at 4 x a
$11.54 sync, $46.16, billed $149.94 for 9.6M rows and took a policy over its budget). What the
history does show is how many rows the connector lands per hour of data (its syncs report their
rows). A table holds the rows of the hours it retains, so a reload's bill is at most

    rows per hour x the hours a reload re-reads x the full price per row
    + RESYNC_FACTOR x the connector's dearest sync (its fixed part and warehouse load, as the floor)

with the full price per row the contract's list price (the snapshot reports no price per row that
a full refresh pays, nor any table's size: both are operator knowledge, ``GateConfig``).
"""

from __future__ import annotations

from collections.abc import Mapping

from orchestrator.core.pricing import SyncPricer
from orchestrator.core.records import Snapshot
from orchestrator.planning.inflight import RESYNCS, resync_floor, unpriced_reload

# hours of its connector's rows a reload re-reads: the tables' retained size (a table resync
# reloads a day of rows, a full resync the connector's retained days)
RELOAD_HOURS: Mapping[str, float] = {"resync_table": 24.0, "full_resync": 96.0}


def reload_rows(pricer: SyncPricer, connector: str, action_type: str,
                hours: Mapping[str, float] = RELOAD_HOURS) -> float | None:
    """The rows a reload of ``connector`` reads at most: the most rows per hour of data its priced
    syncs landed x the hours a reload re-reads. None while no two reported syncs show a rate."""
    pricer.fit(connector)  # builds the per-connector rates on the first price asked
    rate = pricer.rows_per_hour.get(connector)
    if rate is None or action_type not in hours:
        return None
    return rate * hours[action_type]


def reload_bound(snapshot: Snapshot, action, pricer: SyncPricer, usd_per_million_rows: float,
                 hours: Mapping[str, float] = RELOAD_HOURS) -> float | None:
    """An upper estimate of what a resync no past resync of its connector prices will cost (see the
    module's note); None for other actions, for a resync the ledger already prices (its bill prices
    it: :func:`~orchestrator.planning.inflight.resync_floor`), and while the connector's syncs show
    no rows per hour (then nothing bounds it: :func:`unbounded_reload` says so)."""
    t = getattr(action.type, "value", action.type)
    if t not in RESYNCS or not action.connector:
        return None
    rows = reload_rows(pricer, action.connector, t, hours)
    if rows is None:
        return None
    return rows / 1e6 * usd_per_million_rows + resync_floor(snapshot, action, pricer)


def unbounded_reload(snapshot: Snapshot, action, pricer: SyncPricer, resyncs, usd_per_million_rows: float,
                     hours: Mapping[str, float] = RELOAD_HOURS) -> tuple[str | None, float | None]:
    """(the connector of a resync that neither a past resync nor its syncs' rows price, None
    otherwise; the bound of a resync no past resync prices, None otherwise)."""
    conn = unpriced_reload(action, resyncs)
    if conn is None:
        return None, None
    bound = reload_bound(snapshot, action, pricer, usd_per_million_rows, hours)
    return (conn if bound is None else None), bound
