"""The snapshot's column reads of a SQL event log give what Dagster's public API gives."""

from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

import orchestrator.snapshot as snapshot
from orchestrator.core.graph import AssetGraph, AssetNode


def _mat(instance, key, partition=None):
    instance.report_runless_asset_event(
        dg.AssetMaterialization(dg.AssetKey.from_user_string(key), partition=partition))


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst


def test_column_reads_match_public_api(instance, monkeypatch):
    graph = AssetGraph([
        AssetNode("src/a", role="connector_table"),
        AssetNode("b", role="dbt_model", upstream=("src/a",)),
        AssetNode("c", role="dbt_model", upstream=("b",)),
        AssetNode("wiped_only", role="dbt_model"),
        AssetNode("wiped_again", role="dbt_model"),
        AssetNode("observed", role="dbt_model"),
        AssetNode("never", role="dbt_model"),
    ])
    for key in ("src/a", "b", "c", "wiped_only", "wiped_again", "observed"):
        _mat(instance, key)
    _mat(instance, "b", partition="2024-01-01")
    _mat(instance, "src/a")
    instance.wipe_assets([dg.AssetKey("wiped_only"), dg.AssetKey("wiped_again")])
    _mat(instance, "wiped_again")
    instance.report_runless_asset_event(dg.AssetObservation(dg.AssetKey("observed")))

    assert snapshot._sql_storage(instance) is not None
    since = datetime.now(UTC) - timedelta(days=1)
    reader = snapshot.InstanceReader(instance)
    fast_last = snapshot.read_last_success(instance, graph.keys)
    fast_mats = reader.materializations(since, graph, {})
    monkeypatch.setattr(snapshot, "_sql_storage", lambda inst: None)
    api_last = snapshot.read_last_success(instance, graph.keys)
    api_mats = reader.materializations(since, graph, {})

    assert fast_last == api_last
    assert set(fast_last) == {"src/a", "b", "c", "wiped_again", "observed"}
    assert fast_mats == api_mats
    mats = fast_mats[0]
    assert [m.asset_key for m in mats].count("src/a") == 2
    assert any(m.partition == "2024-01-01" for m in mats)
    assert all(m.run_id is None for m in mats)
