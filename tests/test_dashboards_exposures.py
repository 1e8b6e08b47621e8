"""Issue 14 item 2: dashboards from dbt exposures on any warehouse. Counting rows in the DuckDB
file is only the embedded default's refresh; on Snowflake/BigQuery a refresh records when the
exposure's models were materialized, with no warehouse query."""

import dagster as dg
import pytest

from assets.dashboards import build_dashboard_assets, dashboard_mode
from assets.dbt import ProjectDbtTranslator


def model(name, schema="marts"):
    return {"unique_id": f"model.team.{name}", "resource_type": "model", "name": name, "schema": schema,
            "alias": name, "fqn": ["team", schema, name], "config": {"meta": {}}, "meta": {}, "tags": [],
            "package_name": "team", "original_file_path": f"models/{name}.sql", "description": ""}


def manifest(adapter):
    nodes = {m["unique_id"]: m for m in (model("fct_orders"), model("dim_customers"))}
    exposure = {"unique_id": "exposure.team.sales", "name": "sales", "type": "dashboard",
                "owner": {"name": "Sales Ops", "email": "sales-ops@example.com"},
                "url": "https://bi.example.com/d/1", "maturity": "high",
                "depends_on": {"nodes": ["model.team.fct_orders", "model.team.dim_customers"]}}
    return {"metadata": {"adapter_type": adapter, "dbt_schema_version":
                         "https://schemas.getdbt.com/dbt/manifest/v12.json"},
            "nodes": nodes, "exposures": {exposure["unique_id"]: exposure}, "sources": {}}


@pytest.mark.parametrize("adapter,setting,mode", [
    ("duckdb", "auto", "duckdb"), ("snowflake", "auto", "exposures"), ("bigquery", "auto", "exposures"),
    ("duckdb", "exposures", "exposures"), ("snowflake", "off", "off"),
])
def test_the_mode_follows_the_adapter_unless_set(adapter, setting, mode):
    assert dashboard_mode(manifest(adapter), setting) == mode


def test_off_or_no_exposures_builds_no_dashboard_asset():
    assert build_dashboard_assets(manifest("snowflake"), ProjectDbtTranslator(), mode="off") is None
    empty = {**manifest("snowflake"), "exposures": {}}
    assert build_dashboard_assets(empty, ProjectDbtTranslator(), mode="auto") is None


def test_a_snowflake_project_refreshes_its_dashboard_from_the_models_materializations():
    dash = build_dashboard_assets(manifest("snowflake"), ProjectDbtTranslator(), mode="auto")
    key = dg.AssetKey(["dashboard", "sales"])
    spec = next(iter(dash.specs))
    assert spec.key == key and {d.asset_key for d in spec.deps} == {dg.AssetKey("fct_orders"),
                                                                   dg.AssetKey("dim_customers")}
    assert spec.owners == ["sales-ops@example.com"] and dash.node_def.pool is None  # no warehouse pool
    with dg.DagsterInstance.ephemeral() as instance:
        # before its models exist the dashboard cannot refresh, and says which model is missing
        instance.report_runless_asset_event(dg.AssetMaterialization("fct_orders"))
        failed = dg.materialize([dash], instance=instance, raise_on_error=False)
        assert not failed.success
        err = failed.get_step_failure_events()[0].step_failure_data.user_failure_data.description
        assert "dim_customers never materialized" in err
        instance.report_runless_asset_event(dg.AssetMaterialization("dim_customers"))
        done = dg.materialize([dash], instance=instance)
        assert done.success
        (mat,) = done.asset_materializations_for_node("dashboard_extracts")
        md = mat.metadata
        assert md["refresh"].value == "exposures"
        stamps = {k: v.value for k, v in md.items() if k.startswith("upstream/")}
        assert set(stamps) == {"upstream/fct_orders", "upstream/dim_customers"}
        assert md["oldest_upstream"].value == min(stamps.values())
        assert instance.get_latest_materialization_event(key) is not None


def test_the_duckdb_default_keeps_the_extract_in_the_warehouse_pool():
    from assets.dbt import WAREHOUSE_POOL

    dash = build_dashboard_assets(manifest("duckdb"), ProjectDbtTranslator(), mode="auto")
    assert dash.node_def.pool == WAREHOUSE_POOL
