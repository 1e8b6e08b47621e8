"""A synthetic fleet for tests and the planner benchmark: graph, policies, snapshot, assessment.

``fleet(n_assets, seed=0, now=...)`` returns a ``Fleet`` with a layered graph (connector tables
-> staging -> intermediate -> marts -> dashboards, some daily-partitioned marts), sample policies
(a critical auto-rollout finance policy, a low-tier budgeted marketing policy with off-peak
windows, a standard recommend policy), and a snapshot/assessment with ~5% of the dashboards at
risk, a few connector failures of various classes and one burning budget. Deterministic per seed.
"""

from __future__ import annotations

import random
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from orchestrator.core.graph import CONNECTOR_TABLE, DASHBOARD, DBT_MODEL, AssetGraph, AssetNode
from orchestrator.core.records import (
    Assessment,
    CostAssessment,
    CostRecord,
    DiagnosedFailure,
    FailureRecord,
    FreshnessAssessment,
    FreshnessStatus,
    Snapshot,
)
from orchestrator.policies import DurationModel, load_policies, resolve

UTC = timezone.utc

POLICIES = """
policies:
  - name: finance
    select: [{group: finance}]
    deadline: {cron: "0 6 * * *", timezone: UTC, window: 8h}
    tier: critical
    owners: [finance-data@example.com]
    rollout: auto
    auto_approve: [retry, materialize, resync_table, defer, cancel_run, pause_connector]
  - name: marketing
    select: [{group: marketing}]
    deadline: {cron: "0 12 * * *", timezone: UTC, window: 12h}
    tier: low
    owners: [team:marketing]
    rollout: auto
    auto_approve: [retry, materialize, defer]
    budget: {per_day: 100000, unit: usd}
    windows:
      off_peak: [{days: daily, start: "20:00", end: "05:00"}]
  - name: rest
    select: [{group: ops}]
    max_lag: 26h
    tier: standard
    owners: [team:platform]
    rollout: recommend
"""

GROUPS = ("finance", "marketing", "ops")


@dataclass
class Fleet:
    graph: AssetGraph
    snapshot: Snapshot
    assessment: Assessment
    resolution: object
    durations: DurationModel
    now: datetime


def build_graph(n_assets: int, seed: int = 0) -> AssetGraph:
    rng = random.Random(seed)
    n_tables = max(2, n_assets // 5)
    n_stg = max(1, n_assets // 5)
    n_int = max(1, int(n_assets * 0.3))
    n_dash = max(1, n_assets // 20)
    n_mart = max(1, n_assets - n_tables - n_stg - n_int - n_dash)
    nodes: list[AssetNode] = []
    tables = []
    for i in range(n_tables):
        conn_i = i // 5
        system = "fivetran" if conn_i % 3 else "airbyte"
        key = f"src{conn_i}/t{i}"
        tables.append(key)
        nodes.append(AssetNode(key=key, role=CONNECTOR_TABLE, kinds=frozenset({system}),
                               group=GROUPS[conn_i % 3], connector=f"{system}:c{conn_i}"))
    stg = []
    for i in range(n_stg):
        key = f"stg_{i}"
        stg.append(key)
        nodes.append(AssetNode(key=key, role=DBT_MODEL, kinds=frozenset({"dbt"}), upstream=(tables[i % n_tables],),
                               group=GROUPS[(i % n_tables) // 5 % 3]))
    ints = []
    for i in range(n_int):
        key = f"int_{i}"
        ints.append(key)
        base = i % n_stg
        ups = tuple({stg[base], stg[(base + rng.randrange(1, 4)) % n_stg]})
        nodes.append(AssetNode(key=key, role=DBT_MODEL, kinds=frozenset({"dbt"}), upstream=ups,
                               group=GROUPS[i % 3]))
    marts = []
    for i in range(n_mart):
        key = f"mart_{i}"
        marts.append(key)
        base = (i * 3) % n_int
        ups = tuple({ints[base], ints[(base + 1) % n_int], ints[(base + rng.randrange(2, 6)) % n_int]})
        nodes.append(AssetNode(key=key, role=DBT_MODEL, kinds=frozenset({"dbt"}), upstream=ups,
                               group=GROUPS[i % 3], partitioning="daily" if i % 50 == 7 else None))
    for i in range(n_dash):
        ups = tuple({marts[(i * 5) % n_mart], marts[(i * 5 + 1) % n_mart], marts[(i * 5 + 2) % n_mart]})
        ups = tuple(u for u in ups if not u.endswith("_7") and int(u.split("_")[1]) % 50 != 7) or (marts[0],)
        nodes.append(AssetNode(key=f"dashboard/d{i}", role=DASHBOARD, kinds=frozenset({"dashboard"}),
                               upstream=ups, group=GROUPS[i % 3]))
    return AssetGraph(nodes)


def resolve_policies(graph: AssetGraph, durations: DurationModel, now: datetime, text: str = POLICIES):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "policies.yaml"
        path.write_text(text)
        res = resolve(load_policies([path]), graph, durations, now)
    if not res.ok:
        raise ValueError(res.skip_reason)
    return res


def fleet(n_assets: int = 1000, seed: int = 0, now: datetime | None = None,
          failure_rate: float = 0.02, at_risk_rate: float = 0.05) -> Fleet:
    rng = random.Random(seed)
    now = now or datetime(2026, 3, 10, 3, 0, tzinfo=UTC)
    graph = build_graph(n_assets, seed)
    history = {n.key: [rng.uniform(60, 900) for _ in range(6)] for n in graph}
    durations = DurationModel(history)
    res = resolve_policies(graph, durations, now)
    last_success = {n.key: now - timedelta(hours=rng.uniform(1, 30)) for n in graph}
    costs = [CostRecord(at=now - timedelta(hours=1), amount_usd=round(rng.uniform(0.01, 2.0), 3),
                        source="run", asset_key=n.key) for n in graph if rng.random() < 0.5]
    snapshot = Snapshot(taken_at=now, graph=graph, last_success=last_success, costs=costs,
                        durations={k: v for k, v in history.items()})

    freshness: dict[str, FreshnessAssessment] = {}
    dashboards = [n.key for n in graph if n.role == DASHBOARD]
    for k in dashboards:
        sla = res.sla(k)
        if sla is None:
            continue
        if rng.random() < at_risk_rate:
            ups = sorted(graph.upstream_closure(k))
            tables = [u for u in ups if graph.node(u).role == CONNECTOR_TABLE]
            blocker = rng.choice(tables or ups or [k])
            slack = rng.uniform(-1800, 3600)
            status = FreshnessStatus.breached if slack < -1200 else FreshnessStatus.at_risk
        else:
            blocker, slack, status = None, rng.uniform(3600, 20000), FreshnessStatus.ok
        deadline = sla.deadline.at if sla.deadline else None
        freshness[k] = FreshnessAssessment(
            asset_key=k, status=status, tier=sla.tier.value, policy=sla.primary_policy, deadline=deadline,
            predicted_ready=(deadline - timedelta(seconds=slack)) if deadline else None, slack_s=slack,
            blocking_asset=blocker, reason="synthetic")
    failures: list[DiagnosedFailure] = []
    connectors = sorted({n.connector for n in graph if n.connector})
    classes = [("rate_limit", True, "HTTP 429 Too Many Requests, Retry-After: 120"),
               ("source_unavailable", True, "connection reset by peer while reading source"),
               ("auth_expired", False, "OAuth token expired for user ops@example.com, token=abcDEF123456ghiJKL789mnoPQR012stu"),
               ("schema_drift", False, "column billing_country changed type from string to integer"),
               ("code_error", False, "Compilation Error in model int_3")]
    for i, conn in enumerate(connectors):
        if rng.random() >= failure_rate:
            continue
        cat, transient, msg = classes[i % len(classes)]
        tables = list(graph.connector_tables(conn))
        f = FailureRecord(failure_id=f"f{i}", at=now - timedelta(minutes=20), message=msg,
                          system=conn.split(":")[0], connector=conn,
                          asset_key=tables[0] if cat == "schema_drift" else None)
        failures.append(DiagnosedFailure(f, cat, transient, 0.9, (msg[:80],)))
    cost = [CostAssessment(scope="policy:marketing", spent_today_usd=500, spent_month_usd=9000,
                           forecast_day_usd=130000, forecast_month_usd=20000, budget_day_usd=100000,
                           budget_month_usd=None, spike=False, baseline_day_usd=400, reason="synthetic")]
    assessment = Assessment(taken_at=now, freshness=freshness, cost=cost, failures=failures)
    return Fleet(graph, snapshot, assessment, res, durations, now)
