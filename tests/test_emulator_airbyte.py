"""The real dagster-airbyte client against the Airbyte emulator, over HTTP."""

import threading
import time

import duckdb
import httpx
import pyarrow.parquet as pq
import pytest
from dagster import AssetExecutionContext, Failure, materialize
from dagster_airbyte import AirbyteWorkspace, airbyte_assets, load_airbyte_asset_specs
from emulator_fixtures import PRODUCT, SALESFORCE, WORKSPACE, airbyte_workspace, emulators, fivetran_workspace, small_scenario  # noqa: F401

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::Warning")]


def _token(handle) -> dict[str, str]:
    response = httpx.post(f"{handle.airbyte_rest_url}/applications/token",
                          json={"client_id": handle.airbyte_client_id, "client_secret": handle.airbyte_client_secret})
    response.raise_for_status()
    assert response.json()["token_type"] == "Bearer"
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def _job_info(handle, job_id: int) -> dict:
    response = httpx.post(f"{handle.airbyte_config_url}/jobs/get", json={"id": job_id}, headers=_token(handle))
    response.raise_for_status()
    return response.json()


def _last_job_id(handle) -> int:
    return max(job["id"] for job in handle.airbyte.debug_state()["jobs"])


def test_asset_specs_and_namespace_are_derivable(emulators):
    handle = emulators()
    specs = load_airbyte_asset_specs(airbyte_workspace(handle))
    assert {tuple(s.key.path) for s in specs} == {("users",), ("events",)}
    headers = _token(handle)
    connection = httpx.post(f"{handle.airbyte_config_url}/connections/get", json={"connectionId": PRODUCT},
                            headers=headers).json()
    assert (connection["namespaceDefinition"], connection["namespaceFormat"], connection["prefix"]) == (
        "customformat", "product", "")
    public = httpx.get(f"{handle.airbyte_rest_url}/connections/{PRODUCT}", headers=headers).json()
    assert public["namespaceFormat"] == "product" and public["workspaceId"] == WORKSPACE


def test_sync_lands_parquet_with_airbyte_columns(emulators):
    handle = emulators()
    fivetran_workspace(handle).get_client().sync_and_poll(SALESFORCE, poll_interval=0.1, poll_timeout=20)
    output = airbyte_workspace(handle).get_client().sync_and_poll(PRODUCT)
    assert output.job_details["status"] == "succeeded"
    assert "lastUpdatedAt" in output.job_details and output.job_details["rowsSynced"] == 250

    users = pq.read_table(next((handle.landing_dir / "product" / "users").glob("*.parquet")))
    assert users.column_names[:4] == ["user_id", "account_id", "plan", "signed_up_at"]
    assert {"_airbyte_raw_id", "_airbyte_extracted_at"} <= set(users.column_names)
    assert str(users.schema.field("_airbyte_extracted_at").type) == "timestamp[us, tz=UTC]"
    landing = handle.landing_dir
    orphans = duckdb.sql(f"""
        select (select count(*) from read_parquet('{landing}/product/users/*.parquet')
                where account_id not in (select id from read_parquet('{landing}/salesforce/account/*.parquet')))
             + (select count(*) from read_parquet('{landing}/product/events/*.parquet')
                where user_id not in (select user_id from read_parquet('{landing}/product/users/*.parquet')))
    """).fetchall()[0][0]
    assert orphans == 0


def test_asset_materialization_through_dagster(emulators):
    handle = emulators()
    workspace = airbyte_workspace(handle)

    @airbyte_assets(connection_id=PRODUCT, workspace=workspace)
    def product_assets(context: AssetExecutionContext, airbyte: AirbyteWorkspace):
        yield from airbyte.sync_and_poll(context=context)

    result = materialize([product_assets], resources={"airbyte": workspace})
    assert result.success
    assert {tuple(e.asset_key.path) for e in result.get_asset_materialization_events()} == {("users",), ("events",)}


def test_second_trigger_while_running_gets_409(emulators):
    handle = emulators()
    headers = _token(handle)
    handle.inject_fault({"kind": "hang", "target": PRODUCT, "next_syncs": 1})
    first = httpx.post(f"{handle.airbyte_rest_url}/jobs", json={"connectionId": PRODUCT, "jobType": "sync"},
                       headers=headers)
    assert first.status_code == 200 and first.json()["status"] == "running"
    assert "lastUpdatedAt" not in first.json()  # absent, never null
    second = httpx.post(f"{handle.airbyte_rest_url}/jobs", json={"connectionId": PRODUCT, "jobType": "sync"},
                        headers=headers)
    assert second.status_code == 409
    assert second.json()["data"]["message"] == f"A sync is already running for: {PRODUCT}"
    with pytest.raises(Failure, match="already running"):
        airbyte_workspace(handle).get_client().sync_and_poll(PRODUCT)
    cancelled = httpx.delete(f"{handle.airbyte_rest_url}/jobs/{first.json()['jobId']}", headers=headers)
    assert cancelled.json()["status"] == "cancelled"


def test_failed_job_has_failure_reasons_in_config_api(emulators):
    handle = emulators()
    handle.inject_fault({"kind": "sync_failure", "target": PRODUCT, "next_syncs": 1, "attempts": 2,
                         "code": "transient_error"})
    with pytest.raises(Failure, match="Job failed"):
        airbyte_workspace(handle).get_client().sync_and_poll(PRODUCT)
    info = _job_info(handle, _last_job_id(handle))
    assert info["job"]["status"] == "failed" and len(info["attempts"]) == 2
    failure = info["attempts"][-1]["attempt"]["failureSummary"]["failures"][0]
    assert failure["failureOrigin"] == "source" and failure["failureType"] == "transient_error"
    assert failure["externalMessage"] == "Something went wrong within the source connector"
    assert "PSQLException" in failure["internalMessage"] and failure["stacktrace"]
    assert isinstance(failure["retryable"], bool) and failure["timestamp"] > 10**12  # epoch ms


def test_expired_credentials_fail_with_config_error_until_repaired(emulators):
    handle = emulators()
    client = airbyte_workspace(handle).get_client()
    handle.inject_fault({"kind": "expired_credentials", "target": PRODUCT, "next_syncs": 1})
    for _ in range(2):  # stays broken after the fault fired
        with pytest.raises(Failure, match="Job failed"):
            client.sync_and_poll(PRODUCT)
        failure = _job_info(handle, _last_job_id(handle))["attempts"][0]["attempt"]["failureSummary"]["failures"][0]
        assert failure["failureType"] == "config_error" and failure["retryable"] is False
        assert failure["externalMessage"].startswith("Checking source connection failed")
    httpx.post(f"{handle.airbyte_base_url}/_emulator/repair/{PRODUCT}").raise_for_status()
    assert client.sync_and_poll(PRODUCT).job_details["status"] == "succeeded"


def test_hung_job_is_cancelled_after_poll_timeout(emulators):
    handle = emulators()
    handle.inject_fault({"kind": "hang", "target": PRODUCT, "next_syncs": 1})
    with pytest.raises(Failure, match="Timeout"):
        airbyte_workspace(handle, poll_timeout=1.0).get_client().sync_and_poll(PRODUCT)
    info = _job_info(handle, _last_job_id(handle))
    assert info["job"]["status"] == "cancelled"
    assert info["attempts"][0]["attempt"]["failureSummary"]["failures"][0]["failureType"] == "manual_cancellation"


def test_http_fault_bursts_and_bad_token(emulators):
    handle = emulators()
    client = airbyte_workspace(handle).get_client()
    handle.inject_fault({"kind": "server_error", "target": PRODUCT, "requests": 2, "status": 502})
    assert client.sync_and_poll(PRODUCT).job_details["status"] == "succeeded"
    injected = httpx.post(f"{handle.airbyte_base_url}/_emulator/faults",
                          json={"kind": "rate_limit", "target": PRODUCT, "requests": 20})
    assert injected.status_code == 201
    with pytest.raises(Failure, match=r"Max retries \(3\) exceeded"):
        client.sync_and_poll(PRODUCT)
    assert httpx.delete(f"{handle.airbyte_base_url}/_emulator/faults").json()["removed"] == 1

    bad = httpx.get(f"{handle.airbyte_rest_url}/connections", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401 and bad.json()["status"] == 401
    wrong = httpx.post(f"{handle.airbyte_rest_url}/applications/token",
                       json={"client_id": handle.airbyte_client_id, "client_secret": "wrong"})
    assert wrong.status_code == 401
    rejected = httpx.post(f"{handle.airbyte_base_url}/_emulator/faults", json={"kind": "flood", "target": PRODUCT})
    assert rejected.status_code == 400 and "unknown fault kind 'flood'" in rejected.json()["error"]


def test_jobs_pagination_and_filters(emulators):
    handle = emulators()
    client = airbyte_workspace(handle).get_client()
    for _ in range(3):
        client.sync_and_poll(PRODUCT)
    headers = _token(handle)
    page = httpx.get(f"{handle.airbyte_rest_url}/jobs", headers=headers,
                     params={"connectionId": PRODUCT, "limit": 2, "createdAtStart": "2000-01-01T00:00:00Z"}).json()
    assert len(page["data"]) == 2 and "offset=2" in page["next"]
    rest = httpx.get(page["next"], headers=headers).json()
    assert len(rest["data"]) == 1 and rest["next"] == ""
    assert len(client.get_jobs_for_connection(PRODUCT)) == 3


def test_schema_change_in_catalog_and_parquet(emulators, small_scenario):
    small_scenario["faults"] = [{"kind": "schema_change", "target": PRODUCT, "on_sync": 2, "table": "users",
                                 "change": "add_column", "column": "country", "column_spec": {"type": "string"}}]
    handle = emulators(small_scenario)
    client = airbyte_workspace(handle).get_client()
    client.sync_and_poll(PRODUCT)
    assert "country" not in _user_properties(client)
    client.sync_and_poll(PRODUCT)
    assert _user_properties(client)["country"]["type"] == ["null", "string"]
    files = sorted((handle.landing_dir / "product" / "users").glob("*.parquet"))
    assert ["country" in pq.read_table(f).column_names for f in files] == [False, True]


def _user_properties(client) -> dict:
    streams = client.get_connection_details(PRODUCT)["syncCatalog"]["streams"]
    return next(s for s in streams if s["stream"]["name"] == "users")["stream"]["jsonSchema"]["properties"]


def test_cancel_from_another_thread_ends_job_cancelled(emulators):
    handle = emulators()
    handle.inject_fault({"kind": "hang", "target": PRODUCT, "next_syncs": 1})
    client = airbyte_workspace(handle).get_client()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            client.sync_and_poll(PRODUCT)
        except Failure as exc:
            errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 5
    while not handle.airbyte.debug_state()["jobs"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    httpx.delete(f"{handle.airbyte_rest_url}/jobs/{_last_job_id(handle)}", headers=_token(handle))
    worker.join(timeout=10)
    assert errors and "Job was cancelled" in str(errors[0])


def test_job_ids_and_connection_state_survive_restart(emulators):
    handle = emulators(name="persist")
    client = airbyte_workspace(handle).get_client()
    first = client.sync_and_poll(PRODUCT).job_details
    handle.stop()

    again = emulators(name="persist")
    client = airbyte_workspace(again).get_client()
    jobs = client.get_jobs_for_connection(PRODUCT)
    assert [(j.id, j.status) for j in jobs] == [(first["jobId"], "succeeded")]
    second = client.sync_and_poll(PRODUCT).job_details
    assert second["jobId"] == first["jobId"] + 1
    assert len(list((again.landing_dir / "product" / "events").glob("*.parquet"))) == 2


def _wait_job(handle, job_id: int, timeout_s: float = 20) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = _job_info(handle, job_id)["job"]
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish")


def test_reset_of_selected_streams_clears_only_those(emulators):
    handle = emulators()
    fivetran_workspace(handle).get_client().sync_and_poll(SALESFORCE, poll_interval=0.1, poll_timeout=20)
    airbyte_workspace(handle).get_client().sync_and_poll(PRODUCT)
    events_before = sorted((handle.landing_dir / "product" / "events").glob("*.parquet"))
    headers = _token(handle)

    bad = httpx.post(f"{handle.airbyte_config_url}/connections/reset/stream", headers=headers,
                     json={"connectionId": PRODUCT, "streams": [{"streamName": "userz"}]})
    assert bad.status_code == 400 and "userz" in bad.json()["message"]

    reset = httpx.post(f"{handle.airbyte_config_url}/connections/reset/stream", headers=headers,
                       json={"connectionId": PRODUCT, "streams": [{"streamName": "users", "streamNamespace": "public"}]})
    reset.raise_for_status()
    job = _wait_job(handle, reset.json()["job"]["id"])
    assert (job["configType"], job["status"]) == ("reset_connection", "succeeded")
    assert not list((handle.landing_dir / "product" / "users").glob("*.parquet"))
    assert sorted((handle.landing_dir / "product" / "events").glob("*.parquet")) == events_before

    airbyte_workspace(handle).get_client().sync_and_poll(PRODUCT)  # the next sync re-lands the history
    users = duckdb.sql(f"select count(*) from read_parquet('{handle.landing_dir}/product/users/*.parquet')")
    assert users.fetchall()[0][0] >= 50  # all of the small scenario's users again, not just new ones
