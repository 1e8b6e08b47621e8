"""Plain records that flow through one decision: Snapshot -> Assessment -> Plan.

This is the contract between the Dagster shell (which fills a ``Snapshot`` from the instance and
the connector APIs), the decision core (assessment, planning, validation, gating) and the
simulator (which fills the same ``Snapshot`` from virtual time). No Dagster imports.

Conventions: asset keys are Dagster user strings ("salesforce/account"); connectors are
"fivetran:<connector_id>" or "airbyte:<connection_id>"; every datetime is timezone-aware UTC.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from orchestrator.core.graph import AssetGraph

# -- Snapshot: what is true now ------------------------------------------------------------------


class RunStatus(str, enum.Enum):
    queued = "queued"
    starting = "starting"
    running = "running"
    success = "success"
    failure = "failure"
    canceled = "canceled"

    @property
    def in_flight(self) -> bool:
        return self in (RunStatus.queued, RunStatus.starting, RunStatus.running)


@dataclass(frozen=True, slots=True)
class RunRecord:
    """A Dagster run (or, in the simulator, a virtual one) touching some assets."""

    run_id: str
    status: RunStatus
    asset_keys: tuple[str, ...]
    created_at: datetime
    started_at: datetime | None = None
    ended_at: datetime | None = None
    partitions: tuple[str, ...] = ()
    priority: int = 0  # dagster/priority
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Materialization:
    asset_key: str
    at: datetime
    run_id: str | None = None
    partition: str | None = None
    duration_s: float | None = None  # of the step that produced it, when known


@dataclass(frozen=True, slots=True)
class SyncRecord:
    """A connector sync as the connector API reports it, whoever started it."""

    connector: str
    sync_id: str
    status: str  # running | succeeded | failed | cancelled | rescheduled
    started_at: datetime
    ended_at: datetime | None = None
    triggered_by: str = "unknown"  # dagster | schedule | external | unknown
    error_message: str | None = None
    rows: int | None = None
    tables: tuple[str, ...] = ()  # asset keys it lands
    warnings: int = 0  # warnings the connector API shows for it (Fivetran status.warnings; health signals)
    attempts: int = 1  # attempts it took (Airbyte job attempts, when its logs were read; health signals)


@dataclass(frozen=True, slots=True)
class FailureRecord:
    """A failed run step, dbt node, or connector sync, with the text that explains it."""

    failure_id: str
    at: datetime
    message: str
    system: str  # dagster | dbt | fivetran | airbyte | warehouse
    asset_key: str | None = None
    connector: str | None = None
    run_id: str | None = None
    partition: str | None = None


@dataclass(frozen=True, slots=True)
class CostRecord:
    at: datetime
    amount_usd: float
    source: str  # run | sync | warehouse | query
    asset_key: str | None = None
    connector: str | None = None
    compute_s: float | None = None
    detail: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CheckRecord:
    asset_key: str
    check_name: str
    passed: bool
    severity: str  # WARN | ERROR
    at: datetime


@dataclass
class Snapshot:
    taken_at: datetime
    graph: AssetGraph
    last_success: dict[str, datetime] = field(default_factory=dict)  # asset key -> latest materialization
    materializations: list[Materialization] = field(default_factory=list)  # recent history
    runs: list[RunRecord] = field(default_factory=list)  # in flight and recent
    durations: dict[str, list[float]] = field(default_factory=dict)  # asset key -> past seconds
    syncs: list[SyncRecord] = field(default_factory=list)
    failures: list[FailureRecord] = field(default_factory=list)
    costs: list[CostRecord] = field(default_factory=list)
    checks: list[CheckRecord] = field(default_factory=list)
    # asset key -> the time its data is current as of (a sync: when it started; a model: the
    # oldest data time of the inputs it read). Missing keys fall back to ``last_success``
    # (see ``orchestrator.core.datatime.data_times``).
    data_time: dict[str, datetime] = field(default_factory=dict)
    paused_connectors: set[str] = field(default_factory=set)  # connectors paused now (when known)
    # connector -> its own sync schedule (a cron expression in UTC, when known): a sync that needs
    # a person's approval is asked ahead only when that schedule does not land it in time
    connector_schedules: dict[str, str] = field(default_factory=dict)
    # connector -> its schema-change setting, in Fivetran's words (ALLOW_ALL | ALLOW_COLUMNS |
    # BLOCK_ALL; Airbyte's nonBreakingSchemaUpdatesBehavior mapped onto them), when known
    schema_change_handling: dict[str, str] = field(default_factory=dict)
    # connector table -> (data time of its newest trusted load or None, why): its latest load is
    # anomalous (zero rows, a sharp drop, a stuck cursor; see orchestrator.health.hold)
    anomalous_loads: dict[str, tuple[datetime | None, str]] = field(default_factory=dict)
    # connector -> its early warning (orchestrator.health.early.ConnectorRisk: p_fail, the trend's
    # next duration, announced maintenance windows); decide() proposes pre-emptive syncs from it
    connector_risk: dict[str, object] = field(default_factory=dict)

    def in_flight(self) -> list[RunRecord]:
        return [r for r in self.runs if r.status.in_flight]


# -- Assessment: what it means ------------------------------------------------------------------


class FreshnessStatus(str, enum.Enum):
    ok = "ok"
    at_risk = "at_risk"
    breached = "breached"


@dataclass(frozen=True, slots=True)
class FreshnessAssessment:
    asset_key: str
    status: FreshnessStatus
    tier: str
    policy: str | None
    deadline: datetime | None
    predicted_ready: datetime | None
    slack_s: float | None  # deadline - predicted_ready; negative = late
    blocking_asset: str | None  # the upstream on the critical path holding it back
    reason: str
    data_time: datetime | None = None  # the time its data is current as of
    data_held_by: str | None = None  # the input whose (old) data time it inherits
    window_open: datetime | None = None  # data must be newer than this for the cycle it serves next


@dataclass(frozen=True, slots=True)
class CostAssessment:
    scope: str  # "policy:<name>" | "group:<name>"
    spent_today_usd: float
    spent_month_usd: float
    forecast_day_usd: float
    forecast_month_usd: float
    budget_day_usd: float | None
    budget_month_usd: float | None
    spike: bool
    baseline_day_usd: float | None
    reason: str

    @property
    def over_budget(self) -> bool:
        return bool(
            (self.budget_day_usd is not None and self.forecast_day_usd > self.budget_day_usd)
            or (self.budget_month_usd is not None and self.forecast_month_usd > self.budget_month_usd)
        )


@dataclass(frozen=True, slots=True)
class DiagnosedFailure:
    failure: FailureRecord
    category: str  # see orchestrator.diagnosis.rules.CATEGORIES
    transient: bool
    confidence: float
    evidence: tuple[str, ...]
    root_failure_id: str | None = None  # set when caused by an upstream failure (not diagnosed twice)


@dataclass
class Assessment:
    taken_at: datetime
    freshness: dict[str, FreshnessAssessment] = field(default_factory=dict)
    cost: list[CostAssessment] = field(default_factory=list)
    failures: list[DiagnosedFailure] = field(default_factory=list)
    skipped: str | None = None  # why nothing was assessed (e.g. invalid policies)


# -- Plan: what to do ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Action:
    """One proposed action. ``type`` is an ``orchestrator.policies.ActionType`` value."""

    action_id: str
    type: str
    reason: str
    asset_keys: tuple[str, ...] = ()
    partitions: tuple[str, ...] = ()
    connector: str | None = None
    tables: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # schema -> tables (resync)
    priority: int = 0  # dagster/priority
    not_before: datetime | None = None  # deferral
    run_id: str | None = None  # for cancel_run / re-prioritising a queued run
    confidence: float = 1.0
    estimated_cost_usd: float = 0.0
    source: str = "planner"  # planner | llm
    # what it answers: a failure class ("auth_expired"), "freshness", or "repair:<class>"; and the
    # occurrence of it (a deadline cycle, a failure id): the ledger never proposes it twice
    cause: str | None = None
    cycle: str | None = None


@dataclass
class Plan:
    created_at: datetime
    actions: list[Action]
    planner: str  # "deterministic" | "llm:<model>" | "baseline-fallback"
    rationale: str = ""
