"""One decision cycle (orchestrator.core.decide) and incidents that close (core/incidents.py)."""

from __future__ import annotations

from datetime import timedelta

from planning_fixtures import NOW, failure, fresh, scenario
from test_simulator_engine import tiny

from orchestrator.core.decide import Decision, decide
from orchestrator.core.incidents import ActionLedger
from orchestrator.core.records import Action
from orchestrator.planning import gate, plan, validate

AUTH = "401 Unauthorized: the OAuth access token has expired; re-authenticate the connection"


def _decide(sc, **kw) -> Decision:
    return decide(sc.snapshot, sc.resolution, assessment=sc.assessment, now=NOW, **kw)


def test_decide_is_plan_validate_gate_in_one_typed_result():
    sc = scenario(freshness=[fresh("dashboard/exec", slack=-900, blocker="crm/account")])
    d = _decide(sc)
    p = plan(sc.snapshot, sc.assessment, sc.resolution, now=NOW)
    acc, rej = validate(p, sc.snapshot, sc.resolution, now=NOW)
    ref = gate(acc, sc.snapshot, sc.assessment, sc.resolution, now=NOW)
    assert [x.action for x in d.decisions] == [x.action for x in ref]
    assert [x.decision for x in d.decisions] == [x.decision for x in ref] == ["execute"]
    assert d.counts()["execute"] == 1 and d.to_execute and not d.awaiting_approval
    # assessed by decide itself when not given (real assessment on the fixture's snapshot)
    d2 = decide(sc.snapshot, sc.resolution, now=NOW)
    assert d2.assessment.freshness and isinstance(d2.decisions, list)


def test_reviewer_output_is_validated_and_gated():
    from orchestrator.core.decide import Review

    sc = scenario(freshness=[fresh("dashboard/exec", slack=-900, blocker="crm/account")])

    def evil(plan, *a):  # a reviewer proposing a full resync and an unknown asset
        from dataclasses import replace

        bad = [Action("x1", "full_resync", "llm", connector="fivetran:crm", source="llm"),
               Action("x2", "materialize", "llm", asset_keys=("nope",), source="llm")]
        return Review(replace(plan, actions=list(plan.actions) + bad, planner="llm:test"), fallback_reason=None)

    d = _decide(sc, reviewer=evil)
    assert d.plan.planner == "llm:test"
    assert any("unknown asset" in r for _, r in d.rejected)
    fr = [x for x in d.decisions if x.action.type == "full_resync"] + [a for a, _ in d.rejected if a.type == "full_resync"]
    assert fr and all(getattr(x, "decision", "rejected") != "execute" for x in fr)


def _auth_scenario(fid="f1", at=None):
    return scenario(failures=[failure(fid, "auth_expired", AUTH, connector="fivetran:crm", transient=False,
                                      at=at or NOW - timedelta(minutes=30))])


def test_a_pending_pause_is_not_asked_again_for_the_next_failure():
    ledger = ActionLedger()
    d1 = _decide(_auth_scenario("f1"), ledger=ledger)
    (pause,) = [x for x in d1.decisions if x.action.type == "pause_connector"]
    assert pause.decision == "await_approval" and pause.action.cause == "auth_expired"
    assert [e.category for e in d1.plan.escalations] == ["auth_expired"]
    ledger.record(pause.action, "pending", NOW)
    # 45 minutes later the connector's own schedule failed again: a new failure, same cause
    d2 = _decide(_auth_scenario("f2", at=NOW - timedelta(minutes=5)), ledger=ledger)
    assert not [x for x in d2.decisions if x.action.type == "pause_connector"]
    assert any("already pending" in r for _, r in d2.suppressed)
    assert d2.plan.escalations  # the owners are still told


def test_a_repaired_incident_is_resumed_and_retried_then_closes():
    sc = _auth_scenario("f1")
    ledger = ActionLedger()
    (pause,) = [x.action for x in _decide(sc, ledger=ledger).decisions if x.action.type == "pause_connector"]
    ledger.record(pause, "pending", NOW - timedelta(minutes=29))
    # a person approves (and fixes the credentials); the pause runs
    ledger.update(pause.action_id, "approved", NOW - timedelta(minutes=10), by_person=True)
    ledger.update(pause.action_id, "succeeded", NOW - timedelta(minutes=10))
    d = _decide(sc, ledger=ledger)
    types = {x.action.type: x for x in d.decisions}
    assert set(types) == {"resume_connector", "retry"}, [(x.action.type, x.reason) for x in d.decisions]
    assert types["retry"].decision == "execute", types["retry"].reason  # no second approval for the retry
    assert "repaired" in types["retry"].reason and types["retry"].confidence == 1.0
    assert types["resume_connector"].action.connector == "fivetran:crm"
    assert not d.plan.escalations
    # the resume ran: the connector is no longer paused and a new resume is never proposed
    ledger.record(types["resume_connector"].action, "succeeded", NOW)
    ledger.record(types["retry"].action, "executing", NOW)
    d2 = _decide(sc, ledger=ledger)
    assert not ledger.paused("fivetran:crm")
    assert not [x for x in d2.decisions if x.action.type in ("resume_connector", "pause_connector")]
    assert not [x for x in d2.decisions if x.action.type == "retry"]  # the retry is still running


def test_unrepaired_paused_connector_is_not_paused_again():
    sc = _auth_scenario("f1")
    sc.snapshot.paused_connectors = {"fivetran:crm"}
    d = _decide(sc, ledger=ActionLedger())
    assert not d.decisions and d.plan.escalations
    assert "waiting for a person" in d.plan.rationale


def test_an_action_that_succeeded_is_not_proposed_again_for_the_same_cycle():
    sc = scenario(freshness=[fresh("dashboard/exec", slack=-900, blocker="crm/account")])
    ledger = ActionLedger()
    (first,) = _decide(sc, ledger=ledger).decisions
    ledger.record(first.action, "succeeded", NOW - timedelta(minutes=1))
    d = _decide(sc, ledger=ledger)
    assert not d.decisions and any("already done for this cycle" in r for _, r in d.suppressed)
    # ... unless an input landed since it ran (then it is a new run on newer data)
    (k,) = [k for k in first.action.asset_keys if k == "stg_account"] or [first.action.asset_keys[-1]]
    ledger.update(first.action.action_id, "succeeded", NOW - timedelta(hours=30))
    assert _decide(sc, ledger=ledger).decisions


def test_simulated_credentials_incident_closes_with_at_most_two_approvals(tmp_path):
    from orchestrator.simulator import load_scenario
    from orchestrator.simulator.bench import resolve_policies
    from orchestrator.simulator.engine import Simulation
    from orchestrator.simulator.planners import make_planner

    path = tiny(tmp_path, extra="""
        approvals: {delay: 45m, approve: 1.0}
        faults:
          - {name: creds, category: auth_expired, targets: ["fivetran:src"], at: ["20:50"], fix: human}
        """)
    sc = load_scenario(path)
    sim = Simulation(sc, 0)
    sim.set_resolution(resolve_policies(sc, sim.world))
    p = make_planner("sla")
    p.start(sim)
    sim.run()
    asked = {a.action.action_id: a.action for a in sim.actions if a.decision in ("approved", "declined")}
    types = sorted(a.type for a in asked.values())
    # one request per incident: approving the pause covers resuming and retrying once repaired
    assert sim.approvals_requested == 1, types
    assert types.count("pause_connector") == 1
    resumed = [a for a in sim.actions if a.action.type == "resume_connector"]
    assert resumed and "fivetran:src" not in sim.paused  # the incident closed


def test_decide_leaves_the_garbage_collector_as_it_found_it():
    """decide() pauses the cyclic collector for the cycle (its full collections walk the whole
    heap); the caller's setting comes back, also when the cycle raises, and the cycle's own
    allocations run with it off."""
    import gc

    sc = scenario(freshness=[fresh("dashboard/exec", slack=-900, blocker="crm/account")])
    seen = []

    def reviewer(plan, *a):
        seen.append(gc.isenabled())
        raise RuntimeError("reviewer down")

    was = gc.isenabled()
    try:
        for enabled in (True, False):
            (gc.enable if enabled else gc.disable)()
            assert _decide(sc).decisions
            assert gc.isenabled() is enabled
            try:
                _decide(sc, reviewer=reviewer)
            except RuntimeError:
                pass
            assert gc.isenabled() is enabled
        assert seen == [False, False]
    finally:
        (gc.enable if was else gc.disable)()
