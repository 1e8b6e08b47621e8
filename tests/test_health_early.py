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
    if world == "outage":
        assert r[False].sla_attainment == 0.0
    else:
        # the plain planner now starts a pre-authorised sync once its window opens (its connector
        # schedule would land too late), which lands before this maintenance window: early
        # warning must still meet it, and never do worse
        assert r[False].sla_attainment <= r[True].sla_attainment
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


# -- pause ahead of a maintenance window, resume after it; move to off-peak ------------------------
OFF_PEAK_POLICY = """
policies:
  - name: dash
    select: [{key: dashboard/d}]
    deadline: {cron: "0 DEADLINE_H * * *", timezone: UTC, window: 12h}
    tier: critical
    rollout: auto
    auto_approve: [retry, materialize, defer, pause_connector, resume_connector]
    windows:
      off_peak: [{days: daily, start: "OFF_START", end: "OFF_END"}]
"""


def _inputs(*, deadline_h=3.0, window=(0.05, 2.0), data_age_h=5.0, opens_h=-1.0, paused=False, last_failed=False,
            p_fail=0.05, creep=1.0):
    """A connector ``fivetran:src`` -> model ``a`` -> ``dashboard/d`` due at NOW + deadline_h."""
    from orchestrator.core.graph import CONNECTOR_TABLE, DASHBOARD, DBT_MODEL, AssetGraph, AssetNode
    from orchestrator.core.records import Assessment, FreshnessAssessment, FreshnessStatus, Snapshot, SyncRecord
    from orchestrator.health.early import ConnectorRisk

    g = AssetGraph([AssetNode("src/t", CONNECTOR_TABLE, connector="fivetran:src"),
                    AssetNode("a", DBT_MODEL, upstream=("src/t",)),
                    AssetNode("dashboard/d", DASHBOARD, upstream=("a",))]
                   + [AssetNode(f"other{i}", DBT_MODEL) for i in range(4)])
    deadline = NOW + timedelta(hours=deadline_h)
    windows = ((NOW + timedelta(hours=window[0]), NOW + timedelta(hours=window[1])),) if window else ()
    syncs = []
    if last_failed:
        syncs = [SyncRecord("fivetran:src", "s1", "failed", NOW - timedelta(hours=2), NOW - timedelta(hours=1))]
    snap = Snapshot(taken_at=NOW, graph=g, data_time={"src/t": NOW - timedelta(hours=data_age_h)},
                    durations={"a": [600.0]}, syncs=syncs, paused_connectors={"fivetran:src"} if paused else set())
    snap.connector_risk = {"fivetran:src": ConnectorRisk("fivetran:src", p_fail, 0.0, 900.0 * creep, 900.0, windows,
                                                          why=("rising warnings",) if p_fail >= 0.3 else ())}
    fa = FreshnessAssessment("dashboard/d", FreshnessStatus.at_risk, "critical", "dash", deadline, None, None, None,
                             "stale", window_open=NOW + timedelta(hours=opens_h))
    return snap, Assessment(taken_at=NOW, freshness={"dashboard/d": fa}), deadline


def test_pause_ahead_of_a_window_no_deadline_needs_a_sync_in():
    from orchestrator.health.early import preempt

    # the window 03:03-05:00 opens before the next tick; the 06:00 deadline's latest start (~05:31) is after it
    snap, a, _ = _inputs(deadline_h=3.0, window=(0.05, 2.0))
    (act,) = preempt(snap, a, now=NOW)
    assert act.type == "pause_connector" and act.connector == "fivetran:src" and act.cause == "early_warning"
    assert "maintenance window" in act.reason and "resume it at 05:00" in act.reason


def test_no_pause_when_a_deadline_needs_a_sync_inside_the_window():
    from orchestrator.health.early import preempt

    # the 04:50 deadline must start by ~04:21, inside the window: no pause (the sync-earlier path answers)
    snap, a, _ = _inputs(deadline_h=1.83, window=(0.05, 2.0))
    out = preempt(snap, a, now=NOW)
    assert [x.type for x in out] == ["materialize"] and "maintenance window" in out[0].reason


@pytest.mark.parametrize("case", ["not_yet", "running"])
def test_no_pause_before_the_last_tick_or_while_syncing(case):
    from orchestrator.core.records import SyncRecord
    from orchestrator.health.early import preempt

    snap, a, _ = _inputs(deadline_h=8.0, window=(1.0 if case == "not_yet" else 0.05, 3.0))
    if case == "running":
        snap.syncs = [SyncRecord("fivetran:src", "s2", "running", NOW - timedelta(minutes=5))]
    assert [x for x in preempt(snap, a, now=NOW) if x.type == "pause_connector"] == []


def test_resume_after_the_window_closes_only_for_our_pause():
    from orchestrator.health.early import early_pauses, preempt

    snap, a, _ = _inputs(deadline_h=8.0, window=(-2.0, -0.05), paused=True)
    (act,) = preempt(snap, a, now=NOW)
    assert act.type == "resume_connector" and act.connector == "fivetran:src" and "closed at" in act.reason
    # inside the window: stays paused
    snap, a, _ = _inputs(deadline_h=8.0, window=(-1.0, 1.0), paused=True)
    assert preempt(snap, a, now=NOW) == []
    # paused by the failure path (its latest sync failed): not ours to resume
    snap, a, _ = _inputs(deadline_h=8.0, window=(-2.0, -0.05), paused=True, last_failed=True)
    assert preempt(snap, a, now=NOW) == []
    # with a ledger: only a pause the early warning made, after the end of its window
    snap, a, _ = _inputs(deadline_h=8.0, window=(-2.0, -0.05), paused=True)
    assert preempt(snap, a, now=NOW, ours={}) == []
    assert [x.type for x in preempt(snap, a, now=NOW, ours={"fivetran:src": NOW - timedelta(minutes=3)})] \
        == ["resume_connector"]
    assert early_pauses(None) == {}


def test_pause_then_resume_round_trip_through_the_ledger():
    from orchestrator.core.incidents import DONE_OK
    from orchestrator.health.early import early_pauses, preempt

    snap, a, _ = _inputs(deadline_h=3.0, window=(0.05, 2.0))
    (pause,) = preempt(snap, a, now=NOW)

    class Entry:
        def __init__(self, action, at):
            self.action, self.at, self.status = action, at, DONE_OK

    class Ledger:
        entries = {"1": Entry(pause, NOW)}

    ours = early_pauses(Ledger())
    assert ours == {"fivetran:src": NOW + timedelta(hours=2)}  # paused for the window ending 05:00
    snap2, a2, _ = _inputs(deadline_h=10.0, window=(0.05, 2.0), paused=True)
    assert preempt(snap2, a2, now=NOW + timedelta(hours=1), ours=ours) == []  # inside the window
    (resume,) = preempt(snap2, a2, now=NOW + timedelta(hours=2, minutes=5), ours=ours)
    assert resume.type == "resume_connector" and "05:00" in resume.reason


def _resolution(tmp_path, deadline_h: int, off=("20:00", "23:00")):
    from orchestrator.policies import DurationModel, load_policies, resolve

    snap, _, _ = _inputs()
    p = tmp_path / "p.yaml"
    p.write_text(OFF_PEAK_POLICY.replace("DEADLINE_H", str(deadline_h)).replace("OFF_START", off[0])
                 .replace("OFF_END", off[1]))
    res = resolve(load_policies([p]), snap.graph, DurationModel(), NOW)
    assert res.ok, res.skip_reason
    return res


def test_an_at_risk_connector_not_needed_before_off_peak_moves_there(tmp_path):
    from orchestrator.health.early import preempt

    # at 03:00, off-peak 20:00-23:00, deadline 23:59 (window opens 11:59): the next sync can wait
    res = _resolution(tmp_path, 23)
    snap, a, deadline = _inputs(deadline_h=20.98, window=None, opens_h=9.0, p_fail=0.5)
    (act,) = preempt(snap, a, now=NOW, resolution=res)
    assert act.type == "defer" and act.asset_keys == ("src/t",) and act.cause == "early_warning"
    assert act.not_before == datetime(2026, 3, 3, 20, tzinfo=UTC) and "off-peak" in act.reason
    # not at risk: nothing to move
    snap, a, _ = _inputs(deadline_h=20.98, window=None, opens_h=9.0)
    assert preempt(snap, a, now=NOW, resolution=res) == []
    # a deadline before the off-peak window needs the sync: no move
    snap, a, _ = _inputs(deadline_h=10.0, window=None, opens_h=9.0, p_fail=0.5)
    assert [x for x in preempt(snap, a, now=NOW, resolution=res) if x.type == "defer"] == []


@settings(max_examples=80, deadline=None)
@given(deadline_h=st.floats(0.3, 22), opens_h=st.floats(-6, 12), age_h=st.floats(0, 12), fail=st.floats(0, 0.9),
       creep=st.floats(0.8, 3), w_start=st.one_of(st.none(), st.floats(-3, 3)), w_len=st.floats(0.2, 4),
       paused=st.booleans(), off=st.integers(0, 23))
def test_preemptive_actions_have_a_reason_and_never_make_a_deadline_later(
        tmp_path_factory, deadline_h, opens_h, age_h, fail, creep, w_start, w_len, paused, off):
    from orchestrator.health.early import MARGIN, preempt

    opens_h = min(opens_h, deadline_h - 0.1)
    window = None if w_start is None else (w_start, w_start + w_len)
    res = _resolution(tmp_path_factory.mktemp("r"), 6, off=(f"{off:02d}:00", f"{(off + 3) % 24:02d}:00"))
    snap, a, deadline = _inputs(deadline_h=deadline_h, window=window, data_age_h=age_h, opens_h=opens_h,
                                paused=paused, p_fail=fail, creep=creep)
    risk = snap.connector_risk["fivetran:src"]
    stale = NOW - timedelta(hours=age_h) < NOW + timedelta(hours=opens_h)
    need = timedelta(seconds=risk.expected_s() * MARGIN + 600)
    out = preempt(snap, a, now=NOW, resolution=res)
    assert len(out) <= 1
    for act in out:
        assert act.cause == "early_warning" and act.reason.startswith("early warning on fivetran:src: ")
        assert len(act.reason) > len("early warning on fivetran:src: ") + 20
        if act.type == "pause_connector":
            assert not paused and window is not None
            a0, b0 = NOW + timedelta(hours=window[0]), NOW + timedelta(hours=window[1])
            assert NOW < a0 <= NOW + timedelta(minutes=5)
            # no deadline needed a sync inside the window
            assert not (stale and deadline > a0 and deadline - need < b0)
        elif act.type == "resume_connector":
            assert paused and window is not None and NOW + timedelta(hours=window[1]) <= NOW
        elif act.type == "defer":
            assert not paused and (fail >= 0.3 or creep >= 1.3)
            # the move still meets the deadline: nothing made later than it can afford
            assert not stale or act.not_before + need <= deadline
        else:
            assert act.type == "materialize" and not paused and act.not_before is None


PAUSE_WORLD = """
name: ewpause
start: 2026-03-02T20:00:00Z
horizon: 11h
policies: [p.yaml]
graph:
  connectors:
    - {id: "fivetran:src", tables: [src/t], schedule: "0 * * * *", duration: {median: 15m, sigma: 0}}
  assets:
    - {key: a, upstream: [src/t], duration: {median: 10m, sigma: 0}}
    - {key: dashboard/d, role: dashboard, upstream: [a]}
capacity: {warehouse_slots: 1}
baseline: {jobs: [{name: build, cron: "0 2 * * *"}]}
maintenance:
  - {targets: ["fivetran:src"], at: "22:30", lasts: 2h}
"""


def test_in_the_simulator_a_pause_over_the_window_saves_failed_syncs_and_resumes(tmp_path, monkeypatch):
    """An hourly connector with a window 22:30-00:30 nobody needs (the dashboard is due at 06:00):
    paused at 22:25, resumed at 00:30, the deadline still met, the syncs that would fail in the
    window not paid for."""
    import orchestrator.health.early as early

    (tmp_path / "p.yaml").write_text(POLICY.replace("WINDOW", "3h").replace(
        "auto_approve: [retry, materialize, resync_table]",
        "auto_approve: [retry, materialize, resync_table, pause_connector, resume_connector]"))
    (tmp_path / "w.yaml").write_text(PAUSE_WORLD)
    seen = []
    orig = early.preempt

    def spy(*a, **k):
        out = orig(*a, **k)
        seen.extend((k["now"], x.type) for x in out if x.type in ("pause_connector", "resume_connector"))
        return out

    monkeypatch.setattr(early, "preempt", spy)
    plain = run_benchmark(tmp_path / "w.yaml", "sla", 0, early_warning=False)
    ew = run_benchmark(tmp_path / "w.yaml", "sla", 0, early_warning=True)
    assert [t for _, t in seen][:2] == ["pause_connector", "resume_connector"]
    (p_at, _), (r_at, _) = seen[:2]
    assert p_at < datetime(2026, 3, 2, 22, 30, tzinfo=UTC) <= datetime(2026, 3, 3, 0, 30, tzinfo=UTC) <= r_at
    assert ew.sla_attainment == plain.sla_attainment == 1.0 and ew.unsafe_actions == 0 == plain.unsafe_actions
    # the failing syncs inside the window did not run; (until the breaker stopped cutting a
    # prescribed retry schedule short, breaker.schedule_allowance, the pause run was also cheaper
    # because the breaker opened on its retries and held the last one: both now spend the
    # schedule, whose last retry lands the data)
    assert ew.cost <= plain.cost


def test_with_a_ledger_our_pause_is_resumed_even_after_skipped_syncs():
    from orchestrator.health.early import preempt

    # a paused connector's skipped syncs read as failed: with the ledger saying the pause is ours, resume
    snap, a, _ = _inputs(deadline_h=8.0, window=(-2.0, -0.05), paused=True, last_failed=True)
    (act,) = preempt(snap, a, now=NOW, ours={"fivetran:src": NOW - timedelta(minutes=3)})
    assert act.type == "resume_connector"
    snap.connector_risk = {}  # quiet and nothing announced any more: still resumed
    assert [x.type for x in preempt(snap, a, now=NOW, ours={"fivetran:src": NOW - timedelta(minutes=3)})] \
        == ["resume_connector"]


def test_each_kind_of_preemptive_action_can_be_left_out(tmp_path):
    """``kinds`` (``PlannerConfig.preempt_kinds``, what bench_early_warning switches one at a
    time): a kind left out proposes nothing, the others are unchanged; a resume is still made
    for a pause made earlier; an unknown kind is refused by name."""
    from orchestrator.health.early import KINDS, preempt

    pause = _inputs(deadline_h=3.0, window=(0.05, 2.0))[:2]
    earlier = _inputs(deadline_h=1.83, window=(0.05, 2.0))[:2]
    res = _resolution(tmp_path, 23)
    off = _inputs(deadline_h=20.98, window=None, opens_h=9.0, p_fail=0.5)[:2]
    resume = _inputs(deadline_h=8.0, window=(-2.0, -0.05), paused=True)[:2]
    cases = {"pause": (pause, "pause_connector", {}), "earlier": (earlier, "materialize", {}),
             "off_peak": (off, "defer", {"resolution": res})}
    for kind, ((snap, a), typ, kw) in cases.items():
        assert [x.type for x in preempt(snap, a, now=NOW, **kw)] == [typ]
        assert [x.type for x in preempt(snap, a, now=NOW, kinds=set(KINDS) - {kind}, **kw)] == []
        assert [x.type for x in preempt(snap, a, now=NOW, kinds={kind}, **kw)] == [typ]
    assert [x.type for x in preempt(*resume, now=NOW, kinds=())] == ["resume_connector"]
    with pytest.raises(ValueError, match="unknown pre-emptive action kind.*'later'"):
        preempt(*pause, now=NOW, kinds={"later"})
