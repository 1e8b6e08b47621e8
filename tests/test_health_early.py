"""Early warning: at-risk connectors (rising warnings, duration creep, announced maintenance)
get a sync that starts earlier than the planner's just-in-time one, through the gate -- and in
the simulator that turns a missed deadline into a met one, with no unsafe action."""

from __future__ import annotations

import textwrap
from datetime import datetime, timedelta, timezone

import pytest

from orchestrator.health.early import connector_risk
from orchestrator.health.signals import SyncSignal
from orchestrator.simulator import ScenarioError, load_scenario
from orchestrator.simulator.bench import run_benchmark
from orchestrator.simulator.silent_worlds import precursor_world, precursor_world_spec

UTC = timezone.utc
NOW = datetime(2026, 3, 3, 3, tzinfo=UTC)


def _signals(n_prior=60, recent=(), gap_h=4, dur=900.0):
    out = []
    t = NOW - timedelta(hours=gap_h * (n_prior + len(recent)))
    for i in range(n_prior + len(recent)):
        w, d = (0, dur) if i < n_prior else recent[i - n_prior]
        out.append(SyncSignal("fivetran:x", "x/t", f"s{i}", t, t + timedelta(seconds=d), warnings=w))
        t += timedelta(hours=gap_h)
    return out


def test_quiet_history_is_not_at_risk():
    r = connector_risk(_signals(), NOW)
    assert not r.at_risk and r.kinds == () and r.usual_s == pytest.approx(900)


def test_rising_warnings_put_a_connector_at_risk_of_failing():
    r = connector_risk(_signals(recent=[(2, 900), (4, 900), (6, 900)]), NOW)
    assert r.failing and "warning_rate" in r.kinds and any("warning" in w for w in r.why)


def test_duration_creep_raises_the_next_duration():
    r = connector_risk(_signals(recent=[(0, 900 * 1.5 ** k) for k in range(1, 7)]), NOW)
    assert r.creeping and r.next_s > 2 * r.usual_s


def test_announced_maintenance_is_carried_and_past_windows_dropped():
    past = (NOW - timedelta(hours=5), NOW - timedelta(hours=3))
    ahead = (NOW + timedelta(hours=1), NOW + timedelta(hours=3))
    r = connector_risk(_signals(), NOW, maintenance=[past, ahead])
    assert r.maintenance == (ahead,) and "maintenance window" in r.why[-1]


# -- in the simulator --------------------------------------------------------------------------
POLICY = """
policies:
  - name: dash
    select: [{key: dashboard/d}]
    deadline: {cron: "0 6 * * *", timezone: UTC, window: WINDOW}
    tier: critical
    rollout: auto
    auto_approve: [retry, materialize, resync_table]
"""
WORLD = """
name: ew
start: 2026-03-02T20:00:00Z
horizon: 11h
policies: [p.yaml]
graph:
  connectors:
    - {id: "fivetran:src", tables: [src/t], schedule: "SCHEDULE", duration: {median: 15m, sigma: 0}}
  assets:
    - {key: a, upstream: [src/t], duration: {median: 10m, sigma: 0}}
    - {key: dashboard/d, role: dashboard, upstream: [a]}
capacity: {warehouse_slots: 1}
baseline: {jobs: [{name: build, cron: "0 2 * * *"}]}
"""
MAINTENANCE = "maintenance:\n  - {targets: [\"fivetran:src\"], at: \"03:00\", lasts: 3h30m}\n"
OUTAGE = textwrap.dedent("""
    precursors:
      - {kind: warning_rate, targets: ["fivetran:src"], at: "21:00", loads: 10, warnings: 2}
    faults:
      - {name: outage, category: source_unavailable, targets: ["fivetran:src"], at: ["03:50"], lasts: 2h}
    """)


def _world(d, extra, schedule, window):
    (d / "p.yaml").write_text(POLICY.replace("WINDOW", window))
    path = d / "w.yaml"
    path.write_text(WORLD.replace("SCHEDULE", schedule) + extra)
    return path


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = {}
    for name, extra, schedule, window in (("maintenance", MAINTENANCE, "0 */12 * * *", "5h"),
                                          ("outage", OUTAGE, "0 */4 * * *", "3h")):
        path = _world(tmp_path_factory.mktemp(name), extra, schedule, window)
        out[name] = {ew: run_benchmark(path, "sla", 0, early_warning=ew) for ew in (True, False)}
    return out


@pytest.mark.parametrize("world", ["maintenance", "outage"])
def test_early_warning_meets_the_deadline_the_plain_planner_misses(results, world):
    r = results[world]
    assert r[False].sla_attainment == 0.0
    assert r[True].sla_attainment == 1.0
    assert r[True].unsafe_actions == 0 == r[False].unsafe_actions


def test_precursor_specs_are_validated(tmp_path):
    bad = "precursors:\n  - {kind: latency_crawl, targets: [\"fivetran:src\"], at: \"21:00\"}\n"
    with pytest.raises((ScenarioError, ValueError), match="kind"):
        load_scenario(_world(tmp_path, bad, "0 */4 * * *", "3h"))


def test_generated_worlds_are_seeded_and_load(tmp_path):
    assert precursor_world_spec(7) == precursor_world_spec(7)
    assert precursor_world_spec(7) != precursor_world_spec(8)
    for seed in range(6):
        path, events = precursor_world(seed, tmp_path / str(seed))
        sc = load_scenario(path)
        assert events and sc.spec.precursors or sc.spec.maintenance or sc.spec.faults


# -- preempt: when it proposes and when it stays quiet -----------------------------------------
def _decision_inputs(data_time, *, opens_h=-1.0, paused=False, maintenance=True):
    from orchestrator.core.graph import CONNECTOR_TABLE, DASHBOARD, DBT_MODEL, AssetGraph, AssetNode
    from orchestrator.core.records import Assessment, FreshnessAssessment, FreshnessStatus, Snapshot
    from orchestrator.health.early import ConnectorRisk

    g = AssetGraph([AssetNode("src/t", CONNECTOR_TABLE, connector="fivetran:src"),
                    AssetNode("a", DBT_MODEL, upstream=("src/t",)),
                    AssetNode("dashboard/d", DASHBOARD, upstream=("a",))]
                   + [AssetNode(f"other{i}", DBT_MODEL) for i in range(4)])
    deadline = NOW + timedelta(hours=3)
    windows = ((NOW + timedelta(minutes=20), NOW + timedelta(hours=4)),) if maintenance else ()
    snap = Snapshot(taken_at=NOW, graph=g, data_time={"src/t": data_time}, durations={"a": [600.0]},
                    paused_connectors={"fivetran:src"} if paused else set())
    snap.connector_risk = {"fivetran:src": ConnectorRisk("fivetran:src", 0.05, 0.0, 900.0, 900.0, windows)}
    fa = FreshnessAssessment("dashboard/d", FreshnessStatus.at_risk, "critical", "dash", deadline, None, None, None,
                             "stale", window_open=NOW + timedelta(hours=opens_h))
    return snap, Assessment(taken_at=NOW, freshness={"dashboard/d": fa})


def test_preempt_syncs_before_an_announced_window_with_the_reason():
    from orchestrator.health.early import preempt

    snap, a = _decision_inputs(NOW - timedelta(hours=5))
    (act,) = preempt(snap, a, now=NOW)
    assert act.type == "materialize" and act.cause == "early_warning"
    assert act.asset_keys == ("src/t", "a", "dashboard/d")  # the sync and the chain it feeds, earlier
    assert "maintenance window" in act.reason and "dashboard/d" in act.reason


@pytest.mark.parametrize("case", ["fresh", "window_not_open", "paused", "no_risk"])
def test_preempt_stays_quiet_when_a_sync_now_would_not_help(case):
    from orchestrator.health.early import preempt

    snap, a = _decision_inputs(NOW - timedelta(minutes=10) if case == "fresh" else NOW - timedelta(hours=5),
                               opens_h=1.0 if case == "window_not_open" else -1.0, paused=case == "paused",
                               maintenance=case != "no_risk")
    assert preempt(snap, a, now=NOW) == []


def test_the_shell_reads_announced_windows_and_names_a_bad_entry(tmp_path):
    from orchestrator.health.shell import maintenance_windows, risks_from_signals

    f = tmp_path / "m.yaml"
    f.write_text("windows:\n  - {connector: 'fivetran:x', start: '2026-03-03T04:00:00Z', end: '2026-03-03T06:00:00Z'}\n")
    w = maintenance_windows(str(f))
    risks = risks_from_signals(_signals(), NOW, w)
    assert list(risks) == ["fivetran:x"] and risks["fivetran:x"].maintenance == tuple(w["fivetran:x"])
    assert risks_from_signals(_signals(), NOW, {}) == {}  # quiet and nothing announced: nothing to pre-empt
    f.write_text("windows:\n  - {connector: 'fivetran:x', start: '2026-03-03T04:00:00Z'}\n")
    with pytest.raises(ValueError, match=r"windows\[0\].*connector, start and end"):
        maintenance_windows(str(f))


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=60, deadline=None)
@given(age_h=st.floats(0, 12), opens_h=st.floats(-6, 3), fail=st.floats(0, 0.9), window=st.booleans(),
       paused=st.booleans())
def test_preempt_never_runs_a_sync_that_cannot_count_or_is_not_needed(age_h, opens_h, fail, window, paused):
    from dataclasses import replace

    from orchestrator.health.early import preempt

    snap, a = _decision_inputs(NOW - timedelta(hours=age_h), opens_h=opens_h, paused=paused, maintenance=window)
    snap.connector_risk = {k: replace(r, p_fail=fail) for k, r in snap.connector_risk.items()}
    out = preempt(snap, a, now=NOW)
    assert len(out) <= 1
    if out:
        opens = NOW + timedelta(hours=opens_h)
        assert not paused and opens <= NOW and NOW - timedelta(hours=age_h) < opens
        assert out[0].cause == "early_warning" and out[0].reason.startswith("early warning on fivetran:src")
        assert window or fail >= 0.3  # a reason to act
