"""Issue 14 item 4: the emulators honour the connector's schema-change setting, not only
ALLOW_ALL. Fivetran (connection-schema docs): ALLOW_ALL syncs new schemas, tables and columns;
ALLOW_COLUMNS syncs new columns of enabled tables (new tables arrive disabled); BLOCK_ALL captures
every new object in the schema config disabled and syncs none of it. Airbyte:
nonBreakingSchemaUpdatesBehavior=ignore does not propagate a new column; propagate_columns does.
Column drops and type changes reach the destination under every setting."""

import httpx
import pyarrow.parquet as pq
import pytest
from emulator_fixtures import (  # noqa: F401
    PRODUCT,
    SALESFORCE,
    airbyte_workspace,
    emulators,
    fivetran_workspace,
    small_scenario,
)

pytestmark = pytest.mark.slow

CHANGES = [
    {"kind": "schema_change", "target": SALESFORCE, "on_sync": 2, "table": "account",
     "change": "add_column", "column": "region", "column_spec": {"type": "string", "values": ["EMEA", "AMER"]}},
    {"kind": "schema_change", "target": SALESFORCE, "on_sync": 2, "table": "account",
     "change": "rename_column", "column": "name", "to_column": "account_name"},
    {"kind": "schema_change", "target": SALESFORCE, "on_sync": 2, "table": "account",
     "change": "drop_column", "column": "industry"},
]


def _sync(workspace, connector_id):
    return workspace.get_client().sync_and_poll(connector_id, poll_interval=0.1, poll_timeout=20)


def _columns(handle, schema, table):
    return [pq.read_table(f).column_names for f in sorted((handle.landing_dir / schema / table).glob("*.parquet"))]


@pytest.mark.parametrize("handling,lands_new", [("ALLOW_ALL", True), ("ALLOW_COLUMNS", True), ("BLOCK_ALL", False)])
def test_fivetran_new_columns_follow_schema_change_handling(emulators, small_scenario, handling, lands_new):
    small_scenario["fivetran"]["connectors"][0]["schema_change_handling"] = handling
    small_scenario["faults"] = CHANGES
    handle = emulators(small_scenario)
    workspace = fivetran_workspace(handle)
    _sync(workspace, SALESFORCE)
    _sync(workspace, SALESFORCE)
    before, after = _columns(handle, "salesforce", "account")
    assert {"name", "industry"} <= set(before) and "region" not in before
    assert "industry" not in after  # a drop reaches the destination whatever the setting
    assert ("region" in after, "account_name" in after) == (lands_new, lands_new)
    assert "name" not in after  # renamed at the source: the old name receives nothing new

    cfg = workspace.get_client().get_schema_config_for_connector(SALESFORCE)
    assert cfg["schema_change_handling"] == handling
    assert cfg["enable_new_by_default"] == (handling == "ALLOW_ALL")
    columns = cfg["schemas"]["salesforce"]["tables"]["account"]["columns"]
    # BLOCK_ALL: captured in the schema config, disabled; otherwise enabled
    assert columns["region"]["enabled"] is lands_new and columns["account_name"]["enabled"] is lands_new
    assert all(c["enabled"] for n, c in columns.items() if n not in ("region", "account_name"))
    assert "industry" not in columns
    assert set(columns["region"]) == set(columns["owner_id"])  # a blocked column: the documented object


def test_fivetran_setting_changed_by_patch_applies_to_later_changes(emulators, small_scenario):
    small_scenario["faults"] = [dict(CHANGES[0], on_sync=3)]
    handle = emulators(small_scenario)
    workspace = fivetran_workspace(handle)
    _sync(workspace, SALESFORCE)
    r = httpx.patch(f"{handle.fivetran_url}/v1/connections/{SALESFORCE}/schemas",
                    json={"schema_change_handling": "BLOCK_ALL"},
                    auth=(handle.fivetran_api_key, handle.fivetran_api_secret))
    assert r.status_code == 200 and r.json()["data"]["schema_change_handling"] == "BLOCK_ALL"
    _sync(workspace, SALESFORCE)
    _sync(workspace, SALESFORCE)
    assert all("region" not in cols for cols in _columns(handle, "salesforce", "account"))


@pytest.mark.parametrize("behaviour,lands_new", [("propagate_columns", True), ("ignore", False)])
def test_airbyte_non_breaking_updates_behaviour(emulators, small_scenario, behaviour, lands_new):
    small_scenario["faults"] = [{"kind": "schema_change", "target": PRODUCT, "on_sync": 2, "table": "users",
                                 "change": "add_column", "column": "country", "column_spec": {"type": "string"}}]
    handle = emulators(small_scenario)
    token = httpx.post(f"{handle.airbyte_rest_url}/applications/token",
                       json={"client_id": handle.airbyte_client_id,
                             "client_secret": handle.airbyte_client_secret}).json()["access_token"]
    r = httpx.patch(f"{handle.airbyte_rest_url}/connections/{PRODUCT}",
                    json={"nonBreakingSchemaUpdatesBehavior": behaviour},
                    headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200 and r.json()["nonBreakingSchemaUpdatesBehavior"] == behaviour
    client = airbyte_workspace(handle).get_client()
    client.sync_and_poll(PRODUCT)
    client.sync_and_poll(PRODUCT)
    assert ["country" in cols for cols in _columns(handle, "product", "users")] == [False, lands_new]
    streams = client.get_connection_details(PRODUCT)["syncCatalog"]["streams"]
    users = next(s for s in streams if s["stream"]["name"] == "users")
    assert ("country" in users["stream"]["jsonSchema"]["properties"]) is lands_new
