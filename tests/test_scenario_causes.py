"""Causes of deadlines the `sla` planner lost on the shipped scenarios (issue 11), each on a small
world of its own:

* peak-hour: an input already fresh for the open cycle, whose share of the deadline had passed
  (its assessment moved on to tomorrow's cycle, whose window has not opened), counted as "still
  needs a run" and held back every model below it: a model that still needed a rebuild for the
  open cycle never ran (`_Cycles.holds`);
* schema-change: a model broken by a schema change failed, was escalated (a Conversion error reads
  as bad data; a Binder error's retries ran out) and was never retried once the patch was applied
  or a person fixed it: the schema-change sensor now reports the repair (``Simulation.repairs``,
  ``ActionLedger.record_repair``) and the planner retries it at once, with the subject's circuit
  breaker closed (a person took over); and a budget extension was asked at 01:00 for a budget
  that never bound: a failed step billed the warehouse's 60 s minimum read as 60x the price
  (``observed_usd_per_hour``);
"""

from __future__ import annotations

import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.simulator import load_scenario
from orchestrator.simulator.bench import deadlines_of, resolve_policies
from orchestrator.simulator.engine import Simulation
from orchestrator.simulator.metrics import lateness
from orchestrator.simulator.planners import make_planner


def _run(path, planner="sla", seed=0):
    sc = load_scenario(path)
    sim = Simulation(sc, seed)
    res = resolve_policies(sc, sim.world)
    sim.set_resolution(res)
    deadlines = deadlines_of(res, sc.t0, sc.horizon_s)
    for d in deadlines:
        sim.watch.setdefault(d.target, [])
    p = make_planner(planner)
    p.start(sim)
    sim.run()
    return sim, deadlines, p


def _missed(sim, deadlines):
    return [(sim.dt(d.tick).isoformat(), d.target) for d in deadlines
            if lateness(d, sim.watch.get(d.target, []), sim.horizon) > 0]


SHARES = """
    name: shares
    start: 2026-03-02T20:00:00Z
    horizon: 9h
    policies: [p.yaml]
    sensor_tick: 5m
    graph:
      connectors:
        - {id: "fivetran:one", source: one, tables: [one/t], schedule: "0 * * * *", duration: {median: 10m, sigma: 0}}
        - {id: "fivetran:two", source: two, tables: [two/t], schedule: "0 3 * * *", duration: {median: 10m, sigma: 0}}
      assets:
        - {key: a, upstream: [one/t], duration: {median: 5m, sigma: 0}}
        - {key: z1, upstream: [a], duration: {median: 20m, sigma: 0}}
        - {key: z2, upstream: [z1], duration: {median: 20m, sigma: 0}}
        - {key: z3, upstream: [z2], duration: {median: 20m, sigma: 0}}
        - {key: b, upstream: [two/t], duration: {median: 5m, sigma: 0}}
        - {key: m, upstream: [a, b], duration: {median: 5m, sigma: 0}}
        - {key: dashboard/d, role: dashboard, upstream: [m, z3]}
    capacity: {warehouse_slots: 4}
    baseline: {jobs: [{name: build, cron: "0 2 * * *"}]}
"""
SHARES_POLICY = """
    policies:
      - name: d
        select: [{key: dashboard/d}]
        deadline: {cron: "0 4 * * *", timezone: UTC, window: 3h}
        tier: critical
        rollout: auto
        auto_approve: [retry, materialize]
"""


@pytest.mark.parametrize("seed", [0, 1])
def test_an_input_fresh_for_the_open_cycle_does_not_hold_back_what_still_needs_a_run(tmp_path, seed):
    # dashboard/d is due at 04:00 with data newer than 01:00. `a` feeds a long chain (z1..z3) and
    # `m`; `b` lands only with connector two's own 03:00 sync. By then `a` is fresh for the cycle
    # and its share of the deadline (04:00 minus the long chain) has passed, so its assessment
    # looks at tomorrow's cycle; `m` still needs a run on `b`'s new data. It must run (was: held
    # back by `a`, "still needing" a run for tomorrow, and the deadline was lost)
    (tmp_path / "p.yaml").write_text(textwrap.dedent(SHARES_POLICY))
    path = tmp_path / "w.yaml"
    path.write_text(textwrap.dedent(SHARES))
    sim, deadlines, _ = _run(path, seed=seed)
    assert len(deadlines) == 1
    assert not _missed(sim, deadlines)


PATCHED = """
    name: patched
    start: 2026-03-02T20:00:00Z
    horizon: 13h
    policies: [p.yaml]
    sensor_tick: 5m
    graph:
      connectors:
        - {id: "fivetran:src", tables: [src/t], schedule: "0 */3 * * *", duration: {median: 15m, sigma: 0}}
      assets:
        - {key: a, upstream: [src/t], duration: {median: 10m, sigma: 0}}
        - {key: b, upstream: [src/t], duration: {median: 20m, sigma: 0}}
        - {key: c, upstream: [a, b], duration: {median: 5m, sigma: 0}}
        - {key: dashboard/d, role: dashboard, upstream: [c]}
    capacity: {warehouse_slots: 2}
    baseline: {jobs: [{name: build, cron: "0 2 * * *"}]}
    schema_changes:
      - {name: retype, table: src/t, change: change_type, column: amount, to: string, at: "20:30", breaks: [a]}
    human_fix_delay: FIX_DELAY
    approvals: {delay: 45m, night: {start: "21:00", end: "06:00", timezone: UTC}}
"""
PATCHED_POLICY = """
    policies:
      - name: dash
        select: [{key: dashboard/d}]
        deadline: {cron: "0 8 * * *", timezone: UTC, window: 10h}
        tier: critical
        rollout: auto
        auto_approve: [retry, materialize]
"""


class _Starts:
    def __init__(self):
        self.starts: dict[str, list[float]] = {}

    def on_step_end(self, sim, st, ok):
        if st.start is not None:
            self.starts.setdefault(st.unit, []).append(st.start)

    def on_run_end(self, sim, run):
        pass


@pytest.mark.parametrize("fix_delay,fixed_by", [("12h", "patch"), ("3h", "person")])
def test_a_model_broken_by_a_schema_change_is_retried_within_one_cycle_of_its_fix(tmp_path, fix_delay, fixed_by):
    # `a` reads a column whose type changed at 20:30: its 00:25 build fails with a Conversion error
    # (diagnosed as bad data: escalated, not retried). The verified patch waits for an approver
    # asleep until 06:00 (applied 06:45) unless on-call fixes it first (3 h after the failure).
    # Once fixed, the next planning cycle retries `a` (was: never, for this cycle: the 08:00
    # deadline was lost) and the deadline is met.
    (tmp_path / "p.yaml").write_text(textwrap.dedent(PATCHED_POLICY))
    path = tmp_path / "w.yaml"
    path.write_text(textwrap.dedent(PATCHED).replace("FIX_DELAY", fix_delay))
    sc = load_scenario(path)
    sim = Simulation(sc, 0)
    res = resolve_policies(sc, sim.world)
    sim.set_resolution(res)
    deadlines = deadlines_of(res, sc.t0, sc.horizon_s)
    for d in deadlines:
        sim.watch.setdefault(d.target, [])
    spy = _Starts()
    sim.listeners.append(spy)
    p = make_planner("sla")
    p.start(sim)
    sim.run()
    (record,) = sim.schema_changes.summary()["records"]
    assert record["fixed_by"] == fixed_by and record["failed_attempts"] >= 1
    fixed = record["fixed"]
    assert any(f.asset_key == "a" and sim.secs(f.at) < fixed for f in sim.failures)  # it failed before the fix
    # the next start of `a` after the fix: within the schema sensor's tick + one planning cycle
    after = [t for t in spy.starts.get("a", []) if t >= fixed]
    limit = sc.spec.schema_sensor_tick.total_seconds() + sc.spec.sensor_tick.total_seconds()
    assert after and min(after) - fixed <= limit, (sim.dt(fixed), [sim.dt(t) for t in after[:3]])
    assert not _missed(sim, deadlines)
    assert sim.repairs and sim.repairs[0][0] == "asset:a"


def test_a_reported_repair_retries_an_escalated_model_at_once():
    # decide(): a model escalated after bad-data failures is retried (no approval) once a repair
    # whatever the class is reported after its last failure; a repair older than it does not count
    from datetime import timedelta

    from planning_fixtures import NOW, failure, scenario

    from orchestrator.core.decide import decide
    from orchestrator.core.incidents import ANY_CLASS, ActionLedger

    msg = "Conversion Error: Could not convert string 'n/a' to INT64 in column \"amount\""
    sc = scenario(failures=[failure("f1", "data_quality", msg, asset="stg_account", system="dbt", transient=False,
                                    at=NOW - timedelta(minutes=20))])
    ledger = ActionLedger()
    d0 = decide(sc.snapshot, sc.resolution, assessment=sc.assessment, now=NOW, ledger=ledger)
    assert not [g for g in d0.decisions if g.action.type == "retry"]
    assert [e.subject for e in d0.plan.escalations] == ["asset:stg_account"]
    ledger.record_repair("asset:stg_account", ANY_CLASS, NOW - timedelta(minutes=30))  # before the failure
    d1 = decide(sc.snapshot, sc.resolution, assessment=sc.assessment, now=NOW, ledger=ledger)
    assert not [g for g in d1.decisions if g.action.type == "retry"]
    ledger.record_repair("asset:stg_account", ANY_CLASS, NOW - timedelta(minutes=5))
    d2 = decide(sc.snapshot, sc.resolution, assessment=sc.assessment, now=NOW, ledger=ledger)
    (retry,) = [g for g in d2.decisions if g.action.type == "retry"]
    assert retry.decision == "execute" and retry.action.asset_keys == ("stg_account",), retry.reason
    assert "repaired" in retry.action.reason and not d2.plan.escalations


# -- schema-change: a budget extension asked at 01:00 for a budget that does not bind -------------

def _run_cost(usd: float, compute_s: float, key: str = "stg_account"):
    from datetime import timedelta

    from planning_fixtures import NOW

    from orchestrator.core.records import CostRecord

    return CostRecord(at=NOW - timedelta(minutes=10), amount_usd=usd, source="run", asset_key=key,
                      compute_s=compute_s)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(rate=st.floats(0.5, 200.0), long=st.lists(st.floats(60.0, 7200.0), min_size=1, max_size=5),
       short=st.lists(st.floats(0.5, 59.0), max_size=5))
def test_the_observed_warehouse_price_is_the_billed_rate_whatever_the_minimum_billed_steps(rate, long, short):
    # steps billed by the second at `rate`, and short (failed) steps billed the 60 s minimum
    from orchestrator.core.standing import observed_usd_per_hour

    recs = [_run_cost(s / 3600.0 * rate, s) for s in long] + [_run_cost(60.0 / 3600.0 * rate, s) for s in short]
    assert observed_usd_per_hour(recs) == pytest.approx(rate, rel=1e-9)
    assert observed_usd_per_hour([_run_cost(60.0 / 3600.0 * rate, s) for s in short]) is None


def test_a_failed_step_billed_the_minimum_asks_no_budget_extension():
    # schema-change: the first cost record of the night was a model failing after 1 s, billed the
    # warehouse's 60 s minimum ($0.12 at $7.20/h): read as $432/h, every model without history
    # looked 60x dearer and a $150/day policy "needed" $1,496 a day: an extension was asked of a
    # person at 01:00 for a budget that never bound. Priced at the rate, nothing is asked (here: a
    # $20/day budget, a 3-minute model without history: $36 at the misread price, $0.10 at $2/h).
    from planning_fixtures import NOW, scenario

    from orchestrator.core.standing import BudgetBook, budget_requests
    from orchestrator.planning import gate
    from orchestrator.core.records import Action, CostAssessment

    sc = scenario(costs=[_run_cost(0.2, 1.0)])  # a 1 s failure billed 60 s at $12/h
    assert budget_requests(sc.resolution, sc.snapshot, {"growth": (0.0, 20.0)}, BudgetBook(), NOW,
                           sc.durations) == []
    # the gate prices unpriced work the same way: a refresh of stg_events is not "over budget"
    sc.assessment.cost.append(CostAssessment(
        scope="policy:growth", spent_today_usd=0.0, spent_month_usd=0.0, forecast_day_usd=0.0,
        forecast_month_usd=0.0, budget_day_usd=20.0, budget_month_usd=None, spike=False, baseline_day_usd=None,
        reason="t"))
    a = Action("m1", "materialize", "refresh", asset_keys=("stg_events",), priority=5, cause="freshness")
    (g,) = gate([a], sc.snapshot, sc.assessment, sc.resolution, now=NOW, durations=sc.durations)
    assert "over budget" not in g.reason, g.reason


# -- the same repair in the real system: schema-change sensor -> project store -> ledger -> decide ---

def test_the_schema_sensor_reports_a_fixed_table_as_a_repair_and_the_next_cycle_retries(tmp_path, monkeypatch):
    # tick 1: crm/account lands a type change that breaks stg_account; tick 2: the project's
    # expectations change (the patch merged and deployed) and the table matches again. The sensor
    # records the repair in the store (audit incident.repaired, the breaker trip closed); the
    # store's ledger carries it, and decide() retries the escalated stg_account at once.
    from datetime import datetime, timedelta, timezone

    from planning_fixtures import failure, graph, scenario

    import orchestrator.schema_changes.scan as scan_mod
    from orchestrator.core.decide import decide
    from orchestrator.core.incidents import ANY_CLASS
    from orchestrator.proposals import REPAIR_EVENT, Proposals
    from orchestrator.schema_changes.detect import ColumnChange, TableDiff
    from orchestrator.schema_changes.impact import ChangeImpact
    from orchestrator.schema_changes.scan import TableReport
    from orchestrator.store import open_store
    from orchestrator.store.agent_models import BreakerTripRow
    from sensors import ProjectContext
    from sensors.schema_changes import schema_tick

    change = ColumnChange("type_changed", "amount", old_type="bigint", new_type="varchar")
    broken = TableReport("crm/account", "crm.account", "f1", TableDiff("crm", "account", [change]),
                         impacts=[ChangeImpact("crm.account", change, True, "cast", broken_models={"stg_account"})],
                         handling=[("changes crm.account.amount", "person")])
    calls = []

    def fake_scan(manifest, landing_dir, lineage, *, seen=None, **kw):
        calls.append(dict(seen or {}))
        if not calls[:-1]:
            return [broken]
        if (seen or {}).get("crm/account") == "f1":  # nothing new landed, nothing re-checked
            return []
        return [TableReport("crm/account", "crm.account", "f1", TableDiff("crm", "account", []))]

    monkeypatch.setattr(scan_mod, "scan", fake_scan)
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}", cached=False)
    now = datetime.now(timezone.utc)
    with store.session() as s:  # the broken model's automatic retries had tripped its breaker
        s.add(BreakerTripRow(trip_key="asset:stg_account@t", subject="asset:stg_account", failures=3,
                             reason="3 failed automatic actions", opened_at=now - timedelta(minutes=30)))
    ctx = ProjectContext(graph=graph(), resolution=None)
    manifest = {"sources": {"source.p.crm.account": {"columns": {"amount": {"data_type": "bigint"}}}}}
    kw = dict(landing_dir=tmp_path, cache_dir=tmp_path, project_dir=tmp_path, lineage=lambda: None, store=store,
              llm=False)
    _, _, _, state = schema_tick(ctx, {}, manifest=manifest, **kw)
    assert state["bad"] == ["crm/account"] and state["broken"] == {"crm/account": ["stg_account"]}
    _, _, _, state = schema_tick(ctx, state, manifest=manifest, **kw)  # same project, nothing landed
    assert not store.audit_events(kind=REPAIR_EVENT)
    patched = {"sources": {"source.p.crm.account": {"columns": {"amount": {"data_type": "varchar"}}}}}
    _, events, _, state = schema_tick(ctx, state, manifest=patched, **kw)
    assert "crm/account" not in calls[-1]  # the failing table is looked at again at once
    assert state["bad"] == [] and state["broken"] == {} and [e.passed for e in events] == [True]
    (ev,) = store.audit_events(kind=REPAIR_EVENT)
    assert ev["subject"] == "asset:stg_account" and ev["payload"]["category"] == ANY_CLASS
    props = Proposals(store)
    assert not props.breaker(now + timedelta(minutes=1)).is_open("asset:stg_account")
    ledger = props.ledger(now + timedelta(minutes=1))
    assert ledger.repairs["asset:stg_account"][0] == ANY_CLASS
    # the next cycle: stg_account failed (bad data, escalated) before the repair: retried now
    msg = "Conversion Error: Could not convert string 'n/a' to INT64 in column \"amount\""
    sc = scenario(failures=[failure("f1", "data_quality", msg, asset="stg_account", system="dbt", transient=False,
                                    at=now - timedelta(minutes=20))], now=now + timedelta(minutes=1))
    d = decide(sc.snapshot, sc.resolution, assessment=sc.assessment, now=now + timedelta(minutes=1), ledger=ledger)
    (retry,) = [g for g in d.decisions if g.action.type == "retry"]
    assert retry.decision == "execute" and retry.action.asset_keys == ("stg_account",), retry.reason
