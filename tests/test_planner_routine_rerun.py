"""A failure that clears by itself (rate limit, outage, warehouse capacity, memory) on work whose
policy pre-authorises routine refreshes (``materialize``) but not a ``retry``: the deadline cycle's
routine refresh re-runs it after the backoff, instead of a retry waiting hours for a person while
the chain misses its deadlines (generated world 465: a model's out-of-memory failure at 12:13 UTC,
the retry asked at 12:30 and answered at 21:30, the approver's night; two high-tier deadlines lost
that cron-tuned met). A class only a person can fix still goes to a person."""

from __future__ import annotations

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from test_planner_cycle_losses import _result
from test_planner_cycle_losses import _world as _loss_world

from orchestrator.core.records import Action, DiagnosedFailure, FailureRecord
from orchestrator.core.vocab import FailureClass
from orchestrator.planning.gate import prescribed
from orchestrator.simulator.metrics import lateness

FAST = settings(max_examples=6, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture])

POLICY = """
    policies:
      - name: dash
        select: [{key: dashboard/d}]
        deadline: {cron: "0 */3 * * *", timezone: UTC, window: 3h}
        tier: high
        rollout: auto
        auto_approve: [materialize]
"""
CLEARS_BY_ITSELF = sorted(c.value for c in FailureClass if c.rerun_resolves)


def _run(tmp_path, category: str, target: str, at: str, lasts: str):
    extra = f"""
        approvals: {{delay: 6h}}
        faults:
          - {{name: f, category: {category}, targets: ["{target}"], at: ["{at}"], lasts: {lasts}, fix: retry}}
    """
    path = _loss_world(tmp_path, POLICY, extra=extra, schedule="0 * * * *", horizon="15h")
    return _result(path)


@FAST
@given(category=st.sampled_from(CLEARS_BY_ITSELF), target=st.sampled_from(["a", "b"]),
       at=st.sampled_from(["21:05", "22:40", "00:10"]), lasts=st.sampled_from(["10m", "40m"]))
def test_a_self_clearing_failure_is_refreshed_without_waiting_for_a_person(tmp_path, category, target, at, lasts):
    sim, deadlines, _ = _run(tmp_path, category, target, at, lasts)
    failed = [i for i in sim.incidents if i.unit == target]
    assume(failed)  # the fault met a run (else the world tests nothing)
    asked = [log for log in sim.actions if log.decision == "await_approval" and target in log.action.asset_keys]
    assert not asked, [(sim.dt(log.at), log.action.type, log.action.reason) for log in asked]
    assert not any(log.unsafe for log in sim.actions)
    # every cycle that opens once the fault has cleared (+ the longest backoff and a run) is met
    cleared = max(i.opened for i in failed) + 40 * 60 + 3600
    later = [d for d in deadlines if d.opens >= cleared]
    assert later
    missed = [d for d in later if lateness(d, sim.watch.get(d.target, []), sim.horizon) > 0]
    assert not missed, [(sim.dt(d.tick), sim.dt(d.opens)) for d in missed]


def test_a_failure_only_a_person_can_fix_is_not_rerun_as_routine_work(tmp_path):
    extra = """
        faults:
          - {name: bad, category: code_error, targets: ["a"], at: ["21:05"], fix: human}
    """
    path = _loss_world(tmp_path, POLICY, extra=extra, schedule="0 * * * *", horizon="6h")
    sim, _, _ = _result(path)
    assert [i for i in sim.incidents if i.unit == "a"]
    reruns = [log for log in sim.actions if "a" in log.action.asset_keys
              and log.decision == "execute" and "clears by itself" in (log.action.reason or "")]
    assert not reruns


def _failure(category: str) -> DiagnosedFailure:
    f = FailureRecord(failure_id="f1", at=None, message="boom", system="dbt", asset_key="a")
    return DiagnosedFailure(failure=f, category=category, confidence=0.9, transient=False, evidence=())


@given(category=st.sampled_from([c.value for c in FailureClass]))
def test_a_routine_refresh_is_the_prescribed_rerun_only_for_classes_a_rerun_resolves(category):
    d = _failure(category)
    assert prescribed(d, "materialize", routine=True) is FailureClass.parse(category).rerun_resolves
    assert prescribed(d, "materialize") is False  # not routine: an ordinary materialize stays unprescribed


def test_world_465_keeps_the_deadlines_cron_tuned_meets(tmp_path):
    from orchestrator.simulator.bench import run_benchmark
    from orchestrator.simulator.scenario import load_scenario
    from orchestrator.simulator.worlds import generate_world

    sc = load_scenario(generate_world(465, tmp_path))
    sla = run_benchmark(sc, "sla", 465)
    tuned = run_benchmark(sc, "cron-tuned", 465)
    assert sla.unsafe_actions == 0
    assert sla.sla_attainment >= tuned.sla_attainment, (sla.sla_attainment, tuned.sla_attainment, sla.note)
