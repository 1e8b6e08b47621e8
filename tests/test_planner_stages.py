"""The planner's named stages (orchestrator.planning.planner.STAGES), each on its own."""

from __future__ import annotations

from datetime import timedelta

from planning_fixtures import NOW, failure, fresh, scenario

from orchestrator.core.records import RunRecord, RunStatus
from orchestrator.planning import plan
from orchestrator.planning.planner import STAGES, plan_state, run_stages


def _st(sc, until, **kw):
    return run_stages(plan_state(sc.snapshot, sc.assessment, sc.resolution, now=NOW, **kw), until)


def test_stages_in_order_make_the_plan():
    sc = scenario(freshness=[fresh("dashboard/exec", slack=-900, blocker="crm/account")],
                  failures=[failure("f1", "rate_limit", "429 Too Many Requests", connector="airbyte:events")])
    assert STAGES[0] == "in_flight" and STAGES[-1] == "finish" and len(set(STAGES)) == len(STAGES)
    st = _st(sc, None)
    ref = plan(sc.snapshot, sc.assessment, sc.resolution, now=NOW)
    assert [a.action_id for a in st.result.actions] == [a.action_id for a in ref.actions]


def test_in_flight_stage():
    q = RunRecord("q1", RunStatus.queued, ("stg_account",), NOW - timedelta(minutes=5))
    r = RunRecord("r1", RunStatus.running, ("stg_contact",), NOW - timedelta(minutes=5), NOW - timedelta(minutes=4))
    st = _st(scenario(runs=[q, r]), "in_flight")
    assert [x.run_id for x in st.queued] == ["q1"] and st.running == {"stg_contact"}
    assert {"stg_account", "stg_contact"} <= st.pending  # not materialized since the runs were created


def test_latest_failures_stage_counts_attempts_and_skips_recovered():
    sc = scenario(failures=[
        failure("f1", "rate_limit", "429", connector="airbyte:events", at=NOW - timedelta(hours=2)),
        failure("f2", "rate_limit", "429 again", connector="airbyte:events", at=NOW - timedelta(hours=1)),
        failure("f3", "code_error", "compile error", asset="stg_account", system="dbt", at=NOW - timedelta(hours=30)),
    ])
    st = _st(sc, "latest_failures")
    assert st.attempts == {"connector:airbyte:events": 2}  # stg_account succeeded after f3 (20 h ago)
    assert st.latest["connector:airbyte:events"].failure.failure_id == "f2"


def test_failure_responses_stage_follows_the_class():
    sc = scenario(failures=[
        failure("a1", "auth_expired", "401 token expired", connector="fivetran:crm", transient=False),
        failure("r1", "rate_limit", "429", connector="airbyte:events"),
        failure("u1", "upstream_delay", "waiting", asset="fct_revenue", system="dbt"),
    ])
    st = _st(sc, "failure_responses")
    assert [a.type for a in st.actions] == ["pause_connector"]
    assert {e.subject for e in st.escalations} == {"connector:fivetran:crm"}
    assert {"crm/account", "crm/contact"} <= st.blocked
    assert [rg["connector"] for rg in st.retry_groups] == ["airbyte:events"]
    assert any("waiting for the upstream" in n for n in st.notes)


def test_needs_and_hold_back_stages():
    sc = scenario(freshness=[fresh("dashboard/exec", slack=-900, blocker="crm/account")])
    st = _st(sc, "needs")
    assert st.targets["crm/account"] == "dashboard/exec" and "dashboard/exec" in st.want
    # an input still being rebuilt by another run holds back what reads it
    q = RunRecord("r9", RunStatus.running, ("stg_events",), NOW - timedelta(minutes=5), NOW - timedelta(minutes=5))
    sc2 = scenario(freshness=[fresh("dashboard/growth", slack=-900, blocker="stg_events", tier="low")], runs=[q])
    st2 = _st(sc2, "hold_back")
    assert "stg_events" not in st2.want and "dashboard/growth" not in st2.want


def test_group_runs_stage_joins_connected_needs():
    sc = scenario(freshness=[fresh("dashboard/exec", slack=-900, blocker="crm/account")])
    st = _st(sc, "group_runs")
    (keys,) = st.members.values()
    assert keys[0] == "crm/account" and "dashboard/exec" in keys
