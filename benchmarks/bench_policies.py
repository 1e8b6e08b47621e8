"""Benchmark: resolve SLA policies over a generated 10,000-asset graph and the real manifests.

Prints wall time and peak memory (tracemalloc: Python allocations during the measured step;
ru_maxrss: the whole process). Target: <= 1 s and <= 500 MB at 10,000 assets.

    python benchmarks/bench_policies.py [--assets 1000 10000] [--manifests DIR]
"""

from __future__ import annotations

import argparse
import math
import random
import resource
import time
import tracemalloc
from datetime import datetime, timezone
from pathlib import Path

from orchestrator.core.graph import AssetGraph, AssetNode
from orchestrator.policies.durations import DurationModel
from orchestrator.policies.model import load_policies_from_text
from orchestrator.policies.resolve import resolve

NOW = datetime(2025, 6, 2, 13, 0, tzinfo=timezone.utc)


def generated_graph(n: int, seed: int = 7) -> AssetGraph:
    """~15% connector tables, ~80% dbt models in layers, ~5% dashboards; 1-4 parents each."""
    rng = random.Random(seed)
    n_conn, n_dash = int(n * 0.15), int(n * 0.05)
    n_models = n - n_conn - n_dash
    nodes: list[AssetNode] = []
    conns = []
    for i in range(n_conn):
        tool = "fivetran" if i % 3 else "airbyte"
        key = f"source_{i % 60}/table_{i}"
        conns.append(key)
        nodes.append(AssetNode(key, role="connector_table", kinds=frozenset({tool}),
                               group=f"{tool}_source_{i % 60}", owners=("team:data-platform",),
                               tags={"ingestion": tool}))
    models: list[str] = []
    for i in range(n_models):
        layer = "staging" if i < n_models * 0.4 else "intermediate" if i < n_models * 0.75 else "marts"
        key = f"{layer[:3]}_model_{i}"
        if layer == "staging":
            ups = (rng.choice(conns),)
        else:
            pool = models[-2000:]
            ups = tuple(rng.sample(pool, k=min(len(pool), rng.randint(1, 4))))
        models.append(key)
        nodes.append(AssetNode(key, role="dbt_model", upstream=ups, kinds=frozenset({"dbt"}),
                               group=f"dbt_{layer}", owners=(f"team{i % 12}@example.com",),
                               tags={"domain": f"d{i % 8}"}))
    marts = [m for m in models if m.startswith("mar")]
    for i in range(n_dash):
        nodes.append(AssetNode(f"dashboard/dash_{i}", role="dashboard",
                               upstream=tuple(rng.sample(marts, k=3)), kinds=frozenset({"dashboard"}),
                               group="dashboards", owners=(f"team{i % 12}@example.com",),
                               dbt_name=f"dash_{i}"))
    return AssetGraph(nodes)


def policies_for(graph: AssetGraph, n_dash_policies: int = 20) -> str:
    dashes = [n for n in graph.by_role("dashboard")]
    zones = ["America/New_York", "Europe/Berlin", "Asia/Tokyo", "America/Los_Angeles"]
    conn_role = "connector_table" if graph.by_role("connector_table") else "dbt_source"
    lines = ["policies:"]
    for i, d in enumerate(dashes[:n_dash_policies]):
        name = d.dbt_name or d.key.split("/", 1)[-1]
        lines += [f"  - name: dash-{i}", f"    select: [{{exposure: {name}}}]",
                  f"    deadline: {{cron: '{i % 60} {5 + i % 4} * * *', timezone: {zones[i % 4]},"
                  " calendar: {holidays: {country: US}}}",
                  f"    tier: {['critical', 'high', 'standard', 'low'][i % 4]}",
                  "    rollout: auto", "    auto_approve: [retry]",
                  "    budget: {per_day: 10}"]
    lines += ["  - name: all-dashboards", "    select: [{role: dashboard}]",
              "    deadline: {cron: '0 9 * * 1-5', timezone: America/New_York}", "    max_lag: 30h",
              "  - name: connectors", f"    select: [{{role: {conn_role}}}]", "    rollout: auto",
              "    windows: {blackout: [{days: sun, start: '02:00', end: '04:00'}]}",
              "  - name: staging", "    select: ['st?_*']", "    tier: low"]
    return "\n".join(lines) + "\n"


def measure(label: str, graph: AssetGraph, text: str, durations: DurationModel) -> float:
    policy_set = load_policies_from_text(text, "bench.yaml")
    assert policy_set.ok, policy_set.errors[:3]
    resolve(policy_set, graph, durations, NOW)  # warm caches (zoneinfo, holidays years)
    durations._cache.clear()
    tracemalloc.start()
    t0 = time.perf_counter()
    res = resolve(policy_set, graph, durations, NOW)
    wall = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    t0 = time.perf_counter()
    res2 = resolve(policy_set, graph, durations, NOW)
    wall_untraced = time.perf_counter() - t0
    assert res.ok and res2.ok, res.errors[:3]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{label:<34} assets={len(graph):>6} policies={len(policy_set.policies):>3} "
          f"governed={len(res.slas):>6} resolve={wall_untraced * 1000:7.1f} ms "
          f"(traced {wall * 1000:6.1f} ms) peak_alloc={peak / 2**20:6.1f} MB "
          f"process_rss={rss:6.1f} MB infeasible={len(res.infeasible)}")
    return wall_untraced


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--assets", type=int, nargs="+", default=[1_000, 10_000],
                        help="generated graph sizes (growth exponent printed between them)")
    default = Path(__file__).resolve().parents[2] / "shared/data/dbt_manifests"
    parser.add_argument("--manifests", type=Path, default=default)
    args = parser.parse_args()

    timings = []
    for n in args.assets:
        t0 = time.perf_counter()
        graph = generated_graph(n)
        graph.topological_order()
        print(f"generated graph of {len(graph)} assets in {time.perf_counter() - t0:.2f} s")
        history = {node.key: [random.Random(i).uniform(30, 900) for _ in range(20)]
                   for i, node in enumerate(graph) if i % 2}
        timings.append((n, measure(f"generated {n}", graph, policies_for(graph), DurationModel(history))))
    for (n1, t1), (n2, t2) in zip(timings, timings[1:]):
        print(f"growth exponent resolve {n1} -> {n2} assets: {math.log(t2 / t1) / math.log(n2 / n1):.2f}")

    for name in ("teamster_kipptaf", "mitodl_ol_dbt"):
        path = args.manifests / f"{name}.manifest.json.gz"
        if not path.exists():
            print(f"{name}: manifest not found at {path}")
            continue
        g = AssetGraph.from_dbt_manifest(path)
        g.topological_order()
        if g.by_role("dashboard"):
            text = policies_for(g)
        else:
            groups = sorted({n.group for n in g if n.group})
            text = ("policies:\n  - name: reporting\n    select: [{group: reporting}]\n"
                    "    deadline: {cron: '0 8 * * 1-5', timezone: America/New_York}\n"
                    "  - name: marts\n    select: [{group: marts}]\n"
                    "    deadline: {cron: '0 6 * * *', timezone: Europe/London}\n    max_lag: 1d\n"
                    "  - name: staging\n    select: ['stg__*']\n    tier: low\n")
            assert "reporting" in groups
        measure(name, g, text, DurationModel())


if __name__ == "__main__":
    main()
