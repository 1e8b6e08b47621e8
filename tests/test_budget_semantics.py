"""Budget semantics a data engineer can defend, end to end:

* a policy's daily budget counts the work the orchestrator launches (runs, syncs it triggers); the
  connectors' own scheduled syncs are the vendor's (billed by the vendor, no gate can hold them)
  and count neither in validation, the gate, the cost assessment's policy scopes nor the audit;
* the independent audit flags over-budget and blackout work only when it executed *without* a
  person's approval; approved exceptions are counted apart, for every planner alike;
* when the deadlines ahead need more than a budget, the decision core asks ONE budget extension
  ahead (a standing approval of an amount per day), the gate and validation count it once a person
  granted it, and still nothing over budget + extension executes without approval.
"""

from __future__ import annotations

import textwrap
from datetime import date, datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st
from planning_fixtures import NOW, scenario

from orchestrator.core.incidents import ActionLedger
from orchestrator.core.records import Action, CostAssessment, CostRecord, Plan
from orchestrator.core.standing import (
    ACTIVE,
    BudgetBook,
    BudgetCover,
    budget_requests,
    extension_scope,
)
from orchestrator.planning import gate, validate
from orchestrator.planning.gate import GateConfig

UTC = timezone.utc
GROWTH = ("stg_events", "dashboard/growth")


def _budget(spent: float, day: float = 50.0) -> CostAssessment:
    return CostAssessment(scope="policy:growth", spent_today_usd=spent, spent_month_usd=spent,
                          forecast_day_usd=spent, forecast_month_usd=spent, budget_day_usd=day,
                          budget_month_usd=None, spike=False, baseline_day_usd=None, reason="t")


def _granted(sc, usd: float, status: str = ACTIVE, first: date | None = None, days: int = 7) -> tuple:
    """A ledger holding a budget extension of policy growth that a person answered."""
    from orchestrator.core.standing import extension_request

    policy = sc.resolution.policy("growth")
    req = extension_request(policy, sc.resolution.governed_by("growth"), NOW, first or NOW.date(), days, usd,
                            50.0, 50.0 + usd)
    ledger = ActionLedger()
    ledger.record(req, status, NOW, by_person=True)
    book = BudgetBook.from_ledger(ledger)
    return req, book, BudgetCover(book, sc.resolution, NOW)


# -- the gate and validation count a granted extension, and nothing more ------------------------


def test_work_within_a_granted_extension_executes_and_names_it():
    sc = scenario()
    sc.assessment.cost.append(_budget(48.0))
    a = Action("g", "materialize", "x", asset_keys=GROWTH, estimated_cost_usd=5.0, cause="freshness")
    (held,) = gate([a], sc.snapshot, sc.assessment, sc.resolution, now=NOW)
    assert held.decision == "await_approval" and "over budget" in held.reason
    req, _, cover = _granted(sc, 10.0)
    (d,) = gate([a], sc.snapshot, sc.assessment, sc.resolution, now=NOW, budgets=cover)
    assert d.decision == "execute", d.reason
    assert req.action_id in (d.authorised_by or "") and "budget extension" in d.reason
    # past the extension it waits again
    big = Action("g2", "materialize", "x", asset_keys=GROWTH, estimated_cost_usd=15.0, cause="freshness")
    (d,) = gate([big], sc.snapshot, sc.assessment, sc.resolution, now=NOW, budgets=cover)
    assert d.decision == "await_approval" and "over budget" in d.reason


def test_a_pending_declined_or_other_day_extension_counts_nothing():
    sc = scenario()
    sc.assessment.cost.append(_budget(48.0))
    a = Action("g", "materialize", "x", asset_keys=GROWTH, estimated_cost_usd=5.0)
    for status, first in (("pending", None), ("declined", None), (ACTIVE, NOW.date() + timedelta(days=1))):
        _, _, cover = _granted(sc, 10.0, status=status, first=first)
        (d,) = gate([a], sc.snapshot, sc.assessment, sc.resolution, now=NOW, budgets=cover)
        assert d.decision == "await_approval", (status, d.reason)


_SC = None


@settings(max_examples=60, deadline=None)
@given(spent=st.floats(0, 120), costs=st.lists(st.floats(0, 40), min_size=1, max_size=4),
       prios=st.lists(st.integers(-50, 50), min_size=4, max_size=4), extra=st.sampled_from([0.0, 5.0, 20.0]),
       typ=st.sampled_from(["materialize", "retry", "defer"]))
def test_nothing_over_budget_and_extension_ever_executes_without_approval(spent, costs, prios, extra, typ):
    """The gate keeps its word with extensions: what a cycle lets execute never takes the day over
    budget + the extension a person granted, and anything over the budget alone names the extension."""
    global _SC
    sc = _SC = _SC or scenario()  # one project for every example (resolving it is the slow part)
    sc.assessment.cost[:] = [_budget(spent)]
    cover = _granted(sc, extra)[2] if extra else None
    acts = [Action(f"g{i}", typ, "x", asset_keys=GROWTH, estimated_cost_usd=c, priority=prios[i])
            for i, c in enumerate(costs)]
    ds = gate(acts, sc.snapshot, sc.assessment, sc.resolution, now=NOW, config=GateConfig(low_risk=1.0),
              budgets=cover)
    assert [d.action.action_id for d in ds] == [a.action_id for a in acts]  # the actions' order
    run = [d for d in ds if d.decision == "execute" and d.action.estimated_cost_usd > 0]
    if run:  # what it lets spend stays within budget + extension
        assert spent + sum(d.action.estimated_cost_usd for d in run) <= 50.0 + extra + 1e-9
        if spent + sum(d.action.estimated_cost_usd for d in run) > 50.0 + 1e-9:
            assert any("budget-" in (d.authorised_by or "") for d in run)


def test_the_most_urgent_work_gets_the_budget_left():
    # 15 USD left: the urgent (higher priority) run listed second gets it, the other waits
    sc = scenario()
    sc.assessment.cost.append(_budget(35.0))
    low = Action("g1", "materialize", "x", asset_keys=GROWTH, estimated_cost_usd=10.0, priority=0)
    urgent = Action("g2", "materialize", "x", asset_keys=("fct_events_daily",), estimated_cost_usd=10.0,
                    priority=40)
    d_low, d_urgent = gate([low, urgent], sc.snapshot, sc.assessment, sc.resolution, now=NOW,
                           config=GateConfig(low_risk=1.0))
    assert d_urgent.decision == "execute", d_urgent.reason
    assert d_low.decision == "await_approval" and "over budget" in d_low.reason


def test_validation_counts_the_extension_and_not_the_vendors_scheduled_syncs():
    scheduled = CostRecord(at=NOW - timedelta(minutes=5), amount_usd=49.0, source="sync", connector="airbyte:events",
                           detail={"triggered_by": "schedule"})
    run = Action(action_id="m1", type="materialize", asset_keys=("stg_events",), reason="x", estimated_cost_usd=2.0)
    sc = scenario(costs=[scheduled])
    accepted, rejected = validate(Plan(NOW, [run], "t"), sc.snapshot, sc.resolution, now=NOW)
    assert accepted == [run], rejected  # the vendor's own sync spent nothing of the policy's budget
    triggered = CostRecord(at=NOW - timedelta(minutes=5), amount_usd=49.0, source="sync", connector="airbyte:events",
                           detail={"triggered_by": "dagster"})
    sc = scenario(costs=[triggered])
    accepted, rejected = validate(Plan(NOW, [run], "t"), sc.snapshot, sc.resolution, now=NOW)
    assert not accepted and "over budget" in rejected[0][1]
    _, _, cover = _granted(sc, 5.0)
    accepted, rejected = validate(Plan(NOW, [run], "t"), sc.snapshot, sc.resolution, now=NOW, budgets=cover)
    assert accepted == [run], rejected


def test_cost_assessment_keeps_scheduled_syncs_out_of_policy_budgets():
    from orchestrator.assessment.cost import assess_cost

    recs = [CostRecord(at=NOW - timedelta(minutes=5), amount_usd=49.0, source="sync", connector="airbyte:events",
                       detail={"triggered_by": "schedule"}),
            CostRecord(at=NOW - timedelta(minutes=5), amount_usd=3.0, source="run", asset_key="stg_events")]
    sc = scenario(costs=recs)
    by = {c.scope: c for c in assess_cost(sc.snapshot, sc.resolution, now=NOW)}
    assert by["policy:growth"].spent_today_usd == 3.0
    assert by["total"].spent_today_usd == 52.0  # still reported as spend


# -- one extension asked ahead ----------------------------------------------------------------------


def _history(n: int = 3, usd: float = 20.0) -> list[CostRecord]:
    # the growth refresh costs 20 USD a run (stg_events) and runs once a day (12:00 deadline)
    return [CostRecord(at=NOW - timedelta(days=i + 1), amount_usd=usd, source="run", asset_key="stg_events",
                       compute_s=600.0) for i in range(n)]


def test_one_extension_is_asked_when_the_deadlines_ahead_need_more_than_the_budget():
    sc = scenario(costs=_history(usd=20.0))
    book = BudgetBook()
    none = budget_requests(sc.resolution, sc.snapshot, {"growth": (10.0, 50.0)}, book, NOW)
    assert none == []  # 10 spent + 20 for today's deadline fits 50
    (ask,) = budget_requests(sc.resolution, sc.snapshot, {"growth": (45.0, 50.0)}, book, NOW)
    policy, _, first, days = extension_scope(ask)
    assert policy == "growth" and first == NOW.date() and days == 7
    assert ask.estimated_cost_usd >= 15.0  # covers the overshoot (45 + 20 - 50) with a margin
    assert "budget extension" in ask.reason and "$50.00" in ask.reason
    # pending: not asked again; granted and enough: nothing to ask; refused: not asked again that day
    for status in ("pending", ACTIVE, "declined"):
        ledger = ActionLedger()
        ledger.record(ask, status, NOW, by_person=status != "pending")
        again = budget_requests(sc.resolution, sc.snapshot, {"growth": (45.0, 50.0)}, BudgetBook.from_ledger(ledger),
                                NOW)
        assert again == [], status


def test_an_extension_that_fell_short_is_asked_again_at_least_doubled():
    sc = scenario(costs=_history(usd=20.0))
    (ask,) = budget_requests(sc.resolution, sc.snapshot, {"growth": (45.0, 50.0)}, BudgetBook(), NOW)
    ledger = ActionLedger()
    ledger.record(ask, ACTIVE, NOW, by_person=True)
    (more,) = budget_requests(sc.resolution, sc.snapshot, {"growth": (95.0, 50.0)}, BudgetBook.from_ledger(ledger),
                              NOW)
    assert more.estimated_cost_usd >= 2 * ask.estimated_cost_usd


def test_decide_asks_the_extension_beside_the_plan():
    from orchestrator.core.decide import decide

    sc = scenario(costs=_history(usd=20.0))
    sc.snapshot.costs.append(CostRecord(at=NOW - timedelta(minutes=30), amount_usd=45.0, source="run",
                                        asset_key="stg_events", compute_s=600.0))
    d = decide(sc.snapshot, sc.resolution, now=NOW, ledger=ActionLedger())
    asks = [g for g in d.standing_requests if (g.action.cause or "").startswith("budget:")]
    assert len(asks) == 1 and asks[0].decision == "await_approval"
    assert asks[0].owners == ("team:growth",)


# -- the audit: unsafe = executed without a person's approval ------------------------------------

SCENARIO = """
name: t
start: 2026-03-02T00:00:00Z
horizon: 24h
policies: [p.yaml]
graph:
  connectors:
    - {id: "fivetran:src", tables: [src/t], schedule: "0 */6 * * *", duration: {median: 10m, sigma: 0}}
  assets:
    - {key: a, upstream: [src/t], duration: {median: 10m, sigma: 0}}
    - {key: dashboard/d, role: dashboard, upstream: [a]}
"""
POLICY = """
policies:
  - name: dash
    select: [{key: dashboard/d}]
    deadline: {cron: "0 6 * * *", timezone: UTC, window: 8h}
    tier: standard
    rollout: auto
    auto_approve: [retry, materialize]
    budget: {per_day: 10}
    windows:
      blackout: [{days: daily, start: "02:00", end: "03:00", timezone: UTC, reason: maintenance}]
"""


def _audit(tmp_path):
    from orchestrator.simulator import load_scenario
    from orchestrator.simulator.audit import SafetyAudit
    from orchestrator.simulator.bench import resolve_policies

    (tmp_path / "p.yaml").write_text(textwrap.dedent(POLICY))
    (tmp_path / "s.yaml").write_text(textwrap.dedent(SCENARIO))
    sc = load_scenario(tmp_path / "s.yaml")
    return SafetyAudit(resolve_policies(sc, sc.realise(0)), sc.t0)


def test_audit_counts_only_unapproved_crossings(tmp_path):
    au = _audit(tmp_path)
    au.charge(("a",), 3600.0, 8.0, "action:materialize", "run 1")
    au.charge(("a",), 7200.0, 5.0, "action:materialize", "run 2", approved=True)  # a person approved it
    assert au.by_kind() == {} and au.approved["budget"] == 1 and round(au.approved_over_budget_usd, 6) == 3.0
    au.launch(("a",), 7300.0, "action", "run 3", approved=True)
    au.launch(("a",), 7400.0, "schedule:build", "run 4")  # a cron job: no approval
    assert au.by_kind() == {"budget": 1}
    au2 = _audit(tmp_path)
    au2.charge(("a",), 3600.0, 12.0, "schedule:build", "cron run")
    assert au2.by_kind() == {"budget": 1}


def test_audit_honours_a_granted_extension_and_nothing_beyond_it(tmp_path):
    au = _audit(tmp_path)
    au.extend("dash", date(2026, 3, 2), 5.0, days=1)
    au.charge(("a",), 3600.0, 14.0, "action:materialize", "within")  # 10 + 5 granted
    assert au.by_kind() == {} and round(au.approved_over_budget_usd, 6) == 4.0
    au.charge(("a",), 3700.0, 2.0, "action:materialize", "beyond")  # 16 > 15
    assert au.by_kind() == {"budget": 1}
    # the next day the extension is over: the budget alone counts
    au.charge(("a",), 86400.0 + 3600.0, 11.0, "action:materialize", "next day")
    assert au.by_kind() == {"budget": 2}


def test_audit_keeps_the_vendors_scheduled_syncs_out_of_the_budget(tmp_path):
    au = _audit(tmp_path)
    au.charge(("src/t",), 3600.0, 50.0, "native", "native sync")
    au.charge(("a",), 3700.0, 5.0, "action:materialize", "run")
    assert au.by_kind() == {} and au.native_spend_usd == 50.0


def test_audit_counts_approved_blackout_work_apart(tmp_path):
    au = _audit(tmp_path)
    au.step_ran(("dashboard/d",), 2 * 3600.0 + 60, 2 * 3600.0 + 600, "action:materialize", "approved", approved=True)
    assert au.by_kind() == {} and au.approved["blackout"] == 1
    au.step_ran(("dashboard/d",), 2 * 3600.0 + 60, 2 * 3600.0 + 600, "action:materialize", "automatic")
    assert au.by_kind() == {"blackout": 1}


# -- end to end on the simulator: one extension, deadlines met, nothing unsafe -----------------------

TIGHT = """
name: tight-budget
start: 2026-03-02T20:00:00Z
horizon: 16h
policies: [p.yaml]
sensor_tick: 5m
graph:
  connectors:
    - {id: "fivetran:src", tables: [src/t, src/u], schedule: "0 */6 * * *", duration: {median: 10m, sigma: 0}}
  assets:
    - {key: a, upstream: [src/t], duration: {median: 10m, sigma: 0}}
    - {key: b, upstream: [src/u], duration: {median: 10m, sigma: 0}}
    - {key: c, upstream: [a, b], duration: {median: 10m, sigma: 0}}
    - {key: dashboard/d, role: dashboard, upstream: [c]}
capacity: {warehouse_slots: 2}
cost: {warehouse_usd_per_hour: 12}
approvals: {delay: 30m}
baseline: {jobs: [{name: build, cron: "0 3 * * *", select: ["+exposure:d"]}]}
"""
TIGHT_POLICY = """
policies:
  - name: dash
    select: [{key: dashboard/d}]
    deadline: {cron: "0 6 * * *", timezone: UTC, window: 8h}
    tier: standard
    owners: [team:d]
    rollout: auto
    auto_approve: [retry, materialize]
    budget: {per_day: 3}
"""


def test_a_tight_budget_costs_one_extension_and_no_deadline(tmp_path):
    from orchestrator.simulator import load_scenario
    from orchestrator.simulator.bench import run_benchmark

    (tmp_path / "p.yaml").write_text(textwrap.dedent(TIGHT_POLICY))
    (tmp_path / "s.yaml").write_text(textwrap.dedent(TIGHT))
    sc = load_scenario(tmp_path / "s.yaml")
    sla = run_benchmark(sc, "sla", 0)
    cron = run_benchmark(sc, "cron", 0)
    assert cron.sla_attainment == 1.0 and cron.unsafe_by_kind.get("budget", 0) >= 1  # cron overspends unasked
    assert sla.sla_attainment == 1.0, sla.note
    assert sla.unsafe_actions == 0, sla.unsafe_detail  # over the budget only with the extension granted
    assert sla.approved_over_budget_usd > 0 and sla.approved_by_kind.get("budget", 0) >= 1
    assert sla.approvals_requested == 1, sla.note  # one extension, no ask per action


def test_budget_extension_in_the_store_asked_once_approved_then_counted(tmp_path, monkeypatch):
    """The production path: the planning cycle records the ask as a proposal (a standing approval of
    cause budget:<policy>), asks it once, and once a person approved it the ledger read back from
    the store lets over-budget routine work of that policy execute naming it."""
    from orchestrator.proposals import Proposals
    from orchestrator.store import open_store

    monkeypatch.setenv("ORCHESTRATOR_HOME", str(tmp_path / "home"))
    store = open_store(f"sqlite:///{tmp_path}/store.db", cached=False)
    props = Proposals(store)
    sc = scenario(costs=_history(usd=20.0))
    sc.assessment.cost.append(_budget(45.0))
    first = props.run_cycle(sc.snapshot, sc.assessment, sc.resolution, now=NOW, llm=None, use_memory=False)
    asks = [d.action for d in first.decisions if (d.action.cause or "").startswith("budget:")]
    assert [a.cause for a in asks] == ["budget:growth"]
    again = props.run_cycle(sc.snapshot, sc.assessment, sc.resolution, now=NOW + timedelta(minutes=5), llm=None,
                            use_memory=False)
    assert not [d for d in again.decisions if (d.action.cause or "").startswith("budget:")]  # pending: once
    props.approve(asks[0].action_id, "team:growth", now=NOW + timedelta(minutes=10))
    later = NOW + timedelta(minutes=15)
    cover = BudgetCover(BudgetBook.from_ledger(props.ledger(later)), sc.resolution, later)
    assert cover.extra("growth") == asks[0].estimated_cost_usd > 0
    run = Action("g", "materialize", "x", asset_keys=GROWTH, estimated_cost_usd=10.0, cause="freshness")
    (d,) = gate([run], sc.snapshot, sc.assessment, sc.resolution, now=later, budgets=cover)
    assert d.decision == "execute" and d.authorised_by == asks[0].action_id, d.reason
    store.dispose()


# -- over-budget work no deadline can use yet: held, not run on an extension, not asked ----------


def test_over_budget_work_waits_for_a_deadline_window_instead_of_spending_or_asking():
    from orchestrator.core.decide import decide
    from orchestrator.planning.gate import IDLE

    sc = scenario()
    sc.assessment.cost.append(_budget(48.0))
    a = Action("g", "materialize", "x", asset_keys=GROWTH, estimated_cost_usd=5.0, cause="freshness")
    _, book, _ = _granted(sc, 10.0)
    # growth's 12:00 deadline has a 12 h window: at 09:00 it is open, at 12:30 the next one opens at 00:00
    for now, useful in ((NOW, True), (NOW + timedelta(hours=3, minutes=30), False)):
        from orchestrator.core.standing import BudgetCover

        cover = BudgetCover(book, sc.resolution, now)
        (held,) = gate([a], sc.snapshot, sc.assessment, sc.resolution, now=now)
        (ext,) = gate([a], sc.snapshot, sc.assessment, sc.resolution, now=now, budgets=cover)
        if useful:  # over the budget: a person decides; within the extension: it runs
            assert held.reason.startswith("over budget:") and ext.decision == "execute", (held.reason, ext.reason)
        else:  # nothing it feeds can use its data before 00:00: no spend over the budget, no question
            assert held.decision == ext.decision == "await_approval"
            assert held.reason.startswith(IDLE) and ext.reason.startswith(IDLE), ext.reason
    # within the budget it runs whatever the hour (the budget is the owners' to spend)
    small = Action("s", "materialize", "x", asset_keys=GROWTH, estimated_cost_usd=0.5, cause="freshness")
    (d,) = gate([small], sc.snapshot, sc.assessment, sc.resolution, now=NOW + timedelta(hours=3, minutes=30))
    assert d.decision == "execute", d.reason
    # decide: the idle over-budget work is suppressed, not asked, and asks no extension for itself
    late = NOW + timedelta(hours=3, minutes=30)
    sc2 = scenario(costs=_history(usd=20.0))
    sc2.snapshot.costs.append(CostRecord(at=late - timedelta(minutes=30), amount_usd=49.0, source="run",
                                         asset_key="stg_events", compute_s=600.0))
    d = decide(sc2.snapshot, sc2.resolution, now=late, ledger=ActionLedger())
    assert not [g for g in d.decisions if g.decision == "await_approval" and g.reason.startswith("over budget")]
    assert all(not why.startswith("over budget:") for _, why in d.suppressed)
