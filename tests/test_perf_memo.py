"""The speed-ups change no decision: every memo (``orchestrator/perf.py``) against the reference
path (the same code with the memos off).

* whole simulations: generated worlds run by the ``sla`` planner give the same attainment,
  lateness, exact cost, action log (type, subjects, priority, timing, decision, audit) and runs;
* deadline schedules: next/prev tick over random walks of "now" (DST zones, business calendars);
* cost assessment: random streams of cost records, days and months rolling over, records
  arriving from the future and lists rebuilt between ticks;
* the scrubber's literal pre-check: the same output on random mixes of the secrets corpus;
* failure diagnosis: identical predictions on the whole corpus.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator import perf

UTC = timezone.utc
DATA = Path(__file__).parent / "data"


# -- whole simulations --------------------------------------------------------------------------
def _outcome(sc, seed: int) -> dict:
    from orchestrator.simulator.bench import resolve_policies, simulate
    from orchestrator.simulator.engine import Simulation
    from orchestrator.simulator.metrics import deadlines_of
    from orchestrator.simulator.planners import make_planner

    world = sc.realise(seed)
    res = resolve_policies(sc, world)
    deadlines = deadlines_of(res, sc.t0, sc.horizon_s)
    sims: list[Simulation] = []
    orig = Simulation.run

    def run(self):
        sims.append(self)
        return orig(self)

    Simulation.run = run
    try:
        r = simulate(sc, seed, make_planner("sla"), res, deadlines)
    finally:
        Simulation.run = orig
    sim = sims[-1]
    return {
        "figures": (r.sla_attainment, r.weighted_lateness, r.cost, r.approvals_requested, r.unsafe_actions,
                    r.met, r.deadlines, r.incidents, r.note, tuple(r.lateness)),
        "total_cost": repr(sim.total_cost),
        "actions": [(a.action.type, a.action.connector, tuple(sorted(a.action.asset_keys)), a.action.run_id,
                     a.action.priority, a.action.not_before, a.action.reason, a.decision, a.at, a.executed_at,
                     a.unsafe) for a in sim.actions],
        "runs": [(x.run_id, x.assets, x.priority, x.source, x.created, x.ended, x.failed, x.canceled)
                 for x in sim.runs.values()],
        "incidents": [(i.unit, i.cause, i.opened, i.first_action, i.resolved, i.resolved_by) for i in sim.incidents],
    }


@pytest.fixture(scope="module")
def worlds(tmp_path_factory):
    from orchestrator.simulator.scenario import load_scenario
    from orchestrator.simulator.worlds import generate_world

    out = tmp_path_factory.mktemp("worlds")
    return {seed: load_scenario(generate_world(seed, out)) for seed in (24, 27)}


@pytest.mark.parametrize("seed", [24, 27])
def test_generated_world_outcome_is_the_same_with_and_without_memos(worlds, seed):
    sc = worlds[seed]
    fast = _outcome(sc, seed)
    with perf.disabled():
        reference = _outcome(sc, seed)
    assert fast["actions"], "the world should make the planner act"
    assert fast == reference


# -- deadline schedules -------------------------------------------------------------------------
SCHEDULES = [
    ("0 6 * * *", "America/New_York", False),
    ("30 1,13 * * 1-5", "Europe/London", True),
    ("*/15 * * * *", "UTC", False),
    ("30 2 * * *", "Europe/Berlin", False),  # 02:30 does not exist on the spring-forward day
    ("0 9 * * 1", "Asia/Kolkata", True),
]


@settings(max_examples=40, deadline=None)
@given(which=st.integers(0, len(SCHEDULES) - 1), start=st.integers(0, 365 * 24 * 4),
       steps=st.lists(st.sampled_from([0, 1, 59, 60, 300, 900, 3600, 7200, 86400, -1, -300]), min_size=5,
                      max_size=60))
def test_schedule_tick_memo_matches_the_reference(which, start, steps):
    from orchestrator.policies.calendar import BusinessCalendar, Schedule

    cron, tz, business = SCHEDULES[which]
    schedule = Schedule(cron, tz, BusinessCalendar() if business else None)
    t = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=15 * start)
    for step in steps:
        t += timedelta(seconds=step)
        got = (schedule.next_tick(t), schedule.prev_tick(t))
        with perf.disabled():
            want = (schedule.next_tick(t), schedule.prev_tick(t))
        assert got == want
        assert [(g.tzinfo, g.fold) for g in got] == [(w.tzinfo, w.fold) for w in want]


# -- cost assessment ----------------------------------------------------------------------------
COST_POLICY = """
policies:
  - name: mart
    select: [{key: "mart"}]
    deadline: {cron: "0 6 * * *", timezone: UTC}
    budget: {per_day: 5}
  - name: raw
    select: [{key: "src/t1"}]
    max_lag: 1d
    budget: {per_day: 2, per_month: 30}
"""


@pytest.fixture(scope="module")
def cost_world(tmp_path_factory):
    from orchestrator.core.graph import AssetGraph, AssetNode
    from orchestrator.policies import DurationModel, load_policies, resolve

    tmp = tmp_path_factory.mktemp("costpol")
    (tmp / "p.yaml").write_text(COST_POLICY)
    graph = AssetGraph([
        AssetNode("src/t1", role="connector_table", connector="fivetran:c", group="sources"),
        AssetNode("src/t2", role="connector_table", connector="fivetran:c", group="sources"),
        AssetNode("mart", role="dbt_model", upstream=("src/t1", "src/t2"), group="marts"),
        AssetNode("other", role="dbt_model", group="marts"),
    ])
    res = resolve(load_policies([tmp]), graph, DurationModel(), datetime(2026, 1, 29, tzinfo=UTC))
    assert res.ok, res.errors
    return graph, res


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_cost_assessment_memo_matches_the_reference(cost_world, data):
    from orchestrator.assessment.cost import assess_cost
    from orchestrator.core.records import CostRecord, Snapshot

    graph, res = cost_world
    now = datetime(2026, 1, 29, 20, tzinfo=UTC)  # days and a month roll over within the run
    records: list[CostRecord] = []
    subjects = [{"asset_key": "mart"}, {"asset_key": "other"}, {"connector": "fivetran:c"},
                {"asset_key": "unknown/x"}, {}]
    for _ in range(data.draw(st.integers(3, 25))):
        now += timedelta(seconds=data.draw(st.sampled_from([60, 300, 3600, 4 * 3600, 86400])))
        for _ in range(data.draw(st.integers(0, 4))):
            offset = data.draw(st.sampled_from([0, -30, -3 * 86400, 120]))  # 120 s: from the future
            records.append(CostRecord(now + timedelta(seconds=offset), data.draw(st.floats(0.001, 50.0)), "run",
                                      **data.draw(st.sampled_from(subjects))))
        costs = list(records) if data.draw(st.booleans()) else [
            CostRecord(r.at, r.amount_usd, r.source, asset_key=r.asset_key, connector=r.connector) for r in records]
        snap = Snapshot(taken_at=now, graph=graph, costs=costs)
        got = assess_cost(snap, res, now=now)
        with perf.disabled():
            want = assess_cost(snap, res, now=now)
        assert got == want


# -- scrubber and diagnosis ---------------------------------------------------------------------
SECRETS = [json.loads(line) for line in (DATA / "secrets_corpus.jsonl").read_text().splitlines() if line.strip()]
FILLERS = ["Connection failed: ", " at line 3\n", "password=", "Bearer ", "https://user:", "@db.example.com/x",
           " token is ", "AKIA", "sk-", "-----BEGIN PRIVATE KEY-----", "İ", "ſecret", " api key ", "=", ":", " "]


@settings(max_examples=80, deadline=None)
@given(parts=st.lists(st.one_of(st.sampled_from([s.get("text") or s.get("value") or "" for s in SECRETS]),
                                st.sampled_from(FILLERS), st.text(max_size=12)), max_size=8))
def test_scrub_precheck_matches_the_reference(parts):
    from orchestrator.scrubbing import scrub

    text = "".join(parts)
    with perf.disabled():
        want = scrub(text)
    assert scrub(text) == want


def test_diagnosis_predictions_identical_on_the_corpus():
    from orchestrator.diagnosis import diagnose

    rows = [json.loads(x) for x in (DATA / "failure_corpus.jsonl").read_text().splitlines() if x.strip()]
    fast = [diagnose(r["message"], r.get("system")).model_dump() for r in rows]
    with perf.disabled():
        reference = [diagnose(r["message"], r.get("system")).model_dump() for r in rows]
    assert len(rows) >= 800
    assert fast == reference
