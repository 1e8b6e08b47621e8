"""Contract tests: every request/response shape the project relies on, pinned to the vendors'
documented ones (``tests/data/vendor_shapes.json``, copied from ``../shared/reference/connector-apis.md``,
Fivetran's REST API pages and airbyte-platform's OpenAPI/problem files; sources inside).

The emulators must emit exactly the documented keys (no extra, none required missing) and accept
only what the APIs accept; the project's clients must send the documented requests and read the
documented responses (Fivetran ``next_cursor``, Airbyte ``cron`` + ``cronExpression``)."""

import copy
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import httpx
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulator_fixtures import PRODUCT, SALESFORCE, SMALL_SCENARIO, STRIPE
from orchestrator.emulators.server import start_emulators

SHAPES = json.loads((Path(__file__).parent / "data" / "vendor_shapes.json").read_text())
FT = SHAPES["fivetran"]
AB = SHAPES["airbyte_public"]
BLOCKED = "blocked_conn"


def _scenario() -> dict:
    sc = copy.deepcopy(SMALL_SCENARIO)
    extra = copy.deepcopy(sc["fivetran"]["connectors"][1])
    extra.update(id=BLOCKED, schema="stripe_eu", schema_change_handling="BLOCK_ALL")
    extra["tables"] = {"payout": {"rows": 5, "rows_per_sync": 1, "columns": {
        "id": {"type": "string", "primary_key": True}, "amount": {"type": "integer"}}}}
    sc["fivetran"]["connectors"].append(extra)
    sc["fivetran"]["groups"].append({"id": "grp_eu", "name": "EU warehouse",
                                     "destination": {"service": "duckdb", "database": "eu"}})
    extra["group"] = "grp_eu"
    return sc


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("contracts")
    path = tmp / "scenario.yaml"
    path.write_text(yaml.safe_dump(_scenario(), sort_keys=False))
    handle = start_emulators(path, tmp / "state", tmp / "landing", auto_sync=False, time_scale=0.05)
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def ft(emu):
    return httpx.Client(base_url=emu.fivetran_url, auth=(emu.fivetran_api_key, emu.fivetran_api_secret), timeout=60)


@pytest.fixture(scope="module")
def ab(emu):
    token = httpx.post(f"{emu.airbyte_rest_url}/applications/token",
                       json={"client_id": emu.airbyte_client_id, "client_secret": emu.airbyte_client_secret,
                             "grant_type": "client_credentials"}).json()
    assert set(token) == set(AB["PublicAccessTokenResponse"]["properties"])
    assert token["token_type"] == "Bearer" and isinstance(token["expires_in"], int)
    return httpx.Client(base_url=emu.airbyte_rest_url, headers={"Authorization": f"Bearer {token['access_token']}"},
                        timeout=60)


def assert_schema(obj: dict, name: str):
    """Keys within the documented properties, every required key present."""
    schema = AB[name]
    assert set(obj) <= set(schema["properties"]), f"{name}: undocumented {set(obj) - set(schema['properties'])}"
    assert set(schema.get("required", ())) <= set(obj), f"{name}: missing {set(schema['required']) - set(obj)}"


def assert_problem(resp: httpx.Response, title: str):
    body = resp.json()
    doc = SHAPES["airbyte_problems"][title]
    assert resp.status_code == doc["status"]
    assert set(body) <= set(SHAPES["airbyte_problem_base"]) and {"type", "title"} <= set(body)
    assert (body["type"], body["title"], body["detail"]) == (doc["type"], title, doc["detail"])
    assert set(body["data"]) <= set(doc["data"]), body
    return body


# -- Fivetran --------------------------------------------------------------------------------------


def test_fivetran_lists_page_with_next_cursor_only(ft):
    doc = FT["list_page"]
    for path in ("/v1/groups", "/v1/groups/grp/connectors", "/v1/connections"):
        cursor, pages = None, 0
        while True:
            body = ft.get(path, params={"limit": 1, **({"cursor": cursor} if cursor else {})}).json()
            assert set(body) == set(FT["success_envelope"]["keys"]) and body["code"] == "Success"
            data = body["data"]
            pages += 1
            if "next_cursor" not in data:
                assert set(data) == set(doc["last_page_keys"])
                break
            assert set(data) == set(doc["keys"])  # never the camelCase nextCursor
            cursor = data["next_cursor"]
        assert pages >= 2
    group = ft.get("/v1/groups").json()["data"]["items"][0]
    assert set(group) == set(FT["group"]["keys"])
    bad = ft.get("/v1/groups", params={"limit": 1001})
    assert bad.status_code == 400 and set(bad.json()) == set(FT["error_envelope"]["keys"])


def test_fivetran_connector_destination_and_schema_config_are_the_documented_objects(ft):
    doc = FT["connector"]
    for cid in (SALESFORCE, STRIPE, BLOCKED):
        c = ft.get(f"/v1/connectors/{cid}").json()["data"]
        assert set(c) == set(doc["keys"]), set(c) ^ set(doc["keys"])
        assert set(c["status"]) == set(doc["status_keys"])
        for field, values in doc["enums"].items():
            assert (c["status"].get(field) if field in doc["status_keys"] else c[field]) in values
        assert c["sync_frequency"] in doc["sync_frequency"]
        assert all(set(t) == set(doc["setup_test_keys"]) for t in c["setup_tests"])
    dest = ft.get("/v1/destinations/grp").json()["data"]
    assert set(dest) == set(FT["destination"]["keys"])
    sc = FT["schema_config"]
    for cid, handling in ((SALESFORCE, "ALLOW_ALL"), (BLOCKED, "BLOCK_ALL")):
        cfg = ft.get(f"/v1/connectors/{cid}/schemas").json()["data"]
        assert set(cfg) == set(sc["keys"]) and cfg["schema_change_handling"] == handling
        assert cfg["enable_new_by_default"] is (handling == "ALLOW_ALL")
        for schema in cfg["schemas"].values():
            assert set(schema) == set(sc["schema_keys"])
            for table in schema["tables"].values():
                assert set(table) == set(sc["table_keys"]) and table["sync_mode"] in sc["sync_mode"]
                for col in table["columns"].values():
                    assert set(col) == set(sc["column_keys"])  # no undocumented `type`
                    ps = col["enabled_patch_settings"]
                    assert set(ps) <= set(sc["patch_settings_keys"])
                    assert ps.get("reason_code", "OTHER") in sc["reason_codes"]
    cols = ft.get(f"/v1/connectors/{SALESFORCE}/schemas/salesforce/tables/account/columns").json()["data"]
    assert set(cols) == set(FT["columns_response"]["keys"])


def test_fivetran_schema_change_handling_can_be_changed_and_is_validated(ft):
    sc = FT["schema_config"]
    r = ft.patch(f"/v1/connections/{STRIPE}/schemas", json={"schema_change_handling": "ALLOW_COLUMNS"})
    assert r.status_code == 200 and r.json()["data"]["schema_change_handling"] == "ALLOW_COLUMNS"
    bad = ft.patch(f"/v1/connections/{STRIPE}/schemas", json={"schema_change_handling": "ALLOW_SOME"})
    assert bad.status_code == 400 and set(bad.json()) == set(FT["error_envelope"]["keys"])
    assert bad.json()["code"] == "InvalidInput" and "ALLOW_ALL, ALLOW_COLUMNS, BLOCK_ALL" in bad.json()["message"]
    assert ft.get(f"/v1/connectors/{STRIPE}/schemas").json()["data"]["schema_change_handling"] in sc[
        "schema_change_handling"]
    ft.patch(f"/v1/connections/{STRIPE}/schemas", json={"schema_change_handling": "ALLOW_ALL"})


def test_project_fivetran_client_reads_every_page_where_dagster_fivetran_stops_at_the_first(emu, monkeypatch):
    import dagster_fivetran.resources as dfr
    from dagster_fivetran import FivetranWorkspace

    import orchestrator.resources.fivetran as ours
    from orchestrator.resources.fivetran import FivetranWorkspaceResource

    monkeypatch.setattr(dfr, "DAGSTER_FIVETRAN_LIST_CONNECTIONS_FOR_GROUP_INDIVIDUAL_REQUEST_LIMIT", 1)
    monkeypatch.setattr(dfr, "FIVETRAN_API_BASE", emu.fivetran_url)
    stock = FivetranWorkspace(account_id="a", api_key=emu.fivetran_api_key, api_secret=emu.fivetran_api_secret)
    assert len(stock.get_client().list_connectors_for_group("grp")) == 1  # reads `nextCursor`: page 1 only
    monkeypatch.setattr(ours, "DAGSTER_FIVETRAN_LIST_CONNECTIONS_FOR_GROUP_INDIVIDUAL_REQUEST_LIMIT", 1)
    client = FivetranWorkspaceResource(account_id="a", api_key=emu.fivetran_api_key, api_secret=emu.fivetran_api_secret,
                                       api_base_url=emu.fivetran_url).get_client()
    assert {c["id"] for c in client.list_connectors_for_group("grp")} == {SALESFORCE, STRIPE}
    assert {g["id"] for g in client.paginate("groups", limit=1)} == {"grp", "grp_eu"}
    assert {g["id"] for g in client.get_groups()["items"]} == {"grp", "grp_eu"}
    assert FivetranWorkspaceResource.model_fields["disable_schedule_on_trigger"].default is False


def test_project_fivetran_client_stops_on_a_repeated_cursor():
    from orchestrator.resources.errors import ConnectorAPIError
    from orchestrator.resources.fivetran import ConfiguredFivetranClient

    client = ConfiguredFivetranClient(api_base="http://127.0.0.1:9", poll_interval=1, poll_timeout=1, api_key="k",
                                      api_secret="s", request_max_retries=0, request_retry_delay=0,
                                      request_backoff_factor=1.0, disable_schedule_on_trigger=False,
                                      retry_on_reschedule=False)
    client._make_and_handle_request = lambda **kw: {"items": [{"id": "x"}], "next_cursor": "same"}
    with pytest.raises(ConnectorAPIError, match="next_cursor 'same' returned twice"):
        client.paginate("groups")


# -- Airbyte ---------------------------------------------------------------------------------------


def test_airbyte_public_objects_are_the_documented_schemas(emu, ab):
    page = ab.get("/connections", params={"workspaceIds": emu.airbyte_workspace_id, "limit": 100}).json()
    assert_schema(page, "ConnectionsResponse")
    for c in page["data"]:
        assert_schema(c, "ConnectionResponse")
        assert_schema(c["schedule"], "ConnectionScheduleResponse")
        assert c["schedule"]["scheduleType"] in AB["ScheduleTypeWithBasicEnum"]["enum"]
        assert c["status"] in AB["ConnectionStatusEnum"]["enum"]
        assert c["nonBreakingSchemaUpdatesBehavior"] in AB["NonBreakingSchemaUpdatesBehaviorEnum"]["enum"]
        assert c["namespaceDefinition"] in AB["NamespaceDefinitionEnum"]["enum"]
        for stream in c["configurations"]["streams"]:
            assert_schema(stream, "StreamConfiguration")
            assert stream["syncMode"] in AB["ConnectionSyncModeEnum"]["enum"]
        dest = ab.get(f"/destinations/{c['destinationId']}").json()
        assert_schema(dest, "DestinationResponse")
        assert_schema(ab.get(f"/sources/{c['sourceId']}").json(), "SourceResponse")
    assert_schema(ab.get(f"/workspaces/{emu.airbyte_workspace_id}").json(), "WorkspaceResponse")


def test_airbyte_jobs_carry_their_start_time_and_the_documented_keys(emu, ab):
    create = {"connectionId": PRODUCT, "jobType": "sync"}
    assert set(create) == set(AB["JobCreateRequest"]["properties"])
    emu.inject_fault({"kind": "hang", "target": PRODUCT, "next_syncs": 1})
    try:
        job = ab.post("/jobs", json=create).json()
        assert_schema(job, "JobResponse")
        assert job["status"] in AB["JobStatusEnum"]["enum"] and job["jobType"] in AB["JobTypeEnum"]["enum"]
        assert "lastUpdatedAt" not in job  # absent until terminal (a null crashes dagster-airbyte)
        started = datetime.fromisoformat(job["startTime"].replace("Z", "+00:00"))
        assert abs((datetime.now(UTC) - started).total_seconds()) < 120
        conflict = ab.post("/jobs", json=create)
        body = assert_problem(conflict, "try-again-later")
        assert body["data"]["message"] == f"A sync is already running for: {PRODUCT}"
        cancelled = ab.delete(f"/jobs/{job['jobId']}").json()
        assert_schema(cancelled, "JobResponse")
        assert cancelled["status"] == "cancelled" and {"lastUpdatedAt", "duration"} <= set(cancelled)
    finally:
        emu.clear_faults(PRODUCT)
    job = ab.post("/jobs", json=create).json()
    deadline = time.monotonic() + 60
    while job["status"] not in ("succeeded", "failed", "cancelled") and time.monotonic() < deadline:
        time.sleep(0.1)
        job = ab.get(f"/jobs/{job['jobId']}").json()
    assert_schema(job, "JobResponse")
    assert job["status"] == "succeeded" and {"lastUpdatedAt", "duration"} <= set(job)
    listed = ab.get("/jobs", params={"connectionId": PRODUCT, "limit": 5}).json()
    assert_schema(listed, "JobsResponse") and listed["next"] == ""
    missing = ab.get("/jobs/999999")
    assert assert_problem(missing, "resource-not-found")["data"] == {"resourceType": "job", "resourceId": "999999"}


def test_airbyte_patch_takes_only_manual_or_cron(emu, ab):
    beh = SHAPES["airbyte_behaviour"]
    rejected = ab.patch(f"/connections/{PRODUCT}", json=beh["patch_schedule_rejected"]["body"])
    assert rejected.status_code == 422 and set(rejected.json()) == set(beh["patch_schedule_rejected"]["keys"])
    missing = ab.patch(f"/connections/{PRODUCT}", json=beh["patch_cron_missing_expression"]["body"])
    assert assert_problem(missing, "bad-request")["data"]["message"] == beh["patch_cron_missing_expression"]["message"]
    too_often = ab.patch(f"/connections/{PRODUCT}", json={"schedule": {"scheduleType": "cron",
                                                                       "cronExpression": "0 * * * * ?"}})
    assert "less than the one hour minimum" in assert_problem(too_often, "bad-request")["data"]["message"]
    ok = ab.patch(f"/connections/{PRODUCT}", json={"schedule": {"scheduleType": "cron",
                                                                "cronExpression": "0 0 */6 * * ?"}})
    assert ok.status_code == 200
    assert_schema(ok.json(), "ConnectionResponse")
    assert ok.json()["schedule"] == {"scheduleType": "cron", "cronExpression": "0 0 */6 * * ? UTC"}
    # unknown fields are ignored as the server's Jackson mapper does; manual clears the cron
    manual = ab.patch(f"/connections/{PRODUCT}", json={"schedule": {"scheduleType": "manual", "basicTiming": "x"}})
    assert manual.status_code == 200 and manual.json()["schedule"] == {"scheduleType": "manual"}
    assert set(beh["patch_cron_missing_expression"]["body"]) <= set(AB["ConnectionPatchRequest"]["properties"])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(minutes=st.one_of(st.none(), st.integers(min_value=1, max_value=60 * 24 * 60)))
def test_every_schedule_the_project_sends_is_accepted_and_read_back(emu, ab, minutes):
    from orchestrator.resources.airbyte import airbyte_schedule, same_cron

    body = {"schedule": airbyte_schedule(minutes)}
    assert set(body["schedule"]) <= set(AB["AirbyteApiConnectionSchedule"]["properties"])
    assert body["schedule"]["scheduleType"] in AB["ScheduleTypeEnum"]["enum"]
    r = ab.patch(f"/connections/{PRODUCT}", json=body)
    assert r.status_code == 200, (body, r.text)
    got = r.json()["schedule"]
    assert got["scheduleType"] == body["schedule"]["scheduleType"]
    if got["scheduleType"] == "cron":
        assert same_cron(got["cronExpression"], body["schedule"]["cronExpression"])


def test_the_execution_sensor_reschedules_airbyte_with_cron_and_observes_it(emu):
    from orchestrator.core.records import Action
    from orchestrator.resources.airbyte import AirbyteWorkspaceResource
    from sensors.execution import call_connector, observe_call

    client = AirbyteWorkspaceResource(
        rest_api_base_url=emu.airbyte_rest_url, configuration_api_base_url=emu.airbyte_config_url,
        workspace_id=emu.airbyte_workspace_id, client_id=emu.airbyte_client_id,
        client_secret=emu.airbyte_client_secret, request_retry_delay=0.01).get_client()
    sent = []
    real = client._single_request

    def recording(method, url, data=None, params=None, **kw):
        if method == "PATCH":
            sent.append(data)
        return real(method=method, url=url, data=data, params=params, **kw)

    client._single_request = recording
    action = Action(action_id="r1", type="reschedule_connector", connector=f"airbyte:{PRODUCT}", asset_keys=(),
                    reason="r", priority=0, tables={"sync_frequency": ("720",)})
    since = datetime.now(UTC) - timedelta(seconds=1)
    call_connector(action, {"airbyte": client})
    assert sent == [{"schedule": {"scheduleType": "cron", "cronExpression": "0 0 */12 * * ?"}}]
    assert set(sent[0]) <= set(AB["ConnectionPatchRequest"]["properties"])
    seen, evidence = observe_call(action, {"airbyte": client}, since)
    assert seen is True, evidence


def test_airbyte_cron_schedule_really_runs(tmp_path):
    from orchestrator.emulators.airbyte_engine import next_quartz_fire

    t = datetime(2026, 3, 2, 10, 17, tzinfo=UTC)  # a Monday
    assert next_quartz_fire("0 0 */6 * * ?", t) == datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    assert next_quartz_fire("0 30 7 ? * 2-6", t) == datetime(2026, 3, 3, 7, 30, tzinfo=UTC)  # MON-FRI in Quartz


# -- what the project reads from them -----------------------------------------------------------


def test_connector_settings_reach_the_planner(emu, ab):
    from orchestrator.core.decide import with_connector_settings
    from orchestrator.core.graph import CONNECTOR_TABLE, AssetGraph, AssetNode
    from orchestrator.core.records import Snapshot
    from orchestrator.planning import PlannerConfig
    from orchestrator.resources.airbyte import AirbyteWorkspaceResource
    from orchestrator.resources.fivetran import FivetranWorkspaceResource
    from orchestrator.snapshot import _SETTINGS_CACHE, ConnectorReader

    _SETTINGS_CACHE.clear()
    ab.patch(f"/connections/{PRODUCT}", json={"nonBreakingSchemaUpdatesBehavior": "ignore"})
    graph = AssetGraph([
        AssetNode(key="stripe_eu/payout", role=CONNECTOR_TABLE, kinds=frozenset({"fivetran"}), connector=f"fivetran:{BLOCKED}"),
        AssetNode(key="salesforce/account", role=CONNECTOR_TABLE, kinds=frozenset({"fivetran"}), connector=f"fivetran:{SALESFORCE}"),
        AssetNode(key="product/users", role=CONNECTOR_TABLE, kinds=frozenset({"airbyte"}), connector=f"airbyte:{PRODUCT}"),
    ])
    reader = ConnectorReader(
        fivetran=FivetranWorkspaceResource(account_id="a", api_key=emu.fivetran_api_key,
                                           api_secret=emu.fivetran_api_secret, api_base_url=emu.fivetran_url),
        airbyte=AirbyteWorkspaceResource(rest_api_base_url=emu.airbyte_rest_url,
                                         configuration_api_base_url=emu.airbyte_config_url,
                                         workspace_id=emu.airbyte_workspace_id, client_id=emu.airbyte_client_id,
                                         client_secret=emu.airbyte_client_secret))
    handling = reader.schema_change_handling(graph)
    assert handling == {f"fivetran:{BLOCKED}": "BLOCK_ALL", f"fivetran:{SALESFORCE}": "ALLOW_ALL",
                        f"airbyte:{PRODUCT}": "BLOCK_ALL"}, reader.errors
    ab.patch(f"/connections/{PRODUCT}", json={"nonBreakingSchemaUpdatesBehavior": "propagate_columns"})
    snap = Snapshot(taken_at=datetime.now(UTC), graph=graph, schema_change_handling=handling)
    cfg = with_connector_settings(None, snap)
    assert cfg.schema_change_handling[f"fivetran:{BLOCKED}"] == "BLOCK_ALL"
    mine = with_connector_settings(PlannerConfig(schema_change_handling={f"fivetran:{BLOCKED}": "ALLOW_ALL"}), snap)
    assert mine.schema_change_handling[f"fivetran:{BLOCKED}"] == "ALLOW_ALL"  # explicit config wins


def test_fivetran_syncs_started_outside_dagster_are_materialized_once(emu, ft):
    from orchestrator.core.graph import CONNECTOR_TABLE, AssetGraph, AssetNode
    from orchestrator.resources.fivetran import FivetranWorkspaceResource
    from orchestrator.snapshot import ConnectorReader
    from sensors import ProjectContext
    from sensors.failures import failures_tick

    graph = AssetGraph([AssetNode(key="stripe/customer", role=CONNECTOR_TABLE, kinds=frozenset({"fivetran"}),
                                  connector=f"fivetran:{STRIPE}")])
    ctx = ProjectContext(graph=graph, resolution=None)
    reader = ConnectorReader(fivetran=FivetranWorkspaceResource(
        account_id="a", api_key=emu.fivetran_api_key, api_secret=emu.fivetran_api_secret,
        api_base_url=emu.fivetran_url))
    before = ft.get(f"/v1/connectors/{STRIPE}").json()["data"]["succeeded_at"]
    assert ft.post(f"/v1/connections/{STRIPE}/sync", json={"force": True}).status_code == 200  # Fivetran's UI, say
    deadline = time.monotonic() + 30
    while ft.get(f"/v1/connectors/{STRIPE}").json()["data"]["succeeded_at"] == before:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    with dg.DagsterInstance.ephemeral() as instance:
        _, events, state = failures_tick(instance, ctx, {}, now=datetime.now(UTC), connectors=reader)
        mats = [e for e in events if isinstance(e, dg.AssetMaterialization)]
        assert [m.asset_key.to_user_string() for m in mats] == ["stripe/customer"]
        assert mats[0].metadata["triggered_by"].value != "dagster"
        _, again, _ = failures_tick(instance, ctx, state, now=datetime.now(UTC), connectors=reader)
        assert not [e for e in again if isinstance(e, dg.AssetMaterialization)]  # once per sync
