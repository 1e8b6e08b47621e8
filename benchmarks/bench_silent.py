"""Silent failures: detection before the first dependent deadline, false alarms on normal
seasonal data, and dashboards on anomalous loads held or flagged.

    .venv/bin/python benchmarks/bench_silent.py [--worlds 20] [--seed 0] [--json] [--quiet-tables N]

Each world: 2-4 connectors (1-5 tables each; hourly to 6-hourly syncs; volumes with weekday/
weekend, daily-curve and month-end patterns, lognormal or Poisson noise; quiet tables included),
a staging model per table, a mart per connector, 2-3 dashboards over 1-2 marts with a daily
deadline policy (random hour, 12 h window), 42 days of history, then 7 evaluated days.

* false alarms: every load of the 7 days of the *normal* world is checked, per table and per sync
  (``detect_sync``: the connector's tables together); a connector-day with any anomaly (any kind,
  WARN or ERROR) is a false alarm;
* detection: the same world with one silent failure (zero rows, partial volume 2-30%, stuck
  cursor) on 1-3 consecutive syncs of one connector, hitting some of its tables; detected when a
  hit load is flagged untrusted (zero_rows / volume_drop / stuck_cursor; by its table's tests or
  the sync-level one) within a minute of
  landing (the health sensor's interval) and before the first deadline of a dashboard built on
  a hit table after the load landed;
* held or flagged: at that deadline (minus a minute), every dashboard whose data includes a hit
  table whose latest load is the faulty one, assessed by the decision core with the detectors'
  verdicts in ``Snapshot.anomalous_loads``: held (not fresh: needs a run, at risk or breached) or
  flagged (``data_held_by`` / reason names the untrusted load).

``--quiet-tables N``: the count tests' calibration instead -- N quiet tables (Poisson counts,
random seasonal profiles and schedules) of normal data, 7 evaluated days each: the share of
table-days whose smallest single-load / run p-value (where the ratio condition holds) falls
under a few thresholds, and the share with an untrusted verdict at the configured ones.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import zlib
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orchestrator.assessment import assess  # noqa: E402
from orchestrator.core.graph import CONNECTOR_TABLE, DASHBOARD, DBT_MODEL, AssetGraph, AssetNode  # noqa: E402
from orchestrator.core.records import Snapshot  # noqa: E402
from orchestrator.health.detect import TableSeries, detect_sync, verdicts  # noqa: E402
from orchestrator.health.hold import holds_from_verdicts  # noqa: E402
from orchestrator.health.synth import SILENT_KINDS, SilentFault, expected_rows, generate, random_connector  # noqa: E402
from orchestrator.policies import DurationModel, resolve  # noqa: E402
from orchestrator.policies.model import load_policies_from_text  # noqa: E402

UTC = timezone.utc
WARM_DAYS, EVAL_DAYS = 42, 7
SENSOR_S = 60


def world(seed: int):
    rng = np.random.default_rng(seed)
    conns = [random_connector(rng, f"fivetran:w{seed}c{i}") for i in range(int(rng.integers(2, 5)))]
    nodes, marts = [], []
    for c in conns:
        stgs = []
        for t in c.tables:
            nodes.append(AssetNode(t, CONNECTOR_TABLE, kinds=frozenset({"fivetran"}), connector=c.connector))
            stg = f"stg_{t.replace('/', '_')}"
            nodes.append(AssetNode(stg, DBT_MODEL, upstream=(t,)))
            stgs.append(stg)
        mart = f"mart_{c.connector.split(':')[1]}"
        nodes.append(AssetNode(mart, DBT_MODEL, upstream=tuple(stgs)))
        marts.append(mart)
    policies, dashboards = [], []
    for i in range(int(rng.integers(2, 4))):
        ups = tuple(sorted(set(rng.choice(marts, size=min(len(marts), int(rng.integers(1, 3))), replace=False))))
        d = f"dashboard/w{seed}d{i}"
        nodes.append(AssetNode(d, DASHBOARD, upstream=ups))
        dashboards.append(d)
        policies.append(f'  - name: p{i}\n    select: [{{key: "{d}"}}]\n'
                        f'    deadline: {{cron: "0 {int(rng.integers(5, 20))} * * *", timezone: UTC, window: 12h}}\n'
                        f'    tier: high\n    owners: [team:data]\n')
    graph = AssetGraph(nodes)
    start = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=int(rng.integers(0, 300)))
    return rng, conns, graph, "policies:\n" + "".join(policies), dashboards, start


def snapshot_at(graph: AssetGraph, signals, t: datetime, holds) -> Snapshot:
    latest: dict[str, tuple[datetime, datetime]] = {}
    for s in signals:
        if s.ended_at <= t and s.succeeded:
            cur = latest.get(s.table)
            if cur is None or s.started_at > cur[0]:
                latest[s.table] = (s.started_at, s.ended_at)
    dts, last = {}, {}
    for k in graph.topological_order():
        node = graph.get(k)
        if node.role == CONNECTOR_TABLE:
            if k in latest:
                dts[k], last[k] = latest[k]
        else:  # rebuilt right after its inputs landed: the worst case, built on whatever landed
            ps = [dts[p] for p in graph.parents(k) if p in dts]
            if ps:
                dts[k], last[k] = min(ps), t - timedelta(minutes=1)
    return Snapshot(taken_at=t, graph=graph, last_success=last, data_time=dts, anomalous_loads=holds)


def run(n_worlds: int, seed0: int) -> dict:
    fa_days = days = 0
    alarms: Counter = Counter()
    quiet_alarms: Counter = Counter()  # of which on quiet tables (<= 30 rows expected)
    injected = detected = injected_visible = detected_visible = 0
    dash_total = dash_held = 0
    missed: Counter = Counter()
    misses: list[dict] = []
    for w in range(seed0, seed0 + n_worlds):
        rng, conns, graph, ptext, dashboards, start = world(w)
        warm, end = start + timedelta(days=WARM_DAYS), start + timedelta(days=WARM_DAYS + EVAL_DAYS)
        # -- normal data: false alarms per connector-day --------------------------------------
        for c in conns:
            h = generate(c, start, end, np.random.default_rng([w, 1, zlib.crc32(c.connector.encode()) % 10_000]))
            flagged = set()
            all_series = {table: TableSeries([s for s in h.signals if s.table == table]) for table in c.tables}
            for table, se in all_series.items():
                for s in se.all:
                    if s.started_at >= warm:
                        found = se.detect(s)
                        if found:
                            flagged.add(s.started_at.date())
                            alarms.update(a.kind for a in found)
                            quiet_alarms.update(a.kind for a in found if a.kind in ("zero_rows", "volume_drop")
                                                and a.expected is not None and a.expected <= 30)
            # the sync-level test (a connector's tables together)
            for sid, st in {s.sync_id: s.started_at for s in h.signals if s.started_at >= warm}.items():
                found = detect_sync(all_series, sid)
                if found:
                    flagged.add(st.date())
                    alarms.update(f"sync:{a.kind}" for a in found[:1])
            fa_days += len(flagged)
            days += EVAL_DAYS
        # -- one silent failure ---------------------------------------------------------------
        c = conns[int(rng.integers(0, len(conns)))]
        kind = SILENT_KINDS[w % len(SILENT_KINDS)]
        tables = tuple(t for t in c.tables if rng.random() < 0.6) or (list(c.tables)[0],)
        at = warm + timedelta(hours=float(rng.uniform(0, 24 * (EVAL_DAYS - 2))))
        fault = SilentFault(kind=kind, connector=c.connector, start=at, loads=int(rng.integers(1, 4)),
                            tables=tables, share=float(rng.uniform(0.02, 0.3)))
        h = generate(c, start, end, np.random.default_rng([w, 1, zlib.crc32(c.connector.encode()) % 10_000]), [fault])
        hit = sorted({sid for (_, sid) in h.faulty}, key=lambda x: int(x.split("#")[1]))
        if not hit:
            continue
        first = min((s for s in h.signals if s.sync_id == hit[0]), key=lambda s: s.ended_at)
        # the first deadline of a dashboard on a hit table after the load landed
        pol = {p.name: p for p in load_policies_from_text(ptext).policies}
        deps = [d for d in dashboards if set(tables) & graph.upstream_closure(d)]
        ticks = [pol[f"p{dashboards.index(d)}"].schedule().next_tick(first.ended_at).astimezone(UTC) for d in deps]
        deadline = min(ticks) if ticks else end
        series = {t: TableSeries([s for s in h.signals if s.table == t]) for t in c.tables}
        found_at = None
        for s in sorted((s for s in h.signals if (s.table, s.sync_id) in h.faulty), key=lambda s: s.ended_at):
            if any(a.untrusted for a in series[s.table].detect(s)) or any(
                    a.untrusted and a.table == s.table for a in detect_sync(series, s.sync_id)):
                found_at = s.ended_at + timedelta(seconds=SENSOR_S)
                break
        visible = any(expected_rows(c.tables[t], first.started_at) >= 20 for t in tables)
        injected += 1
        injected_visible += visible
        ok = found_at is not None and found_at <= deadline
        detected += ok
        detected_visible += ok and visible
        if not ok:
            missed[kind] += 1
            misses.append({"world": w, "kind": kind, "loads": fault.loads,
                           "found_at": found_at and found_at.isoformat(), "deadline": deadline.isoformat(),
                           "hit": [(s.table, s.sync_id, s.started_at.isoformat(), s.rows,
                                    round(expected_rows(c.tables[s.table], s.started_at), 1))
                                   for s in h.signals if (s.table, s.sync_id) in h.faulty]})
        # -- dashboards on the anomalous load at the deadline ---------------------------------
        t = deadline - timedelta(minutes=1)
        sigs_t = [s for s in h.signals if s.ended_at <= t]
        holds = holds_from_verdicts(verdicts([s for s in sigs_t if s.connector == c.connector]))
        latest_bad = set()
        for table in tables:
            mine = [s for s in sigs_t if s.table == table and s.succeeded]
            if mine and (table, mine[-1].sync_id) in h.faulty:
                latest_bad.add(table)
        if latest_bad:
            res = resolve(load_policies_from_text(ptext), graph, DurationModel(), t)
            a = assess(snapshot_at(graph, h.signals, t, holds), res, now=t)
            for d in dashboards:
                if latest_bad & graph.upstream_closure(d):
                    dash_total += 1
                    fa = a.freshness.get(d)
                    held = fa is not None and (not fa.reason.startswith("fresh") or "untrusted load" in fa.reason)
                    dash_held += held
                    if not held:
                        misses.append({"world": w, "kind": kind, "dashboard": d, "reason": fa and fa.reason,
                                       "latest_bad": sorted(latest_bad), "holds": sorted(holds)})
    return {
        "worlds": n_worlds,
        "false_alarm_rate_per_connector_day": fa_days / days if days else 0.0,
        "connector_days": days, "alarms_on_normal_data": dict(alarms),
        "of_which_on_quiet_tables": dict(quiet_alarms),
        "injected": injected, "detected_before_deadline": detected,
        "detection_rate": detected / injected if injected else 0.0,
        "injected_on_tables_with_volume": injected_visible,
        "detection_rate_on_tables_with_volume": detected_visible / injected_visible if injected_visible else 0.0,
        "missed_by_kind": dict(missed),
        "dashboards_on_anomalous_loads": dash_total, "held_or_flagged": dash_held,
        "held_or_flagged_share": dash_held / dash_total if dash_total else 1.0,
        "misses": misses,
    }


def quiet_calibration(n_tables: int, seed0: int) -> dict:
    from dataclasses import replace

    from orchestrator.health.detect import DetectorConfig
    from orchestrator.health.synth import random_table

    cfg = DetectorConfig()
    single, runs, flagged = [], [], 0
    for sd in range(seed0, seed0 + n_tables):
        rng = np.random.default_rng(sd)
        c = random_connector(rng, "fivetran:q", n_tables=1)
        t = random_table(rng)
        while not t.counts:
            t = random_table(rng)
        c = replace(c, tables={"q/t": t})
        start = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=int(rng.integers(0, 300)))
        se = TableSeries(generate(c, start, start + timedelta(days=WARM_DAYS + EVAL_DAYS), rng).signals, cfg)
        warm = start + timedelta(days=WARM_DAYS)
        days: dict = {}
        for s in se.all:
            if s.started_at < warm:
                continue
            end = se.index_before(s.started_at)
            e = se.expectation(s.started_at, end)
            if e is None:
                continue
            ps = pr = 1.0
            if (s.rows + 1) / (e.mean + 1) < cfg.drop_ratio:
                ps = e.tail(s.rows)
            if s.rows <= e.mean:  # a run's last load need only be under its own mean
                for _, p, got, mean, _ in se.run_tails(s, end, e):
                    if (got + 1) / (mean + 1) < cfg.drop_ratio:
                        pr = min(pr, p)
            d = days.setdefault(s.started_at.date(), [1.0, 1.0, False])
            d[0], d[1] = min(d[0], ps), min(d[1], pr)
            d[2] = d[2] or any(a.untrusted for a in se.detect(s))
        for a, b, f in days.values():
            single.append(a)
            runs.append(b)
            flagged += f
    single_a, runs_a = np.array(single), np.array(runs)
    return {"quiet_table_days": int(single_a.size),
            "untrusted_per_table_day": flagged / max(1, single_a.size),
            "p_below": {f"{th:g}": {"single": float(np.mean(single_a < th)), "run": float(np.mean(runs_a < th))}
                        for th in (1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3)},
            "count_p": cfg.count_p, "run_p": cfg.run_p}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--worlds", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--quiet-tables", type=int, default=0, help="the count tests' calibration on N quiet tables")
    args = ap.parse_args()
    if args.quiet_tables:
        q = quiet_calibration(args.quiet_tables, args.seed)
        print(f"{q['quiet_table_days']} quiet table-days of normal data: untrusted verdicts on "
              f"{q['untrusted_per_table_day']:.2%} of them (count_p {q['count_p']:g}, run_p {q['run_p']:g})")
        for th, v in q["p_below"].items():
            print(f"  smallest p < {th}: single load {v['single']:.2%}, run of loads {v['run']:.2%} of table-days")
        if args.json:
            print(json.dumps(q))
        return
    t0 = time.perf_counter()
    r = run(args.worlds, args.seed)
    r["seconds"] = round(time.perf_counter() - t0, 1)
    print(f"worlds {r['worlds']}, {r['connector_days']} connector-days of normal data ({r['seconds']} s)")
    print(f"false alarms per connector-day: {r['false_alarm_rate_per_connector_day']:.2%} (target < 2%) "
          f"{r['alarms_on_normal_data']}; on quiet tables {r['of_which_on_quiet_tables']}")
    print(f"silent failures detected before the first dependent deadline: {r['detected_before_deadline']}/"
          f"{r['injected']} = {r['detection_rate']:.1%} (target >= 95%); on tables landing >= 20 rows a load: "
          f"{r['detection_rate_on_tables_with_volume']:.1%} of {r['injected_on_tables_with_volume']}; "
          f"missed {r['missed_by_kind']}")
    print(f"dashboards on anomalous loads held or flagged: {r['held_or_flagged']}/"
          f"{r['dashboards_on_anomalous_loads']} = {r['held_or_flagged_share']:.0%} (target 100%)")
    for m in r["misses"]:
        print("  miss:", m)
    if args.json:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
