"""Connector actions the execution sensor takes, against the emulators through the real clients."""

import time

import httpx
import pytest

from orchestrator.core.records import Action
from orchestrator.resources import airbyte_workspace, fivetran_workspace
from sensors.execution import call_connector

pytestmark = pytest.mark.slow

PRODUCT = "1f0c6a2e-8d4b-4e7a-9c31-0b5d7e8f9a12"


def fivetran():
    return fivetran_workspace().process_config_and_initialize().get_client()  # resolves EnvVar secrets


def airbyte():
    return airbyte_workspace().process_config_and_initialize().get_client()


def clients():
    return {"fivetran": fivetran(), "airbyte": airbyte()}


def test_airbyte_table_resync_resets_only_that_stream(sandbox):
    airbyte().sync_and_poll(connection_id=PRODUCT)
    landing = sandbox.settings.landing_dir / "product"
    events_before = sorted((landing / "events").glob("*.parquet"))

    action = Action("act-resync-users", "resync_table", "schema drift on product/users",
                    connector=f"airbyte:{PRODUCT}", tables={"product": ("users",)})
    result = call_connector(action, clients())
    assert result == {"system": "airbyte", "connector": PRODUCT, "call": "resync_table"}

    state = httpx.get(f"{sandbox.emulators.airbyte_base_url}/_emulator/state").json()
    reset = [j for j in state["jobs"] if j["connection_id"] == PRODUCT and j["job_type"] == "reset"][-1]
    assert reset["streams"] == ["users"]
    deadline = time.monotonic() + 20
    while list((landing / "users").glob("*.parquet")) and time.monotonic() < deadline:
        time.sleep(0.2)
        httpx.get(f"{sandbox.emulators.airbyte_base_url}/_emulator/state")  # lets the emulator advance
    assert not list((landing / "users").glob("*.parquet"))
    assert sorted((landing / "events").glob("*.parquet")) == events_before


def test_fivetran_table_resync_and_pause(sandbox):
    action = Action("act-resync-invoice", "resync_table", "schema drift on stripe/invoice",
                    connector="fivetran:dapper_ledger", tables={"stripe": ("invoice",)})
    assert call_connector(action, clients())["call"] == "resync_table"
    pause = Action("act-pause", "pause_connector", "auth expired", connector="fivetran:dapper_ledger")
    call_connector(pause, clients())
    details = fivetran().get_connector_details("dapper_ledger")
    assert details["paused"] is True
    call_connector(Action("act-resume", "resume_connector", "fixed", connector="fivetran:dapper_ledger"), clients())
    assert fivetran().get_connector_details("dapper_ledger")["paused"] is False
