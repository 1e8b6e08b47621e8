"""Fault injection on a real PostgreSQL: the server is killed (``pg_ctl -m immediate``) at each
step of an execution tick and of a planning cycle's record (every SQL statement and every
commit), restarted, and the next ticks run. After each: every action has exactly one settled
outcome and its audit trail, no connector call was made twice, the audit chain verifies.
Concurrent ticks and concurrent failing outcomes on the same store: one call per action, one
breaker trip. SQLite held locked by another writer: the tick waits or fails cleanly, never calls
without its write-ahead record."""

from __future__ import annotations

import sqlite3
import threading
from datetime import timedelta

import dagster as dg
import pytest
from planning_fixtures import NOW, failure, fresh, scenario
from sqlalchemy import event, select, text
from test_crash_safe_execution import FakeFivetran, _approved, _resync

from orchestrator.proposals import CALL_LEASE, Proposals
from orchestrator.store import open_store
from orchestrator.store.agent_models import ActionRow, ProposalRow
from pg_server import PG_BIN, PgServer
from sensors.execution import evaluate

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pg():
    if PG_BIN is None:
        pytest.skip("PostgreSQL server binaries not found (apt-get install postgresql; .ci/run does)")
    server = PgServer()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def instance():
    with dg.instance_for_test() as inst:
        yield inst


class Killer:
    """Kills the server just before the ``at``-th step (SQL statement or COMMIT) on ``engine``."""

    def __init__(self, server: PgServer | None, engine, at: int):
        self.server, self.engine, self.at, self.n, self.fired = server, engine, at, 0, False
        event.listen(engine, "before_cursor_execute", self._step)
        event.listen(engine, "commit", self._commit)

    def _step(self, *a, **k):
        self.n += 1
        if self.at and self.n == self.at and self.server is not None:
            self.fired = True
            self.server.kill()

    def _commit(self, conn):
        self._step()

    def remove(self):
        event.remove(self.engine, "before_cursor_execute", self._step)
        event.remove(self.engine, "commit", self._commit)


def _ctx(instance):
    return dg.build_sensor_context(instance=instance)


def _check_settled(props: Proposals, aid: str, api: FakeFivetran) -> str:
    shown = props.show(aid)
    outcomes = props.store.audit_events(kind="outcome", subject=f"action:{aid}")
    assert shown["status"] in ("succeeded", "failed"), shown
    assert len(outcomes) == 1, outcomes
    assert len(api.calls) <= 1, api.calls  # nothing called twice
    if api.calls:  # the call happened: the connector's state says so, it is not a failure
        assert shown["status"] == "succeeded", shown
    execs = shown["executions"]
    assert len(execs) <= 1 and all(e["status"] in ("succeeded", "failed") for e in execs), execs
    kinds = [e["kind"] for e in props.store.audit_events(subject=f"action:{aid}")]
    assert "gate.decision" in kinds
    if execs:
        assert "execution" in kinds
    v = props.store.verify_audit()
    assert v["ok"], v
    return shown["status"]


def _steps_of_clean_tick(pg, instance) -> int:
    url = pg.create_db("count_steps")
    store = open_store(url, cached=False)
    props = Proposals(store)
    _approved(props, _resync())
    k = Killer(None, store.engine, 0)
    evaluate(_ctx(instance), props, clients=lambda: {"fivetran": FakeFivetran()}, now=NOW)
    k.remove()
    store.dispose()
    return k.n


def test_store_killed_at_each_step_of_an_execution_tick(pg, instance):
    steps = _steps_of_clean_tick(pg, instance)
    assert steps >= 10
    seen: dict[str, int] = {}
    for at in range(1, steps + 1):
        url = pg.create_db(f"exec_{at}")
        store = open_store(url, cached=False)
        props = Proposals(store)
        aid = _approved(props, _resync())
        api = FakeFivetran()
        killer = Killer(pg, store.engine, at)
        try:
            evaluate(_ctx(instance), props, clients=lambda: {"fivetran": api}, now=NOW)
        except Exception:  # noqa: BLE001 - the tick failed with the store: Dagster records a failed tick
            pass
        killer.remove()
        assert killer.fired
        pg.start()
        for i in (1, 2):  # recovery: within two ticks every action is settled
            evaluate(_ctx(instance), props, clients=lambda: {"fivetran": api},
                     now=NOW + i * (CALL_LEASE + timedelta(seconds=1)))
        status = _check_settled(props, aid, api)
        seen[status] = seen.get(status, 0) + 1
        store.dispose()
    assert pg.kills >= steps
    assert seen.get("succeeded", 0) >= 1, seen


def test_store_killed_at_each_step_of_recording_a_cycle(pg):
    sc = scenario(freshness=[fresh("dashboard/exec", slack=-900, blocker="crm/account")],
                  failures=[failure("f1", "unknown", "Something went wrong within the destination connector",
                                    connector="fivetran:crm", at=NOW - timedelta(hours=3))])
    url = pg.create_db("cycle_count")
    store = open_store(url, cached=False)
    k = Killer(None, store.engine, 0)
    Proposals(store).run_cycle(sc.snapshot, sc.assessment, sc.resolution, now=NOW, llm=None, use_memory=False)
    k.remove()
    steps = k.n
    store.dispose()
    for at in range(1, steps + 1, max(1, steps // 12)):
        url = pg.create_db(f"cycle_{at}")
        store = open_store(url, cached=False)
        props = Proposals(store)
        killer = Killer(pg, store.engine, at)
        try:
            props.run_cycle(sc.snapshot, sc.assessment, sc.resolution, now=NOW, llm=None, use_memory=False)
        except Exception:  # noqa: BLE001
            pass
        killer.remove()
        pg.start()
        with store.session() as s:  # all or nothing
            proposals = s.scalars(select(ProposalRow.id)).all()
            n_actions = s.scalar(text("select count(*) from proposal_actions"))
        events = store.audit_events(kind="proposal")
        assert len(events) == len(proposals)
        if not proposals:
            assert n_actions == 0 and store.audit_events() == []
        r = props.run_cycle(sc.snapshot, sc.assessment, sc.resolution, now=NOW + timedelta(minutes=1),
                            llm=None, use_memory=False)
        with store.session() as s:
            ids = s.scalars(select(ActionRow.id)).all()
        assert len(ids) == len(set(ids)) == len(r.decisions) + len(r.rejected)
        for aid in ids:  # every action has its gate decision on record
            assert store.audit_events(kind="gate.decision", subject=f"action:{aid}")
        assert store.verify_audit()["ok"]
        store.dispose()


def test_concurrent_ticks_call_each_connector_once_on_postgres(pg, instance):
    url = pg.create_db("concurrent")
    store = open_store(url, cached=False)
    props = Proposals(store, breaker_threshold=100)
    ids = [_approved(props, _resync(f"rs-{i}", connector=f"fivetran:c{i}")) for i in range(12)]
    api = FakeFivetran()
    lock = threading.Lock()
    orig = api._make_connector_request

    def call(*a, **k):
        with lock:
            return orig(*a, **k)

    api._make_connector_request = call
    start = threading.Barrier(4)
    errors: list = []

    def tick():
        start.wait()
        try:
            evaluate(_ctx(instance), Proposals(open_store(url, cached=False)), clients=lambda: {"fivetran": api},
                     now=NOW)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=tick) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(c[1] for c in api.calls) == sorted(f"c{i}/schemas/tables/resync" for i in range(12))
    for aid in ids:
        assert props.show(aid)["status"] == "succeeded"
        assert len(store.audit_events(kind="outcome", subject=f"action:{aid}")) == 1
    assert store.verify_audit()["ok"]
    store.dispose()


def test_breaker_trips_exactly_once_under_concurrent_outcomes_on_postgres(pg):
    url = pg.create_db("breaker")
    store = open_store(url, cached=False)
    props = Proposals(store, breaker_threshold=3)
    ids = [_approved(props, _resync(f"rs-{i}")) for i in range(10)]
    for aid in ids:
        props.begin_call(aid, now=NOW)
    start = threading.Barrier(len(ids))
    trips: list = []

    def fail(aid):
        p = Proposals(open_store(url, cached=False), breaker_threshold=3)
        start.wait()
        trips.extend(p.record_outcome(aid, False, detail={"error": "boom"}, now=NOW + timedelta(minutes=1)))

    threads = [threading.Thread(target=fail, args=(a,)) for a in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(trips) == 1 and trips[0].failures == 3
    with store.session() as s:
        assert s.scalar(text("select count(*) from breaker_trips")) == 1
        assert s.scalar(text("select count(*) from breaker_events where not success")) == 10
    assert store.verify_audit()["ok"]
    # the role that owns the tables cannot rewrite settled history either
    for sql in ("update executions set status='succeeded'", "delete from approvals", "truncate proposals cascade",
                "update proposal_actions set status='succeeded'"):
        with pytest.raises(Exception, match="append-only|cannot|settled"):
            with store.engine.begin() as c:
                c.execute(text(sql))
    store.dispose()


def test_sqlite_held_locked_the_tick_waits_or_fails_without_calling(tmp_path, instance, monkeypatch):
    monkeypatch.setenv("ORCHESTRATOR_SQLITE_TIMEOUT", "1")
    url = f"sqlite:///{tmp_path}/store.db"
    props = Proposals(open_store(url, cached=False))
    aid = _approved(props, _resync())
    api = FakeFivetran()
    blocker = sqlite3.connect(str(tmp_path / "store.db"), isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")  # another writer holds the lock through the whole tick
    try:  # the write-ahead record cannot be written: the tick stops there (logged), nothing called
        evaluate(_ctx(instance), props, clients=lambda: {"fivetran": api}, now=NOW)
    finally:
        blocker.execute("ROLLBACK")
    assert api.calls == [] and props.show(aid)["status"] == "approved"
    # a lock released within the timeout: the tick waits and goes on
    blocker.execute("BEGIN IMMEDIATE")
    threading.Timer(0.3, lambda: blocker.execute("ROLLBACK")).start()
    evaluate(_ctx(instance), props, clients=lambda: {"fivetran": api}, now=NOW)
    assert len(api.calls) == 1 and props.show(aid)["status"] == "succeeded"
    blocker.close()


class FailedConnectors:
    """A Fivetran client whose connectors' latest syncs failed (what the failure sensor reads)."""

    def __init__(self, ids):
        self.ids = ids

    def get_groups(self):
        return {"items": [{"id": "g"}]}

    def list_connectors_for_group(self, group_id):
        return [{"id": cid, "schedule_type": "auto", "succeeded_at": "2026-03-10T05:00:00Z",
                 "failed_at": f"2026-03-10T0{6 + i}:00:00Z",
                 "status": {"setup_state": "connected", "sync_state": "scheduled",
                            "tasks": [{"code": "rate_limit", "message": f"HTTP 429 Too Many Requests ({cid})"}]}}
                for i, cid in enumerate(self.ids)]


def test_store_killed_at_each_step_of_a_failure_sensor_tick_diagnoses_once(pg, instance):
    """The failure sensor's tick with the store killed at each of its SQL steps, then run again
    twice as if its cursor had been lost: one diagnosis (row, memory occurrence, audit event) per
    failure id, whatever step the store died at."""
    from orchestrator.core.graph import CONNECTOR_TABLE, AssetGraph, AssetNode
    from orchestrator.diagnosis.memory import FailureMemory
    from orchestrator.snapshot import ConnectorReader
    from sensors import ProjectContext
    from sensors.failures import failures_tick

    ids = ["crm", "ads", "billing"]
    ctx = ProjectContext(graph=AssetGraph([AssetNode(f"{c}/t", role=CONNECTOR_TABLE, connector=f"fivetran:{c}",
                                                     kinds=frozenset({"fivetran"})) for c in ids]), resolution=None)
    now = NOW + timedelta(hours=1)

    def tick(store):
        return failures_tick(instance, ctx, {}, now=now, connectors=ConnectorReader(fivetran=FailedConnectors(ids)),
                             memory=FailureMemory(store, embeddings=False), store=store)

    def counts(store):
        with store.session() as s:
            return (s.scalar(text("select count(*) from diagnosed_failures")),
                    s.scalar(text("select count(*) from failure_occurrences")),
                    len(store.audit_events(kind="failure.diagnosed")))

    url = pg.create_db("fail_count")
    store = open_store(url, cached=False)
    k = Killer(None, store.engine, 0)
    new, _, _ = tick(store)
    k.remove()
    steps = k.n
    assert len(new) == 3 and counts(store) == (3, 3, 3)
    store.dispose()
    for at in range(1, steps + 1, max(1, steps // 6)):  # ~6 points spread over the kinds of step
        store = open_store(pg.create_db(f"fail_{at}"), cached=False)
        killer = Killer(pg, store.engine, at)
        try:
            tick(store)
        except Exception:  # noqa: BLE001 - the tick failed with the store
            pass
        killer.remove()
        assert killer.fired
        pg.start()
        tick(store)  # the cursor was lost: the same failures are read again, twice
        tick(store)
        assert counts(store) == (3, 3, 3), (at, counts(store))
        assert store.verify_audit()["ok"]
        store.dispose()


def test_app_role_disabling_the_triggers_is_caught_by_audit_verify(pg):
    """The role that owns the tables can disable the triggers on PostgreSQL (ALTER TABLE ...
    DISABLE TRIGGER); a rewrite of history then still breaks the hash chain and ``audit verify``
    names the first broken link."""
    store = open_store(pg.create_db("tamper"), cached=False)
    for i in range(6):
        store.append_audit("note", payload={"i": i})
    assert store.verify_audit()["ok"]
    with store.engine.begin() as c:
        c.execute(text("alter table audit_events disable trigger user"))
        target = c.scalar(text("select id from audit_events order by id offset 3 limit 1"))
        c.execute(text("update audit_events set payload = '{\"i\": 99}' where id = :i"), {"i": target})
        c.execute(text("alter table audit_events enable trigger user"))
    v = store.verify_audit()
    assert not v["ok"] and v["first_broken"]["id"] == target, v
    store.dispose()
