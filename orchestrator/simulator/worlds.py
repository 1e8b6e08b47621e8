"""Random worlds for the benchmark: scenarios nobody wrote to show a feature.

``generate_world(seed, out_dir)`` writes one scenario (and its policy file) drawn from:

* graph: the upstream lineage of random sinks of a real dbt project (the two manifests in
  ``../shared/data``) or a random layered DAG; sources grouped into Fivetran/Airbyte connectors
  with their own sync schedules; dashboards on top of random marts (several over shared models);
* durations: real WfCommons task runtimes (random family and scale) or lognormal;
* deadlines: 1-3 per dashboard policy, in a random time zone, some hourly-ish (several ticks a
  day), some on business days with a holiday calendar, windows from 2 h to 12 h; tiers; rollout
  ``auto`` (most) or ``recommend``; budgets (some binding), off-peak prices, blackout windows;
* capacity contention (1-6 warehouse slots, 1-2 syncs per source);
* faults: rate limits and outages that clear by themselves (some recurring), schema drift,
  failures a person must fix (expired credentials, permissions, code, data quality), random
  per-attempt failures;
* start: any hour, on ordinary days, DST weeks (US and EU) and holidays; horizons of 1-5 days;
  data already stale at the start (1-30 h old);
* the baseline a team would have written first: one or two dbt jobs at a fixed time (in UTC or
  the deadline's zone), retries as Dagster's default-ish RetryPolicy.

Every draw comes from ``numpy.random.default_rng([seed, ...])``: the same seed writes the same
files. The files are ordinary scenarios: ``orchestrator bench --scenario FILE`` replays one.
"""

from __future__ import annotations

import functools
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import yaml

from orchestrator.core.graph import DASHBOARD, DBT_SOURCE, AssetGraph

UTC = timezone.utc
MANIFESTS = ("dbt_manifests/mitodl_ol_dbt.manifest.json.gz", "dbt_manifests/teamster_kipptaf.manifest.json.gz")
ZONES = ("UTC", "America/New_York", "America/Los_Angeles", "Europe/London", "Europe/Berlin", "Asia/Tokyo",
         "Australia/Sydney", "America/Sao_Paulo")
# start dates: ordinary weeks, DST changes (US 2026-03-08 / 11-01, EU 03-29 / 10-25), holidays
SPECIAL_DAYS = ("2026-03-07", "2026-03-08", "2026-03-28", "2026-03-29", "2026-10-24", "2026-10-25",
                "2026-10-31", "2026-11-01", "2026-12-24", "2026-12-31", "2026-07-03", "2026-05-22",
                "2026-11-25", "2026-04-03")
FAMILIES = ("pegasus/montage", "pegasus/epigenomics", "pegasus/1000genome", "pegasus/seismology",
            "makeflow/blast", "pegasus/soykb", "pegasus/cycles")
SELF_CLEARING = ("rate_limit", "source_unavailable", "destination_capacity", "resource_exhausted")
NEEDS_PERSON = ("auth_expired", "permission_denied", "config_error", "code_error", "data_quality")
CONNECTOR_SCHEDULES = ("0 */6 * * *", "0 */4 * * *", "30 */3 * * *", "0 */12 * * *", "15 */8 * * *",
                       "0 * * * *", "45 */2 * * *")
ACTIONS_AUTO = ("retry", "materialize", "resync_table", "backfill", "defer")


@functools.lru_cache(maxsize=2)
def _manifest_graph(path: str) -> AssetGraph:
    return AssetGraph.from_dbt_manifest(path)


def _clock(minutes: int) -> str:
    minutes %= 1440
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _pick(rng, seq, size=None, replace=False):
    idx = rng.choice(len(seq), size=size, replace=replace)
    return [seq[i] for i in np.atleast_1d(idx)] if size is not None else seq[int(idx)]


# -- graph --------------------------------------------------------------------------------------


def _real_lineage(rng, data_dir: Path, target: int) -> tuple[dict[str, list[str]], dict[str, str], list[str]]:
    """(model -> upstream, source -> schema prefix, sink models) from a real manifest."""
    g = _manifest_graph(str(data_dir / _pick(rng, MANIFESTS)))
    sinks = [n.key for n in g if n.role not in (DBT_SOURCE, DASHBOARD) and not any(
        g.node(c).role != DASHBOARD for c in g.children(n.key)) and g.parents(n.key)]
    order = list(rng.permutation(len(sinks)))
    keep: set[str] = set()
    chosen: list[str] = []
    smallest: set[str] | None = None
    for i in order:
        s = sinks[i]
        closure = g.upstream_closure(s, include_self=True)
        closure = {k for k in closure if g.node(k).role != DASHBOARD}
        if smallest is None or len(closure) < len(smallest):
            smallest, smallest_sink = closure, s
        if len(keep | closure) > target * 1.3:
            continue
        keep |= closure
        chosen.append(s)
        if len(keep) >= target or len(chosen) >= 8:
            break
    if not chosen and smallest is not None:
        keep, chosen = smallest, [smallest_sink]
    models: dict[str, list[str]] = {}
    sources: dict[str, str] = {}
    for k in g.topological_order():
        if k not in keep:
            continue
        node = g.node(k)
        if node.role == DBT_SOURCE or not g.parents(k):
            sources[k] = k.split("/", 1)[0] if "/" in k else "raw"
        else:
            models[k] = [p for p in g.parents(k) if p in keep]
    return models, sources, chosen


def _random_lineage(rng, target: int) -> tuple[dict[str, list[str]], dict[str, str], list[str]]:
    n_src = int(rng.integers(3, 10))
    schemas = [f"src{i}" for i in range(int(rng.integers(2, 5)))]
    sources = {f"{schemas[i % len(schemas)]}/t{i}": schemas[i % len(schemas)] for i in range(n_src)}
    layers = [list(sources)]
    models: dict[str, list[str]] = {}
    n_layers = int(rng.integers(2, 5))
    remaining = max(3, target - n_src)
    for li in range(n_layers):
        width = max(1, remaining // (n_layers - li) if li < n_layers - 1 else remaining)
        width = int(max(1, width * rng.uniform(0.6, 1.4)))
        layer = []
        for j in range(width):
            key = f"l{li}/m{j}"
            prev = [k for lay in layers for k in lay]
            fan = int(rng.integers(1, min(4, len(prev)) + 1))
            ups = _pick(rng, layers[-1], size=min(fan, len(layers[-1])))
            if rng.random() < 0.3:
                ups.append(_pick(rng, prev))
            models[key] = sorted(set(ups))
            layer.append(key)
        remaining -= width
        layers.append(layer)
    sinks = [k for k in models if not any(k in ups for ups in models.values())]
    return models, sources, sinks


# -- the world ----------------------------------------------------------------------------------


def world_spec(seed: int, data_dir: Path) -> tuple[dict, dict]:
    """(scenario document, policies document) for world ``seed``."""
    rng = np.random.default_rng([seed, 2026])
    size = int(rng.choice([15, 25, 40, 60, 90], p=[0.2, 0.3, 0.25, 0.15, 0.1]))
    real = rng.random() < 0.7
    models, sources, sinks = (_real_lineage(rng, data_dir, size) if real else _random_lineage(rng, size))

    # connectors: a source schema -> 1..n connectors of <= 8 tables
    connectors = []
    by_schema: dict[str, list[str]] = {}
    for t, schema in sources.items():
        by_schema.setdefault(schema, []).append(t)
    per_source = int(rng.choice([1, 1, 2]))
    for i, (schema, tables) in enumerate(sorted(by_schema.items())):
        kind = "fivetran" if rng.random() < 0.5 else "airbyte"
        for j in range(0, len(tables), 8):
            cid = f"{kind}:{schema.replace('/', '_')}{'' if j == 0 else f'_{j // 8}'}"
            connectors.append({
                "id": cid, "source": f"src_{i % max(1, len(by_schema) // int(rng.integers(1, 3)))}",
                "tables": tables[j:j + 8], "schedule": str(_pick(rng, CONNECTOR_SCHEDULES)),
                "rows_per_hour": float(int(rng.choice([2000, 20000, 100000, 400000]))),
            })

    # dashboards over random sinks (several share upstream models)
    n_dash = int(rng.integers(1, min(5, max(2, len(sinks))) + 1))
    assets = [{"key": k, "upstream": ups} for k, ups in models.items()]
    dashboards = []
    for d in range(n_dash):
        ups = _pick(rng, sinks, size=min(len(sinks), int(rng.integers(1, 3))))
        key = f"dashboard/d{d}"
        assets.append({"key": key, "role": "dashboard", "upstream": sorted(set(ups))})
        dashboards.append(key)

    # start: any hour, ordinary or special days
    if rng.random() < 0.45:
        day = datetime.fromisoformat(str(_pick(rng, SPECIAL_DAYS)))
    else:
        day = datetime(2026, 1, 5) + timedelta(days=int(rng.integers(0, 330)))
    start = day.replace(tzinfo=UTC) + timedelta(hours=int(rng.integers(0, 24)), minutes=int(rng.choice([0, 30])))
    horizon_days = int(rng.choice([1, 2, 3, 4, 5], p=[0.35, 0.25, 0.2, 0.1, 0.1]))

    # policies
    policies = []
    first_deadline_min = None
    main_zone = None
    for i, dash in enumerate(dashboards):
        zone = str(_pick(rng, ZONES))
        main_zone = main_zone or zone
        hour = int(rng.integers(5, 11))
        minute = int(rng.choice([0, 30]))
        style = rng.random()
        if style < 0.2:  # several ticks a day
            hours = sorted({hour, hour + int(rng.integers(3, 7)), hour + int(rng.integers(8, 12))})
            cron = f"{minute} {','.join(str(h % 24) for h in hours)} * * *"
            window_h = float(rng.choice([2, 3, 4]))
        else:
            cron = f"{minute} {hour} * * *"
            window_h = float(rng.choice([3, 4, 6, 8, 10, 12]))
        deadline = {"cron": cron, "timezone": zone, "window": f"{int(window_h * 60)}m"}
        if rng.random() < 0.3:
            deadline["calendar"] = {"weekdays": [0, 1, 2, 3, 4],
                                    "holidays": {"country": str(_pick(rng, ["US", "GB", "DE", "JP"]))}}
        local_min = hour * 60 + minute
        first_deadline_min = local_min if first_deadline_min is None else min(first_deadline_min, local_min)
        tier = str(_pick(rng, ["critical", "high", "standard", "low"]))
        rollout = "auto" if rng.random() < 0.8 else "recommend"
        auto = sorted(set(_pick(rng, ACTIONS_AUTO, size=int(rng.integers(1, len(ACTIONS_AUTO) + 1)))))
        pol = {"name": f"dash-{i}", "select": [{"key": dash}], "deadline": deadline, "tier": tier,
               "owners": [f"team:t{i}"], "rollout": rollout, "auto_approve": auto}
        windows = {}
        if rng.random() < 0.5:
            s = int(rng.integers(18, 24)) * 60
            windows["off_peak"] = [{"days": "daily", "start": _clock(s), "end": _clock(s + int(rng.integers(6, 11)) * 60),
                                    "timezone": zone}]
        if rng.random() < 0.3:
            s = int(rng.integers(0, 24)) * 60
            windows["blackout"] = [{"days": "daily", "start": _clock(s), "end": _clock(s + int(rng.choice([30, 60, 120]))),
                                    "timezone": zone, "reason": "warehouse maintenance"}]
        if windows:
            pol["windows"] = windows
        if rng.random() < 0.35:
            pol["budget"] = {"per_day": round(float(rng.uniform(2, 60)), 2)}
        policies.append(pol)
    policies.append({"name": "platform", "select": [{"role": "connector_table"}], "tier": "standard",
                     "owners": ["team:data-platform"], "rollout": "auto" if rng.random() < 0.7 else "recommend",
                     "auto_approve": ["retry", "resync_table"]})

    # faults
    faults = []
    conn_ids = [c["id"] for c in connectors]
    model_keys = list(models)
    hours = horizon_days * 24
    for j in range(int(rng.integers(0, 5))):
        cat = str(_pick(rng, SELF_CLEARING + NEEDS_PERSON + ("schema_drift",),))
        on_conn = cat in ("rate_limit", "source_unavailable", "auth_expired", "schema_drift", "permission_denied") \
            or rng.random() < 0.5
        target = str(_pick(rng, conn_ids)) if on_conn or not model_keys else str(_pick(rng, model_keys))
        f = {"name": f"f{j}-{cat}", "category": cat, "targets": [target]}
        if cat in SELF_CLEARING and rng.random() < 0.3:
            f["probability"] = round(float(rng.uniform(0.03, 0.2)), 3)
        else:
            f["at"] = [_clock(int(rng.integers(0, 1440)))]
            if cat in SELF_CLEARING:
                f["lasts"] = f"{int(rng.choice([10, 20, 40, 90]))}m"
                if rng.random() < 0.5:
                    f["every"] = f"{int(rng.integers(2, 8))}h"
                    f["count"] = int(rng.integers(2, 5))
            elif rng.random() < 0.3 and hours > 24:
                # comes back the same day (a daily 'at' already recurs each day: 'every: 24h'
                # on top of it would stack two identical episodes from the second day on)
                f["at"].append(_clock(int(f["at"][0][:2]) * 60 + int(f["at"][0][3:]) + 720))
        faults.append(f)

    # the baseline the team wrote first
    build_at = (first_deadline_min or 360) - int(rng.integers(1, 5)) * 60
    job_zone = main_zone if rng.random() < 0.5 else "UTC"
    if rng.random() < 0.7:
        jobs = [{"name": "dbt_build", "cron": f"{build_at % 60} {(build_at // 60) % 24} * * *",
                 "timezone": job_zone, "select": ["*"]}]
    else:
        stg_at = build_at - 60
        first_layer = [k for k, ups in models.items() if all(u in sources for u in ups)] or list(models)[:1]
        jobs = [{"name": "staging", "cron": f"{stg_at % 60} {(stg_at // 60) % 24} * * *", "timezone": job_zone,
                 "select": first_layer},
                {"name": "marts", "after": ["staging"], "select": ["*"], "priority": 5}]

    trace = rng.random() < 0.7
    model_dur = ({"trace_family": str(_pick(rng, FAMILIES)), "scale": round(float(rng.uniform(0.5, 3.0)), 2),
                  "max": "30m"} if trace else {"median": f"{int(rng.integers(1, 8))}m", "sigma": 0.5})
    scenario = {
        "name": f"world-{seed}",
        "description": f"generated world {seed} ({'real lineage' if real else 'random DAG'}, "
                       f"{len(models)} models, {len(connectors)} connectors, {n_dash} dashboards)",
        "start": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "horizon": f"{horizon_days * 24}h",
        "policies": [f"world-{seed}.policies.yaml"],
        "data_dir": str(data_dir),
        "sensor_tick": "5m",
        "initial_age": f"{int(rng.integers(1, 31))}h",
        "graph": {"connectors": connectors, "assets": assets},
        "durations": {"connector": {"median": f"{int(rng.integers(3, 40))}m", "sigma": 0.4}, "model": model_dur},
        "capacity": {"warehouse_slots": int(rng.integers(1, 7)), "per_source": per_source},
        "cost": {"warehouse_usd_per_hour": float(rng.choice([4, 8, 12, 24])),
                 "off_peak": ([{"start": "20:00", "end": "05:00", "factor": 0.6}] if rng.random() < 0.5 else [])},
        "faults": faults,
        "baseline": {"jobs": jobs, "retry": {"max_retries": int(rng.choice([0, 1, 3])), "delay": "60s",
                                             "backoff": "exponential"}},
        "approvals": {"delay": f"{int(rng.choice([15, 30, 45, 90]))}m",
                      **({"night": {"start": "22:00", "end": "07:00", "timezone": main_zone or "UTC"}}
                         if rng.random() < 0.5 else {})},
        "human_fix_delay": f"{int(rng.choice([1, 2, 3, 6]))}h",
    }
    return scenario, {"policies": policies}


def generate_world(seed: int, out_dir: Path, data_dir: Path | None = None) -> Path:
    """Write world ``seed`` under ``out_dir``; returns the scenario file."""
    from orchestrator.simulator.scenario import DEFAULT_DATA_DIR, _data_dir_env

    data_dir = Path(data_dir or _data_dir_env() or DEFAULT_DATA_DIR).resolve()
    scenario, policies = world_spec(seed, data_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"world-{seed}.policies.yaml").write_text(yaml.safe_dump(policies, sort_keys=False), encoding="utf-8")
    path = out_dir / f"world-{seed}.yaml"
    path.write_text(yaml.safe_dump(scenario, sort_keys=False, width=120), encoding="utf-8")
    return path
