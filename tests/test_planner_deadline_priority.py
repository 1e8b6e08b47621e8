"""Deadline work ranks above the routine traffic of a busy source (``PlannerConfig.deadline_work_first``).

The connectors' own scheduled syncs queue for a source's sync slots at ``dagster/priority`` 0. Work
the planner ranked by slack used to go negative whenever it had slack, so on a source whose
scheduled syncs keep its slot busy, a deadline's sync waited behind every one of them; where
re-prioritising needs approval it was never moved up, and the queued run held its deadline's lineage
back for the next cycles too (generated world 13031: one run queued 46 h, two deadlines lost).
"""

from __future__ import annotations

import textwrap

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_simulator_engine import run_sim

from orchestrator.planning import PlannerConfig, priority_for
from orchestrator.planning.planner import deadline_priority_floor
from orchestrator.simulator import load_scenario
from orchestrator.simulator.bench import deadlines_of, resolve_policies
from orchestrator.simulator.metrics import lateness


@settings(max_examples=200, deadline=None, derandomize=True)
@given(a=st.one_of(st.none(), st.floats(-1e6, 1e6)), b=st.floats(-1e6, 1e6),
       tier=st.sampled_from(["critical", "high", "standard", "low"]))
def test_deadline_work_outranks_routine_traffic_least_slack_first(a, b, tier):
    # any slack: above the routine traffic's 0 and inside validation's bounds; less slack never ranks lower
    pb = priority_for(b, tier)
    assert 0 < pb <= 1000
    if a is None:  # work for no deadline ranks below every deadline's
        assert priority_for(a, tier) < 0 < pb
    else:
        lo, hi = sorted((a, b))
        assert priority_for(lo, tier) >= priority_for(hi, tier)
    # switched off: the old scale, where work with an hour's slack ranks below the routine traffic
    off = PlannerConfig(deadline_work_first=False)
    assert pb - priority_for(b, tier, off) == deadline_priority_floor()
    if b > 3600:
        assert priority_for(b, tier, off) < 0


def _busy_source_world(tmp_path, busy: int, busy_min: int, deadline_hour: int):
    # the dashboard's connector shares one sync slot with ``busy`` connectors whose own hourly
    # syncs take ``busy_min`` minutes each: the slot is never idle for long, and the dashboard's
    # connector syncs itself only once a day (its schedule lands nothing inside the window)
    (tmp_path / "p.yaml").write_text(textwrap.dedent(f"""
        policies:
          - name: dash
            select: [{{key: dashboard/d}}]
            deadline: {{cron: "0 {deadline_hour} * * *", timezone: UTC, window: 4h}}
            tier: standard
            rollout: auto
            auto_approve: [retry, materialize]
    """))
    siblings = "\n".join(
        f'    - {{id: "fivetran:busy{i}", source: shared, tables: [busy{i}/t], schedule: "{i * 7} * * * *", '
        f'duration: {{median: {busy_min}m, sigma: 0}}}}' for i in range(busy))
    path = tmp_path / "busy.yaml"
    path.write_text(textwrap.dedent("""
        name: busy-source
        start: 2026-03-02T20:00:00Z
        horizon: 20h
        policies: [p.yaml]
        graph:
          connectors:
            - {id: "fivetran:src", source: shared, tables: [src/t], schedule: "30 19 * * *", duration: {median: 15m, sigma: 0}}
        """) + siblings + "\n" + textwrap.dedent("""
          assets:
            - {key: a, upstream: [src/t], duration: {median: 10m, sigma: 0}}
            - {key: dashboard/d, role: dashboard, upstream: [a]}
        capacity: {warehouse_slots: 2}
        baseline: {jobs: [{name: build, cron: "0 2 * * *"}]}
        """))
    return path


@settings(max_examples=6, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(busy=st.integers(2, 3), busy_min=st.integers(40, 70), deadline_hour=st.sampled_from([6, 9, 12]))
def test_a_deadline_sync_is_not_starved_by_a_busy_sources_schedules(tmp_path, busy, busy_min, deadline_hour):
    path = _busy_source_world(tmp_path, busy, busy_min, deadline_hour)
    sim, _, _ = run_sim(path, "sla")
    sc = load_scenario(path)
    deadlines = deadlines_of(resolve_policies(sc, sim.world), sc.t0, sc.horizon_s)
    assert deadlines
    missed = [sim.dt(d.tick) for d in deadlines if lateness(d, sim.watch.get(d.target, []), sim.horizon) > 0]
    assert not missed
    # the planner's syncs of the dashboard's connector got the slot ahead of the scheduled traffic
    ours = [r for r in sim.runs.values() if r.source.startswith("action:") and "src/t" in r.assets]
    assert ours and all(r.priority > 0 for r in ours)


def test_world_13031_an_approved_run_is_not_starved_behind_the_sources_schedules(tmp_path):
    # generated world 13031: four Airbyte connectors share one sync slot and their own hourly
    # syncs run an hour or more each. The refresh a person approved on day one (08:30) waited
    # there at priority -21 for 46 h, holding dashboard/d0 and dashboard/d1's lineage back; both
    # day-two deadlines were lost (cron-tuned, whose jobs run at priority 10-30, met one of them)
    from orchestrator.simulator.bench import run_benchmark, simulate
    from orchestrator.simulator.planners import make_planner
    from orchestrator.simulator.worlds import generate_world

    sc = load_scenario(str(generate_world(13031, tmp_path)))
    world = sc.realise(13031)
    res = resolve_policies(sc, world)
    deadlines = deadlines_of(res, sc.t0, sc.horizon_s)
    planner = make_planner("sla")
    holder = {}
    start = planner.start

    def keep(sim):
        holder["sim"] = sim
        start(sim)

    planner.start = keep
    sla = simulate(sc, 13031, planner, res, deadlines)
    sim = holder["sim"]
    ours = [r for r in sim.runs.values() if r.source.startswith("action:") and not r.canceled]
    assert ours
    waited = {r.run_id: (min((s.start for s in r.steps if s.start is not None), default=sim.now)
                         - max(r.created, r.not_before)) / 3600 for r in ours}
    assert max(waited.values()) < 6, sorted(waited.items(), key=lambda x: -x[1])[:3]
    assert sla.sla_attainment >= run_benchmark(sc, "cron-tuned", 13031).sla_attainment
