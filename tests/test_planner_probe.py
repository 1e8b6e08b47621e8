"""A failure only a person can fix, fixed by the on-call engineer without telling the orchestrator,
inside the deadline cycle it failed in: the planner probes it once, at the latest start that
still meets the deadline, instead of holding it back until a later cycle (and the deadline is met).
A probe that fails again is not repeated, and a probe is never a request to a person."""

from __future__ import annotations

import textwrap

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_planner_cycle_losses import _result
from test_planner_cycle_losses import _world as _loss_world

from orchestrator.simulator.metrics import lateness

FAST = settings(max_examples=2, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture])

POLICY = """
    policies:
      - name: dash
        select: [{key: dashboard/d}]
        deadline: {cron: "0 6 * * *", timezone: UTC, window: 8h}
        tier: critical
        rollout: auto
        auto_approve: [retry, materialize]
"""


def _run(tmp_path, category: str, fix_h: int):
    extra = f"""
        human_fix_delay: {fix_h}h
        faults:
          - {{name: grant, category: {category}, targets: ["a"], at: ["22:00"], fix: human}}
    """
    path = _loss_world(tmp_path, POLICY, extra=extra, schedule="0 * * * *", horizon="12h")
    return _result(path)


def _runs_of_a(sim):
    return [log for log in sim.actions if "a" in log.action.asset_keys]


@FAST
@given(category=st.sampled_from(["config_error", "permission_denied"]))
def test_a_fix_made_unreported_in_the_same_cycle_is_probed_before_the_deadline(tmp_path, category):
    sim, deadlines, _ = _run(tmp_path, category, fix_h=2)
    failed = [i for i in sim.incidents if i.unit == "a"]
    assert failed, "the fault met no run of model a (the world tests nothing)"
    assert min(i.opened for i in failed) >= deadlines[0].opens  # it failed inside the cycle
    missed = [d for d in deadlines if lateness(d, sim.watch.get(d.target, []), sim.horizon) > 0]
    assert not missed, [(sim.dt(d.tick), sim.dt(d.opens)) for d in missed]
    probes = [log for log in _runs_of_a(sim) if (log.action.cycle or "").startswith("probe:")]
    assert len(probes) == 1 and probes[0].decision == "execute"


def test_a_probe_that_fails_again_is_not_repeated_nor_asked(tmp_path):
    # the fix comes after the horizon: the probe fails; no second probe, no request to a person
    sim, deadlines, _ = _run(tmp_path, "permission_denied", fix_h=20)
    probes = [log for log in _runs_of_a(sim) if (log.action.cycle or "").startswith("probe:")]
    assert len(probes) == 1
    assert all(log.decision != "await_approval" for log in probes)
    assert not any(log.unsafe for log in sim.actions)


CYCLES = """
    policies:
      - name: dash
        select: [{key: dashboard/d}]
        deadline: {cron: "0 */6 * * *", timezone: UTC, window: 6h}
        tier: critical
        rollout: auto
        auto_approve: [retry, materialize]
"""


def _chain(minutes: list[int]) -> str:
    """Models a -> b -> ... downstream of src/t, then the dashboard: the run that probes the
    connector's table starts at the latest start of the whole chain, long before the table's own."""
    keys = [chr(ord("a") + i) for i in range(len(minutes))]
    rows = [f"- {{key: {k}, upstream: [{keys[i - 1] if i else 'src/t'}], duration: {{median: {m}m, sigma: 0}}}}"
            for i, (k, m) in enumerate(zip(keys, minutes))]
    rows.append(f"- {{key: dashboard/d, role: dashboard, upstream: [{keys[-1]}]}}")
    return "\n".join(rows)


@settings(max_examples=4, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chain=st.lists(st.integers(20, 50), min_size=2, max_size=4),
       fix_h=st.integers(5, 9), category=st.just("code_error"))
def test_a_subject_is_probed_once_per_cycle_and_its_failed_probes_do_not_block_the_one_after_the_fix(
        tmp_path, chain, fix_h, category):
    # the connector fails at 20:30 with a cause only a person fixes (one that does not pause
    # the connector: a paused connector waits for its reported repair instead); on-call fixes it ``fix_h``
    # hours later without telling anyone. Deadlines every 4 h: each cycle in between gets one
    # probe of the connector's table (none twice, whatever set of assets its run covers), and
    # the failed ones do not open the circuit breaker on it: the probe after the fix runs and its
    # cycle is met (generated world 463: two probes in one cycle opened the breaker, which held
    # back every later attempt until the connector's own sync)
    from test_simulator_engine import tiny
    extra = f"""
        human_fix_delay: {fix_h}h
        faults:
          - {{name: broken, category: {category}, targets: ["fivetran:src"], at: ["20:30"], fix: human}}
    """
    path = tiny(tmp_path, extra=extra, models=_chain(chain))
    (tmp_path / "p.yaml").write_text(textwrap.dedent(CYCLES))
    path.write_text(path.read_text().replace('schedule: "0 */3 * * *"', 'schedule: "0 */12 * * *"')
                    .replace("horizon: 12h", "horizon: 26h"))
    sim, deadlines, _ = _result(path)
    broken = [i for i in sim.incidents if i.unit == "fivetran:src"]
    assert broken, "the fault met no sync of the connector (the world tests nothing)"
    probes = [log for log in sim.actions if (log.action.cycle or "").startswith("probe:")]
    for d in deadlines:
        in_cycle = [log for log in probes if d.opens <= log.at < d.tick and "src/t" in log.action.asset_keys
                    and log.decision == "execute"]
        assert len(in_cycle) <= 1, [(sim.dt(log.at), log.action.asset_keys) for log in in_cycle]
    assert not [log for log in probes if log.decision == "record_only"], "a probe held back by the breaker"
    fixed = min(i.opened for i in broken) + fix_h * 3600
    after = [d for d in deadlines if d.opens >= fixed]
    assert after
    missed = [d for d in after if lateness(d, sim.watch.get(d.target, []), sim.horizon) > 0]
    assert not missed, [(sim.dt(d.tick), sim.dt(d.opens)) for d in missed]


@settings(max_examples=60, deadline=None, derandomize=True)
@given(outcomes=st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=12),
       keys=st.lists(st.sampled_from(["src/t", "a", "b", "c"]), min_size=1, max_size=3, unique=True))
def test_failed_probes_never_open_the_breaker_and_other_failures_still_do(outcomes, keys):
    # (is a probe, succeeded) in turn, 10 min apart: the breaker opens exactly when the failed
    # automatic actions that are not probes reach its threshold since the last success
    from datetime import datetime, timedelta, timezone

    from orchestrator.core.decide import learn_outcome
    from orchestrator.core.records import Action
    from orchestrator.planning.breaker import CircuitBreaker

    breaker, t0, streak, expect_open = CircuitBreaker(), datetime(2026, 3, 3, tzinfo=timezone.utc), 0, False
    for i, (probe, ok) in enumerate(outcomes):
        action = Action(action_id=f"x{i}", type="materialize", reason="", asset_keys=tuple(keys),
                        cycle=("probe:" if probe else "") + "a@2026-03-03T06:00:00+00:00", cause="freshness")
        learn_outcome(action, ok, breaker=breaker, automatic=True, now=t0 + timedelta(minutes=10 * i))
        streak = 0 if ok else streak + (not probe)
        expect_open = expect_open or streak >= breaker.threshold
    assert breaker.is_open(f"asset:{keys[0]}") == expect_open


def test_world_463_probes_its_broken_connector_once_per_cycle(tmp_path):
    # generated world 463: a code_error on fivetran:src0 at 18:43; the run that probed it started
    # at 21:15 (its downstream model's latest start), 77 min before the table's own: its failure
    # at 21:26 was not "near the table's latest start", so a second probe (other assets, another
    # action id) ran at 21:30 and the two failures opened the breaker on l0/m4
    from orchestrator.simulator.bench import resolve_policies
    from orchestrator.simulator.engine import Simulation
    from orchestrator.simulator.metrics import deadlines_of
    from orchestrator.simulator.planners import make_planner
    from orchestrator.simulator.scenario import load_scenario
    from orchestrator.simulator.worlds import generate_world

    sc = load_scenario(str(generate_world(463, tmp_path)))
    res = resolve_policies(sc, sc.realise(463))
    sim, planner = Simulation(sc, 463), make_planner("sla")
    sim.set_resolution(res)
    for d in deadlines_of(res, sc.t0, sc.horizon_s):
        sim.watch.setdefault(d.target, [])
    planner.start(sim)
    sim.run()
    planner.finish(sim)
    probes = [log for log in sim.actions if (log.action.cycle or "").startswith("probe:src0/")
              and log.decision == "execute"]
    assert probes, "world 463 no longer probes fivetran:src0 (the test checks nothing)"
    cycles = [log.action.cycle.split("@")[1] for log in probes]
    assert len(cycles) == len(set(cycles)), [(sim.dt(log.at), log.action.asset_keys) for log in probes]
    assert not planner.breaker.open_subjects(sim.dt())
