"""While no sync is priced yet, one request, not one per refresh (orchestrator.core.decide.one_unpriced_ask).

Before any connector has a priced sync, the gate holds every budgeted run that syncs a connector
for a person ("over budget unknown": nothing shows it stays within the budget). That is the same
unknown each time, and the first sync that runs prices the others (a connector without history of
its own borrows the fleet's fit). Generated worlds 437 and 447 asked three such requests in one
cycle, 453 two ten minutes apart: each an approval asked. Now only the most urgent is asked; the
others are planned again each cycle and, while a request that syncs a connector is open, no new
one is asked.
"""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st
from test_gate_sync_budget import NOW, _refresh, _state

from orchestrator.core.decide import one_unpriced_ask
from orchestrator.core.incidents import ActionLedger
from orchestrator.core.records import Action
from orchestrator.planning import gate
from orchestrator.planning.gate import UNPRICED, GateDecision


def _blind_cycle():
    """Two refreshes syncing connectors no sync has priced yet (no sync history at all)."""
    snap, asm, res = _state(own_history=False, n=1)
    actions = [_refresh("ma", ("sis/students", "stg_students"), 0.2, priority=40),
               _refresh("mb", ("sis/contacts", "stg_contacts"), 0.2, priority=60)]
    return snap, gate(actions, snap, asm, res, now=NOW)


def test_two_unpriced_refreshes_in_one_cycle_make_one_request_worlds_437_447():
    snap, decisions = _blind_cycle()
    assert all(g.decision == "await_approval" and g.reason.startswith(UNPRICED) for g in decisions), decisions
    kept, held = one_unpriced_ask(decisions, ActionLedger(), snap)
    assert [g.action.action_id for g in kept] == ["mb"]  # the most urgent
    assert [a.action_id for a, _ in held] == ["ma"] and "mb" in held[0][1]
    # that request open: the next cycle asks none, and says which request it waits for
    ledger = ActionLedger()
    ledger.record(kept[0].action, "pending", NOW)
    kept, held = one_unpriced_ask(decisions, ledger, snap)
    assert kept == [] and len(held) == 2 and all("mb" in why for _, why in held)


def _decision(aid: str, priority: int, kind: str) -> GateDecision:
    a = Action(aid, "materialize", "r", asset_keys=("sis/students", "stg_students"), priority=priority,
               cause="freshness")
    if kind == "blind":
        return GateDecision(a, "await_approval", "low", 0.1, 1.0, f"{UNPRICED}: no sync history prices it")
    if kind == "over":
        return GateDecision(a, "await_approval", "medium", 0.4, 1.0, "over budget: pa would be overspent")
    return GateDecision(a, "execute", "low", 0.1, 1.0, "auto: low risk")


@settings(max_examples=60, deadline=None)
@given(kinds=st.lists(st.tuples(st.sampled_from(["blind", "over", "run"]), st.integers(0, 99)), max_size=8),
       open_sync=st.sampled_from([None, "pending", "approved", "executing", "declined", "succeeded"]))
def test_at_most_one_unpriced_request_and_nothing_else_is_touched(kinds, open_sync):
    snap, _ = _blind_cycle()
    decisions = [_decision(f"a{i}", p, k) for i, (k, p) in enumerate(kinds)]
    ledger = ActionLedger()
    if open_sync is not None:
        ledger.record(Action("r0", "retry", "r", connector="airbyte:sis"), open_sync, NOW - timedelta(hours=1))
    kept, held = one_unpriced_ask(decisions, ledger, snap)
    blind = [g for g in decisions if g.reason.startswith(UNPRICED)]
    kept_blind = [g for g in kept if g.reason.startswith(UNPRICED)]
    assert [g for g in kept if not g.reason.startswith(UNPRICED)] == [g for g in decisions if g not in blind]
    assert len(kept_blind) + len(held) == len(blind)
    if open_sync in ("pending", "approved", "executing"):
        assert kept_blind == []
    elif blind:
        assert len(kept_blind) == 1 and kept_blind[0].action.priority == max(g.action.priority for g in blind)
