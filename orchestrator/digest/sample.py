"""A small, self-contained situation for previewing and testing the digest (no Dagster instance):
ten assets, two policies (finance: critical, ``recommend``; growth: low, ``auto``) and one
unowned asset, yesterday's materializations (one SLA met, one late), an at-risk dashboard,
failures (one resolved, one schema drift, one on the unowned asset), cost over budget, an open
circuit breaker, and a real planning cycle recorded in ``store`` (pending and automatic actions).

    snapshot, assessment, resolution = record_sample(store, now)
"""

from __future__ import annotations

import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

from orchestrator.core.graph import CONNECTOR_TABLE, DASHBOARD, DBT_MODEL, OTHER, AssetGraph, AssetNode
from orchestrator.core.records import (
    Assessment,
    CostAssessment,
    DiagnosedFailure,
    FailureRecord,
    FreshnessAssessment,
    FreshnessStatus,
    Materialization,
    Snapshot,
    SyncRecord,
)

UTC = timezone.utc

POLICIES = """
policies:
  - name: exec
    select: [{key: "dashboard/exec"}]
    deadline: {cron: "0 6 * * *", timezone: America/New_York, window: 8h}
    tier: critical
    owners: [finance-data@example.com]
    rollout: recommend
    budget: {per_day: 40, unit: usd}
  - name: growth
    select: [{key: "dashboard/growth"}, {key: "fct_events_daily"}]
    deadline: {cron: "0 12 * * *", timezone: UTC, window: 12h}
    tier: low
    owners: [team:growth]
    rollout: auto
    auto_approve: [materialize, defer]  # retries and backfills wait for approval
    budget: {per_day: 50, unit: usd}
"""


def graph() -> AssetGraph:
    n = AssetNode
    return AssetGraph([
        n("crm/account", CONNECTOR_TABLE, kinds=frozenset({"fivetran"}), connector="fivetran:crm"),
        n("crm/contact", CONNECTOR_TABLE, kinds=frozenset({"fivetran"}), connector="fivetran:crm"),
        n("events/page_view", CONNECTOR_TABLE, kinds=frozenset({"airbyte"}), connector="airbyte:events"),
        n("stg_account", DBT_MODEL, upstream=("crm/account",)),
        n("stg_contact", DBT_MODEL, upstream=("crm/contact",)),
        n("stg_events", DBT_MODEL, upstream=("events/page_view",)),
        n("fct_revenue", DBT_MODEL, upstream=("stg_account", "stg_contact")),
        n("fct_events_daily", DBT_MODEL, upstream=("stg_events",), partitioning="daily"),
        n("dashboard/exec", DASHBOARD, upstream=("fct_revenue",)),
        n("dashboard/growth", DASHBOARD, upstream=("stg_events",)),
        n("misc/export", OTHER),
    ])


def resolution(g: AssetGraph, now: datetime):
    from orchestrator.policies import DurationModel, load_policies, resolve

    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "p.yaml"
        p.write_text(POLICIES)
        res = resolve(load_policies([p]), g, DurationModel(), now)
    if not res.ok:
        raise RuntimeError(res.skip_reason)
    return res


def _failure(fid, category, message, at, *, connector=None, asset=None, partition=None, transient=True,
             system="fivetran", root=None) -> DiagnosedFailure:
    f = FailureRecord(failure_id=fid, at=at, message=message, system=system, asset_key=asset, connector=connector,
                      partition=partition)
    return DiagnosedFailure(f, category, transient, 0.9, (message[:120],), root_failure_id=root)


def sample_inputs(now: datetime) -> tuple[Snapshot, Assessment, object]:
    now = now.astimezone(UTC)
    g = graph()
    res = resolution(g, now)
    exec_deadline = res.policy("exec").schedule().prev_tick(now).astimezone(UTC)
    growth_deadline = res.policy("growth").schedule().prev_tick(now).astimezone(UTC)
    mats = [
        Materialization("dashboard/growth", growth_deadline - timedelta(hours=2)),  # met
        Materialization("dashboard/exec", exec_deadline + timedelta(minutes=47)),  # 47 min late
    ]
    last = {k: now - timedelta(hours=20) for k in g.keys}
    last.update({m.asset_key: m.at for m in mats})
    last["crm/account"] = now - timedelta(minutes=50)
    h = timedelta(hours=1)
    failures = [
        _failure("f-rate", "rate_limit", "HTTP 429 Too Many Requests: rate limit exceeded, retry after 60s",
                 now - 6 * h, connector="fivetran:crm", asset="crm/account"),
        _failure("f-drift", "schema_drift", "Column 'amount' changed type from STRING to NUMERIC in salesforce.contact",
                 now - 3 * h, connector="fivetran:crm", asset="crm/contact", transient=False),
        _failure("f-down", "upstream_delay", "dbt: stg_contact depends on a failed source", now - 3 * h + timedelta(minutes=5),
                 asset="stg_contact", system="dbt", root="f-drift"),
        _failure("f-ev1", "source_unavailable", "timeout reading events partition", now - 2 * h,
                 asset="fct_events_daily", partition=(now - timedelta(days=2)).date().isoformat(), system="dagster"),
        _failure("f-exp", "permission_denied", "permission denied for relation export_target", now - 4 * h,
                 asset="misc/export", system="warehouse", transient=False),
    ]
    snap = Snapshot(taken_at=now, graph=g, last_success=last, materializations=mats,
                    failures=[d.failure for d in failures],
                    syncs=[SyncRecord("fivetran:crm", "s1", "succeeded", now - 70 * timedelta(minutes=1),
                                      now - timedelta(minutes=50), tables=("crm/account",))])
    freshness = {
        "dashboard/exec": FreshnessAssessment(
            "dashboard/exec", FreshnessStatus.at_risk, "critical", "exec", exec_deadline + timedelta(days=1),
            exec_deadline + timedelta(days=1, minutes=25), -1500.0, "crm/contact",
            "predicted 25 min late: crm/contact needs a resync"),
        "dashboard/growth": FreshnessAssessment(
            "dashboard/growth", FreshnessStatus.at_risk, "low", "growth", now + 40 * timedelta(minutes=1),
            now + 55 * timedelta(minutes=1), -900.0, "stg_events", "predicted 15 min late: stg_events not built yet"),
    }
    cost = [
        CostAssessment("policy:exec", 31.2, 480.0, 52.6, 910.0, 40.0, None, True, 24.0,
                       "forecast $52.60 for today, budget $40.00"),
        CostAssessment("policy:growth", 12.4, 220.0, 18.9, 400.0, 50.0, None, False, 17.5, "within budget"),
    ]
    return snap, Assessment(taken_at=now, freshness=freshness, cost=cost, failures=failures), res


def record_sample(store, now: datetime) -> tuple[Snapshot, Assessment, object]:
    """``sample_inputs`` plus one recorded planning cycle, a finished automatic action and an open
    circuit breaker on ``connector:airbyte:events``."""
    from orchestrator.planning import CircuitBreaker
    from orchestrator.proposals import Proposals

    snap, asm, res = sample_inputs(now)
    props = Proposals(store)
    result = props.run_cycle(snap, asm, res, now=now - timedelta(minutes=30), llm=None, use_memory=False)
    for d in result.decisions:
        if d.decision == "execute":
            props.record_execution(d.action.action_id, "run", run_key=d.action.action_id, run_id=f"run-{d.action.action_id}",
                                   now=now - timedelta(minutes=20))
            props.record_outcome(d.action.action_id, True, now=now - timedelta(minutes=5))
    br: CircuitBreaker = props.breaker()
    subject = "connector:airbyte:events"
    for i in range(br.threshold):
        trip = br.record(subject, False, now - timedelta(hours=5) + i * timedelta(minutes=20))
    props.save_breaker(br)
    if trip is not None:
        store.append_audit("breaker.trip", actor="breaker", subject=subject,
                           payload={"reason": trip.reason, "owners": ["team:growth"], "failures": trip.failures})
    return snap, asm, res
