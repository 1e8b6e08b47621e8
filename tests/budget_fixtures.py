"""A fleet of budgeted policies for the budget-extension and standing-approval tests: one connector
table feeding a model and a dashboard per policy (``fleet_graph``), and a snapshot where each
policy's model cost ``refresh_usd[i]`` a run yesterday and is 20 h old (``refresh_snapshot``)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from orchestrator.core.graph import CONNECTOR_TABLE, DASHBOARD, DBT_MODEL, AssetGraph, AssetNode
from orchestrator.core.records import CostRecord, Snapshot

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
