"""Seasonal sync histories with scripted silent failures and precursors (for tests, the
benchmark and the simulator). No Dagster imports.

A table's volume per load = base x weekday/weekend factor x a daily curve (peak hour, amplitude)
x a month-end factor, with lognormal noise (or Poisson counts for quiet tables). Durations are
lognormal; warnings and 429s Poisson. Faults (``SilentFault``) change what a connector's syncs
report from a given time on: ``zero_rows``, ``partial_volume`` (a share of the usual rows),
``stuck_cursor`` (the cursor stops; rows re-read or none), ``latency_creep`` (durations grow by
``factor`` per load), ``warning_rate`` / ``rate_limits`` (``factor`` x the usual rate + 1 per load).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from orchestrator.health.detect import is_month_end
from orchestrator.health.signals import SyncSignal

SILENT_KINDS = ("zero_rows", "partial_volume", "stuck_cursor")
PRECURSOR_KINDS = ("latency_creep", "warning_rate", "rate_limits")


@dataclass(frozen=True)
class TableProfile:
    base: float  # rows per load at the weekday mean
    sigma: float  # lognormal noise
    weekend: float  # weekend factor
    amplitude: float  # daily curve amplitude (0..1)
    peak_hour: float
    month_end: float  # month-end factor
    counts: bool = False  # Poisson counts (quiet tables) instead of lognormal volumes


@dataclass(frozen=True)
class ConnectorProfile:
    connector: str
    tables: dict[str, TableProfile]
    interval_min: int  # minutes between syncs
    offset_min: int  # first sync minute of the day
    jitter_min: float
    duration_s: float
    duration_sigma: float
    warning_rate: float  # per sync
    rate_limit_rate: float  # per sync


@dataclass(frozen=True)
class SilentFault:
    kind: str
    connector: str
    start: datetime
    loads: int = 1  # how many consecutive syncs it hits
    tables: tuple[str, ...] = ()  # empty: every table of the connector
    share: float = 0.1  # partial_volume: share of the usual rows
    factor: float = 1.15  # latency_creep: growth per load; rates: multiplier


def random_table(rng: np.random.Generator) -> TableProfile:
    quiet = rng.random() < 0.15
    return TableProfile(
        base=float(rng.uniform(2, 12)) if quiet else float(math.exp(rng.uniform(math.log(40), math.log(200_000)))),
        sigma=float(rng.uniform(0.08, 0.3)),
        weekend=float(rng.choice([1.0, rng.uniform(0.2, 0.7), rng.uniform(1.2, 1.6)])),
        amplitude=float(rng.uniform(0, 0.8)),
        peak_hour=float(rng.uniform(0, 24)),
        month_end=float(rng.choice([1.0, rng.uniform(1.5, 3.5), rng.uniform(0.5, 0.8)])),
        counts=quiet,
    )


def random_connector(rng: np.random.Generator, name: str, n_tables: int | None = None) -> ConnectorProfile:
    n = n_tables or int(rng.integers(1, 6))
    schema = name.split(":", 1)[-1]
    return ConnectorProfile(
        connector=name,
        tables={f"{schema}/t{i}": random_table(rng) for i in range(n)},
        interval_min=int(rng.choice([60, 60, 180, 360])),
        offset_min=int(rng.integers(0, 60)),
        jitter_min=float(rng.uniform(0, 6)),
        duration_s=float(rng.uniform(60, 1800)),
        duration_sigma=float(rng.uniform(0.05, 0.25)),
        warning_rate=float(rng.choice([0.0, rng.uniform(0.01, 0.3)])),
        rate_limit_rate=float(rng.choice([0.0, rng.uniform(0.01, 0.5)])),
    )


def expected_rows(p: TableProfile, t: datetime) -> float:
    hour = t.hour + t.minute / 60
    curve = 1.0 + p.amplitude * math.cos(2 * math.pi * (hour - p.peak_hour) / 24)
    mult = (p.weekend if t.weekday() >= 5 else 1.0) * (p.month_end if is_month_end(t) else 1.0)
    return p.base * curve * mult


@dataclass
class History:
    signals: list[SyncSignal] = field(default_factory=list)
    faulty: dict[tuple[str, str], str] = field(default_factory=dict)  # (table, sync_id) -> fault kind


def generate(profile: ConnectorProfile, start: datetime, end: datetime, rng: np.random.Generator,
             faults: list[SilentFault] = ()) -> History:
    """Every sync of ``profile`` starting in [start, end), with ``faults`` applied."""
    out = History()
    step = timedelta(minutes=profile.interval_min)
    t = start.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(minutes=profile.offset_min)
    while t < start:
        t += step
    cursors: dict[str, datetime] = {}
    hits = {id(f): 0 for f in faults}
    creep = 1.0
    n = 0
    while t < end:
        n += 1
        s = t + timedelta(minutes=float(rng.uniform(0, profile.jitter_min)))
        active = []
        for f in faults:
            if f.connector == profile.connector and s >= f.start and hits[id(f)] < f.loads:
                hits[id(f)] += 1
                active.append(f)
        kinds = {f.kind: f for f in active}
        if "latency_creep" in kinds:
            creep *= kinds["latency_creep"].factor
        dur = profile.duration_s * creep * float(rng.lognormal(0, profile.duration_sigma))
        warn_mult = kinds["warning_rate"].factor if "warning_rate" in kinds else 1.0
        rl_mult = kinds["rate_limits"].factor if "rate_limits" in kinds else 1.0
        warnings = int(rng.poisson(profile.warning_rate * warn_mult)) + (1 if "warning_rate" in kinds else 0)
        rl = int(rng.poisson(profile.rate_limit_rate * rl_mult)) + (1 if "rate_limits" in kinds else 0)
        sync_id = f"{profile.connector}#{n}"
        ended = s + timedelta(seconds=dur)
        for table, p in profile.tables.items():
            mu = expected_rows(p, s)
            rows = int(rng.poisson(mu)) if p.counts else int(round(mu * float(rng.lognormal(0, p.sigma))))
            silent = [f for f in active if f.kind in SILENT_KINDS and (not f.tables or table in f.tables)]
            cursor = s - timedelta(minutes=float(rng.uniform(0.5, 5))) if rows > 0 else cursors.get(table)
            for f in silent:
                out.faulty[(table, sync_id)] = f.kind
                if f.kind == "zero_rows":
                    rows, cursor = 0, cursors.get(table)
                elif f.kind == "partial_volume":
                    rows = int(rows * f.share)
                elif f.kind == "stuck_cursor":
                    cursor = cursors.get(table)
                    if rng.random() < 0.5:
                        rows = 0
            if cursor is not None:
                cursors[table] = cursor
            out.signals.append(SyncSignal(
                connector=profile.connector, table=table, sync_id=sync_id, started_at=s, ended_at=ended,
                status="succeeded", rows=rows, warnings=warnings, rate_limited=rl, cursor=cursor))
        t += step
    return out
