"""The agent visible in the Dagster UI: an asset with a proposal waiting shows it (the
``agent_proposal`` check: action, risk, expiry, approve link), and once it ran, the runs it
launched - through a real Dagster instance (sensor evaluated, events stored, read back)."""

from __future__ import annotations

from datetime import timedelta

import dagster as dg
import pytest
from planning_fixtures import NOW, failure, fresh, scenario

from orchestrator.approvals.tokens import verify
from orchestrator.proposals import Proposals
from orchestrator.settings import Settings
from orchestrator.store import open_store
from sensors import ProjectContext
from sensors.notify import CHECK_NAME, build_proposal_checks, build_proposals_sensor

SECRET = "ui-approval-secret-0123456789"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ui")
    url = f"sqlite:///{tmp}/store.db"
    props = Proposals(open_store(url, cached=False))
    sc = scenario(freshness=[fresh("dashboard/exec", slack=-900, blocker="crm/account")],
                  failures=[failure("f1", "unknown", "Something went wrong within the destination connector",
                                    connector="fivetran:crm", at=NOW - timedelta(hours=3))])
    props.run_cycle(sc.snapshot, sc.assessment, sc.resolution, now=NOW, llm=None)
    retry = next(p for p in props.list(status="pending") if p["type"] == "retry")
    ctx = ProjectContext(graph=sc.snapshot.graph, resolution=sc.resolution)
    defs = dg.Definitions(assets=[dg.AssetSpec(dg.AssetKey.from_user_string(k)) for k in sc.snapshot.graph.keys],
                          asset_checks=build_proposal_checks(ctx, store_url=url))
    return tmp, url, props, retry, ctx, defs


def _latest(instance, key: str):
    check_key = dg.AssetCheckKey(dg.AssetKey.from_user_string(key), CHECK_NAME)
    records = instance.event_log_storage.get_asset_check_execution_history(check_key, limit=1)
    return records[0].event.dagster_event.event_specific_data if records else None


def _tick(instance, ctx, url, cursor, now, monkeypatch, tmp):
    monkeypatch.setenv("ORCHESTRATOR_APPROVAL_SECRET", SECRET)
    monkeypatch.setenv("ORCHESTRATOR_APPROVAL_BASE_URL", "https://approve.example.test")
    monkeypatch.setenv("ORCHESTRATOR_DAGSTER_URL", "http://dagster.example.test:3000")
    monkeypatch.setenv("ORCHESTRATOR_HOME", str(tmp))
    sensor = build_proposals_sensor(ctx, store_url=url, clock=lambda: now)
    result = sensor(dg.build_sensor_context(instance=instance, cursor=cursor))
    for ev in result.asset_events:  # what the sensor daemon does with a tick's asset events
        instance.report_runless_asset_event(ev)
    return result


def test_a_waiting_proposal_shows_on_its_assets_and_the_runs_it_launched_after(world, monkeypatch):
    tmp, url, props, retry, ctx, defs = world
    with dg.instance_for_test() as instance:
        first = _tick(instance, ctx, url, None, NOW + timedelta(minutes=1), monkeypatch, tmp)
        ev = _latest(instance, "crm/account")
        assert ev is not None and ev.passed is False and ev.severity == dg.AssetCheckSeverity.WARN
        meta = {k: v.value for k, v in ev.metadata.items()}
        assert meta["action_id"] == retry["action_id"] and meta["action"].startswith("retry on fivetran:crm")
        assert meta["risk"] == retry["risk"] and meta["expires_at"].startswith("2026-03-10T21:00")
        approve = meta["approve"]
        assert approve.startswith(f"https://approve.example.test/decide/{retry['action_id']}/approve?token=")
        claims = verify(approve.split("token=", 1)[1], SECRET.encode(), action_id=retry["action_id"],
                        decision="approve", now=NOW + timedelta(minutes=2))
        assert claims.recipient == "dagster-ui"
        assert "Waiting for approval: retry" in ev.description
        assert _latest(instance, "events/page_view") is None  # untouched assets: nothing reported

        # repeated ticks with nothing new report nothing
        again = _tick(instance, ctx, url, first.cursor, NOW + timedelta(minutes=2), monkeypatch, tmp)
        assert again.asset_events == []

        # approved, launched as a run, succeeded: the check clears and links the run
        props.approve(retry["action_id"], actor="ana@example.com", via="ui", now=NOW + timedelta(minutes=3))
        props.record_execution(retry["action_id"], "run", run_key=retry["action_id"], run_id="run-abc123",
                               now=NOW + timedelta(minutes=3))
        props.record_outcome(retry["action_id"], True, now=NOW + timedelta(minutes=8))
        _tick(instance, ctx, url, again.cursor, NOW + timedelta(minutes=9), monkeypatch, tmp)
        ev = _latest(instance, "crm/account")
        meta = {k: v.value for k, v in ev.metadata.items()}
        assert ev.passed is True and meta["waiting"] == 0 and meta["last_status"] == "succeeded"
        assert meta["launched_run"] == "http://dagster.example.test:3000/runs/run-abc123"
        assert meta["last_proposal_id"] == retry["proposal_id"]


def test_the_check_runs_from_the_ui_too(world, monkeypatch):
    """The check is executable (the UI's "Execute" on the check): the same view, in a run."""
    tmp, url, props, retry, ctx, defs = world
    monkeypatch.setenv("ORCHESTRATOR_HOME", str(tmp))
    with dg.instance_for_test() as instance:
        keys = [dg.AssetCheckKey(dg.AssetKey.from_user_string(k), CHECK_NAME) for k in ("crm/account", "crm/contact")]
        job = dg.Definitions(
            assets=[dg.AssetSpec(dg.AssetKey.from_user_string(k)) for k in ctx.graph.keys],
            asset_checks=defs.asset_checks,
            jobs=[dg.define_asset_job("check_proposals", selection=dg.AssetSelection.checks(*keys))],
        ).resolve_job_def("check_proposals")
        result = job.execute_in_process(instance=instance)
        assert result.success
        evs = result.get_asset_check_evaluations()
        assert {e.asset_key.to_user_string() for e in evs} == {"crm/account", "crm/contact"}


def test_the_notification_sensor_tells_the_owners_once(world, monkeypatch):
    from notify_servers import SlackServer

    from sensors.notify import build_notifications_sensor

    tmp, url, props, retry, ctx, defs = world
    store = open_store(url, cached=False)
    store.append_audit("failure.diagnosed", actor="failure_sensor", subject="f-ui", payload={
        "category": "auth_expired", "transient": False, "confidence": 0.9, "evidence": ["401 Unauthorized"],
        "root": None, "system": "fivetran", "asset_key": "crm/account", "connector": "fivetran:crm",
        "run_id": None, "at": NOW.isoformat()})
    slack = SlackServer("xoxb-ui-test-token-000000")
    try:
        monkeypatch.setenv("ORCHESTRATOR_SLACK_TOKEN", "xoxb-ui-test-token-000000")
        monkeypatch.setenv("ORCHESTRATOR_SLACK_API_URL", slack.api_url)
        monkeypatch.setenv("ORCHESTRATOR_SLACK_CHANNELS", "*=#data-alerts")
        monkeypatch.setenv("ORCHESTRATOR_NOTIFY_MIN_INTERVAL", "0")
        monkeypatch.setenv("ORCHESTRATOR_HOME", str(tmp))
        sensor = build_notifications_sensor(ctx, store_url=url, clock=lambda: NOW + timedelta(minutes=1))
        with dg.instance_for_test() as instance:
            first = sensor(dg.build_sensor_context(instance=instance))
            assert not first.skip_message.startswith("0 sent"), first.skip_message
            n = len(slack.messages())
            assert n >= 1 and any("Incident f-ui" in m["body"]["text"] for m in slack.messages())
            again = sensor(dg.build_sensor_context(instance=instance))
            assert again.skip_message.startswith("0 sent") and len(slack.messages()) == n
        monkeypatch.setenv("ORCHESTRATOR_NOTIFY", "off")
        with dg.instance_for_test() as instance:
            assert "off" in sensor(dg.build_sensor_context(instance=instance)).skip_message
    finally:
        slack.stop()
