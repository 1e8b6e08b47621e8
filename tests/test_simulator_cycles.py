"""Deadline cycles on virtual time: switched on mid-day with stale data, the sla planner reports the
lost cycle and serves the next ones without thrashing (was: one model re-run 10 times)."""

from __future__ import annotations

import collections

from test_simulator_engine import tiny

from orchestrator.simulator import load_scenario
from orchestrator.simulator.bench import deadlines_of, resolve_policies, result_from_sim
from orchestrator.simulator.engine import Simulation
from orchestrator.simulator.planners import make_planner


def test_started_mid_day_with_stale_data_it_serves_each_cycle_once(tmp_path):
    path = tiny(tmp_path)
    path.write_text(path.read_text()
                    .replace("start: 2026-03-02T20:00:00Z", "start: 2026-03-02T14:00:00Z")
                    .replace("horizon: 12h", "horizon: 40h\ninitial_age: 20h"))
    sc = load_scenario(path)
    sim = Simulation(sc, 0)
    res = resolve_policies(sc, sim.world)
    sim.set_resolution(res)
    deadlines = deadlines_of(res, sc.t0, sc.horizon_s)
    for d in deadlines:
        sim.watch.setdefault(d.target, [])
    make_planner("sla").start(sim)
    sim.run()
    r = result_from_sim(sim, "sla", deadlines, 0.0)
    assert r.sla_attainment == 1.0 and r.unsafe_actions == 0
    runs = collections.Counter(st.unit for run in sim.runs.values() for st in run.steps
                               if st.state == "success" and run.source.startswith("action:"))
    # the lost cycle (stale at 14:00) once, then the two deadline cycles in the horizon: at most 3 each
    models = {k: v for k, v in runs.items() if not k.startswith("fivetran:")}
    assert models and max(models.values()) <= 3, models
    # connector syncs beyond the connector's own schedule: at most one per cycle
    assert runs.get("fivetran:src", 0) <= 3, runs
