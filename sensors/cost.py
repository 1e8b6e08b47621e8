"""Cost sensor: spend per policy and group against budgets, burn-rate forecasts, spikes.

Every 10 minutes: cost records from the configured source (``ORCHESTRATOR_COST_SOURCE``; embedded
default: compute seconds of Dagster runs and connector syncs x ``CostRates`` (env
``ORCHESTRATOR_COST_RATES``), plus dbt ``target/run_results.json``; ``snowflake`` / ``bigquery``:
runs and syncs x rates plus the warehouse's metered cost per dbt model), assessed by ``orchestrator.assessment.assess_cost``. Each policy
scope is reported as an ``AssetObservation`` on the assets the policy selects directly (its
dashboards when it has any), with metadata ``cost/<scope>/...``; over-budget forecasts and
spikes are logged as warnings and appended once to the audit trail (``cost.alert``).
"""

import json
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import dagster as dg

from orchestrator.resources.airbyte import AirbyteWorkspaceResource
from orchestrator.resources.fivetran import FivetranWorkspaceResource

from orchestrator.assessment import CostRates, assess_cost
from orchestrator.core.graph import DASHBOARD
from orchestrator.core.records import CostAssessment, Snapshot
from . import ProjectContext

UTC = timezone.utc
SENSOR_NAME = "cost_sensor"


def anchors(ctx: ProjectContext) -> dict[str, list[str]]:
    """policy -> the assets its cost observation is attached to (direct dashboards, else the
    first directly selected asset)."""
    res = ctx.resolution
    if res is None or not res.ok or res.policy_set is None:
        return {}
    direct: dict[str, list[str]] = {}
    for key, sla in res.slas.items():
        for name in sla.policies:
            direct.setdefault(name, []).append(key)
    out = {}
    for name, keys in direct.items():
        dash = sorted(k for k in keys if ctx.graph.node(k).role == DASHBOARD)
        out[name] = dash or sorted(keys)[:1]
    return out


def cost_metadata(c: CostAssessment) -> dict:
    def num(v):
        return float(v) if v is not None else float("nan")

    return {
        "spent_today_usd": num(c.spent_today_usd),
        "spent_month_usd": num(c.spent_month_usd),
        "forecast_day_usd": num(c.forecast_day_usd),
        "forecast_month_usd": num(c.forecast_month_usd),
        "budget_day_usd": num(c.budget_day_usd),
        "budget_month_usd": num(c.budget_month_usd),
        "baseline_day_usd": num(c.baseline_day_usd),
        "over_budget": c.over_budget,
        "spike": c.spike,
        "reason": c.reason,
    }


def embedded_source(instance, ctx: ProjectContext, rates: CostRates, connectors=None, run_results=()):
    from orchestrator.cost import EmbeddedCostSource
    from orchestrator.snapshot import InstanceReader

    key_of = {n.dbt_name: n.key for n in ctx.graph if n.dbt_name}

    def runs():
        start = datetime.now(UTC) - timedelta(days=38)
        return InstanceReader(instance).runs(start)

    def syncs():
        return connectors.syncs(ctx.graph, datetime.now(UTC) - timedelta(days=2)) if connectors else []

    return EmbeddedCostSource(runs, syncs, run_results, rates, key_of)


def dbt_keys(ctx: ProjectContext) -> dict[str, str]:
    """dbt unique id and model name -> asset key (for the warehouse sources' per-model tags)."""
    out: dict[str, str] = {}
    for n in ctx.graph:
        uid = n.dbt_name or ""
        if uid.split(".", 1)[0] in ("model", "seed", "snapshot"):  # not exposures (dashboards)
            out[uid] = n.key
            out.setdefault(uid.split(".")[-1], n.key)
    return out


def configured_source(settings, instance, ctx: ProjectContext, rates: CostRates, connectors=None, **drivers):
    """``ORCHESTRATOR_COST_SOURCE``: ``embedded`` = runs, syncs and dbt's run results x rates;
    ``snowflake`` / ``bigquery`` = runs and syncs x rates plus the warehouse's own bill, per dbt
    model by its query tag / job labels (dbt's run results are then not priced again)."""
    from orchestrator.cost import CombinedCostSource
    from orchestrator.cost.configured import warehouse_cost_source

    warehouse = warehouse_cost_source(settings, key_of=dbt_keys(ctx), **drivers)
    if warehouse is None:
        run_results = [settings.dbt_project_dir / "target" / "run_results.json"]
        return embedded_source(instance, ctx, rates, connectors, run_results)
    return CombinedCostSource([embedded_source(instance, ctx, rates, connectors), warehouse])


def cost_tick(source, ctx: ProjectContext, state: dict, *, now: datetime, rates: CostRates):
    """(assessments, events, alerts, new state)."""
    since = min(now.replace(day=1, hour=0, minute=0, second=0, microsecond=0),
                now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=rates.baseline_days))
    snap = Snapshot(taken_at=now, graph=ctx.graph, costs=source.costs(since, now))
    out = assess_cost(snap, ctx.resolution, rates, now)
    events = []
    where = anchors(ctx)
    for c in out:
        if c.scope.startswith("policy:"):
            for key in where.get(c.scope[len("policy:"):], []):
                events.append(dg.AssetObservation(
                    asset_key=dg.AssetKey.from_user_string(key),
                    metadata={f"cost/{c.scope}/{k}": v for k, v in cost_metadata(c).items()},
                ))
    flagged = {c.scope: c for c in out if c.over_budget or c.spike}
    day = now.strftime("%Y-%m-%d")
    alerted = {k: v for k, v in state.get("alerted", {}).items() if v == day}
    alerts = [c for s, c in flagged.items() if s not in alerted]
    for c in alerts:
        alerted[c.scope] = day
    return out, events, alerts, {"alerted": alerted}


def build_cost_sensor(
    ctx: ProjectContext,
    *,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    source_factory=None,
    minimum_interval_seconds: int = 600,
) -> dg.SensorDefinition:
    @dg.sensor(
        name=SENSOR_NAME,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Spend per policy and group against budgets, burn-rate forecasts and spikes.",
    )
    def cost_sensor(context: dg.SensorEvaluationContext, fivetran: FivetranWorkspaceResource,
                   airbyte: AirbyteWorkspaceResource):
        if ctx.resolution is None or not ctx.resolution.ok:
            return dg.SkipReason(getattr(ctx.resolution, "skip_reason", None) or "no SLA policies")
        from orchestrator.settings import get_settings
        from orchestrator.snapshot import ConnectorReader

        rates = CostRates.from_env()
        if source_factory is not None:
            source = source_factory(context)
        else:
            connectors = ConnectorReader(fivetran=fivetran, airbyte=airbyte)
            source = configured_source(get_settings(), context.instance, ctx, rates, connectors)
        state = json.loads(context.cursor) if context.cursor else {}
        _, events, alerts, new_state = cost_tick(source, ctx, state, now=clock(), rates=rates)
        if alerts:
            from orchestrator.store import open_store

            store = open_store()
            for c in alerts:
                context.log.warning("cost %s: %s", c.scope, c.reason)
                store.append_audit("cost.alert", actor=SENSOR_NAME, subject=c.scope, payload=cost_metadata(c))
        if not events:
            return dg.SensorResult(cursor=json.dumps(new_state), skip_reason="no budgeted scope")
        return dg.SensorResult(asset_events=events, cursor=json.dumps(new_state))

    return cost_sensor


def definitions(ctx: ProjectContext) -> dg.Definitions:
    return dg.Definitions(sensors=[build_cost_sensor(ctx)])
