"""Fivetran connectors as Dagster assets: one multi-asset per connector, one asset per table."""


import contextlib
import logging
from collections.abc import Sequence

import dagster as dg
from dagster_fivetran import (
    DagsterFivetranTranslator,
    FivetranConnectorTableProps,
    FivetranSyncConfig,
)
from dagster_fivetran.translator import FivetranMetadataSet

from orchestrator.resources.fivetran import FivetranWorkspaceResource

from orchestrator.lib.ownership import DEFAULT_INGESTION_OWNER as INGESTION_OWNER
from orchestrator.lib.ownership import connector_group, group_style, ingestion_owner, owner_rules, wants_source_names


class FivetranTranslator(DagsterFivetranTranslator):
    """Owners: the ``ORCHESTRATOR_CONNECTOR_OWNERS`` rules on the connector's group (destination)
    and the connector (``orchestrator/lib/ownership.py``), else ``team:data-platform``. Group:
    ``fivetran_<schema>``, or the group's name with ``ORCHESTRATOR_CONNECTOR_GROUPS=source``."""

    def __init__(self, group_names: dict[str, str] | None = None):
        super().__init__()
        self.group_names = group_names or {}
        self.rules = owner_rules()
        self.group_style = group_style()

    @classmethod
    def for_workspace(cls, workspace: FivetranWorkspaceResource, *, owners: str | None = None,
                      groups: str | None = None) -> "FivetranTranslator":
        """The translator for ``workspace`` (its group names read once when owners or groups need
        them), to pass to dagster-fivetran's own builders. ``owners`` / ``groups``: the
        ``ORCHESTRATOR_CONNECTOR_OWNERS`` / ``_GROUPS`` values, explicit (else the environment's)."""
        rules, style = owner_rules(owners), group_style(groups)
        translator = cls(_group_names(workspace) if rules or style == "source" else None)
        translator.rules, translator.group_style = rules, style
        return translator

    def get_asset_spec(self, props: FivetranConnectorTableProps) -> dg.AssetSpec:
        spec = super().get_asset_spec(props)
        schema, table = props.table.split(".")
        owner = ingestion_owner(source_id=props.destination_id, source_name=self.group_names.get(props.destination_id or ""),
                                connector_id=props.connector_id, connector_name=props.connector_name, rules=self.rules)
        group = connector_group("fivetran", schema, source_id=props.destination_id,
                                source_name=self.group_names.get(props.destination_id or ""), style=self.group_style)
        return spec.replace_attributes(
            group_name=group,
            owners=[owner],
            description=(
                f"Table `{table}` synced by the Fivetran {props.service} connector "
                f"`{props.connector_id}` into schema `{schema}`"
                + (f", every {props.sync_frequency} min." if props.sync_frequency else ".")
            ),
        ).merge_attributes(tags={"ingestion": "fivetran"})


def connector_ids(specs: Sequence[dg.AssetSpec]) -> list[str]:
    return sorted({FivetranMetadataSet.extract(s.metadata).connector_id for s in specs})


def _group_names(workspace: FivetranWorkspaceResource) -> dict[str, str]:
    """Group (destination) id -> name (only when owner rules or source groups are configured); empty when the API
    cannot be read (the rules then match the group id)."""
    try:
        init = getattr(workspace, "process_config_and_initialize_cm", None)  # EnvVar values resolved
        with (init() if init else contextlib.nullcontext(workspace)) as ready:
            return {g["id"]: g.get("name") or g["id"] for g in ready.get_client().get_groups()["items"]}
    except Exception as exc:  # noqa: BLE001 - API down: the last known state still loads, keyed by id
        logging.getLogger(__name__).warning("Fivetran group names not read, owners and groups use the id: %s", exc)
        return {}


def build_fivetran_assets(workspace: FivetranWorkspaceResource, connector_selector_fn=None) -> list[dg.AssetsDefinition]:
    """One sync multi-asset per connector, each taking an optional resync config.

    The table list comes through dagster-fivetran's state-backed loader, so run workers rebuild
    the same assets from the state captured at load, without calling the API again.
    ``connector_selector_fn`` (``orchestrator.resources.fivetran_selector``) keeps only the
    selected connectors.
    """
    translator = FivetranTranslator(_group_names(workspace) if wants_source_names() else None)
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
