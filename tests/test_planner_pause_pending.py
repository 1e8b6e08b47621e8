"""A connector failure a person must fix (an expired credential, a revoked grant) while its pause
waits for a person's answer: the on-call engineer often renews the credential long before the
approver answers the pause (at night, hours later), and the fix is not reported. A deadline cycle
that opens after the failure gets one fresh sync attempt, as a scheduled job would make, instead of
holding the connector's lineage until the pause is answered (generated world 17683: every morning
deadline lost while the credential had been renewed an hour after the failure; world 17692:
its one deadline, 0 -> 1 met)."""

from __future__ import annotations

import textwrap

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_planner_cycle_losses import _result, _world

FAST = settings(max_examples=4, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture])

POLICY = """
    policies:
      - name: dash
        select: [{key: dashboard/d}]
        deadline: {cron: "0 */3 * * *", timezone: UTC, window: 3h}
        tier: critical
        rollout: auto
        auto_approve: [retry, materialize]
      - name: platform
        select: [{role: connector_table}]
        tier: standard
        rollout: auto
        auto_approve: [retry, materialize]
"""


def _pause_pending_world(tmp_path, category: str, fault_at: str, fix_h: int):
    extra = f"""
        faults:
          - {{name: cred, category: {category}, targets: ["fivetran:src"], at: ["{fault_at}"]}}
        approvals: {{delay: 9h}}
        human_fix_delay: {fix_h}h
    """
    return _world(tmp_path, POLICY, extra=extra, schedule="30 10 * * *", horizon="15h")


@FAST
@given(category=st.sampled_from(["auth_expired", "permission_denied"]),
       fault_at=st.sampled_from(["20:40", "21:20"]), fix_h=st.sampled_from([1, 2]))
def test_cycles_after_an_unreported_credential_fix_are_met_while_the_pause_waits(tmp_path, category, fault_at,
                                                                                fix_h):
    path = _pause_pending_world(tmp_path, category, fault_at, fix_h)
    sim, deadlines, r = _result(path)
    opened = [i.opened for i in sim.incidents if i.unit == "fivetran:src"]
    assert opened, "the credential fault met a sync (else the world tests nothing)"
    fixed = min(opened) + fix_h * 3600
    answered = min(opened) + 9 * 3600  # the pause's answer comes no earlier than this
    # cycles that open after the on-call fix, and end before anyone answers the pause
    between = [d for d in deadlines if d.opens > fixed + 600 and d.tick < answered]
    assert between
    from orchestrator.simulator.metrics import lateness

    missed = [d for d in between if lateness(d, sim.watch.get(d.target, []), sim.horizon) > 0]
    assert not missed, [(str(sim.dt(d.opens)), str(sim.dt(d.tick))) for d in missed]
    # one attempt per cycle, not a retry loop against a broken credential
    failed_syncs = [f for f in sim.failures if f.connector == "fivetran:src"]
    cycles = {d.opens for d in deadlines if min(opened) <= d.tick}
    assert len(failed_syncs) <= 2 * len(cycles) + 2
