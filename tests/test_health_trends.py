"""The health score's 7- and 30-day trends read exactly those windows, and the seasonal baseline's
month-end lift both spares a normal month-end and still catches a silent failure on one."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from orchestrator.health.detect import TableSeries
from orchestrator.health.score import connector_health
from orchestrator.health.synth import ConnectorProfile, SilentFault, TableProfile, generate

UTC = timezone.utc
START = datetime(2026, 1, 5, tzinfo=UTC)
NOW = START + timedelta(days=50, hours=10)


@pytest.fixture(scope="module")
def clean():
    t = TableProfile(base=3000, sigma=0.15, weekend=0.4, amplitude=0.5, peak_hour=13, month_end=1.0)
    p = ConnectorProfile("fivetran:crm", {"crm/orders": t}, interval_min=180, offset_min=3, jitter_min=2,
                         duration_s=600, duration_sigma=0.08, warning_rate=0.0, rate_limit_rate=0.0)
    return generate(p, START, NOW, np.random.default_rng(3)).signals


def _failing(signals, days_ago: tuple[float, float]):
    """Every other sync between ``days_ago`` (from, to) before NOW failed."""
    lo, hi = NOW - timedelta(days=days_ago[0]), NOW - timedelta(days=days_ago[1])
    return [replace(s, status="failed", rows=None) if lo <= s.started_at < hi and i % 2 else s
            for i, s in enumerate(signals)]


@pytest.mark.parametrize("days_ago,trend", [
    ((3, 0), "degrading"),     # failures this week: the 7-day score falls under the 30-day one
    ((20, 10), "improving"),   # failures two-three weeks ago: only the 30-day window holds them
    ((45, 35), "stable"),      # failures before the 30 days: in neither window
])
def test_trend_compares_the_7_and_30_day_windows(clean, days_ago, trend):
    base = connector_health(clean, NOW)
    assert (base.score_7d, base.score_30d, base.trend) == (100, 100, "stable")
    h = connector_health(_failing(clean, days_ago), NOW)
    assert h.trend == trend, (h.score_7d, h.score_30d)
    rel = {c.name: c for c in h.components}["reliability"]
    if trend == "degrading":
        assert h.score_7d <= h.score_30d - 5 and h.score == h.score_7d and rel.points < rel.max_points
    elif trend == "improving":
        assert h.score_7d == 100 and h.score_30d <= 95
    else:
        assert h.score_7d == h.score_30d == 100
    assert h.to_dict()["trend"] == {"7d": h.score_7d, "30d": h.score_30d, "direction": trend}


def _month_end_table():
    t = TableProfile(base=5000, sigma=0.2, weekend=0.3, amplitude=0.6, peak_hour=14, month_end=2.5)
    return ConnectorProfile("fivetran:erp", {"erp/ledger": t}, interval_min=60, offset_min=5, jitter_min=3,
                            duration_s=300, duration_sigma=0.1, warning_rate=0.0, rate_limit_rate=0.0)


def test_a_partial_load_on_a_month_end_day_is_caught_against_the_month_end_lift():
    """A table that lands x2.5 on month-end: a normal load there passes (test_health_detect), and a
    load at a fifth of the month-end volume -- half the volume of an ordinary day, which a baseline
    without the month-end lift would pass (a drop needs < 40% of the expected rows) -- is a drop."""
    at = datetime(2026, 3, 31, 11, tzinfo=UTC)  # the last day of March, two month-ends of history
    f = SilentFault("partial_volume", "fivetran:erp", at, loads=2, share=0.2)
    h = generate(_month_end_table(), START, at + timedelta(hours=3), np.random.default_rng(11), [f])
    se = TableSeries([s for s in h.signals if s.table == "erp/ledger"])
    hit = [se.detect(next(x for x in se.all if x.sync_id == sid)) for _, sid in h.faulty]
    assert len(hit) == 2 and all(a and a[0].kind == "volume_drop" for a in hit), hit
    exp = se.expectation(at + timedelta(minutes=5))
    assert exp.month_end and "month-end lift" in exp.month_end
    # the loads around it on ordinary days (the day before the month-end window) pass
    ordinary = [s for s in se.all if datetime(2026, 3, 27, tzinfo=UTC) <= s.started_at < datetime(2026, 3, 28, tzinfo=UTC)]
    assert ordinary and all(se.detect(s) == [] for s in ordinary)
