"""``orchestrator plan --dry-run`` without loading the Dagster code location (issue 15, item 7).

The fast path reads the plain project graph cached per version of its inputs
(``orchestrator.graph_cache``); these tests check it plans exactly what the full path (the whole
``Definitions``) plans on the sample project with a failed connector sync in the window, that the
cache is reused only while its inputs are unchanged, and that a corrupt cache is rebuilt.
"""

from datetime import UTC, datetime

import pytest

pytestmark = pytest.mark.slow
HUBSPOT = "7a3d9e15-4c2b-4f8e-b6a0-2e1c9d8f7b34"


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    from conftest import start_sandbox

    yield from start_sandbox(tmp_path_factory.mktemp("fastpath_home"))


@pytest.fixture(scope="module")
def env(sandbox, tmp_path_factory):
    """One Definitions build shared by both paths (the full path and the cache miss call the
    same ``build_definitions``): the suite pays for one load."""
    import orchestrator.definitions as definitions

    patch = pytest.MonkeyPatch()
    tmp = tmp_path_factory.mktemp("fastpath_store")
    patch.setenv("ORCHESTRATOR_STORE_URL", f"sqlite:///{tmp}/store.db")
    patch.setenv("DAGSTER_HOME", str(sandbox.settings.dagster_home))
    sandbox.settings.dagster_home.mkdir(parents=True, exist_ok=True)
    patch.delenv("OPENAI_API_KEY", raising=False)
    patch.delenv("OPENAI_BASE_URL", raising=False)
    built = []
    real = definitions.build_project

    def once():
        if not built:
            built.append(real())
        return built[0]

    patch.setattr(definitions, "build_project", once)
    yield built
    patch.undo()


def _failed_sync(sandbox):
    """A sync of the HubSpot connection that fails (not started by Dagster): the snapshot holds a
    failure the planner answers, attributed through the graph's connector tables."""
    import time

    from orchestrator.resources.airbyte import AirbyteWorkspaceResource

    emu = sandbox.emulators
    client = AirbyteWorkspaceResource(
        rest_api_base_url=emu.airbyte_rest_url, configuration_api_base_url=emu.airbyte_config_url,
        workspace_id=emu.airbyte_workspace_id, client_id=emu.airbyte_client_id,
        client_secret=emu.airbyte_client_secret).get_client()
    emu.inject_fault({"kind": "sync_failure", "target": HUBSPOT, "next_syncs": 1, "attempts": 1,
                      "code": "transient_error", "failure_origin": "source", "retryable": True,
                      "message": "HubSpot API returned 502 Bad Gateway (upstream timeout), try again"})
    try:
        job_id = client.start_sync_job(HUBSPOT)["jobId"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and client.get_job_details(job_id)["status"] not in ("failed", "succeeded"):
            time.sleep(0.2)
    finally:
        emu.clear_faults(HUBSPOT)


def _plan(inputs, now):
    from orchestrator.proposals import Proposals
    from orchestrator.store import open_store

    snapshot, assessment, resolution, durations = inputs
    result = Proposals(open_store()).run_cycle(snapshot, assessment, resolution, durations, now=now,
                                               llm=None, dry_run=True)
    out = result.as_dict()
    out.pop("proposal_id")  # random per cycle
    return out


def test_cached_graph_plans_the_same_as_the_full_code_location(sandbox, env):
    from orchestrator import graph_cache
    from orchestrator.planning.cli import _project_inputs

    _failed_sync(sandbox)
    now = datetime.now(UTC)
    full = _project_inputs(now, full=True)
    miss = graph_cache.plain_inputs()  # built from the Definitions, written
    assert not miss.cached and graph_cache.cache_path().exists()
    hit = graph_cache.plain_inputs()
    assert hit.cached and hit.key == miss.key  # read back: no Definitions loaded

    # the same graph, node for node (owners, connectors, partitioning, broken connectors included)
    assert sorted(hit.graph.keys) == sorted(full[0].graph.keys)
    assert all(hit.graph.node(k) == full[0].graph.node(k) for k in hit.graph.keys)
    assert hit.jobs == miss.jobs and "refresh_everything" in hit.jobs and hit.ops == miss.ops
    assert hit.dbt_roots == miss.dbt_roots and hit.dbt_roots  # dbt run results found for dbt failures

    from orchestrator.plain_instance import plain_instance

    # the fast path reads this (default, SQLite) instance from its tables, without Dagster
    assert plain_instance(sandbox.settings.dagster_home) is not None
    fast = _project_inputs(now)
    assert [f.failure_id for f in fast[0].failures] == [f.failure_id for f in full[0].failures]
    assert any(f.connector == f"airbyte:{HUBSPOT}" for f in fast[0].failures)
    plan_fast, plan_full = _plan(fast, now), _plan(full, now)
    assert plan_fast == plan_full
    assert plan_fast["decisions"]  # a plan with something in it, not two empty answers


def test_cache_follows_its_inputs(sandbox, env, tmp_path):
    from orchestrator import graph_cache

    settings = sandbox.settings
    key = graph_cache.inputs_key()
    state = sorted(settings.connector_state_dir.glob("*.json"))
    assert state, "the code location load writes the connector state"
    # a reload rewriting the same connector state is the same version
    data = state[0].read_bytes()
    state[0].write_bytes(data)
    assert graph_cache.inputs_key() == key
    # another connector state, another version
    state[0].write_bytes(data + b" ")
    try:
        assert graph_cache.inputs_key() != key
    finally:
        state[0].write_bytes(data)
    assert graph_cache.inputs_key() == key
    # a setting choosing connectors is part of the version
    assert graph_cache.inputs_key(environ={"ORCHESTRATOR_CONNECTORS": "fivetran"}) != key
    # a cache of another version, or unreadable, is not used
    path = graph_cache.cache_path()
    assert graph_cache.load(path, key) is not None
    assert graph_cache.load(path, "another") is None
    broken = tmp_path / "plan_inputs.json"
    broken.write_text('{"version": 1, "key": "' + key + '", "nodes": [')
    assert graph_cache.load(broken, key) is None


def test_dry_run_cli_uses_the_cache(sandbox, env):
    """The command itself: answers from the cache (no Definitions build) and prints a plan."""
    from click.testing import CliRunner

    import orchestrator.definitions as definitions
    from orchestrator import graph_cache
    from orchestrator.cli import cli

    graph_cache.plain_inputs()  # warm (shared build)
    calls = []
    original = definitions.build_project
    definitions.build_project = lambda: calls.append(1) or original()
    try:
        out = CliRunner().invoke(cli, ["plan", "--dry-run", "--no-llm"])
    finally:
        definitions.build_project = original
    assert out.exit_code == 0, out.output
    assert "planner: deterministic" in out.output and "why:" in out.output
    assert calls == []


def test_dry_run_sees_the_sensors_graph_owners_and_actions(sandbox, env):
    """Issue 15 item 3, one graph: ``plan --dry-run`` (from its cache) plans on the graph and the
    policy resolution the sensors were given - not the Definitions' specs, which carry the SLA
    owners/tags merged in and the digest asset - and, with a failed connector sync in the window,
    proposes exactly what the planning sensor's cycle proposes from the same instance."""
    import dagster as dg

    from orchestrator import graph_cache
    from orchestrator.assessment import assess
    from orchestrator.definitions import build_project
    from orchestrator.planning.cli import _project_inputs
    from orchestrator.policies import DurationModel
    from orchestrator.proposals import Proposals
    from orchestrator.project_graph import asset_graph_from_definitions
    from orchestrator.recovery import stored_diagnoses
    from orchestrator.snapshot import ConnectorReader, build_snapshot
    from orchestrator.store import open_store

    project = build_project()
    ctx = project.context
    graph_cache.plain_inputs()  # built (shared build) unless an earlier test did
    hit = graph_cache.plain_inputs()
    assert hit.cached
    # the same assets and node for node the same owners/tags/connectors as the sensors' graph
    assert sorted(hit.graph.keys) == sorted(ctx.graph.keys)
    assert all(hit.graph.node(k) == ctx.graph.node(k) for k in ctx.graph.keys)
    # ...which is not what re-deriving it from the Definitions gives (what the CLI did before)
    specs = asset_graph_from_definitions(project.defs)
    assert "orchestrator_digest" in specs.keys and "orchestrator_digest" not in hit.graph.keys
    assert any(specs.node(k).owners != ctx.graph.node(k).owners for k in ctx.graph.keys)

    _failed_sync(sandbox)
    now = datetime.now(UTC)
    props = Proposals(open_store())
    snapshot, assessment, resolution, durations = _project_inputs(now, props=props)
    # the same owners for every asset (escalations reach the connector's owners, from its policy)
    for k in ctx.graph.keys:
        assert (resolution.sla(k) and resolution.sla(k).owners) == (ctx.resolution.sla(k) and ctx.resolution.sla(k).owners)

    # the planning sensor's inputs (sensors.execution.build_planning_sensor), same instance
    with dg.DagsterInstance.get() as instance:
        repo = project.defs.get_repository_def()
        # the resources as Dagster hands them to the sensor: config processed, EnvVar secrets read
        fivetran, airbyte = (project.defs.resources[k].process_config_and_initialize() for k in ("fivetran", "airbyte"))
        snap = build_snapshot(instance, ctx.graph, now=now, repository_def=repo, connector_settings=True,
                              connectors=ConnectorReader(fivetran=fivetran, airbyte=airbyte))
    known = stored_diagnoses(props.store, [f.failure_id for f in snap.failures])
    sensor_durations = DurationModel(snap.durations)
    sensor_assessment = assess(snap, ctx.resolution, sensor_durations, memory=props.memory, now=now,
                               known_diagnoses=known)
    assert snapshot.schema_change_handling == snap.schema_change_handling
    assert sorted(f.failure_id for f in snapshot.failures) == sorted(f.failure_id for f in snap.failures)
    dry = _plan((snapshot, assessment, resolution, durations), now)
    sensor = _plan((snap, sensor_assessment, ctx.resolution, sensor_durations), now)
    assert dry == sensor
    assert dry["decisions"] and any(d["action"].get("connector") == f"airbyte:{HUBSPOT}" for d in dry["decisions"])
