"""Issue 14 item 5: a failed dbt step carries its failed nodes in its step failure event, so the
failure sensor needs no access to the run's disk (the run pod under K8sRunLauncher)."""

from datetime import UTC, datetime

import dagster as dg
from hypothesis import given, settings, strategies as st

from orchestrator.assessment.dbt_results import node_failures_from_run_results
from orchestrator.core.graph import AssetGraph, AssetNode
from orchestrator.resources.dbt_failures import (
    MAX_NODES,
    compact_run_results,
    dbt_failure,
    run_results_from_failure,
)

RUN_RESULTS = {  # run_results.json v6 (dbt 1.11), the fields this project reads
    "metadata": {"dbt_schema_version": "https://schemas.getdbt.com/dbt/run-results/v6.json",
                 "dbt_version": "1.11.0", "generated_at": "2026-11-30T05:00:00Z", "invocation_id": "inv-1"},
    "elapsed_time": 3.2, "args": {"which": "build"},
    "results": [
        {"unique_id": "model.analytics.stg_customers", "status": "error", "execution_time": 0.2,
         "message": 'Binder Error: Referenced column "name" not found in FROM clause!', "failures": None,
         "timing": [], "thread_id": "Thread-1", "adapter_response": {}, "relation_name": '"w"."staging"."stg_customers"'},
        {"unique_id": "model.analytics.dim_accounts", "status": "skipped", "execution_time": 0, "message": None,
         "failures": None, "timing": [], "thread_id": "Thread-1", "adapter_response": {}},
        {"unique_id": "test.analytics.not_null_fct_mrr_mrr.abc", "status": "fail", "execution_time": 0.1,
         "message": "Got 3 results, configured to fail if != 0", "failures": 3, "timing": [],
         "thread_id": "Thread-2", "adapter_response": {}},
        {"unique_id": "model.analytics.fct_orders", "status": "success", "execution_time": 1.0,
         "message": "OK", "failures": None, "timing": [], "thread_id": "Thread-1", "adapter_response": {}},
    ],
}
MANIFEST = {"nodes": {"test.analytics.not_null_fct_mrr_mrr.abc": {
    "attached_node": "model.analytics.fct_mrr", "depends_on": {"nodes": ["model.analytics.fct_mrr"]}}}}
GRAPH = AssetGraph([
    AssetNode("stg_customers", role="dbt_model", dbt_name="model.analytics.stg_customers"),
    AssetNode("dim_accounts", role="dbt_model", upstream=("stg_customers",), dbt_name="model.analytics.dim_accounts"),
    AssetNode("fct_mrr_renamed", role="dbt_model", upstream=("dim_accounts",), dbt_name="model.analytics.fct_mrr"),
])


class Invocation:
    def get_artifact(self, name):
        return {"run_results.json": RUN_RESULTS, "manifest.json": MANIFEST}[name]


def test_the_failure_event_carries_the_failed_nodes_through_the_instance():
    text = "The dbt CLI process with command\n\n`dbt build` failed with exit code `1`."

    @dg.asset
    def dbt_models():
        raise dbt_failure(Invocation(), RuntimeError(text))

    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize([dbt_models], instance=instance, raise_on_error=False)
        assert not result.success
        (ev,) = instance.all_logs(result.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
        data = ev.dagster_event.step_failure_data
        assert data.user_failure_data.description == text  # dagster-dbt's text, for the diagnosis
        carried = run_results_from_failure(data)
    assert [r["status"] for r in carried["results"]] == ["error", "skipped", "fail"]  # not the successes
    nodes = {r["unique_id"]: r for r in carried["results"]}
    recs = node_failures_from_run_results(carried, GRAPH, run_id="r1", at=datetime(2026, 11, 30, tzinfo=UTC),
                                          manifest=lambda: {"nodes": nodes})
    by_key = {r.asset_key: r.message for r in recs}
    assert "Binder Error" in by_key["stg_customers"]
    assert by_key["fct_mrr_renamed"].startswith("Failure in test")  # via attached_node, no manifest file
    assert "upstream node failed" in by_key["dim_accounts"]


def test_dbt_that_died_before_writing_run_results_still_fails_with_its_text():
    class Dead:
        def get_artifact(self, name):
            raise FileNotFoundError(name)

    f = dbt_failure(Dead(), RuntimeError("dbt crashed"))
    assert f.description == "dbt crashed" and "dbt_run_results" not in f.metadata
    assert run_results_from_failure(None) is None


@settings(max_examples=60, deadline=None)
@given(statuses=st.lists(st.sampled_from(["success", "error", "fail", "skipped", "warn", "pass", "no-op"]),
                         max_size=700),
       message=st.text(max_size=3000))
def test_compact_keeps_exactly_the_nodes_that_did_not_pass_and_stays_bounded(statuses, message):
    rr = {"results": [{"unique_id": f"model.p.m{i}", "status": s, "message": message} for i, s in enumerate(statuses)]}
    out = compact_run_results(rr)
    wanted = [f"model.p.m{i}" for i, s in enumerate(statuses) if s in ("error", "fail", "skipped", "warn")]
    assert [r["unique_id"] for r in out["results"]] == wanted[:MAX_NODES]
    assert all(len(r["message"]) <= 2000 for r in out["results"])
