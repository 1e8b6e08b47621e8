"""``orchestrator.plain_clients`` (the dagster-free ``plan --dry-run``) against the emulators: the
same answers as the resources' dagster-fivetran / dagster-airbyte clients, page by page, and the
same sync records through ``ConnectorReader`` once faults are injected (a failed Airbyte job with
its failure reasons, a Fivetran connector whose credentials expired)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from emulator_fixtures import wait_airbyte_job

HUBSPOT = "7a3d9e15-4c2b-4f8e-b6a0-2e1c9d8f7b34"


@pytest.fixture(scope="module")
def clients(tmp_path_factory):
    from conftest import start_sandbox

    for box in start_sandbox(tmp_path_factory.mktemp("plain_clients_home")):
        from orchestrator.plain_clients import plain_airbyte_client, plain_fivetran_client
        from orchestrator.resources import airbyte_workspace, fivetran_workspace

        resource = (fivetran_workspace().process_config_and_initialize().get_client(),
                    airbyte_workspace().process_config_and_initialize().get_client())
        yield box, resource, (plain_fivetran_client(), plain_airbyte_client())


def test_fivetran_answers_match(clients):
    _, (ref, _), (plain, _) = clients
    groups = plain.get_groups()
    assert groups == ref.get_groups() and groups["items"]
    for group in groups["items"]:
        connectors = plain.list_connectors_for_group(group["id"])
        assert connectors == ref.list_connectors_for_group(group["id"])
    cid = connectors[0]["id"]
    assert plain.get_schema_config_for_connector(cid) == ref.get_schema_config_for_connector(cid)


def test_airbyte_answers_match_page_by_page(clients):
    box, (_, ref), (_, plain) = clients
    client = ref
    job = client.start_sync_job(HUBSPOT)["jobId"]
    for page in (100, 1):  # 1 item per page: every `next` link is followed
        plain.max_items_per_page = page
        for path, params in (("jobs", {"workspaceIds": plain.workspace_id}),
                             ("connections", {"workspaceIds": plain.workspace_id})):
            url = f"{plain.rest_api_base_url}/{path}"
            got = plain._paginated_request(method="GET", url=url, params=dict(params))
            assert got == ref._paginated_request(method="GET", url=url, params=dict(params)) and got
    url = f"{plain.configuration_api_base_url}/jobs/get"
    assert plain._single_request(method="POST", url=url, data={"id": job}) == \
        ref._single_request(method="POST", url=url, data={"id": job})
    wait_airbyte_job(ref, job, timeout_s=60)  # the connection is free again for the next test (a second sync is a 409)




def test_connector_reader_gives_the_same_syncs(clients):
    from orchestrator.core.graph import CONNECTOR_TABLE, AssetGraph, AssetNode
    from orchestrator.snapshot import ConnectorReader

    box, (ref_f, ref_a), (plain_f, plain_a) = clients
    emu = box.emulators
    fivetran_ids = [c["id"] for g in plain_f.get_groups()["items"] for c in plain_f.list_connectors_for_group(g["id"])]
    airbyte_ids = [c["connectionId"] for c in plain_a._paginated_request(
        method="GET", url=f"{plain_a.rest_api_base_url}/connections", params={"workspaceIds": plain_a.workspace_id})]
    graph = AssetGraph([AssetNode(f"f/{c}", role=CONNECTOR_TABLE, connector=f"fivetran:{c}") for c in fivetran_ids]
                       + [AssetNode(f"a/{c}", role=CONNECTOR_TABLE, connector=f"airbyte:{c}") for c in airbyte_ids])
    emu.inject_fault({"kind": "sync_failure", "target": HUBSPOT, "next_syncs": 1, "attempts": 1,
                      "code": "transient_error", "failure_origin": "source", "retryable": True,
                      "message": "HubSpot API returned 502 Bad Gateway (upstream timeout), try again"})
    emu.inject_fault({"kind": "expired_credentials", "target": "dapper_ledger", "next_syncs": 1})
    try:
        job = ref_a.start_sync_job(HUBSPOT)["jobId"]
        stripe = "dapper_ledger" if "dapper_ledger" in fivetran_ids else fivetran_ids[0]
        ref_f.start_sync(stripe)
        deadline = time.monotonic() + 30

        def settled() -> bool:  # both syncs over: the two readers then see the same state
            conn = ref_f.get_connector_details(stripe)
            return (ref_a.get_job_details(job)["status"] in ("failed", "succeeded", "cancelled")
                    and (conn.get("status") or {}).get("sync_state") != "syncing")

        while time.monotonic() < deadline and not settled():
            time.sleep(0.2)
    finally:
        emu.clear_faults(HUBSPOT)
    since = datetime.now(UTC) - timedelta(days=2)
    ours = ConnectorReader(fivetran=plain_f, airbyte=plain_a)
    theirs = ConnectorReader(fivetran=ref_f, airbyte=ref_a)
    a, b = ours.syncs(graph, since), theirs.syncs(graph, since)
    assert not ours.errors and not theirs.errors
    assert a == b
    assert any(s.status == "failed" and s.connector == f"airbyte:{HUBSPOT}" and "502" in (s.error_message or "")
               for s in a)
    assert ours.schema_change_handling(graph) == theirs.schema_change_handling(graph)


def test_sandbox_credentials_match_the_resources():
    import orchestrator.plain_clients as plain
    import orchestrator.resources as resources

    for name in ("SANDBOX_FIVETRAN_KEY", "SANDBOX_FIVETRAN_SECRET", "SANDBOX_AIRBYTE_CLIENT_ID",
                 "SANDBOX_AIRBYTE_CLIENT_SECRET"):
        assert getattr(plain, name) == getattr(resources, name)
    assert plain.REAL_FIVETRAN_API_BASE == resources.REAL_FIVETRAN_API_BASE


def test_tls_is_verified_for_every_https_url():
    from orchestrator.plain_clients import PlainAirbyteClient, PlainFivetranClient, _verify

    assert _verify("https://api.fivetran.com") and _verify("HTTPS://x") and not _verify("http://127.0.0.1:8701")
    mixed = PlainAirbyteClient("http://127.0.0.1:1/api/public/v1", "https://cloud.airbyte.com/api/v1", "w", "i", "s")
    assert mixed._http._transport._pool._ssl_context.verify_mode.name == "CERT_REQUIRED"
    real = PlainFivetranClient("https://api.fivetran.com", "k", "s")
    assert real._http._transport._pool._ssl_context.verify_mode.name == "CERT_REQUIRED"
