"""An untrusted load is not fresh: the assessment and the planner see it through the data time
cap (orchestrator.health.hold), and dashboards built on it are held / flagged."""

from __future__ import annotations

from datetime import timedelta

from planning_fixtures import NOW, graph, resolution

from orchestrator.assessment import assess
from orchestrator.core.decide import decide
from orchestrator.core.records import FreshnessStatus, Snapshot

LANDED = NOW - timedelta(hours=1)  # 08:00: every table synced, every model rebuilt on it


def _snapshot(anomalous=None) -> Snapshot:
    g = graph()
    return Snapshot(taken_at=NOW, graph=g, last_success={k: LANDED for k in g.keys},
                    data_time={k: LANDED - timedelta(minutes=5) for k in g.keys},
                    anomalous_loads=anomalous or {})


def test_without_anomalies_the_exec_dashboard_is_fresh():
    a = assess(_snapshot(), resolution(graph()))
    assert a.freshness["dashboard/exec"].status is FreshnessStatus.ok
    assert a.freshness["dashboard/exec"].reason.startswith("fresh")


def test_a_zero_row_load_holds_every_dashboard_built_on_it_and_only_those():
    trusted = NOW - timedelta(hours=9)  # before the exec window opened (02:00)
    snap = _snapshot({"crm/account": (trusted, "zero_rows: 0 rows where ~12,000 were expected")})
    a = assess(snap, resolution(graph()))
    exec_ = a.freshness["dashboard/exec"]
    # not fresh for its 10:00 deadline: it needs a new load and a rebuild (predicted, not landed)
    assert not exec_.reason.startswith("fresh") and exec_.predicted_ready > NOW
    assert exec_.data_held_by == "crm/account" and exec_.data_time == trusted
    assert "untrusted load of crm/account" in exec_.reason and "zero_rows" in exec_.reason
    # the growth dashboard reads events only: untouched
    assert a.freshness["dashboard/growth"].status is FreshnessStatus.ok
    assert "untrusted" not in a.freshness["dashboard/growth"].reason


def test_a_load_with_no_trusted_predecessor_is_not_fresh_either():
    snap = _snapshot({"crm/account": (None, "stuck_cursor: cursor did not advance")})
    a = assess(snap, resolution(graph()), now=NOW + timedelta(hours=1, minutes=30))  # after 10:00
    assert a.freshness["dashboard/exec"].status is FreshnessStatus.breached
    assert "stuck_cursor" in a.freshness["dashboard/exec"].reason


def test_an_older_trusted_load_still_in_the_window_flags_without_breaching():
    trusted = NOW - timedelta(hours=3)  # 06:00: inside the window (opens 02:00)
    snap = _snapshot({"crm/account": (trusted, "volume_drop: 8% of the usual volume")})
    a = assess(snap, resolution(graph()))
    fa = a.freshness["dashboard/exec"]
    assert fa.data_time == trusted and fa.data_held_by == "crm/account"
    assert "untrusted load" in fa.reason


def test_the_planner_does_not_rebuild_the_dashboard_on_the_untrusted_load():
    trusted = NOW - timedelta(hours=9)
    snap = _snapshot({"crm/account": (trusted, "zero_rows: 0 rows")})
    d = decide(snap, resolution(graph()), now=NOW)
    for x in d.plan.actions:
        # any model/dashboard work on the crm chain waits for a new load of crm/account
        if "dashboard/exec" in x.asset_keys or "fct_revenue" in x.asset_keys:
            assert x.connector == "fivetran:crm" or "crm/account" in x.asset_keys, x
    # without the anomaly there is nothing to do for the exec chain
    d0 = decide(_snapshot(), resolution(graph()), now=NOW)
    assert not [x for x in d0.plan.actions if "dashboard/exec" in x.asset_keys]


def test_an_untrusted_load_gets_a_table_resync_through_validation_and_the_gate():
    trusted = NOW - timedelta(hours=9)
    snap = _snapshot({"crm/account": (trusted, "volume_drop: 8% of the usual volume")})
    d = decide(snap, resolution(graph()), now=NOW)
    (x,) = [x for x in d.plan.actions if x.cause == "silent_failure"]
    assert x.type == "resync_table" and x.connector == "fivetran:crm" and dict(x.tables) == {"crm": ("account",)}
    assert "volume_drop" in x.reason and "dashboard/exec" in x.reason
    (dec,) = [g for g in d.decisions if g.action.action_id == x.action_id]
    assert dec.decision == "execute"  # the exec policy pre-authorises resync_table under auto rollout
    # the growth policy does not pre-authorise resync_table: the same answer waits for a person
    snap2 = _snapshot({"events/page_view": (trusted, "stuck_cursor: the cursor did not advance")})
    d2 = decide(snap2, resolution(graph()), now=NOW)
    (g,) = [g for g in d2.decisions if g.action.cause == "silent_failure"]
    assert g.action.connector == "airbyte:events" and g.decision == "await_approval"
    # the same untrusted load next tick: the same action id (the ledger and the store dedupe on it)
    assert decide(snap, resolution(graph()), now=NOW).plan.actions[-1].action_id == x.action_id


def test_a_zero_row_load_gets_a_plain_sync_not_a_resync():
    # nothing landed and the cursor stayed: the next incremental sync reads the missed rows
    snap = _snapshot({"crm/account": (NOW - timedelta(hours=9), "zero_rows: 0 rows where ~12,000 were expected")})
    d = decide(snap, resolution(graph()), now=NOW)
    (x,) = [x for x in d.plan.actions if x.cause == "silent_failure"]
    assert x.type == "materialize" and x.asset_keys == ("crm/account",) and "sync now" in x.reason
