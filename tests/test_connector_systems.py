"""Each connector system is optional and selectable (issue 14 item 3): Fivetran only, Airbyte only,
both or neither, with connector selectors; a team with one system gets valid policies."""

import dagster as dg
import pytest

from orchestrator.core.graph import CONNECTOR_TABLE
from orchestrator.project_graph import asset_graph_from_definitions
from orchestrator.resources import enabled_systems
from orchestrator.resources.connector_state import LOAD_OUTCOMES
from orchestrator.settings import get_settings


def test_enabled_systems_from_settings_and_from_what_is_configured():
    assert enabled_systems({}) == ("fivetran", "airbyte")  # embedded default: both sandboxes
    assert enabled_systems({"FIVETRAN_API_KEY": "k"}) == ("fivetran",)  # a Fivetran-only team
    assert enabled_systems({"AIRBYTE_REST_API_BASE_URL": "https://api.airbyte.com/v1"}) == ("airbyte",)
    assert enabled_systems({"ORCHESTRATOR_CONNECTORS": "airbyte, fivetran"}) == ("fivetran", "airbyte")
    assert enabled_systems({"ORCHESTRATOR_CONNECTORS": "none", "FIVETRAN_API_KEY": "k"}) == ()
    assert enabled_systems({"ORCHESTRATOR_CONNECTORS": "AIRBYTE"}) == ("airbyte",)
    with pytest.raises(ValueError, match="unknown system.*stitch.*use fivetran, airbyte"):
        enabled_systems({"ORCHESTRATOR_CONNECTORS": "fivetran,stitch"})


def _build(monkeypatch, **env):
    from orchestrator.definitions import build_definitions

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    LOAD_OUTCOMES.clear()
    try:
        defs = build_definitions()
        defs.get_repository_def()  # sensors, checks and jobs resolve their resources
        return defs
    finally:
        get_settings.cache_clear()


def _connector_tables(defs) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for n in asset_graph_from_definitions(defs).by_role(CONNECTOR_TABLE):
        out.setdefault(n.connector.split(":")[0], set()).add(n.key)
    return out


def _status(defs) -> str:
    status = defs.metadata["sla_policies/status"]
    return str(getattr(status, "value", status))


def test_airbyte_only_team_gets_no_fivetran_assets_and_valid_policies(sandbox, monkeypatch):
    defs = _build(monkeypatch, ORCHESTRATOR_CONNECTORS="airbyte")
    tables = _connector_tables(defs)
    assert set(tables) == {"airbyte"} and "product/events" in tables["airbyte"]
    assert _status(defs) == "ok", defs.metadata  # policies on kind fivetran disabled, not invalid
    assert "fct_mrr" in asset_graph_from_definitions(defs)  # dbt still loads
    # the absent system's resource is None: sensors and checks skip it instead of calling an emulator
    resources = defs.get_repository_def().get_top_level_resources()
    assert resources["fivetran"].resource_fn(None) is None


def test_no_connector_system_still_loads_dbt_and_policies(sandbox, monkeypatch):
    defs = _build(monkeypatch, ORCHESTRATOR_CONNECTORS="none")
    assert _connector_tables(defs) == {}
    assert "fct_mrr" in asset_graph_from_definitions(defs)
    assert _status(defs) == "ok", defs.metadata


def test_connector_selectors_keep_only_the_selected_connectors(sandbox, monkeypatch):
    defs = _build(monkeypatch, ORCHESTRATOR_CONNECTORS="fivetran,airbyte",
                  ORCHESTRATOR_FIVETRAN_CONNECTORS="stripe, quiet_*",  # by name (schema) and by id pattern
                  ORCHESTRATOR_AIRBYTE_CONNECTIONS="no-such-connection")
    tables = _connector_tables(defs)
    assert {k.split("/")[0] for k in tables["fivetran"]} == {"stripe", "zendesk"}
    assert "airbyte" not in tables
    assert _status(defs) == "ok", defs.metadata


def test_sensors_take_an_absent_system_as_not_configured(sandbox):
    from orchestrator.core.graph import AssetGraph, AssetNode
    from orchestrator.snapshot import ConnectorReader

    graph = AssetGraph([AssetNode(key="stripe/invoice", role=CONNECTOR_TABLE, upstream=(),
                                  kinds=frozenset({"fivetran"}), connector="fivetran:dapper_ledger")])
    reader = ConnectorReader(fivetran=None, airbyte=None)
    from datetime import UTC, datetime

    assert reader.syncs(graph, datetime.now(UTC)) == [] and reader.errors == []
    assert reader.schema_change_handling(graph) == {}
    assert isinstance(dg.ResourceDefinition.none_resource(), dg.ResourceDefinition)
