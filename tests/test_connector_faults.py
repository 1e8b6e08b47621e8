"""What a user sees in Dagster when the connector misbehaves, against the emulators over HTTP."""

import time

import dagster as dg
import httpx
import pytest

from assets.airbyte import build_airbyte_assets
from orchestrator.resources import airbyte_workspace

pytestmark = pytest.mark.slow

STRIPE = "dapper_ledger"  # Fivetran
HUBSPOT = "7a3d9e15-4c2b-4f8e-b6a0-2e1c9d8f7b34"  # Airbyte


@pytest.fixture(scope="module")
def instance(tmp_path_factory):
    with dg.DagsterInstance.local_temp(str(tmp_path_factory.mktemp("dagster_home"))) as inst:
        yield inst


@pytest.fixture(autouse=True)
def no_leftover_faults(sandbox):
    yield
    sandbox.emulators.clear_faults()


def materialize(project_defs, instance, *keys):
    job = project_defs.resolve_implicit_global_asset_job_def()
    return job.execute_in_process(
        instance=instance, asset_selection=[dg.AssetKey(k) for k in keys], raise_on_error=False
    )


def step_failure(result) -> str:
    failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert failures, "expected the run to fail"
    error = failures[0].event_specific_data.error
    return error.message


def test_rate_limit_burst_is_retried_and_the_run_succeeds(sandbox, project_defs, instance):
    sandbox.emulators.inject_fault({"kind": "rate_limit", "target": STRIPE, "requests": 2, "retry_after_s": 1})
    result = materialize(project_defs, instance, ["stripe", "plan"])
    assert result.success


def test_5xx_storm_fails_the_run_after_the_clients_retries(sandbox, project_defs, instance):
    sandbox.emulators.inject_fault({"kind": "server_error", "target": STRIPE, "requests": 20, "status": 503})
    result = materialize(project_defs, instance, ["stripe", "plan"])
    assert not result.success
    message = step_failure(result)
    assert "HTTP 503" in message and "[transient]" in message  # the status code, typed, not "Max retries"


def test_failed_fivetran_sync_carries_the_vendor_message(sandbox, project_defs, instance):
    sandbox.emulators.inject_fault({"kind": "sync_failure", "target": STRIPE, "next_syncs": 1})
    result = materialize(project_defs, instance, ["stripe", "plan"])
    message = step_failure(result)
    assert "Sync for connector 'dapper_ledger' failed!" in message
    assert "Stripe API returned HTTP 500" in message  # the service's own words, not just "failed"


def test_failed_airbyte_sync_carries_the_failure_reason(sandbox, project_defs, instance):
    sandbox.emulators.inject_fault({"kind": "sync_failure", "target": HUBSPOT, "next_syncs": 1})
    result = materialize(project_defs, instance, ["hubspot", "campaigns"])
    message = step_failure(result)
    assert "Job failed" in message
    assert "[source/" in message and "502 Server Error" in message


def test_expired_credentials_give_a_clear_error_until_repaired(sandbox, project_defs, instance):
    sandbox.emulators.inject_fault({"kind": "expired_credentials", "target": STRIPE, "next_syncs": 1})
    first = materialize(project_defs, instance, ["stripe", "plan"])
    assert not first.success
    second = materialize(project_defs, instance, ["stripe", "plan"])
    message = step_failure(second)
    assert "cannot be synced as it has not been setup" in message  # broken before it even starts
    assert "reconnect" in message.lower() or "401" in message
    httpx.post(f"{sandbox.emulators.fivetran_url}/_emulator/repair/{STRIPE}").raise_for_status()
    assert materialize(project_defs, instance, ["stripe", "plan"]).success


def test_hung_airbyte_sync_is_cancelled_at_the_timeout(sandbox, project_defs, instance, monkeypatch):
    monkeypatch.setenv("AIRBYTE_POLL_TIMEOUT", "2")
    airbyte = airbyte_workspace()
    sandbox.emulators.inject_fault({"kind": "hang", "target": HUBSPOT, "next_syncs": 1})
    assets_def = next(a for a in build_airbyte_assets(airbyte) if dg.AssetKey(["hubspot", "campaigns"]) in a.keys)
    started = time.monotonic()
    result = dg.materialize([assets_def], instance=instance, resources={"airbyte": airbyte}, raise_on_error=False)
    assert not result.success
    assert time.monotonic() - started < 20  # not waited on forever
    assert "not ready after the timeout" in step_failure(result)
    state = httpx.get(f"{sandbox.emulators.airbyte_base_url}/_emulator/state").json()
    jobs = [j for j in state["jobs"] if j["connection_id"] == HUBSPOT]
    assert jobs[-1]["status"] == "cancelled"
