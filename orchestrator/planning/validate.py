"""Validation: every action, from the planner or the LLM, is checked against what is real.

``validate(plan, snapshot, resolution) -> (accepted, rejected)``; ``rejected`` is a list of
``(action, reason)``. An action is rejected when it

* has a type that is not an ``ActionType``, or lacks what its type needs (assets, a connector,
  tables, partitions, a run id);
* names an asset, partition, connector, table or run that does not exist (partitions only on
  partitioned assets, ``YYYY-MM-DD`` keys not in the future);
* is too broad: more units of work than ``max_assets`` (default 200, at most half the graph; a
  connector sync counts once however many tables it lands, every other asset counts), a
  backfill outside the *affected* partitions (partitions with a recorded failure) or outside
  the downstream closure of the affected assets, a ``full_resync`` of a connector without a
  recorded failure;
* falls into a blackout window of any asset it touches (at ``not_before`` when deferred);
* would take a policy's spend today over its daily budget (plus the budget extension a person
  granted for today, ``budgets=``; non-critical work only: critical work passes and the gate
  asks for approval);
* repeats something in flight (a running/queued run on the same assets and partitions, a sync
  running on the connector) or an earlier action of the same plan (the same action, or a run
  whose assets an earlier accepted run of the plan already covers);
* pauses a connector whose failure has cleared (:func:`failure_cleared`: its latest sync
  succeeded): an approval that comes after the cause was fixed must not stop a healthy connector.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from collections.abc import Set
from datetime import date, datetime, time, timedelta

from orchestrator.core.pricing import CostHistory, RunBound, SyncPricer, sync_charges, with_syncs
from orchestrator.core.records import Action, Plan, Snapshot, SyncRecord
from orchestrator.core.standing import governed_connectors, governed_set
from orchestrator.planning.common import UTC, action_type, units_of_work
from orchestrator.planning.common import aware as _aware
from orchestrator.planning.inflight import in_flight_by_policy, in_flight_spend, resync_floor
from orchestrator.core.vocab import PAUSE_AND_ESCALATE, ActionType

_PARTITION = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass
class ValidationConfig:
    max_assets: int = 200
    max_partitions: int = 31
    priority_bounds: tuple[int, int] = (-1000, 1000)
    max_defer: timedelta = timedelta(days=2)
    # the warehouse price of unfinished work in flight with no cost history (CostRates.dbt_usd_per_hour)
    unknown_usd_per_hour: float = 2.0
    # a model run counts at the upper bound of its bill (``pricing.RunBound``), as the gate counts
    # it with GateConfig.bound_model_runs (off by default, see there)
    bound_model_runs: bool = False


def scheduled_sync(c) -> bool:
    """A sync the connector ran on its own schedule (the vendor's, billed by the vendor: no gate can
    hold it), which does not count against a policy's budget."""
    return c.source == "sync" and (c.detail or {}).get("triggered_by") == "schedule"


def _spent_today(snapshot: Snapshot, keys: Set[str], now: datetime, conns: Set[str] | None = None) -> float:
    """Spend today on ``keys`` that counts against a budget: their runs, and the syncs the
    orchestrator triggered on connectors landing any of them (``conns``: read from the graph when
    not given; a sync record names the connector, not a table: it counts in full). The connectors'
    own scheduled syncs do not count."""
    day = now.astimezone(UTC).date()
    # today as a UTC interval: a comparison per record, not a conversion and a date
    start = datetime.combine(day, time.min, tzinfo=UTC)
    end = start + timedelta(days=1)
    if conns is None:
        conns = {n.connector for n in snapshot.graph if n.connector and n.key in keys}
    return sum(c.amount_usd for c in snapshot.costs
               if (c.asset_key in keys or (c.asset_key is None and c.connector in conns and not scheduled_sync(c)))
               and start <= _aware(c.at) < end)


def failure_cleared(snapshot: Snapshot, connector: str) -> datetime | None:
    """When ``connector``'s latest finished sync succeeded (None: it failed, or none is known):
    the failure a pause was asked for has cleared since. A pause approved after that (the person
    answered after someone fixed the cause) would stop a healthy connector, and nothing would
    resume it: no failure is left for the planner to answer (generated world 14047: every
    later deadline of its lineage lost)."""
    last: SyncRecord | None = None
    for s in snapshot.syncs:
        if s.connector != connector or s.status not in ("succeeded", "failed") or s.ended_at is None:
            continue
        if last is None or _aware(s.ended_at) >= _aware(last.ended_at):
            last = s
    return _aware(last.ended_at) if last is not None and last.status == "succeeded" else None


def validate(
    plan: Plan,
    snapshot: Snapshot,
    resolution,
    *,
    now: datetime | None = None,
    config: ValidationConfig | None = None,
    budgets=None,
    durations=None,
    resyncs=None,
) -> tuple[list[Action], list[tuple[Action, str]]]:
    """``budgets``: an ``orchestrator.core.standing.BudgetCover`` (budget extensions a person
    granted for today, added to the policies' daily budgets). Spent today counts the unfinished
    part of the orchestrator's runs in flight (``orchestrator.planning.inflight``; ``durations``
    prices steps with no cost history). ``resyncs``: what resyncs that ran cost
    (``orchestrator.core.pricing.ResyncPrices``), the floor of a resync's price."""
    cfg = config or ValidationConfig()
    now = _aware(now or plan.created_at or snapshot.taken_at)
    graph = snapshot.graph
    max_assets = max(1, min(cfg.max_assets, max(len(graph) // 2, 1)))
    connectors = graph.connectors
    in_flight = snapshot.in_flight()
    # in-flight runs by asset key (each with its keys and partitions as sets), in in_flight order:
    # a run covers an action only if it holds the action's first asset, so only those are compared
    flight_by_key: dict[str, list[tuple]] = {}
    for r in in_flight:
        entry = (r, set(r.asset_keys), set(r.partitions))
        for k in entry[1]:
            flight_by_key.setdefault(k, []).append(entry)
    runs_by_id = {r.run_id: r for r in snapshot.runs}
    syncing = {s.connector for s in snapshot.syncs if s.status == "running"}
    failed_parts: dict[str, set[str]] = {}
    failed_connectors: set[str] = set()
    for f in snapshot.failures:
        if f.asset_key and f.partition:
            failed_parts.setdefault(f.asset_key, set()).add(f.partition)
        if f.connector:
            failed_connectors.add(f.connector)
    # runs the plan cancels (re-prioritisation) do not count as in flight; an LLM's cancel is only
    # a proposal waiting for a person (agent.envelope): until then its run still runs and spends
    replaced = {a.run_id for a in plan.actions if a.run_id and a.source != "llm"
                and ActionType.parse(a.type) in (ActionType.materialize, ActionType.cancel_run)}

    accepted: list[Action] = []
    rejected: list[tuple[Action, str]] = []
    seen: set[tuple] = set()
    # run-launching actions accepted so far, by each of their asset keys (in acceptance order)
    launched_by_key: dict[str, list[tuple[str, set[str], set[str]]]] = {}
    budget_cache: dict[str, tuple[float, float | None]] = {}
    coming: dict[str, float] | None = None  # policy -> spend still to come from work in flight
    pricer = SyncPricer(snapshot)  # connector syncs priced from the backlog they load
    run_bound = RunBound(snapshot.costs) if cfg.bound_model_runs else None
    run_mean: dict[str, float] | None = None

    def check(a: Action) -> str | None:
        nonlocal coming, run_mean
        t = action_type(a)
        if t is None:
            return f"action type {a.type!r} is not allowed (allowed: {', '.join(x.value for x in ActionType)})"
        lo, hi = cfg.priority_bounds
        if not lo <= a.priority <= hi:
            return f"priority {a.priority} outside [{lo}, {hi}]"
        if not 0.0 <= a.confidence <= 1.0:
            return f"confidence {a.confidence} outside [0, 1]"
        unknown = [k for k in a.asset_keys if k not in graph]
        if unknown:
            return f"unknown asset(s): {', '.join(map(repr, unknown[:5]))}"
        if len(set(a.asset_keys)) != len(a.asset_keys):
            return "an asset is named twice"
        if a.connector is not None and a.connector not in connectors:
            return f"unknown connector {a.connector!r}"
        if t.starts_run:
            if not a.asset_keys:
                return f"{t.value} needs at least one asset"
            units = units_of_work(a.asset_keys, graph, a.connector)
            if units > max_assets:
                return (f"too broad: {units} units of work ({len(a.asset_keys)} assets) in one action "
                        f"(max {max_assets})")
        if t.calls_connector and not a.connector:
            return f"{t.value} needs a connector"
        if t is ActionType.cancel_run and (not a.run_id or a.run_id not in runs_by_id):
            return f"cancel_run names an unknown run {a.run_id!r}"
        if a.run_id and t is ActionType.materialize:
            run = runs_by_id.get(a.run_id)
            if run is None or not run.status.in_flight:
                return f"re-prioritised run {a.run_id!r} is not queued"
        # partitions
        if a.partitions:
            if len(a.partitions) > cfg.max_partitions:
                return f"too broad: {len(a.partitions)} partitions (max {cfg.max_partitions})"
            for p in a.partitions:
                if not _PARTITION.match(p):
                    return f"invalid partition key {p!r}"
                try:
                    if date.fromisoformat(p) > now.astimezone(UTC).date():
                        return f"partition {p} is in the future"
                except ValueError:
                    return f"invalid partition key {p!r}"
            unpart = [k for k in a.asset_keys if not graph.node(k).partitioning]
            if unpart:
                return f"partitions given for unpartitioned asset(s): {', '.join(unpart[:5])}"
        else:
            part = [k for k in a.asset_keys if graph.node(k).partitioning]
            if part and t.starts_run:
                return f"partitioned asset(s) without partitions: {', '.join(part[:5])}"
        if t is ActionType.backfill:
            if not a.partitions:
                return "backfill needs the affected partitions"
            affected = {k for k, ps in failed_parts.items() if set(a.partitions) & ps}
            if not affected:
                return "backfill of partitions with no recorded failure (not targeted)"
            extra = set(a.partitions) - set().union(*(failed_parts[k] for k in affected))
            if extra:
                return f"backfill beyond the affected partitions: {', '.join(sorted(extra)[:5])}"
            closure = graph.downstream_closure(*affected, include_self=True)
            outside = [k for k in a.asset_keys if k not in closure]
            if outside:
                return f"backfill outside the downstream closure of the affected assets: {', '.join(outside[:5])}"
        if t is ActionType.resync_table:
            if not a.tables:
                return "resync_table needs tables"
            if (landed := _landed_since_failure(snapshot, a)) is not None:
                return landed
            own = set(connectors[a.connector])
            for schema, tables in a.tables.items():
                for table in tables:
                    if f"{schema}/{table}" not in own and table not in {k.rpartition('/')[2] for k in own}:
                        return f"table {schema}.{table} is not synced by {a.connector}"
        if t is ActionType.full_resync and a.connector not in failed_connectors:
            return f"full_resync of {a.connector} without any recorded failure of it"
        if t is ActionType.pause_connector and a.cause in PAUSE_AND_ESCALATE and (cleared := failure_cleared(snapshot, a.connector)):
            return (f"pause of {a.connector} for {a.cause}: its failure has cleared (a sync succeeded at "
                    f"{cleared:%Y-%m-%d %H:%M} UTC)")
        if a.not_before is not None and _aware(a.not_before) - now > cfg.max_defer:
            return f"not_before {a.not_before.isoformat()} is more than {cfg.max_defer} away"

        # blackout windows
        at = _aware(a.not_before) if a.not_before and _aware(a.not_before) > now else now
        touched = list(a.asset_keys) or connectors.get(a.connector or "", [])
        if resolution is not None:
            for k in touched:
                sla = resolution.sla(k)
                if sla is None:
                    continue
                w = sla.blackout_at(at)
                if w is not None:
                    why = f" ({w.reason})" if getattr(w, "reason", None) else ""
                    return f"inside a blackout window of {k}{why} at {at:%Y-%m-%d %H:%M} UTC"
        # budgets
        base = a.estimated_cost_usd
        if run_bound is not None:
            if run_mean is None:
                run_mean = CostHistory(snapshot.costs).run_mean
            base += run_bound.excess(a, graph, run_mean)
        cost = max(with_syncs(snapshot, a, now, base, pricer), resync_floor(snapshot, a, pricer, resyncs))
        if resolution is not None and cost > 0 and t is not ActionType.pause_connector:
            # the syncs a run triggers are paid by every policy governing a table they land too
            # (as the cost assessment and the audit count them): those policies pay the syncs' price
            charge: dict[str, tuple[float, object]] = {}  # policy -> (what this action costs it, budget)
            for k in touched:
                sla = resolution.sla(k)
                if sla is not None and sla.tier.value != "critical":
                    for name, budget in sla.budgets:
                        charge[name] = (cost, budget)
            charge.update(sync_charges(snapshot, a, now, resolution, exclude=set(charge),
                                       skip_critical=True, pricer=pricer))
            for name, (usd, budget) in charge.items():
                if budget.per_day is None or budget.unit != "usd":
                    continue
                if name not in budget_cache:
                    more = budgets.extra(name) if budgets is not None else 0.0
                    if coming is None:
                        coming = in_flight_by_policy(in_flight_spend(
                            snapshot, usd_per_hour=cfg.unknown_usd_per_hour, durations=durations, exclude=replaced,
                            pricer=pricer, run_bound=run_bound),
                            resolution, graph)
                    budget_cache[name] = (_spent_today(snapshot, governed_set(resolution, name), now,
                                                       governed_connectors(resolution, graph, name))
                                          + coming.get(name, 0.0), budget.per_day + more)
                spent, per_day = budget_cache[name]
                if spent + usd > per_day:
                    return (f"over budget: policy {name} spent {spent:.2f} of {per_day:.2f} USD today"
                            + (" (counting work in flight)" if coming and coming.get(name) else "")
                            + (" (with the extension granted)" if budgets is not None and budgets.extra(name) else "")
                            + f", this would add {usd:.2f}")
        # in flight and duplicates
        if t.starts_run:
            a_keys, a_parts = set(a.asset_keys), set(a.partitions)
            for r, r_keys, r_parts in flight_by_key.get(a.asset_keys[0], ()):
                if r.run_id in replaced or r.run_id == a.run_id:
                    continue
                if a_keys <= r_keys and (not a_parts or not r_parts or a_parts <= r_parts):
                    return f"already in flight: run {r.run_id} ({r.status.value}) covers these assets"
        if a.connector and a.connector in syncing and t in (
            ActionType.retry, ActionType.resync_table, ActionType.full_resync
        ):
            return f"a sync of {a.connector} is already running"
        sig = (t.value, tuple(sorted(a.asset_keys)), tuple(sorted(a.partitions)), a.connector, a.run_id,
               tuple(sorted((s, tuple(v)) for s, v in a.tables.items())))
        if sig in seen:
            return "duplicate of an earlier action in this plan"
        if t.starts_run:
            for other_id, keys, parts in launched_by_key.get(a.asset_keys[0], ()):
                if a_keys <= keys and (not a_parts or not parts or a_parts <= parts):
                    return f"already covered by action {other_id} of this plan"
        seen.add(sig)
        return None

    for a in plan.actions:
        try:
            reason = check(a)
        except Exception as exc:  # malformed input never crashes the cycle
            reason = f"invalid action: {type(exc).__name__}: {exc}"
        if reason is None:
            accepted.append(a)
            if ActionType(a.type).starts_run:
                entry = (a.action_id, set(a.asset_keys), set(a.partitions))
                for k in entry[1]:
                    launched_by_key.setdefault(k, []).append(entry)
        else:
            rejected.append((a, reason))
    return accepted, rejected


def _landed_since_failure(snapshot: Snapshot, a: Action) -> str | None:
    """A resync answers the failure it names (``a.cycle``); once every table it names has landed
    after that failure (a person fixed the drift, the connector's own sync ran clean), it would
    re-read them at full price for nothing: stale (an approved resync waiting for its start)."""
    if not a.cycle or not a.asset_keys:
        return None
    failed = next((f for f in snapshot.failures if f.failure_id == a.cycle), None)
    if failed is None:
        return None
    at = _aware(failed.at)
    last = snapshot.last_success
    if all((ls := last.get(k)) is not None and _aware(ls) > at for k in a.asset_keys):
        return f"stale: every table it resyncs landed after the failure it answers ({a.cycle})"
    return None
