"""Execution sensor through Dagster's own sensor daemon: a tick evaluated twice launches once."""

import json
import textwrap
import time
from datetime import datetime, timedelta, timezone

import dagster as dg
import pytest
from planning_fixtures import failure, fresh, scenario

from orchestrator.proposals import Proposals
from orchestrator.store import open_store

DEFS = textwrap.dedent('''
    import json, os
    import dagster as dg
    from orchestrator.lib.sensors.execution import build_execution_sensor  # as an installed team would

    def _asset(key, deps=(), partitioned=False):
        @dg.asset(key=dg.AssetKey.from_user_string(key), deps=[dg.AssetKey.from_user_string(d) for d in deps],
                  partitions_def=dg.DailyPartitionsDefinition("2026-01-01") if partitioned else None)
        def _a():
            return None
        return _a

    class FakeClient:
        def __init__(self, system):
            self.system = system
        def _log(self, call, *args):
            with open(os.environ["FAKE_CALLS"], "a") as fh:
                fh.write(json.dumps([self.system, call, *args]) + "\\n")
        def start_resync(self, cid, resync_parameters=None):
            self._log("start_resync", cid, resync_parameters)
        def _make_connector_request(self, method, endpoint, data=None):
            self._log(method, endpoint, data)
        def get_connector_details(self, cid):
            return {"schedule_type": "auto"}

    assets = [
        _asset("crm/account"), _asset("crm/contact"), _asset("events/page_view"),
        _asset("stg_account", ["crm/account"]), _asset("stg_contact", ["crm/contact"]),
        _asset("stg_events", ["events/page_view"]), _asset("fct_revenue", ["stg_account", "stg_contact"]),
        _asset("fct_events_daily", ["stg_events"], partitioned=True),
        _asset("dashboard/exec", ["fct_revenue"]), _asset("dashboard/growth", ["stg_events"]),
    ]
    defs = dg.Definitions(assets=assets, sensors=[build_execution_sensor(
        store_url=os.environ["ORCHESTRATOR_STORE_URL"], minimum_interval_seconds=1,
        clients=lambda ctx: {"fivetran": FakeClient("fivetran"), "airbyte": FakeClient("airbyte")})])
''')


@pytest.fixture
def setup(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path}/store.db"
    calls = tmp_path / "calls.jsonl"
    monkeypatch.setenv("ORCHESTRATOR_STORE_URL", url)
    monkeypatch.setenv("FAKE_CALLS", str(calls))
    (tmp_path / "defs.py").write_text(DEFS)
    return url, calls, tmp_path


def _record_cycle(url):
    """A real planning cycle (wall-clock now, so the daemon's tick sees it as due)."""
    now = datetime.now(timezone.utc).replace(microsecond=0)
    fs = [failure(f"p{d}", "source_unavailable", "timeout reading events", asset="fct_events_daily",
                  partition=(now - timedelta(days=d)).date().isoformat(), system="dagster", at=now - timedelta(hours=1))
          for d in (2, 3)]
    drift = failure("d1", "schema_drift", "column amount changed type from STRING to NUMERIC",
                    connector="fivetran:crm", asset="crm/contact", transient=False, at=now - timedelta(hours=1))
    sc = scenario(freshness=[fresh("dashboard/exec", slack=-900, blocker="crm/account",
                                   deadline=now + timedelta(hours=1))], failures=[*fs, drift], now=now)
    props = Proposals(open_store(url, cached=False))
    r = props.run_cycle(sc.snapshot, sc.assessment, sc.resolution, now=now, llm=None, use_memory=False)
    return props, r


def test_tick_evaluated_twice_launches_each_run_once(setup):
    from dagster._core.test_utils import create_test_daemon_workspace_context, instance_for_test
    from dagster._core.workspace.load_target import PythonFileTarget
    from dagster._daemon.sensor import execute_sensor_iteration

    url, calls, tmp = setup
    props, r = _record_cycle(url)
    by_type = {d.action.type: d for d in r.decisions}
    assert set(by_type) == {"materialize", "backfill", "resync_table"}
    for d in r.decisions:  # approve what policy did not run by itself (as an operator would)
        if d.decision != "execute":
            props.approve(d.action.action_id, actor="ops@example.com", via="cli")

    # the same action evaluated twice gives the same run keys (pure)
    from sensors.execution import run_requests_for

    bf = by_type["backfill"].action
    assert [rr.run_key for rr in run_requests_for(bf)] == [rr.run_key for rr in run_requests_for(bf)]
    assert len(run_requests_for(bf)) == 2

    overrides = {"run_coordinator": {"module": "dagster._core.run_coordinator", "class": "QueuedRunCoordinator"}}
    with instance_for_test(overrides=overrides) as instance:
        target = PythonFileTarget(python_file=str(tmp / "defs.py"), attribute=None, working_directory=str(tmp),
                                  location_name="test")
        import logging

        with create_test_daemon_workspace_context(target, instance) as ws:
            for i in range(2):
                list(execute_sensor_iteration(ws, logging.getLogger("t"), None, None))
                time.sleep(1.2)
            runs = instance.get_runs()
            keys = sorted(r.tags.get("dagster/run_key") for r in runs)
            assert len(runs) == 3, keys  # 1 materialize + 2 backfill partitions
            assert len(set(keys)) == 3
            mat = [r for r in runs if r.tags["orchestrator/action_type"] == "materialize"][0]
            assert mat.tags["dagster/priority"] == str(by_type["materialize"].action.priority)
            assert mat.tags["orchestrator/action_id"] == by_type["materialize"].action.action_id
            assert mat.tags["orchestrator/proposal_id"] == r.proposal_id
            assert {k.to_user_string() for k in mat.asset_selection} == set(by_type["materialize"].action.asset_keys)
            assert sorted(x.tags.get("dagster/partition") for x in runs if x.tags.get("dagster/partition")) == \
                sorted(bf.partitions)
            # connector call happened exactly once, with the drifted table only
            lines = [json.loads(x) for x in calls.read_text().splitlines()]
            # (the resync endpoint itself: the connector's schedule is left as it was)
            assert lines == [["fivetran", "POST", "crm/schemas/tables/resync", json.dumps({"crm": ["contact"]})]]
            assert props.show(by_type["resync_table"].action.action_id)["status"] == "succeeded"
            # runs are recorded as executions of their actions
            shown = props.show(by_type["materialize"].action.action_id)
            assert shown["status"] == "executing" and shown["executions"][0]["run_id"] == mat.run_id
            # a finished run closes the action
            for run in runs:
                instance.handle_run_event(run.run_id, dg.DagsterEvent(
                    event_type_value="PIPELINE_SUCCESS", job_name=run.job_name, message="done"))
            time.sleep(1.2)
            list(execute_sensor_iteration(ws, logging.getLogger("t"), None, None))
            assert props.show(by_type["materialize"].action.action_id)["status"] == "succeeded"
            assert len(instance.get_runs()) == 3
    kinds = {e["kind"] for e in props.store.audit_events()}
    assert {"proposal", "gate.decision", "approval", "execution", "outcome"} <= kinds
