"""Simulator x decision core: the sla planner on small worlds, fleet trimming, engine fixes."""

from __future__ import annotations

from test_simulator_engine import tiny

from orchestrator.core.records import Action
from orchestrator.simulator import load_scenario
from orchestrator.simulator.bench import resolve_policies, run_benchmark
from orchestrator.simulator.engine import Simulation


def test_sla_starts_ahead_of_the_deadline_and_retries_transient_faults_by_itself(tmp_path):
    # the source syncs every 3 h; the 00:00 sync hits a rate limit that clears after 20 min
    path = tiny(tmp_path, extra="""
        faults:
          - {name: quota, category: rate_limit, targets: ["fivetran:src"], at: ["23:59"], lasts: 20m}
        """)
    r = run_benchmark(load_scenario(path), "sla", seed=0)
    assert r.sla_attainment == 1.0 and r.unsafe_actions == 0
    assert r.approvals_requested == 0  # a transient retry with backoff needs no person
    assert r.incidents >= 1 and r.auto_resolved_share == 1.0


def test_resync_clears_schema_drift_on_the_attempt_that_fixes_it(tmp_path):
    path = tiny(tmp_path, extra="""
        faults:
          - {name: drift, category: schema_drift, targets: ["fivetran:src"], at: ["20:10"]}
        """)
    sc = load_scenario(path)
    sim = Simulation(sc, 0)
    sim.set_resolution(resolve_policies(sc, sim.world))
    ends = []

    class Spy:
        def on_step_end(self, s, st, ok):
            ends.append((st.resync, ok))

    sim.listeners.append(Spy())
    sim.at(20 * 60, lambda: sim.execute(Action("a1", "resync_table", "drift", connector="fivetran:src",
                                                 tables={"src": ("t",)}, asset_keys=("src/t",))))
    sim.run()
    assert ends and ends[0] == ("resync_table", True)  # before the fix this attempt failed


def test_fleet_trimming_keeps_whole_lineages():
    sc = load_scenario("fleet-10k")
    g = sc.graph
    assert len(g) == 10_000
    assert all(u in g for k in g.keys for u in g.node(k).upstream)  # upstream-closed
    assert sum(1 for n in g if n.role == "dashboard") == 480  # every tenant's exposures kept
