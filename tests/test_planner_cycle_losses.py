"""Causes of lost deadline cycles found by decomposing `sla`'s misses against `cron-tuned` on generated
worlds (benchmarks/miss_decomposition.py), each on small generated worlds:

* a blackout window on the way to a target covers its deadline: the work must be done before the
  blackout opens (was: planned at the latest start the deadline gives, then refused for the blackout);
* a failure that escalates (a person must look: bad data, code) held its subject back for every
  later cycle, while the cause had gone: a new cycle gets one fresh attempt;
* (not tested here: a run asked ahead for a later cycle held back an earlier cycle that needs the
  same assets before that start; measured on generated worlds only).
"""

from __future__ import annotations

import textwrap

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from test_simulator_engine import run_sim, tiny

from orchestrator.simulator import load_scenario
from orchestrator.simulator.bench import deadlines_of, resolve_policies, result_from_sim
from orchestrator.simulator.metrics import lateness

FAST = settings(max_examples=4, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def _world(tmp_path, policy: str, extra: str = "", schedule: str = "0 */3 * * *", horizon: str = "12h"):
    path = tiny(tmp_path, extra=extra)
    (tmp_path / "p.yaml").write_text(textwrap.dedent(policy))
    path.write_text(path.read_text().replace('schedule: "0 */3 * * *"', f'schedule: "{schedule}"')
                    .replace("horizon: 12h", f"horizon: {horizon}"))
    return path


def _result(path, planner="sla"):
    sim, _, _ = run_sim(path, planner)
    sc = load_scenario(path)
    deadlines = deadlines_of(resolve_policies(sc, sim.world), sc.t0, sc.horizon_s)
    return sim, deadlines, result_from_sim(sim, planner, deadlines, 0.0)


@FAST
@given(fault_at=st.sampled_from(["21:00", "21:30"]), model=st.sampled_from(["a", "c"]))
def test_an_escalated_failure_does_not_cost_the_later_cycles(tmp_path, fault_at, model):
    # deadlines every 3 h (window 3 h); bad data on a model for 90 min in the first cycle: it
    # escalates (a person must look) and is not retried for that cycle; once the bad batch has
    # gone (90 min), every cycle that opens later is served
    policy = """
        policies:
          - name: dash
            select: [{key: dashboard/d}]
            deadline: {cron: "0 */3 * * *", timezone: UTC, window: 3h}
            tier: critical
            rollout: auto
            auto_approve: [retry, materialize]
    """
    extra = f"""
        faults:
          - {{name: bad-batch, category: data_quality, targets: ["{model}"], at: ["{fault_at}"], lasts: 90m, fix: retry}}
    """
    path = _world(tmp_path, policy, extra=extra, schedule="0 * * * *", horizon="18h")
    sim, deadlines, r = _result(path)
    failed = [i for i in sim.incidents if i.unit == model]
    assume(failed)  # the bad batch met a run (else the world tests nothing)
    cleared = max(i.opened for i in failed) + 5400
    later = [d for d in deadlines if d.opens > cleared + 600]
    assert later
    missed = [d for d in later if lateness(d, sim.watch.get(d.target, []), sim.horizon) > 0]
    assert not missed, [(sim.dt(d.tick), sim.dt(d.opens)) for d in missed]


@settings(max_examples=40, deadline=None, derandomize=True)
@given(work_min=st.integers(10, 90), gap_min=st.integers(0, 120), covers=st.booleans())
def test_latest_start_leaves_the_work_before_a_blackout(work_min, gap_min, covers):
    # a dashboard due at 12:00 (3 h from now) whose remaining work takes ``work_min`` (p90); a
    # blackout opens after enough time for that work and either covers the deadline or ends too
    # late to do the work after it: the latest start lets the work end before the blackout opens
    from datetime import timedelta

    from planning_fixtures import NOW, fresh, scenario

    from orchestrator.planning import PlannerConfig
    from orchestrator.planning.planner import _Cycles

    work = timedelta(minutes=work_min)
    opens = NOW + work + timedelta(minutes=5 + gap_min)
    deadline = NOW + timedelta(hours=3)
    assume(opens < deadline)
    ends = deadline + timedelta(hours=1) if covers else deadline - work + timedelta(minutes=1)
    assume(ends > opens)
    bl = ('  - name: freeze\n    select: [{key: "dashboard/growth"}]\n    max_lag: 48h\n'
          f'    windows: {{blackout: [{{start: {opens:%Y-%m-%dT%H:%M}, end: {ends:%Y-%m-%dT%H:%M}, '
          'reason: "maintenance"}]}\n')
    slack = (deadline - NOW - work).total_seconds()
    fa = fresh("dashboard/growth", status="ok", slack=slack, deadline=deadline)
    for blackout, expect_cut in (("", False), (bl, True)):
        sc = scenario(freshness=[fa], blackout=blackout)
        cycles = _Cycles(sc.snapshot, sc.assessment, sc.resolution, sc.durations, NOW, PlannerConfig(),
                         sc.graph.topological_index())
        latest = cycles.latest_start("dashboard/growth")
        if not expect_cut:
            assert latest == NOW + timedelta(seconds=slack)
        else:
            assert NOW <= latest and latest + work <= opens, (latest, opens)

