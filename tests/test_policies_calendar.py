"""Deadline instants: DST transitions, holidays and weekends, in IANA time zones."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from orchestrator.core.graph import AssetGraph, AssetNode
from orchestrator.policies.calendar import Schedule, shift_cron
from orchestrator.policies.model import CalendarSpec, HolidaySource, load_policies_from_text
from orchestrator.policies.resolve import resolve

UTC = timezone.utc
NY = "America/New_York"


def test_spring_forward_0230_fires_at_0300_edt():
    s = Schedule("30 2 * * *", NY)
    tick = s.next_tick(datetime(2025, 3, 8, 0, 0, tzinfo=UTC))
    assert tick.astimezone(UTC) == datetime(2025, 3, 8, 7, 30, tzinfo=UTC)  # Sat 02:30 EST
    tick = s.next_tick(tick)
    assert tick.astimezone(UTC) == datetime(2025, 3, 9, 7, 0, tzinfo=UTC)  # 02:30 does not exist: 03:00 EDT
    tick = s.next_tick(tick)
    assert tick.astimezone(UTC) == datetime(2025, 3, 10, 6, 30, tzinfo=UTC)  # Mon 02:30 EDT


def test_fall_back_0130_fires_once_at_first_occurrence():
    s = Schedule("30 1 * * *", NY)
    ticks = s.ticks(datetime(2025, 11, 1, 12, 0, tzinfo=UTC), datetime(2025, 11, 3, 12, 0, tzinfo=UTC))
    assert [t.astimezone(UTC) for t in ticks] == [
        datetime(2025, 11, 2, 5, 30, tzinfo=UTC),  # 01:30 EDT, not again at 01:30 EST
        datetime(2025, 11, 3, 6, 30, tzinfo=UTC),  # 01:30 EST
    ]


def test_lead_is_subtracted_on_absolute_time_across_dst():
    # A 3h chain before a 06:00 deadline on the spring-forward day starts at 02:00 EST
    # (07:00 UTC) wall clock: 3 real hours, although 06:00-03:00 local would be 2h.
    text = """
policies:
  - name: p
    select: [{key: dash}]
    deadline: {cron: "0 6 * * *", timezone: America/New_York}
"""
    graph = AssetGraph([AssetNode("src", role="connector_table", kinds=frozenset({"fivetran"})),
                        AssetNode("dash", role="dashboard", upstream=("src",))])
    from orchestrator.policies.durations import DurationModel

    durations = DurationModel({"dash": [3 * 3600] * 10})
    res = resolve(load_policies_from_text(text), graph, durations, now=datetime(2025, 3, 9, 0, 0, tzinfo=UTC))
    dl = res.sla("src").deadline
    assert dl.target_deadline.astimezone(UTC) == datetime(2025, 3, 9, 10, 0, tzinfo=UTC)  # 06:00 EDT
    assert dl.at.astimezone(UTC) == datetime(2025, 3, 9, 7, 0, tzinfo=UTC)
    assert dl.local().strftime("%H:%M %Z") == "03:00 EDT"


def test_business_days_skip_weekends_and_holidays():
    cal = CalendarSpec(weekdays="mon-fri", holidays=HolidaySource(country="US", subdivision="NY"),
                       extra_holidays=[date(2025, 12, 26)], extra_business_days=[date(2025, 11, 29)]).build()
    s = Schedule("0 6 * * *", NY, cal)
    # Thursday 2025-07-03 after 06:00 -> Friday 4 July is Independence Day -> Monday 7 July
    tick = s.next_tick(datetime(2025, 7, 3, 12, 0, tzinfo=UTC))
    assert tick.date() == date(2025, 7, 7) and tick.astimezone(UTC).hour == 10
    # Christmas Thursday, the company's extra holiday Friday 26th, weekend -> Monday 29th
    assert s.next_tick(datetime(2025, 12, 24, 12, 0, tzinfo=UTC)).date() == date(2025, 12, 29)
    # Thanksgiving 27 Nov is a holiday; Friday 28 an ordinary day; Saturday 29 an extra business day
    ticks = s.ticks(datetime(2025, 11, 26, 12, 0, tzinfo=UTC), datetime(2025, 12, 1, 12, 0, tzinfo=UTC))
    assert [t.date() for t in ticks] == [date(2025, 11, 28), date(2025, 11, 29), date(2025, 12, 1)]
    assert s.prev_tick(datetime(2025, 7, 7, 9, 0, tzinfo=UTC)).date() == date(2025, 7, 3)


def test_market_calendar_good_friday():
    cal = CalendarSpec(holidays=HolidaySource(market="NYSE")).build()
    s = Schedule("30 7 * * 1-5", "America/Chicago", cal)
    # Good Friday 2025-04-18: NYSE closed; next tick Monday 21st
    assert s.next_tick(datetime(2025, 4, 17, 18, 0, tzinfo=UTC)).date() == date(2025, 4, 21)


def test_effective_deadline_next_after_skips_to_a_reachable_tick():
    text = """
policies:
  - name: p
    select: [{key: dash}]
    deadline: {cron: "0 6 * * *", timezone: America/New_York, calendar: {weekdays: mon-fri}}
"""
    graph = AssetGraph([AssetNode("src", role="connector_table", kinds=frozenset({"airbyte"})),
                        AssetNode("dash", role="dashboard", upstream=("src",))])
    res = resolve(load_policies_from_text(text), graph, now=datetime(2025, 6, 6, 9, 59, tzinfo=UTC))
    dl = res.sla("src").deadline  # Friday 06:00 EDT deadline, 1 minute away; dashboard takes 1m (prior)
    assert dl.target_deadline == datetime(2025, 6, 6, 10, 0, tzinfo=UTC)
    assert dl.at == datetime(2025, 6, 6, 9, 59, tzinfo=UTC)
    # asked at 09:59:30 the Friday tick is lost for src: next is Monday
    assert dl.next_after(datetime(2025, 6, 6, 9, 59, 30, tzinfo=UTC)) == datetime(2025, 6, 9, 9, 59, tzinfo=UTC)


def test_shift_cron_for_dagster_freshness():
    assert shift_cron("0 6 * * *", timedelta(minutes=105)) == "15 4 * * *"
    assert shift_cron("0 6 * * *", timedelta(minutes=104, seconds=1)) == "15 4 * * *"  # rounds up
    # crossing midnight moves the weekdays back one day (Mon-Fri -> Sun-Thu)
    assert shift_cron("30 1 * * *", timedelta(hours=3), frozenset(range(5))) == "30 22 * * 0,1,2,3,4"
    assert shift_cron("0 6 1 * *", timedelta(hours=7)) is None
