"""One sensor tick (instance snapshot -> assess) over generated graphs with 30 days of history.

    .venv/bin/python benchmarks/bench_sensors.py [--sizes 10000 100000] [--days 30] [--postgres URL]

For each size: a layered graph (25% connector tables, 70% dbt models with 1-3 upstreams, 5%
dashboards), 10 policies with daily deadlines (UTC and New York) over the dashboards, and a Dagster
instance (SQLite, or PostgreSQL with ``--postgres``) holding ``--days`` days of history: one
materialization of every asset per day, 200 recent runs (some in flight), 20 failures.

The history is bulk-loaded: one real materialization is stored through Dagster, and its serialized
event is replicated (asset key and timestamp substituted) into the event log's index table with
batched SQL inserts, with the asset_keys rows Dagster keeps; storing events one by one costs
9-18 ms each and cannot reach 100,000 assets x 30 days. The load and the ticks run in separate
processes, so the tick's RSS is its own. Per size:

* ``cold``: the first tick in the process (lazy imports, empty key caches);
* ``warm``: the median of the next ticks on the same instance (what a long-lived code server sees),
  snapshot read and assessment separately;
* ``rss``: the tick process's peak resident memory (targets at 100,000 assets: warm <= 2 s,
  <= 300 MiB, on PostgreSQL).

Then the growth exponent of warm time and RSS between consecutive sizes.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import dagster as dg  # noqa: E402

from orchestrator.assessment import assess  # noqa: E402
from orchestrator.core.graph import AssetGraph, AssetNode  # noqa: E402
from orchestrator.core.records import FailureRecord  # noqa: E402
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


TEMPLATE_KEY = ["bench_template", "__KEY__"]


def bulk_load_history(instance, graph: AssetGraph, days: int, now: datetime, rng: random.Random,
                      batch: int = 20_000) -> int:
    """``days`` daily materializations of every asset, written in batches straight into the event
    log's index table (what Dagster's own store_event writes there, one real event as template)."""
    import json

    import sqlalchemy as db
    from dagster._core.storage.event_log.schema import AssetKeyTable, SqlEventLogStorageTable as E

    storage = instance.event_log_storage
    template_key = dg.AssetKey(TEMPLATE_KEY)
    instance.report_runless_asset_event(dg.AssetMaterialization(template_key))
    with storage.index_connection() as conn:
        row = conn.execute(db.select(E.c.event, E.c.timestamp).where(E.c.asset_key == template_key.to_string())).first()
        conn.execute(E.delete().where(E.c.asset_key == template_key.to_string()))
        conn.execute(AssetKeyTable.delete().where(AssetKeyTable.c.asset_key == template_key.to_string()))
    event_json = row[0]
    ts_text = json.dumps(json.loads(event_json)["timestamp"])
    path_text = json.dumps(TEMPLATE_KEY)
    assert ts_text in event_json and path_text in event_json
    head, rest = event_json.split(path_text, 1)
    mid, tail = rest.split(f'"timestamp": {ts_text}', 1)

    keys = list(graph.keys)
    db_keys = {k: dg.AssetKey.from_user_string(k).to_string() for k in keys}
    paths = {k: json.dumps(dg.AssetKey.from_user_string(k).path) for k in keys}
    offsets = {k: rng.uniform(0, 20 * 3600) for k in keys}  # each asset's time of day
    start = (now - timedelta(days=days)).replace(hour=0, minute=0, second=0, microsecond=0)
    written = 0
    last: dict[str, datetime] = {}
    with storage.index_connection() as conn:
        if conn.dialect.name == "postgresql":
            return _copy_history(conn, keys, days, start, now, offsets, head, mid, tail, paths, db_keys)
        rows = []
        for day in range(days + 1):
            for k in sorted(keys, key=offsets.__getitem__):
                at = start + timedelta(days=day, seconds=offsets[k])
                if at >= now:
                    continue
                naive = at.astimezone(UTC).replace(tzinfo=None)
                rows.append({"run_id": "", "event": f'{head}{paths[k]}{mid}"timestamp": {at.timestamp()!r}{tail}',
                             "dagster_event_type": "ASSET_MATERIALIZATION", "timestamp": naive,
                             "step_key": None, "asset_key": db_keys[k], "partition": None})
                last[k] = naive
                if len(rows) >= batch:
                    conn.execute(E.insert(), rows)
                    written += len(rows)
                    rows = []
        if rows:
            conn.execute(E.insert(), rows)
            written += len(rows)
        key_rows = [{"asset_key": db_keys[k], "last_materialization_timestamp": ts, "last_run_id": ""}
                    for k, ts in last.items()]
        for i in range(0, len(key_rows), batch):
            conn.execute(AssetKeyTable.insert(), key_rows[i:i + batch])
    return written


def _copy_text(value) -> str:
    if value is None:
        return "\\N"
    text = value.isoformat(sep=" ") if isinstance(value, datetime) else str(value)
    return (text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r"))


def _copy(raw, table: str, columns: str, rows, chunk: int = 50_000) -> None:
    """COPY rows into a table through the driver under SQLAlchemy (psycopg2's copy_expert, or
    psycopg 3's copy), in chunks of text-format lines."""
    import io

    sql = f"COPY {table} ({columns}) FROM STDIN"
    with raw.cursor() as cur:
        if hasattr(cur, "copy_expert"):  # psycopg2
            buf: list[str] = []
            for row in rows:
                buf.append("\t".join(map(_copy_text, row)))
                if len(buf) >= chunk:
                    cur.copy_expert(sql, io.StringIO("\n".join(buf) + "\n"))
                    buf = []
            if buf:
                cur.copy_expert(sql, io.StringIO("\n".join(buf) + "\n"))
        else:  # psycopg 3
            with cur.copy(sql) as copy:
                for row in rows:
                    copy.write_row(row)


def _copy_history(conn, keys, days, start, now, offsets, head, mid, tail, paths, db_keys) -> int:
    """PostgreSQL: the replicated events streamed with COPY, far faster than batched INSERTs,
    then the asset_keys rows Dagster's latest-materialization queries read."""
    raw = conn.connection.driver_connection
    last: dict[str, datetime] = {}
    order = sorted(keys, key=offsets.__getitem__)
    written = 0

    def events():
        nonlocal written
        for day in range(days + 1):
            for k in order:
                at = start + timedelta(days=day, seconds=offsets[k])
                if at >= now:
                    continue
                naive = at.astimezone(UTC).replace(tzinfo=None)
                last[k] = naive
                written += 1
                yield ("", f'{head}{paths[k]}{mid}"timestamp": {at.timestamp()!r}{tail}',
                       "ASSET_MATERIALIZATION", naive, None, db_keys[k], None)

    _copy(raw, "event_logs", "run_id, event, dagster_event_type, timestamp, step_key, asset_key, partition", events())
    _copy(raw, "asset_keys", "asset_key, last_materialization_timestamp, last_run_id",
          ((db_keys[k], ts, "") for k, ts in last.items()))
    with raw.cursor() as cur:
        cur.execute("ANALYZE event_logs")
        cur.execute("ANALYZE asset_keys")
    raw.commit()
    return written


def _write_instance_yaml(home: Path, postgres: str | None) -> None:
    home.mkdir(parents=True, exist_ok=True)
    if postgres:
        storage = f"storage:\n  postgres:\n    postgres_url: {postgres}\n"
    else:
        storage = f"storage:\n  sqlite:\n    base_dir: {home / 'storage'}\n"
    (home / "dagster.yaml").write_text(storage + "telemetry:\n  enabled: false\n")


def load(n: int, days: int, home: Path, postgres: str | None) -> None:
    rng = random.Random(n)
    graph = make_graph(n, rng)
    now = datetime.now(UTC)
    _write_instance_yaml(home, postgres)
    t0 = time.perf_counter()
    with dg.DagsterInstance.from_config(str(home)) as instance:
        if postgres:
            instance.wipe()
        t_bulk = time.perf_counter()
        written = bulk_load_history(instance, graph, days, now, rng)
        t_bulk = time.perf_counter() - t_bulk
        for i in range(200):
            keys = frozenset(dg.AssetKey.from_user_string(k) for k in rng.sample(graph.keys, 5))
            status = dg.DagsterRunStatus.STARTED if i % 20 == 0 else dg.DagsterRunStatus.SUCCESS
            instance.add_run(dg.DagsterRun(job_name="bench", run_id=f"run-{i}", status=status, asset_selection=keys))
    print(json.dumps({"events": written, "load_s": time.perf_counter() - t0, "bulk_s": t_bulk}))


def _rss_now() -> float:
    """The process's resident memory now (MiB; ``ru_maxrss`` is the peak)."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize() / 2**20


def _rss_and_peak() -> tuple[float, float]:
    """(VmRSS, VmHWM) of this process in MiB: resident now and the high-water mark so far."""
    got = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(("VmRSS:", "VmHWM:")):
                name, value = line.split(":", 1)
                got[name] = int(value.split()[0]) / 1024
    return got["VmRSS"], got["VmHWM"]


class StageMeter:
    """Where the tick process's peak RSS happens. The high-water mark cannot be reset, so it is
    read at every stage boundary (with the resident size then): a stage during which it rose set
    a new peak, and the process's peak is the last stage that raised it. Reading /proc costs
    ~20 us a mark (no tracemalloc, which would change what is measured)."""

    def __init__(self) -> None:
        self.tick = "setup"
        self.marks: list[dict] = []
        self._last_hwm = _rss_and_peak()[1]

    def mark(self, stage: str) -> None:
        rss, hwm = _rss_and_peak()
        self.marks.append({"tick": self.tick, "stage": stage, "rss_mib": round(rss, 1), "hwm_mib": round(hwm, 1),
                           "peak_rise_mib": round(hwm - self._last_hwm, 1)})
        self._last_hwm = hwm

    def wrap(self, owner, name: str, stage: str) -> None:
        """Mark ``stage`` when ``owner.name`` returns (the benchmark's own process only)."""
        inner = getattr(owner, name)

        def measured(*args, **kwargs):
            try:
                return inner(*args, **kwargs)
            finally:
                self.mark(stage)

        setattr(owner, name, measured)

    def peak_stage(self) -> dict | None:
        """The mark at which the process's final high-water mark was reached."""
        rising = [m for m in self.marks if m["peak_rise_mib"] > 0]
        return rising[-1] if rising else None


def print_stages(r: dict) -> None:
    """The per-stage lines: each tick's RSS at its start and end and the stages that raised the
    high-water mark (all stages of the cold, edge and opening ticks)."""
    marks = r.get("stages") or []
    if not marks:
        return
    peak = r.get("peak_stage") or {}
    print(f"         peak {r['rss_mib']:.0f} MiB reached in: {peak.get('tick')} / {peak.get('stage')} "
          f"(+{peak.get('peak_rise_mib', 0):.0f} MiB over the previous high-water mark)", flush=True)
    ticks: dict[str, list[dict]] = {}
    for m in marks:
        ticks.setdefault(m["tick"], []).append(m)
    jump = (r.get("phases", {}).get("opening") or {}).get("pre_opening_jump_h")
    print("         high-water mark at the end of each tick: "
          + ", ".join(f"{t} {ms[-1]['hwm_mib']:.0f}" for t, ms in ticks.items())
          + (f" (the pre-opening tick moves the clock {jump:.1f} h at once"
             + (": a sensor's catch-up after a pause, where a running one steps through the hours' edges, "
                "--walk-hours)" if jump > 1 else ")") if jump is not None else ""),
          flush=True)
    for tick, ms in ticks.items():
        full = tick in ("setup", "cold", "edge", "opening", "pre-opening")
        rose = [m for m in ms if m["peak_rise_mib"] >= 0.5]
        shown = ms if full else rose
        parts = ", ".join(f"{m['stage']} {m['rss_mib']:.0f}" + (f" (peak +{m['peak_rise_mib']:.0f} -> "
                                                                  f"{m['hwm_mib']:.0f})" if m['peak_rise_mib'] >= 0.5
                                                                  else "") for m in shown)
        print(f"         stages {tick:<11} rss after each: {parts or 'no new peak'}"
              + ("" if full else f" | rss {ms[0]['rss_mib']:.0f} -> {ms[-1]['rss_mib']:.0f}"), flush=True)


def next_opening(res, after: datetime) -> tuple[datetime, int, list[str]]:
    """(the instant, its governed assets, its policies): among the window openings of the next day
    (each deadline policy's upcoming ticks minus its window, after ``after``), the one whose
    policies govern the most assets (the earliest of equals): the same opening whatever the
    time of day the benchmark runs at."""
    from collections import Counter

    members = Counter(sla.deadline.policy for sla in res.slas.values() if sla.deadline is not None)
    at: dict[datetime, list[str]] = {}
    for name in members:
        policy = res.policy(name)
        schedule = policy.schedule()
        window = policy.deadline.effective_window(schedule)
        t = schedule.next_tick(after)
        while t - window <= after + timedelta(days=1):
            if t - window > after:
                at.setdefault((t - window).astimezone(UTC), []).append(name)
            t = schedule.next_tick(t)
    best = max(sorted(at), key=lambda o: sum(members[p] for p in at[o]))
    return best, sum(members[p] for p in at[best]), sorted(at[best])


def tick_process(n: int, home: Path, ticks: int, new_per_tick: int = 0, advance_s: float = 0.0,
                 walk_hours: bool = False) -> None:
    """Cold tick, then three phases of ``ticks`` warm ticks each: nothing new and the clock held
    (how the figures before the incremental tick were taken), nothing new with the clock moving
    ``advance_s`` per tick (a real sensor: every needing asset's predicted ready time moves with
    it), and ``new_per_tick`` materializations stored before each tick with the clock moving; then
    one tick with the clock just past the next hour, when the window's edge moves (``edge``), and
    one just past the next day's busiest deadline window opening (``opening``)."""
    from orchestrator.assessment import freshness as freshness_module
    from orchestrator.core import datatime

    from orchestrator import assessment as assessment_module

    meter = StageMeter()
    meter.mark("imports")
    rng = random.Random(n)
    graph = make_graph(n, rng)
    meter.mark("graph")
    tmp = Path(tempfile.mkdtemp())
    write_policies(tmp / "p.yaml")
    now = datetime.now(UTC)
    rss_graph = _rss_now()
    # What a real sensor holds between ticks, nothing more: the code location resolves with the
    # priors (``load_resolution`` passes no history), and each tick builds its ``DurationModel``
    # from that snapshot's durations and drops it, as the sensors do; the snapshot reads no cost
    # records (the cost sensor reads its own). Until this change the benchmark held 10 duration
    # samples per asset and one cost record per asset for the whole process (36 MiB at 100,000
    # as arrays, ~60 MiB before as lists), which no sensor does; only the 20 failures stay.
    failures = [FailureRecord(f"f{i}", now - timedelta(minutes=i), "HTTP 429 Too Many Requests", "fivetran",
                              connector=f"fivetran:c{i}") for i in range(20)]
    all_keys = graph.keys  # AssetGraph.keys builds a list per call: once, not once per tick
    rss_inputs = _rss_now() - rss_graph
    res = resolve(load_policies([tmp]), graph, DurationModel(), now)
    assert res.ok, res.errors
    rss_resolved = _rss_now()
    meter.mark("policies resolved")
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    clock = [now]
    # stage marks inside the snapshot and the assessment (names looked up at call time)
    meter.wrap(snapshot_module, "read_last_success", "snapshot: last successes")
    meter.wrap(snapshot_module.InstanceReader, "runs", "snapshot: runs")
    meter.wrap(snapshot_module.InstanceReader, "materializations", "snapshot: recent materializations")
    meter.wrap(assessment_module, "diagnose_failures", "assess: failures diagnosed")
    meter.wrap(assessment_module, "assess_freshness", "assess: freshness")
    meter.wrap(assessment_module, "assess_cost", "assess: cost")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        meter.mark("instance opened")

        def tick(label: str):
            meter.tick = label
            meter.mark("start")
            at = clock[0]
            c1 = time.process_time()
            t1 = time.perf_counter()
            snap = build_snapshot(instance, graph, now=at)
            t2 = time.perf_counter()
            meter.mark("snapshot done")
            snap.failures += failures
            a = assess(snap, res, DurationModel(snap.durations), now=at)
            t3 = time.perf_counter()
            meter.mark("assess done")
            state = freshness_module._TICK.get("last")
            return {"snap": snap, "a": a, "wall": t3 - t1, "cpu": time.process_time() - c1, "snapshot": t2 - t1,
                    "assess": t3 - t2, "pass": state.computed if state else None,
                    "assessed": state.assessed if state else None, "data_times": datatime._CARRY.recomputed}

        def store_new(count: int) -> None:
            """What happens between two ticks: ``count`` assets materialize (stored through
            Dagster, outside the tick's timing)."""
            for k in rng.sample(all_keys, min(count, len(all_keys))):
                instance.report_runless_asset_event(dg.AssetMaterialization(dg.AssetKey.from_user_string(k)))

        snapshot_module._USER_KEY.clear()  # cold: no asset keys converted yet in this process
        snapshot_module._DB_KEY.clear()
        cold = tick("cold")
        cold.pop("snap"), cold.pop("a")
        meter.mark("results dropped")
        rss_cold = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        gc.collect()  # what the cold tick left behind, its garbage gone
        rss_held = _rss_now()
        meter.mark("gc")
        phases = {}
        for name, count, step in (("held", 0, 0.0), ("clock", 0, advance_s), ("new", new_per_tick, advance_s)):
            got = []
            for i in range(ticks):
                store_new(count)
                clock[0] = clock[0] + timedelta(seconds=step)
                last = None  # a sensor does not hold the last tick's snapshot and assessment
                last = tick(f"{name} {i + 1}")
                got.append({k: v for k, v in last.items() if k not in ("snap", "a")})
            phases[name] = {
                "new_per_tick": count, "advance_s": step,
                "wall_s": statistics.median(g["wall"] for g in got), "cpu_s": statistics.median(g["cpu"] for g in got),
                "snapshot_s": statistics.median(g["snapshot"] for g in got),
                "assess_s": statistics.median(g["assess"] for g in got),
                "pass_assets": last["pass"], "assessed": last["assessed"], "data_times_recomputed": last["data_times"],
            }
        # once an hour the window's edge (read from two days back rounded down to the hour,
        # ``snapshot.HISTORY_EDGE_STEP``) passes an hour: that hour's rows leave together
        clock[0] = snapshot_module.window_edge(clock[0]) + snapshot_module.HISTORY_EDGE_STEP + timedelta(seconds=1)
        # the last warm tick's snapshot and assessment go first, as in the loop above (until this
        # line the edge tick ran with them still held: two assessments of every governed asset)
        last = None
        last = tick("edge")
        phases["edge"] = {
            "new_per_tick": 0, "advance_s": 0.0, "wall_s": last["wall"], "cpu_s": last["cpu"],
            "snapshot_s": last["snapshot"], "assess_s": last["assess"], "pass_assets": last["pass"],
            "assessed": last["assessed"], "data_times_recomputed": last["data_times"], "edge": True,
        }
        a, snap = last["a"], last["snap"]  # the counts below are the edge tick's, as before
        statuses: dict[str, int] = {}
        for f in a.freshness.values():
            statuses[f.status.value] = statuses.get(f.status.value, 0) + 1
        summary = {"governed": len(a.freshness), "materializations": len(snap.materializations),
                   "last_success": len(snap.last_success), "caps_hit": snapshot_module.caps_hit(snap),
                   "statuses": statuses, "failures": len(a.failures)}
        a = snap = last = None
        # once a day per policy a deadline's window opens: every member needing a run stops
        # waiting for the opening (its predicted ready time becomes now + its chain's durations).
        # The opening shared by the most governed assets among the next day's, reached as a sensor
        # reaches it: one untimed tick ``advance_s`` (at least 1 s) before, then the timed tick 1 s
        # after (the openings are on the hour, so the window's edge moves in that tick too).
        opening, members, names = next_opening(res, clock[0])
        if walk_hours:  # as a running sensor gets there: one tick past each hour's edge on the way
            while clock[0] + snapshot_module.HISTORY_EDGE_STEP < opening - timedelta(seconds=max(advance_s, 1.0)):
                clock[0] = clock[0] + snapshot_module.HISTORY_EDGE_STEP
                tick("walk")
        jump = opening - timedelta(seconds=max(advance_s, 1.0)) - clock[0]  # hours in one tick: a catch-up
        clock[0] = opening - timedelta(seconds=max(advance_s, 1.0))
        tick("pre-opening")
        clock[0] = opening + timedelta(seconds=1)
        last = tick("opening")
        phases["opening"] = {
            "new_per_tick": 0, "advance_s": max(advance_s, 1.0), "wall_s": last["wall"], "cpu_s": last["cpu"],
            "snapshot_s": last["snapshot"], "assess_s": last["assess"], "pass_assets": last["pass"],
            "assessed": last["assessed"], "data_times_recomputed": last["data_times"],
            "opening": opening.isoformat(), "opening_policies": names, "opening_members": members,
            "pre_opening_jump_h": jump.total_seconds() / 3600,
        }
    print(json.dumps({
        "assets": n, "cold_s": cold["wall"], "cold_cpu_s": cold["cpu"], "phases": phases,
        "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "rss_after_cold_mib": rss_cold,
        "rss_before_tick_mib": rss_before, "rss_graph_mib": rss_graph, "rss_inputs_mib": rss_inputs,
        "rss_resolved_mib": rss_resolved, "rss_held_after_cold_mib": rss_held, "rss_end_mib": _rss_now(),
        **summary, "stages": meter.marks, "peak_stage": meter.peak_stage(),
    }))


def _child(args: list[str]) -> dict:
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--ticks", type=int, default=3, help="warm ticks (median)")
    parser.add_argument("--new-per-tick", type=int, default=100,
                        help="materializations stored between warm ticks (0: nothing changes between ticks)")
    parser.add_argument("--advance-s", type=float, default=60.0,
                        help="seconds the clock moves between warm ticks in the clock and new phases (default 60)")
    parser.add_argument("--walk-hours", action="store_true",
                        help="reach the window opening by one tick past each hour's edge, as a running sensor "
                             "does, instead of one tick that moves the clock ~a day at once (a catch-up)")
    parser.add_argument("--loaded", action="store_true",
                        help="the instance under --home (and --postgres) is already loaded: tick only")
    parser.add_argument("--postgres", help="postgresql:// URL of an empty database to use instead of SQLite")
    parser.add_argument("--pg", action="store_true",
                        help="start a throwaway local PostgreSQL (Debian's server binaries, as tests/pg_server.py) "
                             "and use it")
    parser.add_argument("--home", type=Path, help="instance directory (default: a temporary one per size)")
    parser.add_argument("--load", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--tick", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        load(args.load, args.days, args.home, args.postgres)
        return
    if args.tick:
        tick_process(args.tick, args.home, args.ticks, args.new_per_tick, args.advance_s, args.walk_hours)
        return
    server = None
    if args.pg:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from pg_server import PgServer

        server = PgServer()
        import signal

        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a timeout still stops the server
    try:
        run(args, server)
    finally:
        if server is not None:
            server.stop()


def run(args, server) -> None:
    backend = "PostgreSQL" if (args.postgres or server) else "SQLite"
    if args.loaded and args.home and "postgres" in next(iter(sorted(args.home.glob("n*/dagster.yaml"))), Path("/dev/null")).read_text():
        backend = "PostgreSQL"
    rows = []
    for n in args.sizes:
        if server is not None:
            args.postgres = server.create_db(f"bench_{n}").replace("postgresql+psycopg://", "postgresql+psycopg2://")
            args.postgres += "?sslmode=disable"
        home = (args.home or Path(tempfile.mkdtemp(prefix="bench_sensors_"))) / f"n{n}"
        if args.loaded:
            loaded = {"events": 0, "load_s": 0.0, "bulk_s": 0.0}
        else:
            loaded = _child(["--load", str(n), "--days", str(args.days), "--home", str(home),
                             *(["--postgres", args.postgres] if args.postgres else [])])
        r = _child(["--tick", str(n), "--home", str(home), "--ticks", str(args.ticks),
                    "--new-per-tick", str(args.new_per_tick), "--advance-s", str(args.advance_s),
                    *(["--walk-hours"] if args.walk_hours else [])])
        r.update(loaded)
        rows.append(r)
        print(f"{n:>7} assets {backend}: {loaded['events']:,} events loaded in {loaded['load_s']:.0f} s "
              f"(bulk {loaded['bulk_s']:.0f} s) | cold {r['cold_s']:5.2f} s ({r['cold_cpu_s']:.2f} s CPU) | "
              f"rss {r['rss_mib']:6.0f} MiB ({r['rss_before_tick_mib']:.0f} before the first tick, "
              f"{r['rss_after_cold_mib']:.0f} after it) | {r['governed']:,} governed, "
              f"{r['materializations']:,} recent materializations, caps hit: {r['caps_hit'] or 'none'}; "
              f"{r['statuses']}, {r['failures']} failures", flush=True)
        if "rss_graph_mib" in r:
            print(f"         rss: {r['rss_graph_mib']:.0f} MiB with the graph, +{r['rss_inputs_mib']:.0f} MiB of the "
                  f"benchmark's own inputs (the 20 failures it adds to each snapshot), "
                  f"{r['rss_resolved_mib']:.0f} resolved, {r['rss_held_after_cold_mib']:.0f} held after the cold "
                  f"tick (gc), {r['rss_end_mib']:.0f} at the end (now, not peak)", flush=True)
        print_stages(r)
        for name, p in r["phases"].items():
            what = ("window edge passing the hour (1 tick an hour)" if p.get("edge") else
                    f"a deadline window opening ({p['opening']}, {', '.join(p['opening_policies'])}: "
                    f"{p['opening_members']:,} governed; 1 tick a day per policy)" if p.get("opening") else
                    f"{p['new_per_tick']:>4} new per tick, clock +{p['advance_s']:>4.0f} s")
            print(f"         warm, {what}: "
                  f"wall {p['wall_s']:5.2f} s, CPU {p['cpu_s']:5.2f} s (snapshot {p['snapshot_s']:5.2f} s, "
                  f"assess {p['assess_s']:5.2f} s wall) | pass computed {p['pass_assets']}, assessments made "
                  f"{p['assessed']}, data times computed {p['data_times_recomputed']}", flush=True)
        if not args.home:
            shutil.rmtree(home.parent, ignore_errors=True)
    for a, b in zip(rows, rows[1:]):
        ratio = math.log(b["assets"] / a["assets"])
        parts = []
        for name in a["phases"]:
            pa, pb = a["phases"][name], b["phases"][name]
            parts.append(f"{name}: CPU {math.log(max(pb['cpu_s'], 1e-3) / max(pa['cpu_s'], 1e-3)) / ratio:.2f}, "
                         f"wall {math.log(max(pb['wall_s'], 1e-3) / max(pa['wall_s'], 1e-3)) / ratio:.2f}")
        print(f"growth exponent {a['assets']} -> {b['assets']} assets: warm tick " + "; ".join(parts)
              + f"; rss {math.log(b['rss_mib'] / a['rss_mib']) / ratio:.2f}")
    print("targets at 100,000 assets on PostgreSQL: warm tick <= 2 s, rss <= 300 MiB")


if __name__ == "__main__":
    main()
