"""Connector faults through a real loopback HTTP proxy in front of the Fivetran and Airbyte
emulators (``fault_proxy.FaultProxy``): answers delayed, hung, refused, throttled, garbled,
truncated, replaced by a 502 or lost after the emulator acted on the request.

* execution ticks under random faults (seeded worlds): every action ends with exactly one outcome
  and its audit trail; no resync/reset reached the emulator twice; a write the emulator received
  and accepted is never recorded as a failure, one it never received is never a success;
* a hung API: the failure sensor's and the execution sensor's ticks return (bounded by their API
  deadline, asserted only with a bound far above it) and say what was not read;
* the on-demand ``connector_sync`` check never reports passed on data it could not read, nor on a
  connector read fine with no sync on record (WARN "no sync on record").
"""

from __future__ import annotations

import json
import random
import threading
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
import yaml
from conftest import start_sandbox
from fault_proxy import FAULTS, FaultProxy

from orchestrator.core.graph import CONNECTOR_TABLE, AssetGraph, AssetNode
from orchestrator.core.records import Action
from orchestrator.proposals import CALL_LEASE, Proposals
from orchestrator.resources.airbyte import AirbyteWorkspaceResource
from orchestrator.resources.fivetran import FivetranWorkspaceResource
from orchestrator.store import open_store
from sensors.execution import evaluate

SIDE_EFFECTS = ("/schemas/tables/resync", "/connections/reset/stream")


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    yield from start_sandbox(tmp_path_factory.mktemp("proxy_home"))


@pytest.fixture(scope="module")
def scenario(sandbox):
    return yaml.safe_load(open(sandbox.settings.scenario).read())


def _origin(url: str) -> str:
    return "/".join(url.split("/")[:3])


def _proxies(sandbox, decide=lambda m, p: "pass", **kw):
    h = sandbox.emulators
    ft = FaultProxy(_origin(h.fivetran_url), decide, **kw).start()
    ab = FaultProxy(_origin(h.airbyte_rest_url), decide, **kw).start()
    return ft, ab


def _resources(sandbox, ft: FaultProxy, ab: FaultProxy, timeout: float = 0.8):
    h = sandbox.emulators
    fivetran = FivetranWorkspaceResource(account_id="sandbox", api_key=h.fivetran_api_key,
                                         api_secret=h.fivetran_api_secret, api_base_url=ft.rebase(h.fivetran_url),
                                         request_timeout=timeout, request_retry_delay=0.02, request_max_retries=2)
    airbyte = AirbyteWorkspaceResource(rest_api_base_url=ab.rebase(h.airbyte_rest_url),
                                       configuration_api_base_url=ab.rebase(h.airbyte_config_url),
                                       workspace_id=h.airbyte_workspace_id, client_id=h.airbyte_client_id,
                                       client_secret=h.airbyte_client_secret, request_timeout=max(1, round(timeout)),
                                       request_retry_delay=0.02, request_max_retries=2)
    return fivetran, airbyte


def _actions(scenario, seed: int) -> list[Action]:
    out = []
    for c in scenario["fivetran"]["connectors"]:
        out.append(Action(action_id=f"s{seed}-ft-{c['id']}", type="resync_table", reason="proxy chaos",
                          connector=f"fivetran:{c['id']}", tables={c["schema"]: (next(iter(c["tables"])),)}))
    for c in scenario["airbyte"]["connections"]:
        out.append(Action(action_id=f"s{seed}-ab-{c['id'][:8]}", type="resync_table", reason="proxy chaos",
                          connector=f"airbyte:{c['id']}", tables={"": (next(iter(c["streams"])),)}))
    return out


def _approve(props: Proposals, action: Action, now: datetime) -> None:
    from test_crash_safe_execution import _approved

    _approved(props, action, now=now)


def _side_effects_of(action: Action, ft: FaultProxy, ab: FaultProxy) -> list:
    system, _, cid = action.connector.partition(":")
    if system == "fivetran":
        return [f for f in ft.forwarded if f.method == "POST" and f.path.endswith(f"/connectors/{cid}{SIDE_EFFECTS[0]}")]
    return [f for f in ab.forwarded if f.method == "POST" and f.path.endswith(SIDE_EFFECTS[1])
            and json.loads(f.body or b"{}").get("connectionId") == cid]


def _wait_idle(sandbox, scenario, timeout: float = 30.0) -> None:
    """Until no sync or reset started by the previous world still runs (a sync still running
    would look like the next world's resync to the connector's state)."""
    import time

    ft, ab = _proxies(sandbox)
    fivetran, airbyte = _resources(sandbox, ft, ab, timeout=5)
    fc, ac = fivetran.get_client(), airbyte.get_client()
    end = time.monotonic() + timeout
    try:
        while time.monotonic() < end:
            busy = [c["id"] for c in scenario["fivetran"]["connectors"]
                    if (fc.get_connector_details(c["id"]).get("status") or {}).get("sync_state") == "syncing"]
            jobs = ac._single_request(method="GET", url=f"{ac.rest_api_base_url}/jobs",
                                      params={"workspaceIds": ac.workspace_id, "limit": 100})
            busy += [j["jobId"] for j in jobs.get("data") or [] if j.get("status") in ("pending", "running")]
            if not busy:  # and the last sync ended longer ago than the 5 s skew the reconciler allows
                last = max((datetime.fromisoformat(d["succeeded_at"].replace("Z", "+00:00"))
                            for d in (fc.get_connector_details(c["id"]) for c in scenario["fivetran"]["connectors"])
                            if d.get("succeeded_at")), default=None)
                if last is not None:
                    time.sleep(max(0.0, min(6.0, 6.0 - (datetime.now(UTC) - last).total_seconds())))
                return
            time.sleep(0.2)
    finally:
        ft.stop()
        ab.stop()


@pytest.mark.parametrize("seed", [1, 2])
def test_execution_through_a_faulty_proxy_records_each_action_once(sandbox, scenario, tmp_path, seed):
    _wait_idle(sandbox, scenario)
    schedules = _schedules(sandbox, scenario)
    rng = random.Random(seed)
    lock = threading.Lock()
    weights = {f: (4 if f == "pass" else 1) for f in FAULTS}

    def chaos(method, path):
        with lock:
            return rng.choices(list(weights), weights=list(weights.values()))[0]

    ft, ab = _proxies(sandbox, chaos, hang_s=1.4, slow_s=1.3)
    fivetran, airbyte = _resources(sandbox, ft, ab)
    clients = {"fivetran": fivetran.get_client(), "airbyte": airbyte.get_client()}
    props = Proposals(open_store(f"sqlite:///{tmp_path}/store.db", cached=False))
    now = datetime.now(UTC)
    actions = _actions(scenario, seed)
    for a in actions:
        _approve(props, a, now)
    with dg.instance_for_test() as instance:
        ctx = dg.build_sensor_context(instance=instance)
        for i in range(2):  # two ticks under faults (the second finds the first's calls written ahead)
            evaluate(ctx, props, clients=lambda: clients, now=now + timedelta(seconds=i), owner=f"chaos-{i}")
        ft.decide = ab.decide = lambda m, p: "pass"  # the APIs recover
        for i in (1, 2):  # within two ticks past the lease, everything is settled
            evaluate(ctx, props, clients=lambda: clients, now=now + i * (CALL_LEASE + timedelta(seconds=1)),
                     owner=f"recovery-{i}")
    faults_seen = {f for _, _, f in ft.faults + ab.faults}
    assert len(faults_seen) >= 4, faults_seen  # the world really was faulty
    for a in actions:
        shown = props.show(a.action_id)
        sent = _side_effects_of(a, ft, ab)
        assert len(sent) <= 1, (a.action_id, sent)  # never sent twice
        assert shown["status"] in ("succeeded", "failed"), shown
        if sent and sent[0].status < 300:  # the emulator did it: never recorded as a failure
            assert shown["status"] == "succeeded", (shown, sent[0].fault)
        if not sent:  # it never reached the emulator: never recorded as a success
            assert shown["status"] == "failed", (shown, ft.faults, ab.faults)
        events = props.store.audit_events(subject=f"action:{a.action_id}")
        kinds = [e["kind"] for e in events]
        assert kinds.count("outcome") == 1 and "gate.decision" in kinds, kinds
        assert len(shown["executions"]) == 1, shown["executions"]
        assert shown["executions"][0]["status"] == shown["status"]
    assert props.store.verify_audit()["ok"]
    assert _schedules(sandbox, scenario) == schedules  # the resyncs left each schedule as it was
    ft.stop()
    ab.stop()


def _schedules(sandbox, scenario) -> dict:
    ft, ab = _proxies(sandbox)
    client = _resources(sandbox, ft, ab, timeout=5)[0].get_client()
    try:
        return {c["id"]: client.get_connector_details(c["id"]).get("schedule_type")
                for c in scenario["fivetran"]["connectors"]}
    finally:
        ft.stop()
        ab.stop()


def _graph(scenario) -> AssetGraph:
    nodes = []
    for c in scenario["fivetran"]["connectors"]:
        for t in c["tables"]:
            nodes.append(AssetNode(f"{c['schema']}/{t}", role=CONNECTOR_TABLE, connector=f"fivetran:{c['id']}",
                                   kinds=frozenset({"fivetran"})))
    for c in scenario["airbyte"]["connections"]:
        for s in c["streams"]:
            nodes.append(AssetNode(f"ab_{c['id'][:8]}/{s}", role=CONNECTOR_TABLE, connector=f"airbyte:{c['id']}",
                                   kinds=frozenset({"airbyte"})))
    return AssetGraph(nodes)


def _returns_within(fn, bound: float):
    """Run ``fn`` in a thread; its result, or a failure if it has not returned after ``bound``
    seconds (a bound far above the API deadline: it shows the tick returned, it times nothing)."""
    box: dict = {}

    def go():
        try:
            box["result"] = fn()
        except BaseException as exc:  # noqa: BLE001
            box["error"] = exc

    t = threading.Thread(target=go, daemon=True)
    t.start()
    t.join(bound)
    assert not t.is_alive(), f"the tick had not returned after {bound}s"
    if "error" in box:
        raise box["error"]
    return box["result"]


def test_a_hung_api_the_sensor_ticks_return_and_say_so(sandbox, scenario, tmp_path, monkeypatch, caplog):
    from sensors import ProjectContext
    from sensors.execution import build_execution_sensor
    from sensors.failures import build_failure_sensor

    monkeypatch.setenv("ORCHESTRATOR_SENSOR_API_DEADLINE", "8")  # a hung request gets at most half of it
    monkeypatch.setenv("ORCHESTRATOR_TICK_BUDGET", "8")
    hang = lambda m, p: "hang" if "/v1/" in p and "/api/" not in p else "pass"  # noqa: E731 - Fivetran only
    ft, ab = _proxies(sandbox, hang, hang_s=120.0)
    fivetran, airbyte = _resources(sandbox, ft, ab, timeout=10.0)
    url = f"sqlite:///{tmp_path}/store.db"
    ctx = ProjectContext(graph=_graph(scenario), resolution=None)
    sensor = build_failure_sensor(ctx, store_url=url, recover=False)
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, resources={"fivetran": fivetran, "airbyte": airbyte})
        with caplog.at_level("WARNING"):
            result = _returns_within(lambda: sensor(context), 50)
        assert result is not None
        assert "fivetran" in caplog.text and ("timed out" in caplog.text or "budget" in caplog.text), caplog.text
        assert ft.faults and all(f == "hang" for _, _, f in ft.faults)
        assert ab.faults  # the other API was read in the same tick

        # the execution sensor: the action on the hung API fails with the reason, the tick returns
        props = Proposals(open_store(url, cached=False))
        a = _actions(scenario, 9)[0]
        _approve(props, a, datetime.now(UTC))
        ex = build_execution_sensor(store_url=url, clients=lambda c: {"fivetran": fivetran.get_client()})
        _returns_within(lambda: ex(dg.build_sensor_context(instance=instance)), 50)
        shown = props.show(a.action_id)
        assert shown["status"] == "failed", shown
        d = shown["executions"][0]["detail"]
        assert d["transient"] is True and ("timed out" in d["error"] or "budget" in d["error"]), d
    assert not [f for f in ft.forwarded if f.method == "POST"]  # nothing was sent blind
    ft.stop()
    ab.stop()


def test_connector_sync_check_never_passes_on_unreadable_data(sandbox, scenario):
    from sensors import ProjectContext
    from sensors.failures import build_sync_checks

    ft, ab = _proxies(sandbox, lambda m, p: "garbage" if "/v1/" in p and "/api/" not in p else "pass")
    fivetran, airbyte = _resources(sandbox, ft, ab)
    graph = _graph(scenario)
    (check,) = build_sync_checks(ProjectContext(graph=graph, resolution=None))
    specs = [dg.AssetSpec(dg.AssetKey.from_user_string(n.key)) for n in graph]
    defs = dg.Definitions(assets=specs, asset_checks=[check], resources={"fivetran": fivetran, "airbyte": airbyte})
    job = defs.resolve_implicit_global_asset_job_def()
    with dg.instance_for_test() as instance:
        result = job.execute_in_process(instance=instance, raise_on_error=False)
    evals = result.get_asset_check_evaluations()
    assert len(evals) == len(graph.keys)
    by_system = {}
    for e in evals:
        by_system.setdefault(graph.node(e.asset_key.to_user_string()).connector.split(":")[0], []).append(e)
    assert by_system["fivetran"] and all(not e.passed for e in by_system["fivetran"])
    assert all(e.severity == dg.AssetCheckSeverity.WARN and e.metadata["category"].value == "unreadable"
               for e in by_system["fivetran"])
    assert "not a JSON object" in by_system["fivetran"][0].metadata["message"].value
    assert by_system["airbyte"]  # the readable system is still checked
    ft.stop()
    ab.stop()


def test_connector_sync_check_warns_when_no_sync_is_on_record(sandbox, scenario):
    """Read fine but nothing to vouch for (a connector with no sync in the window): WARN "no sync
    on record", never passed; a connector with a recorded successful sync still passes."""
    from sensors import ProjectContext
    from sensors.failures import build_sync_checks

    import time

    ft, ab = _proxies(sandbox)
    fivetran, airbyte = _resources(sandbox, ft, ab, timeout=5)
    synced = scenario["airbyte"]["connections"][0]["id"]
    client = airbyte.get_client()
    job_id = client.start_sync_job(synced)["jobId"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and client.get_job_details(job_id)["status"] not in ("failed", "succeeded"):
        time.sleep(0.2)
    assert client.get_job_details(job_id)["status"] == "succeeded"
    silent = "airbyte:00000000-0000-4000-8000-00000000dead"  # a connection no job ever ran for
    graph = AssetGraph([*_graph(scenario), AssetNode("ab_silent/rows", role=CONNECTOR_TABLE, connector=silent,
                                                     kinds=frozenset({"airbyte"}))])
    (check,) = build_sync_checks(ProjectContext(graph=graph, resolution=None))
    specs = [dg.AssetSpec(dg.AssetKey.from_user_string(n.key)) for n in graph]
    defs = dg.Definitions(assets=specs, asset_checks=[check], resources={"fivetran": fivetran, "airbyte": airbyte})
    with dg.instance_for_test() as instance:
        result = defs.resolve_implicit_global_asset_job_def().execute_in_process(instance=instance,
                                                                                 raise_on_error=False)
    evals = {e.asset_key.to_user_string(): e for e in result.get_asset_check_evaluations()}
    quiet = evals["ab_silent/rows"]
    assert not quiet.passed and quiet.severity == dg.AssetCheckSeverity.WARN
    assert quiet.metadata["category"].value == "no_sync" and "no sync on record" in quiet.description
    # the connection synced just before: read fine, a sync on record, passed with its id
    recorded = [e for k, e in evals.items() if graph.node(k).connector == f"airbyte:{synced}"]
    assert recorded and all(e.passed and e.metadata["sync_id"].value == str(job_id) for e in recorded)
    ft.stop()
    ab.stop()
