"""A fleet of budgeted policies for the budget-extension and standing-approval tests: one connector
table feeding a model and a dashboard per policy (``fleet_graph``), policy ``p{i}`` per dashboard
with a 12:00 UTC deadline (``fleet_resolution``), and a snapshot where each policy's model cost
``refresh_usd[i]`` a run yesterday and is 20 h old (``refresh_snapshot``)."""

from __future__ import annotations

import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

from orchestrator.core.graph import CONNECTOR_TABLE, DASHBOARD, DBT_MODEL, AssetGraph, AssetNode
from orchestrator.core.records import CostRecord, Snapshot
from orchestrator.policies import DurationModel, load_policies, resolve

UTC = timezone.utc
NOW = datetime(2026, 3, 10, 6, 0, tzinfo=UTC)


def fleet_graph(n: int) -> AssetGraph:
    nodes = [AssetNode("src/t", CONNECTOR_TABLE, kinds=frozenset({"airbyte"}), connector="airbyte:src")]
    for i in range(n):
        nodes += [AssetNode(f"m{i}", DBT_MODEL, upstream=("src/t",)),
                  AssetNode(f"dashboard/{i}", DASHBOARD, upstream=(f"m{i}",))]
    return AssetGraph(nodes)


def refresh_snapshot(graph: AssetGraph, refresh_usd) -> Snapshot:
    # each policy's model cost refresh_usd[i] a run yesterday: today's deadline needs one more
    costs = [CostRecord(NOW - timedelta(days=1), usd, "run", asset_key=f"m{i}", compute_s=600.0)
             for i, usd in enumerate(refresh_usd)]
    return Snapshot(taken_at=NOW, graph=graph, runs=[], failures=[], costs=costs,
                    last_success={k: NOW - timedelta(hours=20) for k in graph.keys})


def fleet_resolution(graph: AssetGraph, policies):
    """``policies``: one (daily budget, rollout, materialize pre-authorised) per dashboard."""
    text = "policies:\n" + "".join(
        f"""  - name: p{i}
    select: [{{key: "dashboard/{i}"}}]
    deadline: {{cron: "0 12 * * *", timezone: UTC, window: 12h}}
    tier: standard
    owners: [team:{i}]
    rollout: {rollout}
    auto_approve: [{'materialize' if preauthorised else 'retry'}]
    budget: {{per_day: {budget:.2f}, unit: usd}}
""" for i, (budget, rollout, preauthorised) in enumerate(policies))
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "p.yaml"
        p.write_text(text)
        res = resolve(load_policies([p]), graph, DurationModel(), NOW)
    assert res.ok, res.skip_reason
    return res
