"""Fivetran connectors as Dagster assets: one multi-asset per connector, one asset per table."""


from collections.abc import Sequence

import dagster as dg
from dagster_fivetran import (
    DagsterFivetranTranslator,
    FivetranConnectorTableProps,
    FivetranSyncConfig,
)
from dagster_fivetran.translator import FivetranMetadataSet

from orchestrator.resources.fivetran import FivetranWorkspaceResource

INGESTION_OWNER = "team:data-platform"


class FivetranTranslator(DagsterFivetranTranslator):
    def get_asset_spec(self, props: FivetranConnectorTableProps) -> dg.AssetSpec:
        spec = super().get_asset_spec(props)
        schema, table = props.table.split(".")
        return spec.replace_attributes(
            group_name=f"fivetran_{schema}",
            owners=[INGESTION_OWNER],
            description=(
                f"Table `{table}` synced by the Fivetran {props.service} connector "
                f"`{props.connector_id}` into schema `{schema}`"
                + (f", every {props.sync_frequency} min." if props.sync_frequency else ".")
            ),
        ).merge_attributes(tags={"ingestion": "fivetran"})


def connector_ids(specs: Sequence[dg.AssetSpec]) -> list[str]:
    return sorted({FivetranMetadataSet.extract(s.metadata).connector_id for s in specs})


def build_fivetran_assets(workspace: FivetranWorkspaceResource, connector_selector_fn=None) -> list[dg.AssetsDefinition]:
    """One sync multi-asset per connector, each taking an optional resync config.

    The table list comes through dagster-fivetran's state-backed loader, so run workers rebuild
    the same assets from the state captured at load, without calling the API again.
    ``connector_selector_fn`` (``orchestrator.resources.fivetran_selector``) keeps only the
    selected connectors.
    """
    translator = FivetranTranslator()
    specs = workspace.load_asset_specs(dagster_fivetran_translator=translator,
                                       connector_selector_fn=connector_selector_fn)
    definitions = []
    for connector_id in connector_ids(specs):
        # what @fivetran_assets builds, plus a pool per connector source: with the instance's
        # default pool limit of 1, one sync per connector at a time (deploy/dagster.yaml)
        @dg.multi_asset(
            name=f"fivetran_sync_{connector_id}",
            can_subset=True,
            specs=[s for s in specs if FivetranMetadataSet.extract(s.metadata).connector_id == connector_id],
            pool=f"fivetran/{connector_id}",
        )
        def _sync(
            context: dg.AssetExecutionContext,
            fivetran: FivetranWorkspaceResource,
            config: FivetranSyncConfig,
        ):
            yield from fivetran.sync_and_poll(context=context, config=config)

        definitions.append(_sync)
    return definitions
