"""A failure only a person can fix, fixed by the on-call engineer without telling the orchestrator,
inside the deadline cycle it failed in: the planner probes it once, at the latest start that
still meets the deadline, instead of holding it back until a later cycle (and the deadline is met).
A probe that fails again is not repeated, and a probe is never a request to a person."""

from __future__ import annotations

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
