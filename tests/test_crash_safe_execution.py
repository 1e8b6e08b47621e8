"""Crash-safe execution: write-ahead calls, outcomes recorded once whatever fails, reconciliation
from the connector's own state, isolation of bad actions, expiry/cancel, a breaker that counts
under concurrent ticks, atomic records and a tamper-evident audit trail (SQLite here; the same
against a real PostgreSQL in test_store_postgres.py / test_store_faults_postgres.py)."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import dagster as dg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from orchestrator.planning import action_to_dict, subjects
from orchestrator.core.records import Action
from orchestrator.proposals import CALL_LEASE, Proposals
from orchestrator.store import open_store
from orchestrator.store.agent_models import ActionRow, ApprovalRow, BreakerTripRow, ProposalRow
from sensors.execution import evaluate

UTC = timezone.utc
NOW = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)


class FakeFivetran:
    """Records every call; answers connector details like Fivetran (sync state, paused, schedule)."""

    def __init__(self, fail_with: Exception | None = None):
        self.calls: list[tuple] = []
        self.details: dict = {"schedule_type": "auto", "paused": False, "status": {"sync_state": "scheduled"},
                              "succeeded_at": "2026-03-10T06:00:00Z", "failed_at": None}
        self.fail_with = fail_with

    def _make_connector_request(self, method, endpoint, data=None):
        if self.fail_with is not None:
            raise self.fail_with
        self.calls.append((method, endpoint, data))
        if endpoint.endswith("resync"):
            self.details["status"] = {"sync_state": "syncing"}
        return {}

    def get_connector_details(self, cid):
        return dict(self.details)


def _props(tmp_path, **kw) -> Proposals:
    return Proposals(open_store(f"sqlite:///{tmp_path}/store.db", cached=False), **kw)


def _approved(props: Proposals, action: Action, *, now=NOW, decision="execute") -> str:
    with props.store.session() as s:
        props.store.lock(s)
        pid = f"p-{action.action_id}"
        s.add(ProposalRow(id=pid, created_at=now, planner="test", rationale="test"))
        s.flush()
        s.add(ActionRow(id=action.action_id, proposal_id=pid, type=action.type, source="planner", status="approved",
                        decision=decision, reason=action.reason, subjects=subjects(action),
                        payload=action_to_dict(action), created_at=now, updated_at=now))
        s.add(ApprovalRow(action_id=action.action_id, decision="approve", actor="policy", via="policy", at=now))
        props.store.audit(s, "gate.decision", actor="gate", subject=f"action:{action.action_id}", ts=now,
                          payload={"decision": decision})
    return action.action_id


def _resync(aid="rs-1", connector="fivetran:crm") -> Action:
    return Action(action_id=aid, type="resync_table", reason="drift", connector=connector,
                  tables={"crm": ("contact",)})


def _ctx(instance, repo=None):
    return dg.build_sensor_context(instance=instance, repository_def=repo)


def _kinds(props, aid):
    return [e["kind"] for e in props.store.audit_events(subject=f"action:{aid}")]


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst


def test_store_dies_after_the_call_the_reconciler_settles_it_without_calling_again(tmp_path, instance, monkeypatch):
    props = _props(tmp_path)
    aid = _approved(props, _resync())
    api = FakeFivetran()
    real = props.record_outcome

    def store_down(*a, **k):
        raise OperationalError("UPDATE proposal_actions", {}, Exception("server closed the connection"))

    monkeypatch.setattr(props, "record_outcome", store_down)
    evaluate(_ctx(instance), props, clients=lambda: {"fivetran": api}, now=NOW)
    assert len(api.calls) == 1
    shown = props.show(aid)
    # written ahead: the call is on record as ``calling``, nothing counted as a failure
    assert shown["status"] == "executing"
    assert [e["status"] for e in shown["executions"]] == ["calling"]
    assert "outcome" not in _kinds(props, aid)

    monkeypatch.setattr(props, "record_outcome", real)
    # still within the lease: left alone (the tick that owns it may still be running)
    evaluate(_ctx(instance), props, clients=lambda: {"fivetran": api}, now=NOW + timedelta(seconds=5))
    assert props.show(aid)["status"] == "executing"
    later = NOW + CALL_LEASE + timedelta(seconds=1)
    evaluate(_ctx(instance), props, clients=lambda: {"fivetran": api}, now=later)
    shown = props.show(aid)
    assert shown["status"] == "succeeded"
    assert [e["status"] for e in shown["executions"]] == ["succeeded"]
    assert shown["executions"][0]["detail"]["reconciled"] is True
    assert len(api.calls) == 1  # never called again
    assert _kinds(props, aid).count("outcome") == 1
    assert props.store.verify_audit()["ok"]


def test_crash_before_the_call_is_settled_as_unconfirmed_and_not_repeated(tmp_path, instance):
    props = _props(tmp_path)
    aid = _approved(props, _resync())
    assert props.begin_call(aid, owner="dead-tick", now=NOW) is not None  # then the process died
    api = FakeFivetran()
    evaluate(_ctx(instance), props, clients=lambda: {"fivetran": api}, now=NOW + CALL_LEASE + timedelta(seconds=1))
    shown = props.show(aid)
    assert shown["status"] == "failed"
    assert "not confirmed" in shown["executions"][0]["detail"]["error"]
    assert api.calls == []
    assert props.breaker(NOW + CALL_LEASE).open_subjects() == []
    with props.store.session() as s:  # an unconfirmed call does not feed the breaker
        assert s.execute(text("select count(*) from breaker_events")).scalar() == 0


def test_second_write_ahead_of_the_same_call_is_refused(tmp_path):
    props = _props(tmp_path)
    aid = _approved(props, _resync())
    first = props.begin_call(aid, now=NOW)
    assert first is not None
    assert props.begin_call(aid, now=NOW) is None
    with props.store.session() as s:
        s.execute(text("update proposal_actions set status='approved' where id=:i"), {"i": aid})
    assert props.begin_call(aid, now=NOW) is None  # the idempotency key is taken


def test_api_error_is_the_outcome_with_status_code(tmp_path, instance):
    from orchestrator.resources.errors import ConnectorAPIError

    props = _props(tmp_path)
    aid = _approved(props, _resync())
    err = ConnectorAPIError("fivetran", "POST", "connectors/crm/resync", status_code=503,
                            vendor_message="Service temporarily unavailable", transient=True)
    evaluate(_ctx(instance), props, clients=lambda: {"fivetran": FakeFivetran(fail_with=err)}, now=NOW)
    shown = props.show(aid)
    assert shown["status"] == "failed"
    d = shown["executions"][0]["detail"]
    assert d["status_code"] == 503 and d["transient"] is True and "temporarily unavailable" in d["vendor_message"]
    assert "503" in d["error"]


def test_fivetran_resync_leaves_the_schedule_as_it_was(tmp_path, instance):
    props = _props(tmp_path)
    aid = _approved(props, _resync())
    api = FakeFivetran()
    orig = api._make_connector_request

    def resync_flips_schedule(method, endpoint, data=None):  # what dagster-fivetran's start_resync does
        out = orig(method, endpoint, data)
        if endpoint.endswith("resync"):
            api.details["schedule_type"] = "manual"
        elif method == "PATCH":
            api.details.update(__import__("json").loads(data))
        return out

    api._make_connector_request = resync_flips_schedule
    evaluate(_ctx(instance), props, clients=lambda: {"fivetran": api}, now=NOW)
    assert api.details["schedule_type"] == "auto"
    d = props.show(aid)["executions"][0]["detail"]
    assert d["schedule_restored"] == {"from": "manual", "to": "auto"}
    assert [c[1] for c in api.calls] == ["crm/schemas/tables/resync", "crm"]


def _repo():
    @dg.asset(key="stg_a")
    def a():
        return None

    @dg.asset(key="daily", partitions_def=dg.DailyPartitionsDefinition("2026-01-01"))
    def d():
        return None

    return dg.Definitions(assets=[a, d]).get_repository_def()


def test_an_action_on_a_removed_asset_fails_alone_and_the_others_launch(tmp_path, instance):
    props = _props(tmp_path)
    gone = _approved(props, Action(action_id="m-gone", type="materialize", reason="x", asset_keys=("removed",)))
    badp = _approved(props, Action(action_id="b-bad", type="backfill", reason="x", asset_keys=("daily",),
                                   partitions=("1999-01-01",)))
    ok = _approved(props, Action(action_id="m-ok", type="materialize", reason="x", asset_keys=("stg_a",)))
    api = FakeFivetran()
    conn = _approved(props, _resync("rs-ok"))
    reqs = evaluate(_ctx(instance, _repo()), props, clients=lambda: {"fivetran": api}, now=NOW)
    assert [r.run_key for r in reqs] == ["m-ok"]
    assert props.show(gone)["status"] == "failed"
    assert "removed" in props.store.audit_events(subject=f"action:{gone}", kind="outcome")[0]["payload"]["detail"]["error"]
    assert "1999-01-01" in props.store.audit_events(subject=f"action:{badp}", kind="outcome")[0]["payload"]["detail"]["error"]
    assert props.show(ok)["status"] == "executing"
    assert props.show(ok)["executions"][0]["status"] == "calling"  # written ahead of the RunRequest
    assert props.show(conn)["status"] == "succeeded" and len(api.calls) == 1


def test_approved_actions_expire_and_can_be_cancelled(tmp_path, monkeypatch):
    monkeypatch.setenv("ORCHESTRATOR_APPROVED_TTL", "2h")
    props = _props(tmp_path)
    a = _approved(props, _resync("rs-a"))
    b = _approved(props, _resync("rs-b"))
    out = props.cancel(b, actor="ana@example.com", comment="not needed", now=NOW + timedelta(minutes=5))
    assert out["status"] == "cancelled"
    assert out["approvals"][-1]["decision"] == "cancel"
    assert "cancellation" in _kinds(props, b)
    with pytest.raises(ValueError, match="only pending or approved"):
        props.cancel(b, actor="ana@example.com")
    assert props.expire(NOW + timedelta(hours=1)) == []
    assert props.expire(NOW + timedelta(hours=3)) == [a]
    assert props.show(a)["status"] == "expired"
    assert props.executable(NOW + timedelta(hours=3)) == []


def test_breaker_trips_exactly_once_under_concurrent_outcomes(tmp_path):
    props = _props(tmp_path, breaker_threshold=3)
    ids = [_approved(props, _resync(f"rs-{i}")) for i in range(8)]
    for aid in ids:
        props.begin_call(aid, now=NOW)
    start = threading.Barrier(len(ids))
    trips: list = []

    def fail(aid):
        start.wait()
        trips.extend(props.record_outcome(aid, False, detail={"error": "boom"}, now=NOW + timedelta(minutes=1)))

    threads = [threading.Thread(target=fail, args=(a,)) for a in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(trips) == 1 and trips[0].failures == 3
    with props.store.session() as s:
        assert s.query(BreakerTripRow).count() == 1
        assert s.execute(text("select count(*) from breaker_events where success = 0")).scalar() == 8
    br = props.breaker(NOW + timedelta(minutes=2))
    assert br.is_open("connector:fivetran:crm")
    assert len(props.store.audit_events(kind="breaker.trip")) == 1
    assert props.store.verify_audit()["ok"]


def test_a_failed_breaker_pause_is_retried_until_a_person_takes_over(tmp_path, instance):
    from orchestrator.planning.breaker import Trip

    props = _props(tmp_path, breaker_threshold=1)
    aid = _approved(props, _resync())
    props.begin_call(aid, now=NOW)

    class Res:  # a resolution whose policy lets the breaker pause the connector
        class graph:  # noqa: N801
            def __iter__(self):
                return iter([type("N", (), {"key": "crm/contact", "connector": "fivetran:crm"})()])
        graph = graph()

        def sla(self, key):
            return type("S", (), {"owners": ("ops@example.com",),
                                  "may_run_without_approval": lambda self, t: True})()

    trips = props.record_outcome(aid, False, detail={"error": "x"}, resolution=Res(), now=NOW)
    assert isinstance(trips[0], Trip)
    pause = next(r for r in props.list() if r["type"] == "pause_connector")
    assert pause["status"] == "approved"
    down = FakeFivetran(fail_with=RuntimeError("503 Service Unavailable"))
    evaluate(_ctx(instance), props, clients=lambda: {"fivetran": down}, now=NOW + timedelta(minutes=1))
    retry = [r for r in props.list() if r["type"] == "pause_connector" and r["status"] == "approved"]
    assert len(retry) == 1 and retry[0]["action_id"] != pause["action_id"]
    assert props.store.audit_events(kind="breaker.pause_retry")
    # a person takes over: no more retries
    props.reset_breaker("connector:fivetran:crm", actor="ana@example.com", now=NOW + timedelta(minutes=2))
    up = FakeFivetran(fail_with=RuntimeError("still down"))
    evaluate(_ctx(instance), props, clients=lambda: {"fivetran": up}, now=NOW + timedelta(hours=2))
    assert [r for r in props.list() if r["type"] == "pause_connector" and r["status"] == "approved"] == []


def test_a_proposal_and_its_audit_events_commit_together(tmp_path, monkeypatch):
    from planning_fixtures import failure, fresh, scenario

    props = _props(tmp_path)
    sc = scenario(freshness=[fresh("dashboard/exec", slack=-900, blocker="crm/account")],
                  failures=[failure("f1", "unknown", "Something went wrong", connector="fivetran:crm",
                                    at=NOW - timedelta(hours=3))])
    calls = {"n": 0}
    real = props.store.audit

    def dies_on_third(*a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OperationalError("INSERT INTO audit_events", {}, Exception("terminating connection"))
        return real(*a, **k)

    monkeypatch.setattr(props.store, "audit", dies_on_third)
    with pytest.raises(OperationalError):
        props.run_cycle(sc.snapshot, sc.assessment, sc.resolution, now=NOW, llm=None)
    with props.store.session() as s:
        assert s.query(ProposalRow).count() == 0 and s.query(ActionRow).count() == 0
    assert props.store.audit_events() == []
    monkeypatch.setattr(props.store, "audit", real)
    r = props.run_cycle(sc.snapshot, sc.assessment, sc.resolution, now=NOW, llm=None)
    kinds = [e["kind"] for e in props.store.audit_events()]
    assert kinds.count("gate.decision") == len(r.decisions) and kinds.count("proposal") == 1


def test_agent_tables_refuse_rewrites_and_the_chain_shows_tampering(tmp_path):
    props = _props(tmp_path)
    aid = _approved(props, _resync())
    props.begin_call(aid, now=NOW)
    props.record_outcome(aid, True, detail={"ok": 1}, now=NOW)
    for i in range(3):
        props.store.append_audit("note", payload={"i": i})
    eng = props.store.engine
    for sql in ("update approvals set actor='mallory'", "delete from approvals", "update proposals set planner='x'",
                "delete from executions", "update executions set status='failed'",
                "update proposal_actions set status='failed'", "delete from proposal_actions",
                "update audit_events set actor='x'", "delete from audit_events"):
        with pytest.raises(Exception, match="append-only|cannot|settled"):
            with eng.begin() as c:
                c.execute(text(sql))
    assert props.store.verify_audit()["ok"]
    with eng.begin() as c:  # someone with the table owner's rights drops the trigger and edits history
        c.execute(text("drop trigger audit_events_no_delete"))
        third = c.execute(text("select id from audit_events order by id limit 1 offset 2")).scalar()
        c.execute(text("delete from audit_events where id=:i"), {"i": third})
    v = props.store.verify_audit()
    assert not v["ok"] and v["first_broken"]["id"] > third, (v, third)


def test_audit_verify_command(tmp_path):
    from click.testing import CliRunner

    from orchestrator.cli import cli

    url = f"sqlite:///{tmp_path}/store.db"
    st = open_store(url, cached=False)
    for i in range(5):
        st.append_audit("k", payload={"i": i})
    r = CliRunner().invoke(cli, ["audit", "verify", "--store", url])
    assert r.exit_code == 0, r.output
    assert "ok: 5 events" in r.output
    with st.engine.begin() as c:
        c.execute(text("drop trigger audit_events_no_update"))
        c.execute(text("update audit_events set payload='{\"i\": 99}' where id=3"))
    r = CliRunner().invoke(cli, ["audit", "verify", "--store", url])
    assert r.exit_code == 1
    assert "first broken link: event 3" in r.output


def test_proposals_cancel_command(tmp_path):
    from click.testing import CliRunner

    from orchestrator.cli import cli

    props = _props(tmp_path)
    aid = _approved(props, _resync())
    url = f"sqlite:///{tmp_path}/store.db"
    r = CliRunner().invoke(cli, ["proposals", "cancel", aid, "--actor", "ana@example.com", "--store", url])
    assert r.exit_code == 0, r.output
    assert f"{aid}: cancelled by ana@example.com" in r.output
    r = CliRunner().invoke(cli, ["proposals", "cancel", aid, "--actor", "ana@example.com", "--store", url])
    assert r.exit_code != 0 and "cancelled" in r.output


def test_launchpad_job_decision_cancel(tmp_path):
    from sensors.digest import decide_ids

    props = _props(tmp_path)
    aid = _approved(props, _resync())
    done, problems = decide_ids(props, [f"p-{aid}"], "cancel", "ana@example.com", comment="withdrawn")
    assert problems == [] and [d["status"] for d in done] == ["cancelled"]
    assert props.executable(NOW) == []


def test_failure_diagnosed_once_across_crashes_and_concurrent_ticks(tmp_path):
    from planning_fixtures import failure

    from orchestrator.diagnosis.memory import FailureMemory
    from sensors.failures import _record_diagnosis

    store = open_store(f"sqlite:///{tmp_path}/store.db", cached=False)
    memory = FailureMemory(store, embeddings=False)
    fails = [failure(f"run:{i}:step", "rate_limit", f"HTTP 429 Too Many Requests from api {i}") for i in range(3)]
    start = threading.Barrier(4)
    results: list[bool] = []

    def tick():  # four ticks whose cursors were all lost (crash before the cursor was saved)
        start.wait()
        for d in fails:
            results.append(_record_diagnosis(store, memory, d, NOW))

    threads = [threading.Thread(target=tick) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 3
    assert len(store.audit_events(kind="failure.diagnosed")) == 3
    with store.session() as s:
        assert s.execute(text("select count(*) from failure_occurrences")).scalar() == 3
        assert s.execute(text("select count(*) from diagnosed_failures")).scalar() == 3
    # the store dies in the middle of recording: nothing of it is kept, the next tick records it once
    real = store.audit

    def dies(*a, **k):
        raise OperationalError("INSERT INTO audit_events", {}, Exception("server closed the connection"))

    store.audit = dies
    d = failure("run:9:step", "rate_limit", "HTTP 429 Too Many Requests")
    with pytest.raises(OperationalError):
        _record_diagnosis(store, memory, d, NOW)
    store.audit = real
    with store.session() as s:
        assert s.execute(text("select count(*) from diagnosed_failures")).scalar() == 3
        assert s.execute(text("select count(*) from failure_occurrences")).scalar() == 3
    assert _record_diagnosis(store, memory, d, NOW) is True
    assert _record_diagnosis(store, memory, d, NOW) is False
    assert len(store.audit_events(kind="failure.diagnosed")) == 4
    assert store.verify_audit()["ok"]


def test_migration_0004_chains_existing_audit_events(tmp_path):
    from orchestrator.store import _make_engine, upgrade

    url = f"sqlite:///{tmp_path}/old.db"
    eng = _make_engine(url)
    upgrade(eng, "0003_approval_tokens")
    with eng.begin() as c:
        for i in range(3):
            c.execute(text("insert into audit_events (ts, actor, kind, subject, payload) values "
                           "(:ts, 'a', 'old', 's', :p)"), {"ts": f"2026-01-0{i + 1} 00:00:00.000000",
                                                          "p": f'{{"i": {i}}}'})
    upgrade(eng)
    st = open_store(url, cached=False)
    st.append_audit("new", payload={"x": 1})
    assert st.verify_audit() == {"ok": True, "checked": 4, "first_broken": None}


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(threshold=st.integers(1, 4),
       outcomes=st.lists(st.tuples(st.sampled_from(["crm", "ads"]), st.booleans()), min_size=1, max_size=10))
def test_store_breaker_trips_like_the_pure_breaker(tmp_path_factory, threshold, outcomes):
    """Whatever the sequence of automatic outcomes, the store-backed breaker (rows, counted in the
    outcome's transaction) trips on the same outcome as the pure ``CircuitBreaker``."""
    from orchestrator.planning import CircuitBreaker

    props = Proposals(open_store(f"sqlite:///{tmp_path_factory.mktemp('b')}/s.db", cached=False),
                      breaker_threshold=threshold)
    pure = CircuitBreaker(threshold=threshold, window=timedelta(hours=6))
    for i, (conn, ok) in enumerate(outcomes):
        at = NOW + timedelta(minutes=i)
        aid = _approved(props, _resync(f"rs-{i}", connector=f"fivetran:{conn}"), now=at)
        props.begin_call(aid, now=at)
        got = props.record_outcome(aid, ok, detail={}, now=at)
        want = pure.record(f"connector:fivetran:{conn}", ok, at)
        assert [t.subject for t in got] == ([want.subject] if want else []), (i, conn, ok)
        if want:
            assert got[0].failures == want.failures
    for conn in ("crm", "ads"):
        assert props.breaker(NOW + timedelta(minutes=len(outcomes))).is_open(f"connector:fivetran:{conn}") == \
            pure.is_open(f"connector:fivetran:{conn}")


def test_reconciler_settles_a_call_on_a_connector_that_is_gone(tmp_path, instance):
    from orchestrator.resources.errors import ConnectorAPIError

    props = _props(tmp_path)
    aid = _approved(props, _resync(connector="fivetran:ghost"))
    props.begin_call(aid, now=NOW)  # the tick died after writing ahead

    class Gone(FakeFivetran):
        def get_connector_details(self, cid):
            raise ConnectorAPIError("fivetran", "GET", f"connectors/{cid}", status_code=404,
                                    vendor_message=f"Connector with id '{cid}' doesn't exist", transient=False)

    class Down(FakeFivetran):
        def get_connector_details(self, cid):
            raise ConnectorAPIError("fivetran", "GET", f"connectors/{cid}", reason="could not connect")

    later = NOW + CALL_LEASE + timedelta(seconds=1)
    evaluate(_ctx(instance), props, clients=lambda: {"fivetran": Down()}, now=later)
    assert props.show(aid)["status"] == "executing"  # unknown while the API is down: next tick
    evaluate(_ctx(instance), props, clients=lambda: {"fivetran": Gone()}, now=later)
    shown = props.show(aid)
    assert shown["status"] == "failed" and shown["executions"][0]["detail"]["status_code"] == 404


def test_run_launch_written_ahead_once_and_retaken_only_after_the_lease(tmp_path):
    props = _props(tmp_path)
    aid = _approved(props, Action(action_id="m-1", type="materialize", reason="x", asset_keys=("stg_a",)))
    assert props.begin_runs(aid, ["m-1"], owner="tick-a", now=NOW) == ["m-1"]
    assert props.begin_runs(aid, ["m-1"], owner="tick-b", now=NOW + timedelta(seconds=5)) == []  # a's
    later = NOW + CALL_LEASE + timedelta(seconds=1)  # tick a died before Dagster saw the request
    assert props.begin_runs(aid, ["m-1"], owner="tick-c", now=later) == ["m-1"]
    assert props.begin_runs(aid, ["m-1"], owner="tick-d", now=later) == []
    props.record_execution(aid, "run", run_key="m-1", run_id="r-1", now=later)
    shown = props.show(aid)
    assert [(e["status"], e["run_id"]) for e in shown["executions"]] == [("launched", "r-1")]
    assert props.begin_runs(aid, ["m-1"], now=later + CALL_LEASE * 2) == []


def test_digest_cancel_link_withdraws_an_approved_action(tmp_path, monkeypatch):
    """The digest lists an automatic action approved but not started yet with a signed Cancel
    link; following it (GET shows a confirmation, POST cancels) withdraws the action with its
    audit event, and the execution sensor never runs it. A link for a started action is refused."""
    import re
    from html import unescape

    from starlette.testclient import TestClient

    from orchestrator.approvals.app import create_app
    from orchestrator.digest import build_digest, compose
    from orchestrator.digest.sample import record_sample
    from orchestrator.settings import Settings

    monkeypatch.setenv("ORCHESTRATOR_HOME", str(tmp_path / "home"))
    secret = b"cancel-test-secret-0123456789"
    now = datetime.now(UTC).replace(microsecond=0)
    props = _props(tmp_path)
    snap, asm, res = record_sample(props.store, now)
    waiting = _approved(props, Action(action_id="retry-crm", type="resync_table", reason="backed-off retry",
                                      connector="fivetran:crm", tables={"crm": ("account",)}), now=now)
    started = _approved(props, Action(action_id="resync-crm", type="resync_table", reason="drift",
                                      connector="fivetran:crm", tables={"crm": ("contact",)}), now=now)
    digest = build_digest(props.store, snap, asm, res, now=now + timedelta(minutes=1))
    props.begin_call(started, now=now + timedelta(minutes=2))  # this one starts after the digest was built
    out, _ = compose(digest, Settings(approval_base_url="http://127.0.0.1:8703"), secret=secret,
                     now=now + timedelta(minutes=1), placeholder=True)
    text_ = "\n".join(unescape(p.get_content()) for o in out for p in o.message.walk()
                      if p.get_content_type() == "text/plain")
    links = dict(re.findall(r"Cancel before it runs: http://127\.0\.0\.1:8703(/decide/([^/]+)/cancel\?token=\S+)",
                            text_)[i][::-1] for i in range(2))
    assert set(links) == {waiting, started}
    client = TestClient(create_app(store=props.store, secret=secret, settings=Settings(),
                                   clock=lambda: now + timedelta(minutes=3)), headers={"User-Agent": "t"})
    r = client.get(links[waiting])
    assert r.status_code == 200 and "Confirm cancellation" in r.text
    assert props.show(waiting)["status"] == "approved"  # a GET changes nothing
    path, token = links[waiting].split("?token=")
    r = client.post(path, data={"token": token, "comment": "not needed today"})
    assert r.status_code == 200 and "Cancelled" in r.text, r.text
    shown = props.show(waiting)
    assert shown["status"] == "cancelled" and shown["approvals"][-1]["decision"] == "cancel"
    assert "cancellation" in _kinds(props, waiting) and "approval.link" in _kinds(props, waiting)
    assert waiting not in [a.action_id for a in props.executable(now + timedelta(minutes=4))]
    path, token = links[started].split("?token=")
    r = client.post(path, data={"token": token})
    assert r.status_code == 409 and props.show(started)["status"] == "executing"
    assert props.store.verify_audit()["ok"]


@pytest.mark.parametrize("decision", ["approve", "reject", "cancel"])
def test_a_decision_and_its_audit_event_commit_together(tmp_path, monkeypatch, decision):
    """The store dies while writing the decision's audit event: neither the approval row nor the
    status change is kept; done again, the decision is recorded once with its event."""
    props = _props(tmp_path)
    aid = _approved(props, _resync())
    with props.store.session() as s:  # a pending action (approve/reject) or an approved one (cancel)
        if decision != "cancel":
            s.execute(text("insert into proposal_actions (id, proposal_id, type, source, status, decision, reason, "
                           "subjects, payload, created_at, updated_at) select 'pend-1', proposal_id, type, source, "
                           "'pending', 'await_approval', reason, subjects, payload, created_at, updated_at "
                           "from proposal_actions where id = :i"), {"i": aid})
    target = aid if decision == "cancel" else "pend-1"
    real = props.store.audit

    def dies(*a, **k):
        raise OperationalError("INSERT INTO audit_events", {}, Exception("server closed the connection"))

    monkeypatch.setattr(props.store, "audit", dies)
    fn = getattr(props, decision)
    before = props.show(target)
    with pytest.raises(OperationalError):
        fn(target, actor="ana@example.com", now=NOW)
    after = props.show(target)
    assert after["status"] == before["status"] and after["approvals"] == before["approvals"]
    monkeypatch.setattr(props.store, "audit", real)
    fn(target, actor="ana@example.com", now=NOW)
    kind = {"approve": "approval", "reject": "rejection", "cancel": "cancellation"}[decision]
    assert _kinds(props, target).count(kind) == 1
    assert len(props.show(target)["approvals"]) == len(before["approvals"]) + 1
    assert props.store.verify_audit()["ok"]


def test_launch_whose_tick_answer_was_lost_is_requested_again_by_the_next_tick(tmp_path, instance):
    """Issue 15 under load: an execution-sensor tick wrote a retry's launch ahead and returned its
    RunRequest, but the answer never reached the daemon (the evaluation timed out on a busy code
    server), so no run exists. The sensor's next tick requests it again at once, same run key
    (Dagster skips a run key it already launched) - not only after the 120 s call lease, which
    pushed such retries minutes past their backoff. A launch another sensor wrote ahead (the
    failure sensor's, settled by its own relaunch path) is still left to its owner."""
    from sensors.execution import build_execution_sensor

    url = f"sqlite:///{tmp_path}/store.db"
    props = Proposals(open_store(url, cached=False))
    now = datetime.now(UTC)
    aid = _approved(props, Action(action_id="rt-1", type="retry", reason="502", asset_keys=("crm/account",)), now=now)
    other = _approved(props, Action(action_id="rt-2", type="retry", reason="502", asset_keys=("crm/contact",)), now=now)
    assert props.begin_runs(other, ["rt-2"], owner="failure_diagnosis_sensor:abc", now=now) == ["rt-2"]
    sensor = build_execution_sensor(store_url=url, minimum_interval_seconds=1)

    def keys(out):
        reqs = out if isinstance(out, list) else (getattr(out, "run_requests", None) or [])
        return [r.run_key for r in reqs]

    assert keys(sensor(_ctx(instance))) == [aid]  # written ahead; the answer is lost: no run
    assert not instance.get_runs()
    assert keys(sensor(_ctx(instance))) == [aid]  # the next tick, well within the lease
    shown = props.show(aid)
    assert [e["status"] for e in shown["executions"]] == ["calling"]  # one launch record, retaken
    assert [e["status"] for e in props.show(other)["executions"]] == ["calling"]  # rt-2: never asked here
