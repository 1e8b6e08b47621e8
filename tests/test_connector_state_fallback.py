"""When a connector API is unreachable the code location still loads, from the last known state."""

import socket

import dagster as dg
import pytest

from orchestrator.core.graph import CONNECTOR_TABLE
from orchestrator.project_graph import asset_graph_from_definitions
from orchestrator.resources.connector_state import LOAD_OUTCOMES
from orchestrator.settings import get_settings


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"  # nothing listens there once the socket is closed


@pytest.fixture
def apis_down(monkeypatch):
    dead = closed_port_url()
    monkeypatch.setenv("FIVETRAN_API_BASE_URL", dead)
    monkeypatch.setenv("AIRBYTE_REST_API_BASE_URL", f"{dead}/api/public/v1")
    monkeypatch.setenv("AIRBYTE_CONFIGURATION_API_BASE_URL", f"{dead}/api/v1")
    LOAD_OUTCOMES.clear()
    yield
    LOAD_OUTCOMES.clear()


def test_loads_last_known_state_and_says_so(sandbox, project_defs, apis_down):
    from orchestrator.definitions import build_definitions

    live_tables = {n.key for n in asset_graph_from_definitions(project_defs).by_role(CONNECTOR_TABLE)}
    defs = build_definitions()  # project_defs saved the state while the APIs were up
    graph = asset_graph_from_definitions(defs)
    assert {n.key for n in graph.by_role(CONNECTOR_TABLE)} == live_tables
    for key in (["stripe", "invoice"], ["product", "events"]):
        state = defs.resolve_asset_graph().get(dg.AssetKey(key)).metadata["connector_state"]
        assert state.startswith("last known state from") and "API unreachable" in state


def test_without_saved_state_connectors_are_left_out_but_dbt_loads(
    sandbox, apis_down, monkeypatch, tmp_path, caplog
):
    from orchestrator.definitions import build_definitions

    monkeypatch.setenv("ORCHESTRATOR_HOME", str(tmp_path))
    get_settings.cache_clear()
    try:
        defs = build_definitions()
    finally:
        get_settings.cache_clear()
    graph = asset_graph_from_definitions(defs)
    assert not graph.by_role(CONNECTOR_TABLE)
    assert "fct_mrr" in graph
    assert "no last known state" in caplog.text
    # policies selecting the unloaded connector kinds are disabled; the others still govern
    status = defs.metadata["sla_policies/status"]
    assert str(getattr(status, "value", status)) == "ok", defs.metadata


def test_corrupted_state_is_set_aside_and_treated_as_absent(sandbox, project_defs, apis_down, caplog):
    from orchestrator.definitions import build_definitions

    state_dir = get_settings().home / "connector_state"
    files = sorted(state_dir.glob("*.json"))
    assert files, "project_defs saved the state while the APIs were up"
    fivetran = next(f for f in files if f.name.startswith("fivetran-"))
    good = fivetran.read_text()
    fivetran.write_text(good[: len(good) // 3])  # truncated mid-write
    try:
        defs = build_definitions()  # loads: Airbyte from its state, Fivetran left out
        graph = asset_graph_from_definitions(defs)
        tables = {n.key for n in graph.by_role(CONNECTOR_TABLE)}
        assert "product/events" in tables and "stripe/invoice" not in tables
        assert "fct_mrr" in graph
        aside = list(state_dir.glob(f"{fivetran.name}.corrupt-*"))
        assert len(aside) == 1 and not fivetran.exists()
        assert "was corrupted (moved aside" in caplog.text
    finally:
        fivetran.write_text(good)
        for f in state_dir.glob("*.corrupt-*"):
            f.unlink()

