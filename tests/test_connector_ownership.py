"""Issue 14, item 3: connector tables' owners from the Fivetran group / Airbyte workspace by rule,
and Airbyte keys compatible with dagster-airbyte's default (no API: the translators alone, and the
dbt translator linking a source to a default-keyed Airbyte table)."""

import dagster as dg
import pytest
from dagster_airbyte import AirbyteConnectionTableProps, DagsterAirbyteTranslator
from dagster_fivetran import FivetranConnectorTableProps
from dagster_fivetran.translator import FivetranSchemaConfig

from orchestrator.lib.ownership import airbyte_key_style, ingestion_owner, owner_rules


def _airbyte_props(name="Stripe billing", schema="billing", table="invoices"):
    return AirbyteConnectionTableProps(
        table_name=table, stream_prefix=None, stream_name=table, json_schema={"properties": {}},
        connection_id="8e2b-conn", connection_name=name, destination_type="duckdb", database="team", schema=schema)


def _fivetran_props(group="shop_wh"):
    return FivetranConnectorTableProps(
        table="shop.orders", connector_id="bright_till", connector_name="shop", connector_url="https://x",
        destination_id=group, schema_config=FivetranSchemaConfig.from_schema_config_details(schema_config_details={"schemas": {"shop": {
            "name_in_destination": "shop", "enabled": True,
            "tables": {"orders": {"name_in_destination": "orders", "enabled": True, "columns": {}}}}}}), database="shop", service="shopify")


def test_rules_first_match_wins_and_source_names_the_group():
    rules = owner_rules("stripe*=team:billing-data, 6f2c*=finance@example.com, *=source")
    assert ingestion_owner(source_id="ws-1", source_name="Team Space", connector_id="c", connector_name="Stripe billing",
                           rules=rules) == "team:billing-data"
    assert ingestion_owner(source_id="6f2c-ws", source_name=None, connector_id="c", connector_name="CRM",
                           rules=rules) == "finance@example.com"
    assert ingestion_owner(source_id="ws-1", source_name="Team Space", connector_id="c", connector_name="CRM",
                           rules=rules) == "team:Team_Space"
    assert ingestion_owner(source_id="g", source_name=None, connector_id="c", connector_name="n",
                           rules=[]) == "team:data-platform"
    with pytest.raises(ValueError, match="not pattern=owner"):
        owner_rules("team:x")
    with pytest.raises(ValueError, match="ORCHESTRATOR_AIRBYTE_ASSET_KEYS"):
        airbyte_key_style("flat")


def test_translators_take_owners_from_the_workspace_and_group(monkeypatch):
    monkeypatch.setenv("ORCHESTRATOR_CONNECTOR_OWNERS", "stripe*=team:billing-data,*=source")
    from assets.airbyte import AirbyteTranslator
    from assets.fivetran import FivetranTranslator

    ab = AirbyteTranslator("3c1d-ws", "Revenue workspace")
    assert ab.get_asset_spec(_airbyte_props()).owners == ["team:billing-data"]
    assert ab.get_asset_spec(_airbyte_props(name="Salesforce CRM")).owners == ["team:Revenue_workspace"]
    ft = FivetranTranslator({"shop_wh": "Shop warehouse"})
    assert ft.get_asset_spec(_fivetran_props()).owners == ["team:Shop_warehouse"]
    monkeypatch.delenv("ORCHESTRATOR_CONNECTOR_OWNERS")
    assert FivetranTranslator().get_asset_spec(_fivetran_props()).owners == ["team:data-platform"]


def test_airbyte_keys_follow_the_configured_style(monkeypatch):
    from assets.airbyte import AirbyteTranslator
    from assets.dbt import ProjectDbtTranslator

    assert AirbyteTranslator().get_asset_spec(_airbyte_props()).key == dg.AssetKey(["billing", "invoices"])
    monkeypatch.setenv("ORCHESTRATOR_AIRBYTE_ASSET_KEYS", "dagster")
    default = DagsterAirbyteTranslator().get_asset_spec(_airbyte_props()).key
    assert AirbyteTranslator().get_asset_spec(_airbyte_props()).key == default == dg.AssetKey(["invoices"])
    # a dbt source billing.invoices is linked to the default-keyed Airbyte table
    source = {"resource_type": "source", "schema": "billing", "name": "invoices", "identifier": "invoices",
              "source_name": "billing", "unique_id": "source.team.billing.invoices", "meta": {}, "config": {}}
    assert ProjectDbtTranslator(frozenset({default})).get_asset_key(source) == default
    assert ProjectDbtTranslator(frozenset()).get_asset_key(source) == dg.AssetKey(["billing", "invoices"])


def test_groups_from_the_fivetran_group_and_airbyte_workspace(monkeypatch):
    from assets.airbyte import AirbyteTranslator
    from assets.fivetran import FivetranTranslator
    from orchestrator.lib.ownership import connector_group, group_style

    # default: per destination schema, as before
    assert FivetranTranslator({"shop_wh": "Shop warehouse"}).get_asset_spec(_fivetran_props()).group_name == "fivetran_shop"
    assert AirbyteTranslator("3c1d-ws", "Revenue workspace").get_asset_spec(_airbyte_props()).group_name == "airbyte_billing"
    monkeypatch.setenv("ORCHESTRATOR_CONNECTOR_GROUPS", "source")
    assert FivetranTranslator({"shop_wh": "Shop warehouse"}).get_asset_spec(_fivetran_props()).group_name == "Shop_warehouse"
    assert FivetranTranslator().get_asset_spec(_fivetran_props()).group_name == "shop_wh"  # no name read: the id
    assert AirbyteTranslator("3c1d-ws", "Revenue workspace").get_asset_spec(_airbyte_props()).group_name == "Revenue_workspace"
    assert AirbyteTranslator("3c1d-ws", None).get_asset_spec(_airbyte_props()).group_name == "3c1d_ws"
    # every group is a valid Dagster group name, whatever the vendor's name holds
    for name in ("Équipe données / EU", "---", "a.b-c d", "x" * 3):
        group = connector_group("fivetran", "s", source_id="g1", source_name=name, style="source")
        dg.AssetSpec("t", group_name=group)  # raises on an invalid group name
    monkeypatch.setenv("ORCHESTRATOR_CONNECTOR_GROUPS", "by-team")
    with pytest.raises(ValueError, match="ORCHESTRATOR_CONNECTOR_GROUPS"):
        group_style()


def test_policy_owners_override_the_connector_owners(tmp_path, monkeypatch):
    """Owners from the source (group/workspace rules) are the default; a policy's owners come first
    for what the sensors, digest and notifications do, and are compiled onto the spec."""
    from assets.airbyte import AirbyteTranslator

    from orchestrator.lib import connector_resources, with_sla_policies

    monkeypatch.setenv("ORCHESTRATOR_CONNECTOR_OWNERS", "*=source")
    monkeypatch.setenv("ORCHESTRATOR_CONNECTOR_GROUPS", "source")
    spec = AirbyteTranslator("3c1d-ws", "Revenue workspace").get_asset_spec(_airbyte_props())
    assert spec.owners == ["team:Revenue_workspace"] and spec.group_name == "Revenue_workspace"
    (tmp_path / "p.yaml").write_text("policies:\n  - name: billing\n    select: [{key: \"billing/*\"}]\n"
                                     "    max_lag: 6h\n    owners: [team:billing-oncall]\n")
    defs = with_sla_policies(dg.Definitions(assets=[spec]), [tmp_path], resources=connector_resources([]))
    node = defs.get_repository_def().asset_graph.get(spec.key)
    assert "team:billing-oncall" in node.owners
    assert "team:Revenue_workspace" in node.owners and node.group_name == "Revenue_workspace"
    from orchestrator.dagster_policies import load_resolution
    from orchestrator.project_graph import asset_graph_from_assets

    resolution = load_resolution(asset_graph_from_assets([spec]), [tmp_path])
    assert tuple(resolution.sla("billing/invoices").owners) == ("team:billing-oncall",)


def test_translators_for_dagsters_own_builders_take_explicit_rules(monkeypatch):
    """``for_workspace`` reads the group / workspace name once, only when owners or groups need it,
    with the rules given explicitly (a .py component can be built before the SLA component sets
    the environment)."""
    from types import SimpleNamespace

    from assets.fivetran import FivetranTranslator

    monkeypatch.delenv("ORCHESTRATOR_CONNECTOR_OWNERS", raising=False)
    calls = []
    client = SimpleNamespace(get_groups=lambda: calls.append("groups") or {"items": [{"id": "shop_wh", "name": "Shop warehouse"}]})
    workspace = SimpleNamespace(get_client=lambda: client)
    plain = FivetranTranslator.for_workspace(workspace)
    assert calls == [] and plain.get_asset_spec(_fivetran_props()).owners == ["team:data-platform"]
    sourced = FivetranTranslator.for_workspace(workspace, owners="*=source", groups="source")
    spec = sourced.get_asset_spec(_fivetran_props())
    assert calls == ["groups"] and (spec.owners, spec.group_name) == (["team:Shop_warehouse"], "Shop_warehouse")
