"""Airbyte connections as Dagster assets: one multi-asset per connection, one asset per stream."""

from __future__ import annotations

import dagster as dg
from dagster_airbyte import AirbyteConnectionTableProps, DagsterAirbyteTranslator, airbyte_assets
from dagster_airbyte.translator import AirbyteMetadataSet

from orchestrator.resources.airbyte import AirbyteWorkspaceResource

INGESTION_OWNER = "team:data-platform"


def destination_schema(props: AirbyteConnectionTableProps) -> str | None:
    """The schema a connection's streams land in, carried by its stream prefix ("product_")."""
    return props.stream_prefix.rstrip("_") if props.stream_prefix else None


class AirbyteTranslator(DagsterAirbyteTranslator):
    """Keys Airbyte tables like Fivetran's, ``<schema>/<table>``, instead of one flat name."""

    def get_asset_spec(self, props: AirbyteConnectionTableProps) -> dg.AssetSpec:
        spec = super().get_asset_spec(props)
        schema = destination_schema(props)
        key = dg.AssetKey([schema, props.stream_name]) if schema else spec.key
        return spec.replace_attributes(
            key=key,
            group_name=f"airbyte_{schema or 'default'}",
            owners=[INGESTION_OWNER],
            description=(
                f"Stream `{props.stream_name}` synced by the Airbyte connection "
                f"`{props.connection_name}` ({props.connection_id})"
                + (f" into schema `{schema}`." if schema else ".")
            ),
        ).merge_attributes(
            tags={"ingestion": "airbyte"},
            metadata={"destination_schema": schema or "", "destination_table": props.stream_name},
        )


def build_airbyte_assets(workspace: AirbyteWorkspaceResource) -> list[dg.AssetsDefinition]:
    translator = AirbyteTranslator()
    specs = workspace.load_asset_specs(dagster_airbyte_translator=translator)
    by_connection: dict[str, list[dg.AssetSpec]] = {}
    for spec in specs:
        by_connection.setdefault(AirbyteMetadataSet.extract(spec.metadata).connection_id, []).append(spec)

    definitions = []
    for connection_id, connection_specs in sorted(by_connection.items()):

        @airbyte_assets(
            connection_id=connection_id,
            workspace=workspace,
            name=f"airbyte_sync_{connection_id.replace('-', '_')}",
            group_name=connection_specs[0].group_name,
            dagster_airbyte_translator=translator,
        )
        def _sync(context: dg.AssetExecutionContext, airbyte: AirbyteWorkspaceResource):
            yield from airbyte.sync_and_poll(context=context)

        definitions.append(_sync)
    return definitions
