"""Work that needs a person's approval: asked early enough, asked once, and never run unasked.

Hand-built worlds: a connector table governed by a platform policy that does not pre-authorise a
sync (as in the generated worlds), under a dashboard's deadline."""

from __future__ import annotations

import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.core.decide import decide
from orchestrator.core.graph import CONNECTOR_TABLE, DASHBOARD, DBT_MODEL, AssetGraph, AssetNode
from orchestrator.core.incidents import ActionLedger
from orchestrator.core.records import Action, Snapshot
from orchestrator.planning.planner import plan_state, run_stages
from orchestrator.policies import DurationModel, load_policies, resolve

UTC = timezone.utc
NOW = datetime(2026, 3, 10, 5, 30, tzinfo=UTC)  # a Tuesday; the windows opened at 02:00 (exec) and 05:00 (ops)

POLICIES = """
policies:
  - name: exec
    select: [{key: "dashboard/exec"}]
    deadline: {cron: "0 10 * * *", timezone: UTC, window: 8h}
    tier: high
    owners: [team:exec]
    rollout: auto
    auto_approve: EXEC_AUTO
  - name: ops
    select: [{key: "dashboard/ops"}]
    deadline: {cron: "0 11 * * *", timezone: UTC, window: 6h}
    tier: standard
    owners: [team:ops]
    rollout: ROLLOUT
    auto_approve: [retry, materialize]
  - name: platform
    select: [{role: connector_table}]
    tier: standard
    owners: [team:data-platform]
    rollout: auto
    auto_approve: [retry, resync_table]
"""


def _graph() -> AssetGraph:
    n = AssetNode
    return AssetGraph([
        n("crm/account", CONNECTOR_TABLE, kinds=frozenset({"fivetran"}), connector="fivetran:crm"),
        n("crm/contact", CONNECTOR_TABLE, kinds=frozenset({"fivetran"}), connector="fivetran:crm"),
        n("stg_account", DBT_MODEL, upstream=("crm/account",)),
        n("stg_contact", DBT_MODEL, upstream=("crm/contact",)),
        n("fct_accounts", DBT_MODEL, upstream=("stg_account", "stg_contact")),
        n("dashboard/exec", DASHBOARD, upstream=("fct_accounts",)),
        n("dashboard/ops", DASHBOARD, upstream=("fct_accounts",)),
    ])


def _world(schedule: str | None, *, rollout: str = "auto", now: datetime = NOW, age_h: float = 20.0,
           exec_auto: str = "[retry, materialize]"):
    g = _graph()
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "p.yaml"
        p.write_text(POLICIES.replace("ROLLOUT", rollout).replace("EXEC_AUTO", exec_auto))
        res = resolve(load_policies([p]), g, DurationModel(), now)
    assert res.ok, res.skip_reason
    old = now - timedelta(hours=age_h)
    snap = Snapshot(taken_at=now, graph=g, last_success={k: old for k in g.keys},
                    data_time={k: old for k in g.keys},
                    connector_schedules={"fivetran:crm": schedule} if schedule else {})
    return snap, res


def _syncs(d) -> list:
    return [x for x in d.decisions if "crm/account" in x.action.asset_keys]


def _refused(res, now: datetime = NOW) -> ActionLedger:
    """The owners refused every standing approval: routine work needing a person asks on its own
    (while one is being asked, it waits for that answer instead: test_approval_asks.py)."""
    from orchestrator.core.standing import lineage, needs_standing, request

    ledger = ActionLedger()
    for p in res.policy_set.policies:
        if needs_standing(p):
            ledger.record(request(p, lineage(res, res.graph, p.name), now - timedelta(days=1)), "declined",
                          now - timedelta(days=1))
    return ledger


def test_a_sync_needing_approval_is_asked_as_soon_as_its_cycle_opens():
    # the connector syncs every 12 h (00:00, 12:00): nothing lands inside the window before the
    # latest start, so the sync is asked now, six hours ahead, not at the latest start
    snap, res = _world("0 */12 * * *")
    d = decide(snap, res, now=NOW, ledger=_refused(res))
    (g,) = _syncs(d)
    assert g.decision == "await_approval" and "asked ahead" in g.action.reason
    assert "materialize not in auto_approve" in g.reason
    # while the platform's standing approval is asked in the same cycle, the sync waits for it
    d = decide(snap, res, now=NOW)
    assert _syncs(d) == [] and [a for a, why in d.suppressed if "crm/account" in a.asset_keys
                                and "standing approval" in why and "asked ahead" in a.reason]


def test_before_its_window_opens_a_sync_needing_approval_is_asked_to_start_at_the_opening():
    # 01:00: the approver may answer hours later (at night); the sync is asked now, to start at
    # 05:00 (the ops window's opening, which the exec cycle's refresh serves too), and both
    # tables of the connector are one run: one sync lands them, one approval covers it
    early = NOW.replace(hour=1, minute=0)
    snap, res = _world("0 */12 * * *", now=early)
    d = decide(snap, res, now=early, ledger=_refused(res, early))
    (g,) = _syncs(d)
    assert g.decision == "await_approval"
    assert set(g.action.asset_keys) == {"crm/account", "crm/contact"}
    assert g.action.not_before == early.replace(hour=5)
    # models are not asked ahead: they run (pre-authorised) once the sync has landed
    assert all(x.action.asset_keys and set(x.action.asset_keys) <= {"crm/account", "crm/contact"}
               for x in d.decisions)


def test_a_sync_the_connectors_own_schedule_lands_in_time_is_left_to_it():
    snap, res = _world("0 * * * *")  # hourly: the 05:00 sync lands well before the latest start
    assert _syncs(decide(snap, res, now=NOW)) == []
    snap, res = _world(None)  # schedule unknown: wait (as before) until the latest start
    assert _syncs(decide(snap, res, now=NOW)) == []


def test_work_awaiting_approval_is_not_asked_again_in_another_shape():
    snap, res = _world("0 */12 * * *")
    ledger = _refused(res)
    d = decide(snap, res, now=NOW, ledger=ledger)
    (g,) = _syncs(d)
    ledger.record(g.action, "pending", NOW)
    st = run_stages(plan_state(snap, d.assessment, res, now=NOW + timedelta(minutes=20),
                               incidents=_view(ledger)), "in_flight")
    assert set(g.action.asset_keys) <= st.pending
    later = decide(snap, res, now=NOW + timedelta(minutes=20), ledger=ledger)
    assert not any(set(x.action.asset_keys) & set(g.action.asset_keys) for x in later.decisions)


def _view(ledger):
    from orchestrator.core.incidents import IncidentView

    return IncidentView(ledger=ledger)


def test_an_asset_reached_by_a_recommend_deadline_never_runs_unapproved():
    # fct_accounts is selected by no policy: its settings come from whichever deadline wins now
    # (exec, auto); ops (recommend) reaches it too, so a materialize of it waits for approval
    snap, res = _world("0 * * * *", rollout="recommend")
    assert res.sla("fct_accounts").rollout.value == "auto" and not res.sla("fct_accounts").policies
    from orchestrator.assessment import assess
    from orchestrator.planning import gate

    asm = assess(snap, res, DurationModel(), now=NOW)
    a = Action("m1", "materialize", "test", asset_keys=("fct_accounts",))
    (g,) = gate([a], snap, asm, res, now=NOW)
    assert g.decision == "await_approval"
    snap2, res2 = _world("0 * * * *", rollout="auto")
    (g2,) = gate([a], snap2, assess(snap2, res2, DurationModel(), now=NOW), res2, now=NOW)
    assert g2.decision == "execute"


@settings(max_examples=25, deadline=None)
@given(hour=st.integers(0, 23), minute=st.sampled_from([0, 15, 30, 45]), every=st.sampled_from([1, 2, 4, 8, 12, 24]),
       rollout=st.sampled_from(["auto", "recommend"]), age=st.floats(1.0, 40.0))
def test_no_sync_or_recommend_work_ever_executes_without_approval(hour, minute, every, rollout, age):
    now = datetime(2026, 3, 10, hour, minute, tzinfo=UTC)
    snap, res = _world(f"{minute} */{every} * * *" if every < 24 else f"{minute} 3 * * *", rollout=rollout,
                       now=now, age_h=age)
    d = decide(snap, res, now=now)
    for g in d.to_execute:
        keys = set(g.action.asset_keys)
        assert "crm/account" not in keys  # the platform policy never pre-authorises a sync
        if rollout == "recommend":
            assert not keys & {"fct_accounts", "dashboard/ops"}


def test_models_that_need_approval_join_the_sync_asked_ahead():
    # exec's owners pre-authorise no materialize: the models under it are asked with the sync,
    # in the same run starting at the opening (one approval), not one by one once it lands
    early = NOW.replace(hour=1, minute=0)
    snap, res = _world("0 */12 * * *", now=early, exec_auto="[retry]")
    d = decide(snap, res, now=early, ledger=_refused(res, early))
    (g,) = _syncs(d)
    assert g.decision == "await_approval" and g.action.not_before == early.replace(hour=5)
    assert {"crm/account", "crm/contact"} < set(g.action.asset_keys)
    assert set(g.action.asset_keys) & {"stg_account", "stg_contact"}


def test_a_queued_run_is_not_re_prioritised_when_that_needs_approval():
    from orchestrator.core.records import RunRecord, RunStatus

    late = NOW.replace(hour=9, minute=50)  # past the latest start: the target is at risk
    snap, res = _world("0 */12 * * *", now=late)
    q = RunRecord("q1", RunStatus.queued, ("crm/account", "crm/contact"), late - timedelta(minutes=5), priority=-50)
    snap.runs = [q]
    d = decide(snap, res, now=late)
    # cancel_run is in no auto_approve here: re-submitting q1 would wait for a person, so it is left queued
    assert not any(x.action.run_id == "q1" for x in d.decisions)
    assert "keeps priority" in d.baseline.rationale
