"""deploy/dagster.yaml loads as a real DagsterInstance (issue 14 item 5, the deploy config): the
PostgreSQL storage against a server this test starts, the K8sRunLauncher with only the cluster's
credentials stubbed (no Kubernetes here), and run-queue limits and pools that apply to what this
code location really launches (run tags, not op/asset tags)."""

import shutil
from pathlib import Path

import dagster as dg
import pytest
import yaml

from pg_server import PG_BIN, PgServer

DEPLOY = Path(__file__).parents[1] / "deploy" / "dagster.yaml"
pytestmark = pytest.mark.skipif(PG_BIN is None, reason="PostgreSQL server binaries not installed")


@pytest.fixture(scope="module")
def pg():
    server = PgServer()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def deploy_instance(pg, tmp_path_factory):
    import kubernetes

    home = tmp_path_factory.mktemp("deploy_home")
    shutil.copy(DEPLOY, home / "dagster.yaml")  # the file as shipped, byte for byte
    url = pg.create_db("dagster").replace("postgresql+psycopg://", "postgresql://")
    patch = pytest.MonkeyPatch()
    patch.setenv("DAGSTER_PG_URL", url)
    patch.setenv("DAGSTER_K8S_NAMESPACE", "orchestrator")
    # the only thing that cannot run here: the pod's in-cluster service account
    patch.setattr(kubernetes.config, "load_incluster_config", lambda *a, **k: None)
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        yield instance
    finally:
        instance.dispose()
        patch.undo()


def test_the_shipped_file_loads_as_an_instance_with_its_storage_launcher_and_queue(deploy_instance):
    from dagster._core.run_coordinator import QueuedRunCoordinator
    from dagster_k8s import K8sRunLauncher
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage

    inst = deploy_instance
    assert isinstance(inst.run_storage, PostgresRunStorage)
    assert isinstance(inst.event_log_storage, PostgresEventLogStorage)
    assert inst.get_runs() == []  # the schema was created on the test's server
    assert isinstance(inst.run_coordinator, QueuedRunCoordinator)
    launcher = inst.run_launcher
    assert isinstance(launcher, K8sRunLauncher)
    assert launcher.job_namespace == "orchestrator" and launcher.env_secrets == ["orchestrator-secrets"]


def test_run_queue_limits_match_run_tags_this_code_location_sets(deploy_instance, monkeypatch):
    from orchestrator.core.records import Action
    from sensors.execution import TAG_TYPE, TAG_WAREHOUSE, run_requests_for

    queue = deploy_instance.get_concurrency_config().run_queue_config
    assert queue.max_concurrent_runs == 40
    limited_keys = {limit["key"] for limit in queue.tag_concurrency_limits}
    assert limited_keys == {TAG_TYPE, TAG_WAREHOUSE}
    # Dagster adds dagster/kind/* and concurrency keys to assets and ops, never to runs: a limit
    # on them would never match a run
    assert not any(k.startswith("dagster/kind/") or k == "dagster/concurrency_key" for k in limited_keys)
    monkeypatch.setenv("ORCHESTRATOR_WAREHOUSE", "snowflake_prod")
    (req,) = run_requests_for(Action(action_id="a1", type="retry", asset_keys=("stripe/invoice",),
                                     reason="r", priority=3))
    assert req.tags[TAG_TYPE] == "retry" and req.tags[TAG_WAREHOUSE] == "snowflake_prod"
    assert all(k in req.tags for k in limited_keys)  # every limit has a tag to count on the agent's runs


def test_pools_are_per_connector_source_and_the_warehouse(deploy_instance):
    from assets.dbt import WAREHOUSE_POOL

    pools = deploy_instance.get_concurrency_config().pool_config
    assert pools.default_pool_limit == 1 and str(pools.pool_granularity.value) == "op"
    cfg = yaml.safe_load(DEPLOY.read_text())
    assert "tag_concurrency_limits" not in cfg["run_coordinator"]["config"]  # 1.13 refuses both
    # a connector pool nobody configured gets the default: one sync per connector at a time
    deploy_instance.event_log_storage.initialize_concurrency_limit_to_default("fivetran/crimson_notebook")
    assert deploy_instance.event_log_storage.get_concurrency_info("fivetran/crimson_notebook").slot_count == 1
    # the warehouse pool is sized by the operator once (as deploy/README.md says) and then holds
    deploy_instance.event_log_storage.set_concurrency_slots(WAREHOUSE_POOL, 8)
    assert deploy_instance.event_log_storage.get_concurrency_info(WAREHOUSE_POOL).slot_count == 8


def test_connector_steps_run_in_their_own_pool(project_defs):
    pools = {}
    for assets_def in project_defs.assets:
        if isinstance(assets_def, dg.AssetsDefinition) and assets_def.node_def.name.startswith(
                ("fivetran_sync_", "airbyte_sync_")):
            pools[assets_def.node_def.name] = assets_def.node_def.pool
    assert pools and all(p and p.split("/")[0] in ("fivetran", "airbyte") for p in pools.values())
    assert len(set(pools.values())) == len(pools)  # one pool per connector
    job = next(j for j in project_defs.jobs if getattr(j, "name", "") == "refresh_everything")
    assert "orchestrator/warehouse" in (job.tags or {})
