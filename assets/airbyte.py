"""Airbyte connections as Dagster assets: one multi-asset per connection, one asset per stream."""


import logging

import dagster as dg
from dagster_airbyte import AirbyteConnectionTableProps, DagsterAirbyteTranslator
from dagster_airbyte.translator import AirbyteMetadataSet

from orchestrator.resources.airbyte import AirbyteWorkspaceResource

from orchestrator.lib.ownership import DEFAULT_INGESTION_OWNER as INGESTION_OWNER
from orchestrator.lib.ownership import (
    airbyte_key_style,
    connector_group,
    group_style,
    ingestion_owner,
    owner_rules,
    wants_source_names,
)


class AirbyteTranslator(DagsterAirbyteTranslator):
    """Keys Airbyte tables like Fivetran's, ``<schema>/<table>``, instead of one flat name
    (``ORCHESTRATOR_AIRBYTE_ASSET_KEYS=dagster`` keeps dagster-airbyte's default key).

    ``props.schema`` is the connection's namespace (see ``AirbyteWorkspaceResource``) and
    ``props.table_name`` the destination table (stream prefix included). Owners: the
    ``ORCHESTRATOR_CONNECTOR_OWNERS`` rules on the workspace and connection
    (``orchestrator/lib/ownership.py``), else ``team:data-platform``. Group: ``airbyte_<schema>``,
    or the workspace's name with ``ORCHESTRATOR_CONNECTOR_GROUPS=source``.
    """

    def __init__(self, workspace_id: str | None = None, workspace_name: str | None = None,
                 key_style: str | None = None):
        super().__init__()
        self.workspace_id, self.workspace_name = workspace_id, workspace_name
        self.key_style = key_style or airbyte_key_style()
        self.rules = owner_rules()
        self.group_style = group_style()

    @classmethod
    def for_workspace(cls, workspace: AirbyteWorkspaceResource, *, owners: str | None = None,
                      groups: str | None = None, key_style: str | None = None) -> "AirbyteTranslator":
        """The translator for ``workspace`` (its name read once when owners or groups need it), to
        pass to dagster-airbyte's own builders (``build_airbyte_assets_definitions(workspace=...,
        dagster_airbyte_translator=...)``). ``owners`` / ``groups`` / ``key_style``: the
        ``ORCHESTRATOR_CONNECTOR_OWNERS`` / ``_GROUPS`` / ``ORCHESTRATOR_AIRBYTE_ASSET_KEYS`` values,
        explicit (else read from the environment)."""
        rules, style = owner_rules(owners), group_style(groups)
        name = _workspace_name(workspace) if rules or style == "source" else None
        translator = cls(workspace.workspace_id, name, key_style=airbyte_key_style(key_style) if key_style else None)
        translator.rules, translator.group_style = rules, style
        return translator

    def get_asset_spec(self, props: AirbyteConnectionTableProps) -> dg.AssetSpec:
        spec = super().get_asset_spec(props)
        schema = props.schema
        key = dg.AssetKey([schema, props.table_name]) if schema and self.key_style == "schema" else spec.key
        owner = ingestion_owner(source_id=self.workspace_id, source_name=self.workspace_name,
                                connector_id=props.connection_id, connector_name=props.connection_name,
                                rules=self.rules)
        return spec.replace_attributes(
            key=key,
            group_name=connector_group("airbyte", schema, source_id=self.workspace_id,
                                       source_name=self.workspace_name, style=self.group_style),
            owners=[owner],
            description=(
                f"Stream `{props.stream_name}` synced by the Airbyte connection "
                f"`{props.connection_name}` ({props.connection_id})"
                + (f" into schema `{schema}`." if schema else ".")
            ),
        ).merge_attributes(
            tags={"ingestion": "airbyte"},
            metadata={"destination_schema": schema or "", "destination_table": props.table_name},
        )


def _workspace_name(workspace: AirbyteWorkspaceResource) -> str | None:
    """The workspace's name (one GET, only when owner rules or source groups are configured); None when the API
    cannot be read (the rules then match the workspace id)."""
    try:
        # the resource with its EnvVar values resolved (the one built for the load has them unresolved)
        with workspace.process_config_and_initialize_cm() as ready:
            client = ready.get_client()
            body = client._single_request(method="GET", url=f"{client.rest_api_base_url}/workspaces/{ready.workspace_id}")
        return (body or {}).get("name")
    except Exception as exc:  # noqa: BLE001 - API down: the last known state still loads, keyed by id
        logging.getLogger(__name__).warning("Airbyte workspace name not read, owners and groups use the id: %s", exc)
        return None


def build_airbyte_assets(workspace: AirbyteWorkspaceResource, connection_selector_fn=None) -> list[dg.AssetsDefinition]:
    """One sync multi-asset per connection; ``connection_selector_fn``
    (``orchestrator.resources.airbyte_selector``) keeps only the selected connections."""
    translator = AirbyteTranslator(workspace.workspace_id, _workspace_name(workspace) if wants_source_names() else None)
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
