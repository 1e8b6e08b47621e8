"""Deterministic planner and validation on a small hand-made project."""

from datetime import timedelta

from planning_fixtures import NOW, failure, fresh, scenario

from orchestrator.core.records import Action, CostAssessment, CostRecord, RunRecord, RunStatus
from orchestrator.planning import plan, priority_for, validate
from orchestrator.planning.common import AgentPlan


def _plan(sc, **kw):
    return plan(sc.snapshot, sc.assessment, sc.resolution, sc.durations, now=NOW, **kw)


def test_least_slack_first_priorities_and_critical_path():
    sc = scenario(freshness=[
        fresh("dashboard/exec", slack=-900, blocker="crm/account"),
        fresh("dashboard/growth", slack=1800, blocker="events/page_view", tier="low"),
    ])
    p = _plan(sc)
    runs = [a for a in p.actions if a.type == "materialize"]
    assert [a.asset_keys[-1] for a in runs] == ["dashboard/exec", "dashboard/growth"]
    exec_run = runs[0]
    assert exec_run.asset_keys == ("crm/account", "stg_account", "fct_revenue", "dashboard/exec")
    assert exec_run.priority > runs[1].priority
    assert priority_for(-900, "low") > priority_for(1800, "critical")  # slack first, tier breaks ties
    assert priority_for(0, "critical") > priority_for(0, "low")
    accepted, rejected = validate(p, sc.snapshot, sc.resolution, now=NOW)
    assert not rejected and len(accepted) == 2
    assert p.planner == "deterministic"
    # deterministic ids: the same situation planned twice gives the same actions
    assert [a.action_id for a in _plan(sc).actions] == [a.action_id for a in p.actions]


def test_queued_run_is_reprioritised_by_cancel_and_resubmit():
    queued = RunRecord("run-q", RunStatus.queued, ("stg_account", "fct_revenue"), NOW - timedelta(minutes=5),
                       priority=0)
    running = RunRecord("run-r", RunStatus.running, ("crm/account",), NOW - timedelta(minutes=5))
    sc = scenario(freshness=[fresh("dashboard/exec", slack=-900, blocker="crm/account")], runs=[queued, running])
    p = _plan(sc)
    re = [a for a in p.actions if a.run_id == "run-q"]
    assert len(re) == 1 and re[0].type == "materialize" and re[0].priority > 0
    assert "re-tagged" in re[0].reason
    # running keys are not launched again, queued keys are covered by the re-submission
    others = [a for a in p.actions if a.run_id is None]
    assert all("crm/account" not in a.asset_keys and "fct_revenue" not in a.asset_keys for a in others)
    accepted, rejected = validate(p, sc.snapshot, sc.resolution, now=NOW)
    assert not rejected, rejected


def test_low_tier_work_deferred_to_off_peak_when_budget_burns():
    cost = CostAssessment(scope="policy:growth", spent_today_usd=45, spent_month_usd=400, forecast_day_usd=80,
                          forecast_month_usd=900, budget_day_usd=50, budget_month_usd=None, spike=False,
                          baseline_day_usd=30, reason="t")
    sc = scenario(freshness=[fresh("dashboard/growth", slack=3 * 3600, blocker="events/page_view", tier="low")])
    sc.assessment.cost.append(cost)
    p = _plan(sc)
    (a,) = [a for a in p.actions if a.asset_keys and a.asset_keys[-1] == "dashboard/growth"]
    assert a.type == "defer" and a.not_before == NOW.replace(hour=10)
    # not deferred when the deadline would be missed
    sc2 = scenario(freshness=[fresh("dashboard/growth", slack=600, blocker="events/page_view", tier="low")])
    sc2.assessment.cost.append(cost)
    assert [a.type for a in _plan(sc2).actions] == ["materialize"]


def test_connector_retry_is_a_new_sync_with_backoff_by_class():
    sc = scenario(failures=[failure("f1", "rate_limit", "HTTP 429 Too Many Requests; Retry-After: 3600",
                                    connector="fivetran:crm")])
    p = _plan(sc)
    (a,) = p.actions
    assert a.type == "retry" and a.connector == "fivetran:crm" and a.run_id is None
    assert set(a.asset_keys) == {"crm/account", "crm/contact"}
    assert a.not_before == NOW - timedelta(minutes=30) + timedelta(seconds=3600)  # Retry-After honoured
    assert "new connector sync" in a.reason
    # a third source_unavailable failure backs off 4x the base
    fs = [failure(f"s{i}", "source_unavailable", "connection reset", connector="fivetran:crm",
                  at=NOW - timedelta(minutes=3 - i)) for i in range(3)]
    (b,) = _plan(scenario(failures=fs)).actions
    assert b.not_before == NOW - timedelta(minutes=1) + timedelta(seconds=2400)
    # more failures than the class allows: escalate, no retry
    fs = [failure(f"x{i}", "destination_capacity", "warehouse full", connector="fivetran:crm",
                  at=NOW - timedelta(minutes=50 - i)) for i in range(4)]
    p = _plan(scenario(failures=fs))
    assert not p.actions and p.escalations and p.escalations[0].subject == "connector:fivetran:crm"


def test_auth_expired_pauses_and_escalates_never_retries():
    sc = scenario(freshness=[fresh("dashboard/exec", slack=-900, blocker="crm/account")],
                  failures=[failure("f1", "auth_expired", "OAuth token expired", connector="fivetran:crm",
                                    transient=False)])
    p = _plan(sc)
    assert [a.type for a in p.actions] == ["pause_connector"]
    assert p.escalations[0].category == "auth_expired"
    assert p.escalations[0].owners == ("finance-data@example.com",)


def test_schema_drift_resyncs_only_what_the_connector_does_not_absorb():
    breaking = failure("f1", "schema_drift", "column billing_country changed type from STRING to INTEGER",
                       connector="fivetran:crm", asset="crm/account", transient=False)
    (a,) = _plan(scenario(failures=[breaking])).actions
    assert a.type == "resync_table" and a.tables == {"crm": ("account",)} and a.connector == "fivetran:crm"
    absorbed = failure("f2", "schema_drift", "new column region added to account", connector="fivetran:crm",
                       asset="crm/account", transient=False)
    (b,) = _plan(scenario(failures=[absorbed])).actions
    assert b.type == "retry"
    from orchestrator.planning import PlannerConfig

    (c,) = _plan(scenario(failures=[absorbed]),
                 config=PlannerConfig(schema_change_handling={"fivetran:crm": "BLOCK_ALL"})).actions
    assert c.type == "resync_table"


def test_targeted_backfill_is_affected_partitions_times_downstream_closure():
    fs = [failure(f"p{d}", "source_unavailable", "timeout reading events", asset="fct_events_daily",
                  partition=f"2026-03-0{d}", system="dagster") for d in (3, 5)]
    sc = scenario(failures=fs)
    p = _plan(sc)
    (a,) = p.actions
    assert a.type == "backfill" and a.partitions == ("2026-03-03", "2026-03-05")
    assert a.asset_keys == ("fct_events_daily",)
    accepted, rejected = validate(p, sc.snapshot, sc.resolution, now=NOW)
    assert accepted == [a]


def _one(sc, **kw):
    a = Action(action_id="x1", type=kw.pop("type", "materialize"), reason="t", **kw)
    return validate(AgentPlan(created_at=NOW, actions=[a], planner="t"), sc.snapshot, sc.resolution, now=NOW)


def test_validation_rejects_with_reasons():
    sc = scenario(failures=[failure("p1", "source_unavailable", "timeout", asset="fct_events_daily",
                                    partition="2026-03-03", system="dagster")],
                  runs=[RunRecord("r1", RunStatus.running, ("fct_revenue",), NOW)])
    cases = {
        "unknown asset": dict(asset_keys=("nope",)),
        "not allowed": dict(type="drop_table", asset_keys=("fct_revenue",)),
        "unknown connector": dict(type="pause_connector", connector="fivetran:ghost"),
        "already in flight": dict(asset_keys=("fct_revenue",)),
        "not targeted": dict(type="backfill", asset_keys=("fct_events_daily",), partitions=("2026-03-01",)),
        "beyond the affected": dict(type="backfill", asset_keys=("fct_events_daily",),
                                    partitions=("2026-03-03", "2026-03-04")),
        "in the future": dict(asset_keys=("fct_events_daily",), partitions=("2026-04-01",)),
        "unpartitioned": dict(asset_keys=("fct_revenue",), partitions=("2026-03-01",)),
        "without any recorded failure": dict(type="full_resync", connector="fivetran:crm"),
        "not synced by": dict(type="resync_table", connector="fivetran:crm", tables={"events": ("page_view",)}),
        "too broad": dict(asset_keys=tuple(k for k in sc.graph.keys if k != "fct_events_daily")),
    }
    for needle, kw in cases.items():
        accepted, rejected = _one(sc, **kw)
        assert not accepted and needle in rejected[0][1], (needle, rejected)


def test_validation_blackout_and_budget():
    bl = '  - name: freeze\n    select: [{key: "stg_account"}]\n    max_lag: 48h\n' \
         '    windows: {blackout: [{start: 2026-03-10T08:00, end: 2026-03-10T12:00, reason: "quarter close"}]}\n'
    sc = scenario(blackout=bl)
    accepted, rejected = _one(sc, asset_keys=("stg_account",))
    assert "blackout" in rejected[0][1] and "quarter close" in rejected[0][1]
    # deferred past the window: fine
    accepted, rejected = _one(sc, asset_keys=("stg_account",), not_before=NOW + timedelta(hours=4))
    assert accepted
    sc = scenario(costs=[CostRecord(NOW - timedelta(hours=1), 49.0, "run", asset_key="dashboard/growth")])
    accepted, rejected = _one(sc, asset_keys=("dashboard/growth",), estimated_cost_usd=5.0)
    assert "over budget" in rejected[0][1]


# -- proactive planning on a real assessment -------------------------------------------------------

def _real(last: dict, runs=(), failures=(), now=NOW, **kw):
    """The fixture project with a real assessment: ``last`` overrides last successes (hours ago)."""
    from orchestrator.assessment import assess
    from orchestrator.core.records import Assessment
    from orchestrator.policies import DurationModel

    sc = scenario(runs=runs, failures=failures, now=now, **kw)
    for k, hours in last.items():
        sc.snapshot.last_success[k] = now - timedelta(hours=hours)
    a = assess(sc.snapshot, sc.resolution, DurationModel(), now=now)
    sc.assessment = Assessment(taken_at=now, freshness=a.freshness, cost=a.cost, failures=list(failures))
    return sc


def _runs(p):
    return [a for a in p.actions if a.type in ("materialize", "retry", "defer")]


def test_models_start_once_their_inputs_are_fresh_for_the_cycle_in_one_run():
    # exec's cycle opened at 02:00 (deadline 10:00, window 8h); the CRM tables synced at 03:00
    sc = _real({"crm/account": 6, "crm/contact": 6})
    assert sc.assessment.freshness["dashboard/exec"].status.value == "ok"  # not at risk: slack is large
    p = _plan(sc)
    (run,) = [a for a in _runs(p) if "fct_revenue" in a.asset_keys]
    assert run.asset_keys == ("stg_account", "stg_contact", "fct_revenue", "dashboard/exec")  # coalesced, in order
    assert run.type == "materialize" and "crm/account" not in run.asset_keys  # fresh inputs are not re-run
    # stale tables are left to the connector's own schedule while their latest start is far off
    assert not any("events/page_view" in a.asset_keys for a in p.actions)
    # already fresh for the cycle: nothing to do
    done = _real({k: 1 for k in ("crm/account", "crm/contact", "stg_account", "stg_contact", "fct_revenue",
                                 "dashboard/exec")})
    assert not [a for a in _runs(_plan(done)) if "fct_revenue" in a.asset_keys]


def test_sync_starts_when_its_latest_start_falls_within_the_planning_horizon():
    from orchestrator.planning import PlannerConfig

    sc = _real({})  # everything stale since yesterday
    p = _plan(sc)
    assert not any("crm/account" in a.asset_keys for a in _runs(p))  # latest start still hours away
    slack = sc.assessment.freshness["crm/account"].slack_s
    assert slack > 600
    # a planner that runs only every (slack) seconds must start it now: it is due before the next tick
    p = _plan(sc, config=PlannerConfig(tick_interval_s=slack))
    (run,) = [a for a in _runs(p) if "crm/account" in a.asset_keys]
    assert run.asset_keys == ("crm/account", "crm/contact", "stg_account", "stg_contact", "fct_revenue")
    assert "latest start falls before the next planning cycle" in run.reason
    assert "left for a later run (run size limit 5)" in p.rationale  # upstream-first split
    # the least-slack work gets the highest priority
    others = [a for a in _runs(p) if a is not run]
    assert all(run.priority >= a.priority for a in others)


def test_no_step_starts_while_an_input_is_rebuilt_elsewhere():
    inflight = RunRecord("r1", RunStatus.running, ("crm/account",), NOW - timedelta(minutes=2),
                         started_at=NOW - timedelta(minutes=2))
    sc = _real({"crm/account": 6, "crm/contact": 6}, runs=[inflight])
    keys = {k for a in _runs(_plan(sc)) for k in a.asset_keys}
    assert "stg_contact" in keys  # its input is fresh
    assert "stg_account" not in keys and "fct_revenue" not in keys  # wait for crm/account to land


def test_retry_reruns_only_what_failed_and_dependents_wait():
    f = failure("f1", "rate_limit", "HTTP 429 Too Many Requests", connector="fivetran:crm",
                at=NOW - timedelta(minutes=30))
    sc = _real({"crm/contact": 6}, failures=[f])
    p = _plan(sc)
    (retry,) = [a for a in p.actions if a.type == "retry"]
    assert set(retry.asset_keys) == {"crm/account", "crm/contact"}
    assert not any("stg_account" in a.asset_keys or "fct_revenue" in a.asset_keys for a in p.actions)


def test_off_peak_window_before_the_latest_start_defers_early_work():
    # growth (low tier) has an off-peak window 10:00-11:00 and a 12:00 deadline; its table synced at 01:00
    sc = _real({"events/page_view": 8})
    assert not any("stg_events" in a.asset_keys for a in _runs(_plan(sc)))
    assert "cheaper window" in _plan(sc).rationale
    later = NOW.replace(hour=10, minute=15)
    sc = _real({"events/page_view": 9}, now=later)
    p = plan(sc.snapshot, sc.assessment, sc.resolution, sc.durations, now=later)
    assert any("stg_events" in a.asset_keys for a in _runs(p))


def test_drift_the_connector_does_not_absorb_is_resynced():
    mismatch = failure("f1", "schema_drift", "Number of columns in file (2) does not match that of the "
                       "corresponding table (16)", connector="fivetran:crm", transient=False)
    (a,) = _plan(scenario(failures=[mismatch])).actions
    assert a.type == "resync_table" and a.connector == "fivetran:crm"
    # an added column is absorbed and retried once; failing again means it was not absorbed
    added = [failure(f"a{i}", "schema_drift", "new column region added to account", connector="fivetran:crm",
                     asset="crm/account", transient=False, at=NOW - timedelta(minutes=30 - i)) for i in range(2)]
    (b,) = _plan(scenario(failures=added)).actions
    assert b.type == "resync_table" and b.tables == {"crm": ("account",)}


def test_validation_counts_a_connector_sync_once_and_rejects_overlapping_runs():
    from orchestrator.planning import ValidationConfig

    sc = scenario()
    sync = Action(action_id="s", type="retry", reason="t", asset_keys=("crm/account", "crm/contact"),
                  connector="fivetran:crm")
    ok, rej = validate(AgentPlan(created_at=NOW, actions=[sync], planner="t"), sc.snapshot, sc.resolution, now=NOW,
                       config=ValidationConfig(max_assets=1))
    assert ok == [sync] and not rej  # two tables, one sync
    big = Action(action_id="b", type="materialize", reason="t", asset_keys=("stg_account", "fct_revenue"))
    sub = Action(action_id="c", type="retry", reason="t", asset_keys=("fct_revenue",))
    ok, rej = validate(AgentPlan(created_at=NOW, actions=[big, sub], planner="t"), sc.snapshot, sc.resolution, now=NOW)
    assert ok == [big] and "already covered by action b" in rej[0][1]
