"""The SLA policy model (pydantic) and its YAML loader with file:line error locations.

A policy file looks like::

    policies:
      - name: executive-revenue
        select:
          - exposure: executive_revenue
        deadline:
          cron: "0 6 * * *"
          timezone: America/New_York
          calendar: {holidays: {country: US, subdivision: NY}}
        tier: critical
        owners: [finance-data@example.com]
        rollout: auto
        auto_approve: [retry, materialize]

See ``policies/README.md`` for every field. Loading never raises on bad input: every problem
becomes a ``PolicyError`` naming the file, the line and the field, and a ``PolicySet`` with any
error applies nothing (see ``resolve``).
"""

from __future__ import annotations

import difflib
import enum
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from orchestrator.policies import calendar as cal

# -- enums ---------------------------------------------------------------------------------------


class Tier(str, enum.Enum):
    critical = "critical"
    high = "high"
    standard = "standard"
    low = "low"

    @property
    def rank(self) -> int:
        """Higher is more critical."""
        return {"critical": 3, "high": 2, "standard": 1, "low": 0}[self.value]


class Rollout(str, enum.Enum):
    shadow = "shadow"  # record only
    recommend = "recommend"  # everything waits for approval
    auto = "auto"  # actions listed in auto_approve run without approval

    @property
    def rank(self) -> int:
        """Higher is more permissive."""
        return {"shadow": 0, "recommend": 1, "auto": 2}[self.value]


# ActionType lives with the other shared vocabularies (orchestrator.core.vocab).
from orchestrator.core.vocab import ActionType  # noqa: E402


# -- scalar parsers ------------------------------------------------------------------------------

_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)\s*(d|h|m|s)")


def parse_duration(value: Any) -> timedelta:
    """'90m', '1h30m', '2h', '45s', '1d', an int (seconds) or a timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("expected a duration like '90m' or '1h30m'")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError("duration must not be negative")
        return timedelta(seconds=value)
    if not isinstance(value, str):
        raise ValueError("expected a duration like '90m' or '1h30m'")
    text = value.strip().replace(" ", "")
    pos, total = 0, 0.0
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    for m in _DURATION_RE.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * units[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise ValueError(f"invalid duration {value!r}: use e.g. '45s', '90m', '1h30m', '2d'")
    return timedelta(seconds=total)


def format_duration(td: timedelta | float) -> str:
    seconds = int(round(td.total_seconds() if isinstance(td, timedelta) else td))
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    d, rem = divmod(seconds, 86400)
    h, rem = divmod(rem, 3600)
    m, s = divmod(rem, 60)
    parts = [f"{d}d" if d else "", f"{h}h" if h else "", f"{m}m" if m else "", f"{s}s" if s else ""]
    return sign + ("".join(parts) or "0s")


def _parse_weekday(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        if 0 <= value <= 6:
            return value
        raise ValueError("weekday numbers are 0 (mon) .. 6 (sun)")
    text = str(value).strip().lower()[:3]
    if text in cal.WEEKDAYS:
        return cal.WEEKDAYS.index(text)
    hint = difflib.get_close_matches(text, cal.WEEKDAYS, n=1)
    raise ValueError(
        f"unknown weekday {value!r}" + (f"; did you mean {hint[0]!r}?" if hint else "")
        + " (use mon, tue, wed, thu, fri, sat, sun)"
    )


def _parse_weekdays(value: Any) -> list[int]:
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("weekdays", "business"):
            return [0, 1, 2, 3, 4]
        if text in ("weekend", "weekends"):
            return [5, 6]
        if text in ("daily", "all", "every day"):
            return list(range(7))
        if "-" in text:
            a, b = (_parse_weekday(p) for p in text.split("-", 1))
            return list(range(a, b + 1)) if a <= b else list(range(a, 7)) + list(range(0, b + 1))
        return [_parse_weekday(p) for p in text.split(",")]
    if isinstance(value, (list, tuple)):
        return [_parse_weekday(v) for v in value]
    raise ValueError("expected weekdays like [mon, tue] or 'mon-fri'")


def _parse_time(value: Any) -> time:
    if isinstance(value, time):
        return value
    text = str(value).strip()
    m = re.fullmatch(r"(\d{1,2}):(\d{2})", text)
    if not m or int(m.group(1)) > 24 or int(m.group(2)) > 59:
        raise ValueError(f"invalid time of day {value!r}: use 'HH:MM' (24h)")
    hour, minute = int(m.group(1)), int(m.group(2))
    if hour == 24:
        if minute:
            raise ValueError(f"invalid time of day {value!r}")
        return time(23, 59, 59, 999999)
    return time(hour, minute)


def _timezone(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("expected an IANA time zone name like 'America/New_York'")
    try:
        cal.get_zone(value)
    except ValueError:
        hint = difflib.get_close_matches(value, sorted(cal.all_zone_names()), n=1, cutoff=0.6)
        raise ValueError(
            f"unknown IANA time zone {value!r}" + (f"; did you mean {hint[0]!r}?" if hint else "")
        ) from None
    return value


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
TimeZone = Annotated[str, BeforeValidator(_timezone)]
Weekdays = Annotated[list[int], BeforeValidator(_parse_weekdays)]

_OWNER_RE = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,7}|team:[A-Za-z0-9_.-]+")
_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}")


def _owner(value: Any) -> str:
    if not isinstance(value, str) or not _OWNER_RE.fullmatch(value):
        raise ValueError(
            f"invalid owner {value!r}: use an email address or 'team:<name>' (Dagster's rule)"
        )
    return value


Owner = Annotated[str, BeforeValidator(_owner)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)


# -- selectors -----------------------------------------------------------------------------------

SELECTOR_FIELDS = ("key", "group", "kind", "tag", "owner", "exposure", "role", "upstream_of")
ROLES = ("connector_table", "dbt_model", "dbt_source", "dashboard", "other")


class Selector(_Strict):
    """Which assets a policy governs. Terms inside one selector are ANDed; a policy's list of
    selectors is ORed; ``exclude`` selectors are removed.

    * ``key``: an asset key, or a glob (``salesforce/*``; ``*`` also crosses ``/``)
    * ``group`` / ``kind`` / ``owner``: exact or a glob (``fivetran_*``); ``role``: exact
    * ``tag``: ``name``, ``name=value`` or a mapping ``{name: value}``
    * ``exposure``: a dbt exposure name (its dashboard asset)
    * ``upstream_of``: everything upstream of a key/glob or of a nested selector (inclusive)
    """

    key: str | None = None
    group: str | None = None
    kind: str | None = None
    tag: str | dict[str, str] | None = None
    owner: str | None = None
    exposure: str | None = None
    role: Literal["connector_table", "dbt_model", "dbt_source", "dashboard", "other"] | None = None
    upstream_of: str | Selector | None = None
    include_self: bool = True  # with upstream_of: include the selected assets themselves

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"key": value}
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> Selector:
        if not any(getattr(self, f) is not None for f in SELECTOR_FIELDS):
            raise ValueError(f"a selector needs at least one of: {', '.join(SELECTOR_FIELDS)}")
        return self

    def tag_items(self) -> list[tuple[str, str | None]]:
        if self.tag is None:
            return []
        if isinstance(self.tag, dict):
            return [(k, None if v is None else str(v)) for k, v in self.tag.items()]
        name, sep, val = self.tag.partition("=")
        return [(name, val if sep else None)]


# -- deadline, calendar, budget, windows -----------------------------------------------------------


class HolidaySource(_Strict):
    country: str | None = None  # ISO 3166 code: US, GB, DE...
    subdivision: str | None = None  # NY, CA, ENG...
    market: str | None = None  # financial market: NYSE, ECB...
    categories: list[str] | None = None

    @model_validator(mode="after")
    def _check(self) -> HolidaySource:
        import holidays as holidays_lib

        if bool(self.country) == bool(self.market):
            raise ValueError("give exactly one of 'country' or 'market'")
        # the registry's codes, without importing every country's module (list_supported_*
        # does: about a second of every command that loads policies); only the one named is loaded
        from holidays.registry import EntityLoader

        if self.market:
            markets = set(EntityLoader.get_financial_codes())
            if self.market not in markets:
                hint = difflib.get_close_matches(self.market.upper(), list(markets), n=1)
                raise ValueError(
                    f"unknown market {self.market!r}"
                    + (f"; did you mean {hint[0]!r}?" if hint else "")
                )
            return self
        countries = set(EntityLoader.get_country_codes())
        if self.country not in countries:
            hint = difflib.get_close_matches(str(self.country).upper(), sorted(countries), n=1)
            raise ValueError(
                f"unknown country {self.country!r} for holidays"
                + (f"; did you mean {hint[0]!r}?" if hint else "")
            )
        subdivs = list(getattr(holidays_lib, self.country).subdivisions)
        if self.subdivision and self.subdivision not in subdivs:
            hint = difflib.get_close_matches(self.subdivision.upper(), list(subdivs), n=1)
            raise ValueError(
                f"unknown subdivision {self.subdivision!r} of {self.country}"
                + (f"; did you mean {hint[0]!r}?" if hint else "")
            )
        try:
            self.build()
        except Exception as exc:  # e.g. unsupported category
            raise ValueError(str(exc)) from None
        return self

    def build(self):
        return cal.make_holidays(self.country, self.subdivision, self.market, self.categories)

    def describe(self) -> str:
        if self.market:
            return f"{self.market} holidays"
        return f"{self.country}{'-' + self.subdivision if self.subdivision else ''} holidays"


class CalendarSpec(_Strict):
    """Business days: ``weekdays`` minus ``holidays`` minus ``extra_holidays`` plus
    ``extra_business_days``."""

    weekdays: Weekdays = Field(default_factory=lambda: [0, 1, 2, 3, 4])
    holidays: HolidaySource | None = None
    extra_holidays: list[date] = Field(default_factory=list)
    extra_business_days: list[date] = Field(default_factory=list)

    @field_validator("weekdays")
    @classmethod
    def _nonempty(cls, v: list[int]) -> list[int]:
        if not v:
            raise ValueError("a calendar needs at least one business weekday")
        return v

    def build(self) -> cal.BusinessCalendar:
        days = sorted(set(self.weekdays))
        if days == [0, 1, 2, 3, 4]:
            desc = "Mon-Fri"
        else:
            desc = ",".join(cal.WEEKDAYS[d].capitalize() for d in days)
        if self.holidays:
            desc += f" except {self.holidays.describe()}"
        return cal.BusinessCalendar(
            weekdays=frozenset(days),
            holidays=self.holidays.build() if self.holidays else None,
            extra_holidays=frozenset(self.extra_holidays),
            extra_business_days=frozenset(self.extra_business_days),
            description=desc,
        )


class Deadline(_Strict):
    """Fresh by each tick of ``cron`` (local time in ``timezone``), on business days only when
    ``calendar`` is set. ``window``: how long before each deadline the work for it may start
    (default: the cron's smallest interval, at most 24h) — a critical path longer than that
    cannot meet the deadline."""

    cron: str
    timezone: TimeZone = "UTC"
    calendar: CalendarSpec | None = None
    window: Duration | None = None

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str) -> str:
        cal.check_cron(v)
        return v

    @field_validator("window")
    @classmethod
    def _window(cls, v: timedelta | None) -> timedelta | None:
        if v is not None and v < timedelta(minutes=1):
            raise ValueError("window must be at least 1 minute")
        return v

    def build(self) -> cal.Schedule:
        return cal.Schedule(
            self.cron, self.timezone, self.calendar.build() if self.calendar else None
        )

    def effective_window(self, schedule: cal.Schedule) -> timedelta:
        if self.window is not None:
            return self.window
        return min(schedule.min_interval(), timedelta(days=1))


class Budget(_Strict):
    """Warehouse/connector cost allowed for the assets a policy governs."""

    per_day: float | None = Field(default=None, ge=0)
    per_month: float | None = Field(default=None, ge=0)
    unit: Literal["usd", "credits"] = "usd"

    @model_validator(mode="after")
    def _some(self) -> Budget:
        if self.per_day is None and self.per_month is None:
            raise ValueError("a budget needs 'per_day' and/or 'per_month'")
        return self


class WindowSpec(_Strict):
    """Recurring: ``days`` + ``start``/``end`` as 'HH:MM' local (may cross midnight).
    One-off: ``start``/``end`` as dates or date-times."""

    start: Any
    end: Any
    days: Weekdays | None = None
    timezone: TimeZone | None = None
    reason: str | None = None

    @model_validator(mode="after")
    def _check(self) -> WindowSpec:
        rec = [_is_clock(self.start), _is_clock(self.end)]
        if all(rec):
            _parse_time(self.start)
            _parse_time(self.end)
        elif any(rec):
            raise ValueError("start and end must both be 'HH:MM' times or both be dates/datetimes")
        else:
            if self.days is not None:
                raise ValueError("'days' only applies to recurring windows ('HH:MM' start/end)")
            start, end = _to_datetime(self.start, "start"), _to_datetime(self.end, "end")
            if end <= start:
                raise ValueError("end must be after start")
        return self

    def build(self, default_tz: str, kind: str) -> cal.Window:
        tz = self.timezone or default_tz
        zone = cal.get_zone(tz)
        if _is_clock(self.start):
            return cal.Window(
                timezone=tz,
                days=frozenset(self.days if self.days is not None else range(7)),
                start_time=_parse_time(self.start),
                end_time=_parse_time(self.end),
                reason=self.reason,
                kind=kind,
            )
        start, end = _to_datetime(self.start, "start"), _to_datetime(self.end, "end")
        return cal.Window(
            timezone=tz,
            start_at=start if start.tzinfo else start.replace(tzinfo=zone),
            end_at=end if end.tzinfo else end.replace(tzinfo=zone),
            reason=self.reason,
            kind=kind,
        )


def _is_clock(v: Any) -> bool:
    return isinstance(v, time) or (isinstance(v, str) and bool(re.fullmatch(r"\d{1,2}:\d{2}", v.strip())))


def _to_datetime(v: Any, what: str) -> datetime:
    if isinstance(v, datetime):
        return v
    if isinstance(v, date):
        return datetime(v.year, v.month, v.day)
    if isinstance(v, str):
        try:
            return datetime.fromisoformat(v.strip())
        except ValueError:
            pass
    raise ValueError(f"{what}: expected 'HH:MM', a date (2025-12-24) or a date-time, got {v!r}")


class Windows(_Strict):
    off_peak: list[WindowSpec] = Field(default_factory=list)
    blackout: list[WindowSpec] = Field(default_factory=list)


# -- policy --------------------------------------------------------------------------------------


class Policy(_Strict):
    name: str
    description: str | None = None
    select: list[Selector] = Field(min_length=1)
    exclude: list[Selector] = Field(default_factory=list)
    deadline: Deadline | None = None
    max_lag: Duration | None = None
    tier: Tier = Tier.standard
    rollout: Rollout = Rollout.recommend
    auto_approve: list[ActionType] = Field(default_factory=list)
    owners: list[Owner] = Field(default_factory=list)
    budget: Budget | None = None
    windows: Windows = Field(default_factory=Windows)
    priority: int = 0

    # where it came from (set by the loader)
    _file: str = PrivateAttr(default="<memory>")
    _line: int = PrivateAttr(default=0)
    _index: int = PrivateAttr(default=0)
    _order: int = PrivateAttr(default=0)
    _lines: dict = PrivateAttr(default_factory=dict)
    _schedule: Any = PrivateAttr(default=None)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME_RE.fullmatch(v):
            raise ValueError(
                f"invalid policy name {v!r}: lower-case letters, digits, '-', '_', '.'; "
                "at most 63 characters (it becomes a Dagster tag value)"
            )
        return v

    @field_validator("max_lag")
    @classmethod
    def _lag(cls, v: timedelta | None) -> timedelta | None:
        if v is not None and v < timedelta(minutes=1):
            raise ValueError("max_lag must be at least 1 minute")
        return v

    @field_validator("auto_approve", mode="before")
    @classmethod
    def _actions(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = [v]
        if isinstance(v, list):
            names = [a.value for a in ActionType]
            for item in v:
                if isinstance(item, str) and item not in names:
                    hint = difflib.get_close_matches(item, names, n=1)
                    raise ValueError(
                        f"unknown action {item!r}"
                        + (f"; did you mean {hint[0]!r}?" if hint else "")
                        + f" (one of: {', '.join(names)})"
                    )
        return v

    # -- provenance ------------------------------------------------------------------------------
    @property
    def file(self) -> str:
        return self._file

    @property
    def line(self) -> int:
        return self._line

    @property
    def order(self) -> int:
        return self._order

    def line_of(self, *field_path: str | int) -> int:
        """Line of a field of this policy in its file (the policy's line if unknown)."""
        path = tuple(field_path)
        while path:
            if path in self._lines:
                return self._lines[path]
            path = path[:-1]
        return self._line

    @property
    def where(self) -> str:
        return f"{self._file}:{self._line}"

    # -- compiled parts (cached per instance) ----------------------------------------------------
    def schedule(self) -> cal.Schedule | None:
        if self._schedule is None and self.deadline is not None:
            self._schedule = self.deadline.build()
        return self._schedule

    def default_timezone(self) -> str:
        return self.deadline.timezone if self.deadline else "UTC"

    def off_peak_windows(self) -> tuple[cal.Window, ...]:
        tz = self.default_timezone()
        return tuple(w.build(tz, "off_peak") for w in self.windows.off_peak)

    def blackout_windows(self) -> tuple[cal.Window, ...]:
        tz = self.default_timezone()
        return tuple(w.build(tz, "blackout") for w in self.windows.blackout)


class PolicyFile(_Strict):
    """Top-level keys starting with ``x-`` are ignored (use them for YAML anchors)."""

    version: Literal[1] = 1
    policies: list[Policy] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _drop_extensions(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: v for k, v in value.items() if not (isinstance(k, str) and k.startswith("x-"))}
        return value


ALL_FIELD_NAMES = sorted(
    {
        name
        for model in (PolicyFile, Policy, Selector, Deadline, CalendarSpec, HolidaySource, Budget,
                      WindowSpec, Windows)
        for name in model.model_fields
    }
)

# -- errors --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyError:
    file: str
    line: int
    field: str
    message: str
    severity: Literal["error", "warning"] = "error"
    suggestion: str | None = None

    def __str__(self) -> str:
        prefix = "" if self.severity == "error" else "warning: "
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {prefix}{self.field}: {self.message}" if self.field else (
            f"{where}: {prefix}{self.message}"
        )


# -- YAML with line numbers ----------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2-ish scalars: '22:00' stays a string (not sexagesimal 1320),
    'NO' stays a string (not False: it is Norway's country code)."""


_Loader.yaml_implicit_resolvers = {}
for _tag, _regexp, _first in [
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", list("tTfF")),
    ("tag:yaml.org,2002:int", r"^[-+]?(?:0|[1-9][0-9_]*)$", list("-+0123456789")),
    (
        "tag:yaml.org,2002:float",
        r"^[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?$",
        list("-+0123456789."),
    ),
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("tag:yaml.org,2002:merge", r"^(?:<<)$", ["<"]),
    (
        "tag:yaml.org,2002:timestamp",
        r"""^(?:[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]
        |[0-9][0-9][0-9][0-9] -[0-9][0-9]? -[0-9][0-9]?
        (?:[Tt]|[ \t]+)[0-9][0-9]?
        :[0-9][0-9] :[0-9][0-9] (?:\.[0-9]*)?
        (?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?)$""",
        list("0123456789"),
    ),
]:
    _Loader.add_implicit_resolver(_tag, re.compile(_regexp, re.X), _first)


def _walk(node: yaml.Node, path: tuple, lines: dict, problems: list) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = key_node.value
            line = key_node.start_mark.line + 1
            if key in seen:
                problems.append((path + (key,), line, f"duplicate key {key!r} (first at line {seen[key]})"))
            seen[key] = line
            lines[path + (key,)] = line
            _walk(value_node, path + (key,), lines, problems)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[path + (i,)] = item.start_mark.line + 1
            _walk(item, path + (i,), lines, problems)


def _field_label(path: Sequence, data: Any) -> str:
    out = ""
    cur = data
    for part in path:
        if isinstance(part, int):
            label = f"[{part}]"
            if isinstance(cur, list) and part < len(cur) and isinstance(cur[part], dict):
                name = cur[part].get("name")
                if isinstance(name, str) and out == "policies":
                    label = f"[{part}]({name})"
            out += label
        else:
            out += ("." if out else "") + str(part)
        try:
            cur = cur[part]
        except (KeyError, IndexError, TypeError):
            cur = None
    return out


def _data_path(loc: Sequence, data: Any) -> tuple:
    """Keep the parts of a pydantic error location that walk the YAML data."""
    path: list = []
    cur = data
    for part in loc:
        if isinstance(cur, dict) and part in cur:
            path.append(part)
            cur = cur[part]
        elif isinstance(cur, list) and isinstance(part, int) and 0 <= part < len(cur):
            path.append(part)
            cur = cur[part]
        elif isinstance(cur, dict) and isinstance(part, str) and part not in cur and len(path) == len(loc) - 1:
            # missing required field: point at the mapping that lacks it, name the field
            path.append(part)
            break
        # else: a union/validator tag in the location; skip it
    return tuple(path)


def _pydantic_message(err: dict, path: tuple) -> tuple[str, str | None]:
    kind = err.get("type")
    if kind == "extra_forbidden":
        name = str(path[-1]) if path else str(err["loc"][-1])
        hint = difflib.get_close_matches(name, ALL_FIELD_NAMES, n=1)
        return (
            f"unknown field {name!r}" + (f"; did you mean {hint[0]!r}?" if hint else ""),
            hint[0] if hint else None,
        )
    if kind == "missing":
        return "required field is missing", None
    msg = err.get("msg", "invalid value")
    msg = re.sub(r"^(Value error|Assertion failed), ", "", msg)
    if kind == "enum" or kind == "literal_error":
        given = err.get("input")
        expected = (err.get("ctx") or {}).get("expected", "")
        choices = re.findall(r"'([^']+)'", expected)
        hint = difflib.get_close_matches(str(given), choices, n=1) if choices else []
        msg = f"{given!r} is not one of {expected}" + (f"; did you mean {hint[0]!r}?" if hint else "")
        return msg, hint[0] if hint else None
    return msg, None


# Hostile files: a policy or scenario file is parsed within these bounds, or rejected with its
# file and line (documented in policies/README.md). An alias bomb (a few hundred bytes expanding
# to billions of nodes) or a self-referencing alias is refused before anything walks the data.
MAX_YAML_BYTES = 2_000_000  # characters of one file
MAX_YAML_DEPTH = 64  # nesting of collections, as written and once aliases are expanded
MAX_YAML_ALIASES = 1_000  # '*name' references in one document
MAX_YAML_NODES = 250_000  # nodes once every alias is expanded


class YAMLLimitError(yaml.MarkedYAMLError):
    """The document is over a limit (size, nesting, aliases, expansion) or self-referencing."""


class _BoundedLoader(_Loader):
    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_YAML_ALIASES:
                raise YAMLLimitError(None, None, f"more than {MAX_YAML_ALIASES} aliases in one document",
                                     self.peek_event().start_mark)
            return super().compose_node(parent, index)
        self._depth += 1
        if self._depth > MAX_YAML_DEPTH:
            raise YAMLLimitError(None, None, f"nested more than {MAX_YAML_DEPTH} levels deep",
                                 self.peek_event().start_mark)
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_expansion(root: yaml.Node) -> None:
    """Linear in the composed graph (shared nodes counted once per visit, memoised): the number
    of nodes and the depth the data has once aliases are expanded, and alias cycles."""
    size: dict[int, tuple[int, int]] = {}  # id -> (expanded nodes, expanded depth)
    open_: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        nid = id(node)
        if done:
            open_.discard(nid)
            kids = [size[id(c)] for c in _children(node)]
            total = 1 + sum(k[0] for k in kids)
            depth = 1 + max((k[1] for k in kids), default=0)
            if total > MAX_YAML_NODES:
                raise YAMLLimitError(None, None, f"expands to more than {MAX_YAML_NODES:,} nodes through aliases "
                                                 "(an alias bomb?)", node.start_mark)
            if depth > MAX_YAML_DEPTH:
                raise YAMLLimitError(None, None, f"nested more than {MAX_YAML_DEPTH} levels deep once aliases "
                                                 "are expanded", node.start_mark)
            size[nid] = (total, depth)
            continue
        if nid in size:
            continue
        open_.add(nid)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in open_:
                raise YAMLLimitError(None, None, "an alias refers to a collection that contains it "
                                                 "(self-referencing alias)", child.start_mark)
            if id(child) not in size:
                stack.append((child, False))


_QUOTED_OR_COMMENT = re.compile(r'"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\n]|\'\')*\'|(?:^|(?<=\s))#[^\n]*', re.M)
_BRACKET = re.compile(r"[\[\]{}]")


def _check_flow_depth(text: str) -> None:
    """Flow brackets nested deeper than the limit, found before PyYAML's scanner (which looks
    ahead up to 1,024 characters per open bracket: quadratic on '[[[[...')."""
    if text.count("[") + text.count("{") <= MAX_YAML_DEPTH:
        return
    stripped = _QUOTED_OR_COMMENT.sub(lambda m: " " * len(m.group(0)), text)
    depth = 0
    for m in _BRACKET.finditer(stripped):
        depth = depth + 1 if m.group(0) in "[{" else max(0, depth - 1)
        if depth > MAX_YAML_DEPTH:
            line = text.count("\n", 0, m.start())
            raise YAMLLimitError(None, None, f"nested more than {MAX_YAML_DEPTH} levels deep",
                                 yaml.Mark("<file>", m.start(), line, m.start() - text.rfind("\n", 0, m.start()) - 1,
                                           None, None))


try:  # libyaml is optional for PyYAML: without it every document takes the bounded loader
    from yaml.cyaml import CParser as _CParser
except ImportError:  # pragma: no cover
    _CParser = None

if _CParser is not None:
    class _FastLoader(_CParser, yaml.constructor.SafeConstructor, yaml.resolver.Resolver):
        """libyaml's parser and composer (C) with ``_Loader``'s resolvers and constructors: the
        same nodes and data as ``_Loader`` for a valid document, ~10x faster. Unbounded while
        composing, so its result is used only once checked within every limit (``_compose_fast``)."""

        def __init__(self, stream):
            _CParser.__init__(self, stream)
            yaml.constructor.SafeConstructor.__init__(self)
            yaml.resolver.Resolver.__init__(self)

    _FastLoader.yaml_implicit_resolvers = _Loader.yaml_implicit_resolvers
    _FastLoader.yaml_constructors = _Loader.yaml_constructors
else:  # pragma: no cover
    _FastLoader = None
_MISS = object()


def _compose_fast(text: str):
    """(node, data) through libyaml when the document is valid and within every limit; ``_MISS``
    otherwise, and then the bounded pure-Python loader reads it and reports exactly what it always
    reported (syntax errors, limits, their lines). Within the limits, the written depth and alias
    count never exceed the expanded depth and node count ``_check_expansion`` bounds, so whatever
    this accepts the bounded loader accepts too, with the same result (tests/test_yaml_fast_path.py)."""
    if _FastLoader is None or len(text) > MAX_YAML_BYTES:
        return _MISS
    loader = _FastLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except (yaml.YAMLError, RecursionError, ValueError):
            return _MISS
        if node is None:
            return None, None
        seen: set[int] = set()
        edges = 0
        stack = [node]
        while stack:
            n = stack.pop()
            if id(n) in seen:
                continue
            seen.add(id(n))
            kids = _children(n)
            edges += len(kids)
            stack.extend(kids)
        if edges - (len(seen) - 1) > MAX_YAML_ALIASES:  # references to a node already composed
            return _MISS
        try:
            _check_expansion(node)
        except YAMLLimitError:
            return _MISS
        return node, loader.construct_document(node)
    finally:
        loader.dispose()


def load_yaml_document(text: str) -> tuple[yaml.Node | None, object]:
    """One YAML document as (node, data): the node keeps the line marks errors point at.

    Bounded: over ``MAX_YAML_BYTES`` characters, ``MAX_YAML_DEPTH`` levels, ``MAX_YAML_ALIASES``
    aliases or ``MAX_YAML_NODES`` expanded nodes, or with a self-referencing alias, it raises
    :class:`YAMLLimitError` (a ``yaml.MarkedYAMLError``: it carries the line)."""
    if len(text) > MAX_YAML_BYTES:
        line = text.count("\n", 0, MAX_YAML_BYTES) + 1
        raise YAMLLimitError(None, None, f"file is larger than {MAX_YAML_BYTES:,} characters ({len(text):,})",
                             yaml.Mark("<file>", MAX_YAML_BYTES, line - 1, 0, None, None))
    _check_flow_depth(text)
    fast = _compose_fast(text)
    if fast is not _MISS:
        return fast
    loader = _BoundedLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        _check_expansion(node)
        return node, loader.construct_document(node)
    except RecursionError:
        raise YAMLLimitError(None, None, "nested too deeply", None) from None
    finally:
        loader.dispose()


def parse_policy_text(text: str, file: str = "<memory>") -> tuple[list[Policy], list[PolicyError]]:
    """Parse one YAML document of policies. Never raises for bad input."""
    errors: list[PolicyError] = []
    try:
        node, data = load_yaml_document(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        what = "YAML rejected" if isinstance(exc, YAMLLimitError) else "YAML syntax error"
        return [], [PolicyError(file, line, "", f"{what}: {exc.problem or exc}")]
    except yaml.YAMLError as exc:
        return [], [PolicyError(file, 0, "", f"YAML error: {exc}")]
    if data is None:
        return [], []
    if not isinstance(data, dict):
        return [], [PolicyError(file, node.start_mark.line + 1, "",
                                "a policy file must be a mapping with a 'policies' list")]
    lines: dict[tuple, int] = {}
    problems: list = []
    _walk(node, (), lines, problems)
    for path, line, msg in problems:
        errors.append(PolicyError(file, line, _field_label(path, data), msg))

    def line_for(path: tuple) -> int:
        p = path
        while p:
            if p in lines:
                return lines[p]
            p = p[:-1]
        return lines.get((), 1)

    try:
        parsed = PolicyFile.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            path = _data_path(err["loc"], data)
            msg, suggestion = _pydantic_message(err, path)
            errors.append(
                PolicyError(file, line_for(path), _field_label(path, data), msg, suggestion=suggestion)
            )
        return [], errors

    policies = parsed.policies
    # each policy's own field lines, in one pass over the document (not one pass per policy)
    per_policy: dict[int, dict[tuple, int]] = {}
    for p, ln in lines.items():
        if len(p) > 2 and p[0] == "policies" and isinstance(p[1], int):
            per_policy.setdefault(p[1], {})[p[2:]] = ln
    for i, policy in enumerate(policies):
        policy._file = file
        policy._index = i
        policy._line = lines.get(("policies", i), 0)
        policy._lines = per_policy.get(i, {})
    return policies, errors


# -- policy sets ---------------------------------------------------------------------------------


@dataclass
class PolicySet:
    """All policies loaded from a set of files, with every load/validation problem."""

    policies: list[Policy] = field(default_factory=list)
    errors: list[PolicyError] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(e.severity == "error" for e in self.errors)

    def by_name(self, name: str) -> Policy:
        for p in self.policies:
            if p.name == name:
                return p
        raise KeyError(name)

    def names(self) -> list[str]:
        return [p.name for p in self.policies]


def _display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def policy_files(paths: Iterable[str | Path]) -> tuple[list[Path], list[PolicyError]]:
    files: list[Path] = []
    errors: list[PolicyError] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()))
        elif path.is_file():
            files.append(path)
        else:
            errors.append(PolicyError(str(raw), 0, "", "no such file or directory"))
    return files, errors


def load_policies(paths: Iterable[str | Path] = ("policies",)) -> PolicySet:
    """Load every ``*.yaml``/``*.yml`` under the given files/directories. Never raises."""
    files, errors = policy_files(paths)
    result = PolicySet(errors=errors)
    order = 0
    seen: dict[str, Policy] = {}
    for path in files:
        display = _display_path(path)
        result.files.append(display)
        try:
            with open(path, encoding="utf-8") as fh:  # never more than the limit (+1: "over the limit")
                text = fh.read(MAX_YAML_BYTES + 1)
        except (OSError, UnicodeDecodeError) as exc:
            result.errors.append(PolicyError(display, 0, "", f"cannot read: {exc}"))
            continue
        policies, errs = parse_policy_text(text, display)
        result.errors.extend(errs)
        for policy in policies:
            if policy.name in seen:
                first = seen[policy.name]
                result.errors.append(
                    PolicyError(display, policy.line_of("name"), f"policies[{policy._index}].name",
                                f"duplicate policy name {policy.name!r} (first defined at {first.where})")
                )
                continue
            seen[policy.name] = policy
            policy._order = order
            order += 1
            result.policies.append(policy)
    return result


def load_policies_from_text(text: str, file: str = "<memory>") -> PolicySet:
    policies, errors = parse_policy_text(text, file)
    for i, p in enumerate(policies):
        p._order = i
    return PolicySet(policies=policies, errors=errors, files=[file])
