"""The failure sensor on a real dbt failure.

A world of its own (emulators, landing folder, DuckDB warehouse, Dagster instance) so the schema
change it injects never reaches the session sandbox: Stripe's first sync lands ``customer``
without ``email``; ``dbt build`` of ``stg_stripe__customers`` and everything downstream fails on
DuckDB's Binder Error; the failure sensor reports that error on the staging model, diagnosed
schema_drift, and the models dbt skipped because of it linked to it, not diagnosed again.
"""

from datetime import UTC, datetime

import dagster as dg
import pytest

from orchestrator.core.graph import CONNECTOR_TABLE, DBT_MODEL
from orchestrator.dagster_policies import load_resolution
from orchestrator.project_graph import asset_graph_from_definitions
from sensors import ProjectContext

STAGING = "stg_stripe__customers"


def _graph():
    from orchestrator.core.graph import AssetGraph, AssetNode

    return AssetGraph([
        AssetNode("stripe/customer", role=CONNECTOR_TABLE, connector="fivetran:dapper_ledger"),
        AssetNode("stg_customers", role=DBT_MODEL, upstream=("stripe/customer",),
                  dbt_name="model.analytics.stg_customers"),
        AssetNode("dim_accounts", role=DBT_MODEL, upstream=("stg_customers",),
                  dbt_name="model.analytics.dim_accounts"),
        AssetNode("fct_mrr", role=DBT_MODEL, upstream=("dim_accounts",), dbt_name="model.analytics.fct_mrr"),
    ])


def test_failing_dbt_test_is_data_quality_on_the_tested_asset_and_skips_are_linked():
    from orchestrator.assessment import diagnose_failures
    from orchestrator.assessment.dbt_results import node_failures_from_run_results

    graph = _graph()
    test_uid = "test.analytics.unique_dim_accounts_account_id.bfd6344edc"
    results = {"results": [
        {"unique_id": "model.analytics.stg_customers", "status": "success", "message": "OK"},
        {"unique_id": "model.analytics.dim_accounts", "status": "success", "message": "OK"},
        {"unique_id": test_uid, "status": "fail", "failures": 3,
         "message": "Got 3 results, configured to fail if != 0"},
        {"unique_id": "model.analytics.fct_mrr", "status": "skipped", "message": None},
        {"unique_id": "test.analytics.not_null_fct_mrr_mrr.a571fc7a77", "status": "skipped"},
    ]}
    manifest = {"nodes": {test_uid: {"attached_node": "model.analytics.dim_accounts",
                                     "depends_on": {"nodes": ["model.analytics.dim_accounts"]}}}}
    at = datetime.now(UTC)
    recs = node_failures_from_run_results(results, graph, run_id="r1", at=at, manifest=lambda: manifest)
    by_key = {r.asset_key: r for r in recs}
    assert set(by_key) == {"dim_accounts", "fct_mrr"}
    assert by_key["dim_accounts"].message.startswith("Failure in test unique_dim_accounts_account_id on dim_accounts")
    diagnosed = {d.failure.asset_key: d for d in diagnose_failures(recs, graph)}
    assert diagnosed["dim_accounts"].category == "data_quality" and diagnosed["dim_accounts"].root_failure_id is None
    assert diagnosed["fct_mrr"].root_failure_id == f"dbt:r1:{test_uid}"
    assert diagnosed["fct_mrr"].category == "data_quality"
    # nothing failed: skipped nodes (a --fail-fast or a cancelled build) are no failures
    assert node_failures_from_run_results({"results": results["results"][-2:]}, graph, run_id="r1", at=at) == []


DAGSTER_DBT_ERROR = """The dbt CLI process with command

`dbt build --select analytics.staging.stg_customers analytics.marts.dim_accounts`

failed with exit code `1`. Check the stdout in the Dagster compute logs for the full information about \
the error, or view the dbt debug log: /nowhere/target/dbt_models-e213223-447d2ff/dbt.log.

Errors parsed from dbt logs:

1 of 48 ERROR creating sql view model staging.stg_customers ............ [\x1b[31mERROR\x1b[0m in 0.05s]

\x1b[31mFailure in model stg_customers (models/staging/stg_customers.sql)\x1b[0m

  Runtime Error in model stg_customers (models/staging/stg_customers.sql)
  Binder Error: Referenced column "name" not found in FROM clause!

\x1b[31mFailure in test unique_dim_accounts_account_id (models/marts/_core.yml)\x1b[0m
  Got 3 results, configured to fail if != 0

Stack Trace:
  File "x.py", line 1
"""


def test_dbt_errors_from_the_step_message_when_run_results_are_out_of_reach(tmp_path):
    from orchestrator.assessment import diagnose_failures
    from orchestrator.assessment.dbt_results import node_failures_from_message, target_path_from_message
    from orchestrator.snapshot import find_run_results

    graph = _graph()
    assert target_path_from_message(DAGSTER_DBT_ERROR) == "/nowhere/target/dbt_models-e213223-447d2ff"
    assert find_run_results(DAGSTER_DBT_ERROR, [tmp_path], "dbt_models", "e213223f-aaaa") is None
    # the named folder is gone (another machine ran it): the target root of the project is searched
    found = tmp_path / "dbt_models-e213223-0000000" / "run_results.json"
    found.parent.mkdir()
    found.write_text("{}")
    assert find_run_results(DAGSTER_DBT_ERROR, [tmp_path], "dbt_models", "e213223f-aaaa") == found

    recs = node_failures_from_message(DAGSTER_DBT_ERROR, graph, run_id="r2", at=datetime.now(UTC))
    by_key = {r.asset_key: r for r in recs}
    assert set(by_key) == {"stg_customers", "dim_accounts"}
    assert "\x1b" not in by_key["stg_customers"].message and "Stack Trace" not in by_key["stg_customers"].message
    assert "Binder Error" in by_key["stg_customers"].message
    cats = {d.failure.asset_key: d.category for d in diagnose_failures(recs, graph)}
    assert cats == {"stg_customers": "schema_drift", "dim_accounts": "schema_drift"}  # linked to its root


@pytest.fixture(scope="module")
def world(sandbox, tmp_path_factory):
    from orchestrator.emulators.server import start_emulators
    from orchestrator.resources.fivetran import FivetranWorkspaceResource

    root = tmp_path_factory.mktemp("dbt_failure_world")
    handle = start_emulators(sandbox.settings.scenario, root / "state", root / "landing",
                             time_scale=0.05, auto_sync=False)
    try:
        fivetran = FivetranWorkspaceResource(
            account_id="sandbox", api_key=handle.fivetran_api_key, api_secret=handle.fivetran_api_secret,
            api_base_url=handle.fivetran_url, poll_interval=0.2, poll_timeout=30,
        )
        yield handle, fivetran, root
    finally:
        handle.stop()


@pytest.fixture(scope="module")
def instance(tmp_path_factory):
    with dg.DagsterInstance.local_temp(str(tmp_path_factory.mktemp("dagster_home_dbt_failures"))) as inst:
        yield inst


def _run_sensor(project_defs, instance, fivetran):
    graph = asset_graph_from_definitions(project_defs)
    ctx = ProjectContext(graph=graph, resolution=load_resolution(graph, []),
                         asset_specs={s.key: s for a in project_defs.assets for s in getattr(a, "specs", [])})
    from sensors.failures import build_failure_sensor

    context = dg.build_sensor_context(instance=instance, definitions=project_defs,
                                      resources={"fivetran": fivetran, "airbyte": project_defs.resources["airbyte"]})
    return build_failure_sensor(ctx)(context)


@pytest.mark.slow
def test_dbt_model_failure_carries_dbt_error_on_its_asset(project_defs, sandbox, world, instance, monkeypatch):
    from orchestrator.store import open_store

    handle, fivetran, root = world
    graph = asset_graph_from_definitions(project_defs)
    stripe = sorted(k for k in graph.keys if k.startswith("stripe/") and graph.node(k).role == CONNECTOR_TABLE)
    downstream = sorted(k for k in graph.downstream_closure(STAGING)
                        if graph.node(k).role == DBT_MODEL and graph.node(k).partitioning is None)
    assert downstream
    # Stripe's first sync in this world lands customer without `name` (stg_stripe__customers reads it)
    handle.inject_fault({"kind": "schema_change", "target": "dapper_ledger", "next_syncs": 1,
                         "table": "customer", "change": "drop_column", "column": "name"})
    monkeypatch.setenv("ORCHESTRATOR_LANDING_DIR", str(handle.landing_dir))
    monkeypatch.setenv("ORCHESTRATOR_DUCKDB_PATH", str(root / "analytics.duckdb"))
    wanted = {dg.AssetKey.from_user_string(k) for k in [*stripe, STAGING, *downstream]}
    assets = [a for a in project_defs.assets if isinstance(a, dg.AssetsDefinition) and wanted & set(a.keys)]
    result = dg.materialize(assets, selection=sorted(wanted), instance=instance, raise_on_error=False,
                            resources={"fivetran": fivetran, "dbt": project_defs.resources["dbt"]})
    run_id = result.run_id
    try:
        assert not result.success
        mats = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
        assert set(stripe) <= mats and STAGING not in mats  # the sync landed, dbt failed
        # the dbt step carried its failed nodes in its failure event (issue 14: under the
        # K8sRunLauncher the run pod's target folder is gone when the sensor looks) ...
        (failed,) = [e for e in result.get_step_failure_events() if "dbt" in (e.step_key or "")]
        from orchestrator.resources.dbt_failures import run_results_from_failure

        carried = run_results_from_failure(failed.step_failure_data)
        assert carried and any(r["status"] == "error" for r in carried["results"])
        # ... so the sensor splits it per node with the run's dbt artifacts deleted from this disk
        import shutil
        from pathlib import Path

        from orchestrator.resources import dbt_project

        for folder in Path(dbt_project().project_dir, "target").glob(f"*-{run_id[:7]}-*"):
            shutil.rmtree(folder, ignore_errors=True)

        out = _run_sensor(project_defs, instance, fivetran)
        obs = {e.asset_key.to_user_string(): e.metadata for e in out.asset_events
               if isinstance(e, dg.AssetObservation) and e.metadata["failure/run_id"].value == run_id}
        # the failing model carries dbt's (DuckDB's) own error, diagnosed schema_drift, as the root
        staging = obs[STAGING]
        message = staging["failure/message"].value
        assert "Binder Error" in message and '"name" not found' in message, message
        assert "dbt CLI process" not in message  # not dagster-dbt's wrapper
        assert staging["failure/system"].value == "dbt"
        assert staging["failure/category"].value == "schema_drift", staging["failure/evidence"].value
        assert staging["failure/root"].value == ""
        root_id = staging["failure/id"].value
        assert root_id.startswith(f"dbt:{run_id}:model.") and root_id.endswith(STAGING)
        # the models dbt skipped because of it: linked to it, not diagnosed again
        assert set(downstream) <= set(obs)
        for key in downstream:
            assert obs[key]["failure/root"].value == root_id, key
            assert obs[key]["failure/category"].value == "schema_drift"
            assert "caused by upstream failure" in obs[key]["failure/evidence"].value
        assert [k for k, m in obs.items() if not m["failure/root"].value] == [STAGING]
        audit = [a for a in open_store().audit_events(kind="failure.diagnosed") if a["payload"]["run_id"] == run_id]
        assert len([a for a in audit if a["payload"]["root"] is None]) == 1
        assert {a["payload"]["asset_key"] for a in audit} == {STAGING, *downstream}
    finally:
        import shutil
        from pathlib import Path

        from orchestrator.resources import dbt_project

        for folder in Path(dbt_project().project_dir, "target").glob(f"*-{run_id[:7]}-*"):
            shutil.rmtree(folder, ignore_errors=True)
