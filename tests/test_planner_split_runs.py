"""Runs that mix pre-authorised work with work that waits for a person are split: the
pre-authorised part starts now (it would otherwise wait, whole, for the person's answer).

The world: model ``a`` is selected by an ``auto`` policy that pre-authorises refreshes; the
dashboard over ``a`` and ``b`` belongs to a ``recommend`` policy whose approver answers only after
the night. Both deadlines are at 06:00 and both cycles need one run on fresh connector data."""

from __future__ import annotations

import textwrap

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_simulator_engine import run_sim, tiny

from orchestrator.simulator import load_scenario
from orchestrator.simulator.bench import deadlines_of, resolve_policies
from orchestrator.simulator.metrics import lateness

FAST = settings(max_examples=2, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture])

POLICIES = """
    policies:
      - name: model-a
        select: [{{key: a}}]
        deadline: {{cron: "0 {hour} * * *", timezone: UTC, window: 8h}}
        tier: standard
        rollout: auto
        auto_approve: [retry, materialize]
      - name: dash
        select: [{{key: dashboard/d}}]
        deadline: {{cron: "0 {hour} * * *", timezone: UTC, window: 8h}}
        tier: standard
        rollout: recommend
"""


def _world(tmp_path, hour: int):
    path = tiny(tmp_path, extra="""
        approvals: {delay: 30m, night: {start: "19:00", end: "09:00", timezone: UTC}}
        """)
    (tmp_path / "p.yaml").write_text(textwrap.dedent(POLICIES.format(hour=hour)))
    path.write_text(path.read_text().replace('schedule: "0 */3 * * *"', 'schedule: "0 * * * *"'))
    return path


def _missed(sim, path, target):
    sc = load_scenario(path)
    ds = [d for d in deadlines_of(resolve_policies(sc, sim.world), sc.t0, sc.horizon_s) if d.target == target]
    assert ds
    return [d for d in ds if lateness(d, sim.watch.get(d.target, []), sim.horizon) > 0]


@FAST
@given(hour=st.sampled_from([5, 6]))
def test_the_preauthorised_part_of_a_mixed_run_starts_without_waiting(tmp_path, hour):
    path = _world(tmp_path, hour)
    sim, _, _ = run_sim(path, "sla")
    runs_of_a = [log for log in sim.actions if "a" in log.action.asset_keys]
    assert runs_of_a, "nothing ran model a"
    first = min(runs_of_a, key=lambda log: log.at)
    # a ran on its own policy's pre-authorisation, without the dashboard's steps
    assert first.decision == "execute", first.decision
    assert "dashboard/d" not in first.action.asset_keys and "b" not in first.action.asset_keys
    # so model a's deadline is met although the dashboard's approver sleeps until 09:00
    assert not _missed(sim, path, "a")
    # the part that needs a person waits for one (the approver sleeps past the horizon)
    asked = [log for log in sim.actions if {"b", "c", "dashboard/d"} & set(log.action.asset_keys)]
    assert all(log.decision != "execute" for log in asked), [(log.decision, log.action.asset_keys) for log in asked]
    assert not any(log.unsafe for log in sim.actions) and not sim.auditor.by_kind()
