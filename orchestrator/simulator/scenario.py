"""Scenario files: a fleet (connectors, models, dashboards), its capacity, durations, costs, faults
and baselines, validated with ``file:line: field: message`` errors.

A scenario is YAML (see ``orchestrator/simulator/README.md`` for every field)::

    name: small
    start: 2026-03-02T20:00:00Z      # virtual clock origin (UTC)
    horizon: 24h
    policies: [small.policies.yaml]  # SLA policy files, relative to this file
    graph:                           # explicit graph ...
      connectors:
        - {id: "fivetran:crm", tables: [crm/account], schedule: "0 */4 * * *"}
      assets:
        - {key: stg_account, upstream: [crm/account]}
        - {key: dashboard/revenue, role: dashboard, upstream: [stg_account]}
    # ... or a dbt manifest plus connectors for its sources:
    # graph: {manifest: dbt_manifests/mitodl_ol_dbt.manifest.json.gz,
    #         connectors: [{id: "airbyte:raw", tables: ["ol_warehouse_raw_data/*"]}]}
    durations:
      model: {trace_family: pegasus/montage, scale: 0.5}   # real runtimes (WfCommons)
      connector: {median: 12m, sigma: 0.4}                 # lognormal
    capacity: {warehouse_slots: 4, per_source: 1}
    cost: {warehouse_usd_per_hour: 12, off_peak: [{start: "20:00", end: "06:00", factor: 0.6}]}
    faults:
      - {name: crm-429, category: rate_limit, targets: ["fivetran:crm"], at: ["02:00"],
         every: 3h, count: 4, lasts: 20m}

Loading is split in two: :func:`load_scenario` validates and builds the static fleet (graph,
pools, connectors) once; :meth:`Scenario.realise` draws one seed's durations, per-attempt fault
draws and fault episodes, so every planner sees exactly the same world for a given seed.
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import json
import os
import re
from dataclasses import dataclass, field, replace
from datetime import datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from orchestrator.core.graph import CONNECTOR_TABLE, DASHBOARD, DBT_MODEL, DBT_SOURCE, AssetGraph, AssetNode
from orchestrator.policies.calendar import check_cron
from orchestrator.policies.model import Duration, _data_path, _walk, load_yaml_document

UTC = timezone.utc
REPO_ROOT = Path(__file__).resolve().parents[2]
SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"
DEFAULT_DATA_DIR = REPO_ROOT.parent / "shared" / "data"
FAILURE_MESSAGES = REPO_ROOT / "tests" / "data" / "failure_messages.jsonl"

CATEGORIES = (
    "rate_limit", "auth_expired", "permission_denied", "schema_drift", "source_unavailable",
    "destination_capacity", "data_quality", "code_error", "resource_exhausted", "upstream_delay",
    "config_error", "unknown",
)
# What actually clears a fault of each class in the simulated world (ground truth, not what the
# planner believes): "retry" = it clears by itself after ``lasts``; "resync_table" = a connector
# resync clears it; "human" = someone must fix it (an approval, or on-call after human_fix_delay).
DEFAULT_FIX = {
    "rate_limit": "retry", "source_unavailable": "retry", "destination_capacity": "retry",
    "upstream_delay": "retry", "resource_exhausted": "retry", "schema_drift": "resync_table",
    "auth_expired": "human", "permission_denied": "human", "config_error": "human",
    "code_error": "human", "data_quality": "human", "unknown": "human",
}


class ScenarioError(ValueError):
    """Invalid scenario: ``errors`` are ``file:line: field: message`` strings."""

    def __init__(self, errors: list[str]):
        self.errors = errors
        super().__init__("invalid scenario:\n  " + "\n  ".join(errors))


# -- the YAML model -------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _clock(value: Any) -> str:
    text = str(value).strip()
    m = re.fullmatch(r"(\d{1,2}):(\d{2})", text)
    if not m or int(m.group(1)) > 24 or int(m.group(2)) > 59:
        raise ValueError(f"invalid time of day {value!r}: use 'HH:MM' (24h, UTC)")
    return text


class DurationSpec(_Strict):
    """Lognormal (``median`` + ``sigma``) or empirical (``trace_family``: runtimes of real
    WfCommons tasks of that family; each asset draws one task type and samples its runtimes)."""

    median: Duration | None = None
    sigma: float = Field(default=0.35, ge=0, le=3)
    trace_family: str | None = None
    scale: float = Field(default=1.0, gt=0)
    min: Duration = timedelta(seconds=1)
    max: Duration | None = None

    @model_validator(mode="after")
    def _one(self) -> DurationSpec:
        if (self.median is None) == (self.trace_family is None):
            raise ValueError("give exactly one of 'median' (lognormal) or 'trace_family' (real traces)")
        if self.median is not None and self.median.total_seconds() <= 0:
            raise ValueError("median must be positive")
        return self


class ConnectorSpec(_Strict):
    id: str
    source: str | None = None  # concurrency pool name (default: the connector id)
    tables: list[str] = Field(min_length=1)  # asset keys; globs over dbt sources with a manifest
    schedule: str = "0 */6 * * *"  # native sync schedule (UTC cron)
    duration: DurationSpec | None = None
    rows_per_hour: float = Field(default=20_000, ge=0)

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not re.fullmatch(r"(fivetran|airbyte):[A-Za-z0-9_.\-/]+", v):
            raise ValueError(f"invalid connector id {v!r}: use 'fivetran:<id>' or 'airbyte:<id>'")
        return v

    @field_validator("schedule")
    @classmethod
    def _cron(cls, v: str) -> str:
        check_cron(v)
        return v


class AutoConnectors(_Strict):
    """With a manifest: one connector per source prefix (key without its table) not matched by
    an explicit connector."""

    kind: Literal["fivetran", "airbyte"] = "airbyte"
    schedule: str = "0 */6 * * *"
    sources_per_pool: int = Field(default=1, ge=1)  # connectors sharing one source pool

    @field_validator("schedule")
    @classmethod
    def _cron(cls, v: str) -> str:
        check_cron(v)
        return v


class AssetSpec(_Strict):
    key: str
    upstream: list[str] = Field(default_factory=list)
    role: Literal["dbt_model", "dashboard", "other"] = "dbt_model"
    duration: DurationSpec | None = None
    pool: str | None = None
    group: str | None = None
    owners: list[str] = Field(default_factory=list)
    tags: dict[str, str] = Field(default_factory=dict)


class GraphSpec(_Strict):
    manifest: str | list[str] | None = None  # relative to data_dir (or this file)
    replicas: int = Field(default=1, ge=1, le=100)  # copies of the manifest graph ("r<i>/" prefix)
    max_assets: int | None = Field(default=None, ge=1)  # keep the first N in topological order
    connectors: list[ConnectorSpec] = Field(default_factory=list)
    auto_connectors: AutoConnectors | None = None
    assets: list[AssetSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _some(self) -> GraphSpec:
        if not self.manifest and not self.assets and not self.connectors:
            raise ValueError("a graph needs 'assets'/'connectors', or a 'manifest'")
        return self


class DurationsSpec(_Strict):
    connector: DurationSpec = DurationSpec(median=timedelta(minutes=12), sigma=0.4)
    model: DurationSpec = DurationSpec(median=timedelta(minutes=2), sigma=0.5)
    trace_file: str = "traces/wfinstances_tasks.csv.gz"  # relative to data_dir
    history_runs: int = Field(default=10, ge=0, le=100)  # past runs known before the start


class CapacitySpec(_Strict):
    warehouse_slots: int = Field(default=8, ge=1)
    per_source: int = Field(default=1, ge=1)
    sources: dict[str, int] = Field(default_factory=dict)  # source pool -> concurrent syncs
    pools: dict[str, int] = Field(default_factory=dict)  # extra warehouse pools -> slots


class PriceWindow(_Strict):
    start: str
    end: str
    factor: float = Field(gt=0)

    _c = field_validator("start", "end", mode="before")(lambda cls, v: _clock(v))


class CostSpec(_Strict):
    """Compact model of reference/connector-apis.md section 3.5."""

    warehouse_usd_per_hour: float = Field(default=12.0, ge=0)  # per busy slot: M (4 cr/h) x $3
    min_billed_s: float = Field(default=60, ge=0)  # per step (Snowflake 60 s minimum, simplified)
    off_peak: list[PriceWindow] = Field(default_factory=list)  # UTC, multiply the warehouse price
    usd_per_million_rows: float = Field(default=15.0, ge=0)  # Airbyte API sources / MAR proxy
    new_row_share: float = Field(default=0.35, ge=0, le=1)  # share of synced rows newly billed (MAR)
    sync_fixed_usd: float = Field(default=0.10, ge=0)
    sync_load_share: float = Field(default=0.25, ge=0, le=1)  # of sync time a warehouse slot loads


class FaultSpec(_Strict):
    name: str
    category: str
    targets: list[str] = Field(min_length=1)  # asset keys / connector ids, globs allowed
    pick: int | None = Field(default=None, ge=1)  # this many matching targets per occurrence
    at: list[str] = Field(default_factory=list)  # "HH:MM" UTC first occurrences (each day)
    every: Duration | None = None  # recurrence: the same signature comes back
    count: int = Field(default=1, ge=1)  # occurrences per 'at' (with 'every')
    jitter: Duration = timedelta(0)
    lasts: Duration = timedelta(minutes=20)  # for fix=retry: how long it keeps failing
    fix: Literal["retry", "resync_table", "human"] | None = None
    probability: float | None = Field(default=None, ge=0, le=1)  # per attempt instead of 'at'
    message: str | None = None

    @field_validator("category")
    @classmethod
    def _category(cls, v: str) -> str:
        if v not in CATEGORIES:
            hint = difflib.get_close_matches(v, CATEGORIES, n=1)
            raise ValueError(
                f"unknown fault category {v!r}" + (f"; did you mean {hint[0]!r}?" if hint else "")
                + f" (one of: {', '.join(CATEGORIES)})"
            )
        return v

    @field_validator("at", mode="before")
    @classmethod
    def _at(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = [v]
        return [_clock(x) for x in v] if isinstance(v, list) else v

    @model_validator(mode="after")
    def _when(self) -> FaultSpec:
        if bool(self.at) == (self.probability is not None):
            raise ValueError("give exactly one of 'at' (scheduled episodes) or 'probability' (per attempt)")
        if self.count > 1 and self.every is None:
            raise ValueError("'count' > 1 needs 'every' (the recurrence interval)")
        return self

    @property
    def effective_fix(self) -> str:
        return self.fix or DEFAULT_FIX[self.category]


class RetrySpec(_Strict):
    """Dagster's RetryPolicy: max_retries, delay, backoff (None | linear | exponential)."""

    max_retries: int = Field(default=3, ge=0, le=20)
    delay: Duration = timedelta(seconds=60)
    backoff: Literal["linear", "exponential"] | None = "exponential"


class JobSpec(_Strict):
    """A Dagster job as a careful engineer sets it: a schedule in an execution time zone, an
    asset selection, ``dagster/priority``, and optionally chained after other jobs (a run status
    sensor: it starts once every job in ``after`` has succeeded since its own last run)."""

    name: str
    cron: str | None = None
    timezone: str = "UTC"  # the schedule's execution_timezone (DST-aware)
    select: list[str] = Field(default_factory=lambda: ["*"])  # model key globs or graph selectors
    priority: int = 0  # dagster/priority tag of its runs
    after: list[str] = Field(default_factory=list)  # job names this one waits for
    retry: RetrySpec | None = None  # this job's RetryPolicy (default: baseline.retry)

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str | None) -> str | None:
        if v is not None:
            check_cron(v)
        return v

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        from orchestrator.policies.calendar import get_zone

        try:
            get_zone(v)
        except Exception:  # noqa: BLE001 - any lookup failure is a bad name
            raise ValueError(f"unknown time zone {v!r} (an IANA name such as 'America/New_York')") from None
        return v

    @field_validator("select")
    @classmethod
    def _select(cls, v: list[str]) -> list[str]:
        from orchestrator.simulator.selection import parse_selector

        for item in v:
            parse_selector(item)
        return v

    @model_validator(mode="after")
    def _trigger(self) -> JobSpec:
        if self.cron is None and not self.after:
            raise ValueError(f"job {self.name!r} needs a 'cron' schedule and/or 'after' (jobs it follows)")
        return self


class BaselineSpec(_Strict):
    jobs: list[JobSpec] = Field(default_factory=lambda: [JobSpec(name="dbt_build", cron="0 4 * * *")])
    retry: RetrySpec = RetrySpec()
    eager_tick: Duration = timedelta(seconds=30)

    @model_validator(mode="after")
    def _chains(self) -> BaselineSpec:
        names = [j.name for j in self.jobs]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"duplicate job name {dup[0]!r}")
        for j in self.jobs:
            for a in j.after:
                if a not in names:
                    hint = difflib.get_close_matches(a, names, n=1)
                    raise ValueError(f"job {j.name!r}: 'after' names unknown job {a!r}"
                                     + (f"; did you mean {hint[0]!r}?" if hint else ""))
                if a == j.name:
                    raise ValueError(f"job {j.name!r} cannot wait for itself")
        return self


class NightSpec(_Strict):
    """Hours when approvers sleep: a request made inside is answered ``delay`` after ``end``."""

    start: str = "22:00"
    end: str = "07:00"
    timezone: str = "UTC"

    _c = field_validator("start", "end", mode="before")(lambda cls, v: _clock(v))


class ApprovalSpec(_Strict):
    delay: Duration = timedelta(minutes=45)  # how long a human takes to answer (awake)
    approve: float = Field(default=1.0, ge=0, le=1)  # share of requests approved
    night: NightSpec | None = None  # slower at night: answered after the night ends

    def answer_at(self, t0: datetime, requested_s: float) -> float:
        """Seconds since ``t0`` when a request made at ``requested_s`` is answered; never
        earlier than ``requested_s + delay`` (the bound relies on it)."""
        d = self.delay.total_seconds()
        if self.night is None:
            return requested_s + d
        from orchestrator.policies.calendar import get_zone

        zone = get_zone(self.night.timezone)
        at = (t0 + timedelta(seconds=requested_s)).astimezone(zone)
        sh, sm = (int(x) for x in self.night.start.split(":"))
        eh, em = (int(x) for x in self.night.end.split(":"))
        t, start, end = at.hour * 60 + at.minute, sh * 60 + sm, eh * 60 + em
        inside = (start <= t < end) if start < end else (t >= start or t < end)
        if not inside:
            return requested_s + d
        wake_day = at.date() if (start < end or t < end) else at.date() + timedelta(days=1)
        wake = datetime.combine(wake_day, time(eh, em), tzinfo=zone).astimezone(UTC)
        return max(requested_s, (wake - t0).total_seconds()) + d


class SilentSpec(_Strict):
    """A silent failure: syncs of the target connectors that start after ``at`` (each day) succeed
    but land wrong data -- ``zero_rows`` (cleared by the next good sync), ``partial_volume`` and
    ``stuck_cursor`` (cleared only by a table re-sync). The tables' true data time stays where it
    was while the connector reports success. ``detected``: whether the health sensor flags the
    load (the detectors themselves are measured by ``benchmarks/bench_silent.py``)."""

    kind: Literal["zero_rows", "partial_volume", "stuck_cursor"]
    targets: list[str] = Field(min_length=1)  # connector ids, globs allowed
    at: list[str] = Field(min_length=1)  # "HH:MM" UTC, each day
    loads: int = Field(default=1, ge=1)  # syncs it hits per occurrence
    detected: bool = True

    @field_validator("at", mode="before")
    @classmethod
    def _at(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = [v]
        return [_clock(x) for x in v] if isinstance(v, list) else v


class PrecursorSpec(_Strict):
    """A degradation precursor on the target connectors, from ``at`` (each day) for ``loads``
    syncs: ``latency_creep`` -- each hit sync takes ``factor`` x the previous hit's duration (capped
    at ``max_factor`` x its own); ``warning_rate`` -- each hit sync succeeds leaving ``warnings`` more
    warnings/429s than the one before (rising). The syncs still succeed: what they predict (an
    outage, an overrun) is scripted with ``faults`` or follows from the creep itself
    (``orchestrator/simulator/silent_precursors.py``)."""

    kind: Literal["latency_creep", "warning_rate"]
    targets: list[str] = Field(min_length=1)  # connector ids, globs allowed
    at: list[str] = Field(min_length=1)  # "HH:MM" UTC, each day
    loads: int = Field(default=6, ge=1)  # syncs it hits per occurrence
    factor: float = Field(default=1.4, gt=1.0, le=10.0)  # latency_creep: per hit sync
    max_factor: float = Field(default=8.0, gt=1.0)  # latency_creep: cap on the compounded factor
    warnings: int = Field(default=2, ge=1)  # warning_rate: added per hit sync

    _a = field_validator("at", mode="before")(lambda cls, v: [_clock(x) for x in ([v] if isinstance(v, str) else v)]
                                               if isinstance(v, (str, list)) else v)


class MaintenanceSpec(_Strict):
    """A known (announced) maintenance window of the target connectors' source: every sync attempt
    in [at, at + lasts) fails as ``source_unavailable`` and clears by itself at the end.
    ``announced: true`` puts it in the snapshot the ``sla`` planner reads (the early warning
    plans around it); ``false`` is a surprise outage."""

    targets: list[str] = Field(min_length=1)
    at: list[str] = Field(min_length=1)  # "HH:MM" UTC, each day
    day: int | None = Field(default=None, ge=0)  # only on this day of the run (default: every day)
    lasts: Duration = timedelta(hours=2)
    announced: bool = True

    _a = field_validator("at", mode="before")(lambda cls, v: [_clock(x) for x in ([v] if isinstance(v, str) else v)]
                                               if isinstance(v, (str, list)) else v)


class SchemaChangeSpec(_Strict):
    """A scripted schema change (``orchestrator.simulator.schema_changes``): from ``at`` (UTC, on
    day ``day`` of the run), the next successful sync of the table's connector lands it; from then
    on every attempt of the ``breaks`` models fails with the warehouse's error until it is fixed:
    ``fix: patch`` -- the schema-change sensor (every ``schema_sensor_tick``) detects it and tells
    the owners, a patch verified in ``verify`` is proposed and fixes it once approved (approvals
    answer as ``approvals`` says); ``fix: human`` -- no patch, a person fixes it (on-call after
    ``human_fix_delay`` once a model failed, or an approved action on a broken model). Either way
    a person's approval of an action on a broken model fixes it too."""

    name: str
    table: str  # connector table asset key
    change: Literal["rename_column", "drop_column", "change_type", "add_column"]
    column: str
    to: str | None = None  # rename: the new name; change_type: the new type
    at: str = "00:00"
    day: int = Field(default=0, ge=0)
    breaks: list[str] | None = None  # model key globs; default: the table's direct children (add_column: none)
    fix: Literal["patch", "human"] | None = None  # default: patch for renames and type changes, human otherwise
    verify: Duration = timedelta(minutes=4)  # dbt compile + build of the patch in a scratch database

    _c = field_validator("at", mode="before")(lambda cls, v: _clock(v))

    @property
    def effective_fix(self) -> str:
        return self.fix or ("patch" if self.change in ("rename_column", "change_type") else "human")


class OracleSpec(_Strict):
    max_tasks: int = Field(default=300, ge=1)  # above: the relaxation lower bound
    time_limit_s: float = Field(default=20, gt=0)


class ScenarioSpec(_Strict):
    name: str
    description: str = ""
    start: datetime
    horizon: Duration = timedelta(hours=24)
    policies: list[str] = Field(min_length=1)
    data_dir: str | None = None
    graph: GraphSpec
    durations: DurationsSpec = DurationsSpec()
    capacity: CapacitySpec = CapacitySpec()
    cost: CostSpec = CostSpec()
    faults: list[FaultSpec] = Field(default_factory=list)
    silent: list[SilentSpec] = Field(default_factory=list)  # silent failures (orchestrator.health)
    precursors: list[PrecursorSpec] = Field(default_factory=list)  # latency creep, rising warnings
    maintenance: list[MaintenanceSpec] = Field(default_factory=list)  # known source maintenance windows
    schema_changes: list[SchemaChangeSpec] = Field(default_factory=list)  # scripted schema changes
    schema_sensor_tick: Duration = timedelta(seconds=60)  # the schema_change_sensor's interval
    baseline: BaselineSpec = BaselineSpec()
    approvals: ApprovalSpec = ApprovalSpec()
    oracle: OracleSpec = OracleSpec()
    sensor_tick: Duration = timedelta(minutes=5)
    initial_age: Duration = timedelta(hours=14)  # age of every asset's data at the start
    human_fix_delay: Duration = timedelta(hours=3)  # on-call fixes a 'human' fault unprompted
    fail_after: float = Field(default=0.25, gt=0, le=1)  # a failing attempt stops at this share

    @field_validator("start")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        return v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)

    @field_validator("horizon")
    @classmethod
    def _horizon(cls, v: timedelta) -> timedelta:
        if not timedelta(minutes=10) <= v <= timedelta(days=14):
            raise ValueError("horizon must be between 10m and 14d")
        return v


_FIELDS = sorted({n for m in (ScenarioSpec, GraphSpec, ConnectorSpec, AssetSpec, DurationSpec,
                              DurationsSpec, CapacitySpec, CostSpec, FaultSpec, RetrySpec, JobSpec,
                              BaselineSpec, ApprovalSpec, NightSpec, OracleSpec, PriceWindow, AutoConnectors,
                              SchemaChangeSpec)
                  for n in m.model_fields})


def _label(path: tuple) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else ("." if out else "") + str(p)
    return out


def parse_scenario_text(text: str, file: str = "<memory>") -> ScenarioSpec:
    """Validate one scenario document; raises :class:`ScenarioError` with every problem."""
    try:
        node, data = load_yaml_document(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise ScenarioError([f"{file}:{mark.line + 1 if mark else 0}: YAML syntax error: {exc.problem or exc}"]) from None
    if not isinstance(data, dict):
        raise ScenarioError([f"{file}:1: a scenario must be a mapping (name, start, policies, graph, ...)"])
    lines: dict[tuple, int] = {}
    problems: list = []
    _walk(node, (), lines, problems)
    errors = [f"{file}:{line}: {_label(path)}: {msg}" for path, line, msg in problems]

    def line_for(path: tuple) -> int:
        while path:
            if path in lines:
                return lines[path]
            path = path[:-1]
        return 1

    try:
        spec = ScenarioSpec.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            path = _data_path(err["loc"], data)
            kind = err.get("type")
            if kind == "extra_forbidden":
                name = str(path[-1]) if path else str(err["loc"][-1])
                hint = difflib.get_close_matches(name, _FIELDS, n=1)
                msg = f"unknown field {name!r}" + (f"; did you mean {hint[0]!r}?" if hint else "")
            elif kind == "missing":
                msg = "required field is missing"
            else:
                msg = re.sub(r"^(Value error|Assertion failed), ", "", err.get("msg", "invalid value"))
            errors.append(f"{file}:{line_for(path)}: {_label(path) or '<top>'}: {msg}")
        raise ScenarioError(errors) from None
    if errors:
        raise ScenarioError(errors)
    return spec


# -- the static fleet -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Connector:
    id: str
    pool: str
    tables: tuple[str, ...]
    schedule: str
    rows_per_hour: float
    duration: DurationSpec


@dataclass(frozen=True, slots=True)
class FaultEpisode:
    """One occurrence of a fault on one target (asset key or connector id)."""

    fault: str
    category: str
    target: str
    start: float  # seconds since scenario start
    end: float | None  # fix=retry: start + lasts; otherwise None (until fixed)
    fix: str
    message: str
    recurring: bool
    occurrence: int


@dataclass
class World:
    """One seed's realisation of a scenario: what every planner faces."""

    scenario: Scenario
    seed: int
    durations: dict[str, np.ndarray]  # unit (model key / connector id) -> per-attempt seconds
    draws: dict[str, np.ndarray]  # unit -> per-attempt uniform draws (probabilistic faults)
    episodes: list[FaultEpisode]
    attempt_faults: list[tuple[FaultSpec, frozenset[str], str]]  # (fault, targets, message)
    history: dict[str, list[float]]  # asset key -> past durations (before the start)

    def duration(self, unit: str, attempt: int) -> float:
        arr = self.durations[unit]
        return float(arr[attempt % len(arr)])

    def draw(self, unit: str, attempt: int) -> float:
        arr = self.draws[unit]
        return float(arr[attempt % len(arr)])


@dataclass
class Scenario:
    spec: ScenarioSpec
    file: Path | None
    graph: AssetGraph
    connectors: dict[str, Connector]
    models: list[str]  # assets that run on the warehouse (dbt models), topological order
    model_pool: dict[str, str]
    model_duration: dict[str, DurationSpec]
    pools: dict[str, int]
    policy_paths: list[Path]
    data_dir: Path
    _worlds: dict[int, World] = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def t0(self) -> datetime:
        return self.spec.start

    @property
    def horizon_s(self) -> float:
        return self.spec.horizon.total_seconds()

    def at(self, seconds: float) -> datetime:
        return self.spec.start + timedelta(seconds=seconds)

    def units(self) -> list[str]:
        return list(self.connectors) + self.models

    def realise(self, seed: int) -> World:
        if seed not in self._worlds:
            self._worlds.clear()  # keep memory flat on big fleets
            self._worlds[seed] = _realise(self, seed)
        return self._worlds[seed]


def _data_dir_env() -> Path | None:
    env = os.environ.get("ORCHESTRATOR_SHARED_DATA")
    return Path(env) if env else None


def _data_dir(spec: ScenarioSpec, file: Path | None) -> Path:
    env = _data_dir_env()
    if env:
        return env
    if spec.data_dir:
        p = Path(spec.data_dir)
        if not p.is_absolute():
            p = (file.parent if file else REPO_ROOT) / p
        return p
    return DEFAULT_DATA_DIR


def _resolve_path(raw: str, data_dir: Path, file: Path | None) -> Path:
    p = Path(raw)
    if p.is_absolute():
        return p
    for base in ([file.parent] if file else []) + [data_dir, REPO_ROOT]:
        if (base / p).exists():
            return base / p
    return data_dir / p


def _kind(cid: str) -> str:
    return cid.split(":", 1)[0]



def _upstream_closed(graph: AssetGraph, topo, n: int) -> set[str]:
    """``n`` assets that keep whole lineages: the upstream closures of the graph's sinks
    (exposures/dashboards and leaf models), in manifest order, while they fit; the rest is filled
    with assets whose parents are all kept (sources first). A prefix of the topological order
    would keep mostly sources and drop the dashboards their deadlines are about."""
    keep: set[str] = set()
    for key in graph.keys:
        if len(keep) >= n:
            break
        if graph.children(key) or key in keep:
            continue
        new: list[str] = []
        stack, seen = [key], {key}
        while stack:
            k = stack.pop()
            new.append(k)
            for u in graph.parents(k):
                if u not in seen and u not in keep:
                    seen.add(u)
                    stack.append(u)
        if len(keep) + len(new) <= n:
            keep.update(new)
    for key in topo:
        if len(keep) >= n:
            break
        if key not in keep and all(u in keep for u in graph.parents(key)):
            keep.add(key)
    return keep


def build_scenario(spec: ScenarioSpec, file: Path | None = None) -> Scenario:
    where = str(file) if file else "<memory>"
    errors: list[str] = []
    data_dir = _data_dir(spec, file)
    g = spec.graph
    nodes: dict[str, AssetNode] = {}
    if g.manifest:
        manifests = [g.manifest] if isinstance(g.manifest, str) else list(g.manifest)
        for raw in manifests:
            path = _resolve_path(raw, data_dir, file)
            if not path.exists():
                raise ScenarioError([f"{where}: graph.manifest: no such file {str(path)!r} "
                                     f"(data_dir {str(data_dir)!r}; set ORCHESTRATOR_SHARED_DATA)"])
            base = AssetGraph.from_dbt_manifest(path)
            for r in range(g.replicas):
                prefix = f"r{r}/" if g.replicas > 1 else ""
                for n in base:
                    key = prefix + n.key
                    if key in nodes:
                        continue
                    nodes[key] = replace(n, key=key, upstream=tuple(prefix + u for u in n.upstream))
    for a in g.assets:
        if a.key in nodes:
            errors.append(f"{where}: graph.assets: duplicate asset key {a.key!r}")
        nodes[a.key] = AssetNode(
            key=a.key, role=DBT_MODEL if a.role == "dbt_model" else (DASHBOARD if a.role == "dashboard" else "other"),
            upstream=tuple(a.upstream), kinds=frozenset({"dbt"} if a.role == "dbt_model" else {a.role}),
            group=a.group, owners=tuple(a.owners), tags=dict(a.tags),
        )

    # connectors: explicit tables become connector_table nodes; globs claim manifest sources
    connectors: dict[str, Connector] = {}
    claimed: dict[str, str] = {}
    sources = [k for k, n in nodes.items() if n.role == DBT_SOURCE]
    for c in g.connectors:
        if c.id in connectors:
            errors.append(f"{where}: graph.connectors: duplicate connector {c.id!r}")
            continue
        tables: list[str] = []
        for pat in c.tables:
            if any(ch in pat for ch in "*?["):
                hits = [k for k in sources if fnmatch.fnmatchcase(k, pat) and k not in claimed]
                if not hits:
                    errors.append(f"{where}: graph.connectors({c.id}).tables: {pat!r} matches no dbt source")
                tables.extend(hits)
            else:
                tables.append(pat)
        for t in tables:
            if t in claimed and claimed[t] != c.id:
                errors.append(f"{where}: graph.connectors({c.id}).tables: {t!r} already synced by {claimed[t]}")
                continue
            claimed[t] = c.id
            old = nodes.get(t)
            if old is not None and old.role not in (DBT_SOURCE, CONNECTOR_TABLE):
                errors.append(f"{where}: graph.connectors({c.id}).tables: {t!r} is a {old.role}, not a table")
                continue
            nodes[t] = AssetNode(
                key=t, role=old.role if old else CONNECTOR_TABLE, upstream=(),
                kinds=frozenset({_kind(c.id)} | (old.kinds if old else frozenset())),
                group=(old.group if old else None) or f"{_kind(c.id)}_{c.id.split(':', 1)[1]}",
                owners=old.owners if old else (), connector=c.id, dbt_name=old.dbt_name if old else None,
            )
        connectors[c.id] = Connector(c.id, f"source:{c.source or c.id}", tuple(dict.fromkeys(t for t in tables if claimed.get(t) == c.id)),
                                     c.schedule, c.rows_per_hour, c.duration or spec.durations.connector)
    unclaimed = [k for k in sources if k not in claimed]
    if unclaimed:
        if g.auto_connectors is None:
            errors.append(f"{where}: graph: {len(unclaimed)} dbt sources have no connector (e.g. {unclaimed[0]!r}); "
                          "list them under graph.connectors or set graph.auto_connectors")
        else:
            ac = g.auto_connectors
            groups: dict[str, list[str]] = {}
            for k in unclaimed:
                groups.setdefault(k.rsplit("/", 1)[0] if "/" in k else k, []).append(k)
            for i, (prefix, keys) in enumerate(sorted(groups.items())):
                cid = f"{ac.kind}:{re.sub(r'[^A-Za-z0-9_.-]+', '_', prefix)}"
                pool = f"source:auto{i // ac.sources_per_pool}"
                for t in keys:
                    n = nodes[t]
                    nodes[t] = replace(n, connector=cid, kinds=n.kinds | {ac.kind})
                connectors[cid] = Connector(cid, pool, tuple(keys), ac.schedule, 20_000.0, spec.durations.connector)
    # unknown upstreams are errors for explicit assets
    for a in g.assets:
        for u in a.upstream:
            if u not in nodes:
                hint = difflib.get_close_matches(u, list(nodes), n=1)
                errors.append(f"{where}: graph.assets({a.key}).upstream: unknown asset {u!r}"
                              + (f"; did you mean {hint[0]!r}?" if hint else ""))
    if errors:
        raise ScenarioError(errors)

    graph = AssetGraph(nodes.values())
    try:
        topo = graph.topological_order()
    except ValueError as exc:
        raise ScenarioError([f"{where}: graph: {exc}"]) from None
    if g.max_assets and len(graph) > g.max_assets:
        keep = _upstream_closed(graph, topo, g.max_assets)
        graph = graph.subgraph(keep)
        topo = graph.topological_order()
        connectors = {cid: replace(c, tables=tuple(t for t in c.tables if t in keep))
                      for cid, c in connectors.items()}
        connectors = {cid: c for cid, c in connectors.items() if c.tables}
    # assets with no upstream and no connector, that are not models: treat as models (run on the warehouse)
    models = [k for k in topo if graph.node(k).role not in (DASHBOARD,) and graph.node(k).connector is None]
    by_key = {a.key: a for a in g.assets}
    model_pool = {k: (by_key[k].pool if k in by_key and by_key[k].pool else "warehouse") for k in models}
    model_duration = {k: (by_key[k].duration if k in by_key and by_key[k].duration else spec.durations.model)
                      for k in models}
    pools = {"warehouse": spec.capacity.warehouse_slots, **spec.capacity.pools}
    for k, p in model_pool.items():
        if p not in pools:
            errors.append(f"{where}: graph.assets({k}).pool: unknown pool {p!r}; declare it under capacity.pools")
    for c in connectors.values():
        pools.setdefault(c.pool, spec.capacity.sources.get(c.pool.split(":", 1)[1], spec.capacity.per_source))
    if errors:
        raise ScenarioError(errors)

    base = file.parent if file else SCENARIO_DIR
    policy_paths = []
    for raw in spec.policies:
        p = Path(raw) if Path(raw).is_absolute() else base / raw
        if not p.exists():
            errors.append(f"{where}: policies: no such file {raw!r} (relative to {base})")
        policy_paths.append(p)
    fault_targets = set(graph.keys) | set(connectors)
    for i, f in enumerate(spec.faults):
        for pat in f.targets:
            hits = [t for t in fault_targets if fnmatch.fnmatchcase(t, pat)]
            if not hits:
                errors.append(f"{where}: faults[{i}]({f.name}).targets: {pat!r} matches no asset or connector")
            elif all(t not in connectors and graph.node(t).role == DASHBOARD for t in hits):
                errors.append(f"{where}: faults[{i}]({f.name}).targets: {pat!r} matches only dashboards, "
                              "which run nothing that can fail; target their models or connectors")
        if f.effective_fix == "resync_table" and not any(
            fnmatch.fnmatchcase(t, pat) for pat in f.targets for t in connectors
        ):
            errors.append(f"{where}: faults[{i}]({f.name}).fix: resync_table only clears connector faults")
    for i, c in enumerate(spec.schema_changes):
        node = graph.get(c.table)
        if node is None or not node.connector or node.connector not in connectors:
            hint = difflib.get_close_matches(c.table, [k for k in graph.keys if graph.node(k).connector], n=1)
            errors.append(f"{where}: schema_changes[{i}]({c.name}).table: {c.table!r} is not a connector table"
                          + (f"; did you mean {hint[0]!r}?" if hint else ""))
        for pat in c.breaks or []:
            if not any(fnmatch.fnmatchcase(m, pat) for m in models):
                errors.append(f"{where}: schema_changes[{i}]({c.name}).breaks: {pat!r} matches no model")
        if c.change in ("rename_column", "change_type") and not c.to:
            errors.append(f"{where}: schema_changes[{i}]({c.name}).to: a {c.change} needs 'to' (the new name/type)")
    if errors:
        raise ScenarioError(errors)
    return Scenario(spec, file, graph, connectors, models, model_pool, model_duration, pools,
                    policy_paths, data_dir)


def fault_units(sc: Scenario, patterns: list[str]) -> list[str]:
    """The units a fault's target globs hit: connector ids and models; a connector table stands
    for its connector (a table-level fault fails the connector's sync, which lands that table);
    dashboards run nothing and are skipped."""
    models: list[str] = []
    hit_connectors: set[str] = set()
    for t in sc.graph.keys:
        if not any(fnmatch.fnmatchcase(t, p) for p in patterns):
            continue
        node = sc.graph.node(t)
        if node.connector and node.connector in sc.connectors:
            hit_connectors.add(node.connector)
        elif node.role != DASHBOARD:
            models.append(t)
    hit_connectors.update(c for c in sc.connectors if any(fnmatch.fnmatchcase(c, p) for p in patterns))
    return models + [c for c in sc.connectors if c in hit_connectors]


def shipped_scenarios() -> list[str]:
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml") if not p.name.endswith(".policies.yaml"))


@functools.lru_cache(maxsize=8)
def _load_cached(path: str, mtime: float) -> Scenario:
    p = Path(path)
    return build_scenario(parse_scenario_text(p.read_text(encoding="utf-8"), str(p)), p)


def load_scenario(name_or_path: str | Path) -> Scenario:
    """A shipped scenario by name (``small``, ``peak-hour``, ...) or a YAML file path."""
    p = Path(name_or_path)
    if not p.exists():
        cand = SCENARIO_DIR / f"{name_or_path}.yaml"
        if not cand.exists():
            hint = difflib.get_close_matches(str(name_or_path), shipped_scenarios(), n=1)
            raise ScenarioError([f"unknown scenario {str(name_or_path)!r}: not a file and not one of "
                                 f"{', '.join(shipped_scenarios())}" + (f"; did you mean {hint[0]!r}?" if hint else "")])
        p = cand
    p = p.resolve()
    return _load_cached(str(p), p.stat().st_mtime)


# -- realisation per seed -------------------------------------------------------------------------

_FALLBACK_MESSAGES = {
    "rate_limit": "HTTP 429 Too Many Requests: API rate limit exceeded, retry after 60 seconds",
    "auth_expired": "401 Unauthorized: the OAuth access token has expired; re-authenticate the connection",
    "permission_denied": "403 Forbidden: insufficient privileges to operate on schema 'RAW'",
    "schema_drift": "Column 'discount_code' was added to the source table and is missing in the destination schema",
    "source_unavailable": "Connection refused: the source database is unreachable (503 Service Unavailable)",
    "destination_capacity": "Warehouse 'LOAD_WH' is overloaded: statement queued too long and was cancelled",
    "data_quality": "Failure in test not_null_orders_order_id: got 12 results, configured to fail if != 0",
    "code_error": "Database Error in model fct_orders: syntax error at or near 'FROM'",
    "resource_exhausted": "Out of memory: the query exceeded the memory limit of the warehouse",
    "upstream_delay": "Upstream source has not been loaded yet: freshness check failed, waiting for upstream",
    "config_error": "Checking source connection failed: invalid configuration, missing required field 'host'",
    "unknown": "Something went wrong within the destination connector",
}


@functools.lru_cache(maxsize=1)
def failure_messages() -> dict[str, list[str]]:
    """Real messages of tests/data/failure_messages.jsonl per category, kept only when the
    classifier agrees (so a fault's class drives the decision core as intended)."""
    out: dict[str, list[str]] = {c: [] for c in CATEGORIES}
    try:
        from orchestrator.diagnosis import diagnose

        for line in FAILURE_MESSAGES.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            rec = json.loads(line)
            if rec.get("category") in out and len(rec["message"]) < 600:
                if diagnose(rec["message"], system=rec.get("system")).category == rec["category"]:
                    out[rec["category"]].append(rec["message"])
    except (OSError, ValueError, ImportError):
        pass
    for c, msg in _FALLBACK_MESSAGES.items():
        if not out[c]:
            out[c].append(msg)
    return out


@functools.lru_cache(maxsize=4)
def _trace_types(path: str, family: str) -> tuple[np.ndarray, ...]:
    import pandas as pd

    tasks = pd.read_csv(path, usecols=["instance", "task_name", "category", "runtime_s"])
    wf = pd.read_csv(Path(path).with_name("wfinstances_workflows.csv"), usecols=["instance", "family"])
    tasks = tasks.merge(wf, on="instance")
    fam = tasks[(tasks["family"] == family) | tasks["family"].str.endswith("/" + family)]
    if fam.empty:
        fams = sorted(wf["family"].unique())
        raise ScenarioError([f"durations: unknown trace_family {family!r}; one of {', '.join(fams)}"])
    fam = fam[fam["runtime_s"] > 0]
    kind = fam["category"].astype("object").where(fam["category"].notna(),
                                                  fam["task_name"].str.replace(r"[_-]?(ID)?\d+$", "", regex=True))
    groups = [g.to_numpy(dtype=float) for _, g in fam.groupby(kind.to_numpy())["runtime_s"] if len(g) >= 5]
    if not groups:
        groups = [fam["runtime_s"].to_numpy(dtype=float)]
    return tuple(groups)


def _sample(spec: DurationSpec, n_units: int, n: int, rng: np.random.Generator, trace_path: Path) -> np.ndarray:
    if spec.median is not None:
        med = spec.median.total_seconds()
        # per-unit median spread (one order of magnitude across a fleet), per-run noise sigma
        unit_med = med * np.exp(rng.normal(0, 0.6, size=(n_units, 1)))
        out = unit_med * np.exp(rng.normal(0, spec.sigma, size=(n_units, n)))
    else:
        groups = _trace_types(str(trace_path), spec.trace_family)
        pick = rng.integers(0, len(groups), size=n_units)
        out = np.empty((n_units, n))
        for i, gi in enumerate(pick):
            out[i] = rng.choice(groups[gi], size=n)
    out = out * spec.scale
    lo = spec.min.total_seconds()
    hi = spec.max.total_seconds() if spec.max is not None else None
    return np.clip(out, lo, hi)


N_ATTEMPTS = 24


def _realise(sc: Scenario, seed: int) -> World:
    spec = sc.spec
    rng = np.random.default_rng([seed, 7919])
    trace_path = sc.data_dir / spec.durations.trace_file
    n_hist = spec.durations.history_runs
    durations: dict[str, np.ndarray] = {}
    history: dict[str, list[float]] = {}
    # group units by their duration spec so sampling is vectorised
    by_spec: dict[int, tuple[DurationSpec, list[str]]] = {}
    for cid, c in sc.connectors.items():
        by_spec.setdefault(id(c.duration), (c.duration, []))[1].append(cid)
    for k in sc.models:
        d = sc.model_duration[k]
        by_spec.setdefault(id(d), (d, []))[1].append(k)
    for dspec, units in by_spec.values():
        arr = _sample(dspec, len(units), N_ATTEMPTS + n_hist, rng, trace_path)
        for i, u in enumerate(units):
            durations[u] = arr[i, n_hist:]
            if n_hist:
                past = [round(float(x), 1) for x in arr[i, :n_hist]]
                if u in sc.connectors:
                    for t in sc.connectors[u].tables:
                        history[t] = past
                else:
                    history[u] = past
    units = sc.units()
    u_all = rng.random((len(units), N_ATTEMPTS))
    draws = {u: u_all[i] for i, u in enumerate(units)}

    msgs = failure_messages()
    targets_all = list(sc.graph.keys) + list(sc.connectors)
    episodes: list[FaultEpisode] = []
    attempt_faults = []
    horizon = sc.horizon_s
    day0 = datetime.combine(spec.start.date(), time(0), tzinfo=UTC)
    frng = np.random.default_rng([seed, 104729])
    for f in spec.faults:
        matching = fault_units(sc, f.targets)
        pool = msgs[f.category]
        message = f.message or pool[int(frng.integers(0, len(pool)))]
        if f.probability is not None:
            attempt_faults.append((f, frozenset(matching), message))
            continue
        chosen = matching
        if f.pick and f.pick < len(matching):
            chosen = [matching[i] for i in sorted(frng.choice(len(matching), size=f.pick, replace=False))]
        recurring = f.count > 1 or len(f.at) > 1
        for day in range(int(horizon // 86400) + 2):
            for clock in f.at:
                hh, mm = (int(x) for x in clock.split(":"))
                first = (day0 + timedelta(days=day, hours=hh, minutes=mm) - spec.start).total_seconds()
                for occ in range(f.count):
                    t = first + occ * (f.every.total_seconds() if f.every else 0)
                    if f.jitter:
                        t += float(frng.uniform(0, f.jitter.total_seconds()))
                    if not 0 <= t < horizon:
                        continue
                    for target in chosen:
                        end = t + f.lasts.total_seconds() if f.effective_fix == "retry" else None
                        episodes.append(FaultEpisode(f.name, f.category, target, t, end, f.effective_fix,
                                                     message, recurring, occ))
    episodes.sort(key=lambda e: (e.start, e.target))
    return World(sc, seed, durations, draws, episodes, attempt_faults, history)
