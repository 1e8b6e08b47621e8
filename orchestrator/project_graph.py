"""The project's Dagster asset graph, converted to the decision core's plain ``AssetGraph``."""

from __future__ import annotations

from collections.abc import Iterable

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


def _dbt_unique_id(metadata) -> str | None:
    props = metadata.get("dagster_dbt/unique_id") or metadata.get("dagster-dbt/unique_id")
    return str(getattr(props, "value", props)) if props else None


def _partitioning(partitions_def) -> str | None:
    """``daily`` (this code location's contract), else the kind of partitioning a team chose
    (``weekly``, ``hourly``, ``monthly``, ``time_window``, ``static``, ...): any value means
    partitioned; the planner keeps backfills within one partitioning."""
    if partitions_def is None:
        return None
    for cls, name in ((dg.DailyPartitionsDefinition, "daily"), (dg.WeeklyPartitionsDefinition, "weekly"),
                      (dg.HourlyPartitionsDefinition, "hourly"), (dg.MonthlyPartitionsDefinition, "monthly"),
                      (dg.TimeWindowPartitionsDefinition, "time_window"), (dg.StaticPartitionsDefinition, "static")):
        if isinstance(partitions_def, cls):
            return name
    return type(partitions_def).__name__.removesuffix("PartitionsDefinition").lower() or "partitioned"


def _node(spec: dg.AssetSpec, partitions_def) -> AssetNode:
    kinds = set(spec.kinds)
    metadata = spec.metadata or {}
    return AssetNode(
        key=spec.key.to_user_string(),
        role=_role(kinds),
        upstream=tuple(dep.asset_key.to_user_string() for dep in spec.deps),
        kinds=frozenset(kinds),
        group=spec.group_name,
        owners=tuple(spec.owners),
        tags=dict(spec.tags),
        partitioning=_partitioning(partitions_def),
        connector=_connector(metadata),
        # dbt_name: the exposure name for dashboards (what policy selectors match), the dbt
        # unique_id for models.
        dbt_name=spec.tags.get("dbt_exposure") or _dbt_unique_id(metadata),
        description=spec.description,
    )


def asset_graph_from_assets(assets: Iterable[dg.AssetsDefinition | dg.AssetSpec]) -> AssetGraph:
    """The plain graph of asset definitions, without needing resources or a full Definitions."""
    nodes = []
    for item in assets:
        if isinstance(item, dg.AssetSpec):
            nodes.append(_node(item, item.partitions_def))
        else:
            nodes.extend(_node(spec, item.partitions_def) for spec in item.specs)
    return AssetGraph(nodes)


def asset_graph_from_definitions(defs: dg.Definitions) -> AssetGraph:
    return asset_graph_from_assets(defs.assets or [])


def load_project_graph() -> AssetGraph:
    from orchestrator.definitions import build_definitions

    return asset_graph_from_definitions(build_definitions())
