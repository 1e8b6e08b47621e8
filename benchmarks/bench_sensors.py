"""One sensor tick (instance snapshot -> assess) over generated graphs with history.

    .venv/bin/python benchmarks/bench_sensors.py [--sizes 1000 10000]

For each size: a layered graph (25% connector tables, 70% dbt models with 1-3 upstreams, 5%
dashboards), 10 policies with daily deadlines (UTC and New York) over the dashboards, a
temporary SQLite Dagster instance holding a materialization of every asset, 200 recent runs,
some in flight, and 20 failures. Prints the setup time, then per size:

* ``tick``: the first tick in the process (cold: lazy imports, empty key caches), timed without
  tracing -- snapshot read and assessment (freshness + cost + failures) separately;
* ``warm``: a second tick on the same instance (what a long-lived code server sees);
* ``peak``: tracemalloc peak of a third tick, timed separately (``traced``) because tracemalloc
  slows allocation-heavy code several-fold.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import dagster as dg  # noqa: E402

from orchestrator.assessment import assess  # noqa: E402
from orchestrator.core.graph import AssetGraph, AssetNode  # noqa: E402
from orchestrator.core.records import CostRecord, FailureRecord  # noqa: E402
from orchestrator.policies import DurationModel, load_policies, resolve  # noqa: E402
from orchestrator import snapshot as snapshot_module  # noqa: E402
from orchestrator.snapshot import build_snapshot  # noqa: E402


def make_graph(n: int, rng: random.Random) -> AssetGraph:
    n_src, n_dash = n // 4, max(1, n // 20)
    nodes, keys = [], []
    for i in range(n_src):
        key = f"src{i % 50}/t{i}"
        nodes.append(AssetNode(key, role="connector_table", connector=f"fivetran:c{i % 50}",
                               kinds=frozenset({"fivetran"}), group=f"src{i % 50}"))
        keys.append(key)
    for i in range(n - n_src - n_dash):
        ups = tuple(rng.sample(keys[max(0, len(keys) - 400):], k=min(len(keys), rng.randint(1, 3))))
        key = f"m{i}"
        nodes.append(AssetNode(key, role="dbt_model", upstream=ups, group=f"g{i % 20}"))
        keys.append(key)
    for i in range(n_dash):
        ups = tuple(rng.sample(keys[-2000:], k=3))
        nodes.append(AssetNode(f"dashboard/d{i}", role="dashboard", upstream=ups, group="dashboards"))
    return AssetGraph(nodes)


def write_policies(path: Path) -> None:
    lines = ["policies:"]
    for p in range(10):
        tz = "America/New_York" if p % 2 else "UTC"
        lines += [f"  - name: p{p}", f"    select: [{{key: \"dashboard/d{p}*\"}}]",
                  f"    deadline: {{cron: \"0 {5 + p % 4} * * *\", timezone: {tz}, window: 12h}}",
                  "    budget: {per_day: 50}"]
    path.write_text("\n".join(lines) + "\n")


def run(n: int) -> None:
    rng = random.Random(n)
    graph = make_graph(n, rng)
    tmp = Path(tempfile.mkdtemp())
    write_policies(tmp / "p.yaml")
    now = datetime.now(UTC)
    history = {k: [rng.uniform(30, 900) for _ in range(10)] for k in graph.keys}
    durations = DurationModel(history)
    t0 = time.perf_counter()
    res = resolve(load_policies([tmp]), graph, durations, now)
    assert res.ok, res.errors
    (tmp / "home").mkdir()
    with dg.DagsterInstance.local_temp(str(tmp / "home")) as instance:
        for key in graph.keys:
            instance.report_runless_asset_event(dg.AssetMaterialization(dg.AssetKey.from_user_string(key)))
        for i in range(200):
            keys = frozenset(dg.AssetKey.from_user_string(k) for k in rng.sample(graph.keys, 5))
            status = dg.DagsterRunStatus.STARTED if i % 20 == 0 else dg.DagsterRunStatus.SUCCESS
            instance.add_run(dg.DagsterRun(job_name="bench", run_id=f"run-{i}", status=status, asset_selection=keys))
        setup = time.perf_counter() - t0
        failures = [FailureRecord(f"f{i}", now - timedelta(minutes=i), "HTTP 429 Too Many Requests", "fivetran",
                                  connector=f"fivetran:c{i}") for i in range(20)]
        costs = [CostRecord(now - timedelta(hours=rng.uniform(0, 24 * 20)), rng.uniform(0, 2), "run",
                            asset_key=rng.choice(graph.keys)) for _ in range(n)]

        def tick():
            t1 = time.perf_counter()
            snap = build_snapshot(instance, graph, now=now)
            t2 = time.perf_counter()
            snap.durations = history
            snap.failures += failures
            snap.costs = costs
            a = assess(snap, res, durations, now=now)
            t3 = time.perf_counter()
            return a, t2 - t1, t3 - t2

        snapshot_module._USER_KEY.clear()  # cold: no asset keys converted yet in this process
        snapshot_module._DB_KEY.clear()
        a, snap_s, assess_s = tick()
        _, w_snap, w_assess = tick()
        tracemalloc.start()
        _, t_snap, t_assess = tick()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    statuses: dict[str, int] = {}
    for f in a.freshness.values():
        statuses[f.status.value] = statuses.get(f.status.value, 0) + 1
    print(f"{n:>6} assets  setup {setup:6.1f} s | tick {snap_s + assess_s:5.2f} s (snapshot {snap_s:5.2f} s, "
          f"assess {assess_s:5.2f} s)  warm {w_snap + w_assess:5.2f} s  peak {peak / 2**20:6.1f} MiB "
          f"(traced {t_snap + t_assess:5.2f} s) | {len(a.freshness)} assessed {statuses}, {len(a.cost)} cost "
          f"scopes, {len(a.failures)} failures")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    for n in parser.parse_args().sizes:
        run(n)


if __name__ == "__main__":
    main()
