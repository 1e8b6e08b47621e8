"""Freshness SLA sensor: ok / at_risk / breached for every governed asset, as asset checks.

Every asset governed by a deadline or a max_lag gets an ``sla_freshness`` check. The sensor
(every 60 s) reads a snapshot of the instance and the connectors (running syncs count as in
flight, whoever started them), assesses it (``orchestrator.assessment.assess_freshness``) and
reports check evaluations: WARN for at_risk, ERROR for breached, passed for ok (recoveries
included), with metadata deadline, predicted_ready, slack_s, blocking_asset, policy, tier,
data_time (the time its data is current as of) and data_held_back_by (the input it inherits it from).
Only changes are reported (cursor), plus a refresh when an at-risk asset's slack moves by more
than 10 minutes. The check can also be executed from the UI (same computation, in a run).
"""

import json
from collections.abc import Callable
from datetime import datetime, timezone

import dagster as dg

from orchestrator.resources.airbyte import AirbyteWorkspaceResource
from orchestrator.resources.fivetran import FivetranWorkspaceResource

from orchestrator.assessment import assess_freshness
from orchestrator.assessment.freshness import history_reach
from orchestrator.core.datatime import data_time_text
from orchestrator.core.records import FreshnessAssessment, FreshnessStatus, Snapshot
from . import ProjectContext
from ._checks import multi_asset_check

UTC = timezone.utc
CHECK_NAME = "sla_freshness"
SENSOR_NAME = "sla_freshness_sensor"
RESLACK_S = 600.0


def governed_keys(ctx: ProjectContext) -> list[str]:
    res = ctx.resolution
    if res is None or not res.ok:
        return []
    known = {k.to_user_string() for k in ctx.asset_specs} if ctx.asset_specs else set(ctx.graph.keys)
    return sorted(k for k, sla in res.slas.items() if (sla.deadline or sla.max_lag) and k in known)


def _default_durations(snapshot: Snapshot):
    from orchestrator.policies import DurationModel

    return DurationModel(snapshot.durations)


def check_metadata(a: FreshnessAssessment) -> dict:
    return {
        "status": a.status.value,
        "deadline": a.deadline.isoformat() if a.deadline else "",
        "predicted_ready": a.predicted_ready.isoformat() if a.predicted_ready else "",
        "slack_s": float(a.slack_s) if a.slack_s is not None else float("nan"),
        "blocking_asset": a.blocking_asset or "",
        "policy": a.policy or "",
        "tier": a.tier,
        "data_time": data_time_text(a.data_time) if getattr(a, "data_time", None) else "",
        "data_held_back_by": getattr(a, "data_held_by", None) or "",
    }


def evaluation(a: FreshnessAssessment, recovered: bool = False) -> dg.AssetCheckEvaluation:
    passed = a.status is FreshnessStatus.ok
    severity = dg.AssetCheckSeverity.WARN if a.status is FreshnessStatus.at_risk else dg.AssetCheckSeverity.ERROR
    reason = ("recovered: " if recovered else "") + a.reason
    return dg.AssetCheckEvaluation(
        asset_key=dg.AssetKey.from_user_string(a.asset_key),
        check_name=CHECK_NAME,
        passed=passed,
        severity=severity,
        metadata={**check_metadata(a), "recovered": recovered},
        description=reason[:2000],
    )


def freshness_tick(
    instance: dg.DagsterInstance,
    ctx: ProjectContext,
    state: dict,
    *,
    now: datetime,
    repository_def=None,
    connectors=None,
    durations: Callable[[Snapshot], object] = _default_durations,
) -> tuple[dict[str, FreshnessAssessment], list[dg.AssetCheckEvaluation], dict]:
    """One tick: (assessments, evaluations to report, new cursor state). ``state``:
    {"init": bool, "bad": {key: [status, slack_s]}} (only non-ok assets are remembered)."""
    from orchestrator.snapshot import build_snapshot

    keys = set(governed_keys(ctx))
    snap = build_snapshot(instance, ctx.graph, now=now, repository_def=repository_def,
                          connectors=connectors, failures=False, reach=history_reach(ctx.resolution, now))
    out = assess_freshness(snap, ctx.resolution, durations(snap), now)
    bad_before: dict[str, list] = state.get("bad", {})
    first = not state.get("init")
    events: list[dg.AssetCheckEvaluation] = []
    bad_now: dict[str, list] = {}
    for key in sorted(keys & out.keys()):
        a = out[key]
        before = bad_before.get(key)
        if a.status is not FreshnessStatus.ok:
            bad_now[key] = [a.status.value, a.slack_s]
            if first or before is None or before[0] != a.status.value or (
                a.slack_s is not None and before[1] is not None and abs(a.slack_s - before[1]) > RESLACK_S
            ):
                events.append(evaluation(a))
            elif before is not None:
                bad_now[key] = before  # keep the slack that was last reported
        elif first or before is not None:
            events.append(evaluation(a, recovered=before is not None))
    return out, events, {"init": True, "bad": bad_now}


def build_freshness_sensor(
    ctx: ProjectContext,
    *,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    durations: Callable[[Snapshot], object] = _default_durations,
    minimum_interval_seconds: int = 60,
) -> dg.SensorDefinition:
    @dg.sensor(
        name=SENSOR_NAME,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Freshness SLAs: ok / at_risk / breached per governed asset, as sla_freshness checks.",
    )
    def sla_freshness_sensor(context: dg.SensorEvaluationContext, fivetran: FivetranWorkspaceResource,
                            airbyte: AirbyteWorkspaceResource):
        if ctx.resolution is None or not ctx.resolution.ok:
            return dg.SkipReason(getattr(ctx.resolution, "skip_reason", None) or "no SLA policies")
        from orchestrator.snapshot import ConnectorReader

        state = json.loads(context.cursor) if context.cursor else {}
        _, events, new_state = freshness_tick(
            context.instance, ctx, state, now=clock(), repository_def=context.repository_def,
            connectors=ConnectorReader(fivetran=fivetran, airbyte=airbyte), durations=durations,
        )
        if not events:
            return dg.SensorResult(cursor=json.dumps(new_state), skip_reason="no freshness change")
        return dg.SensorResult(asset_events=events, cursor=json.dumps(new_state))

    return sla_freshness_sensor


def build_freshness_checks(ctx: ProjectContext):
    keys = governed_keys(ctx)
    if not keys:
        return []
    specs = [
        dg.AssetCheckSpec(CHECK_NAME, asset=dg.AssetKey.from_user_string(k),
                          description="Freshness SLA: ok / at risk (WARN) / breached (ERROR) "
                                      "from the effective deadline and the predicted ready time.")
        for k in keys
    ]

    @multi_asset_check(specs=specs, can_subset=True, name="sla_freshness_checks")
    def sla_freshness_checks(context):
        wanted = {k.asset_key.to_user_string() for k in context.selected_asset_check_keys}
        out, _, _ = freshness_tick(context.instance, ctx, {}, now=datetime.now(UTC))
        for key in sorted(wanted):
            a = out.get(key)
            if a is None:
                yield dg.AssetCheckResult(asset_key=dg.AssetKey.from_user_string(key),
                                          check_name=CHECK_NAME, passed=True,
                                          metadata={"status": "not governed"})
                continue
            ev = evaluation(a)
            yield dg.AssetCheckResult(asset_key=ev.asset_key, check_name=CHECK_NAME, passed=ev.passed,
                                      severity=ev.severity, metadata=check_metadata(a),
                                      description=ev.description)

    return [sla_freshness_checks]


def definitions(ctx: ProjectContext) -> dg.Definitions:
    return dg.Definitions(asset_checks=build_freshness_checks(ctx), sensors=[build_freshness_sensor(ctx)])
