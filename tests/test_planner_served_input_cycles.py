"""An input whose own cycle its data already serves works for its consumers' *next* cycle, not the last.

An input (a connector table) feeds several deadlines. Its own cycle (that of its earliest
deadline) is served: its data is newer than that window's opening. It then works for a consumer's
later cycle; it used to take the *latest* one -- a weekly deadline days ahead -- so the cycle open
now (another consumer's) saw the input as "not open yet": no sync until that consumer's latest
start, on p90 estimates, and the cycle was lost when the sync ran long (world 13008: the sync
started at 08:00 for an 08:30 deadline and took 35 minutes; cron-tuned synced at the opening).

Random worlds (Hypothesis): the served deadline's window, the open consumer cycle's opening and
window, the planning instant inside it, and how many days ahead the weekly deadline is.
"""

from __future__ import annotations

import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.core.decide import decide
from orchestrator.core.graph import CONNECTOR_TABLE, DASHBOARD, DBT_MODEL, AssetGraph, AssetNode
from orchestrator.core.records import Snapshot
from orchestrator.policies import DurationModel, load_policies, resolve

UTC = timezone.utc
DAY = datetime(2026, 10, 27, tzinfo=UTC)  # a Tuesday
_DOW = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")

POLICIES = """
policies:
  - name: served
    select: [{{key: "dash/a"}}]
    deadline: {{cron: "0 8 * * *", timezone: UTC, window: {a_window}h}}
    tier: high
    owners: [team:a]
    rollout: auto
    auto_approve: [retry, materialize, resync_table]
  - name: open-now
    select: [{{key: "dash/b"}}]
    deadline: {{cron: "{b_minute} {b_hour} * * *", timezone: UTC, window: {b_window}m}}
    tier: high
    owners: [team:b]
    rollout: auto
    auto_approve: [retry, materialize, resync_table]
  - name: weekly
    select: [{{key: "dash/c"}}]
    deadline: {{cron: "0 9 * * {c_dow}", timezone: UTC, window: 4h}}
    tier: high
    owners: [team:c]
    rollout: auto
    auto_approve: [retry, materialize, resync_table]
"""


def _world(now: datetime, data_time: datetime, policies: str):
    n = AssetNode
    g = AssetGraph([
        n("src/t", CONNECTOR_TABLE, kinds=frozenset({"fivetran"}), connector="fivetran:src"),
        n("m_a", DBT_MODEL, upstream=("src/t",)),
        n("m_b", DBT_MODEL, upstream=("src/t",)),
        n("m_c", DBT_MODEL, upstream=("src/t",)),
        n("dash/a", DASHBOARD, upstream=("m_a",)),
        n("dash/b", DASHBOARD, upstream=("m_b",)),
        n("dash/c", DASHBOARD, upstream=("m_c",)),
    ])
    durations = {"src/t": [600.0] * 6, **{k: [60.0] * 6 for k in ("m_a", "m_b", "m_c")},
                 **{k: [5.0] * 6 for k in ("dash/a", "dash/b", "dash/c")}}
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "p.yaml"
        p.write_text(policies)
        res = resolve(load_policies([p]), g, DurationModel(durations), now)
    assert res.ok, res.skip_reason
    data = {k: data_time for k in g.keys}
    snap = Snapshot(taken_at=now, graph=g, durations=durations,
                    last_success={k: v + timedelta(minutes=10) for k, v in data.items()},
                    data_time=data,
                    # the connector's own sync runs once a day, at 03:00: it lands nothing before
                    # the open cycle's deadline
                    connector_schedules={"fivetran:src": "0 3 * * *"})
    return snap, res


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(a_window_h=st.integers(9, 14), b_opens_min=st.integers(0, 60), b_window_min=st.integers(120, 240),
       now_after_min=st.integers(0, 30), data_after_a_min=st.integers(5, 120), days_ahead=st.integers(2, 5))
def test_a_served_input_is_synced_for_the_cycle_open_now_not_one_days_ahead(
        a_window_h, b_opens_min, b_window_min, now_after_min, data_after_a_min, days_ahead):
    a_opens = DAY + timedelta(hours=8 - a_window_h)
    b_opens = DAY + timedelta(hours=6, minutes=30 + b_opens_min)
    b_tick = b_opens + timedelta(minutes=b_window_min)  # after dash/a's 08:00: dash/a's cycle is the input's own
    now = b_opens + timedelta(minutes=now_after_min)
    data_time = a_opens + timedelta(minutes=data_after_a_min)  # fresh for dash/a's cycle, not dash/b's
    policies = POLICIES.format(a_window=a_window_h, b_minute=b_tick.minute, b_hour=b_tick.hour,
                               b_window=b_window_min, c_dow=_DOW[(DAY.isoweekday() + days_ahead) % 7])
    snap, res = _world(now, data_time, policies)
    d = decide(snap, res, now=now)
    synced = [g for g in d.decisions if "src/t" in g.action.asset_keys and g.action.type == "materialize"
              and g.decision == "execute"]
    assert synced, (f"dash/b's cycle opened at {b_opens:%H:%M} (deadline {b_tick:%H:%M}) and src/t, fresh only "
                    f"for dash/a's, is not synced at {now:%H:%M}", [g.reason for g in d.decisions])
