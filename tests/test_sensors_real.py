"""The sensors against a real Dagster instance with real runs on the emulators.

* a Fivetran sync failing on an expired credential is diagnosed auth_expired and visible in the
  UI (observation + failing connector_sync check), remembered in the store, reported once;
* a slow upstream turns the executive dashboard at_risk before its deadline;
* failed and successful Airbyte syncs started outside Dagster are captured.
"""

import json
import time
from datetime import UTC, datetime, timedelta

import dagster as dg
import httpx
import pytest

from orchestrator.policies import DurationModel
from sensor_fixtures import persist, project_context, sensor_context
from sensors import ProjectContext
from emulator_fixtures import wait_airbyte_job

pytestmark = pytest.mark.slow
HUBSPOT = "7a3d9e15-4c2b-4f8e-b6a0-2e1c9d8f7b34"


@pytest.fixture(scope="module")
def instance(tmp_path_factory):
    with dg.DagsterInstance.local_temp(str(tmp_path_factory.mktemp("dagster_home_sensors"))) as inst:
        yield inst


@pytest.fixture(scope="module")
def ctx(project_defs, sandbox):
    return project_context(project_defs, sandbox)


def run_sensor(sensor_def, instance, project_defs, cursor=None):
    context = sensor_context(instance, project_defs, cursor)
    result = sensor_def(context)
    return result, context


def keys_of(project_defs, prefix):
    return [k for a in project_defs.assets for k in getattr(a, "keys", []) if k.to_user_string().startswith(prefix)]


def test_sensors_are_registered(project_defs):
    names = {s.name for s in project_defs.sensors}
    assert {"sla_freshness_sensor", "cost_sensor", "failure_diagnosis_sensor"} <= names
    checks = {k.name for c in project_defs.asset_checks for k in c.check_keys}
    assert {"sla_freshness", "connector_sync"} <= checks


def test_expired_credential_diagnosed_auth_expired_and_visible(project_defs, instance, sandbox, ctx):
    from orchestrator.store import open_store
    from sensors.failures import build_failure_sensor

    emu = sandbox.emulators
    emu.inject_fault({"kind": "expired_credentials", "target": "dapper_ledger", "next_syncs": 1})
    try:
        stripe = keys_of(project_defs, "stripe/")
        result = project_defs.resolve_implicit_global_asset_job_def().execute_in_process(
            instance=instance, asset_selection=stripe, raise_on_error=False)
        assert not result.success
        sensor = build_failure_sensor(ctx)
        out, _ = run_sensor(sensor, instance, project_defs)
        stripe_keys = {k.to_user_string() for k in stripe}
        # (the shared sandbox may hold other tests' failures: look at this connector's only)
        obs = [e for e in out.asset_events if isinstance(e, dg.AssetObservation)
               and e.asset_key.to_user_string() in stripe_keys]
        cats = {e.asset_key.to_user_string(): e.metadata["failure/category"].value for e in obs}
        assert cats
        assert set(cats.values()) == {"auth_expired"}, cats
        # the step failure (dagster) and the connector's failed sync are one event: one root
        roots = [e for e in obs if not e.metadata["failure/root"].value]
        linked = [e for e in obs if e.metadata["failure/root"].value]
        assert {e.metadata["failure/system"].value for e in roots} == {"fivetran"}
        assert linked, "the dagster step failure is linked to the sync failure"
        check_evals = [e for e in out.asset_events if isinstance(e, dg.AssetCheckEvaluation)
                       and e.asset_key.to_user_string() in stripe_keys]
        assert check_evals and all(not c.passed and c.check_name == "connector_sync" for c in check_evals)
        assert {c.metadata["category"].value for c in check_evals} == {"auth_expired"}
        persist(instance, out)
        # visible in the UI: the failing check on the table and the observation in its history
        key = check_evals[0].asset_key
        rec = instance.event_log_storage.get_latest_asset_check_execution_by_key(
            [dg.AssetCheckKey(key, "connector_sync")])[dg.AssetCheckKey(key, "connector_sync")]
        assert rec.event.dagster_event.event_specific_data.passed is False
        observed = instance.fetch_observations(key, limit=5).records
        assert observed[0].asset_observation.metadata["failure/category"].value == "auth_expired"
        # remembered, audited, and reported once
        audit = open_store().audit_events(kind="failure.diagnosed")
        assert any(a["payload"]["category"] == "auth_expired" for a in audit)
        again, _ = run_sensor(sensor, instance, project_defs, cursor=out.cursor)
        assert not [e for e in again.asset_events if isinstance(e, dg.AssetObservation)
                    and e.asset_key.to_user_string() in stripe_keys]
    finally:
        emu.clear_faults("dapper_ledger")
        httpx.post(f"{emu.fivetran_url}/_emulator/repair/dapper_ledger")




def test_failed_and_successful_syncs_started_outside_dagster(project_defs, instance, sandbox, ctx):
    from sensors.failures import build_failure_sensor

    emu = sandbox.emulators
    from orchestrator.resources.airbyte import AirbyteWorkspaceResource

    client = AirbyteWorkspaceResource(  # a client of our own: this sync is not Dagster's
        rest_api_base_url=emu.airbyte_rest_url, configuration_api_base_url=emu.airbyte_config_url,
        workspace_id=emu.airbyte_workspace_id, client_id=emu.airbyte_client_id,
        client_secret=emu.airbyte_client_secret,
    ).get_client()
    emu.inject_fault({"kind": "sync_failure", "target": HUBSPOT, "next_syncs": 1, "attempts": 1,
                      "code": "config_error", "failure_origin": "source", "retryable": False,
                      "message": "HubSpot API returned 403 Forbidden: This access token does not have proper "
                                 "permissions. (requires any of [crm.objects.contacts.read])"})
    try:
        failed = wait_airbyte_job(client, client.start_sync_job(HUBSPOT)["jobId"])  # not started by Dagster
        assert failed["status"] == "failed"
    finally:
        emu.clear_faults(HUBSPOT)
    sensor = build_failure_sensor(ctx)
    out, _ = run_sensor(sensor, instance, project_defs)
    mine = f"sync:airbyte:{HUBSPOT}:{failed['jobId']}"
    obs = [e for e in out.asset_events if isinstance(e, dg.AssetObservation)
           and e.metadata["failure/id"].value == mine]
    assert obs, "the failed sync started outside Dagster is captured"
    assert {e.metadata["failure/category"].value for e in obs} == {"permission_denied"}
    assert "403" in obs[0].metadata["failure/message"].value
    checks = [e for e in out.asset_events if isinstance(e, dg.AssetCheckEvaluation)
              and e.metadata["connector"].value == f"airbyte:{HUBSPOT}"]
    assert checks and checks[0].metadata["triggered_by"].value == "external"
    persist(instance, out)

    ok = wait_airbyte_job(client, client.start_sync_job(HUBSPOT)["jobId"])
    assert ok["status"] == "succeeded"
    out2, _ = run_sensor(sensor, instance, project_defs, cursor=out.cursor)
    mats = [e for e in out2.asset_events if isinstance(e, dg.AssetMaterialization)]
    assert any(m.metadata["airbyte_job_id"].value == ok["jobId"] for m in mats)
    recovered = [e for e in out2.asset_events if isinstance(e, dg.AssetCheckEvaluation)
                 and e.metadata["connector"].value == f"airbyte:{HUBSPOT}"]
    assert recovered and all(c.passed for c in recovered)
    persist(instance, out2)
    key = mats[0].asset_key
    assert instance.get_latest_materialization_event(key) is not None


def test_slow_upstream_turns_dashboard_at_risk_before_deadline(project_defs, instance, sandbox, ctx, tmp_path):
    from orchestrator.policies import load_policies, resolve
    from sensors.freshness import build_freshness_sensor

    graph = ctx.graph
    # everything materialized now, for real
    result = project_defs.resolve_job_def("refresh_everything").execute_in_process(
        instance=instance, raise_on_error=False)
    assert result.success
    # a deadline two hours from now (UTC), so today's cycle (1 h window) has not started yet
    now = datetime.now(UTC)
    deadline = (now + timedelta(hours=2)).replace(second=0, microsecond=0)
    (tmp_path / "p.yaml").write_text(
        "policies:\n  - name: exec-test\n    select: [{exposure: executive_revenue}]\n"
        f"    deadline: {{cron: \"{deadline.minute} {deadline.hour} * * *\", timezone: UTC, window: 1h}}\n"
        "    tier: critical\n")
    res = resolve(load_policies([tmp_path]), graph, DurationModel(), now)
    assert res.ok, res.errors
    test_ctx = ProjectContext(graph=graph, resolution=res, asset_specs=ctx.asset_specs)
    dashboard = "dashboard/executive_revenue"
    upstream = sorted(k for k in graph.upstream_closure(dashboard) if k.startswith("stripe/"))
    assert upstream

    # the stripe sync is running now and its history says it takes three hours
    run = dg.DagsterRun(job_name="__ASSET_JOB", run_id="slow-sync-run", status=dg.DagsterRunStatus.STARTED,
                        asset_selection=frozenset(dg.AssetKey.from_user_string(k) for k in upstream))
    instance.add_run(run)

    def durations(snap):
        return DurationModel({**snap.durations, **{k: [3 * 3600.0] * 5 for k in upstream}})

    # 1) before the window opens, nothing is in doubt
    before = build_freshness_sensor(test_ctx, durations=durations)
    out, _ = run_sensor(before, instance, project_defs)
    evs = {e.asset_key.to_user_string(): e for e in out.asset_events}
    assert evs[dashboard].severity == dg.AssetCheckSeverity.WARN and not evs[dashboard].passed
    meta = evs[dashboard].metadata
    assert datetime.fromisoformat(meta["deadline"].value) == deadline
    assert datetime.fromisoformat(meta["predicted_ready"].value) > deadline
    assert meta["slack_s"].value < 0
    assert meta["blocking_asset"].value in upstream
    assert datetime.now(UTC) < deadline  # at risk before the deadline, not after
    persist(instance, out)
    key = dg.AssetCheckKey(dg.AssetKey.from_user_string(dashboard), "sla_freshness")
    rec = instance.event_log_storage.get_latest_asset_check_execution_by_key([key])[key]
    assert rec.event.dagster_event.event_specific_data.severity == dg.AssetCheckSeverity.WARN

    # 2) the run finishes fast after all: the recovery is reported as a passed check
    instance.report_run_canceled(instance.get_run_by_id("slow-sync-run"))
    fast = build_freshness_sensor(test_ctx, clock=lambda: deadline - timedelta(minutes=50))
    for key in sorted(graph.upstream_closure(dashboard, include_self=True)):  # it all landed
        instance.report_runless_asset_event(dg.AssetMaterialization(dg.AssetKey.from_user_string(key)))
    out2, _ = run_sensor(fast, instance, project_defs, cursor=out.cursor)
    evs2 = {e.asset_key.to_user_string(): e for e in out2.asset_events}
    assert evs2[dashboard].passed and evs2[dashboard].metadata["recovered"].value is True


def test_sensors_skip_on_invalid_policies(project_defs, instance, ctx, tmp_path):
    from orchestrator.policies import load_policies, resolve
    from sensors.cost import build_cost_sensor
    from sensors.freshness import build_freshness_sensor

    (tmp_path / "bad.yaml").write_text("policies:\n  - name: bad\n    select: [{key: no/such}]\n    max_lag: 1h\n")
    res = resolve(load_policies([tmp_path]), ctx.graph, DurationModel())
    assert not res.ok
    bad = ProjectContext(graph=ctx.graph, resolution=res, asset_specs=ctx.asset_specs)
    for sensor in (build_freshness_sensor(bad), build_cost_sensor(bad)):
        out, _ = run_sensor(sensor, instance, project_defs)
        assert isinstance(out, dg.SkipReason) and "invalid" in out.skip_message


def test_cost_sensor_reports_policy_spend(project_defs, instance, ctx):
    from sensors.cost import build_cost_sensor

    out, _ = run_sensor(build_cost_sensor(ctx), instance, project_defs)
    assert isinstance(out, dg.SensorResult)
    obs = [e for e in out.asset_events if isinstance(e, dg.AssetObservation)]
    exec_ = [e for e in obs if e.asset_key.to_user_string() == "dashboard/executive_revenue"]
    assert exec_
    meta = exec_[0].metadata
    assert meta["cost/policy:executive-revenue/budget_day_usd"].value == 40
    assert meta["cost/policy:executive-revenue/spent_month_usd"].value >= 0
    assert json.loads(out.cursor) == {"alerted": {}} or "alerted" in json.loads(out.cursor)
