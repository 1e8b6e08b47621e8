"""Random worlds with degradation precursors and known maintenance windows: where the early
warning (``orchestrator.health.early``) should pay, drawn rather than hand-picked.

``precursor_world(seed, out_dir)`` writes one scenario and its policies (``numpy`` seeded by
``seed``: the same seed writes the same files):

* 2-4 connectors (Fivetran/Airbyte) with sparse own schedules (every 3-12 h), 1-2 tables each,
  syncs of 8-30 min; a staging model per table, a mart per connector, a dashboard per mart and
  sometimes one over two marts; 1-3 warehouse slots;
* a daily deadline per dashboard (04:00-10:00 UTC, window 3-6 h), ``auto`` rollout with
  ``retry``, ``materialize`` and ``resync_table`` pre-authorised;
* on 1-3 connectors an event drawn from:
  - ``maintenance``: an announced window of 1-4 h inside a deadline's window;
  - ``outage``: rising warnings (``precursors: warning_rate``) for the 10 syncs from 8 h before
    a ``source_unavailable`` outage of 1-3 h inside a deadline's window;
  - ``creep``: ``latency_creep`` x1.3-1.6 a sync from 12 h before a deadline (capped x4-8);
  - ``decoy``: rising warnings with nothing after them (what an early warning costs when wrong);
* a team's first baseline: one dbt job at a fixed hour.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import yaml

UTC = timezone.utc
SCHEDULES = ("30 */3 * * *", "0 */4 * * *", "0 */6 * * *", "15 */8 * * *", "0 */12 * * *")
EVENTS = ("maintenance", "outage", "creep", "decoy")


def _hhmm(t: datetime) -> str:
    return f"{t.hour:02d}:{t.minute:02d}"


OFF_PEAK = {"days": "daily", "start": "00:00", "end": "03:00"}


def precursor_world_spec(seed: int, *, off_peak: bool = False) -> tuple[dict, dict, list[dict]]:
    """(scenario, policies, events) as plain data. ``off_peak``: every policy also declares an
    off-peak window (``OFF_PEAK``, 00:00-03:00 UTC), where the early warning may move an at-risk
    connector's next sync (the same draws otherwise: the same world)."""
    rng = np.random.default_rng([seed, 1818])
    start = datetime(2026, 3, 2, 18, tzinfo=UTC) + timedelta(days=int(rng.integers(0, 200)))
    conns, assets, marts = [], [], []
    for i in range(int(rng.integers(2, 5))):
        kind = "fivetran" if rng.random() < 0.6 else "airbyte"
        cid = f"{kind}:s{seed}c{i}"
        tables = [f"s{seed}c{i}/t{j}" for j in range(int(rng.integers(1, 3)))]
        conns.append({"id": cid, "source": f"src{i}", "tables": tables,
                      "schedule": str(rng.choice(SCHEDULES)),
                      "duration": {"median": f"{int(rng.integers(8, 31))}m", "sigma": 0.15}})
        stgs = []
        for t in tables:
            k = "stg_" + t.replace("/", "_")
            assets.append({"key": k, "upstream": [t], "duration": {"median": f"{int(rng.integers(3, 9))}m", "sigma": 0.2}})
            stgs.append(k)
        mart = f"mart_s{seed}c{i}"
        assets.append({"key": mart, "upstream": stgs, "duration": {"median": f"{int(rng.integers(5, 16))}m", "sigma": 0.2}})
        marts.append((mart, cid))
    dashboards = [(f"dashboard/s{seed}d{i}", [m]) for i, (m, _) in enumerate(marts)]
    if len(marts) >= 2 and rng.random() < 0.5:
        pick = sorted(rng.choice(len(marts), size=2, replace=False).tolist())
        dashboards.append((f"dashboard/s{seed}dx", [marts[j][0] for j in pick]))
    policies, deadlines = [], {}
    for d, ups in dashboards:
        hour, window = int(rng.integers(4, 11)), int(rng.integers(3, 7))
        assets.append({"key": d, "role": "dashboard", "upstream": ups})
        policies.append({"name": d.split("/")[1], "select": [{"key": d}],
                         "deadline": {"cron": f"0 {hour} * * *", "timezone": "UTC", "window": f"{window}h"},
                         "tier": "critical", "rollout": "auto", "auto_approve": ["retry", "materialize", "resync_table"]})
        if off_peak:
            policies[-1]["windows"] = {"off_peak": [dict(OFF_PEAK)]}
        deadlines[d] = (hour, window)
    # events on 1-3 connectors, timed against a deadline that reads them
    events, precursors, maintenance, faults = [], [], [], []
    day1 = (start + timedelta(days=1)).replace(hour=0, minute=0)
    for ci in rng.choice(len(conns), size=min(len(conns), int(rng.integers(1, 4))), replace=False).tolist():
        cid = conns[ci]["id"]
        mart = marts[ci][0]
        ds = [d for d, ups in dashboards if mart in ups]
        hour, window = deadlines[ds[0]]
        deadline = day1 + timedelta(hours=hour)
        opens = deadline - timedelta(hours=window)
        ev = str(rng.choice(EVENTS))
        if ev == "maintenance":
            at = opens + timedelta(minutes=int(rng.integers(20, max(21, window * 60 - 30))))
            lasts = int(rng.integers(60, 241))
            maintenance.append({"targets": [cid], "at": _hhmm(at), "day": 1, "lasts": f"{lasts}m"})
            events.append({"kind": ev, "connector": cid, "at": at.isoformat(), "lasts_min": lasts})
        elif ev in ("outage", "decoy"):
            at = opens + timedelta(minutes=int(rng.integers(20, max(21, window * 60 - 20))))
            warn_from = at - timedelta(hours=8)
            precursors.append({"kind": "warning_rate", "targets": [cid], "at": _hhmm(warn_from), "loads": 10,
                               "warnings": int(rng.integers(1, 4))})
            if ev == "outage":
                lasts = int(rng.integers(60, 181))
                faults.append({"name": f"outage-{ci}", "category": "source_unavailable", "targets": [cid],
                               "at": [_hhmm(at)], "lasts": f"{lasts}m"})
                events.append({"kind": ev, "connector": cid, "at": at.isoformat(), "lasts_min": lasts})
            else:
                events.append({"kind": ev, "connector": cid, "at": warn_from.isoformat()})
        else:
            at = deadline - timedelta(hours=12)
            precursors.append({"kind": "latency_creep", "targets": [cid], "at": _hhmm(at), "loads": 10,
                               "factor": round(float(rng.uniform(1.3, 1.6)), 2),
                               "max_factor": round(float(rng.uniform(4, 8)), 1)})
            events.append({"kind": ev, "connector": cid, "at": at.isoformat()})
    spec = {
        "name": f"precursors-{seed}",
        "description": "generated: " + ", ".join(f"{e['kind']} on {e['connector']}" for e in events),
        "start": start.isoformat(), "horizon": "20h", "policies": ["policies.yaml"],
        "graph": {"connectors": conns, "assets": assets},
        "capacity": {"warehouse_slots": int(rng.integers(1, 4)), "per_source": 1},
        "baseline": {"jobs": [{"name": "dbt_build", "cron": f"0 {int(rng.integers(1, 5))} * * *"}],
                     "retry": {"max_retries": 2, "delay": "60s", "backoff": "exponential"}},
        "approvals": {"delay": "45m"},
        "faults": faults, "precursors": precursors, "maintenance": maintenance,
    }
    return spec, {"policies": policies}, events


def precursor_world(seed: int, out_dir: Path, *, off_peak: bool = False) -> tuple[Path, list[dict]]:
    spec, policies, events = precursor_world_spec(seed, off_peak=off_peak)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "policies.yaml").write_text(yaml.safe_dump(policies, sort_keys=False))
    path = out_dir / f"precursors-{seed}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path, events
