"""Failure-driven recovery (issue 15) on the real project, the emulators and a real Dagster
instance, through the sensors' own evaluation functions (``build_sensor_context``):

* a transient failure of a sync Dagster did not start is diagnosed once (one stored diagnosis,
  observations on every table of the connection) and its retry is requested in the same
  evaluation (written ahead, action id as run key); evaluated again nothing is repeated, and the
  planning sensor reuses the stored diagnosis instead of diagnosing again;
* an expired credential is escalated once to the connector's owners (its policy), not to the
  catch-all, the broken connector stays in the asset graph, and the digest holds the escalation
  and withdraws the proposals that can no longer succeed or were already done;
* ``ORCHESTRATOR_AUTOMATION`` caps automatic execution; the planning sensor runs by default.
"""

import time
from datetime import UTC, datetime, timedelta

import dagster as dg
import httpx
import pytest

from orchestrator.project_graph import asset_graph_from_definitions
from sensor_fixtures import launch, persist, project_context, sensor_context
from sensors import ProjectContext
from emulator_fixtures import airbyte_client, wait_airbyte_job

pytestmark = pytest.mark.slow
HUBSPOT = "7a3d9e15-4c2b-4f8e-b6a0-2e1c9d8f7b34"


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    """Emulators of its own: what this module asserts (one escalation per incident, a broken
    connector's runs withdrawn) must not depend on syncs other tests left in the shared sandbox."""
    from conftest import start_sandbox

    yield from start_sandbox(tmp_path_factory.mktemp("recovery_home"))


@pytest.fixture(scope="module")
def project_defs(sandbox):
    from orchestrator.definitions import build_definitions

    return build_definitions()


@pytest.fixture(scope="module")
def store_url(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('recovery_store')}/store.db"
    patch = pytest.MonkeyPatch()
    patch.setenv("ORCHESTRATOR_STORE_URL", url)
    patch.setenv("ORCHESTRATOR_BACKOFF_SCALE", "0")  # a retry due at once: launched in the same tick
    patch.delenv("OPENAI_API_KEY", raising=False)
    patch.delenv("OPENAI_BASE_URL", raising=False)
    yield url
    patch.undo()


@pytest.fixture(scope="module")
def instance():
    with dg.DagsterInstance.ephemeral() as inst:
        yield inst


@pytest.fixture(scope="module")
def ctx(project_defs, sandbox):
    return project_context(project_defs, sandbox)


def evaluate(sensor_def, instance, project_defs, cursor=None):
    return sensor_def(sensor_context(instance, project_defs, cursor))






def _diagnosed(store, fid):
    return [a for a in store.audit_events(kind="failure.diagnosed", limit=100000) if a["subject"] == fid]


def test_transient_failure_diagnosed_once_and_retried_in_the_same_evaluation(
        project_defs, instance, sandbox, ctx, store_url, monkeypatch):
    from orchestrator.store import open_store
    from sensors.execution import build_planning_sensor
    from sensors.failures import build_failure_sensor

    emu = sandbox.emulators
    client = airbyte_client(emu)
    emu.inject_fault({"kind": "sync_failure", "target": HUBSPOT, "next_syncs": 1, "attempts": 1,
                      "code": "transient_error", "failure_origin": "source", "retryable": True,
                      "message": "HubSpot API returned 502 Bad Gateway (upstream timeout), try again"})
    try:
        failed = wait_airbyte_job(client, client.start_sync_job(HUBSPOT)["jobId"])  # not started by Dagster
        assert failed["status"] == "failed"
    finally:
        emu.clear_faults(HUBSPOT)
    fid = f"sync:airbyte:{HUBSPOT}:{failed['jobId']}"
    tables = sorted(n.key for n in ctx.graph if n.connector == f"airbyte:{HUBSPOT}" and n.role == "connector_table")
    assert len(tables) >= 2

    sensor = build_failure_sensor(ctx, store_url=store_url)
    out = evaluate(sensor, instance, project_defs)
    store = open_store(store_url)
    # diagnosed once, stored once, shown on every table the failed sync touched
    rows = _diagnosed(store, fid)
    assert len(rows) == 1 and rows[0]["payload"]["transient"] is True
    assert sorted(rows[0]["payload"]["assets"]) == tables
    obs = [e for e in out.asset_events if isinstance(e, dg.AssetObservation) and e.metadata["failure/id"].value == fid]
    assert sorted(e.asset_key.to_user_string() for e in obs) == tables
    assert {e.metadata["failure/subject"].value for e in obs} == {f"airbyte:{HUBSPOT}"}
    # the retry is requested in this same evaluation, for exactly the failed connection's tables
    retries = [r for r in out.run_requests if r.tags.get("orchestrator/action_type") == "retry"]
    assert len(retries) == 1, [r.tags for r in out.run_requests]
    rr = retries[0]
    assert sorted(k.to_user_string() for k in rr.asset_selection) == tables
    assert rr.run_key == rr.tags["orchestrator/action_id"]
    from orchestrator.proposals import Proposals

    shown = Proposals(store).show(rr.tags["orchestrator/action_id"])
    assert shown["status"] in ("approved", "executing")  # written ahead before the request left
    persist(instance, out)  # the asset events went out; the daemon created no run (code server timed out)

    # evaluated again: nothing diagnosed or recorded twice; the retry that never became a run is
    # requested again with the same run key (Dagster skips a run key it already launched), audited
    again = evaluate(sensor, instance, project_defs, cursor=out.cursor)
    assert len(_diagnosed(store, fid)) == 1
    relaunched = [r for r in (again.run_requests or []) if r.tags.get("orchestrator/action_id") == rr.run_key]
    assert [r.run_key for r in relaunched] == [rr.run_key]
    assert sorted(k.to_user_string() for k in relaunched[0].asset_selection) == tables
    assert len([a for a in store.audit_events(kind="execution", limit=100000)
                if a["subject"] == f"action:{rr.run_key}" and (a["payload"] or {}).get("relaunched")]) == 1
    run_ids = launch(instance, again)  # this time the daemon creates it

    # once the run exists: nothing requested again, the launch recorded with its run id
    third = evaluate(sensor, instance, project_defs, cursor=again.cursor)
    assert not [r for r in (third.run_requests or []) if r.tags.get("orchestrator/action_id") == rr.run_key]
    assert any(e["run_id"] in run_ids and e["status"] == "launched"
               for e in Proposals(store).show(rr.run_key)["executions"])

    # the planning cycle reuses the stored diagnosis: the classifier is not asked about it again
    import orchestrator.diagnosis as diagnosis

    asked: list[str] = []
    real = diagnosis.diagnose

    def counting(message, *args, **kwargs):
        asked.append(message)
        return real(message, *args, **kwargs)

    monkeypatch.setattr(diagnosis, "diagnose", counting)
    planning = build_planning_sensor(ctx, store_url=store_url)
    evaluate(planning, instance, project_defs)
    assert not [m for m in asked if "502 Bad Gateway" in m]
    assert len(_diagnosed(store, fid)) == 1
    # and it does not propose the same retry again
    retry_rows = [a for a in Proposals(store).list(limit=1000) if a["type"] == "retry"
                  and any(s.endswith(HUBSPOT) for s in a.get("subjects") or [])]
    assert len(retry_rows) == 1, retry_rows


def test_expired_credentials_escalated_once_to_the_connector_owners(
        project_defs, instance, sandbox, ctx, store_url):
    from orchestrator.digest.content import CATCH_ALL, build_digest
    from orchestrator.proposals import Proposals
    from orchestrator.store import open_store
    from sensors.execution import build_planning_sensor
    from sensors.failures import build_failure_sensor

    emu = sandbox.emulators
    conn = next(n.connector for n in ctx.graph if n.connector and n.connector.startswith("fivetran:")
                and n.key.startswith("stripe/"))
    cid = conn.split(":", 1)[1]
    owners = set(ctx.resolution.sla(next(n.key for n in ctx.graph if n.connector == conn)).owners)
    assert owners and CATCH_ALL not in owners
    # the sandbox is shared: an earlier test's incident on this connector may be in the store already
    started = datetime.now(UTC).replace(tzinfo=None)
    emu.inject_fault({"kind": "expired_credentials", "target": "dapper_ledger", "next_syncs": 1})
    try:
        stripe = [k for a in project_defs.assets for k in getattr(a, "keys", [])
                  if k.to_user_string().startswith("stripe/")]
        result = project_defs.resolve_implicit_global_asset_job_def().execute_in_process(
            instance=instance, asset_selection=stripe, raise_on_error=False)
        assert not result.success

        # one graph: the broken connector stays in the workspace the CLI and the sensors load
        from orchestrator.definitions import build_definitions

        reloaded = asset_graph_from_definitions(build_definitions())  # what `orchestrator plan` loads
        assert set(reloaded.keys) == set(ctx.graph.keys)
        broken = [n for n in reloaded if n.connector == conn]
        assert broken and all(n.owners == ctx.graph.node(n.key).owners for n in broken)

        store = open_store(store_url)
        props = Proposals(store)
        out = evaluate(build_failure_sensor(ctx, store_url=store_url), instance, project_defs)
        persist(instance, out)
        escalations = [e for e in store.audit_events(kind="escalation", limit=100000)
                       if e["subject"] == f"connector:{conn}" and e["ts"] >= started]
        assert len(escalations) == 1, escalations
        assert set(escalations[0]["payload"]["owners"]) == owners
        assert not [r for r in out.run_requests or [] if set(r.tags.get("orchestrator/action_type", "")) and
                    any(k.to_user_string().startswith("stripe/") for k in r.asset_selection)]
        # the planning sensor's cycle sees the same incident: no second escalation
        evaluate(build_planning_sensor(ctx, store_url=store_url), instance, project_defs)
        escalations = [e for e in store.audit_events(kind="escalation", limit=100000)
                       if e["subject"] == f"connector:{conn}" and e["ts"] >= started]
        assert len(escalations) == 1

        # the digest: the escalation in the owners' section; a run of the broken connector (doomed)
        # and a run of an asset refreshed since it was proposed (done) are not asked
        from orchestrator.assessment import assess
        from orchestrator.core.records import Action
        from orchestrator.planning.gate import GateDecision
        from orchestrator.recovery import stored_diagnoses
        from orchestrator.snapshot import ConnectorReader, build_snapshot

        now = datetime.now(UTC)
        snap = build_snapshot(instance, ctx.graph, now=now, connectors=ConnectorReader(
            fivetran=project_defs.resources["fivetran"], airbyte=project_defs.resources["airbyte"]))
        done_key = next(n.key for n in ctx.graph if n.connector and n.connector.startswith("airbyte:"))
        doomed = Action(action_id="t-doomed", type="materialize", reason="fresh stripe data",
                        asset_keys=tuple(k.to_user_string() for k in stripe[:2]))
        done = Action(action_id="t-done", type="materialize", reason="at risk", asset_keys=(done_key,))
        from orchestrator.proposals import CycleResult
        from orchestrator.planning.common import AgentPlan

        plan = AgentPlan(created_at=now, actions=[doomed, done], planner="test", rationale="test")
        cr = CycleResult(proposal_id="p-stale", baseline=plan, plan=plan, accepted=[doomed, done], rejected=[],
                         decisions=[GateDecision(a, "await_approval", "low", 0.1, 0.9, "test", tuple(owners), {})
                                    for a in (doomed, done)])
        known = stored_diagnoses(store, [f.failure_id for f in snap.failures])
        assessment = assess(snap, ctx.resolution, None, now=now, known_diagnoses=known)
        props.record(cr, snap, assessment, now=now - timedelta(minutes=10))
        # the asset of the "done" proposal is refreshed after it was proposed
        instance.report_runless_asset_event(dg.AssetMaterialization(dg.AssetKey.from_user_string(done_key)))
        snap = build_snapshot(instance, ctx.graph, now=datetime.now(UTC), connectors=ConnectorReader(
            fivetran=project_defs.resources["fivetran"], airbyte=project_defs.resources["airbyte"]))
        assert done_key in snap.last_success
        digest = build_digest(store, snap, assessment, ctx.resolution, now=now, since=now - timedelta(hours=1))
        mine = [s for s in digest.owners if s.owner in owners]
        assert mine and any(e.subject == f"connector:{conn}" and e.category == "auth_expired"
                            for s in mine for e in s.escalations)
        catch_all = digest.section(CATCH_ALL)
        assert catch_all is None or not any(e.subject == f"connector:{conn}" for e in catch_all.escalations)
        pending = {a.action_id for s in digest.owners for a in s.pending}
        withdrawn = {w.action.action_id: w.reason for s in digest.owners for w in s.withdrawn}
        assert "t-doomed" not in pending and "t-done" not in pending
        assert withdrawn["t-doomed"].startswith("cannot succeed") and "auth_expired" in withdrawn["t-doomed"]
        assert withdrawn["t-done"].startswith("already done")
        # withdrawn in the store, not only hidden: status, reason, audit event (what the cycles and
        # the digest delivery call); a second pass changes nothing
        from orchestrator.recovery import withdraw_stale

        gone = withdraw_stale(props, snap, assessment.failures, now=now, actor="test")
        assert {"t-doomed", "t-done"} <= set(gone)
        assert withdraw_stale(props, snap, assessment.failures, now=now) == {}
        for aid in ("t-doomed", "t-done"):
            shown = props.show(aid)
            assert shown["status"] == "withdrawn"
            assert shown["approvals"][-1]["decision"] == "withdraw" and shown["approvals"][-1]["comment"] == gone[aid]
            assert [e for e in store.audit_events(kind="withdrawal", limit=100000)
                    if e["subject"] == f"action:{aid}" and e["payload"]["reason"] == gone[aid]]
        assert "t-doomed" not in {r["action_id"] for r in props.list(status="pending", limit=1000)}
        digest = build_digest(store, snap, assessment, ctx.resolution, now=now, since=now - timedelta(hours=1))
        again = {w.action.action_id: w.reason for s in digest.owners for w in s.withdrawn}
        assert again["t-doomed"] == gone["t-doomed"] and again["t-done"] == gone["t-done"]
        assert not {"t-doomed", "t-done"} & {a.action_id for s in digest.owners for a in s.pending}
        # an approval link sent before the withdrawal answers that the work is no longer needed
        from starlette.testclient import TestClient

        from orchestrator.approvals import tokens
        from orchestrator.approvals.app import create_app
        from orchestrator.settings import Settings

        secret = b"s" * 32
        tok = tokens.issue("t-doomed", "p-stale", "approve", "ana@example.com", secret=secret,
                           now=datetime.now(UTC), ttl=timedelta(hours=1))
        with TestClient(create_app(store=store, secret=secret,
                                   settings=Settings(approval_base_url="http://127.0.0.1:8703")),
                        base_url="http://127.0.0.1:8703") as c:
            page = c.get("/decide/t-doomed/approve", params={"token": tok})
            posted = c.post("/decide/t-doomed/approve", data={"token": tok})
        assert page.status_code == 410 and "no longer needed" in page.text and "auth_expired" in page.text
        assert posted.status_code == 410 and "no longer needed" in posted.text
        assert props.show("t-doomed")["status"] == "withdrawn"
        # one escalation item per incident in the digest, whatever number of cycles saw it
        assert sum(e.subject == f"connector:{conn}" and e.at >= started.replace(tzinfo=UTC)
                   for s in mine for e in s.escalations) == len(mine), [(e.category, e.failure_id, str(e.at))
                                                                       for s in mine for e in s.escalations]
        # the failure is attributed to the connector, with all its tables, as in the UI
        fails = [f for s in mine for f in s.failures if f.subject == conn]
        assert fails and set(fails[0].assets) == {k.to_user_string() for k in stripe}
    finally:
        emu.clear_faults("dapper_ledger")
        httpx.post(f"{emu.fivetran_url}/_emulator/repair/dapper_ledger")


def test_disabled_airbyte_connection_escalated_to_its_owners_and_kept_in_the_graph(
        project_defs, instance, sandbox, ctx, store_url):
    """An Airbyte connection Airbyte disabled (status inactive, e.g. after a breaking change) is a
    broken connection like a Fivetran connector with expired credentials: detected without any
    sync being tried, diagnosed once (config_error), escalated once to the owners of its tables'
    policy, no run of it requested, and its tables stay in the graph."""
    from orchestrator.digest.content import CATCH_ALL
    from orchestrator.store import open_store
    from sensors.failures import build_failure_sensor

    emu = sandbox.emulators
    client = airbyte_client(emu)
    cid = sorted({n.connector.split(":", 1)[1] for n in ctx.graph
                  if n.connector and n.connector.startswith("airbyte:") and HUBSPOT not in n.connector})[-1]
    conn = f"airbyte:{cid}"
    tables = sorted(n.key for n in ctx.graph if n.connector == conn)
    owners = set(ctx.resolution.sla(tables[0]).owners)
    assert tables and owners and CATCH_ALL not in owners
    started = datetime.now(UTC).replace(tzinfo=None)
    url = f"{client.rest_api_base_url}/connections/{cid}"
    client._single_request(method="PATCH", url=url, data={"status": "inactive"})
    try:
        store = open_store(store_url)
        sensor = build_failure_sensor(ctx, store_url=store_url)
        out = evaluate(sensor, instance, project_defs)
        persist(instance, out)
        rows = [a for a in store.audit_events(kind="failure.diagnosed", limit=100000)
                if a["subject"].startswith(f"sync:{conn}:inactive")]
        assert len(rows) == 1 and rows[0]["payload"]["category"] == "config_error", rows
        assert sorted(rows[0]["payload"]["assets"]) == tables
        escalations = [e for e in store.audit_events(kind="escalation", limit=100000)
                       if e["subject"] == f"connector:{conn}" and e["ts"] >= started]
        assert len(escalations) == 1 and set(escalations[0]["payload"]["owners"]) == owners
        assert not [r for r in out.run_requests or [] if any(k.to_user_string() in tables for k in r.asset_selection)]
        assert set(tables) <= set(ctx.graph.keys)
        again = evaluate(sensor, instance, project_defs, cursor=out.cursor)
        persist(instance, again)
        assert len([a for a in store.audit_events(kind="failure.diagnosed", limit=100000)
                    if a["subject"].startswith(f"sync:{conn}:inactive")]) == 1
        assert len([e for e in store.audit_events(kind="escalation", limit=100000)
                    if e["subject"] == f"connector:{conn}" and e["ts"] >= started]) == 1
    finally:
        client._single_request(method="PATCH", url=url, data={"status": "active"})


def test_automation_setting_caps_execution_and_sensors_run_by_default(monkeypatch):
    from planning_fixtures import failure, scenario

    from orchestrator.proposals import Proposals
    from orchestrator.store import open_store
    from sensors.execution import build_planning_sensor

    fs = [failure("f1", "source_unavailable", "HTTP 502 from the source", connector="fivetran:crm",
                  asset="crm/account")]
    decisions = {}
    for mode in ("auto", "recommend", "shadow"):
        monkeypatch.setenv("ORCHESTRATOR_AUTOMATION", mode)
        monkeypatch.setenv("ORCHESTRATOR_BACKOFF_SCALE", "0")
        sc = scenario(failures=fs)
        props = Proposals(open_store("sqlite://", cached=False))
        r = props.run_cycle(sc.snapshot, sc.assessment, sc.resolution, llm=None, use_memory=False, dry_run=True)
        decisions[mode] = {d.action.type: d.decision for d in r.decisions}
    assert decisions["auto"].get("retry") == "execute"
    assert decisions["recommend"].get("retry") == "await_approval"
    assert decisions["shadow"].get("retry") == "record_only"

    from orchestrator.dagster_policies import load_resolution  # noqa: F401 - the sensor needs a context only

    ctx = ProjectContext(graph=scenario().snapshot.graph, resolution=None)
    monkeypatch.delenv("ORCHESTRATOR_PLANNING_SENSOR", raising=False)
    assert build_planning_sensor(ctx).default_status == dg.DefaultSensorStatus.RUNNING
    monkeypatch.setenv("ORCHESTRATOR_PLANNING_SENSOR", "off")
    assert build_planning_sensor(ctx).default_status == dg.DefaultSensorStatus.STOPPED
