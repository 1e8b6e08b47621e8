"""Simulator: engine invariants, scenario validation, baselines, the bound, --json contract."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator.simulator import ScenarioError, load_scenario
from orchestrator.simulator.bench import resolve_policies, run_benchmark
from orchestrator.simulator.engine import Simulation
from orchestrator.simulator.metrics import JSON_KEYS, deadlines_of
from orchestrator.simulator.planners import make_planner
from orchestrator.simulator.scenario import parse_scenario_text

POLICY = textwrap.dedent("""
    policies:
      - name: dash
        select: [{key: dashboard/d}]
        deadline: {cron: "0 6 * * *", timezone: UTC, window: 8h}
        tier: critical
        rollout: auto
        auto_approve: [retry, materialize]
""")


def tiny(tmp_path: Path, extra: str = "", models: str | None = None, slots: int = 1) -> Path:
    (tmp_path / "p.yaml").write_text(POLICY)
    models = models or """
        - {key: a, upstream: [src/t], duration: {median: 10m, sigma: 0}}
        - {key: b, upstream: [src/t], duration: {median: 20m, sigma: 0}}
        - {key: c, upstream: [a, b], duration: {median: 5m, sigma: 0}}
        - {key: dashboard/d, role: dashboard, upstream: [c]}"""
    text = textwrap.dedent(f"""
        name: tiny
        start: 2026-03-02T20:00:00Z
        horizon: 12h
        policies: [p.yaml]
        graph:
          connectors:
            - {{id: "fivetran:src", tables: [src/t], schedule: "0 */3 * * *", duration: {{median: 15m, sigma: 0}}}}
          assets:
        """) + textwrap.indent(textwrap.dedent(models).strip("\n"), "    ") + "\n" + textwrap.dedent(f"""
        capacity: {{warehouse_slots: {slots}}}
        baseline: {{jobs: [{{name: build, cron: "0 2 * * *"}}]}}
        """) + textwrap.dedent(extra)
    path = tmp_path / "tiny.yaml"
    path.write_text(text)
    return path


def run_sim(path, planner, seed=0):
    sc = load_scenario(path)
    sim = Simulation(sc, seed)
    res = resolve_policies(sc, sim.world)
    sim.set_resolution(res)
    for d in deadlines_of(res, sc.t0, sc.horizon_s):
        sim.watch.setdefault(d.target, [])
    steps = []

    class Spy:
        def on_step_end(self, s, st, ok):
            steps.append(st)

    p = make_planner(planner)
    sim.listeners.append(Spy())
    # capacity spy: wrap _start
    orig = sim._start
    peaks = {}

    def start(st):
        orig(st)
        pool = sim.pools[st.pool]
        peaks[st.pool] = max(peaks.get(st.pool, 0), pool.busy)
        assert pool.busy <= pool.cap

    sim._start = start
    p.start(sim)
    sim.run()
    return sim, steps, peaks


def test_dependencies_and_capacity(tmp_path):
    sim, steps, peaks = run_sim(tiny(tmp_path, slots=2), "cron")
    assert steps, "cron ran nothing"
    for pool, peak in peaks.items():
        assert peak <= sim.pools[pool].cap
    # every model step started after its in-run parents ended
    for st in steps:
        for ch in st.children:
            if ch.start is not None:
                assert ch.start >= st.end - 1e-9


def test_determinism_per_seed(tmp_path):
    path = tiny(tmp_path, extra="""
        faults:
          - {name: flaky, category: rate_limit, targets: ["fivetran:src"], probability: 0.3}
        """)
    a = run_benchmark(load_scenario(path), "cron", seed=3).as_json()
    b = run_benchmark(load_scenario(path), "cron", seed=3).as_json()
    assert a == b
    c = run_benchmark(load_scenario(path), "eager", seed=3).as_json()
    d = run_benchmark(load_scenario(path), "eager", seed=3).as_json()
    assert c == d


def test_cron_retries_like_retry_policy(tmp_path):
    path = tiny(tmp_path, extra="""
        faults:
          - {name: quota, category: rate_limit, targets: ["fivetran:src"], at: ["20:59"], lasts: 5m}
        """)
    sim, steps, _ = run_sim(path, "cron")
    syncs = [s for s in steps if s.is_sync]
    first = min(syncs, key=lambda s: s.end)
    assert first.retries >= 1 and first.state == "success"  # retried after the 60 s delay, then worked
    assert sim.incidents and sim.incidents[0].resolved_by == "auto"


def test_eager_runs_when_upstream_updates(tmp_path):
    sim, steps, _ = run_sim(tiny(tmp_path), "eager")
    sync_ends = sorted(s.end for s in steps if s.is_sync)
    a_starts = sorted(s.start for s in steps if s.unit == "a")
    assert a_starts and a_starts[0] >= sync_ends[0]
    assert a_starts[0] - sync_ends[0] <= 31  # next evaluation tick
    # no retries by eager: the source sync failing leaves models idle until the next sync
    assert all(st.run.retry is None for st in steps)


def test_human_fault_needs_fix(tmp_path):
    path = tiny(tmp_path, extra="""
        human_fix_delay: 2h
        faults:
          - {name: token, category: auth_expired, targets: ["fivetran:src"], at: ["20:30"]}
        """)
    sim, steps, _ = run_sim(path, "cron")
    inc = sim.incidents[0]
    assert inc.category == "auth_expired" and inc.resolved_by == "human"
    assert inc.resolved >= inc.opened + 2 * 3600 - 1


def test_bound_is_exact_without_contention(tmp_path):
    """Ample slots, no faults: the bound is the critical path from the window's opening."""
    path = tiny(tmp_path, slots=3)
    sc = load_scenario(path)
    res = run_benchmark(sc, "bound", seed=0)
    assert res.bound
    world = sc.realise(0)
    d = {u: min(world.durations[u]) for u in ["fivetran:src", "a", "b", "c"]}
    deadline, opens = 10 * 3600.0, 2 * 3600.0  # 06:00 and its 8h window, from 20:00
    ready = opens + d["fivetran:src"] + max(d["a"], d["b"]) + d["c"]
    late = max(0.0, ready - deadline)
    assert res.sla_attainment == (1.0 if late == 0 else 0.0)
    assert res.weighted_lateness == pytest.approx(late / 60, abs=0.05)


def test_bound_not_worse_than_baselines(tmp_path):
    path = tiny(tmp_path, slots=1)
    o = run_benchmark(load_scenario(path), "bound", seed=1)
    for p in ("cron", "cron-tuned", "eager"):
        r = run_benchmark(load_scenario(path), p, seed=1)
        assert o.sla_attainment >= r.sla_attainment
        assert o.weighted_lateness <= r.weighted_lateness + 1e-6


@pytest.mark.parametrize("text, needle", [
    ("name: x\nstart: 2026-03-02T20:00:00Z\npolicies: [p.yaml]\ngraph: {assets: [{key: a}]}\nhorizn: 1h\n",
     "unknown field 'horizn'; did you mean 'horizon'?"),
    ("name: x\nstart: 2026-03-02T20:00:00Z\npolicies: [p.yaml]\ngraph: {assets: [{key: a}]}\n"
     "faults: [{name: f, category: rate_limt, targets: [a], at: ['01:00']}]\n", "did you mean 'rate_limit'?"),
    ("name: x\nstart: 2026-03-02T20:00:00Z\npolicies: [p.yaml]\ngraph: {assets: [{key: a}]}\n"
     "faults: [{name: f, category: rate_limit, targets: [a]}]\n", "exactly one of 'at'"),
    ("name: x\npolicies: [p.yaml]\ngraph: {assets: [{key: a}]}\n", "start: required field is missing"),
    ("name: x\nstart: 2026-03-02T20:00:00Z\npolicies: [p.yaml]\ngraph: {assets: [{key: a, duration: {median: 1m, trace_family: montage}}]}\n",
     "exactly one of 'median'"),
])
def test_scenario_validation_errors(text, needle):
    with pytest.raises(ScenarioError) as exc:
        parse_scenario_text(text, "s.yaml")
    assert needle in str(exc.value)
    assert "s.yaml:" in str(exc.value)


def test_scenario_graph_errors(tmp_path):
    path = tiny(tmp_path, models="""
        - {key: a, upstream: [src/tt]}
        - {key: dashboard/d, role: dashboard, upstream: [a]}""")
    with pytest.raises(ScenarioError, match="unknown asset 'src/tt'; did you mean 'src/t'"):
        load_scenario(path)
    with pytest.raises(ScenarioError, match="unknown scenario 'smal'.*did you mean 'small'"):
        load_scenario("smal")


def test_shipped_scenarios_load():
    for name in ("small", "peak-hour", "bad-day"):
        sc = load_scenario(name)
        assert sc.connectors and sc.models
    big = load_scenario("fleet-10k")
    assert len(big.graph) == 10_000


def test_bench_json_contract(tmp_path):
    from orchestrator.cli import cli

    path = tiny(tmp_path)
    result = CliRunner().invoke(cli, ["bench", "--scenario", str(path), "--planner", "cron", "--seed", "2", "--json"])
    assert result.exit_code == 0, result.output
    last = result.stdout.strip().splitlines()[-1]
    data = json.loads(last)
    assert tuple(data) == JSON_KEYS
    assert 0 <= data["sla_attainment"] <= 1


def test_sla_llm_without_endpoint_is_a_clear_error(tmp_path, monkeypatch):
    from orchestrator.cli import cli

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    result = CliRunner().invoke(cli, ["bench", "--scenario", str(tiny(tmp_path)), "--planner", "sla-llm", "--quiet"])
    assert result.exit_code != 0
    assert "not available" in result.output


def test_sla_planner_runs_the_decision_core(tmp_path):
    pytest.importorskip("orchestrator.planning")
    r = run_benchmark(load_scenario(tiny(tmp_path)), "sla", seed=0)
    assert r.unsafe_actions == 0
    assert "ticks" in r.note
