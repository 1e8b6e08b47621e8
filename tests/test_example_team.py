"""Issue 14, item 7: a second, different team project adopts the library through the component.

``tests/example_team`` is a team's own ``dg`` project (Airbyte only with dagster-airbyte's default
keys, its own dbt project on DuckDB with schemas ``crm``/``billing``, a weekly-partitioned model,
owners from dbt ``meta.owner``, no dashboards), written as README "Add to your project" says, with
``orchestrator.components.SlaPoliciesComponent`` in ``defs/sla/defs.yaml`` governing the dbt
models of ``defs/sla/models`` (another component of the team, loaded by it). It is copied to a
temporary folder, given its dbt manifest (the prepared ``tests/data/example_team_manifest.json.gz``
when it is the parse of exactly these dbt files with this dbt version, else ``dbt parse``), its own
Airbyte emulator started, and its code location loaded the way ``dagster dev`` loads it, once for
the module. Then:

* its policies apply to its assets (checks on the governed assets, owners from dbt meta and
  from the policies, the policies compiled onto the specs of the governed component's models
  (SLA tags, owners, native FreshnessPolicy) and not onto the other components' tables, the
  weekly partitioning in the decision graph, code-location status ok);
* every sensor the component adds ticks on the team's Definitions and a Dagster instance;
* an Airbyte sync failure injected through the emulator's control API is diagnosed, its retry
  requested in the same tick for exactly the failed connection's table, the retry run succeeds
  against the emulator, and the next tick proposes nothing more for it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import httpx
import pytest

import example_team_support as support
from emulator_fixtures import airbyte_client, wait_airbyte_job

pytestmark = pytest.mark.slow  # `dbt parse` of the team's project and its code location load

CRM = "0d6f3b2a-9c1e-4a7d-b5e8-2f4a6c8e1b90"


@dataclass
class Team:
    project: Path
    manifest: str  # "prepared" or "parsed"
    emulators: object
    definitions: dg.Definitions
    instance: dg.DagsterInstance

    @property
    def repo(self):
        return self.definitions.get_repository_def()

    def sensor(self, name: str) -> dg.SensorDefinition:
        return next(s for s in self.repo.sensor_defs if s.name == name)

    def tick(self, name: str, cursor: str | None = None):
        context = dg.build_sensor_context(
            instance=self.instance, cursor=cursor, definitions=self.definitions,
            resources={k: self.definitions.resources[k] for k in ("fivetran", "airbyte")})
        return self.sensor(name).evaluate_tick(context)  # what the daemon calls


@pytest.fixture(scope="module")
def team(tmp_path_factory):
    root = tmp_path_factory.mktemp("example_team")
    project = support.copy_project(root)
    manifest = support.parse_dbt(project)
    emulators = support.team_environment(project, root / "home")
    running = next(emulators)
    before = dict(os.environ)
    try:
        definitions = support.load_team_definitions(project)
        with dg.instance_for_test() as instance:
            yield Team(project, manifest, running.emulators, definitions, instance)
    finally:
        support.restore_environment(before)
        emulators.close()


def test_prepared_manifest_is_the_parse_of_the_team_dbt_project():
    """The prepared manifest stands for `dbt parse` only while it is the parse of these files: after
    an edit of tests/example_team/dbt, regenerate it (the fixture then falls back to parsing)."""
    assert support.prepared_manifest_key() == support.dbt_project_key(support.EXAMPLE / "dbt"), (
        "tests/data/example_team_manifest.json.gz is stale: run "
        "`.venv/bin/python tests/example_team_support.py --prepare`")


def test_policies_apply_to_the_team_assets(team):
    from orchestrator.dagster_policies import load_resolution
    from orchestrator.lib import asset_graph_from_assets
    from orchestrator.lib.project import assets_of

    meta = team.definitions.metadata
    assert meta["sla_policies/status"].value == "ok"
    graph = team.repo.asset_graph
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    # the team's own keys: dagster-airbyte's defaults and its dbt models; no dashboard, none of ours
    assert {"accounts", "invoices", "stg_crm__accounts", "stg_billing__invoices", "dim_accounts",
            "fct_weekly_revenue"} <= keys
    assert not [k for k in keys if "/" in k and k.split("/")[0] in ("salesforce", "product", "hubspot")]
    assert not [n for n in graph.asset_nodes if "dashboard" in n.kinds]
    # owners from dbt meta (an e-mail stays, a name becomes a team), dbt sources on the Airbyte tables
    # (models: the dbt meta owner first, then the policy's, compiled onto the governed specs)
    assert graph.get(dg.AssetKey("dim_accounts")).owners == ["crm-analytics@example.com",
                                                             "revenue-analytics@example.com"]
    assert graph.get(dg.AssetKey("stg_crm__accounts")).owners[0] == "team:crm_data"
    assert dg.AssetKey("accounts") in graph.get(dg.AssetKey("stg_crm__accounts")).parent_keys
    # the policies compiled onto the specs of the governed component (defs/sla/models): SLA tags
    # and Dagster's own FreshnessPolicy from the deadline (Monday 07:00 Berlin for the weekly mart)
    weekly_node = graph.get(dg.AssetKey("fct_weekly_revenue"))
    assert weekly_node.tags["sla/policy"] == "weekly-revenue" and weekly_node.tags["sla/deadline"] == "07h00"
    assert isinstance(weekly_node.freshness_policy, dg.FreshnessPolicy)
    assert (weekly_node.freshness_policy.deadline_cron, weekly_node.freshness_policy.timezone) == (
        "0 7 * * 1", "Europe/Berlin")
    # ... and not onto another component's assets (ingest.py): those are read, checked, not changed
    accounts = graph.get(dg.AssetKey("accounts"))
    assert "sla/policy" not in accounts.tags and accounts.freshness_policy is None
    # the policies compiled onto the team's assets: SLA checks on what they govern
    weekly = graph.get(dg.AssetKey("fct_weekly_revenue"))
    assert isinstance(weekly.partitions_def, dg.WeeklyPartitionsDefinition)
    assert {c.name for c in weekly.check_keys} >= {"sla_freshness"}
    assert {c.name for c in graph.get(dg.AssetKey("accounts")).check_keys} >= {"sla_freshness", "connector_sync"}
    # the decision core sees the same graph: the weekly contract, the policy owners on the tables
    plain = asset_graph_from_assets(assets_of(team.definitions))
    assert plain.node("fct_weekly_revenue").partitioning == "weekly"
    resolution = load_resolution(plain, [team.project / "policies"])
    assert resolution.ok, resolution.skip_reason
    assert resolution.sla("fct_weekly_revenue").primary_policy == "weekly-revenue"
    # connector tables: owner and group from the Airbyte workspace (the library's translator on
    # dagster-airbyte's builder, dagster's keys kept); the policy's owners come first for the sensors
    assert (accounts.owners, accounts.group_name) == (["team:Revenue_Ops"], "Revenue_Ops")
    assert tuple(resolution.sla("accounts").owners) == ("team:ingestion",)  # the policy's override the workspace's
    # the component's attributes reached the settings the sensors read
    assert os.environ["ORCHESTRATOR_CONNECTORS"] == "airbyte"
    assert Path(os.environ["ORCHESTRATOR_POLICIES_DIR"]) == (team.project / "policies").resolve()
    digest = next(s for s in team.repo.schedule_defs if s.job_name == "daily_digest")
    assert (digest.cron_schedule, digest.execution_timezone) == ("30 6 * * 1-5", "Europe/Berlin")


def test_every_sensor_ticks_on_the_team_definitions(team):
    names = sorted(s.name for s in team.repo.sensor_defs)
    assert {"sla_freshness_sensor", "failure_diagnosis_sensor", "orchestrator_planning",
            "orchestrator_execution", "cost_sensor", "schema_change_sensor"} <= set(names)
    for name in names:
        out = team.tick(name)
        assert "no SLA policies" not in (out.skip_message or ""), (name, out.skip_message)
    fresh = team.tick("sla_freshness_sensor")
    evaluations = [e for e in fresh.asset_events or [] if isinstance(e, dg.AssetCheckEvaluation)]
    assert {e.asset_key.to_user_string() for e in evaluations} >= {"fct_weekly_revenue", "accounts"}






def test_airbyte_sync_failure_recovered_end_to_end(team, tmp_path, monkeypatch):
    from orchestrator.proposals import Proposals
    from orchestrator.store import open_store

    # a store of its own: what other tests' ticks proposed (a sync of the stale CRM tables) would
    # rightly cover the retry and leave nothing to launch
    monkeypatch.setenv("ORCHESTRATOR_STORE_URL", f"sqlite:///{tmp_path}/store.db")

    control = f"{team.emulators.airbyte_base_url}/_emulator/faults"
    fault = {"kind": "sync_failure", "target": CRM, "next_syncs": 1, "attempts": 1, "code": "transient_error",
             "failure_origin": "source", "retryable": True,
             "message": "Salesforce API returned 503 Service Unavailable, try again later"}
    assert httpx.post(control, json=fault, timeout=10).status_code in (200, 201)
    client = airbyte_client(team.emulators)
    failed = wait_airbyte_job(client, client.start_sync_job(CRM)["jobId"])  # a sync Dagster did not start
    assert failed["status"] == "failed"
    fid = f"sync:airbyte:{CRM}:{failed['jobId']}"

    out = team.tick("failure_diagnosis_sensor")
    store = open_store()
    diagnosed = [a for a in store.audit_events(kind="failure.diagnosed", limit=1000) if a["subject"] == fid]
    assert len(diagnosed) == 1 and diagnosed[0]["payload"]["transient"] is True
    assert sorted(diagnosed[0]["payload"]["assets"]) == ["accounts"]
    retries = [r for r in out.run_requests or [] if r.tags.get("orchestrator/action_type") == "retry"]
    assert len(retries) == 1, [r.tags for r in out.run_requests or []]
    retry = retries[0]
    assert [k.to_user_string() for k in retry.asset_selection] == ["accounts"]

    # the retry, as the daemon would launch it: the team's own Airbyte asset, against the emulator
    job = team.definitions.resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(instance=team.instance, asset_selection=retry.asset_selection,
                                    tags={**retry.tags, "dagster/run_key": retry.run_key})
    assert result.success
    assert team.instance.get_latest_materialization_event(dg.AssetKey("accounts")) is not None
    checks = {e.asset_check_key.name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks.get("connector_sync") is True  # the connection's latest sync is a success again

    again = team.tick("failure_diagnosis_sensor", cursor=out.cursor)
    assert len([a for a in store.audit_events(kind="failure.diagnosed", limit=1000) if a["subject"] == fid]) == 1
    assert not [r for r in again.run_requests or [] if r.tags.get("orchestrator/action_type") == "retry"
                and r.tags.get("orchestrator/action_id") != retry.run_key]
    shown = Proposals(store).show(retry.tags["orchestrator/action_id"])
    assert shown["status"] in ("approved", "executing", "executed", "succeeded", "done"), shown["status"]
