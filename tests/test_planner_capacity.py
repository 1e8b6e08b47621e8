"""Planning with the executor's capacity: work that queues for a few slots starts earlier.

Found on generated worlds (seeds 400-439): syncs sharing one source's single slot were each
planned on their own critical path (as if each had a slot to itself), so the connectors' own
schedules looked early enough; they then ran one after the other and the deadline was missed,
where a cron job started at the window's opening met it. ``PlannerConfig.warehouse_slots`` /
``pool_slots`` make the latest start capacity-aware (``_Cycles.capacity_slack``: the demand
bound of earliest-deadline-first scheduling per pool).
"""

from __future__ import annotations

import textwrap

import pytest
from test_simulator_engine import run_sim

from orchestrator.planning import PlannerConfig
from orchestrator.simulator import load_scenario
from orchestrator.simulator.bench import deadlines_of, resolve_policies
from orchestrator.simulator.metrics import lateness
from orchestrator.simulator.planners import sla as sla_adapter

POLICY = """
    policies:
      - name: dash
        select: [{key: dashboard/d}]
        deadline: {cron: "0 19 * * *", timezone: UTC, window: 5h}
        tier: critical
        rollout: auto
        auto_approve: [retry, materialize]
"""


def _world(tmp_path):
    (tmp_path / "p.yaml").write_text(textwrap.dedent(POLICY))
    conns = "\n".join(
        f'    - {{id: "fivetran:s{i}", source: shared, tables: [s{i}/t], schedule: "0 17 * * *", '
        f'duration: {{median: 30m, sigma: 0}}}}' for i in range(4))
    models = "\n".join(f"    - {{key: m{i}, upstream: [s{i}/t], duration: {{median: 5m, sigma: 0}}}}" for i in range(4))
    text = textwrap.dedent("""
        name: capacity
        start: 2026-03-02T12:00:00Z
        horizon: 8h
        policies: [p.yaml]
        graph:
          connectors:
        """) + conns + "\n  assets:\n" + models + textwrap.dedent("""
            - {key: c, upstream: [m0, m1, m2, m3], duration: {median: 5m, sigma: 0}}
            - {key: dashboard/d, role: dashboard, upstream: [c]}
        capacity: {warehouse_slots: 2, per_source: 1}
        baseline: {jobs: [{name: build, cron: "0 2 * * *"}]}
        """).replace("\n    ", "\n  ", 0)
    path = tmp_path / "capacity.yaml"
    path.write_text(text)
    return path


def _late(path, sim):
    sc = load_scenario(path)
    (d,) = deadlines_of(resolve_policies(sc, sim.world), sc.t0, sc.horizon_s)
    return lateness(d, sim.watch.get(d.target, []), sim.horizon)


@pytest.fixture
def blind(monkeypatch):
    """The sla adapter without the capacity (as the planner was before)."""
    orig = sla_adapter.SLAPlanner._planner_config

    def no_capacity(self, sim):
        cfg = orig(self, sim)
        return PlannerConfig(tick_interval_s=cfg.tick_interval_s, preempt_kinds=cfg.preempt_kinds)

    monkeypatch.setattr(sla_adapter.SLAPlanner, "_planner_config", no_capacity)


@pytest.fixture
def aware(monkeypatch):
    """The sla adapter planning with the scenario's capacity (off by default)."""
    monkeypatch.setattr(sla_adapter.SLAPlanner, "capacity_aware", True)


def test_syncs_sharing_one_slot_start_early_enough_for_the_deadline(tmp_path, aware):
    # four 30-min syncs share one source slot; the connectors' own 17:00 syncs would run one
    # after the other past 19:00, the deadline: the planner syncs them itself, from the window's
    # opening, and the deadline is met
    path = _world(tmp_path)
    sim, steps, peaks = run_sim(path, "sla")
    assert _late(path, sim) == 0
    ours = sorted(st.start for st in steps if st.is_sync and st.run.source.startswith("action:"))
    assert len(ours) == 4 and sim.dt(ours[0]).hour < 17  # before the connectors' own schedule
    assert peaks.get("source:shared", 1) <= 1


def test_without_the_capacity_the_same_world_misses_it(tmp_path, blind):
    # the yardstick of the test above: planned as if every sync had a slot, it waits for the
    # connectors' own schedule and the queue makes it late
    path = _world(tmp_path)
    sim, _, _ = run_sim(path, "sla")
    assert _late(path, sim) > 0


def test_with_the_sources_sync_slots_only_the_queued_syncs_start_early_enough(tmp_path, monkeypatch):
    # the sources' slots (a connector's sync queues behind another's for its source), not the
    # warehouse's: the world above is met without switching the full capacity on
    monkeypatch.setattr(sla_adapter.SLAPlanner, "source_capacity_aware", True)
    path = _world(tmp_path)
    sim, steps, peaks = run_sim(path, "sla")
    assert _late(path, sim) == 0
    assert peaks.get("source:shared", 1) <= 1
    cfg = sla_adapter.SLAPlanner()._planner_config(sim)
    assert cfg.warehouse_slots is None and not cfg.model_pools
    assert cfg.pool_slots == {"source:shared": 1}
    assert set(cfg.connector_pools) == {f"fivetran:s{i}" for i in range(4)}
