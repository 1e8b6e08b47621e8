"""Spend still to come from work already in flight (no Dagster imports).

A run the orchestrator launched is charged step by step as its steps end: while it runs, the
day's recorded spend holds only its finished steps. The gate and validation add the *unfinished*
part of every run in flight (and of every connector sync the orchestrator triggered that is still
running) to a budget's spend today, so work launched now cannot take the day over a budget on top
of work that is still running (the independent audit counts the spend at completion).

``in_flight_spend(snapshot, usd_per_hour=..., durations=None) -> {asset key | "connector:<id>": usd}``

The estimate of an unfinished model step: the mean of its past cost records, else its p90 duration
(with ``durations``) x ``usd_per_hour``. An unfinished sync counts as every budget check prices a
sync: the upper bound :meth:`~orchestrator.core.pricing.SyncPricer.budget_bound` of its bill from
the backlog it loads, and with no sync history of its connector at the assumed
``unpriced_sync_usd_per_hour`` per hour of backlog (:func:`~orchestrator.core.pricing.unpriced_sync_cost`),
never $0 (generated world 16492: a blind sync a person approved counted $0 while in flight, and a
$12 refresh ran under the same budget). A step counts as finished once its run materialized it or
recorded a failure of it. The vendor's own scheduled syncs and runs (``triggered_by`` schedule,
the simulator's ``sim/source: native``) are not the orchestrator's: they do not count.
"""

from __future__ import annotations

from orchestrator.core.pricing import UNPRICED_SYNC_USD_PER_HOUR, RunBound, SyncPricer, unpriced_sync_cost
from orchestrator.core.records import Snapshot

SCHEDULED_SOURCES = frozenset({"native", "schedule"})


def is_scheduled_run(run) -> bool:
    """The vendor's own scheduled sync or run (a connector's schedule), not the orchestrator's."""
    tags = run.tags or {}
    return (tags.get("sim/source") in SCHEDULED_SOURCES
            or tags.get("orchestrator/triggered_by") in SCHEDULED_SOURCES)


def in_flight_spend(snapshot: Snapshot, *, usd_per_hour: float = 2.0, durations=None,
                    exclude=frozenset(), pricer: SyncPricer | None = None,
                    unpriced_sync_usd_per_hour: float = UNPRICED_SYNC_USD_PER_HOUR,
                    run_bound: RunBound | None = None) -> dict[str, float]:
    """The estimated spend still to come of the orchestrator's work in flight, by asset key (a
    model's unfinished step) and by ``connector:<id>`` (an unfinished sync, counted once per
    connector and run). ``exclude``: run ids not to count (queued runs a plan replaces).
    ``pricer``: the cycle's :class:`~orchestrator.core.pricing.SyncPricer` (built here if not given).
    ``run_bound``: a model step with past bills counts at the upper bound of its bill
    (:class:`~orchestrator.core.pricing.RunBound`), as a budget check charges a run; None: at its mean."""
    runs = [r for r in snapshot.in_flight() if not is_scheduled_run(r) and r.run_id not in exclude]
    if not runs:
        return {}
    graph = snapshot.graph
    ids = {r.run_id for r in runs}
    done: set[tuple[str, str]] = set()
    for m in snapshot.materializations:
        if m.run_id in ids:
            done.add((m.run_id, m.asset_key))
    for f in snapshot.failures:
        if f.run_id in ids:
            if f.asset_key:
                done.add((f.run_id, f.asset_key))
            if f.connector:
                done.add((f.run_id, f"connector:{f.connector}"))
    # what is left to run: (run, unit) -> the unit's key (an asset, or a connector once per run)
    left: dict[tuple[str, str], str] = {}
    sync_start: dict[str, object] = {}  # connector unit -> when its earliest unfinished sync started
    for r in runs:
        for k in r.asset_keys:
            node = graph.get(k)
            if node is None:
                continue
            if node.connector:
                unit = f"connector:{node.connector}"
                if (r.run_id, k) in done or (r.run_id, unit) in done:
                    done.add((r.run_id, unit))  # one table landed: the sync ended
                    left.pop((r.run_id, unit), None)
                    continue
                left.setdefault((r.run_id, unit), unit)
                began = r.started_at or snapshot.taken_at
                sync_start[unit] = min(sync_start.get(unit, began), began)
            elif (r.run_id, k) not in done:
                left[(r.run_id, k)] = k
    if not left:
        return {}
    units = set(left.values())
    price: dict[str, float] = {}
    if sync_start:
        pricer = pricer or SyncPricer(snapshot)
        for unit, began in sync_start.items():
            conn = unit.split(":", 1)[1]
            price[unit] = pricer.budget_bound(conn, began) or unpriced_sync_cost(
                pricer, conn, began, unpriced_sync_usd_per_hour)
    sums: dict[str, list[float]] = {}  # unit -> [usd, n, usd triggered, n triggered]
    for c in snapshot.costs:
        if c.asset_key is not None:
            unit = c.asset_key
        else:
            continue
        if unit not in units:
            continue
        s = sums.setdefault(unit, [0.0, 0, 0.0, 0])
        s[0] += c.amount_usd
        s[1] += 1
        if (c.detail or {}).get("triggered_by") not in SCHEDULED_SOURCES:
            s[2] += c.amount_usd
            s[3] += 1
    rate = usd_per_hour / 3600.0
    for unit in units:
        if unit in price:
            continue
        s = sums.get(unit)
        if s is not None and s[1]:
            price[unit] = s[2] / s[3] if s[3] else s[0] / s[1]
            if run_bound is not None:
                price[unit] = max(price[unit], run_bound.budget_bound(unit))
        elif durations is not None and not unit.startswith("connector:"):
            node = graph.get(unit)
            try:
                price[unit] = durations.seconds(node) * rate if node is not None else 0.0
            except Exception:  # noqa: BLE001 - no estimate: nothing
                price[unit] = 0.0
        else:
            price[unit] = 0.0
    out: dict[str, float] = {}
    for unit in left.values():
        if price[unit] > 0:
            out[unit] = out.get(unit, 0.0) + price[unit]
    return out


def in_flight_by_policy(spend: dict[str, float], resolution, graph) -> dict[str, float]:
    """Per budgeted policy, the in-flight spend it pays for: an asset's step for every policy
    governing it, a connector's sync in full for every policy governing any table it lands (as
    the cost assessment, validation and the audit count spend)."""
    if not spend or resolution is None:
        return {}
    out: dict[str, float] = {}
    conns = graph.connectors
    for unit, usd in spend.items():
        if unit.startswith("connector:"):
            keys = conns.get(unit.split(":", 1)[1], ())
        else:
            keys = (unit,)
        names: set[str] = set()
        for k in keys:
            sla = resolution.sla(k)
            if sla is not None:
                names.update(n for n, _ in sla.budgets)
        for n in names:
            out[n] = out.get(n, 0.0) + usd
    return out


RESYNCS = frozenset({"resync_table", "full_resync"})
# a resync re-reads whole tables: billed rows are a day's (or, full, several days') worth at full
# price, where an incremental sync bills only the new rows. Without a past resync of the connector
# to go by, a budget expects RESYNC_FACTOR x its dearest sync (a generated world's resync cost 3.4x)
RESYNC_FACTOR = {"resync_table": 4.0, "full_resync": 16.0}


def unpriced_reload(action, resyncs=None) -> str | None:
    """The connector of a resync that no resync seen so far prices, None otherwise (other actions,
    or once the ledger shows what a resync cost: :class:`~orchestrator.core.pricing.ResyncPrices`).

    A reload bills every row its tables hold at full price, an incremental sync only its new rows,
    so neither how many rows a reload reads nor what each costs follows from incremental syncs: the
    floor :func:`resync_floor` scales from them is no upper estimate (generated world 15051: a
    table resync floored at 4 x a $11.54 sync, $46.16, cost $149.94 -- 9.6M rows -- and took a
    policy over its budget and its extension). Nor does another connector's resync: its ratio to
    that connector's dearest sync depends on the gap that sync loaded. Until the ledger shows a
    resync of this connector (:func:`resync_bill`), under a budget such a resync is not clearly within
    it: the gate has a person decide (where no budget governs it, it runs as before)."""
    if action.type not in RESYNCS or not action.connector:
        return None
    return None if resync_bill(action, resyncs) > 0 else action.connector


def resync_bill(action, resyncs=None) -> float:
    """What a past resync of ``action``'s connector cost (a table resync's bill scaled as
    RESYNC_FACTOR scales a full resync), 0 when the ledger shows none."""
    if resyncs is None or action.type not in RESYNCS or not action.connector:
        return 0.0
    t = getattr(action.type, "value", action.type)
    bills = getattr(resyncs, "bills", {})
    return max([bills.get((action.connector, k), 0.0) * RESYNC_FACTOR[t] / RESYNC_FACTOR[k] for k in RESYNCS
                if k == t or RESYNC_FACTOR[k] < RESYNC_FACTOR[t]] or [0.0])


def resync_floor(snapshot: Snapshot, action, pricer=None, resyncs=None) -> float:
    """What a budget must expect a resync to cost at least: RESYNC_FACTOR x the dearest past sync
    of its connector (the planner prices a resync from the tables' own cost records, which a
    connector's sync records do not name). 0 for other actions. ``pricer``: the cycle's
    :class:`~orchestrator.core.pricing.SyncPricer` (one pass over the cost records per cycle).
    ``resyncs``: the cycle's :class:`~orchestrator.core.pricing.ResyncPrices` -- once resyncs
    the orchestrator ran show what one really costs, never less than the highest multiple of a connector's dearest incremental sync that one cost (for a full
    resync, that multiple scaled as RESYNC_FACTOR scales it): what was seen only raises the floor."""
    if action.type not in RESYNCS or not action.connector:
        return 0.0
    t = getattr(action.type, "value", action.type)
    conn = action.connector
    scaled = RESYNC_FACTOR[t] * (pricer or SyncPricer(snapshot)).dearest_sync(conn)
    floor = max(scaled, resync_bill(action, resyncs))  # a past resync of the connector prices its next
    if resyncs is None or not resyncs.ratio:
        return floor
    # what was seen can only raise the floor: a bill is matched to a resync by time, not by name
    scale = RESYNC_FACTOR[t] / RESYNC_FACTOR["resync_table"]
    seen = max(resyncs.ratio.get(t, 0.0), resyncs.ratio.get("resync_table", 0.0) * scale)
    base = resyncs.incremental.get(conn)
    if base is None:  # never resynced: its dearest sync is an incremental one
        base = scaled / RESYNC_FACTOR[t]
    return max(floor, seen * base)
