"""Where `sla` lost to cron-tuned on generated worlds (tuning seeds 100-119), as unit cases:

* an input shared by two deadlines: the later deadline's window (opened at 21:30) must not hold
  back the earlier one (22:00, window from 16:00) when data newer than 21:30 cannot reach the
  input in time (world 104: the dashboard was never refreshed);
* work a person approved for a later start (asked ahead, ``not_before`` two days out) does not
  stand in for the same work needed now (world 116: three cycles lost behind it);
* one approval per incident that needs a person: approving the pause covers resuming and one
  retry once repaired (world 101: three requests per incident).
"""

from __future__ import annotations

import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

from planning_fixtures import NOW, failure, scenario

from orchestrator.core.decide import decide, screen
from orchestrator.core.graph import CONNECTOR_TABLE, DASHBOARD, DBT_MODEL, AssetGraph, AssetNode
from orchestrator.core.incidents import ActionLedger
from orchestrator.core.records import Action, Snapshot
from orchestrator.planning.gate import GateConfig
from orchestrator.policies import DurationModel, load_policies, resolve

UTC = timezone.utc
T = datetime(2026, 10, 25, 21, 55, tzinfo=UTC)  # a Sunday, 21:55 UTC

TWO_DEADLINES = """
policies:
  - name: early
    select: [{key: "dash/a"}]
    deadline: {cron: "0 22 * * *", timezone: UTC, window: 6h}
    tier: high
    owners: [team:a]
    rollout: auto
    auto_approve: [retry, materialize, resync_table]
  - name: late
    select: [{key: "dash/b"}]
    deadline: {cron: "30 5 * * *", timezone: UTC, window: 8h}
    tier: low
    owners: [team:b]
    rollout: auto
    auto_approve: [retry, materialize, resync_table]
"""


def _shared_world():
    n = AssetNode
    g = AssetGraph([
        n("src/t", CONNECTOR_TABLE, kinds=frozenset({"fivetran"}), connector="fivetran:src"),
        n("m", DBT_MODEL, upstream=("src/t",)),
        n("dash/a", DASHBOARD, upstream=("m",)),
        n("dash/b", DASHBOARD, upstream=("m",)),
    ])
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "p.yaml"
        p.write_text(TWO_DEADLINES)
        durations = {"src/t": [1560.0] * 6, "m": [40.0] * 6, "dash/a": [5.0] * 6, "dash/b": [5.0] * 6}
        res = resolve(load_policies([p]), g, DurationModel(durations), T)
    assert res.ok, res.skip_reason
    synced = datetime(2026, 10, 25, 18, 15, tzinfo=UTC)  # after dash/a's window opened, before dash/b's
    old = datetime(2026, 10, 25, 15, 0, tzinfo=UTC)  # fresh for the cycles before, not for these
    snap = Snapshot(taken_at=T, graph=g, durations=durations,
                    last_success={"src/t": synced + timedelta(minutes=26), "m": old, "dash/a": old, "dash/b": old},
                    data_time={"src/t": synced, "m": old, "dash/a": old, "dash/b": old},
                    connector_schedules={"fivetran:src": "15 */3 * * *"})
    return snap, res


def test_a_later_consumers_window_does_not_hold_back_an_input_fresh_for_the_earlier_deadline():
    snap, res = _shared_world()
    d = decide(snap, res, now=T)
    runs = [g for g in d.decisions if g.action.type == "materialize"]
    assert runs, (d.plan.rationale, d.suppressed, d.rejected)
    keys = {k for g in runs for k in g.action.asset_keys}
    assert {"m", "dash/a"} <= keys and "src/t" not in keys  # the sync landed data fresh for dash/a
    assert all(g.decision == "execute" for g in runs), [g.reason for g in runs]


def test_work_approved_for_a_later_start_does_not_stand_in_for_work_needed_now():
    sc = scenario()
    later = Action("mate-later", "materialize", "asked ahead", asset_keys=("stg_events", "dashboard/growth"),
                   not_before=NOW + timedelta(days=2), cause="freshness", cycle="c2")
    ledger = ActionLedger()
    ledger.record(later, "approved", NOW - timedelta(hours=1), by_person=True)
    now_run = Action("mate-now", "materialize", "breached", asset_keys=("stg_events", "dashboard/growth"),
                     cause="freshness", cycle="c1")
    kept, dropped = screen([now_run], ledger, sc.snapshot)
    assert kept == [now_run] and not dropped
    # the same work for the same (later) start, or an open one starting now, is still not asked twice
    same = Action("mate-again", "materialize", "again", asset_keys=("stg_events",),
                  not_before=NOW + timedelta(days=2), cause="freshness", cycle="c2")
    kept, dropped = screen([same], ledger, sc.snapshot)
    assert not kept and "already approved" in dropped[0][1]
    # work deferred less far waits for that answer too (no second ask while the cycle is planned)
    sooner = Action("mate-sooner", "materialize", "x", asset_keys=("stg_events",),
                    not_before=NOW + timedelta(hours=5), cause="freshness", cycle="c2")
    kept, dropped = screen([sooner], ledger, sc.snapshot)
    assert not kept
    ledger.update("mate-later", "executing", NOW)
    ledger.record(Action("mate-running", "materialize", "x", asset_keys=("stg_events", "dashboard/growth"),
                         cause="freshness"), "executing", NOW)
    kept, dropped = screen([now_run], ledger, sc.snapshot)
    assert not kept


AUTH = "401 Unauthorized: the OAuth access token has expired; re-authenticate the connection"


def _auth(fid="f1", at=None):
    return scenario(failures=[failure(fid, "auth_expired", AUTH, connector="fivetran:crm", transient=False,
                                      at=at or NOW - timedelta(minutes=30))])


def _paused_by_person(sc, ledger, *, by_person=True, at=None):
    (pause,) = [x for x in decide(sc.snapshot, sc.resolution, assessment=sc.assessment, now=NOW,
                                  ledger=ledger).decisions if x.action.type == "pause_connector"]
    assert pause.decision == "await_approval"
    assert "also authorises resuming fivetran:crm and one retry" in pause.reason
    ledger.record(pause.action, "pending", NOW - timedelta(minutes=29))
    ledger.update(pause.action.action_id, "approved", at or NOW - timedelta(minutes=10), by_person=by_person)
    ledger.update(pause.action.action_id, "succeeded", at or NOW - timedelta(minutes=10))
    return pause.action


def test_the_person_who_approved_an_incident_is_not_asked_again_to_close_it():
    sc = _auth()
    ledger = ActionLedger()
    pause = _paused_by_person(sc, ledger)
    d = decide(sc.snapshot, sc.resolution, assessment=sc.assessment, now=NOW, ledger=ledger)
    by_type = {g.action.type: g for g in d.decisions}
    resume = by_type["resume_connector"]  # not in the policy's auto_approve: it used to wait
    assert resume.decision == "execute", resume.reason
    assert resume.authorised_by == f"incident:{pause.action_id}"
    assert "closes the incident a person repaired" in resume.reason
    assert by_type["retry"].decision == "execute"
    assert not d.awaiting_approval


def test_closing_an_incident_still_waits_without_a_persons_approval_or_under_a_cap():
    # the pause ran by policy (nobody approved it): nobody repaired anything, nothing to close
    sc = _auth()
    ledger = ActionLedger()
    _paused_by_person(sc, ledger, by_person=False)
    d = decide(sc.snapshot, sc.resolution, assessment=sc.assessment, now=NOW, ledger=ledger)
    assert not [g for g in d.decisions if g.action.type == "resume_connector"]
    # an approval of an earlier incident (before this failure) does not cover this one
    sc = _auth(at=NOW - timedelta(minutes=5))
    ledger = ActionLedger()
    _paused_by_person(_auth(), ledger, at=NOW - timedelta(minutes=20))
    ledger.repairs["connector:fivetran:crm"] = ("auth_expired", NOW - timedelta(minutes=1))  # a manual repair
    d = decide(sc.snapshot, sc.resolution, assessment=sc.assessment, now=NOW, ledger=ledger)
    resume = [g for g in d.decisions if g.action.type == "resume_connector"]
    assert resume and resume[0].authorised_by == "incident:manual:connector:fivetran:crm"
    # the operator's cap (ORCHESTRATOR_AUTOMATION=recommend) keeps every action waiting
    sc = _auth()
    ledger = ActionLedger()
    _paused_by_person(sc, ledger)
    d = decide(sc.snapshot, sc.resolution, assessment=sc.assessment, now=NOW, ledger=ledger,
               gate_config=GateConfig(rollout_cap="recommend"))
    assert {g.decision for g in d.decisions} == {"await_approval"}
