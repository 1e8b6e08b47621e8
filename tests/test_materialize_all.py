""""Materialize all" on the global asset lineage, in one click, through the real webserver.

The UI (dagster-webserver 1.13, ``ui-core`` ``LaunchAssetExecutionButton``: ``optionsForExecuteButton``
and ``stateForLaunchingAssets``; the installed bundle has the same code) does, on a click:

1. takes every executable, non-observable asset of the graph (external ones are never selected);
2. loads them (``assetNodes``, ``assetNodeAdditionalRequiredKeys``, ``assetNodeDefinitionCollisions``):
   a collision or an additional required key opens an alert / a confirmation;
3. decides: an observable or external asset is an error; any partitioned asset opens the
   partitions (backfill) dialog, whose *Launch backfill* starts disabled; required op config or
   resource config opens the launchpad; otherwise it is one run, in a job every asset shares;
4. asks "Are you sure?" when a materializable upstream asset outside the selection was never
   materialized;
5. sends ``launchPipelineExecution`` with the job, the asset selection and their checks.

This drives the same GraphQL, in the same order, against ``DagsterWebserver``'s ASGI app over the
project's Definitions (an in-process code location, an instance with a queued run coordinator),
asserts that nothing in 2-4 interrupts the click, that the launch succeeds with every executable
asset, and that the daily-partitioned model (an external asset recorded by its op job) and the
digest are not in it. The same for *Jobs -> refresh_everything -> Materialize all*. Executing that
selection is tests/test_materialization.py (``refreshed``: before any day of the model is built)."""

from __future__ import annotations

import os
import sys
import types

import dagster as dg
import pytest

DIGEST = dg.AssetKey("orchestrator_digest")
DAILY_MODEL = dg.AssetKey("fct_product_events_daily")
DAILY_DASHBOARD = dg.AssetKey(["dashboard", "product_engagement"])

GRAPH_QUERY = """
query GlobalLineage { assetNodes { assetKey { path } isExecutable isObservable hasMaterializePermission
  partitionDefinition { name } } }"""

JOB_GRAPH_QUERY = """
query JobAssets($job: PipelineSelector!) { assetNodes(pipeline: $job) { assetKey { path } isExecutable
  isObservable hasMaterializePermission partitionDefinition { name } } }"""

LOADER_QUERY = """
query Loader($assetKeys: [AssetKeyInput!]!) {
  assetNodes(assetKeys: $assetKeys) {
    assetKey { path } opNames jobNames hasMaterializePermission isObservable isExecutable isMaterializable
    partitionDefinition { name type } configField { isRequired }
    assetChecksOrError { ... on AssetChecks { checks { name jobNames } } }
    dependencyKeys { path } requiredResources { resourceKey }
    repository { name location { name } }
  }
  assetNodeAdditionalRequiredKeys(assetKeys: $assetKeys) { path }
  assetNodeDefinitionCollisions(assetKeys: $assetKeys) { assetKey { path } }
}"""

RESOURCES_QUERY = """
query Resources($pipelineName: String!, $repositoryName: String!, $repositoryLocationName: String!) {
  resourcesOrError(pipelineSelector: {pipelineName: $pipelineName, repositoryName: $repositoryName,
                                      repositoryLocationName: $repositoryLocationName}) {
    __typename
    ... on ResourceConnection { resources { name configField { isRequired } } }
    ... on PythonError { message }
  }
}"""

UPSTREAM_QUERY = """
query Upstream($assetKeys: [AssetKeyInput!]!) {
  assetNodes(assetKeys: $assetKeys, loadMaterializations: true) {
    assetKey { path } isMaterializable assetMaterializations(limit: 1) { runId }
  }
}"""

LAUNCH = """
mutation Launch($executionParams: ExecutionParams!) {
  launchPipelineExecution(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId status } }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}"""


class Webserver:
    """``DagsterWebserver``'s app, called over HTTP in-process (Starlette's test client)."""

    def __init__(self, client):
        self.client = client

    def gql(self, query: str, **variables) -> dict:
        answer = self.client.post("/graphql", json={"query": query, "variables": variables})
        assert answer.status_code == 200, answer.text[:2000]
        body = answer.json()
        assert not body.get("errors"), body["errors"]
        return body["data"]


@pytest.fixture(scope="module")
def ui(project_defs, tmp_path_factory):
    from dagster._core.remote_origin import InProcessCodeLocationOrigin
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
    from dagster_webserver.webserver import DagsterWebserver
    from starlette.testclient import TestClient

    # the code location serves the project's Definitions as loaded for the session (no reload)
    module = types.ModuleType("_materialize_all_location")
    module.defs = project_defs
    sys.modules[module.__name__] = module
    origin = InProcessCodeLocationOrigin(
        loadable_target_origin=LoadableTargetOrigin(executable_path=sys.executable, module_name=module.__name__,
                                                    attribute="defs", working_directory=os.getcwd()),
        location_name="orchestrator",
    )
    # A local instance with Dagster's queued run coordinator (the run waits for a daemon that is
    # not here: executing that selection is tests/test_materialization.py's ``refreshed``) and an
    # in-memory event log: the launch writes one "planned" event per asset and check (~200), a new
    # SQLite connection and commit each on a file event log (~1 min on a loaded machine).
    home = tmp_path_factory.mktemp("materialize_all_instance")
    overrides = {
        "run_coordinator": {"module": "dagster._core.run_coordinator", "class": "QueuedRunCoordinator"},
        "event_log_storage": {"module": "dagster._core.storage.event_log", "class": "InMemoryEventLogStorage"},
    }
    with dg.DagsterInstance.local_temp(str(home), overrides=overrides) as instance:
        with WorkspaceProcessContext(instance, InProcessWorkspaceLoadTarget([origin])) as context:
            app = DagsterWebserver(context).create_asgi_app()
            with TestClient(app) as client:
                yield Webserver(client), instance
    sys.modules.pop(module.__name__, None)


def _keys(nodes) -> list[dict]:
    return [{"path": n["assetKey"]["path"]} for n in nodes]


def click_materialize_all(web: Webserver, job: str | None = None) -> dict:
    """What one click on "Materialize all" does, on the global lineage (``job=None``) or on a
    job's page (its assets, the job preferred); returns what the user sees:
    ``{"outcome": "launched" | <the dialog or alert that opened>, ...}``."""
    if job is None:
        graph = web.gql(GRAPH_QUERY)["assetNodes"]
    else:
        graph = web.gql(JOB_GRAPH_QUERY, job={"pipelineName": job, "repositoryName": "__repository__",
                                              "repositoryLocationName": "orchestrator"})["assetNodes"]
    preferred = job
    materializable = [n for n in graph if n["isExecutable"] and not n["isObservable"]]
    if not materializable or not all(n["hasMaterializePermission"] for n in graph):
        return {"outcome": "button disabled"}
    loaded = web.gql(LOADER_QUERY, assetKeys=_keys(materializable))
    if loaded["assetNodeDefinitionCollisions"]:
        return {"outcome": "collision alert", "detail": loaded["assetNodeDefinitionCollisions"]}
    if loaded["assetNodeAdditionalRequiredKeys"]:
        return {"outcome": "additional keys confirmation", "detail": loaded["assetNodeAdditionalRequiredKeys"]}
    assets = loaded["assetNodes"]
    if any(a["isObservable"] or not a["isExecutable"] for a in assets):
        return {"outcome": "error alert"}
    repo = assets[0]["repository"]
    common = [j for j in assets[0]["jobNames"] if all(j in a["jobNames"] for a in assets)]
    job = preferred if preferred in common else (common[0] if common else None)
    same_repo = all(a["repository"] == repo for a in assets)
    partitioned = [a for a in assets if a["partitionDefinition"]]
    if partitioned:  # "Launch backfill" dialog (disabled until partitions are chosen)
        return {"outcome": "partitions dialog", "detail": [a["assetKey"]["path"] for a in partitioned]}
    if not same_repo or job is None:
        return {"outcome": "invalid selection alert"}
    if any((a["configField"] or {}).get("isRequired") for a in assets):
        return {"outcome": "launchpad (op config)"}
    needed = {r["resourceKey"] for a in assets for r in a["requiredResources"]}
    if needed:
        answer = web.gql(RESOURCES_QUERY, pipelineName=job, repositoryName=repo["name"],
                         repositoryLocationName=repo["location"]["name"])["resourcesOrError"]
        if answer["__typename"] != "ResourceConnection":
            return {"outcome": "error alert", "detail": answer}
        if any((r["configField"] or {}).get("isRequired") for r in answer["resources"] if r["name"] in needed):
            return {"outcome": "launchpad (resource config)"}
    selected = {tuple(a["assetKey"]["path"]) for a in assets}
    upstream = sorted({tuple(d["path"]) for a in assets for d in a["dependencyKeys"]} - selected)
    if upstream:
        nodes = web.gql(UPSTREAM_QUERY, assetKeys=[{"path": list(p)} for p in upstream])["assetNodes"]
        never = [n["assetKey"]["path"] for n in nodes if n["isMaterializable"] and not n["assetMaterializations"]]
        if never:
            return {"outcome": "are-you-sure confirmation", "detail": never}
    checks = [{"name": c["name"], "assetKey": {"path": a["assetKey"]["path"]}}
              for a in assets for c in (a["assetChecksOrError"].get("checks") or []) if job in c["jobNames"]]
    params = {
        "mode": "default", "executionMetadata": {"tags": []}, "runConfigData": "{}",
        "selector": {"repositoryLocationName": repo["location"]["name"], "repositoryName": repo["name"],
                     "pipelineName": job, "assetSelection": _keys(assets), "assetCheckSelection": checks},
    }
    launched = web.gql(LAUNCH, executionParams=params)["launchPipelineExecution"]
    if launched["__typename"] != "LaunchRunSuccess":
        return {"outcome": "launch error toast", "detail": launched}
    return {"outcome": "launched", "run_id": launched["run"]["runId"], "job": job,
            "assets": {dg.AssetKey(list(p)) for p in selected}, "external": {
                dg.AssetKey(n["assetKey"]["path"]) for n in graph if not n["isExecutable"]}}


@pytest.fixture(scope="module")
def clicked(ui):
    web, instance = ui
    return click_materialize_all(web), instance


def test_materialize_all_launches_one_run_in_one_click(clicked, project_defs):
    click, instance = clicked
    assert click["outcome"] == "launched", click
    run = instance.get_run_by_id(click["run_id"])
    assert run is not None and run.status == dg.DagsterRunStatus.QUEUED
    graph = project_defs.resolve_asset_graph()
    executable = {k for k in graph.get_all_asset_keys() if graph.get(k).is_executable}
    assert set(run.asset_selection) == executable == click["assets"]
    assert len(executable) > 20
    # the partitioned model is in the lineage, external (never selected), recorded by its job
    assert {DAILY_MODEL, DIGEST} <= click["external"]
    node = graph.get(DAILY_MODEL)
    assert isinstance(node.partitions_def, dg.DailyPartitionsDefinition)
    assert node.metadata["orchestrator/recorded_by_job"] == "daily_partitioned_models"
    # its dashboard is in the one run: it reads the days built so far
    assert DAILY_DASHBOARD in run.asset_selection


def test_the_clicked_run_plans_every_asset(clicked, project_defs):
    """The queued run is executable as is: its job plans a step for every selected asset (the
    run's execution, before any day of the partitioned model is built, is
    tests/test_materialization.py's ``refreshed``, the same selection)."""
    click, instance = clicked
    run = instance.get_run_by_id(click["run_id"])
    job = project_defs.resolve_job_def(run.job_name).get_subset(asset_selection=set(run.asset_selection))
    from dagster._core.execution.api import create_execution_plan

    steps = create_execution_plan(job).step_keys_to_execute
    assert {"dbt_models", "dashboard_extracts"} <= {s.split("[")[0] for s in steps}
    assert "dbt_daily_partitioned" not in steps


def test_refresh_everything_page_materializes_all_in_one_click(ui):
    web, instance = ui
    click = click_materialize_all(web, job="refresh_everything")
    assert click["outcome"] == "launched", click
    assert click["job"] == "refresh_everything"
    assert DAILY_DASHBOARD not in click["assets"] and DIGEST not in click["assets"]
