"""Business-day deadline schedules and time windows, evaluated in an IANA time zone.

Plain Python (zoneinfo + cronsim + holidays); no Dagster.

DST rules (the same as Debian cron and Dagster's own schedules):

* a local time that does not exist (02:30 on the spring-forward day in America/New_York)
  fires at the first instant after the gap (03:00 EDT = 07:00 UTC);
* a local time that exists twice (01:30 on the fall-back day) fires once, at its first
  occurrence (01:30 EDT = 05:30 UTC).

Durations (lead times) are subtracted on absolute time, never on wall-clock time, so a chain
of models that takes 3 hours is given 3 real hours even across a DST change.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from cronsim import CronSim, CronSimError

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
UTC = timezone.utc

# How many cron ticks to scan for the next business-day tick before giving up (a calendar that
# excludes every tick for ~3 years is a configuration error, not a loop).
_MAX_SCAN = 2000


@lru_cache(maxsize=256)
def get_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValueError(f"unknown IANA time zone {name!r}") from None


@lru_cache(maxsize=1)
def all_zone_names() -> frozenset[str]:
    return frozenset(available_timezones())


def check_cron(expr: str) -> None:
    """Raise ValueError with cronsim's reason for an invalid 5-field cron expression."""
    _check_cron(expr)


@lru_cache(maxsize=4096)
def _check_cron(expr: str) -> None:
    # Cached per distinct expression (a valid one only: lru_cache does not keep exceptions).
    if len(expr.split()) != 5:
        raise ValueError(
            f"cron expression {expr!r} must have 5 fields (minute hour day month weekday)"
        )
    try:
        CronSim(expr, datetime(2000, 1, 1))
    except CronSimError as exc:
        raise ValueError(f"invalid cron expression {expr!r}: {exc}") from None


def _aware(dt: datetime) -> datetime:
    if dt.tzinfo is None:
        raise ValueError(f"naive datetime {dt!r}: pass a time-zone-aware datetime")
    return dt


@dataclass(frozen=True)
class BusinessCalendar:
    """Which local dates count as business days.

    ``weekdays`` are 0=Monday..6=Sunday. ``holidays`` is an object answering ``date in h``
    (a ``holidays`` library calendar); ``extra_holidays``/``extra_business_days`` override it.
    """

    weekdays: frozenset[int] = frozenset(range(5))
    holidays: object | None = None
    extra_holidays: frozenset[date] = frozenset()
    extra_business_days: frozenset[date] = frozenset()
    description: str = "Mon-Fri"

    def is_business_day(self, day: date) -> bool:
        if day in self.extra_business_days:
            return True
        if day in self.extra_holidays:
            return False
        if day.weekday() not in self.weekdays:
            return False
        return not (self.holidays is not None and day in self.holidays)  # type: ignore[operator]

    def holiday_name(self, day: date) -> str | None:
        if day in self.extra_holidays:
            return "extra holiday"
        if self.holidays is not None and day in self.holidays:  # type: ignore[operator]
            return self.holidays.get(day)  # type: ignore[attr-defined]
        return None


def make_holidays(
    country: str | None = None,
    subdivision: str | None = None,
    market: str | None = None,
    categories: Iterable[str] | None = None,
):
    """A ``holidays`` calendar for a country (+subdivision) or a financial market (NYSE...)."""
    import holidays as holidays_lib

    if market:
        return holidays_lib.financial_holidays(market)
    kwargs = {}
    if subdivision:
        kwargs["subdiv"] = subdivision
    if categories:
        kwargs["categories"] = tuple(categories)
    return holidays_lib.country_holidays(country, **kwargs)


@dataclass(frozen=True)
class Schedule:
    """A deadline schedule: a cron expression in a time zone, optionally on business days only.

    A tick on a non-business local date is skipped (the deadline does not exist that day).
    All instants returned are time-zone aware (in the schedule's zone).
    """

    cron: str
    timezone: str = "UTC"
    calendar: BusinessCalendar | None = None

    def __post_init__(self) -> None:
        check_cron(self.cron)
        get_zone(self.timezone)

    @property
    def zone(self) -> ZoneInfo:
        return get_zone(self.timezone)

    def _iter(self, start: datetime, reverse: bool) -> Iterator[datetime]:
        local = _aware(start).astimezone(self.zone)
        it = CronSim(self.cron, local, reverse=reverse)
        for _ in range(_MAX_SCAN):
            tick = next(it)
            if self.calendar is None or self.calendar.is_business_day(tick.date()):
                yield tick
        raise ValueError(
            f"no business-day tick of {self.cron!r} in {self.timezone} within {_MAX_SCAN} ticks"
        )

    def next_tick(self, after: datetime) -> datetime:
        """The first deadline strictly after ``after``."""
        return self._memo_tick(after, False)

    def prev_tick(self, before: datetime) -> datetime:
        """The last deadline strictly before ``before``."""
        return self._memo_tick(before, True)

    def _memo_tick(self, at: datetime, reverse: bool) -> datetime:
        # Exact memo (orchestrator.perf): once next_tick(a) = n is known, every a' in [a, n) has
        # the same answer (no tick lies in (a, n)); likewise prev_tick(b) = p for b' in (p, n']
        # with n' the first tick after p.
        # Sensors and the simulator ask about "now" every tick, and now moves in small steps.
        from orchestrator import perf

        if not perf.enabled():
            return next(self._iter(at, reverse=reverse))
        memo = self.__dict__.get("_tick_memo")
        if memo is None:
            memo = {False: [], True: []}
            object.__setattr__(self, "_tick_memo", memo)
        spans = memo[reverse]
        at = _aware(at)
        for lo, hi in spans:
            if (lo < at <= hi) if reverse else (lo <= at < hi):
                return lo if reverse else hi
        tick = next(self._iter(at, reverse=reverse))
        if reverse:
            # prev_tick(b) = p holds for every b' in (p, next tick after p]
            spans.insert(0, (tick, self._memo_tick(tick, False)))
        else:
            spans.insert(0, (at, tick))
        del spans[8:]
        return tick

    def ticks(self, start: datetime, end: datetime) -> list[datetime]:
        """All deadlines in (start, end]."""
        out = []
        for tick in self._iter(start, reverse=False):
            if tick > end:
                break
            out.append(tick)
        return out

    def min_interval(self, sample_days: int = 35) -> timedelta:
        """Smallest gap between consecutive cron ticks (ignoring the business calendar)."""
        return cron_min_interval(self.cron, sample_days)

    def describe(self) -> str:
        cal = f", {self.calendar.description}" if self.calendar else ""
        return f"cron '{self.cron}' {self.timezone}{cal}"


@lru_cache(maxsize=4096)
def cron_min_interval(cron: str, sample_days: int = 35) -> timedelta:
    """Smallest gap between consecutive ticks of ``cron`` (UTC, no calendar), once per distinct
    expression: it depends on nothing else, and thousands of assets share a few schedules. The
    usual ``M H * * DOW`` shape is answered exactly without walking ticks (``weekly_min_interval``,
    equal to the sampled gap whenever the sample spans two weeks)."""
    if sample_days >= 14:
        weekly = weekly_min_interval(cron)
        if weekly is not None:
            return weekly
    return sampled_min_interval(cron, sample_days)


def weekly_min_interval(cron: str) -> timedelta | None:
    """Exact smallest gap of a ``M H * * DOW`` cron (single minute and hour, any day of month and
    month): the smallest circular distance between its weekdays. None for any other shape."""
    fields = cron.split()
    if len(fields) != 5 or not (fields[0].isdigit() and fields[1].isdigit()) or fields[2:4] != ["*", "*"]:
        return None
    dow = fields[4]
    if dow == "*":
        return timedelta(days=1)
    days: set[int] = set()
    for part in dow.split(","):
        lo, _, hi = part.partition("-")
        if not lo.isdigit() or (hi and not hi.isdigit()):
            return None
        a, b = int(lo), int(hi or lo)
        if (hi and a >= b) or b > 7:  # a degenerate 'a-a' is read differently by cron dialects: sample it
            return None
        days.update(d % 7 for d in range(a, b + 1))
    if not days:
        return None
    ordered = sorted(days)
    gaps = [(ordered[(i + 1) % len(ordered)] - d) % 7 or 7 for i, d in enumerate(ordered)]
    return timedelta(days=min(gaps))


def sampled_min_interval(cron: str, sample_days: int = 35) -> timedelta:
    """Smallest gap between consecutive ticks of ``cron`` seen over ``sample_days`` (UTC)."""
    start = datetime(2001, 1, 1, tzinfo=UTC)  # a year with no DST in UTC
    it = CronSim(cron, start)
    prev = next(it)
    best: timedelta | None = None
    end = start + timedelta(days=sample_days)
    while True:
        tick = next(it)
        gap = tick - prev
        if best is None or gap < best:
            best = gap
        if tick > end:
            break
        prev = tick
    return best or timedelta(days=1)


# -- windows ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """A recurring window (weekdays + local start/end times, may cross midnight) or a one-off
    window between two instants. ``contains`` is half-open: [start, end)."""

    timezone: str = "UTC"
    days: frozenset[int] = frozenset(range(7))
    start_time: time | None = None
    end_time: time | None = None
    start_at: datetime | None = None
    end_at: datetime | None = None
    reason: str | None = None
    kind: str = "window"
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def recurring(self) -> bool:
        return self.start_at is None

    def contains(self, at: datetime) -> bool:
        at = _aware(at)
        if not self.recurring:
            return self.start_at <= at < self.end_at  # type: ignore[operator]
        local = at.astimezone(get_zone(self.timezone))
        t = local.time().replace(tzinfo=None)
        wd = local.weekday()
        start, end = self.start_time, self.end_time
        assert start is not None and end is not None
        if start < end:
            return wd in self.days and start <= t < end
        # crosses midnight (or start == end: the whole day)
        if start == end:
            return wd in self.days
        return (wd in self.days and t >= start) or (((wd - 1) % 7) in self.days and t < end)

    def next_open(self, after: datetime) -> datetime | None:
        """``after`` if inside the window, else the next instant the window opens (None if never)."""
        after = _aware(after)
        if self.contains(after):
            return after
        if not self.recurring:
            return self.start_at if self.start_at > after else None  # type: ignore[operator]
        zone = get_zone(self.timezone)
        local_day = after.astimezone(zone).date()
        for offset in range(0, 9):
            day = local_day + timedelta(days=offset)
            if day.weekday() not in self.days:
                continue
            opens = datetime.combine(day, self.start_time, tzinfo=zone)  # type: ignore[arg-type]
            # normalise a non-existent local time through UTC
            opens = opens.astimezone(UTC).astimezone(zone)
            if opens > after:
                return opens
        return None

    def describe(self) -> str:
        if not self.recurring:
            text = f"{self.start_at.isoformat()} to {self.end_at.isoformat()}"  # type: ignore[union-attr]
        else:
            if self.days == frozenset(range(7)):
                days = "daily"
            else:
                days = ",".join(WEEKDAYS[d] for d in sorted(self.days))
            text = (
                f"{days} {self.start_time.strftime('%H:%M')}-"  # type: ignore[union-attr]
                f"{self.end_time.strftime('%H:%M')} {self.timezone}"  # type: ignore[union-attr]
            )
        return f"{text} ({self.reason})" if self.reason else text


def any_contains(windows: Iterable[Window], at: datetime) -> Window | None:
    for w in windows:
        if w.contains(at):
            return w
    return None


# -- cron arithmetic (for compiling shifted deadlines into Dagster freshness policies) ------------


def _shift_dow_field(field_text: str, days: int) -> str | None:
    """Shift a weekday field ('1-5', '1,3', '*', 'mon-fri') by ``days`` (negative = earlier)."""
    if field_text == "*":
        return "*"
    names = {n: i for i, n in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
    values: set[int] = set()
    for part in field_text.lower().split(","):
        if any(c in part for c in "/#l?"):
            return None
        bounds = part.split("-")
        try:
            nums = [names[b] if b in names else int(b) for b in bounds]
        except (KeyError, ValueError):
            return None
        nums = [n % 7 for n in nums]
        if len(nums) == 1:
            values.add(nums[0])
        elif len(nums) == 2:
            a, b = nums
            values.update(range(a, b + 1) if a <= b else list(range(a, 7)) + list(range(0, b + 1)))
        else:
            return None
    shifted = sorted({(v + days) % 7 for v in values})
    return ",".join(str(v) for v in shifted)


@lru_cache(maxsize=16384)
def shift_cron(cron: str, earlier: timedelta, weekdays: frozenset[int] | None = None) -> str | None:
    """The cron expression whose ticks are ``earlier`` before those of ``cron`` (wall clock),
    optionally restricted to business ``weekdays`` (0=Mon). None when that cannot be written
    as a cron (minute/hour not single values, or a day shift with a day-of-month field)."""
    minute, hour, dom, month, dow = cron.split()
    if not (minute.isdigit() and hour.isdigit()):
        return None
    if weekdays is not None and dow == "*" and len(weekdays) < 7:
        dow = ",".join(str((d + 1) % 7) for d in sorted(weekdays))  # cron: 0=Sun
    total = int(hour) * 60 + int(minute) - int(-(-earlier.total_seconds() // 60))
    days, rem = divmod(total, 1440)
    if days:
        if dom != "*" or month != "*":
            return None
        new_dow = _shift_dow_field(dow, days)
        if new_dow is None:
            return None
        dow = new_dow
    return f"{rem % 60} {rem // 60} {dom} {month} {dow}"
