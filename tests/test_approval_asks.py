"""Fewer, honest asks and syncs priced from their backlog (issue 11: <= 2 approvals per incident
that needs a person, 0 unsafe actions).

* Routine refreshes the standing approval being asked (pending, or asked this very cycle) would
  authorise wait for that one answer instead of a request each; anything the standing approval
  would not let run (over budget, blackout, out of scope, remedial) still asks on its own.
* A connector sync is priced from the gap it will load (``orchestrator.core.pricing``): a retry
  after a long outage is not priced as an ordinary sync, so the gate cannot let it take a policy
  over its budget unasked.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st
from planning_fixtures import NOW, fresh, scenario
from test_standing_approvals import (
    ALL_KEYS,
    EXEC,
    GROWTH,
    RES,
    RES_DARK,
    _budget,
    _ledger,
    _routine,
    _snapshot,
)

from orchestrator.core.decide import decide, wait_for_standing
from orchestrator.core.incidents import ActionLedger
from orchestrator.core.pricing import SyncPricer, sync_spend
from orchestrator.core.records import Action, CostAssessment, CostRecord, SyncRecord
from orchestrator.core.standing import STANDING, StandingBook, StandingCover, request
from orchestrator.planning import gate, validate
from orchestrator.planning.inflight import in_flight_spend


def _stale_exec():
    sc = scenario(freshness=[fresh("dashboard/exec", slack=3600, blocker="crm/account")])
    # the connector's syncs so far price the one the refresh starts (orchestrator.core.pricing)
    syncs = [SyncRecord("fivetran:crm", f"c{i}", "succeeded", NOW - timedelta(hours=h), NOW - timedelta(hours=h - 0.1))
             for i, h in enumerate((26, 20))]
    costs = [CostRecord(s.ended_at, 0.5, "sync", connector="fivetran:crm") for s in syncs]
    sc.snapshot = replace(sc.snapshot, syncs=syncs, costs=costs)
    return sc


def test_routine_work_waits_for_the_standing_approval_asked_in_the_same_cycle():
    sc = _stale_exec()
    d = decide(sc.snapshot, RES, assessment=sc.assessment, now=NOW, ledger=ActionLedger())
    assert [g.action.cause for g in d.standing_requests] == ["standing:exec,growth"]  # one question
    # one question (the standing approval), not one more per refresh
    assert not [g for g in d.decisions if g.decision == "await_approval" and g.action.type == "materialize"]
    (withdrawn,) = [(a, why) for a, why in d.suppressed if a.type == "materialize"]
    assert "standing approval standing-2policies-" in withdrawn[1] and "waits for that answer" in withdrawn[1]
    # a standing approval refused: the refresh asks on its own again
    led = _ledger([("exec", "declined", NOW - timedelta(hours=1), EXEC, RES)])
    d = decide(sc.snapshot, RES, assessment=sc.assessment, now=NOW, ledger=led)
    assert [g.action.type for g in d.decisions if g.decision == "await_approval"] == ["materialize"]


def test_pending_standing_approval_holds_the_refresh_until_granted_then_it_runs():
    sc = _stale_exec()
    pending = _ledger([("exec", "pending", NOW - timedelta(hours=1), EXEC, RES)])
    d = decide(sc.snapshot, RES, assessment=sc.assessment, now=NOW, ledger=pending)
    assert not d.awaiting_approval and not d.to_execute
    granted = _ledger([("exec", "standing", NOW - timedelta(hours=1), EXEC, RES)])
    d = decide(sc.snapshot, RES, assessment=sc.assessment, now=NOW, ledger=granted)
    assert [g.action.type for g in d.to_execute] == ["materialize"]


def test_over_budget_routine_work_is_not_withdrawn_for_a_standing_approval():
    sc = _stale_exec()
    asm = replace(sc.assessment, cost=[_budget(49.0)])
    costs = [CostRecord(NOW - timedelta(hours=h), 4.0, "run", asset_key="fct_revenue") for h in (30, 54)]
    snap = replace(sc.snapshot, costs=costs)
    pending = _ledger([("exec", "pending", NOW - timedelta(hours=1), EXEC, RES)])
    d = decide(snap, RES, assessment=asm, now=NOW, ledger=pending)
    assert not [why for _, why in d.suppressed if "standing approval" in why]


def _gate_decisions(actions, led, res, spent):
    snap, asm = _snapshot(res)
    if spent:
        asm.cost.append(_budget(spent))
    cover = StandingCover(StandingBook.from_ledger(led), res, NOW)
    return snap, asm, gate(actions, snap, asm, res, now=NOW, standing=cover)


@settings(max_examples=60, deadline=None)
@given(
    grants=st.lists(st.tuples(st.sampled_from(["exec", "growth"]),
                              st.sampled_from(["pending", "pending", "standing", "declined"]),
                              st.integers(0, 3), st.sets(st.sampled_from(ALL_KEYS))), max_size=3),
    typ=st.sampled_from(["materialize", "materialize", "retry", "resync_table", "backfill"]),
    cause=st.sampled_from(["freshness", "freshness", "rate_limit"]),
    source=st.sampled_from(["planner", "planner", "llm"]),
    keys=st.sets(st.sampled_from(ALL_KEYS), min_size=1, max_size=5),
    cost=st.floats(0, 30), spent=st.floats(0, 60), dark=st.booleans(), ask_now=st.booleans(),
)
def test_only_work_a_pending_standing_approval_would_authorise_is_withdrawn(
        grants, typ, cause, source, keys, cost, spent, dark, ask_now):
    res = RES_DARK if dark else RES
    led = _ledger([(n, s, NOW - timedelta(days=age, minutes=1), scope, res) for n, s, age, scope in grants])
    connector = "fivetran:crm" if typ == "resync_table" else None
    a = Action("a", typ, "x", asset_keys=tuple(sorted(keys)), connector=connector, cause=cause, source=source,
               estimated_cost_usd=cost)
    snap, asm, decisions = _gate_decisions([a], led, res, spent)
    asks = []
    if ask_now:
        from orchestrator.core.decide import _ask_policy_owners

        asks = [_ask_policy_owners(request(res.policy("exec"), EXEC, NOW), res, "standing")]
    kept, withdrawn = wait_for_standing(decisions, StandingBook.from_ledger(led), asks, snap, asm, res, now=NOW)
    assert len(kept) + len(withdrawn) == len(decisions)
    assert [g.decision for g in kept if g.decision != "await_approval"] == \
        [g.decision for g in decisions if g.decision != "await_approval"]  # nothing runs on it
    if not withdrawn:
        return
    # an oracle: routine work, inside the scope of a standing approval asked of each blocking policy
    assert typ == "materialize" and cause == "freshness" and source == "planner"
    asked = {n: set().union(*[set(scope) for n2, s, _, scope in grants if n2 == n and s == "pending"] or [set()])
             for n in ("exec", "growth")}
    if ask_now:
        asked["exec"] |= EXEC
    for k in keys:
        owners = [n for n, lin in (("exec", EXEC), ("growth", GROWTH)) if k in lin]
        blocking = owners  # neither policy pre-authorises materialize
        assert all(k in asked[n] or any(n2 == n and s == "standing" and k in scope for n2, s, _, scope in grants)
                   for n in blocking), (k, asked, withdrawn)
    if set(keys) & EXEC:
        assert spent + cost <= 50.0 and not dark


# -- syncs priced from their backlog ---------------------------------------------------------------
CONN = "airbyte:events"
TABLE = "events/page_view"


def _history(n: int, every_h: float, fixed: float, per_h: float, outage_h: float):
    """n good syncs every ``every_h`` hours (cost = fixed + per_h x gap), the last one
    ``outage_h`` hours before NOW; the tables' data dates from its start."""
    syncs, costs = [], []
    last = NOW - timedelta(hours=outage_h)
    for i in range(n):
        start = last - timedelta(hours=every_h * (n - 1 - i))
        end = start + timedelta(minutes=5)
        syncs.append(SyncRecord(CONN, f"s{i}", "succeeded", start, end, triggered_by="schedule", tables=(TABLE,)))
        costs.append(CostRecord(end, fixed + per_h * every_h, "sync", connector=CONN))
    return syncs, costs, last


def _growth_cost(spent: float) -> CostAssessment:
    return CostAssessment(scope="policy:growth", spent_today_usd=spent, spent_month_usd=spent, forecast_day_usd=spent,
                          forecast_month_usd=spent, budget_day_usd=50.0, budget_month_usd=None, spike=False,
                          baseline_day_usd=None, reason="t")


def test_a_retry_after_a_long_outage_is_priced_from_its_backlog_and_waits_over_budget():
    sc = scenario()
    syncs, costs, last = _history(8, 6.0, 0.0, 1 / 6, outage_h=30.0)  # $1 a sync, every 6 h; 30 h down
    snap = replace(sc.snapshot, syncs=syncs, costs=costs, data_time={TABLE: last})
    asm = replace(sc.assessment, cost=[_growth_cost(46.0)])
    retry = Action("r1", "retry", "after the outage", asset_keys=(TABLE,), connector=CONN, cause="freshness",
                   estimated_cost_usd=1.0)
    # 30 h of rows, not one 6 h sync (x 1.25: a gap longer than any it has seen)
    assert abs(SyncPricer(snap).estimate(CONN, NOW) - 5.0 * 1.25) < 1e-6
    (g,) = gate([retry], snap, asm, sc.resolution, now=NOW)
    assert g.decision == "await_approval" and g.reason.startswith("over budget"), g.reason
    # validation prices it the same way (the day's spend is read from the cost records)
    spent = [CostRecord(NOW - timedelta(minutes=10), 46.0, "run", asset_key="stg_events")]
    snap2 = replace(snap, costs=costs + spent)
    _, rejected = validate(_plan([retry]), snap2, sc.resolution, now=NOW)
    assert rejected and "over budget" in rejected[0][1]
    # the same retry right after a normal sync is priced as one ordinary sync and runs
    fresh_snap = replace(snap, data_time={TABLE: NOW - timedelta(hours=6)})
    (g,) = gate([retry], fresh_snap, asm, sc.resolution, now=NOW)
    assert g.decision == "execute", g.reason


def _plan(actions):
    from orchestrator.core.records import Plan

    return Plan(NOW, list(actions), "test")


@settings(max_examples=120, deadline=None)
@given(n=st.integers(2, 12), every_h=st.floats(0.25, 24), fixed=st.floats(0, 5), per_h=st.floats(0.01, 20),
       outage_h=st.floats(0, 96))
def test_a_sync_is_never_priced_below_what_a_linear_connector_bills(n, every_h, fixed, per_h, outage_h):
    """Connectors bill a fixed part plus the rows of the gap: whatever the history's cadence and
    the outage's length, the estimate covers the actual bill, and stays within a small factor."""
    syncs, costs, last = _history(n, every_h, fixed, per_h, outage_h)
    sc = scenario()
    snap = replace(sc.snapshot, syncs=syncs, costs=costs, data_time={TABLE: last})
    actual = fixed + per_h * outage_h
    est = SyncPricer(snap).estimate(CONN, NOW)
    assert est >= actual - 1e-6
    ordinary = fixed + per_h * every_h
    assert est <= 1e-6 + 1.25 * max(ordinary, actual * (1 + fixed / max(per_h * every_h, 1e-9)))
    # what the gate adds for a retry of the connector's sync
    retry = Action("r1", "retry", "x", connector=CONN, cause="rate_limit")
    # (a budget counts its bound: never below the estimate, tests/test_sync_budget_bound.py)
    assert abs(sync_spend(snap, retry, NOW) - SyncPricer(snap).budget_bound(CONN, NOW)) < 1e-9
    assert sync_spend(snap, retry, NOW) >= est - 1e-9


def test_no_history_prices_nothing_here_and_resyncs_keep_their_own_floor():
    sc = scenario()
    assert SyncPricer(sc.snapshot).estimate(CONN, NOW) == 0.0
    # a connector with no history of its own borrows the dearest of the others
    syncs, costs, last = _history(4, 6.0, 0.0, 1.0, outage_h=30.0)
    snap = replace(sc.snapshot, syncs=syncs, costs=costs, data_time={TABLE: last, "crm/account": last})
    own = SyncPricer(snap).estimate(CONN, NOW)
    assert own > 0 and abs(SyncPricer(snap).estimate("fivetran:crm", NOW) - own) < 1e-9
    syncs, costs, last = _history(4, 6.0, 0.0, 1.0, outage_h=30.0)
    snap = replace(sc.snapshot, syncs=syncs, costs=costs, data_time={TABLE: last})
    assert sync_spend(snap, Action("x", "resync_table", "x", connector=CONN, tables={"events": ("page_view",)}), NOW) == 0.0
    assert sync_spend(snap, Action("m", "materialize", "x", asset_keys=("stg_events",)), NOW) == 0.0
    # a routine refresh that syncs the connector pays its backlog too (30 h of rows, x1.25 past
    # any gap seen), as a retry does: the sync bills the same rows whoever triggers it
    routine = sync_spend(snap, Action("m", "materialize", "x", asset_keys=(TABLE, "stg_events")), NOW)
    assert abs(routine - SyncPricer(snap).budget_bound(CONN, NOW)) < 1e-9 and routine >= 30.0
    assert routine >= SyncPricer(snap).estimate(CONN, NOW)
    assert STANDING  # (imported for the module's readers: the ask kind withdrawn work waits on)


def test_a_sync_no_history_can_price_waits_for_a_person_under_a_budget():
    """The first refresh of a budgeted lineage, before any connector has a priced sync: nothing
    shows it stays within the budget (a generated world's first sync alone took a $9 budget
    over), so it is not run unasked; once a sync is priced it runs on its standing approval."""
    sc = scenario(freshness=[fresh("dashboard/exec", slack=3600, blocker="crm/account")])
    granted = _ledger([("exec", "standing", NOW - timedelta(hours=1), EXEC, RES)])
    d = decide(sc.snapshot, RES, assessment=sc.assessment, now=NOW, ledger=granted)
    (g,) = d.awaiting_approval
    assert g.action.type == "materialize" and "no sync history prices the sync of fivetran:crm" in g.reason
    d = decide(_stale_exec().snapshot, RES, assessment=sc.assessment, now=NOW, ledger=granted)
    assert [g.action.type for g in d.to_execute] == ["materialize"] and not d.awaiting_approval
    # needing the standing approval asked this very cycle anyway, it waits for that one answer
    d = decide(sc.snapshot, RES, assessment=sc.assessment, now=NOW, ledger=ActionLedger())
    assert not [g for g in d.awaiting_approval if g.action.type == "materialize"]
    assert [a for a, why in d.suppressed if a.type == "materialize" and "standing approval" in why]


def test_an_extension_for_a_small_overshoot_covers_the_day_with_a_margin():
    """World 217: a retry priced at $42.07 against $41.59 held; the extension asked (2 x the $0.61
    overshoot = $1) fell short of the retry's real bill and the spend crossed it. The amount asked
    now covers the whole day's need + 10%."""
    from orchestrator.core.standing import NEED_MARGIN, BudgetBook, budget_requests

    sc = scenario()
    (ask,) = budget_requests(sc.resolution, sc.snapshot, {"growth": (0.13, 41.59)}, BudgetBook(), NOW,
                             held={"growth": 42.07})
    need = 0.13 + 42.07
    assert ask.estimated_cost_usd >= need * (1 + NEED_MARGIN) - 41.59 > 2 * (need - 41.59)


def test_a_backlog_longer_than_any_seen_is_priced_with_a_margin():
    from orchestrator.core.pricing import EXTRAPOLATION_MARGIN

    sc = scenario()
    syncs, costs, last = _history(6, 6.0, 0.0, 1.0, outage_h=6.0)
    snap = replace(sc.snapshot, syncs=syncs, costs=costs, data_time={TABLE: last})
    assert abs(SyncPricer(snap).estimate(CONN, NOW) - 6.0) < 1e-9  # an ordinary gap: as seen
    long = replace(snap, data_time={TABLE: NOW - timedelta(hours=30)})
    assert abs(SyncPricer(long).estimate(CONN, NOW) - 30.0 * EXTRAPOLATION_MARGIN) < 1e-9


@settings(max_examples=80, deadline=None)
@given(n=st.integers(3, 12), every_h=st.floats(0.5, 12), fixed=st.floats(0.05, 5), per_h=st.floats(0.01, 20),
       outage_h=st.floats(0.5, 96))
def test_varied_gaps_tell_the_fixed_part_from_the_rows(n, every_h, fixed, per_h, outage_h):
    """Syncs at varied gaps (the orchestrator's own between the vendor's): the fitted line prices a
    long backlog at its bill (x1.25 past the longest gap seen), not at the mean sync's cost per
    hour, which counts the fixed part again for every hour (world 103: an hourly connector's
    refresh priced at $95 against a $55 budget, twice its bill, lost the deadline)."""
    syncs, costs = [], []
    t = NOW - timedelta(hours=outage_h)
    starts = [t]
    for i in range(n):
        starts.append(starts[-1] - timedelta(hours=every_h * (1 if i % 2 else 2)))
    starts.reverse()
    for i, start in enumerate(starts):
        end = start + timedelta(minutes=5)
        syncs.append(SyncRecord(CONN, f"s{i}", "succeeded", start, end, triggered_by="schedule", tables=(TABLE,)))
        if i:
            gap = (start - starts[i - 1]).total_seconds() / 3600
            costs.append(CostRecord(end, fixed + per_h * gap, "sync", connector=CONN))
    snap = replace(scenario().snapshot, syncs=syncs, costs=costs, data_time={TABLE: t})
    actual = fixed + per_h * outage_h
    est = SyncPricer(snap).estimate(CONN, NOW)
    assert actual - 1e-6 <= est <= 1.25 * actual + 1e-6


def test_a_refresh_whose_answer_would_come_after_its_deadline_is_not_asked():
    from orchestrator.core.decide import answer_too_late
    from orchestrator.planning.gate import AWAIT_APPROVAL, GateDecision

    deadline = NOW + timedelta(hours=2)
    a = _routine({"stg_account", "fct_revenue"})
    a = replace(a, cycle=f"dashboard/exec@{deadline.isoformat()}")
    g = GateDecision(a, AWAIT_APPROVAL, "low", 0.1, 1.0, "materialize not in auto_approve")
    sc = _stale_exec()
    # answered in 45 min: asked
    kept, late = answer_too_late([g], sc.assessment, NOW, lambda t: t + timedelta(minutes=45), RES.graph)
    assert kept == [g] and not late
    # the approvers are asleep until after the deadline: not asked, and the reason says why
    kept, late = answer_too_late([g], sc.assessment, NOW, lambda t: t + timedelta(hours=9), RES.graph)
    assert not kept and "after the deadline" in late[0][1]
    # no known delay, remedial work, or another kind of request: asked as before
    for other, fn in ((g, None),
                      (GateDecision(replace(a, cause="rate_limit"), AWAIT_APPROVAL, "low", 0.1, 1.0, "x"),
                       lambda t: t + timedelta(hours=9))):
        kept, late = answer_too_late([other], sc.assessment, NOW, fn, RES.graph)
        assert kept == [other] and not late
