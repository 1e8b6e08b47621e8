"""Airbyte connections as Dagster assets: one multi-asset per connection, one asset per stream."""


import dagster as dg
from dagster_airbyte import AirbyteConnectionTableProps, DagsterAirbyteTranslator
from dagster_airbyte.translator import AirbyteMetadataSet

from orchestrator.resources.airbyte import AirbyteWorkspaceResource

INGESTION_OWNER = "team:data-platform"


class AirbyteTranslator(DagsterAirbyteTranslator):
    """Keys Airbyte tables like Fivetran's, ``<schema>/<table>``, instead of one flat name.

    ``props.schema`` is the connection's namespace (see ``AirbyteWorkspaceResource``) and
    ``props.table_name`` the destination table (stream prefix included).
    """

    def get_asset_spec(self, props: AirbyteConnectionTableProps) -> dg.AssetSpec:
        spec = super().get_asset_spec(props)
        schema = props.schema
        key = dg.AssetKey([schema, props.table_name]) if schema else spec.key
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
            metadata={"destination_schema": schema or "", "destination_table": props.table_name},
        )


def build_airbyte_assets(workspace: AirbyteWorkspaceResource, connection_selector_fn=None) -> list[dg.AssetsDefinition]:
    """One sync multi-asset per connection; ``connection_selector_fn``
    (``orchestrator.resources.airbyte_selector``) keeps only the selected connections."""
    translator = AirbyteTranslator()
    specs = workspace.load_asset_specs(dagster_airbyte_translator=translator,
                                       connection_selector_fn=connection_selector_fn)
    connection_ids = sorted({AirbyteMetadataSet.extract(s.metadata).connection_id for s in specs})
    definitions = []
    for connection_id in connection_ids:

        # what @airbyte_assets builds, plus a pool per connection (one sync at a time)
        @dg.multi_asset(
            name=f"airbyte_sync_{connection_id.replace('-', '_')}",
            can_subset=True,
            specs=[s for s in specs if AirbyteMetadataSet.extract(s.metadata).connection_id == connection_id],
            pool=f"airbyte/{connection_id}",
        )
        def _sync(context: dg.AssetExecutionContext, airbyte: AirbyteWorkspaceResource):
            yield from airbyte.sync_and_poll(context=context)

        definitions.append(_sync)
    return definitions
