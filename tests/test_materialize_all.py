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

from ui_materialize import click_materialize_all  # tests/ is on sys.path (conftest)

DIGEST = dg.AssetKey("orchestrator_digest")
DAILY_MODEL = dg.AssetKey("fct_product_events_daily")
DAILY_DASHBOARD = dg.AssetKey(["dashboard", "product_engagement"])


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


@pytest.fixture(scope="module")
def clicked(ui):
    web, instance = ui
    return click_materialize_all(web.gql), instance


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
    click = click_materialize_all(web.gql, job="refresh_everything")
    assert click["outcome"] == "launched", click
    assert click["job"] == "refresh_everything"
    assert DAILY_DASHBOARD not in click["assets"] and DIGEST not in click["assets"]
