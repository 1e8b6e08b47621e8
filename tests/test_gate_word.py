"""The gate keeps its word: over-budget or blackout work never executes without approval, and the
failure memory moves confidence the right way (up while a resolution keeps working, down only when
it fails; a transient retry schedule is not pushed below the threshold by its expected misses)."""

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st
from planning_fixtures import NOW, failure, scenario

from orchestrator.core.records import Action, CostAssessment
from orchestrator.planning import gate
from orchestrator.planning.gate import GateConfig, memory_confidence
from orchestrator.policies import DurationModel
from orchestrator.store import open_store

GROWTH = ("stg_events", "dashboard/growth")
FREEZE = ('  - name: freeze\n    select: [{key: "stg_account"}, {key: "fct_revenue"}]\n    max_lag: 48h\n'
          '    rollout: auto\n    auto_approve: [materialize, retry]\n'
          '    windows: {blackout: [{start: 2026-03-10T09:30, end: 2026-03-10T12:00, reason: "quarter close"}]}\n')


def _budget(spent: float, day: float = 50.0) -> CostAssessment:
    return CostAssessment(scope="policy:growth", spent_today_usd=spent, spent_month_usd=spent,
                          forecast_day_usd=spent, forecast_month_usd=spent, budget_day_usd=day,
                          budget_month_usd=None, spike=False, baseline_day_usd=None, reason="t")


def test_overspending_preauthorised_work_waits_even_at_low_risk():
    # the example: a pre-authorised materialize (0.1) + the over-budget nudge (0.2) = 0.3 < 0.35
    sc = scenario()
    sc.assessment.cost.append(_budget(48.0))
    (d,) = gate([Action("g", "materialize", "x", asset_keys=GROWTH, estimated_cost_usd=5.0)],
                sc.snapshot, sc.assessment, sc.resolution, now=NOW)
    assert d.risk == "low" and d.decision == "await_approval" and "over budget" in d.reason
    # under the budget it runs by itself
    (d,) = gate([Action("g", "materialize", "x", asset_keys=GROWTH, estimated_cost_usd=1.0)],
                sc.snapshot, sc.assessment, sc.resolution, now=NOW)
    assert d.decision == "execute"


@settings(max_examples=60, deadline=None)
@given(spent=st.floats(0, 120), cost=st.floats(0, 60), typ=st.sampled_from(["materialize", "retry", "defer"]))
def test_no_overspend_ever_executes(spent, cost, typ):
    sc = scenario()
    sc.assessment.cost.append(_budget(spent))
    (d,) = gate([Action("g", typ, "x", asset_keys=GROWTH, estimated_cost_usd=cost)],
                sc.snapshot, sc.assessment, sc.resolution, now=NOW, config=GateConfig(low_risk=1.0))
    if spent + cost > 50.0:
        assert d.decision != "execute", d.reason


def test_work_that_would_run_into_a_blackout_waits():
    sc = scenario(blackout=FREEZE)
    durations = DurationModel({"stg_account": [1200.0] * 5, "fct_revenue": [1200.0] * 5})
    a = Action("b", "materialize", "x", asset_keys=("stg_account", "fct_revenue"))
    # starts at 09:00 (validation lets it through: not inside the window yet) but runs 40 min
    (d,) = gate([a], sc.snapshot, sc.assessment, sc.resolution, now=NOW, durations=durations)
    assert d.decision == "await_approval" and "blackout" in d.reason and "quarter close" in d.reason
    # a short one ending before 09:30 runs
    short = DurationModel({"stg_account": [60.0] * 5, "fct_revenue": [60.0] * 5})
    (d,) = gate([a], sc.snapshot, sc.assessment, sc.resolution, now=NOW, durations=short)
    assert d.decision == "execute", d.reason
    # deferred into the window: waits; deferred past it: runs
    late = Action("b2", "materialize", "x", asset_keys=("stg_account",), not_before=NOW + timedelta(hours=1))
    assert gate([late], sc.snapshot, sc.assessment, sc.resolution, now=NOW, durations=short)[0].decision == "await_approval"
    after = Action("b3", "materialize", "x", asset_keys=("stg_account",), not_before=NOW + timedelta(hours=4))
    assert gate([after], sc.snapshot, sc.assessment, sc.resolution, now=NOW, durations=short)[0].decision == "execute"


def _memory(tmp_path):
    from orchestrator.diagnosis.memory import FailureMemory

    return FailureMemory(open_store(f"sqlite:///{tmp_path}/m.db", cached=False), embeddings=False)


def test_memory_of_a_transient_retry_schedule_keeps_it_automatic(tmp_path):
    msg = "429 Too Many Requests: rate limit exceeded, retry later"
    d = failure("f1", "rate_limit", msg, connector="fivetran:crm")
    retry = Action("r", "retry", "x", asset_keys=("crm/account", "crm/contact"), connector="fivetran:crm")
    mem = _memory(tmp_path)
    base, _ = memory_confidence(retry, [d], None)
    # typical life of a transient fault: attempts fail until it clears, then one succeeds
    for _ in range(6):
        for _ in range(3):
            mem.record_resolution(msg, "rate_limit", "retry", False)
        mem.record_resolution(msg, "rate_limit", "retry", True)
    conf, why = memory_confidence(retry, [d], mem)
    assert conf >= GateConfig().min_confidence, why
    # unrelated labelled history with dissimilar messages does not lower a prescribed retry
    mem2 = _memory(tmp_path / "x")
    for i in range(5):
        mem2.record_resolution(f"quota of project {i} reached for table zz{i}", "rate_limit", "retry", True)
    assert memory_confidence(retry, [d], mem2)[0] >= base


@settings(max_examples=40, deadline=None)
@given(ok=st.integers(0, 30), bad=st.integers(0, 30))
def test_confidence_moves_up_with_successes_and_down_only_with_failures(tmp_path_factory, ok, bad):
    class Mem:  # the memory's reading interface, with the counts given
        def __init__(self, s, f):
            self.s, self.f = s, f

        def success_rates(self, category):
            n = self.s + self.f
            return {(category, t): {"attempts": n, "successes": self.s, "rate": self.s / n if n else 0}
                    for t in ("retry", "resync_table")} if n else {}

        def nearest(self, *a, **k):
            return []

    for cat, typ in (("rate_limit", "retry"), ("schema_drift", "resync_table")):
        d = failure("f", cat, "m", connector="fivetran:crm", transient=cat == "rate_limit")
        a = Action("a", typ, "x", connector="fivetran:crm", tables={"crm": ("account",)})
        c = memory_confidence(a, [d], Mem(ok, bad))[0]
        assert memory_confidence(a, [d], Mem(ok + 1, bad))[0] >= c  # another success never lowers it
        assert memory_confidence(a, [d], Mem(ok, bad + 1))[0] <= c  # another failure never raises it
        if bad == 0:
            assert c >= memory_confidence(a, [d], None)[0]  # a record of only successes raises it


def test_sync_spend_counts_against_the_budget_in_validation():
    # a sync's cost record names the connector, not a table: it was left out of "spent today",
    # so work crossing the budget passed validation (the audit counted it: unsafe)
    from orchestrator.core.records import CostRecord, Plan
    from orchestrator.planning import validate

    spent = [CostRecord(at=NOW - timedelta(minutes=5), amount_usd=49.0, source="sync", connector="airbyte:events")]
    sc = scenario(costs=spent)
    run = Action(action_id="m1", type="materialize", asset_keys=("stg_events",), reason="x", estimated_cost_usd=2.0)
    accepted, rejected = validate(Plan(NOW, [run], "t"), sc.snapshot, sc.resolution, now=NOW)
    assert not accepted and "over budget" in rejected[0][1], rejected


def test_actions_of_one_cycle_are_judged_on_the_budget_together():
    # two runs of 10 USD with 15 left: each alone fits, both together would overspend
    sc = scenario()
    sc.assessment.cost.append(_budget(35.0))
    a = Action("g1", "materialize", "x", asset_keys=GROWTH, estimated_cost_usd=10.0)
    b = Action("g2", "materialize", "x", asset_keys=("fct_events_daily",), estimated_cost_usd=10.0)
    d1, d2 = gate([a, b], sc.snapshot, sc.assessment, sc.resolution, now=NOW, config=GateConfig(low_risk=1.0))
    assert d1.decision == "execute", d1.reason
    assert d2.decision == "await_approval" and "over budget" in d2.reason, d2.reason
