"""Work in flight counts against a budget: the gate and validation add the unfinished part of the
orchestrator's runs already in flight to what a policy spent today, so new work cannot execute
without approval when it would take the day over a budget on top of work still running (the
independent audit charges spend when a step ends, as the simulator and warehouses do).

Hypothesis generates in-flight states (which steps of a run have ended, their prices, what was
spent today, the new action's cost) and checks both directions against a hand count."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from planning_fixtures import NOW, scenario

from orchestrator.core.records import (
    Action,
    CostAssessment,
    CostRecord,
    Materialization,
    Plan,
    RunRecord,
    RunStatus,
)
from orchestrator.core.pricing import SyncPricer
from orchestrator.planning import gate, validate
from orchestrator.planning.gate import GateConfig
from orchestrator.planning.inflight import in_flight_by_policy, in_flight_spend

BUDGET = 50.0  # policy growth's daily budget in the fixture
RUN_KEYS = ("events/page_view", "stg_events", "dashboard/growth")  # a sync and two models
YESTERDAY = NOW - timedelta(days=1)


def _budget(spent: float) -> CostAssessment:
    return CostAssessment(scope="policy:growth", spent_today_usd=spent, spent_month_usd=spent,
                          forecast_day_usd=spent, forecast_month_usd=spent, budget_day_usd=BUDGET,
                          budget_month_usd=None, spike=False, baseline_day_usd=None, reason="t")


def _state(spent: float, prices: tuple[float, float, float], finished: frozenset[str], *,
           native: bool = False, other_run: bool = False):
    """A scenario whose policy growth spent ``spent`` today, with run r1 in flight on RUN_KEYS of
    which ``finished`` have landed; past prices: (sync, stg_events, dashboard/growth)."""
    sync_usd, stg_usd, dash_usd = prices
    costs = [
        CostRecord(YESTERDAY, sync_usd, "sync", connector="airbyte:events", detail={"triggered_by": "dagster"}),
        CostRecord(YESTERDAY, stg_usd, "run", asset_key="stg_events"),
        CostRecord(YESTERDAY, dash_usd, "run", asset_key="dashboard/growth"),
        # the vendor's scheduled sync bills as any sync of the connector: one more bill a budget's
        # bound of the in-flight sync goes by (the sync itself counts against no budget)
        CostRecord(YESTERDAY, 4.0, "sync", connector="airbyte:events", detail={"triggered_by": "schedule"}),
        CostRecord(NOW - timedelta(minutes=5), spent, "run", asset_key="fct_events_daily"),
    ]
    runs = [RunRecord("r1", RunStatus.running, RUN_KEYS, NOW - timedelta(minutes=40),
                      started_at=NOW - timedelta(minutes=39))]
    if native:  # the connector's own schedule: the vendor's, never against a budget
        runs.append(RunRecord("n1", RunStatus.running, ("events/page_view",), NOW - timedelta(minutes=3),
                              tags={"sim/source": "native"}))
    if other_run:  # a run of a policy without a budget: nothing to count
        runs.append(RunRecord("r2", RunStatus.running, ("stg_account", "fct_revenue"), NOW - timedelta(minutes=3)))
    sc = scenario(runs=runs, costs=costs)
    sc.snapshot.materializations = [Materialization(k, NOW - timedelta(minutes=10), "r1") for k in finished]
    sc.assessment.cost.append(_budget(spent))
    return sc


def _action(cost: float) -> Action:
    return Action("a-new", "materialize", "refresh", asset_keys=("fct_events_daily",),
                  partitions=((NOW - timedelta(days=1)).date().isoformat(),), estimated_cost_usd=cost,
                  cause="freshness")


def _sync_bound(snapshot) -> float:
    """What the unfinished sync counts: its bill's budget bound (an upper bound, not the mean of
    past bills: tests/test_sync_budget_bound.py holds it against generated bills)."""
    return SyncPricer(snapshot).budget_bound("airbyte:events", NOW - timedelta(minutes=39))


def _still_to_come(prices, finished, sync_bound=None) -> float:
    sync_usd, stg_usd, dash_usd = prices
    sync_usd = sync_usd if sync_bound is None else sync_bound
    return ((sync_usd if "events/page_view" not in finished else 0.0)
            + (stg_usd if "stg_events" not in finished else 0.0)
            + (dash_usd if "dashboard/growth" not in finished else 0.0))


price = st.floats(min_value=0.0, max_value=30.0, allow_nan=False).map(lambda x: round(x, 2))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spent=st.floats(min_value=0.0, max_value=BUDGET, allow_nan=False).map(lambda x: round(x, 2)),
       prices=st.tuples(price, price, price),
       finished=st.sets(st.sampled_from(RUN_KEYS)).map(frozenset),
       cost=st.floats(min_value=0.01, max_value=20.0, allow_nan=False).map(lambda x: round(x, 2)),
       native=st.booleans(), other_run=st.booleans())
def test_new_work_counts_the_unfinished_part_of_runs_in_flight(spent, prices, finished, cost, native, other_run):
    sc = _state(spent, prices, finished, native=native, other_run=other_run)
    coming = _still_to_come(prices, finished, _sync_bound(sc.snapshot))
    total = spent + coming + cost
    a = _action(cost)
    (d,) = gate([a], sc.snapshot, sc.assessment, sc.resolution, now=NOW, durations=sc.durations)
    accepted, rejected = validate(Plan(NOW, [a], "t"), sc.snapshot, sc.resolution, now=NOW,
                                  durations=sc.durations)
    if total > BUDGET + 0.01:
        # never executes without a person, and validation names the budget
        assert d.decision != "execute", (total, d.reason)
        assert d.reason.startswith("over budget"), d.reason
        assert rejected and "over budget" in rejected[0][1], rejected
    elif total + GateConfig().budget_reserve * (coming + cost) < BUDGET - 0.01:
        # finished steps are not counted twice, the vendor's runs and other policies' not at all
        # (what is only estimated keeps a reserve: in flight and this action)
        assert d.decision == "execute", (total, d.reason)
        assert accepted == [a], rejected


def test_an_over_budget_hold_says_how_much_is_still_to_come():
    sc = _state(33.0, (5.0, 6.0, 7.0), frozenset({"events/page_view"}))
    (d,) = gate([_action(5.0)], sc.snapshot, sc.assessment, sc.resolution, now=NOW, durations=sc.durations)
    assert d.decision == "await_approval"
    assert "13.00 USD still to come from work in flight" in d.reason, d.reason
    # once the run ended (everything landed, charged 8 USD instead of the 13 expected) it runs
    sc = _state(33.0 + 8.0, (5.0, 6.0, 7.0), frozenset(RUN_KEYS))
    (d,) = gate([_action(5.0)], sc.snapshot, sc.assessment, sc.resolution, now=NOW, durations=sc.durations)
    assert d.decision == "execute", d.reason


def test_a_step_with_no_cost_history_is_priced_at_its_duration():
    """No past cost of dashboard/growth: its p90 duration x the warehouse price stands in."""
    sc = _state(0.0, (1.0, 1.0, 1.0), frozenset())
    sc.snapshot.costs = [c for c in sc.snapshot.costs if c.asset_key != "dashboard/growth"]
    spend = in_flight_spend(sc.snapshot, usd_per_hour=3600.0, durations=sc.durations)
    node = sc.graph.get("dashboard/growth")
    assert spend["dashboard/growth"] == sc.durations.seconds(node)  # 1 USD per second
    sync = _sync_bound(sc.snapshot)
    assert spend["connector:airbyte:events"] == sync and spend["stg_events"] == 1.0
    assert in_flight_by_policy(spend, sc.resolution, sc.graph) == {"growth": sync + 1.0 + sc.durations.seconds(node)}


def test_a_failed_step_and_a_queued_run_the_plan_replaces_are_not_to_come():
    from orchestrator.core.records import FailureRecord

    sc = _state(0.0, (1.0, 2.0, 4.0), frozenset({"events/page_view"}))
    sc.snapshot.failures = [FailureRecord("f1", NOW, "boom", "dbt", asset_key="stg_events", run_id="r1")]
    assert in_flight_spend(sc.snapshot, durations=sc.durations) == {"dashboard/growth": 4.0}
    assert in_flight_spend(sc.snapshot, durations=sc.durations, exclude={"r1"}) == {}


def test_a_resync_counts_at_least_a_multiple_of_its_connectors_dearest_sync():
    """A resync re-reads whole tables (in a generated world one cost 3.4x the connector's dearest
    incremental sync and took a budget over unasked): with no cost named, a budget counts
    RESYNC_FACTOR x the dearest past sync of the connector."""
    from orchestrator.planning.inflight import RESYNC_FACTOR

    def resync_decision(dearest: float):
        sc = _state(10.0, (dearest, 0.0, 0.0), frozenset(RUN_KEYS))
        sc.snapshot.costs = [c for c in sc.snapshot.costs if c.amount_usd != 4.0]  # no dearer sync
        a = Action("rs", "resync_table", "drift", connector="airbyte:events", tables={"events": ("page_view",)},
                   asset_keys=("events/page_view",), cause="schema_drift")
        (d,) = gate([a], sc.snapshot, sc.assessment, sc.resolution, now=NOW, durations=sc.durations)
        _, rejected = validate(Plan(NOW, [a], "t"), sc.snapshot, sc.resolution, now=NOW)
        return d, rejected

    # 10 spent + 4 x 11 > 50: over budget (validation rejects it; the gate would hold it)
    d, rejected = resync_decision(11.0)
    assert RESYNC_FACTOR["resync_table"] * 11.0 + 10.0 > BUDGET
    assert d.reason.startswith("over budget"), d.reason
    assert rejected and "over budget" in rejected[0][1]
    # 10 spent + 4 x 2 < 50: within budget (it waits only because resync_table is not pre-authorised)
    d, rejected = resync_decision(2.0)
    assert not rejected and not d.reason.startswith("over budget"), d.reason


def _resync_ledger(connector: str, at):
    from orchestrator.core.incidents import ActionLedger

    ledger = ActionLedger()
    ledger.record(Action(f"rs-{connector}", "resync_table", "drift", connector=connector,
                         tables={"s": ("t",)}, cause="schema_drift"), "executing", at)
    return ledger


def test_a_resync_is_priced_by_what_the_resyncs_that_ran_cost():
    """RESYNC_FACTOR is a guess: a resync re-reads whole tables, and in a generated world one cost
    $37.72 where 4x the connector's dearest sync priced it at $7.96, so a pre-authorised resync
    took a policy over its budget unasked. Once a resync the orchestrator ran (the ledger) shows
    its bill at 25x its connector's dearest incremental sync, a resync of another connector is
    priced at 25x its own: over the budget here, where 4x fitted."""
    from orchestrator.core.pricing import ResyncPrices

    sc = _state(10.0, (2.0, 0.0, 0.0), frozenset(RUN_KEYS))
    ran = NOW - timedelta(hours=6)
    sc.snapshot.costs = [c for c in sc.snapshot.costs if c.amount_usd != 4.0] + [
        CostRecord(ran - timedelta(days=3), 1.0, "sync", connector="airbyte:crm"),  # incremental syncs
        CostRecord(ran - timedelta(days=2), 0.8, "sync", connector="airbyte:crm"),
        CostRecord(ran + timedelta(hours=1), 25.0, "sync", connector="airbyte:crm"),  # the resync's bill
    ]
    resyncs = ResyncPrices.observe(sc.snapshot, _resync_ledger("airbyte:crm", ran))
    assert resyncs.ratio == {"resync_table": 25.0}
    a = Action("rs", "resync_table", "drift", connector="airbyte:events", tables={"events": ("page_view",)},
               asset_keys=("events/page_view",), cause="schema_drift")
    for seen in (None, resyncs):
        (d,) = gate([a], sc.snapshot, sc.assessment, sc.resolution, now=NOW, durations=sc.durations, resyncs=seen)
        _, rejected = validate(Plan(NOW, [a], "t"), sc.snapshot, sc.resolution, now=NOW, resyncs=seen)
        if seen is None:  # 10 spent + 4 x 2 < 50
            assert not rejected and not d.reason.startswith("over budget"), d.reason
        else:  # 10 spent + 25 x 2 > 50
            assert d.reason.startswith("over budget"), d.reason
            assert rejected and "over budget" in rejected[0][1]


bill = st.floats(min_value=0.01, max_value=500.0, allow_nan=False)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(["airbyte:crm", "airbyte:events", "fivetran:x"]),
                          st.integers(-96, 0), bill), max_size=12),
       st.lists(st.tuples(st.sampled_from(["airbyte:crm", "airbyte:events", "fivetran:x"]),
                          st.integers(-96, 0), st.sampled_from(["resync_table", "full_resync"]),
                          st.sampled_from(["executing", "succeeded", "failed", "pending"])), max_size=4),
       st.sampled_from(["airbyte:crm", "airbyte:events", "fivetran:x"]),
       st.sampled_from(["resync_table", "full_resync"]))
def test_what_resyncs_cost_only_ever_raises_a_resyncs_floor(bills, entries, connector, kind):
    """Bills are matched to resyncs by time, not by name, so a mismatch must not make a resync
    look cheaper than the fixed multiple already does; and a resync that ran counts for every
    connector: the floor is at least its bill / its connector's dearest other bill x the dearest
    sync of the connector asked about."""
    from orchestrator.core.incidents import ActionLedger
    from orchestrator.core.pricing import ResyncPrices
    from orchestrator.planning.inflight import resync_floor

    sc = scenario(costs=[CostRecord(NOW + timedelta(hours=h), usd, "sync", connector=c) for c, h, usd in bills])
    ledger = ActionLedger()
    for i, (c, h, t, status) in enumerate(entries):
        ledger.record(Action(f"e{i}", t, "drift", connector=c, cause="schema_drift"), status,
                      NOW + timedelta(hours=h))
    resyncs = ResyncPrices.observe(sc.snapshot, ledger)
    a = Action("rs", kind, "drift", connector=connector, cause="schema_drift")
    plain = resync_floor(sc.snapshot, a)
    seen = resync_floor(sc.snapshot, a, resyncs=resyncs)
    assert seen >= plain >= 0
    if not any(status != "pending" for *_, status in entries):
        assert seen == plain and not resyncs.ratio
    dearest = max((usd for c, _, usd in bills if c == connector), default=0.0)
    assert seen >= resyncs.ratio.get(kind, 0.0) * resyncs.incremental.get(connector, dearest) - 1e-9
