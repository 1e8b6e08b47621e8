"""The project's Dagster asset graph, converted to the decision core's plain ``AssetGraph``."""

from __future__ import annotations

import dagster as dg

from orchestrator.core.graph import (
    CONNECTOR_TABLE,
    DASHBOARD,
    DBT_MODEL,
    OTHER,
    AssetGraph,
    AssetNode,
)


def _role(kinds: set[str]) -> str:
    if "dashboard" in kinds:
        return DASHBOARD
    if kinds & {"fivetran", "airbyte"}:
        return CONNECTOR_TABLE
    if "dbt" in kinds:
        return DBT_MODEL
    return OTHER


def _connector(metadata) -> str | None:
    if "dagster-fivetran/connector_id" in metadata:
        return f"fivetran:{metadata['dagster-fivetran/connector_id']}"
    if "dagster-airbyte/connection_id" in metadata:
        return f"airbyte:{metadata['dagster-airbyte/connection_id']}"
    return None


def asset_graph_from_definitions(defs: dg.Definitions) -> AssetGraph:
    repo_graph = defs.resolve_asset_graph()
    nodes = []
    for key in repo_graph.get_all_asset_keys():
        node = repo_graph.get(key)
        kinds = set(node.kinds)
        metadata = node.metadata or {}
        partitions = node.partitions_def
        nodes.append(
            AssetNode(
                key=key.to_user_string(),
                role=_role(kinds),
                upstream=tuple(k.to_user_string() for k in node.parent_keys),
                kinds=frozenset(kinds),
                group=node.group_name,
                owners=tuple(node.owners),
                tags=dict(node.tags),
                partitioning="daily" if isinstance(partitions, dg.DailyPartitionsDefinition) else None,
                connector=_connector(metadata),
                dbt_name=str(metadata.get("dbt_exposure") or "") or None,
                description=node.description,
            )
        )
    return AssetGraph(nodes)


def load_project_graph() -> AssetGraph:
    from orchestrator.definitions import build_definitions

    return asset_graph_from_definitions(build_definitions())
