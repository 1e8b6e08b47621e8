"""Fivetran connector state machine: syncs, schedules, faults, and the JSON the API returns.

A sync moves `scheduled -> syncing -> scheduled`; completion is visible only as a bump of
`succeeded_at` or `failed_at` (that is all dagster-fivetran looks at). Time advances lazily: every
API call and a background ticker call `advance()`, which finishes due syncs (landing their rows
first, so data is in place before the completion timestamp moves) and starts scheduled ones.

Fivetran has no cancel endpoint: a hung sync stays `syncing` until it is forced again (force
restarts a running sync) or the fault is cleared; a caller must rely on its own poll_timeout.
"""

from __future__ import annotations

import threading
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, Field

from orchestrator.emulators.datagen import RowGenerator
from orchestrator.emulators.errors import HttpProblem
from orchestrator.emulators.faults import FaultBook
from orchestrator.emulators.landing import SourceData, SourceDataState
from orchestrator.emulators.scenario import (
    FIVETRAN_SYNC_FREQUENCIES,
    FivetranConnectorSpec,
    Scenario,
)
from orchestrator.emulators.state import JsonStateFile, iso_z, json_safe, parse_instant, utc_now
from orchestrator.emulators.vendor_messages import (
    FIVETRAN_AUTH_DETAILS,
    FIVETRAN_DEFAULT_SYNC_ERROR,
    FIVETRAN_SYNC_ERRORS,
)

HISTORY_LIMIT = 200
PASSED_SETUP_TESTS = [
    {"title": "Validate Login", "status": "PASSED", "message": "", "details": None},
    {"title": "Test Connection", "status": "PASSED", "message": "", "details": None},
]


class RunningSync(BaseModel):
    number: int
    sync_id: str
    kind: Literal["incremental", "resync", "table_resync"]
    resync_tables: dict[str, list[str]] | None = None
    triggered_by: Literal["api", "schedule"] = "api"
    started_at: str
    # None while it hangs or waits for a reschedule.
    ends_at: str | None
    outcome: Literal["success", "failure", "expired_credentials", "hang"] = "success"
    failure: dict[str, Any] | None = None
    rescheduled_until: str | None = None
    volume_share: float = 1.0  # zero_rows / partial_volume faults: share of the rows that land
    stuck_cursor: bool = False  # stuck_cursor fault: re-lands the previous rows, nothing new
    recovers: bool = False  # sync_failure recovers: Fivetran retries at once and the retry succeeds


class SyncRecord(BaseModel):
    number: int
    sync_id: str
    kind: str
    triggered_by: str
    started_at: str
    finished_at: str
    status: Literal["SUCCESSFUL", "FAILURE", "FAILURE_WITH_TASK", "ABANDONED"]
    message: str | None = None
    rows: dict[str, int] = Field(default_factory=dict)


class ConnectorState(BaseModel):
    id: str
    paused: bool
    schedule_type: Literal["auto", "manual"]
    sync_frequency: int
    daily_sync_time: str | None = None
    created_at: str
    setup_state: Literal["incomplete", "connected", "broken"] = "connected"
    update_state: Literal["on_schedule", "delayed"] = "on_schedule"
    is_historical_sync: bool = False
    succeeded_at: str | None = None
    failed_at: str | None = None
    tasks: list[dict[str, Any]] = Field(default_factory=list)
    warnings: list[dict[str, Any]] = Field(default_factory=list)
    setup_tests: list[dict[str, Any]] = Field(default_factory=lambda: list(PASSED_SETUP_TESTS))
    credentials_expired: bool = False
    schema_change_handling: str | None = None  # None: the scenario's value
    syncs_started: int = 0
    current_sync: RunningSync | None = None
    next_auto_sync_at: str | None = None
    history: list[SyncRecord] = Field(default_factory=list)
    creep: float = 1.0  # latency_creep faults: current duration multiplier
    data: SourceDataState = Field(default_factory=SourceDataState)


class FivetranState(BaseModel):
    connectors: dict[str, ConnectorState] = Field(default_factory=dict)
    faults: FaultBook = Field(default_factory=FaultBook)


def not_found(what: str, ident: str) -> HttpProblem:
    return HttpProblem(404, {"code": "NotFound", "message": f"{what} with id '{ident}' doesn't exist"})


def invalid_input(message: str) -> HttpProblem:
    return HttpProblem(400, {"code": "InvalidInput", "message": message})


class FivetranEmulator:
    """All connectors of one emulated Fivetran account."""

    def __init__(
        self,
        scenario: Scenario,
        state_dir: Path,
        landing_dir: Path,
        *,
        time_scale: float = 1.0,
        schedule_scale: float = 1.0,
        auto_sync: bool = True,
    ):
        self.scenario = scenario
        self.landing_dir = Path(landing_dir)
        self.time_scale = time_scale
        self.schedule_scale = schedule_scale
        self.auto_sync = auto_sync
        self.lock = threading.RLock()
        self.generator = RowGenerator(scenario.seed, scenario.table_registry())
        self.store = JsonStateFile(Path(state_dir) / "fivetran.json", FivetranState)
        self.state = self.store.load() or FivetranState()
        self._reconcile_with_scenario()
        self.save()

    # --- setup -------------------------------------------------------------------------------

    def _reconcile_with_scenario(self) -> None:
        now = utc_now()
        declared = {c.id for c in self.scenario.fivetran.connectors}
        for stale in set(self.state.connectors) - declared:
            del self.state.connectors[stale]
        for spec in self.scenario.fivetran.connectors:
            if spec.id not in self.state.connectors:
                self.state.connectors[spec.id] = ConnectorState(
                    id=spec.id,
                    paused=spec.paused,
                    schedule_type=spec.schedule_type,
                    sync_frequency=spec.sync_frequency,
                    daily_sync_time=spec.daily_sync_time,
                    created_at=iso_z(now - timedelta(days=self.scenario.history_days)),
                )
                self._plan_next_auto_sync(self.state.connectors[spec.id], now)
        self.state.faults.load_scenario_faults(self.scenario, "fivetran")

    def save(self) -> None:
        self.store.save(self.state)

    @property
    def faults(self) -> FaultBook:
        return self.state.faults

    def spec(self, connector_id: str) -> FivetranConnectorSpec:
        spec = self.scenario.fivetran_connector(connector_id)
        if spec is None or connector_id not in self.state.connectors:
            raise not_found("Connector", connector_id)
        return spec

    def connector_state(self, connector_id: str) -> ConnectorState:
        self.spec(connector_id)
        return self.state.connectors[connector_id]

    def source_data(self, connector_id: str) -> SourceData:
        spec = self.spec(connector_id)
        return SourceData(
            schema=spec.schema_,
            tables=spec.tables,
            state=self.state.connectors[connector_id].data,
            generator=self.generator,
            seed=self.scenario.seed,
            history_days=self.scenario.history_days,
        )

    # --- time --------------------------------------------------------------------------------

    def advance(self, now: datetime | None = None) -> None:
        with self.lock:
            now = now or utc_now()
            changed = False
            for connector_id, state in self.state.connectors.items():
                changed |= self._advance_connector(connector_id, state, now)
            if changed:
                self.save()

    def _advance_connector(self, connector_id: str, state: ConnectorState, now: datetime) -> bool:
        sync = state.current_sync
        if sync is not None:
            if sync.rescheduled_until and now >= parse_instant(sync.rescheduled_until):
                sync.rescheduled_until = None
                state.update_state = "on_schedule"
                sync.ends_at = iso_z(now + self._duration(connector_id, sync.number))
                return True
            if sync.ends_at and now >= parse_instant(sync.ends_at):
                self._finish_sync(connector_id, state, sync, now)
                return True
            return False
        if (
            self.auto_sync
            and state.schedule_type == "auto"
            and not state.paused
            and state.setup_state == "connected"
            and state.next_auto_sync_at
            and now >= parse_instant(state.next_auto_sync_at)
        ):
            self._start_sync(connector_id, state, "incremental", None, "schedule", now)
            return True
        return False

    def _duration(self, connector_id: str, sync_number: int) -> timedelta:
        spec = self.spec(connector_id).sync_duration_s
        rng = np.random.default_rng([self.scenario.seed, sync_number, *connector_id.encode()])
        seconds = max(spec.mean * 0.2, rng.normal(spec.mean, spec.stddev)) if spec.stddev else spec.mean
        return timedelta(seconds=seconds * self.time_scale)

    def _plan_next_auto_sync(self, state: ConnectorState, now: datetime) -> None:
        if state.schedule_type != "auto" or state.paused:
            state.next_auto_sync_at = None
            return
        period = timedelta(minutes=state.sync_frequency) * self.schedule_scale
        state.next_auto_sync_at = iso_z(now + period)

    # --- syncs -------------------------------------------------------------------------------

    def trigger(
        self,
        connector_id: str,
        kind: Literal["incremental", "resync", "table_resync"] = "incremental",
        resync_tables: dict[str, list[str]] | None = None,
        restart_running: bool = True,
    ) -> None:
        with self.lock:
            now = utc_now()
            self.advance(now)
            state = self.connector_state(connector_id)
            if state.paused:
                # ASSUMPTION: Fivetran refuses manual syncs of paused connections.
                raise invalid_input(f"Connection '{connector_id}' is paused; resume it to sync")
            if resync_tables is not None:
                self._validate_tables(connector_id, resync_tables)
            if state.current_sync is not None:
                if not restart_running:
                    return  # documented: without force a running sync is left alone
                self._record(state, state.current_sync, now, "ABANDONED", "Restarted by a forced sync")
            self._start_sync(connector_id, state, kind, resync_tables, "api", now)
            self.save()

    def _validate_tables(self, connector_id: str, resync_tables: dict[str, list[str]]) -> None:
        spec = self.spec(connector_id)
        if not isinstance(resync_tables, dict) or not resync_tables:
            raise invalid_input('Body must map schema names to table lists, e.g. {"schema": ["table"]}')
        for schema, tables in resync_tables.items():
            if schema != spec.schema_:
                raise invalid_input(f"Schema '{schema}' is not found in connection '{connector_id}'")
            if not isinstance(tables, list) or not tables:
                raise invalid_input(f"Schema '{schema}' must list at least one table")
            for table in tables:
                if table not in spec.tables:
                    raise invalid_input(f"Table '{schema}.{table}' is not found in connection '{connector_id}'")

    def _start_sync(
        self,
        connector_id: str,
        state: ConnectorState,
        kind: Literal["incremental", "resync", "table_resync"],
        resync_tables: dict[str, list[str]] | None,
        triggered_by: Literal["api", "schedule"],
        now: datetime,
    ) -> None:
        state.syncs_started += 1
        number = state.syncs_started
        duration = self._duration(connector_id, number)
        sync = RunningSync(
            number=number,
            sync_id=f"{number:06d}-{uuid.uuid5(uuid.NAMESPACE_URL, f'fivetran/{connector_id}/{number}').hex[:12]}",
            kind=kind,
            resync_tables=resync_tables,
            triggered_by=triggered_by,
            started_at=iso_z(now),
            ends_at=iso_z(now + duration),
        )
        data = self.source_data(connector_id)
        for fault in self.state.faults.take_sync_faults(connector_id, number):
            if fault.kind == "schema_change":
                # ALLOW_ALL and ALLOW_COLUMNS sync new columns of enabled tables; BLOCK_ALL
                # captures them in the schema config, disabled, and syncs nothing of them
                data.apply_schema_change(fault, number, now,
                                         block_new_columns=self.schema_change_handling(connector_id) == "BLOCK_ALL")
            elif fault.kind == "expired_credentials":
                state.credentials_expired = True
            elif fault.kind == "sync_failure":
                sync.outcome = "failure"
                sync.failure = {
                    "code": fault.code or "sync_failed",
                    "message": fault.message
                    or FIVETRAN_SYNC_ERRORS.get(
                        self.spec(connector_id).service,
                        FIVETRAN_DEFAULT_SYNC_ERROR.format(service=self.spec(connector_id).service),
                    ),
                    "blocking": not fault.retryable,
                }
                sync.recovers = fault.recovers and fault.retryable
            elif fault.kind == "hang":
                sync.outcome = "hang"
                sync.ends_at = None
            elif fault.kind == "zero_rows":
                sync.volume_share = 0.0
            elif fault.kind == "partial_volume":
                sync.volume_share = min(sync.volume_share, fault.share)
            elif fault.kind == "stuck_cursor":
                sync.stuck_cursor = True
            elif fault.kind == "latency_creep":
                state.creep = max(state.creep, 1.0) * fault.factor
                sync.ends_at = iso_z(now + duration * state.creep)
            elif fault.kind == "sync_warning":
                state.warnings = [w for w in state.warnings if w.get("code") != fault.code] + [
                    {"code": fault.code, "message": "Warning", "details": fault.message}]
            elif fault.kind == "rescheduled":
                sync.rescheduled_until = iso_z(now + timedelta(seconds=fault.delay_s * self.time_scale))
                sync.ends_at = None
                state.update_state = "delayed"
        if state.credentials_expired:
            # The login check fails within seconds, long before any data would move.
            sync.outcome = "expired_credentials"
            sync.ends_at = iso_z(now + duration * 0.2)
            sync.rescheduled_until = None
        state.is_historical_sync = kind == "resync" or not state.data.landed_versions
        state.current_sync = sync

    def _finish_sync(self, connector_id: str, state: ConnectorState, sync: RunningSync, now: datetime) -> None:
        state.current_sync = None
        state.is_historical_sync = False
        if sync.outcome == "success":
            full_tables = None
            if sync.kind == "resync":
                full_tables = set(self.spec(connector_id).tables)
            elif sync.kind == "table_resync":
                full_tables = {t for tables in (sync.resync_tables or {}).values() for t in tables}
            stats = self.source_data(connector_id).land(
                self.landing_dir, sync.number, sync.sync_id, now, _fivetran_columns, full_tables,
                volume_share=sync.volume_share, stuck_cursor=sync.stuck_cursor,
            )
            # Completion stamp after the files exist: a poller that sees it can read the rows.
            completed = utc_now()
            state.succeeded_at = iso_z(completed)
            state.warnings = [w for w in state.warnings if w.get("code") != "sync_failed"]
            state.tasks = [t for t in state.tasks if t.get("code") != "resolve_sync_error"]
            self._record(state, sync, completed, "SUCCESSFUL", None, {t: s["rows"] for t, s in stats.items()})
        elif sync.outcome == "expired_credentials":
            state.failed_at = iso_z(now)
            state.setup_state = "broken"
            state.tasks = [t for t in state.tasks if t.get("code") != "reconnect"] + [
                {"code": "reconnect", "message": "Reconnect", "details": FIVETRAN_AUTH_DETAILS}
            ]
            state.setup_tests = [
                {"title": "Validate Login", "status": "FAILED", "message": "Invalid login credentials.",
                 "details": FIVETRAN_AUTH_DETAILS},
                {"title": "Test Connection", "status": "SKIPPED", "message": "", "details": None},
            ]
            self._record(state, sync, now, "FAILURE_WITH_TASK", FIVETRAN_AUTH_DETAILS)
        else:  # failure
            failure = sync.failure or {}
            state.failed_at = iso_z(now)
            entry = {"code": failure.get("code", "sync_failed"), "message": "Sync Failed",
                     "details": failure.get("message")}
            if failure.get("blocking"):
                entry["code"] = "resolve_sync_error"
                state.tasks = [t for t in state.tasks if t.get("code") != "resolve_sync_error"] + [entry]
                status = "FAILURE_WITH_TASK"
            else:
                entry["code"] = "sync_failed"
                state.warnings = [w for w in state.warnings if w.get("code") != "sync_failed"] + [entry]
                status = "FAILURE"
            self._record(state, sync, now, status, failure.get("message"))
            if sync.recovers:  # Fivetran retries the failed sync itself; this one gets through
                self._start_sync(connector_id, state, sync.kind, sync.resync_tables, "schedule", now)
                return
        self._plan_next_auto_sync(state, now)

    def _record(
        self, state: ConnectorState, sync: RunningSync, finished: datetime, status: str,
        message: str | None, rows: dict[str, int] | None = None,
    ) -> None:
        state.history.append(
            SyncRecord(
                number=sync.number, sync_id=sync.sync_id, kind=sync.kind, triggered_by=sync.triggered_by,
                started_at=sync.started_at, finished_at=iso_z(finished), status=status, message=message,
                rows=rows or {},
            )
        )
        del state.history[:-HISTORY_LIMIT]

    # --- management ---------------------------------------------------------------------------

    def patch(self, connector_id: str, body: dict[str, Any]) -> None:
        with self.lock:
            now = utc_now()
            self.advance(now)
            state = self.connector_state(connector_id)
            if not isinstance(body, dict):
                raise invalid_input("Request body must be a JSON object")
            if "paused" in body:
                if not isinstance(body["paused"], bool):
                    raise invalid_input("Field 'paused' must be a boolean")
                state.paused = body["paused"]
            if "schedule_type" in body:
                if body["schedule_type"] not in ("auto", "manual"):
                    raise invalid_input("Field 'schedule_type' must be one of [auto, manual]")
                state.schedule_type = body["schedule_type"]
            if "sync_frequency" in body:
                if body["sync_frequency"] not in FIVETRAN_SYNC_FREQUENCIES:
                    raise invalid_input(
                        f"Field 'sync_frequency' must be one of {list(FIVETRAN_SYNC_FREQUENCIES)}"
                    )
                state.sync_frequency = body["sync_frequency"]
            if "daily_sync_time" in body:
                value = body["daily_sync_time"]
                if value is not None and (state.sync_frequency != 1440 or not _is_hh00(value)):
                    raise invalid_input("Field 'daily_sync_time' needs sync_frequency 1440 and a value like '14:00'")
                state.daily_sync_time = value
            if state.sync_frequency != 1440:
                state.daily_sync_time = None
            self._plan_next_auto_sync(state, now)
            self.save()

    def patch_schema_config(self, connector_id: str, body: Any) -> None:
        """``PATCH /v1/connections/{id}/schemas``: only ``schema_change_handling`` is acted on here."""
        with self.lock:
            state = self.connector_state(connector_id)
            if not isinstance(body, dict):
                raise invalid_input("Request body must be a JSON object")
            if "schema_change_handling" in body:
                value = body["schema_change_handling"]
                if value not in ("ALLOW_ALL", "ALLOW_COLUMNS", "BLOCK_ALL"):
                    raise invalid_input("Field 'schema_change_handling' must be one of [ALLOW_ALL, ALLOW_COLUMNS, BLOCK_ALL]")
                state.schema_change_handling = value
            self.save()

    def run_setup_tests(self, connector_id: str) -> None:
        with self.lock:
            state = self.connector_state(connector_id)
            if not state.credentials_expired and state.setup_state == "broken":
                # Credentials were fixed out of band: a passing test reconnects the connector.
                state.setup_state = "connected"
                state.tasks = [t for t in state.tasks if t.get("code") != "reconnect"]
                state.setup_tests = list(PASSED_SETUP_TESTS)
            self.save()

    def repair(self, connector_id: str) -> None:
        """Emulator control: the user re-entered valid credentials and reconnected."""
        with self.lock:
            state = self.connector_state(connector_id)
            state.credentials_expired = False
            self.save()
            self.run_setup_tests(connector_id)

    # --- API views ---------------------------------------------------------------------------

    def connector_json(self, connector_id: str) -> dict[str, Any]:
        with self.lock:
            spec = self.spec(connector_id)
            state = self.state.connectors[connector_id]
            sync = state.current_sync
            if state.paused:
                sync_state = "paused"
            elif sync is not None and sync.rescheduled_until:
                sync_state = "rescheduled"
            elif sync is not None:
                sync_state = "syncing"
            else:
                sync_state = "scheduled"
            return json_safe(
                {
                    "id": spec.id,
                    "group_id": spec.group,
                    "service": spec.service,
                    "service_version": 1,
                    "schema": spec.schema_,
                    "connected_by": "emulator_user",
                    "created_at": state.created_at,
                    "succeeded_at": state.succeeded_at,
                    "failed_at": state.failed_at,
                    "paused": state.paused,
                    "pause_after_trial": False,
                    "sync_frequency": state.sync_frequency,
                    "daily_sync_time": state.daily_sync_time,
                    "schedule_type": state.schedule_type,
                    "data_delay_sensitivity": "NORMAL",
                    "data_delay_threshold": 0,
                    "networking_method": "Directly",
                    "status": {
                        "setup_state": state.setup_state,
                        "schema_status": "ready",
                        "sync_state": sync_state,
                        "update_state": state.update_state,
                        "is_historical_sync": state.is_historical_sync,
                        "rescheduled_for": sync.rescheduled_until if sync is not None else None,
                        "tasks": state.tasks,
                        "warnings": state.warnings,
                    },
                    "setup_tests": state.setup_tests,
                    "config": {"schema": spec.schema_},
                    "source_sync_details": {},
                }
            )

    def schema_config_json(self, connector_id: str) -> dict[str, Any]:
        with self.lock:
            spec = self.spec(connector_id)
            data = self.source_data(connector_id)
            tables = {
                name: {
                    "name_in_destination": name,
                    "enabled": True,
                    "sync_mode": "SOFT_DELETE",
                    "supports_columns_config": True,
                    "enabled_patch_settings": {"allowed": True},
                    "columns": self._columns_json(data, name, self.scenario.fivetran.column_types),
                }
                for name in spec.tables
            }
            handling = self.schema_change_handling(connector_id)
            return {
                "is_type_locked": False,
                # read-only, derived from schema_change_handling (ASSUMPTION: true only for ALLOW_ALL)
                "enable_new_by_default": handling == "ALLOW_ALL",
                "schema_change_handling": handling,
                "schemas": {
                    spec.schema_: {"name_in_destination": spec.schema_, "enabled": True, "tables": tables}
                },
            }

    def schema_change_handling(self, connector_id: str) -> str:
        return self.state.connectors[connector_id].schema_change_handling or self.spec(connector_id).schema_change_handling

    def columns_json(self, connector_id: str, schema: str, table: str) -> dict[str, Any]:
        with self.lock:
            spec = self.spec(connector_id)
            if schema != spec.schema_ or table not in spec.tables:
                raise HttpProblem(
                    404, {"code": "NotFound", "message": f"Table '{schema}.{table}' doesn't exist in connection '{connector_id}'"}
                )
            return {"columns": self._columns_json(self.source_data(connector_id), table,
                                                  self.scenario.fivetran.column_types)}

    @staticmethod
    def _columns_json(data: SourceData, table: str, with_types: bool = False) -> dict[str, Any]:
        landed = data.columns(table)
        blocked = {n: c for n, c in data.blocked_columns(table).items() if n not in landed}
        return {
            name: {
                "name_in_destination": name,
                "enabled": name not in blocked,
                "hashed": False,
                "is_primary_key": column.primary_key,
                # documented reason codes: SYSTEM_TABLE | DELETED | OTHER (+ `reason` with OTHER)
                "enabled_patch_settings": {"allowed": not column.primary_key, **(
                    {"reason_code": "OTHER", "reason": "Primary key columns cannot be excluded"}
                    if column.primary_key else {})},
                # Not in Fivetran's payload: only with the scenario's `fivetran.column_types` extension.
                **({"type": column.type} if with_types else {}),
            }
            for name, column in {**landed, **blocked}.items()
        }

    def group_json(self, group_id: str) -> dict[str, Any]:
        group = next((g for g in self.scenario.fivetran.groups if g.id == group_id), None)
        if group is None:
            raise not_found("Group", group_id)
        return {"id": group.id, "name": group.name,
                "created_at": iso_z(utc_now().replace(hour=0, minute=0, second=0, microsecond=0)
                                    - timedelta(days=self.scenario.history_days))}

    def destination_json(self, destination_id: str) -> dict[str, Any]:
        group = next((g for g in self.scenario.fivetran.groups if g.id == destination_id), None)
        if group is None:
            raise not_found("Destination", destination_id)
        dest = group.destination
        return {
            "id": group.id,
            "group_id": group.id,
            "service": dest.service,
            "region": dest.region,
            "time_zone_offset": dest.time_zone_offset,
            "setup_status": "CONNECTED",
            "setup_tests": [{"title": "Connection", "status": "PASSED", "message": ""}],
            "config": {"database": dest.database} if dest.database else {},
        }

    def connector_ids(self, group_id: str | None = None) -> list[str]:
        return sorted(
            c.id for c in self.scenario.fivetran.connectors if group_id is None or c.group == group_id
        )

    def debug_state(self) -> dict[str, Any]:
        with self.lock:
            return json_safe(self.state.model_dump(mode="json"))


def _is_hh00(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 5 and value[2] == ":" and value[:2].isdigit() \
        and 0 <= int(value[:2]) < 24 and value[3:] == "00"


def _fivetran_columns(count: int, now: datetime, table: str) -> dict[str, pa.Array]:
    return {
        "_fivetran_synced": pa.array([now] * count, pa.timestamp("us", tz="UTC")),
        "_fivetran_deleted": pa.array([False] * count, pa.bool_()),
    }
