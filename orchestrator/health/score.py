"""Health score per connector (0-100, explained by components), 7/30-day trends and the early
warning (no Dagster imports).

Components over a window (7 or 30 days ending ``now``):

* ``reliability`` (35): share of its syncs that succeeded;
* ``volume`` (25): share of its tables' loads without a data anomaly (zero rows, a sharp drop,
  a stuck cursor) against each table's own seasonal baseline;
* ``latency`` (20): the last loads' median duration against the window's (x2 or worse: 0);
* ``warnings`` (20): warnings + HTTP 429s/retries per sync (20 / (1 + rate)).

Early warning (a heuristic, stated as such): ``p_fail`` -- the recency-weighted failure rate
(half-life 3 days, prior 1 in 20) with its odds raised x3 by a rising warning/429 rate and x2 by
duration creep on the latest load; ``p_overrun`` -- the probability the next sync takes longer
than its slot (the median gap between syncs, or ``slot_s``), from a log-linear trend fitted to
the last 20 durations.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from orchestrator.health.detect import Anomaly, DetectorConfig, TableSeries
from orchestrator.health.signals import SyncSignal, aware

WEIGHTS = {"reliability": 35.0, "volume": 25.0, "latency": 20.0, "warnings": 20.0}


@dataclass(frozen=True)
class Component:
    name: str
    points: float
    max_points: float
    detail: str

    def to_dict(self) -> dict:
        return {"name": self.name, "points": round(self.points, 1), "max": self.max_points, "detail": self.detail}


@dataclass
class EarlyWarning:
    p_fail: float
    p_overrun: float
    slot_s: float | None
    why: list[str] = field(default_factory=list)
    next_s: float | None = None  # the next sync's duration from the trend (exp of the fitted log)

    @property
    def at_risk(self) -> bool:
        return self.p_fail >= 0.3 or self.p_overrun >= 0.3

    def to_dict(self) -> dict:
        return {"p_fail": round(self.p_fail, 3), "p_overrun": round(self.p_overrun, 3),
                "slot_s": round(self.slot_s) if self.slot_s else None, "at_risk": self.at_risk, "why": self.why}


@dataclass
class ConnectorHealth:
    connector: str
    score: int
    components: list[Component]
    score_7d: int | None
    score_30d: int | None
    anomalies: list[Anomaly]  # of each table's latest load
    early: EarlyWarning
    syncs: int
    tables: list[str]

    @property
    def trend(self) -> str:
        if self.score_7d is None or self.score_30d is None:
            return "unknown"
        d = self.score_7d - self.score_30d
        return "degrading" if d <= -5 else "improving" if d >= 5 else "stable"

    def to_dict(self) -> dict:
        return {"connector": self.connector, "score": self.score,
                "components": [c.to_dict() for c in self.components],
                "trend": {"7d": self.score_7d, "30d": self.score_30d, "direction": self.trend},
                "anomalies": [a.to_dict() for a in self.anomalies], "early_warning": self.early.to_dict(),
                "syncs": self.syncs, "tables": self.tables}


def _window_score(sigs: list[SyncSignal], flags: dict[tuple[str, str], bool], since: datetime, now: datetime,
                  ref_dur: float | None, latest_untrusted: bool = False) -> tuple[float, list[Component], int] | None:
    """The score over [since, now]. ``latest_untrusted`` (the current score): the latest load of a
    table is untrusted, which halves the volume points; latency compares the last three loads
    (else the window's median) with ``ref_dur``, the connector's usual duration before the week."""
    win = [s for s in sigs if since <= aware(s.started_at) <= now]
    if not win:
        return None
    by_sync: dict[str, bool] = {}
    for s in win:
        by_sync[s.sync_id] = by_sync.get(s.sync_id, True) and s.succeeded
    n, ok = len(by_sync), sum(by_sync.values())
    comps = [Component("reliability", WEIGHTS["reliability"] * ok / n, WEIGHTS["reliability"],
                       f"{ok}/{n} syncs succeeded")]
    judged = [(s.table, s.sync_id) for s in win if s.succeeded and (s.table, s.sync_id) in flags]
    bad = sum(1 for k in judged if flags[k])
    if judged:
        pts = WEIGHTS["volume"] * (1 - bad / len(judged)) * (0.5 if latest_untrusted else 1.0)
        comps.append(Component("volume", pts, WEIGHTS["volume"],
                               f"{bad}/{len(judged)} loads untrusted (zero rows, drop, stuck cursor)"
                               + ("; the latest load is untrusted (halved)" if latest_untrusted else "")))
    else:
        comps.append(Component("volume", WEIGHTS["volume"], WEIGHTS["volume"], "no load with enough history to judge"))
    durs = [s.duration_s for s in sorted(win, key=lambda x: x.started_at) if s.succeeded and s.duration_s]
    if len(durs) >= 4:
        base = ref_dur or float(np.median(durs))
        current = (now - since) <= timedelta(days=7)
        last = float(np.median(durs[-3:])) if current else float(np.median(durs))
        r = last / base if base > 0 else 1.0
        pts = WEIGHTS["latency"] * min(1.0, max(0.0, 2.0 - r))
        comps.append(Component("latency", pts, WEIGHTS["latency"],
                               f"{'last loads' if current else 'the window'}' median {last:.0f}s vs the usual "
                               f"{base:.0f}s (x{r:.2f})"))
    else:
        comps.append(Component("latency", WEIGHTS["latency"], WEIGHTS["latency"], "too few loads"))
    per_sync: dict[str, tuple[int, int]] = {}
    for s in win:
        w, r = per_sync.get(s.sync_id, (0, 0))
        per_sync[s.sync_id] = (max(w, s.warnings), max(r, s.rate_limited + s.retries))
    w = sum(v[0] for v in per_sync.values()) / n
    r = sum(v[1] for v in per_sync.values()) / n
    comps.append(Component("warnings", WEIGHTS["warnings"] / (1 + w + r), WEIGHTS["warnings"],
                           f"{w:.2f} warnings and {r:.2f} 429s/retries per sync"))
    return sum(c.points for c in comps), comps, n


def _phi(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2))


def early_warning(sigs: Sequence[SyncSignal], latest: list[Anomaly], now: datetime,
                  slot_s: float | None = None) -> EarlyWarning:
    by_sync: dict[str, tuple[datetime, bool, float | None]] = {}
    for s in sigs:
        t, ok, d = by_sync.get(s.sync_id, (aware(s.started_at), True, s.duration_s))
        by_sync[s.sync_id] = (t, ok and s.succeeded, d if d is not None else s.duration_s)
    syncs = sorted(by_sync.values(), key=lambda x: x[0])
    why: list[str] = []
    wsum = fsum = 0.0
    for t, ok, _ in syncs:
        age = (now - t).total_seconds() / 86400
        if age < 0:
            continue
        w = 0.5 ** (age / 3.0)
        wsum += w
        fsum += w * (not ok)
    p = (0.5 + fsum) / (10.0 + wsum)
    odds = p / (1 - p)
    kinds = {a.kind for a in latest}
    if kinds & {"warning_rate", "rate_limit_rate"}:
        odds *= 3
        why.append("rising warning/429 rate")
    if "duration_creep" in kinds:
        odds *= 2
        why.append("duration creep")
    p_fail = odds / (1 + odds)
    if fsum > 0:
        why.append(f"recent failures (weighted {fsum:.1f} of {wsum:.1f})")
    # overrun: log-linear trend of the last 20 durations against the slot
    starts = [t for t, _, _ in syncs]
    if slot_s is None and len(starts) >= 3:
        gaps = np.diff([t.timestamp() for t in starts])
        slot_s = float(np.median(gaps)) if len(gaps) else None
    durs = [(t.timestamp(), d) for t, ok, d in syncs if ok and d][-20:]
    p_over = 0.0
    next_s = None
    if len(durs) >= 5:
        x = np.array([a for a, _ in durs]) / 86400.0
        y = np.log(np.array([b for _, b in durs]))
        slope, icpt = np.polyfit(x - x[-1], y, 1)
        resid = y - (icpt + slope * (x - x[-1]))
        sd = max(float(np.std(resid, ddof=1)), 0.05)
        step = (x[-1] - x[0]) / (len(x) - 1) if len(x) > 1 else 0.0
        mu = icpt + slope * step
        next_s = math.exp(mu)
        if slot_s:
            p_over = 1 - _phi((math.log(slot_s) - mu) / sd)
            if p_over >= 0.05:
                why.append(f"next sync ~{next_s:.0f}s against a {slot_s:.0f}s slot")
    return EarlyWarning(p_fail=p_fail, p_overrun=p_over, slot_s=slot_s, why=why, next_s=next_s)


def connector_health(signals: Sequence[SyncSignal], now: datetime, cfg: DetectorConfig | None = None,
                     slot_s: float | None = None) -> ConnectorHealth:
    """Score one connector from its signals (every table; history before the windows is the
    detectors' baseline)."""
    now = aware(now)
    sigs = sorted(signals, key=lambda s: s.started_at)
    connector = sigs[0].connector if sigs else "?"
    since30 = now - timedelta(days=30)
    flags: dict[tuple[str, str], bool] = {}
    latest: list[Anomaly] = []
    tables = sorted({s.table for s in sigs})
    for table in tables:
        series = TableSeries([s for s in sigs if s.table == table], cfg)
        for s in series.all:
            if s.succeeded and aware(s.started_at) >= since30:
                found = series.detect(s)
                flags[(table, s.sync_id)] = any(a.untrusted for a in found)
                if s is series.all[-1]:
                    latest += found
        if series.all and not series.all[-1].succeeded:
            latest += series.detect(series.all[-1])
    ref = [s.duration_s for s in sigs if s.succeeded and s.duration_s
           and now - timedelta(days=37) <= aware(s.started_at) < now - timedelta(days=7)]
    ref_dur = float(np.median(ref)) if len(ref) >= 4 else None
    w30 = _window_score(sigs, flags, since30, now, ref_dur)
    w7 = _window_score(sigs, flags, now - timedelta(days=7), now, ref_dur, any(a.untrusted for a in latest))
    cur = w7 or w30
    return ConnectorHealth(
        connector=connector, score=int(round(cur[0])) if cur else 0, components=cur[1] if cur else [],
        score_7d=int(round(w7[0])) if w7 else None, score_30d=int(round(w30[0])) if w30 else None,
        anomalies=latest, early=early_warning([s for s in sigs if aware(s.started_at) >= since30], latest, now, slot_s),
        syncs=cur[2] if cur else 0, tables=tables)


def health_report(signals: Sequence[SyncSignal], now: datetime, cfg: DetectorConfig | None = None
                  ) -> list[ConnectorHealth]:
    """Every connector's health, worst first."""
    by: dict[str, list[SyncSignal]] = {}
    for s in signals:
        by.setdefault(s.connector, []).append(s)
    out = [connector_health(v, now, cfg) for v in by.values()]
    return sorted(out, key=lambda h: (h.score, h.connector))


def format_report(report: list[ConnectorHealth]) -> str:
    if not report:
        return "no sync signals recorded yet (the health sensor records them from the connector APIs)"
    lines = [f"{'connector':32} {'score':>5} {'7d':>4} {'30d':>4} {'trend':10} {'p(fail)':>7} {'p(overrun)':>10}"]
    for h in report:
        f = lambda v: "-" if v is None else str(v)  # noqa: E731
        lines.append(f"{h.connector:32} {h.score:>5} {f(h.score_7d):>4} {f(h.score_30d):>4} {h.trend:10} "
                     f"{h.early.p_fail:>7.2f} {h.early.p_overrun:>10.2f}")
        for c in h.components:
            lines.append(f"    {c.name:12} {c.points:5.1f}/{c.max_points:<4.0f} {c.detail}")
        for a in h.anomalies:
            lines.append(f"    {a.severity:5} {a.kind} on {a.table}: {a.why} (baseline {a.baseline}; observed {a.observed})")
        if h.early.why:
            lines.append(f"    early warning: {'; '.join(h.early.why)}")
    return "\n".join(lines)


def summary_line(h: ConnectorHealth) -> str:
    """One line for the digest and asset metadata: score, trend, weakest components, early warning."""
    weak = sorted((c for c in h.components if c.points < c.max_points - 0.5), key=lambda c: c.points - c.max_points)
    parts = [f"{h.connector}: health {h.score}/100 (7d {h.score_7d if h.score_7d is not None else '-'}, "
             f"30d {h.score_30d if h.score_30d is not None else '-'}, {h.trend})"]
    if weak:
        parts.append("; ".join(f"{c.name} {c.points:.0f}/{c.max_points:.0f} ({c.detail})" for c in weak[:2]))
    kinds = sorted({a.kind for a in h.anomalies})
    if kinds:
        parts.append("latest loads: " + ", ".join(kinds))
    if h.early.at_risk:
        parts.append(f"early warning: p(fail) {h.early.p_fail:.2f}, p(overrun) {h.early.p_overrun:.2f}"
                     + (f" ({'; '.join(h.early.why)})" if h.early.why else ""))
    return " -- ".join(parts)


def needs_attention(h: ConnectorHealth, threshold: int = 80) -> bool:
    return h.score < threshold or bool(h.anomalies) or h.early.at_risk or h.trend == "degrading"

