"""The real dagster-fivetran client against the Fivetran emulator, over HTTP."""


import time

import duckdb
import httpx
import pyarrow.parquet as pq
import pytest
from dagster import AssetExecutionContext, Failure, materialize
from dagster_fivetran import FivetranWorkspace, fivetran_assets, load_fivetran_asset_specs
from emulator_fixtures import (  # noqa: F401
    SALESFORCE,
    STRIPE,
    emulators,
    fast_fivetran_sleep,
    fivetran_workspace,
    small_scenario,
)

pytestmark = pytest.mark.slow


def _sync(workspace, connector_id: str, timeout: float = 20):
    return workspace.get_client().sync_and_poll(connector_id, poll_interval=0.1, poll_timeout=timeout)


def _parquet_files(handle, schema: str, table: str):
    return sorted((handle.landing_dir / schema / table).glob("*.parquet"))


def test_workspace_loads_asset_specs_from_emulator(emulators):
    handle = emulators()
    specs = load_fivetran_asset_specs(fivetran_workspace(handle))
    assert {tuple(s.key.path) for s in specs} == {
        ("salesforce", "account"), ("salesforce", "user"), ("stripe", "customer")
    }
    data = fivetran_workspace(handle).fetch_fivetran_workspace_data()
    assert set(data.connectors_by_id) == {SALESFORCE, STRIPE}


def test_sync_lands_parquet_with_fivetran_columns_and_resolving_foreign_keys(emulators):
    handle = emulators()
    workspace = fivetran_workspace(handle)
    before = workspace.get_client().get_connector_details(SALESFORCE)
    assert before["succeeded_at"] is None and before["status"]["sync_state"] == "scheduled"

    output = _sync(workspace, SALESFORCE)
    assert output.connector_details["succeeded_at"].endswith("Z")
    _sync(workspace, STRIPE)
    _sync(workspace, SALESFORCE)  # incremental: new + updated rows in a second file

    account_files = _parquet_files(handle, "salesforce", "account")
    assert len(account_files) == 2
    first = pq.read_table(account_files[0])
    assert first.num_rows == 40
    assert first.column_names == ["id", "name", "industry", "owner_id", "annual_revenue", "created_date",
                                  "_fivetran_synced", "_fivetran_deleted"]
    assert str(first.schema.field("_fivetran_synced").type) == "timestamp[us, tz=UTC]"
    second = pq.read_table(account_files[1])
    assert second.num_rows == 5
    assert set(second.column("id").to_pylist()) & set(first.column("id").to_pylist())  # updates keep keys

    landing = handle.landing_dir
    orphans = duckdb.sql(f"""
        select count(*) from read_parquet('{landing}/stripe/customer/*.parquet') c
        where c.salesforce_account_id not in (select id from read_parquet('{landing}/salesforce/account/*.parquet'))
    """).fetchall()[0][0]
    assert orphans == 0
    owners = duckdb.sql(f"""
        select count(*) from read_parquet('{landing}/salesforce/account/*.parquet') a
        where a.owner_id not in (select id from read_parquet('{landing}/salesforce/user/*.parquet'))
    """).fetchall()[0][0]
    assert owners == 0


def test_asset_materialization_through_dagster(emulators, monkeypatch):
    handle = emulators()
    fast_fivetran_sleep(monkeypatch)
    workspace = fivetran_workspace(handle)

    @fivetran_assets(connector_id=STRIPE, workspace=workspace)
    def stripe_assets(context: AssetExecutionContext, fivetran: FivetranWorkspace):
        yield from fivetran.sync_and_poll(context=context)

    result = materialize([stripe_assets], resources={"fivetran": workspace})
    assert result.success
    keys = {tuple(event.asset_key.path) for event in result.get_asset_materialization_events()}
    assert keys == {("stripe", "customer")}
    # dagster disables the schedule when it triggers a sync
    assert workspace.get_client().get_connector_details(STRIPE)["schedule_type"] == "manual"


def test_bad_credentials_get_401_envelope(emulators):
    handle = emulators()
    response = httpx.get(f"{handle.fivetran_url}/v1/groups", auth=("sandbox-api-key", "wrong"))
    assert response.status_code == 401
    assert response.json()["code"] == "AuthFailed"
    with pytest.raises(Failure, match=r"Max retries \(3\) exceeded"):
        fivetran_workspace(handle, api_secret="wrong").get_client().get_connector_details(SALESFORCE)


def test_pagination_emits_the_documented_next_cursor_only(emulators):
    handle = emulators()
    auth = (handle.fivetran_api_key, handle.fivetran_api_secret)
    page = httpx.get(f"{handle.fivetran_url}/v1/groups/grp/connectors", params={"limit": 1}, auth=auth).json()
    assert page["code"] == "Success" and len(page["data"]["items"]) == 1
    assert set(page["data"]) == {"items", "next_cursor"}  # no camelCase nextCursor, as Fivetran documents
    last = httpx.get(f"{handle.fivetran_url}/v1/groups/grp/connectors",
                     params={"limit": 1, "cursor": page["data"]["next_cursor"]}, auth=auth).json()
    assert "next_cursor" not in last["data"] and len(last["data"]["items"]) == 1
    # the renamed API is served too
    assert httpx.get(f"{handle.fivetran_url}/v1/connections/{STRIPE}", auth=auth).json()["data"]["id"] == STRIPE


def test_short_429_burst_is_retried_long_one_fails(emulators):
    handle = emulators()
    workspace = fivetran_workspace(handle)
    handle.inject_fault({"kind": "rate_limit", "target": SALESFORCE, "requests": 2, "retry_after_s": 1})
    response = httpx.get(f"{handle.fivetran_url}/v1/connectors/{SALESFORCE}",
                         auth=(handle.fivetran_api_key, handle.fivetran_api_secret))
    assert response.status_code == 429 and response.headers["Retry-After"] == "1"
    assert _sync(workspace, SALESFORCE).connector_details["succeeded_at"]

    handle.inject_fault({"kind": "server_error", "target": SALESFORCE, "requests": 10, "status": 503})
    with pytest.raises(Failure, match=r"Max retries \(3\) exceeded.*503"):
        _sync(workspace, SALESFORCE)


def test_failed_sync_raises_and_keeps_vendor_message(emulators):
    handle = emulators()
    workspace = fivetran_workspace(handle)
    handle.inject_fault({"kind": "sync_failure", "target": SALESFORCE, "next_syncs": 1})
    with pytest.raises(Failure, match=f"Sync for connector '{SALESFORCE}' failed!"):
        _sync(workspace, SALESFORCE)
    details = workspace.get_client().get_connector_details(SALESFORCE)
    assert details["failed_at"] and details["succeeded_at"] is None
    assert "REQUEST_LIMIT_EXCEEDED" in details["status"]["warnings"][0]["details"]
    assert not _parquet_files(handle, "salesforce", "account")  # a failed sync lands nothing
    _sync(workspace, SALESFORCE)  # the next one succeeds and clears the warning
    assert workspace.get_client().get_connector_details(SALESFORCE)["status"]["warnings"] == []


def test_expired_credentials_break_the_connector(emulators):
    handle = emulators()
    workspace = fivetran_workspace(handle)
    handle.inject_fault({"kind": "expired_credentials", "target": STRIPE, "next_syncs": 1})
    with pytest.raises(Failure, match="failed!"):
        _sync(workspace, STRIPE)
    details = workspace.get_client().get_connector_details(STRIPE)
    assert details["status"]["setup_state"] == "broken"
    assert details["status"]["tasks"][0]["code"] == "reconnect"
    assert details["setup_tests"][0]["status"] == "FAILED"
    with pytest.raises(Failure, match="has not been setup"):
        _sync(workspace, STRIPE)

    httpx.post(f"{handle.fivetran_url}/_emulator/repair/{STRIPE}").raise_for_status()
    assert _sync(workspace, STRIPE).connector_details["status"]["setup_state"] == "connected"


def test_hung_sync_needs_poll_timeout(emulators):
    handle = emulators()
    workspace = fivetran_workspace(handle)
    handle.inject_fault({"kind": "hang", "target": SALESFORCE, "next_syncs": 1})
    with pytest.raises(Failure, match="timed out"):
        _sync(workspace, SALESFORCE, timeout=1.0)
    assert workspace.get_client().get_connector_details(SALESFORCE)["status"]["sync_state"] == "syncing"
    _sync(workspace, SALESFORCE)  # forcing again restarts the sync, which now completes


def test_schema_changes_show_in_schema_config_and_parquet(emulators, small_scenario):
    small_scenario["faults"] = [
        {"kind": "schema_change", "target": SALESFORCE, "on_sync": 2, "table": "account",
         "change": "add_column", "column": "region", "column_spec": {"type": "string", "values": ["EMEA", "AMER"]}},
        {"kind": "schema_change", "target": SALESFORCE, "on_sync": 2, "table": "account",
         "change": "drop_column", "column": "industry"},
        {"kind": "schema_change", "target": SALESFORCE, "on_sync": 2, "table": "account",
         "change": "change_type", "column": "annual_revenue", "to_type": "string"},
    ]
    small_scenario["fivetran"]["column_types"] = True  # emulator extension: Fivetran documents no column type
    handle = emulators(small_scenario)
    workspace = fivetran_workspace(handle)
    client = workspace.get_client()
    _sync(workspace, SALESFORCE)
    _sync(workspace, SALESFORCE)

    columns = client.get_schema_config_for_connector(SALESFORCE)["schemas"]["salesforce"]["tables"]["account"]["columns"]
    assert "region" in columns and "industry" not in columns
    assert client.get_columns_config_for_table(SALESFORCE, "salesforce", "account")["columns"]["annual_revenue"]["type"] == "string"

    before, after = (pq.read_table(f) for f in _parquet_files(handle, "salesforce", "account"))
    assert "industry" in before.column_names and "region" not in before.column_names
    assert "region" in after.column_names and "industry" not in after.column_names
    assert str(before.schema.field("annual_revenue").type) == "int64"
    assert str(after.schema.field("annual_revenue").type) == "string"
    assert all(v.isdigit() for v in after.column("annual_revenue").to_pylist())


def test_table_resync_and_full_resync(emulators):
    handle = emulators()
    client = fivetran_workspace(handle).get_client()
    _sync(fivetran_workspace(handle), SALESFORCE)
    client.resync_and_poll(SALESFORCE, poll_interval=0.1, poll_timeout=20,
                           resync_parameters={"salesforce": ["account"]})
    account, user = _parquet_files(handle, "salesforce", "account"), _parquet_files(handle, "salesforce", "user")
    assert pq.read_table(account[-1]).num_rows == 40 + 5 - 2  # every current row: history + new keys
    assert pq.read_table(user[-1]).num_rows == 1  # not resynced: incremental only

    client.resync_and_poll(SALESFORCE, poll_interval=0.1, poll_timeout=20)
    assert pq.read_table(_parquet_files(handle, "salesforce", "user")[-1]).num_rows == 6 + 1 + 1

    bad = httpx.post(f"{handle.fivetran_url}/v1/connectors/{SALESFORCE}/schemas/tables/resync",
                     json={"salesforce": ["nope"]}, auth=(handle.fivetran_api_key, handle.fivetran_api_secret))
    assert bad.status_code == 400 and "nope" in bad.json()["message"]


def test_pause_and_schedule_changes_via_patch(emulators):
    handle = emulators()
    workspace = fivetran_workspace(handle)
    auth = (handle.fivetran_api_key, handle.fivetran_api_secret)
    url = f"{handle.fivetran_url}/v1/connectors/{SALESFORCE}"
    paused = httpx.patch(url, json={"paused": True}, auth=auth).json()["data"]
    assert paused["paused"] is True and paused["status"]["sync_state"] == "paused"
    assert _sync(workspace, SALESFORCE) is None  # dagster skips paused connectors with a warning

    resumed = httpx.patch(url, json={"paused": False, "sync_frequency": 1440, "daily_sync_time": "03:00"},
                          auth=auth).json()["data"]
    assert (resumed["paused"], resumed["sync_frequency"], resumed["daily_sync_time"]) == (False, 1440, "03:00")
    bad = httpx.patch(url, json={"sync_frequency": 7}, auth=auth)
    assert bad.status_code == 400 and bad.json()["code"] == "InvalidInput"


def test_rescheduled_sync_requests_a_retry(emulators):
    from dagster import RetryRequested

    handle = emulators()
    handle.inject_fault({"kind": "rescheduled", "target": SALESFORCE, "next_syncs": 1, "delay_s": 0.6})
    client = fivetran_workspace(handle).get_client()
    with pytest.raises(RetryRequested):
        client.sync_and_poll(SALESFORCE, poll_interval=0.1, poll_timeout=10)
    details = client.get_connector_details(SALESFORCE)
    assert details["status"]["sync_state"] == "rescheduled" and details["status"]["update_state"] == "delayed"
    deadline = time.monotonic() + 10
    while client.get_connector_details(SALESFORCE)["succeeded_at"] is None:
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_auto_sync_runs_without_dagster(emulators):
    # sync_frequency 60 min scaled to 0.72 s
    handle = emulators(auto_sync=True, schedule_scale=0.0002)
    deadline = time.monotonic() + 10
    while not _parquet_files(handle, "salesforce", "account"):
        assert time.monotonic() < deadline, "no scheduled sync happened"
        time.sleep(0.1)
    history = handle.fivetran.debug_state()["connectors"][SALESFORCE]["history"]
    assert history[0]["triggered_by"] == "schedule" and history[0]["status"] == "SUCCESSFUL"


def test_state_survives_restart(emulators):
    handle = emulators(name="persist")
    workspace = fivetran_workspace(handle)
    _sync(workspace, SALESFORCE)
    httpx.patch(f"{handle.fivetran_url}/v1/connectors/{STRIPE}", json={"paused": True},
                auth=(handle.fivetran_api_key, handle.fivetran_api_secret))
    before = workspace.get_client().get_connector_details(SALESFORCE)
    handle.stop()

    again = emulators(name="persist")
    workspace = fivetran_workspace(again)
    after = workspace.get_client().get_connector_details(SALESFORCE)
    assert after["succeeded_at"] == before["succeeded_at"]
    assert workspace.get_client().get_connector_details(STRIPE)["paused"] is True
    _sync(workspace, SALESFORCE)
    names = [f.name for f in _parquet_files(again, "salesforce", "account")]
    assert [n.split("-")[0] for n in names] == ["000001", "000002"]  # sync numbering continued
