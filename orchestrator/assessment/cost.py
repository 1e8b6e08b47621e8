"""Cost against budgets: spend per policy and per group, burn-rate forecasts, spikes.

Pure Python. Every ``CostRecord`` is attributed to scopes once per tick:

* a record with an ``asset_key`` counts for that asset's group and every policy governing it;
* a record with only a ``connector`` is split evenly over that connector's tables (for groups; a
  policy governing any of them counts it in full, as validation and the audit do); a sync the
  connector ran on its own schedule (``detail["triggered_by"] == "schedule"``) counts for the
  groups but not for the policies: a policy's budget counts the work the orchestrator launches
  (the vendor's scheduled syncs are billed by the vendor and no gate can hold them);
* anything else (warehouse idle time, unattributed queries) counts only for ``total``.

Forecasts extrapolate the burn rate: to the end of the UTC day from today's spend per elapsed
second (at least ``min_elapsed_s`` of elapsed time, so an early sync does not explode the
forecast), and to the end of the month from the month's spend per elapsed second. The baseline
is the median daily spend of the previous ``baseline_days`` days that had any spend; a spike is
a day whose spend (or, after ``min_elapsed_s``, its forecast) exceeds ``spike_factor`` x
baseline by at least ``spike_min_usd``.
"""

from __future__ import annotations

import calendar
import operator
import statistics
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from orchestrator.core.records import CostAssessment, CostRecord, Snapshot

UTC = timezone.utc


@dataclass(frozen=True)
class CostRates:
    """Configured prices for the embedded cost model (USD)."""

    run_usd_per_hour: float = 0.50  # Dagster run compute (the run worker)
    sync_usd_per_hour: dict[str, float] = field(
        default_factory=lambda: {"fivetran": 1.50, "airbyte": 1.00}
    )
    dbt_usd_per_hour: float = 2.00  # warehouse time of dbt nodes (run_results execution_time)
    usd_per_credit: float = 3.00  # converts budgets in credits
    baseline_days: int = 7
    spike_factor: float = 2.0
    spike_min_usd: float = 1.0
    min_elapsed_s: float = 3600.0

    def sync_rate(self, connector: str | None) -> float:
        system = (connector or "").split(":", 1)[0]
        return self.sync_usd_per_hour.get(system, max(self.sync_usd_per_hour.values(), default=1.0))

    @classmethod
    def from_env(cls) -> CostRates:
        """``ORCHESTRATOR_COST_RATES``: JSON with any of the fields (e.g. {"run_usd_per_hour": 1})."""
        import json
        import os

        raw = os.environ.get("ORCHESTRATOR_COST_RATES")
        if not raw:
            return cls()
        data = json.loads(raw)
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def _day_start(t: datetime) -> datetime:
    return t.replace(hour=0, minute=0, second=0, microsecond=0)


def _month_bounds(t: datetime) -> tuple[datetime, datetime]:
    start = _day_start(t).replace(day=1)
    days = calendar.monthrange(t.year, t.month)[1]
    return start, start + timedelta(days=days)


def attribute(costs: list[CostRecord], graph, resolution) -> dict[str, list[tuple[datetime, float]]]:
    """Scope -> [(at, usd)], scopes ``policy:<name>``, ``group:<name>`` and ``total``."""
    policies_of: dict[str, list[str]] = defaultdict(list)
    if resolution is not None and getattr(resolution, "ok", False):
        for name, keys in resolution.members.items():
            for key in keys:
                policies_of[key].append(name)
    tables_of: dict[str, list[str]] = defaultdict(list)
    group_of: dict[str, str | None] = {}
    if graph is not None:
        for node in graph:
            group_of[node.key] = node.group
            if node.connector:
                tables_of[node.connector].append(node.key)
    scopes: dict[str, list[tuple[datetime, float]]] = defaultdict(list)
    scope_keys: dict[str, tuple[str, ...]] = {}

    def scopes_for(key: str) -> tuple[str, ...]:
        hit = scope_keys.get(key)
        if hit is None:
            group = group_of.get(key)
            hit = tuple(f"policy:{p}" for p in policies_of.get(key, ())) + (
                (f"group:{group}",) if group else ()
            )
            scope_keys[key] = hit
        return hit

    total = scopes["total"]
    for rec in costs:
        amount = rec.amount_usd
        total.append((rec.at, amount))
        if rec.asset_key:
            # one asset: its scopes are distinct (policy names, one group), so each gets the
            # full amount (0.0 + amount, as the per-scope sum below would give)
            item = (rec.at, 0.0 + amount)
            for scope in scopes_for(rec.asset_key):
                scopes[scope].append(item)
            continue
        if rec.connector and tables_of.get(rec.connector):
            keys = tables_of[rec.connector]
            targets = [(k, amount / len(keys)) for k in keys]
        else:
            continue
        # a connector record split over tables of one policy still counts once in full
        per_scope: dict[str, float] = defaultdict(float)
        scheduled = rec.source == "sync" and (rec.detail or {}).get("triggered_by") == "schedule"
        for key, share in targets:
            for scope in scopes_for(key):
                if scope.startswith("policy:"):
                    # a policy governing any table the sync lands pays for the whole sync (as
                    # validation and the audit count it); the vendor's scheduled syncs not at all
                    if not scheduled:
                        per_scope[scope] = amount
                    continue
                per_scope[scope] += share
        for scope, share in per_scope.items():
            scopes[scope].append((rec.at, share))
    if not total:
        del scopes["total"]
    return scopes


class _Spend:
    """One scope's spend so far: today, this month, and per day of the baseline window."""

    __slots__ = ("today", "month", "daily")

    def __init__(self) -> None:
        self.today = self.month = 0.0
        self.daily: dict[datetime, float] = defaultdict(float)


def _add_items(spend: _Spend, items, now: datetime, day0: datetime, month0: datetime, base0: datetime) -> None:
    for at, usd in items:
        if at > now:
            continue
        if at >= day0:
            spend.today += usd
        if at >= month0:
            spend.month += usd
        if base0 <= at < day0:
            spend.daily[_day_start(at)] += usd


_MEMO = threading.local()


def _spend_memo(snapshot: Snapshot, resolution, rates: CostRates, now: datetime, day0: datetime,
                month0: datetime, base0: datetime) -> dict[str, _Spend] | None:
    """Per-scope spend, carried over from the previous call when this snapshot's cost records
    extend the previous ones (the same objects, in the same order: the simulator and a sensor
    process that keeps its records) for the same graph, policies, rates and day: only the new
    records are attributed and added, in the same order, so every sum is the same float as the
    reference path's. None (the reference path) when the memo does not apply or is off."""
    from orchestrator import perf

    if not perf.enabled():
        return None
    costs = snapshot.costs
    if not isinstance(costs, list):
        return None
    key = (snapshot.graph, resolution, rates, day0, month0, base0)
    memo = getattr(_MEMO, "value", None)
    n = 0
    if (memo is not None and memo["key"][0] is key[0] and memo["key"][1] is key[1] and memo["key"][2:] == key[2:]
            and now >= memo["now"] and len(costs) >= len(memo["records"])
            and all(map(operator.is_, memo["records"], costs))):
        sums, n = memo["sums"], len(memo["records"])
    else:
        sums = {}
    new = costs[n:]
    if any(rec.at > now for rec in new):  # a record from the future is skipped now, counted later
        _MEMO.value = None
        return None
    _MEMO.value = None  # (re)built below; never left half-updated
    for scope, items in (attribute(new, snapshot.graph, resolution) if new else {}).items():
        spend = sums.get(scope)
        if spend is None:
            spend = sums[scope] = _Spend()
        _add_items(spend, items, now, day0, month0, base0)
    _MEMO.value = {"key": key, "now": now, "records": list(costs), "sums": sums}
    return {scope: _copy(spend) for scope, spend in sums.items()}


def _copy(spend: _Spend) -> _Spend:
    out = _Spend()
    out.today, out.month = spend.today, spend.month
    out.daily.update(spend.daily)
    return out


def _budget_usd(resolution, policy: str, rates: CostRates) -> tuple[float | None, float | None]:
    try:
        budget = resolution.policy(policy).budget
    except (KeyError, AssertionError, AttributeError):
        return None, None
    if budget is None:
        return None, None
    factor = rates.usd_per_credit if budget.unit == "credits" else 1.0
    return (
        budget.per_day * factor if budget.per_day is not None else None,
        budget.per_month * factor if budget.per_month is not None else None,
    )


def assess_cost(
    snapshot: Snapshot,
    resolution,
    rates: CostRates | None = None,
    now: datetime | None = None,
) -> list[CostAssessment]:
    """One ``CostAssessment`` per scope with spend (``snapshot.costs``), sorted: over budget and
    spikes first, then by forecast."""
    rates = rates or CostRates()
    now = (now or snapshot.taken_at).astimezone(UTC)
    day0 = _day_start(now)
    month0, month_end = _month_bounds(now)
    day_end = day0 + timedelta(days=1)
    base0 = day0 - timedelta(days=rates.baseline_days)
    elapsed_day = max((now - day0).total_seconds(), rates.min_elapsed_s)
    elapsed_month = max((now - month0).total_seconds(), rates.min_elapsed_s)
    remaining_day = (day_end - now).total_seconds()
    remaining_month = (month_end - now).total_seconds()
    grown_day = (now - day0).total_seconds() >= rates.min_elapsed_s

    sums = _spend_memo(snapshot, resolution, rates, now, day0, month0, base0)
    if sums is None:  # the reference path
        sums = {}
        for scope, items in attribute(snapshot.costs, snapshot.graph, resolution).items():
            sums[scope] = _Spend()
            _add_items(sums[scope], items, now, day0, month0, base0)
    if resolution is not None and getattr(resolution, "ok", False) and resolution.policy_set:
        for policy in resolution.policy_set.policies:  # budgeted policies show even at 0 spend
            if policy.budget is not None:
                sums.setdefault(f"policy:{policy.name}", _Spend())

    out: list[CostAssessment] = []
    for scope, spend in sums.items():
        today, month, daily = spend.today, spend.month, spend.daily
        forecast_day = today + today / elapsed_day * remaining_day
        forecast_month = month + month / elapsed_month * remaining_month
        baseline = statistics.median(daily.values()) if daily else None
        spike = False
        if baseline is not None and baseline > 0:
            pace = forecast_day if grown_day else today
            spike = pace > rates.spike_factor * baseline and pace - baseline >= rates.spike_min_usd
        budget_day = budget_month = None
        if scope.startswith("policy:") and resolution is not None:
            budget_day, budget_month = _budget_usd(resolution, scope[len("policy:"):], rates)
        notes = []
        if budget_day is not None and forecast_day > budget_day:
            notes.append(f"day forecast ${forecast_day:,.2f} over budget ${budget_day:,.2f}")
        if budget_month is not None and forecast_month > budget_month:
            notes.append(f"month forecast ${forecast_month:,.2f} over budget ${budget_month:,.2f}")
        if spike:
            notes.append(
                f"spike: ${today:,.2f} today (forecast ${forecast_day:,.2f}) vs baseline "
                f"${baseline:,.2f}/day"
            )
        reason = "; ".join(notes) or (
            f"${today:,.2f} today, ${month:,.2f} this month"
            + (f" (budget ${budget_day:,.2f}/day)" if budget_day is not None else "")
        )
        out.append(
            CostAssessment(
                scope=scope,
                spent_today_usd=round(today, 6),
                spent_month_usd=round(month, 6),
                forecast_day_usd=round(forecast_day, 6),
                forecast_month_usd=round(forecast_month, 6),
                budget_day_usd=budget_day,
                budget_month_usd=budget_month,
                spike=spike,
                baseline_day_usd=round(baseline, 6) if baseline is not None else None,
                reason=reason,
            )
        )
    out.sort(key=lambda c: (not c.over_budget, not c.spike, -c.forecast_day_usd, c.scope))
    return out
