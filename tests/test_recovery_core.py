"""orchestrator.recovery (pure): one attribution per failure, stored diagnoses reused, stale
proposals recognised; properties over generated graphs and failures (hypothesis)."""

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.assessment import diagnose_failures
from orchestrator.core.graph import CONNECTOR_TABLE, DBT_MODEL, AssetGraph, AssetNode
from orchestrator.core.records import DiagnosedFailure, FailureRecord
from orchestrator.recovery import (
    blocked_connectors,
    cycle_configs,
    failure_assets,
    failure_subject,
    stale_reason,
    stored_diagnoses,
)

T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)


@st.composite
def worlds(draw):
    n_conn = draw(st.integers(1, 4))
    nodes, tables = [], {}
    for c in range(n_conn):
        conn = f"fivetran:c{c}"
        tables[conn] = [f"s{c}/t{i}" for i in range(draw(st.integers(1, 5)))]
        nodes += [AssetNode(k, role=CONNECTOR_TABLE, connector=conn, kinds=frozenset({"fivetran"}), owners=("team:x",))
                  for k in tables[conn]]
    all_tables = [k for ks in tables.values() for k in ks]
    models = [f"m{i}" for i in range(draw(st.integers(0, 4)))]
    for m in models:
        ups = draw(st.lists(st.sampled_from(all_tables), min_size=1, max_size=3, unique=True))
        nodes.append(AssetNode(m, role=DBT_MODEL, upstream=tuple(ups)))
    return AssetGraph(nodes), tables, models


@settings(max_examples=30, deadline=None)
@given(worlds(), st.data())
def test_a_connector_failure_touches_every_table_of_its_connector(world, data):
    graph, tables, models = world
    conn = data.draw(st.sampled_from(sorted(tables)))
    # the connector's own failed sync, or a failed step of one of its tables: the same attribution
    on_table = data.draw(st.none() | st.sampled_from(tables[conn]))
    f = FailureRecord("f", T0, "boom", "fivetran" if on_table is None else "dagster",
                      asset_key=on_table, connector=conn if on_table is None else None)
    assert failure_assets(f, graph) == sorted(tables[conn])
    assert failure_subject(f, graph) == conn
    if models:
        m = data.draw(st.sampled_from(models))
        fm = FailureRecord("g", T0, "boom", "dbt", asset_key=m)
        assert failure_assets(fm, graph) == [m] and failure_subject(fm, graph) == m


@settings(max_examples=30, deadline=None)
@given(worlds(), st.data())
def test_stale_proposals(world, data):
    graph, tables, models = world
    conns = sorted(tables)
    broken = data.draw(st.sampled_from(conns))
    category = data.draw(st.sampled_from(["auth_expired", "permission_denied", "config_error", "rate_limit"]))
    d = DiagnosedFailure(FailureRecord("f", T0, "401", "fivetran", connector=broken), category, False, 0.9, ("401",))
    recovered = data.draw(st.booleans())
    last = {k: T0 + timedelta(minutes=5) for k in tables[broken]} if recovered else {}
    blocked = blocked_connectors([d], last, graph)
    needs_person = category != "rate_limit" and not recovered
    assert (broken in blocked) == needs_person
    keys = data.draw(st.lists(st.sampled_from(tables[broken]), min_size=1, max_size=3, unique=True))
    created = T0 + timedelta(minutes=1)
    why = stale_reason("materialize", keys, None, created, graph=graph, blocked=blocked, last_success=last)
    if needs_person:
        assert why and why.startswith("cannot succeed") and category in why
    elif recovered:  # refreshed after it was proposed: already done
        assert why and why.startswith("already done")
    else:
        assert why is None
    # a pause or an escalation is never stale: it is the ask
    assert stale_reason("pause_connector", (), broken, created, graph=graph, blocked=blocked, last_success=last) is None
    # a run refreshed only partly is still a valid ask
    if len(keys) > 1 and not needs_person:
        partly = {keys[0]: created + timedelta(minutes=1)}
        assert stale_reason("retry", keys, None, created, graph=graph, blocked={}, last_success=partly) is None


def test_stored_diagnosis_is_reused_not_made_again(tmp_path, monkeypatch):
    from orchestrator.store import open_store
    from sensors.failures import _record_diagnosis

    graph = AssetGraph([AssetNode("s/t", role=CONNECTOR_TABLE, connector="fivetran:c", kinds=frozenset({"fivetran"}))])
    store = open_store(f"sqlite:///{tmp_path}/s.db", cached=False)
    f = FailureRecord("sync:fivetran:c:1", T0, "HTTP 502 Bad Gateway", "fivetran", connector="fivetran:c")
    stored = DiagnosedFailure(f, "source_unavailable", True, 0.77, ("502 from the source",))
    assert _record_diagnosis(store, None, stored, T0, subject="fivetran:c", assets=["s/t"])
    assert not _record_diagnosis(store, None, stored, T0)  # once per failure id
    known = stored_diagnoses(store, [f.failure_id, "other"])
    assert set(known) == {f.failure_id}

    import orchestrator.diagnosis as diagnosis

    def no_second_diagnosis(*a, **k):
        raise AssertionError("diagnosed again")

    monkeypatch.setattr(diagnosis, "diagnose", no_second_diagnosis)
    (d,) = diagnose_failures([f], graph, None, known=known)
    assert (d.category, d.transient, d.confidence, d.evidence) == ("source_unavailable", True, 0.77,
                                                                   ("502 from the source",))
    assert d.failure is f
    payload = store.audit_events(kind="failure.diagnosed")[0]["payload"]
    assert payload["subject"] == "fivetran:c" and payload["assets"] == ["s/t"]


def test_backoff_scale_and_automation_come_from_the_settings(monkeypatch):
    monkeypatch.setenv("ORCHESTRATOR_BACKOFF_SCALE", "0.1")
    monkeypatch.setenv("ORCHESTRATOR_AUTOMATION", "recommend")
    planner, gate = cycle_configs()
    assert planner.backoff["source_unavailable"].base_s == 60
    assert gate.rollout_cap == "recommend"
    monkeypatch.delenv("ORCHESTRATOR_BACKOFF_SCALE")
    monkeypatch.delenv("ORCHESTRATOR_AUTOMATION")
    planner, gate = cycle_configs()
    assert planner.backoff["source_unavailable"].base_s == 600 and gate.rollout_cap is None


def test_lost_launch_is_retaken_by_one_taker_and_capped(tmp_path):
    """``unlaunched_runs`` lists the failure sensor's open launches from earlier ticks only (not
    this tick's, not another sensor's, not a finished action's); ``retake_launch`` is conditional
    on the lease read (two takers of the same read: one wins), audited, counted, and a launch
    requested again ``max_relaunches`` times is left to the execution sensor."""
    from orchestrator.recovery import retake_launch, unlaunched_runs
    from orchestrator.store import open_store
    from orchestrator.store.agent_models import ActionRow, ExecutionRow, ProposalRow

    store = open_store(f"sqlite:///{tmp_path}/s.db", cached=False)
    lease = T0 + timedelta(minutes=2)
    with store.session() as s:
        s.add(ProposalRow(id="p1", planner="test", created_at=T0))
        s.flush()
        for aid, status in (("a-open", "executing"), ("a-done", "succeeded"), ("a-other", "executing"),
                            ("a-now", "executing")):
            s.add(ActionRow(id=aid, proposal_id="p1", type="retry", status=status, payload={"action_id": aid},
                            created_at=T0, updated_at=T0))
        s.flush()
        s.add_all([
            ExecutionRow(action_id="a-open", kind="run", run_key="a-open", status="calling", started_at=T0,
                         idempotency_key="run:a-open", lease_until=lease, owner="failure_diagnosis_sensor:1"),
            ExecutionRow(action_id="a-done", kind="run", run_key="a-done", status="calling", started_at=T0,
                         idempotency_key="run:a-done", lease_until=lease, owner="failure_diagnosis_sensor:1"),
            ExecutionRow(action_id="a-other", kind="run", run_key="a-other", status="calling", started_at=T0,
                         idempotency_key="run:a-other", lease_until=lease, owner="host:1:executor"),
            ExecutionRow(action_id="a-now", kind="run", run_key="a-now", status="calling",
                         started_at=T0 + timedelta(seconds=20), idempotency_key="run:a-now", lease_until=lease,
                         owner="failure_diagnosis_sensor:2"),
        ])
    now = T0 + timedelta(seconds=15)
    (launch,) = unlaunched_runs(store, started_before=now)
    assert launch["action_id"] == "a-open" and launch["relaunches"] == 0
    assert retake_launch(store, launch, owner="failure_diagnosis_sensor:3", now=now)
    assert not retake_launch(store, launch, owner="failure_diagnosis_sensor:4", now=now)  # the same read: lost
    audits = [a for a in store.audit_events(kind="execution") if a["payload"].get("relaunched")]
    assert len(audits) == 1 and audits[0]["subject"] == "action:a-open"
    for i in range(1, 10):
        (launch,) = unlaunched_runs(store, started_before=now)
        assert launch["relaunches"] == i
        assert retake_launch(store, launch, owner="failure_diagnosis_sensor:5", now=now + timedelta(seconds=i))
    assert unlaunched_runs(store, started_before=now) == []  # 10 times: left to the execution sensor
