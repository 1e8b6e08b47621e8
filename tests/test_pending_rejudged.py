"""Work a person is still asked for is judged again each cycle (orchestrator.core.decide.pending_rechecks).

The planner does not propose again what waits for a person's answer, so a refresh held as
"over budget unknown" (no sync history priced its connector yet) waited for the answer even once
the connectors' own schedules had priced it: generated world 14008 held a $2 refresh of a $48.41
budget at 05:30 (the approvers' night), could price it from 08:37 and ran it at the 12:30 answer,
past the 07:30 and 11:30 deadlines. Now the pending request goes through the gate again with the
cycle's other work; what the gate executes supersedes the request (withdrawn), anything else still
waits for the same answer without a new request.
"""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st
from test_gate_sync_budget import NOW, _refresh, _state

from orchestrator.core.decide import decide
from orchestrator.core.incidents import ActionLedger
from orchestrator.planning import gate
from orchestrator.planning.gate import UNPRICED
from orchestrator.simulator import load_scenario
from orchestrator.simulator.bench import resolve_policies, simulate
from orchestrator.simulator.metrics import deadlines_of
from orchestrator.simulator.planners.sla import SLAPlanner
from orchestrator.simulator.worlds import generate_world


@settings(max_examples=40, deadline=None)
@given(own_history=st.booleans(), n=st.integers(0, 6), budget=st.sampled_from([0.5, 3.0, 30.0, 300.0]),
       cost=st.floats(0.0, 20.0), status=st.sampled_from(["pending", "approved", "declined"]),
       asked_h=st.floats(0.1, 6.0))
def test_a_pending_request_runs_only_as_the_gate_allows_and_is_never_asked_twice(
        own_history, n, budget, cost, status, asked_h):
    snap, asm, res = _state(own_history=own_history, n=n, budget_a=budget, budget_b=budget)
    asked = _refresh("asked", ("sis/students", "stg_students"), cost)
    ledger = ActionLedger()
    ledger.record(asked, status, NOW - timedelta(hours=asked_h))
    d = decide(snap, res, now=NOW, ledger=ledger)
    copies = [g for g in d.decisions if g.action.action_id.startswith("asked-rejudged-")]
    # nothing asked twice: a re-judged request either runs or stays the one request already open
    assert all(g.decision == "execute" for g in copies), [(g.decision, g.reason) for g in copies]
    assert [pid for pid, _ in d.superseded] == (["asked"] if copies else [])
    if status != "pending":
        assert not copies  # only requests still waiting for an answer are judged again
    if copies:
        # the gate's own verdict on the same work, asked afresh: it would run it by itself
        fresh = gate([asked], snap, asm, res, now=NOW)
        assert fresh[0].decision == "execute", fresh[0].reason
    if n < 2 and status == "pending":
        # nothing prices a sync yet (no connector has two syncs): the person still decides
        assert not copies and not any(g.reason.startswith(UNPRICED) and g.action.action_id.startswith("asked")
                                      for g in d.decisions)


def test_world_14008_runs_the_refresh_once_the_native_syncs_price_it(tmp_path):
    """Main met 1 of 3 deadlines (the 07:30 and 11:30 UTC ones lost waiting for the answer)."""
    seed = 14008
    sc = load_scenario(generate_world(seed, tmp_path))
    planner = SLAPlanner()
    res = resolve_policies(sc, sc.realise(seed))
    r = simulate(sc, seed, planner, res, deadlines_of(res, sc.t0, sc.horizon_s))
    assert r.unsafe_actions == 0, r.unsafe_by_kind
    assert r.met >= 2, (r.met, r.deadlines, r.note)
    withdrawn = [e for e in planner.ledger.entries.values() if e.status == "withdrawn"]
    assert withdrawn and all(e.action.type == "materialize" for e in withdrawn)


def test_a_request_priced_since_it_was_asked_runs_and_is_withdrawn():
    snap, _, res = _state(own_history=True, n=6, budget_a=300.0, budget_b=300.0)
    asked = _refresh("asked", ("sis/students", "stg_students"), 0.5)
    ledger = ActionLedger()
    ledger.record(asked, "pending", NOW - timedelta(hours=2))
    d = decide(snap, res, now=NOW, ledger=ledger)
    assert [g.decision for g in d.decisions if g.action.action_id.startswith("asked-rejudged-")] == ["execute"]
    assert [pid for pid, _ in d.superseded] == ["asked"]
    # far over a tiny budget: it stays with the person, and no second request is made
    snap, _, res = _state(own_history=True, n=6, budget_a=0.5, budget_b=0.5)
    d = decide(snap, res, now=NOW, ledger=ledger)
    assert d.superseded == [] and not [g for g in d.decisions if g.action.action_id.startswith("asked")]
