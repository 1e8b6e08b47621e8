"""Anomalies in one table's loads against its own seasonal baseline (no Dagster imports).

Every check compares a load with the same table's history, never a global threshold:

* **volume** (``zero_rows``, ``volume_drop``, ``volume_spike``): ``log1p(rows)`` against the
  median of the table's earlier loads in the same *slot* -- the same day type (weekday/weekend)
  near the time of day (within +-30 min when that holds 10 loads: the same hour of a regular
  schedule; else +-75 min), narrowed to the same weekday only when that weekday's median stands
  apart from the rest of its day type, else the day type at any hour -- with a robust scale
  (1.4826 x MAD, floored). Month-end loads (the last two days and the first
  day of a month) are compared with the slot's ordinary baseline shifted by the month-end lift
  the table showed before; without month-end history the test is stricter and spikes are not
  flagged. A drop needs under ``drop_ratio`` of the expected volume and, on busy tables, a robust
  z below ``-z`` (with a Poisson counting tail below ``count_p``); zero rows where the slot rarely
  had none is ``zero_rows`` (ERROR).
* **quiet tables** (at most ``count_rows`` rows expected a load): a count model instead of the log
  scale -- the load's rows against a negative binomial with the slot's mean (a Gamma posterior: a
  mean from few loads is uncertain), the dispersion index of the wider day-type slot (never below
  Poisson) and, at month-end, the month-end lift as a ratio of sums; tail below ``count_p``. One
  quiet load says little, so a *run* of 2..``run_loads`` low loads is tested on its sum (tail below
  ``run_p``); the anomaly's ``since`` names the run's first load, and the whole run is untrusted.
* **stuck cursor**: a load that landed rows but did not move the cursor (it re-read old data),
  or the cursor unchanged for ``stuck_loads`` loads in a row on a table that is rarely quiet.
* **duration creep**: the median of the last ``creep_window`` durations over the median of the
  table's durations a week and more ago, with the recent ones rising.
* **warning / 429 rates**: warnings (resp. HTTP 429s) over the last 24 h against the table's
  earlier rate per sync (Poisson tail below ``rate_p``).

* **a sync's tables together** (``detect_sync``): a silent failure hits a connector's load, often
  several of its tables, each of which may stay within its own noise; the tables' lower-tail
  p-values are combined by the truncated product (Zaykin et al. 2002) and, when at least two
  tables under ``drop_ratio`` of their volume bring it below ``sync_p``, each of them is a
  ``volume_drop`` / ``zero_rows`` naming the sync-level evidence (``verdicts`` applies it to each
  connector's latest syncs).

``zero_rows``, ``volume_drop`` and ``stuck_cursor`` make a load *untrusted*
(``Anomaly.untrusted``): the assessment does not count it as fresh (``orchestrator.health.hold``).
Spikes, duration creep and rising warning/429 rates are flagged (WARN) and feed the health score
and the early warning.
"""

from __future__ import annotations

import calendar
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from orchestrator.health.signals import UTC, SyncSignal, aware

UNTRUSTED_KINDS = frozenset({"zero_rows", "volume_drop", "stuck_cursor"})
KINDS = ("zero_rows", "volume_drop", "volume_spike", "stuck_cursor", "duration_creep",
         "warning_rate", "rate_limit_rate")
_DAY = 86400.0


@dataclass(frozen=True)
class DetectorConfig:
    history_days: float = 42.0  # baseline window
    z: float = 4.0  # robust z a volume change must pass
    drop_ratio: float = 0.4  # ... and observed/expected below this for a drop
    error_ratio: float = 0.25  # below this a drop is an ERROR
    spike_ratio: float = 4.0
    spike_min_rows: int = 100
    min_samples: int = 5
    min_scale: float = 0.08  # floor of the log-volume scale
    slot_minutes: float = 75.0
    # a narrower time-of-day window (the same hour of a regular schedule) when it holds at least
    # ``narrow_samples`` loads of the day type; the same weekday's loads are pooled with the rest of
    # its day type unless its median stands ``weekday_z`` standard errors apart
    narrow_minutes: float = 30.0
    narrow_samples: int = 10
    weekday_z: float = 2.5
    creep_window: int = 6
    creep_ratio: float = 1.5
    rate_p: float = 1e-4
    # counts (quiet tables): the predictive lower tail of a load's rows (negative binomial from the
    # slot's mean and spread, with the uncertainty of a baseline from few loads) must be below
    # ``count_p``; at or under ``count_rows`` expected rows the log-scale z-test is not required
    count_p: float = 1e-3
    count_rows: float = 30.0
    # a run of low loads: the last 2..``run_loads`` loads (each under its own expectation) together
    # landing improbably few rows (tail below ``run_p``, under ``drop_ratio`` of the expected sum)
    run_loads: int = 4
    run_p: float = 2e-3
    rate_min_events: int = 3
    stuck_loads: int = 2
    # a sync's tables together (``detect_sync``): the truncated product of the tables' lower-tail
    # p-values at most ``sync_tau`` (Zaykin et al. 2002; each table's load also under
    # ``drop_ratio`` of its expectation) over the tables the sync landed; at least two tables, and
    # the combined p-value below ``sync_p``
    sync_tau: float = 0.05
    sync_p: float = 1e-3


@dataclass(frozen=True, slots=True)
class Anomaly:
    kind: str
    severity: str  # WARN | ERROR
    connector: str
    table: str
    sync_id: str
    at: datetime
    baseline: str  # what was expected, in words
    observed: str
    why: str
    expected: float | None = None
    value: float | None = None
    since: datetime | None = None  # a run of loads: the start of its first load (none trusted since)

    @property
    def untrusted(self) -> bool:
        return self.kind in UNTRUSTED_KINDS

    def to_dict(self) -> dict:
        return {"kind": self.kind, "severity": self.severity, "connector": self.connector,
                "table": self.table, "sync_id": self.sync_id, "at": self.at.isoformat(),
                "baseline": self.baseline, "observed": self.observed, "why": self.why,
                "expected": self.expected, "value": self.value, "untrusted": self.untrusted,
                **({"since": self.since.isoformat()} if self.since else {})}


def is_month_end(t: datetime) -> bool:
    last = calendar.monthrange(t.year, t.month)[1]
    return t.day >= last - 1 or t.day == 1


def _tod(t: datetime) -> float:
    return t.hour * 60 + t.minute + t.second / 60


def poisson_sf(k: int, lam: float) -> float:
    """P(X >= k) for X ~ Poisson(lam)."""
    if k <= 0:
        return 1.0
    if lam <= 0:
        return 0.0
    term = math.exp(-lam)
    below = 0.0
    for i in range(k):
        below += term
        term *= lam / (i + 1)
    if below < 0.9:
        return max(0.0, 1.0 - below)
    tail, i = 0.0, k  # sum the tail directly for precision
    term = math.exp(-lam + k * math.log(lam) - math.lgamma(k + 1))
    while term > 1e-300 and i < k + 10_000:
        tail += term
        i += 1
        term *= lam / i
        if term < tail * 1e-12:
            break
    return tail


def poisson_cdf(k: int, lam: float) -> float:
    """P(X <= k) for X ~ Poisson(lam) (normal approximation above lam = 200)."""
    if k < 0:
        return 0.0
    if lam <= 0:
        return 1.0
    if lam > 200:
        return 0.5 * math.erfc(-((k + 0.5 - lam) / math.sqrt(lam)) / math.sqrt(2))
    total, term = 0.0, math.exp(-lam)
    for i in range(int(k) + 1):
        total += term
        term *= lam / (i + 1)
    return min(1.0, total)


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the regularized incomplete beta (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-12:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    lbt = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(lbt) * _betacf(a, b, x) / a
    return 1.0 - math.exp(lbt) * _betacf(b, a, 1.0 - x) / b


def count_cdf(k: int, mean: float, var: float) -> float:
    """P(X <= k) for a count X with ``mean`` and ``var``: negative binomial when ``var`` exceeds
    ``mean`` (overdispersed, or a mean known from few loads), Poisson otherwise."""
    if k < 0:
        return 0.0
    if mean <= 0:
        return 1.0
    if var <= mean * (1.0 + 1e-9):
        return poisson_cdf(k, mean)
    r = mean * mean / (var - mean)  # NB(r, p): mean r(1-p)/p, variance mean/p
    p = mean / var
    return min(1.0, betainc(r, k + 1.0, p))


@dataclass
class Expectation:
    center: float  # log1p(rows)
    scale: float
    n: int
    slot: str  # which samples, in words
    zero_share: float
    month_end: str | None = None  # "x2.1 month-end lift" / "month-end, no history"
    month_end_unknown: bool = False
    # the count model: the predictive mean and variance of the load's rows (the slot's mean,
    # its spread -- never below Poisson -- and the uncertainty of a mean from few loads)
    mean: float = 0.0
    disp: float = 0.0  # a load's own variance around the mean (>= mean)
    unc: float = 0.0  # the variance of the estimated mean

    @property
    def var(self) -> float:
        return self.disp + self.unc

    def tail(self, rows: int) -> float:
        """P(a load like the baseline's lands <= ``rows`` rows)."""
        return count_cdf(rows, self.mean, self.var)

    @property
    def rows(self) -> float:
        return math.expm1(self.center)


_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


class TableSeries:
    """One table's loads (any order in; kept by start time) with numpy views for the baseline."""

    def __init__(self, signals: Iterable[SyncSignal], cfg: DetectorConfig | None = None):
        self.cfg = cfg or DetectorConfig()
        self.all: list[SyncSignal] = sorted(signals, key=lambda s: aware(s.started_at))
        starts = [aware(s.started_at) for s in self.all]
        self.t = np.array([t.timestamp() for t in starts], dtype=float)
        self.ok = np.array([s.succeeded for s in self.all], dtype=bool)
        rows = [s.rows if (s.rows is not None and s.succeeded) else np.nan for s in self.all]
        self.rows = np.array(rows, dtype=float)
        self.logv = np.log1p(self.rows)
        self.tod = np.array([_tod(t) for t in starts], dtype=float)
        self.wd = np.array([t.weekday() for t in starts], dtype=int)
        self.weekend = self.wd >= 5
        self.me = np.array([is_month_end(t) for t in starts], dtype=bool)
        self.dur = np.array([s.duration_s if (s.duration_s is not None and s.succeeded) else np.nan
                             for s in self.all], dtype=float)
        self.warn = np.array([s.warnings for s in self.all], dtype=float)
        self.rl = np.array([s.rate_limited + s.retries for s in self.all], dtype=float)
        self.cursor = np.array([aware(s.cursor).timestamp() if s.cursor is not None and s.succeeded else np.nan
                                for s in self.all], dtype=float)

    def __len__(self) -> int:
        return len(self.all)

    def index_before(self, at: datetime) -> int:
        return int(np.searchsorted(self.t, aware(at).timestamp(), side="left"))

    # -- baseline ---------------------------------------------------------------------------
    def expectation(self, at: datetime, end: int | None = None) -> Expectation | None:
        """The seasonal expectation of ``log1p(rows)`` for a load starting ``at`` from the loads
        before index ``end`` (default: every load before ``at``)."""
        cfg = self.cfg
        at = aware(at)
        ts = at.timestamp()
        end = self.index_before(at) if end is None else end
        lo = int(np.searchsorted(self.t, ts - cfg.history_days * _DAY, side="left"))
        if end - lo < cfg.min_samples:
            return None
        sl = slice(lo, end)
        logv, me = self.logv[sl], self.me[sl]
        valid = np.isfinite(logv)
        d = np.abs(self.tod[sl] - _tod(at))
        d = np.minimum(d, 1440 - d)
        ordinary = valid & ~me
        wd = at.weekday()
        we = wd >= 5
        daytype = "weekend" if we else "weekday"
        same_type = ordinary & (self.weekend[sl] == we)
        # the time-of-day window: the narrow one where it holds enough loads of the day type (a
        # regular schedule: the same hour every day, without the daily curve's slope), else the wide
        near = d <= cfg.slot_minutes
        if cfg.narrow_minutes and int((same_type & (d <= cfg.narrow_minutes)).sum()) >= cfg.narrow_samples:
            near = d <= cfg.narrow_minutes
        wide = same_type & near
        same_wd = wide & (self.wd[sl] == wd)
        cands = [
            (same_wd, f"{_WEEKDAYS[wd]} loads near {at:%H:%M}"),
            (wide, f"{daytype} loads near {at:%H:%M}"),
            (same_type, f"{daytype} loads"),
            (ordinary, "loads"),
        ]
        if self._pool_day_type(logv, same_wd, wide):
            cands[0] = (same_wd, "")  # the weekday is like the others of its day type: pool them
        pick = None
        for mask, label in cands:
            n = int(mask.sum())
            if label and n >= cfg.min_samples:
                pick = (mask, label, n)
                break
        if pick is None:
            return None
        mask, label, n = pick
        x = logv[mask]
        center = float(np.median(x))
        # the spread: of the chosen slot, and never below the spread of the wider day-type slot
        # (a handful of samples estimates it poorly); plus counting noise for quiet tables
        scale = 1.4826 * float(np.median(np.abs(x - center)))
        if int(wide.sum()) >= cfg.min_samples:
            w = logv[wide]
            scale = max(scale, 1.4826 * float(np.median(np.abs(w - np.median(w)))))
        mu = math.expm1(center)
        scale = math.sqrt(max(scale, cfg.min_scale) ** 2 * (1.0 + 2.0 / n) ** 2 + 1.0 / (mu + 1.0))
        rows = self.rows[sl]
        r = rows[mask]
        zero_share = float(np.mean(r == 0))
        # counts: the rate from the slot (Gamma(S + 1/2, n)); the dispersion index (variance / mean,
        # never below Poisson's 1) from the wider day-type slot when it holds more loads: a variance
        # from a handful of counts is itself noisy, and the wider slot's includes its between-day
        # differences (conservative)
        total = float(r.sum())
        cmean = (total + 0.5) / n
        pool = rows[wide] if int(wide.sum()) > n else r
        phi = 1.0
        if pool.size > 1:
            phi = max(1.0, float(np.var(pool, ddof=1)) / ((float(pool.sum()) + 0.5) / pool.size))
        exp = Expectation(center=center, scale=scale, n=n, slot=f"median of {n} {label}", zero_share=zero_share,
                          mean=cmean, disp=phi * cmean, unc=phi * cmean * cmean / (total + 0.5))
        if is_month_end(at):
            me_mask = valid & me & near
            if int(me_mask.sum()) >= 2:
                # each month-end load against the ordinary loads of its own day type
                ref, cref = {}, {}
                for flag in (False, True):
                    m = ordinary & near & (self.weekend[sl] == flag)
                    ref[flag] = float(np.median(logv[m])) if m.any() else float("nan")
                    cref[flag] = float(np.mean(rows[m])) if m.any() else float("nan")
                idx = np.flatnonzero(me_mask)
                resid = [logv[i] - ref[bool(self.weekend[sl][i])] for i in idx]
                resid = [r for r in resid if math.isfinite(r)]
                if len(resid) >= 2:
                    lift = float(np.median(resid))
                    exp.center += lift
                    exp.month_end = f"month-end lift x{math.exp(lift):.2f} from {len(resid)} earlier month-end loads"
                    # counts: the lift as a ratio of sums (zeros count), with its own uncertainty
                    pairs = [(rows[i], cref[bool(self.weekend[sl][i])]) for i in idx]
                    pairs = [(x, c) for x, c in pairs if math.isfinite(c)]
                    got, want = float(sum(x for x, _ in pairs)), float(sum(c for _, c in pairs))
                    f = (got + 0.5) / (want + 0.5)
                    m_me = cmean * f
                    exp.mean = m_me
                    exp.disp = phi * m_me
                    exp.unc = phi * m_me * m_me * (1.0 / (got + 0.5) + 1.0 / (total + 0.5))
            if exp.month_end is None:
                exp.month_end = "month-end without month-end history (stricter test)"
                exp.month_end_unknown = True
        return exp

    def _pool_day_type(self, logv: np.ndarray, same_wd: np.ndarray, wide: np.ndarray) -> bool:
        """Whether the loads of the same weekday look like the other loads of its day type (near
        the same time), so that the day type's slot -- several times the loads, a much firmer
        median and spread -- can stand for it. Not when the weekday's median stands apart from the
        others' by more than ``weekday_z`` standard errors (a weekday with its own level)."""
        cfg = self.cfg
        others = wide & ~same_wd
        n1, n2 = int(same_wd.sum()), int(others.sum())
        if n2 < cfg.min_samples or int(wide.sum()) < cfg.narrow_samples:
            return False
        if n1 == 0:
            return True
        a, b = logv[same_wd], logv[others]
        w = logv[wide]
        s = max(1.4826 * float(np.median(np.abs(w - np.median(w)))), cfg.min_scale)
        se = 1.2533 * s * math.sqrt(1.0 / n1 + 1.0 / n2)  # standard error of a difference of medians
        return abs(float(np.median(a)) - float(np.median(b))) <= cfg.weekday_z * se

    # -- checks -----------------------------------------------------------------------------
    def detect(self, sig: SyncSignal) -> list[Anomaly]:
        """Anomalies of ``sig`` (a load of this table) against the loads before it."""
        end = self.index_before(sig.started_at)
        out: list[Anomaly] = []
        if sig.succeeded:
            out += self._volume(sig, end)
            out += self._cursor(sig, end)
            out += self._creep(sig, end)
        out += self._rates(sig, end)
        return out

    def _anomaly(self, sig: SyncSignal, kind: str, severity: str, baseline: str, observed: str, why: str,
                 expected: float | None = None, value: float | None = None,
                 since: datetime | None = None) -> Anomaly:
        return Anomaly(kind=kind, severity=severity, connector=sig.connector, table=sig.table,
                       sync_id=sig.sync_id, at=aware(sig.ended_at or sig.started_at), baseline=baseline,
                       observed=observed, why=why, expected=expected, value=value, since=since)

    def _volume(self, sig: SyncSignal, end: int) -> list[Anomaly]:
        if sig.rows is None:
            return []
        cfg = self.cfg
        exp = self.expectation(sig.started_at, end)
        if exp is None:
            return []
        x = math.log1p(sig.rows)
        z = (x - exp.center) / exp.scale
        quiet = exp.mean <= cfg.count_rows
        expected = exp.mean if quiet else exp.rows  # counts: the mean (zeros included), else the median
        ratio = (sig.rows + 1.0) / (expected + 1.0)
        zlim = cfg.z * (1.5 if exp.month_end_unknown else 1.0)
        base = f"~{expected:,.0f} rows ({exp.slot}" + (f"; {exp.month_end}" if exp.month_end else "") + ")"
        observed = f"{sig.rows:,} rows"
        # counting noise: a quiet table may land few or no rows by chance, so a drop also needs a
        # count tail below count_p; quiet tables (where the log scale says little) need only that
        cp = cfg.count_p * (0.1 if exp.month_end_unknown else 1.0)
        low = ratio < cfg.drop_ratio and (z < -zlim or quiet)
        if low:
            # quiet: the count model; busy: the z-test covers the spread, Poisson the counting noise
            p = exp.tail(sig.rows) if quiet else poisson_cdf(sig.rows, expected)
            if p < cp:
                if sig.rows == 0:
                    return [self._anomaly(
                        sig, "zero_rows", "ERROR", base, observed,
                        f"the sync succeeded with 0 rows where {exp.slot} landed ~{expected:,.0f} " +
                        (f"({exp.zero_share:.0%} of them empty" if exp.zero_share else "(none of them empty") +
                        f"; p={p:.1g})", expected, 0.0)]
                sev = "ERROR" if ratio < cfg.error_ratio else "WARN"
                return [self._anomaly(
                    sig, "volume_drop", sev, base, observed,
                    f"{ratio:.0%} of the usual volume (robust z {z:.1f}, limit -{zlim:.1f}; p={p:.1g})",
                    expected, float(sig.rows))]
        if low or (quiet and sig.rows <= exp.mean):
            # a run of low loads, judged on its sum: its last load need only be under its own mean,
            # like the earlier ones (three loads landing 1, 0 and 0 rows where ~5, 3 and 1.3 were due)
            run = self._low_run(sig, end, exp)
            if run is not None:
                return [run]
        if z > zlim and ratio > cfg.spike_ratio and sig.rows >= cfg.spike_min_rows and not exp.month_end_unknown:
            return [self._anomaly(
                sig, "volume_spike", "WARN", base, observed,
                f"x{ratio:.1f} the usual volume (robust z {z:.1f}, limit {zlim:.1f})", expected, float(sig.rows))]
        return []

    def run_tails(self, sig: SyncSignal, end: int, exp: Expectation):
        """The runs of low loads ending with ``sig`` (each earlier load under its own expectation):
        ``(k, p, rows, expected, first start)`` for k = 2..``run_loads`` loads, ``p`` the count tail
        of their sum (loads vary independently; the baselines' errors, from overlapping loads, are
        taken as fully correlated: their sds add)."""
        cfg = self.cfg
        got, mean, var, sd = float(sig.rows), exp.mean, exp.disp, math.sqrt(exp.unc)
        k, i = 1, end - 1
        while i >= 0 and k < cfg.run_loads:
            if not (self.ok[i] and np.isfinite(self.rows[i])):
                i -= 1
                continue
            e = self.expectation(self.all[i].started_at, i)
            if e is None or self.rows[i] > e.mean:
                return
            k += 1
            got += float(self.rows[i])
            mean += e.mean
            var += e.disp
            sd += math.sqrt(e.unc)
            yield k, count_cdf(int(got), mean, var + sd * sd), got, mean, aware(self.all[i].started_at)
            i -= 1

    def _low_run(self, sig: SyncSignal, end: int, exp: Expectation) -> Anomaly | None:
        """A run of low loads ending with ``sig`` together landing improbably few rows (a
        sequential test for quiet tables, where one load says little)."""
        cfg = self.cfg
        limit = cfg.run_p * (0.1 if exp.month_end_unknown else 1.0)
        best = None  # the run of 2..run_loads loads with the strongest evidence
        for k, p, got, mean, first in self.run_tails(sig, end, exp):
            ratio = (got + 1.0) / (mean + 1.0)
            if ratio >= cfg.drop_ratio or p >= limit or (best is not None and p >= best[1]):
                continue
            best = (k, p, got, mean, first, ratio)
        if best is None:
            return None
        k, p, got, mean, first, ratio = best
        kind = "zero_rows" if got == 0 else "volume_drop"
        sev = "ERROR" if kind == "zero_rows" or ratio < cfg.error_ratio else "WARN"
        # the untrusted span: that run, back to its first load
        return self._anomaly(
            sig, kind, sev, f"~{mean:,.1f} rows over the last {k} loads (each against its own slot)",
            f"{int(got):,} rows in {k} loads since {first.isoformat()}",
            f"{k} loads in a row under their usual volume: {int(got):,} rows where ~{mean:,.1f} were "
            f"expected (p={p:.1g}); one quiet load says little, {k} in a row do", mean, got, since=first)

    def _cursor(self, sig: SyncSignal, end: int) -> list[Anomaly]:
        if sig.cursor is None:
            return []
        prev = self.cursor[:end][self.ok[:end] & np.isfinite(self.cursor[:end])]
        if prev.size == 0:
            return []
        cur = aware(sig.cursor).timestamp()
        last = float(prev[-1])
        if cur > last:
            return []
        last_dt = datetime.fromtimestamp(last, UTC)
        if sig.rows:
            return [self._anomaly(
                sig, "stuck_cursor", "ERROR", f"cursor past {last_dt.isoformat()}",
                f"cursor {aware(sig.cursor).isoformat()} with {sig.rows:,} rows",
                f"the load landed {sig.rows:,} rows but its cursor did not advance past the previous load's "
                f"({last_dt.isoformat()}): it re-read old data", last, cur)]
        # a quiet table may land nothing; a busy one whose cursor stays put for several loads is stuck
        run = 1
        for v in prev[::-1]:
            if v >= cur:
                run += 1
            else:
                break
        exp = self.expectation(sig.started_at, end)
        if run > self.cfg.stuck_loads and exp is not None and exp.zero_share <= 0.05 and exp.rows >= 5:
            return [self._anomaly(
                sig, "stuck_cursor", "ERROR", f"cursor advancing every load (~{exp.rows:,.0f} rows, {exp.slot})",
                f"cursor at {last_dt.isoformat()} for {run} loads",
                f"the cursor has not advanced for {run} loads on a table that is rarely quiet", last, cur)]
        return []

    def _creep(self, sig: SyncSignal, end: int) -> list[Anomaly]:
        cfg = self.cfg
        d = sig.duration_s
        if d is None:
            return []
        ts = aware(sig.started_at).timestamp()
        dur = self.dur[:end]
        t = self.t[:end]
        ok = np.isfinite(dur)
        recent = np.append(dur[ok & (t >= ts - 3 * _DAY)][-(cfg.creep_window - 1):], d)
        base = dur[ok & (t < ts - 7 * _DAY) & (t >= ts - cfg.history_days * _DAY)]
        if recent.size < cfg.creep_window or base.size < 10:
            return []
        b = float(np.median(base))
        r = float(np.median(recent))
        if b <= 0 or r / b < cfg.creep_ratio:
            return []
        ranks = np.argsort(np.argsort(recent))
        rho = float(np.corrcoef(np.arange(recent.size), ranks)[0, 1]) if recent.size > 2 else 0.0
        if rho < 0.6 and r / b < 2 * cfg.creep_ratio:
            return []
        return [self._anomaly(
            sig, "duration_creep", "WARN", f"median {b:.0f}s over {base.size} loads a week and more ago",
            f"median {r:.0f}s over the last {recent.size} loads (latest {d:.0f}s)",
            f"syncs take x{r / b:.1f} as long as they used to" + (f" and keep rising (rank correlation {rho:.2f})"
                                                                 if rho >= 0.6 else ""), b, r)]

    def _rates(self, sig: SyncSignal, end: int) -> list[Anomaly]:
        cfg = self.cfg
        ts = aware(sig.started_at).timestamp()
        t = self.t[:end]
        recent = t >= ts - _DAY
        base = (t < ts - _DAY) & (t >= ts - cfg.history_days * _DAY)
        nb = int(base.sum())
        if nb < 10:
            return []
        out = []
        for kind, arr, now_v, label in (("warning_rate", self.warn[:end], sig.warnings, "warnings"),
                                        ("rate_limit_rate", self.rl[:end], sig.rate_limited + sig.retries,
                                         "HTTP 429s/retries")):
            k = int(arr[recent].sum() + now_v)
            n = int(recent.sum()) + 1
            if k < cfg.rate_min_events:
                continue
            per = (float(arr[base].sum()) + 0.5) / (nb + 1)
            lam = per * n
            p = poisson_sf(k, lam)
            if p < cfg.rate_p:
                out.append(self._anomaly(
                    sig, kind, "WARN", f"{per:.2f} {label} per sync over {nb} earlier syncs",
                    f"{k} {label} in the last {n} syncs (24 h)",
                    f"{label} rising: {k} where ~{lam:.1f} were expected (p={p:.1g})", lam, float(k)))
        return out


def normal_cdf(z: float) -> float:
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


def truncated_product_p(ps: Sequence[float], n: int, tau: float) -> float:
    """P(W <= w) for the truncated product W of the p-values at most ``tau`` among ``n``
    independent uniform ones, at the observed ``ps`` (Zaykin et al. 2002); 1.0 when none is."""
    low = [max(p, 1e-300) for p in ps if p <= tau]
    if not low:
        return 1.0
    lw = sum(math.log(p) for p in low)
    total = 0.0
    for k in range(1, n + 1):
        binom = math.comb(n, k) * (1.0 - tau) ** (n - k)
        if lw <= k * math.log(tau):
            # w * sum_{s<k} (k ln tau - ln w)^s / s!
            x = k * math.log(tau) - lw
            term, acc = 1.0, 1.0
            for j in range(1, k):
                term *= x / j
                acc += term
            total += binom * math.exp(lw) * acc
        else:
            total += binom * tau ** k
    return min(1.0, total)


def table_tail(series: "TableSeries", sig: SyncSignal, end: int | None = None
               ) -> tuple[float, float, Expectation] | None:
    """One load's lower-tail p-value against its table's baseline and its ratio to the expected
    rows: the count model for quiet tables, the robust z (normal tail) for the others."""
    if not sig.succeeded or sig.rows is None:
        return None
    end = series.index_before(sig.started_at) if end is None else end
    exp = series.expectation(sig.started_at, end)
    if exp is None:
        return None
    cfg = series.cfg
    quiet = exp.mean <= cfg.count_rows
    expected = exp.mean if quiet else exp.rows
    ratio = (sig.rows + 1.0) / (expected + 1.0)
    if quiet:
        p = exp.tail(sig.rows)
    else:
        z = (math.log1p(sig.rows) - exp.center) / exp.scale
        p = max(normal_cdf(z), poisson_cdf(sig.rows, expected) if expected < 1e6 else 0.0)
    return p, ratio, exp


def detect_sync(series: dict[str, "TableSeries"], sync_id: str) -> list[Anomaly]:
    """A sync whose tables *together* landed improbably little: a silent failure hits a connector's
    load, usually several of its tables at once, each of which may stay within its own noise.
    The tables' lower-tail p-values (``table_tail``) are combined by the truncated product (at most
    ``sync_tau`` each, over every table the sync landed with a baseline); when at least two tables
    under ``drop_ratio`` of their volume bring the combined p-value below ``sync_p``, each of them
    gets a ``volume_drop`` (``zero_rows`` when empty) naming the sync-level evidence."""
    tails: list[tuple[str, SyncSignal, float, float, Expectation]] = []
    cfg = None
    for table, se in series.items():
        sig = next((s for s in reversed(se.all) if s.sync_id == sync_id), None)
        if sig is None:
            continue
        cfg = se.cfg
        t = table_tail(se, sig)
        if t is not None:
            tails.append((table, sig, *t))
    if cfg is None or len(tails) < 2:
        return []
    low = [x for x in tails if x[3] < cfg.drop_ratio and x[2] <= cfg.sync_tau]
    if len(low) < 2:
        return []
    p = truncated_product_p([x[2] for x in low], len(tails), cfg.sync_tau)
    month_end_unknown = any(x[4].month_end_unknown for x in low)
    if p >= cfg.sync_p * (0.1 if month_end_unknown else 1.0):
        return []
    out = []
    names = ", ".join(f"{x[0]} {x[1].rows:,} of ~{(x[4].mean if x[4].mean <= cfg.count_rows else x[4].rows):,.0f}"
                      for x in low)
    for table, sig, pt, ratio, exp in low:
        expected = exp.mean if exp.mean <= cfg.count_rows else exp.rows
        kind = "zero_rows" if sig.rows == 0 else "volume_drop"
        sev = "ERROR" if kind == "zero_rows" or ratio < cfg.error_ratio else "WARN"
        out.append(Anomaly(
            kind=kind, severity=sev, connector=sig.connector, table=table, sync_id=sync_id,
            at=aware(sig.ended_at or sig.started_at),
            baseline=f"~{expected:,.0f} rows ({exp.slot}" + (f"; {exp.month_end}" if exp.month_end else "") + ")",
            observed=f"{sig.rows:,} rows",
            why=(f"the sync landed little on {len(low)} of its {len(tails)} tables at once ({names}; "
                 f"combined p={p:.1g}, this table's p={pt:.1g}): one load of the connector gone wrong"),
            expected=expected, value=float(sig.rows)))
    return out


def detect_latest(signals: Sequence[SyncSignal], cfg: DetectorConfig | None = None
                  ) -> dict[str, list[Anomaly]]:
    """Per table: the anomalies of its latest load (signals of any tables, any order)."""
    by_table: dict[str, list[SyncSignal]] = {}
    for s in signals:
        by_table.setdefault(s.table, []).append(s)
    out: dict[str, list[Anomaly]] = {}
    for table, sigs in by_table.items():
        series = TableSeries(sigs, cfg)
        latest = series.all[-1]
        out[table] = series.detect(latest)
    return out


@dataclass
class LoadVerdict:
    """The latest load of a table and whether it can be trusted (for the assessment)."""

    table: str
    connector: str
    anomalies: list[Anomaly] = field(default_factory=list)
    trusted_data_time: datetime | None = None  # start of the newest load without a data anomaly

    @property
    def untrusted(self) -> bool:
        return any(a.untrusted for a in self.anomalies)

    @property
    def reason(self) -> str:
        return "; ".join(f"{a.kind}: {a.why}" for a in self.anomalies if a.untrusted)


def verdicts(signals: Sequence[SyncSignal], cfg: DetectorConfig | None = None,
             lookback: int = 12) -> dict[str, LoadVerdict]:
    """Per table, the verdict on its latest successful load: its anomalies and, when untrusted,
    the data time of the newest earlier load that was not (checked back ``lookback`` loads)."""
    by_table: dict[str, list[SyncSignal]] = {}
    for s in signals:
        by_table.setdefault(s.table, []).append(s)
    all_series = {table: TableSeries(sigs, cfg) for table, sigs in by_table.items()}
    # the sync-level test on each connector's latest syncs (its tables together)
    by_sync: dict[tuple[str, str], dict[str, TableSeries]] = {}
    for table, series in all_series.items():
        latest = next((s for s in reversed(series.all) if s.succeeded), None)
        if latest is not None:
            by_sync.setdefault((latest.connector, latest.sync_id), {})[table] = series
    sync_found: dict[str, list[Anomaly]] = {}
    for (conn, sid), group in by_sync.items():
        peers = {t: se for t, se in all_series.items()
                 if t not in group and se.all and se.all[0].connector == conn}
        for a in detect_sync({**group, **peers}, sid):
            if a.table in group:
                sync_found.setdefault(a.table, []).append(a)
    out: dict[str, LoadVerdict] = {}
    for table, series in all_series.items():
        oks = [i for i, s in enumerate(series.all) if s.succeeded]
        if not oks:
            continue
        latest = series.all[oks[-1]]
        found = series.detect(latest)
        if not any(a.untrusted for a in found):
            found += sync_found.get(table, [])
        v = LoadVerdict(table=table, connector=latest.connector, anomalies=found)
        if v.untrusted:
            # a run of low loads taints every load of the run
            since = min((a.since for a in v.anomalies if a.untrusted and a.since), default=None)
            for i in reversed(oks[:-1][-lookback:]):
                s = series.all[i]
                if since is not None and aware(s.started_at) >= since:
                    continue
                if not any(a.untrusted for a in series.detect(s)):
                    v.trusted_data_time = aware(s.started_at)
                    break
        out[table] = v
    return out


def recent_window(signals: Iterable[SyncSignal], now: datetime, days: float) -> list[SyncSignal]:
    since = aware(now) - timedelta(days=days)
    return [s for s in signals if aware(s.started_at) >= since]
