"""Materializing for real: connectors sync over HTTP, rows land, dbt builds on DuckDB, dashboards refresh."""

import json
import time
from datetime import UTC, datetime

import dagster as dg
import duckdb
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def instance(tmp_path_factory):
    with dg.DagsterInstance.local_temp(str(tmp_path_factory.mktemp("dagster_home"))) as inst:
        yield inst


@pytest.fixture(scope="module")
def refreshed(project_defs, instance, sandbox):
    """What "Materialize all" on the global lineage launches (tests/test_materialize_all.py: one
    click, every executable asset; refresh_everything's assets and the dashboards reading the
    daily-partitioned model), run before any day of that model is built."""
    with duckdb.connect(str(sandbox.settings.duckdb_path)) as con:
        con.execute("drop table if exists marts.fct_product_events_daily")
    graph = project_defs.resolve_asset_graph()
    everything = [k for k in graph.get_all_asset_keys() if graph.get(k).is_executable]
    started = time.monotonic()
    result = project_defs.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=instance, asset_selection=everything, raise_on_error=False
    )
    elapsed = time.monotonic() - started
    print(f"\nmaterialize all: {elapsed:.1f} s")
    return result, elapsed


def test_refresh_everything_succeeds(refreshed, project_defs):
    result, _ = refreshed
    failures = [e.message for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert result.success, failures
    materialized = {e.asset_key for e in result.get_asset_materialization_events()}
    expected = set(project_defs.resolve_job_def("refresh_everything").asset_layer.selected_asset_keys)
    assert expected <= materialized


def test_rows_landed_as_parquet_for_every_table(refreshed, sandbox):
    landing = sandbox.settings.landing_dir
    from orchestrator.emulators.scenario import load_scenario

    for _, schema, table in load_scenario(sandbox.settings.scenario).landing_tables():
        files = list((landing / schema / table).glob("*.parquet"))
        assert files, f"nothing landed for {schema}.{table}"
        rows = duckdb.connect().execute(f"select count(*) from read_parquet('{landing / schema / table}/*.parquet')").fetchone()[0]
        assert rows > 0


def test_dbt_tests_ran_and_passed(refreshed):
    result, _ = refreshed
    evaluations = [
        e.event_specific_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    ]
    assert len(evaluations) >= 20
    # dbt tests configured `severity: warn` surface as WARN checks; none may fail at ERROR.
    failed = [
        f"{ev.asset_key.to_user_string()}:{ev.check_name}"
        for ev in evaluations
        if not ev.passed and ev.severity == dg.AssetCheckSeverity.ERROR
    ]
    assert not failed


def test_marts_hold_data_and_dashboards_have_extracts(refreshed, sandbox):
    with duckdb.connect(str(sandbox.settings.duckdb_path), read_only=True) as con:
        tables = {r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()}
        assert {"fct_revenue_daily", "dim_accounts", "fct_support_tickets"} <= tables
        assert con.execute("select count(*) from marts.dim_accounts").fetchone()[0] > 0
    for name in ("executive_revenue", "sales_pipeline", "support_health", "marketing_performance"):
        extract = json.loads((sandbox.home / "dashboards" / f"{name}.json").read_text())
        assert sum(extract["row_counts"].values()) > 0, name


def test_a_dashboard_reading_the_daily_model_refreshes_before_its_first_day(refreshed, sandbox):
    extract = json.loads((sandbox.home / "dashboards" / "product_engagement.json").read_text())
    assert extract["row_counts"]["fct_product_events_daily"] == 0
    assert extract["not_built"] == [
        "fct_product_events_daily: no day built yet (the daily_partitioned_models job builds it one day per run)"]


def test_partitioned_model_builds_one_day(refreshed, project_defs, instance, sandbox):
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    result = project_defs.resolve_job_def("daily_partitioned_models").execute_in_process(
        instance=instance, partition_key=today
    )
    assert result.success
    with duckdb.connect(str(sandbox.settings.duckdb_path), read_only=True) as con:
        days = con.execute("select distinct cast(event_date as date) from marts.fct_product_events_daily").fetchall()
    assert [str(d[0]) for d in days] == [today]
    # an op job recording the external asset: the day shows as materialized, the dbt tests as checks
    model = dg.AssetKey("fct_product_events_daily")
    assert instance.get_materialized_partitions(model) == {today}
    checks = [e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    assert {c.asset_key for c in checks} == {model} and len(checks) >= 5 and all(c.passed for c in checks)

    # The dashboard that reads the partitioned model refreshes once the day is built.
    dashboard = dg.AssetKey(["dashboard", "product_engagement"])
    result = project_defs.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=instance, asset_selection=[dashboard]
    )
    assert result.success
    assert (sandbox.home / "dashboards" / "product_engagement.json").exists()


def test_the_daily_models_dbt_tests_execute_as_checks(refreshed, project_defs, instance):
    """*Execute checks* on the partitioned model: its dbt tests over the days built so far (the
    test above built one; tests run in file order)."""
    model = dg.AssetKey("fct_product_events_daily")
    keys = [k for k in project_defs.resolve_asset_graph().asset_check_keys if k.asset_key == model]
    assert len(keys) >= 5
    job = project_defs.resolve_implicit_global_asset_job_def().get_subset(
        asset_selection=set(), asset_check_selection=set(keys))
    result = job.execute_in_process(instance=instance, raise_on_error=False)
    evaluations = [e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    assert result.success
    assert {(e.asset_key, e.check_name) for e in evaluations} == {(k.asset_key, k.name) for k in keys}
    assert all(e.passed for e in evaluations)

