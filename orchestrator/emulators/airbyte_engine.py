"""Airbyte connections, jobs and attempts: the state machine behind the public and config APIs.

Jobs go `running -> succeeded | failed | cancelled`, passing through `incomplete` between failed
attempts when a fault asks for retries. The public API only shows a job's status; why it failed
lives in the config API's attempts (`failureSummary.failures[]`), as on the real platform.
Like the Fivetran engine, time advances lazily on every call and on a background tick.
"""

from __future__ import annotations

import hashlib
import json
import secrets
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
from orchestrator.emulators.landing import SourceData, SourceDataState, deterministic_uuids
from orchestrator.emulators.scenario import AirbyteConnectionSpec, ColumnSpec, Scenario
from orchestrator.emulators.state import (
    JsonStateFile,
    epoch_seconds,
    iso_duration,
    iso_z,
    json_safe,
    parse_instant,
    utc_now,
)
from orchestrator.emulators.vendor_messages import (
    AIRBYTE_AUTH_INTERNAL,
    AIRBYTE_CANCELLED_EXTERNAL,
    AIRBYTE_CANCELLED_INTERNAL,
    AIRBYTE_CHECK_FAILED,
    AIRBYTE_DEFAULT_AUTH_INTERNAL,
    AIRBYTE_DEFAULT_SOURCE_ERROR,
    AIRBYTE_SOURCE_ERRORS,
    java_stacktrace,
)

ACTIVE_STATUSES = ("pending", "running", "incomplete")
TERMINAL_STATUSES = ("succeeded", "failed", "cancelled")
JOB_LIMIT = 2000
JSON_SCHEMA_TYPES: dict[str, dict[str, Any]] = {
    "string": {"type": ["null", "string"]},
    "email": {"type": ["null", "string"]},
    "integer": {"type": ["null", "integer"]},
    "decimal": {"type": ["null", "number"]},
    "boolean": {"type": ["null", "boolean"]},
    "date": {"type": ["null", "string"], "format": "date"},
    "timestamp": {"type": ["null", "string"], "format": "date-time", "airbyte_type": "timestamp_with_timezone"},
}


# Public API problems (airbyte-platform `airbyte-api/problems-api/.../api-problems.yaml`): `detail` is
# the problem type's fixed text and the specific message goes in `data` (ProblemMessageData
# `{"message"}`, ProblemResourceData `{"resourceType", "resourceId"}` for 404s).
PROBLEM_DETAILS = {
    "bad-request": "The request could not be understood by the server due to malformed syntax.",
    "resource-not-found": "The requested resource could not be found.",
    "unprocessable-entity": "The body of the request was not understood",
    "try-again-later": "Please try again later.",
    "state-conflict": "State conflict",
    "unexpected-problem": ("An unexpected problem has occurred. If this is an error that needs to be "
                           "addressed, please submit a pull request or github issue."),
    "invalid-api-key": "The API key in the Authorization header is invalid.",
}


PROBLEM_TYPES = {
    "state-conflict": "https://reference.airbyte.com/reference/errors#409-state-conflict",
    "unexpected-problem": "https://reference.airbyte.com/reference/errors",
}


def problem(status: int, title: str, detail: str, data: dict[str, Any] | None = None) -> HttpProblem:
    """A problem+json error. For the problem types Airbyte defines, ``detail`` here is the specific
    message and lands in ``data.message`` (unless ``data`` is given), as the server renders them."""
    body: dict[str, Any] = {
        "type": PROBLEM_TYPES.get(title, f"https://reference.airbyte.com/reference/errors#{title}"),
        "title": title,
        "status": status,
        "detail": PROBLEM_DETAILS.get(title, detail),
    }
    if data:
        body["data"] = data
    elif title in PROBLEM_DETAILS and title != "invalid-api-key":
        body["data"] = {"message": detail}
    return HttpProblem(status, body, {"Content-Type": "application/problem+json"})


def not_found(resource_type: str, resource_id: Any) -> HttpProblem:
    return problem(404, "resource-not-found", f"Could not find a {resource_type} with id: {resource_id}",
                   {"resourceType": resource_type, "resourceId": str(resource_id)})


def json_mapping_error() -> HttpProblem:
    """What the server answers a body Jackson cannot map (an enum value the API does not define,
    e.g. ``scheduleType: "basic"`` in a PATCH, or a required field missing): HTTP 422 with only an
    error id (airbyte-platform ``InvalidJsonInputExceptionHandler``), not a problem document."""
    return HttpProblem(422, {"errorId": str(uuid.uuid4())}, {"Content-Type": "application/json"})


class Attempt(BaseModel):
    id: int
    status: Literal["running", "failed", "succeeded"] = "running"
    created_at: str
    updated_at: str
    ended_at: str | None = None
    # When this attempt finishes by itself; None while it hangs.
    ends_at: str | None = None
    records: int = 0
    bytes: int = 0
    stream_stats: dict[str, int] = Field(default_factory=dict)
    failure: dict[str, Any] | None = None
    log_lines: list[str] = Field(default_factory=list)


class Job(BaseModel):
    id: int
    connection_id: str
    job_type: Literal["sync", "reset", "clear"] = "sync"
    # reset/clear of selected streams (config API connections/reset/stream); None = all streams
    streams: list[str] | None = None
    status: Literal["pending", "running", "incomplete", "failed", "succeeded", "cancelled"] = "running"
    created_at: str
    updated_at: str
    sync_number: int | None = None
    triggered_by: Literal["api", "schedule"] = "api"
    outcome: Literal["success", "failure", "expired_credentials", "hang"] = "success"
    failure_template: dict[str, Any] | None = None
    attempts_planned: int = 1
    recovers: bool = False  # sync_failure recovers: one more attempt after the failed ones succeeds
    attempts: list[Attempt] = Field(default_factory=list)
    # silent failures and precursors (scenario faults zero_rows, partial_volume, stuck_cursor,
    # latency_creep, sync_warning): the job still succeeds
    volume_share: float = 1.0
    stuck_cursor: bool = False
    duration_factor: float = 1.0
    warnings: list[str] = Field(default_factory=list)

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATUSES


class ConnectionState(BaseModel):
    id: str
    status: Literal["active", "inactive"]
    schedule_type: Literal["manual", "basic", "cron"]
    every_minutes: int | None = None
    cron_expression: str | None = None
    # nonBreakingSchemaUpdatesBehavior: ignore | disable_connection | propagate_columns | propagate_fully
    non_breaking_updates: str = "propagate_columns"
    created_at: str
    credentials_expired: bool = False
    syncs_started: int = 0
    next_auto_sync_at: str | None = None
    data: SourceDataState = Field(default_factory=SourceDataState)
    creep: float = 1.0  # latency_creep faults: current duration multiplier


class AirbyteState(BaseModel):
    connections: dict[str, ConnectionState] = Field(default_factory=dict)
    jobs: list[Job] = Field(default_factory=list)
    next_job_id: int = 1
    # sha256(token) -> expiry; only digests are kept so the state file holds no usable token.
    tokens: dict[str, str] = Field(default_factory=dict)
    faults: FaultBook = Field(default_factory=FaultBook)


class AirbyteEmulator:
    def __init__(
        self,
        scenario: Scenario,
        state_dir: Path,
        landing_dir: Path,
        *,
        client_id: str,
        client_secret: str,
        token_ttl_s: int = 180,
        time_scale: float = 1.0,
        schedule_scale: float = 1.0,
        auto_sync: bool = True,
    ):
        if scenario.airbyte is None:
            raise ValueError("the scenario declares no airbyte section")
        self.scenario = scenario
        self.spec_root = scenario.airbyte
        self.landing_dir = Path(landing_dir)
        self.client_id = client_id
        self._client_secret = client_secret
        self.token_ttl_s = token_ttl_s
        self.time_scale = time_scale
        self.schedule_scale = schedule_scale
        self.auto_sync = auto_sync
        self.lock = threading.RLock()
        self.generator = RowGenerator(scenario.seed, scenario.table_registry())
        self.store = JsonStateFile(Path(state_dir) / "airbyte.json", AirbyteState)
        self.state = self.store.load() or AirbyteState()
        self._reconcile_with_scenario()
        self.save()

    # --- setup -------------------------------------------------------------------------------

    def _reconcile_with_scenario(self) -> None:
        now = utc_now()
        declared = {c.id for c in self.spec_root.connections}
        for stale in set(self.state.connections) - declared:
            del self.state.connections[stale]
        for spec in self.spec_root.connections:
            if spec.id not in self.state.connections:
                state = ConnectionState(
                    id=spec.id,
                    status=spec.status,
                    schedule_type=spec.schedule.type,
                    every_minutes=spec.schedule.every_minutes,
                    cron_expression=spec.schedule.cron_expression,
                    created_at=iso_z(now - timedelta(days=self.scenario.history_days)),
                )
                self._plan_next_auto_sync(state, now)
                self.state.connections[spec.id] = state
        self.state.faults.load_scenario_faults(self.scenario, "airbyte")

    def save(self) -> None:
        self.store.save(self.state)

    @property
    def faults(self) -> FaultBook:
        return self.state.faults

    def spec(self, connection_id: str) -> AirbyteConnectionSpec:
        spec = self.scenario.airbyte_connection(connection_id)
        if spec is None or connection_id not in self.state.connections:
            raise not_found("connection", connection_id)
        return spec

    def source_data(self, connection_id: str) -> SourceData:
        spec = self.spec(connection_id)
        return SourceData(
            schema=spec.schema_,
            tables=spec.streams,
            state=self.state.connections[connection_id].data,
            generator=self.generator,
            seed=self.scenario.seed,
            history_days=self.scenario.history_days,
            table_prefix=spec.prefix,
        )

    # --- auth --------------------------------------------------------------------------------

    def issue_token(self, client_id: Any, client_secret: Any) -> dict[str, Any]:
        if not (
            isinstance(client_id, str)
            and isinstance(client_secret, str)
            and secrets.compare_digest(client_id, self.client_id)
            and secrets.compare_digest(client_secret, self._client_secret)
        ):
            raise problem(401, "unauthorized", "Invalid client_id or client_secret")
        token = secrets.token_urlsafe(32)
        with self.lock:
            now = utc_now()
            self.state.tokens = {
                digest: expiry for digest, expiry in self.state.tokens.items() if parse_instant(expiry) > now
            }
            self.state.tokens[_digest(token)] = iso_z(now + timedelta(seconds=self.token_ttl_s))
            self.save()
        return {"access_token": token, "token_type": "Bearer", "expires_in": self.token_ttl_s}

    def token_valid(self, token: str) -> bool:
        with self.lock:
            expiry = self.state.tokens.get(_digest(token))
            return expiry is not None and parse_instant(expiry) > utc_now()

    def basic_auth_valid(self, username: str, password: str) -> bool:
        # Self-managed Airbyte accepts basic auth; the client credentials double as user/password.
        return secrets.compare_digest(username, self.client_id) and secrets.compare_digest(
            password, self._client_secret
        )

    # --- time --------------------------------------------------------------------------------

    def advance(self, now: datetime | None = None) -> None:
        with self.lock:
            now = now or utc_now()
            changed = False
            for job in self.state.jobs:
                if job.active:
                    changed |= self._advance_job(job, now)
            if self.auto_sync:
                for connection_id, state in self.state.connections.items():
                    if (
                        state.status == "active"
                        and state.next_auto_sync_at
                        and now >= parse_instant(state.next_auto_sync_at)
                        and not self._active_job(connection_id)
                    ):
                        self._create_job(connection_id, "sync", "schedule", now)
                        changed = True
            if changed:
                self.save()

    def _plan_next_auto_sync(self, state: ConnectionState, now: datetime) -> None:
        if state.status != "active":
            state.next_auto_sync_at = None
        elif state.schedule_type == "basic" and state.every_minutes:
            state.next_auto_sync_at = iso_z(now + timedelta(minutes=state.every_minutes) * self.schedule_scale)
        elif state.schedule_type == "cron" and state.cron_expression:
            due = next_quartz_fire(state.cron_expression, now)
            state.next_auto_sync_at = iso_z(now + (due - now) * self.schedule_scale) if due else None
        else:
            state.next_auto_sync_at = None

    def _duration(self, connection_id: str, sync_number: int) -> timedelta:
        spec = self.spec(connection_id).sync_duration_s
        rng = np.random.default_rng([self.scenario.seed, sync_number, *connection_id.encode()[:16]])
        seconds = max(spec.mean * 0.2, rng.normal(spec.mean, spec.stddev)) if spec.stddev else spec.mean
        return timedelta(seconds=seconds * self.time_scale)

    def _active_job(self, connection_id: str) -> Job | None:
        return next((j for j in self.state.jobs if j.connection_id == connection_id and j.active), None)

    # --- jobs --------------------------------------------------------------------------------

    def start_job(self, connection_id: str, job_type: str, streams: list[str] | None = None) -> Job:
        with self.lock:
            now = utc_now()
            self.advance(now)
            spec = self.spec(connection_id)
            unknown = [s for s in streams or [] if s not in spec.streams]
            if unknown:
                raise problem(
                    400, "bad-request",
                    f"unknown stream(s) {unknown} for connection {connection_id}; streams: {sorted(spec.streams)}",
                )
            if job_type == "refresh":
                raise problem(422, "unprocessable-entity", "Refreshes are not supported in the public API")
            if job_type not in ("sync", "reset", "clear"):
                raise problem(400, "bad-request", f"jobType must be one of sync, reset, clear; got {job_type!r}")
            if self._active_job(connection_id) is not None:
                raise problem(
                    409, "try-again-later", "Please try again later.",
                    {"message": f"A sync is already running for: {connection_id}"},
                )
            job = self._create_job(connection_id, job_type, "api", now)
            job.streams = list(streams) if streams else None
            self.save()
            return job

    def _create_job(self, connection_id: str, job_type: str, triggered_by: str, now: datetime) -> Job:
        state = self.state.connections[connection_id]
        job = Job(
            id=self.state.next_job_id,
            connection_id=connection_id,
            job_type=job_type,
            created_at=iso_z(now),
            updated_at=iso_z(now),
            triggered_by=triggered_by,
        )
        self.state.next_job_id += 1
        if job_type == "sync":
            state.syncs_started += 1
            job.sync_number = state.syncs_started
            self._apply_sync_faults(job, state, now)
        self._start_attempt(job, now)
        self.state.jobs.append(job)
        del self.state.jobs[:-JOB_LIMIT]
        self._plan_next_auto_sync(state, now)
        return job

    def _apply_sync_faults(self, job: Job, state: ConnectionState, now: datetime) -> None:
        spec = self.spec(job.connection_id)
        data = self.source_data(job.connection_id)
        first_stream = next(iter(spec.streams), None)
        for fault in self.state.faults.take_sync_faults(job.connection_id, job.sync_number):
            if fault.kind == "schema_change":
                # nonBreakingSchemaUpdatesBehavior=ignore: a new column is not propagated
                data.apply_schema_change(fault, job.sync_number, now,
                                         block_new_columns=state.non_breaking_updates == "ignore")
            elif fault.kind == "expired_credentials":
                state.credentials_expired = True
            elif fault.kind == "sync_failure":
                external, internal = AIRBYTE_SOURCE_ERRORS.get(spec.source_type, AIRBYTE_DEFAULT_SOURCE_ERROR)
                if fault.message:
                    external, internal = fault.message, fault.message
                job.outcome = "failure"
                job.attempts_planned = fault.attempts
                job.recovers = fault.recovers
                job.failure_template = {
                    "failureOrigin": fault.failure_origin,
                    "failureType": fault.code or "system_error",
                    "externalMessage": external,
                    "internalMessage": internal,
                    "stacktrace": java_stacktrace(internal),
                    "retryable": fault.retryable,
                    "fromTraceMessage": True,
                    **({"streamDescriptor": self._stream_descriptor(spec, first_stream)} if first_stream else {}),
                }
            elif fault.kind == "hang":
                job.outcome = "hang"
            elif fault.kind == "zero_rows":
                job.volume_share = 0.0
            elif fault.kind == "partial_volume":
                job.volume_share = min(job.volume_share, fault.share)
            elif fault.kind == "stuck_cursor":
                job.stuck_cursor = True
            elif fault.kind == "latency_creep":
                state.creep = max(state.creep, 1.0) * fault.factor
                job.duration_factor = state.creep
            elif fault.kind == "sync_warning":
                job.warnings.append(f"{fault.code}: {fault.message}")
        if state.credentials_expired:
            internal = AIRBYTE_AUTH_INTERNAL.get(spec.source_type, AIRBYTE_DEFAULT_AUTH_INTERNAL)
            job.outcome = "expired_credentials"
            job.attempts_planned = 1
            job.failure_template = {
                "failureOrigin": "source",
                "failureType": "config_error",
                "externalMessage": AIRBYTE_CHECK_FAILED,
                "internalMessage": internal,
                "stacktrace": java_stacktrace(internal, "DefaultCheckConnectionWorker"),
                "retryable": False,
                "fromTraceMessage": True,
            }

    def _start_attempt(self, job: Job, now: datetime) -> None:
        duration = self._duration(job.connection_id, (job.sync_number or 0) * 10 + len(job.attempts))
        if job.job_type != "sync" or job.outcome == "expired_credentials":
            duration = duration * 0.2  # clears and failing connection checks are quick
        elif job.duration_factor != 1.0:
            duration = duration * job.duration_factor  # latency creep
        attempt = Attempt(
            id=len(job.attempts),
            created_at=iso_z(now),
            updated_at=iso_z(now),
            ends_at=None if job.outcome == "hang" else iso_z(now + duration),
            log_lines=[
                f"{iso_z(now)} INFO Starting attempt {len(job.attempts)} of job {job.id} "
                f"({job.job_type}) for connection {job.connection_id}",
            ],
        )
        job.attempts.append(attempt)
        job.status = "running"
        job.updated_at = iso_z(now)

    def _advance_job(self, job: Job, now: datetime) -> bool:
        attempt = job.attempts[-1]
        if attempt.ends_at is None or now < parse_instant(attempt.ends_at):
            return False
        if job.outcome == "success":
            self._succeed(job, attempt, now)
        else:
            failure = dict(job.failure_template or {})
            failure["timestamp"] = int(now.timestamp() * 1000)
            attempt.status = "failed"
            attempt.failure = failure
            attempt.ended_at = attempt.updated_at = iso_z(now)
            attempt.log_lines.append(f"{iso_z(now)} ERROR {failure.get('internalMessage', '')}")
            if len(job.attempts) < job.attempts_planned or (job.recovers and job.outcome == "failure"):
                if len(job.attempts) >= job.attempts_planned:
                    job.outcome = "success"  # the platform's retry gets through
                job.status = "incomplete"
                job.updated_at = iso_z(now)
                self._start_attempt(job, now)
                job.status = "incomplete"  # stays incomplete until an attempt settles it
            else:
                job.status = "failed"
                job.updated_at = iso_z(now)
        return True

    def _succeed(self, job: Job, attempt: Attempt, now: datetime) -> None:
        data = self.source_data(job.connection_id)
        if job.job_type == "sync":
            sync_id = f"{job.sync_number:06d}-job{job.id}"
            stats = data.land(
                self.landing_dir, job.sync_number, sync_id, now, _airbyte_columns(job.connection_id, job.id),
                volume_share=job.volume_share, stuck_cursor=job.stuck_cursor,
            )
            for w in job.warnings:  # a precursor: the platform logs it and the sync goes on
                attempt.log_lines.append(f"{iso_z(now)} WARN {w}")
            attempt.stream_stats = {table: s["rows"] for table, s in stats.items()}
            attempt.records = sum(s["rows"] for s in stats.values())
            attempt.bytes = sum(s["bytes"] for s in stats.values())
            attempt.log_lines.append(f"{iso_z(now)} INFO Sync summary: {attempt.records} records committed")
        else:
            data.clear_landed_files(self.landing_dir, job.streams)
            data.mark_cleared(job.streams)
            cleared = ", ".join(job.streams) if job.streams else "all streams"
            attempt.log_lines.append(f"{iso_z(now)} INFO Cleared data for {cleared}")
        done = utc_now()
        attempt.status = "succeeded"
        attempt.ended_at = attempt.updated_at = iso_z(done)
        job.status = "succeeded"
        job.updated_at = iso_z(done)

    def cancel_job(self, job_id: int) -> Job:
        with self.lock:
            now = utc_now()
            self.advance(now)
            job = self.job(job_id)
            if not job.active:
                raise problem(409, "try-again-later", f"Job {job_id} has already finished ({job.status})")
            attempt = job.attempts[-1]
            if attempt.status == "running":
                attempt.status = "failed"
                attempt.ended_at = attempt.updated_at = iso_z(now)
                attempt.failure = {
                    "failureOrigin": "airbyte_platform",
                    "failureType": "manual_cancellation",
                    "externalMessage": AIRBYTE_CANCELLED_EXTERNAL,
                    "internalMessage": AIRBYTE_CANCELLED_INTERNAL,
                    "retryable": False,
                    "timestamp": int(now.timestamp() * 1000),
                }
            job.status = "cancelled"
            job.updated_at = iso_z(now)
            self.save()
            return job

    def job(self, job_id: int) -> Job:
        job = next((j for j in self.state.jobs if j.id == job_id), None)
        if job is None:
            raise not_found("job", job_id)
        return job

    def jobs(self) -> list[Job]:
        return list(self.state.jobs)

    def patch_connection(self, connection_id: str, body: dict[str, Any]) -> None:
        """``PATCH /connections/{id}`` as the public API takes it (``ConnectionPatchRequest``):
        ``schedule`` is ``AirbyteApiConnectionSchedule`` = ``scheduleType`` manual | cron (no
        ``basic``: that only appears in responses) + ``cronExpression`` (Quartz, at most hourly);
        ``status`` active | inactive | deprecated | locked. Unknown fields (``basicTiming``) are
        ignored, as Jackson is configured to; values outside an enum answer 422 ``{"errorId"}``."""
        with self.lock:
            now = utc_now()
            self.spec(connection_id)
            state = self.state.connections[connection_id]
            if not isinstance(body, dict):
                raise json_mapping_error()
            status = body.get("status")
            if status is not None and (not isinstance(status, str)
                                       or status.lower() not in ("active", "inactive", "deprecated", "locked")):
                raise json_mapping_error()
            schedule = body.get("schedule")
            kind = cron = None
            if schedule is not None:
                if not isinstance(schedule, dict):
                    raise json_mapping_error()
                kind = schedule.get("scheduleType")
                if not isinstance(kind, str) or kind.lower() not in ("manual", "cron"):
                    raise json_mapping_error()  # "basic" is not a ScheduleTypeEnum value
                kind = kind.lower()
                if kind == "cron":
                    cron = validate_quartz_cron(schedule.get("cronExpression"))
            behaviour = body.get("nonBreakingSchemaUpdatesBehavior")
            if behaviour is not None and behaviour not in ("ignore", "disable_connection", "propagate_columns",
                                                           "propagate_fully"):
                raise json_mapping_error()
            if behaviour is not None:
                state.non_breaking_updates = behaviour
            if status is not None:
                state.status = "active" if status.lower() == "active" else "inactive"
            if kind is not None:
                state.schedule_type = kind
                state.cron_expression = cron
                state.every_minutes = None
            self._plan_next_auto_sync(state, now)
            self.save()

    def repair(self, connection_id: str) -> None:
        with self.lock:
            self.spec(connection_id)
            self.state.connections[connection_id].credentials_expired = False
            self.save()

    # --- views -------------------------------------------------------------------------------

    def public_job_json(self, job: Job) -> dict[str, Any]:
        # Absent values are omitted, never null: `"lastUpdatedAt": null` crashes dagster.
        out: dict[str, Any] = {
            "jobId": job.id,
            "status": job.status,
            "jobType": job.job_type,
            "connectionId": job.connection_id,
            "startTime": iso_z(parse_instant(job.created_at), with_micros=False),
        }
        if job.status in TERMINAL_STATUSES:
            out["lastUpdatedAt"] = iso_z(parse_instant(job.updated_at), with_micros=False)
        if job.status != "pending":
            end = parse_instant(job.updated_at) if job.status in TERMINAL_STATUSES else utc_now()
            out["duration"] = iso_duration(end - parse_instant(job.created_at))
        out["bytesSynced"] = sum(a.bytes for a in job.attempts)
        out["rowsSynced"] = sum(a.records for a in job.attempts)
        return out

    def config_job_json(self, job: Job) -> dict[str, Any]:
        spec = self.spec(job.connection_id)
        streams = list(spec.streams)
        records = sum(a.records for a in job.attempts)
        bytes_ = sum(a.bytes for a in job.attempts)
        return json_safe(
            {
                "job": {
                    "id": job.id,
                    "configType": {"sync": "sync", "reset": "reset_connection", "clear": "clear"}[job.job_type],
                    "configId": job.connection_id,
                    "createdAt": epoch_seconds(parse_instant(job.created_at)),
                    "updatedAt": epoch_seconds(parse_instant(job.updated_at)),
                    "startedAt": epoch_seconds(parse_instant(job.attempts[0].created_at)) if job.attempts else None,
                    "status": job.status,
                    "aggregatedStats": {"recordsEmitted": records, "bytesEmitted": bytes_,
                                        "recordsCommitted": records, "bytesCommitted": bytes_},
                    "streamAggregatedStats": [
                        {"streamName": spec.prefix + s, "recordsCommitted": sum(a.stream_stats.get(s, 0) for a in job.attempts)}
                        for s in streams
                    ],
                    "enabledStreams": [self._stream_descriptor(spec, s) for s in streams],
                },
                "attempts": [{"attempt": self._attempt_json(spec, a), "logs": {"logLines": a.log_lines}}
                             for a in job.attempts],
            }
        )

    def _attempt_json(self, spec: AirbyteConnectionSpec, attempt: Attempt) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": attempt.id,
            "status": attempt.status,
            "createdAt": epoch_seconds(parse_instant(attempt.created_at)),
            "updatedAt": epoch_seconds(parse_instant(attempt.updated_at)),
            "bytesSynced": attempt.bytes,
            "recordsSynced": attempt.records,
            "totalStats": {"recordsEmitted": attempt.records, "bytesEmitted": attempt.bytes,
                           "recordsCommitted": attempt.records, "bytesCommitted": attempt.bytes,
                           "recordsRejected": 0, "estimatedRecords": attempt.records},
            "streamStats": [
                {"streamName": name, **({"streamNamespace": ns} if (ns := _source_namespace(spec)) else {}),
                 "stats": {"recordsCommitted": rows}}
                for name, rows in attempt.stream_stats.items()
            ],
        }
        if attempt.ended_at:
            out["endedAt"] = epoch_seconds(parse_instant(attempt.ended_at))
        if attempt.failure:
            out["failureSummary"] = {"partialSuccess": False, "failures": [attempt.failure]}
        return out

    @staticmethod
    def _stream_descriptor(spec: AirbyteConnectionSpec, stream: str) -> dict[str, Any]:
        namespace = _source_namespace(spec)
        return {"name": stream, **({"namespace": namespace} if namespace else {})}

    def public_connection_json(self, connection_id: str) -> dict[str, Any]:
        spec = self.spec(connection_id)
        state = self.state.connections[connection_id]
        # ConnectionReadMapper: basicTiming "Every <units> <TIMEUNIT>", cronExpression "<expr> <zone>"
        schedule: dict[str, Any] = {"scheduleType": state.schedule_type}
        if state.schedule_type == "basic":
            schedule["basicTiming"] = _basic_timing(state.every_minutes or 60)
        if state.schedule_type == "cron" and state.cron_expression:
            schedule["cronExpression"] = f"{state.cron_expression} UTC"
        data = self.source_data(connection_id)
        return json_safe({
            "connectionId": spec.id,
            "name": spec.name,
            "sourceId": self.source_id(spec),
            "destinationId": self.spec_root.destination.id,
            "workspaceId": self.spec_root.workspace_id,
            "status": state.status,
            "schedule": schedule,
            "nonBreakingSchemaUpdatesBehavior": state.non_breaking_updates,
            "namespaceDefinition": "custom_format",
            "namespaceFormat": spec.schema_,
            "prefix": spec.prefix,
            "configurations": {
                "streams": [
                    {"name": name, "syncMode": _public_sync_mode(stream.append_only),
                     "cursorField": _cursor_field(data.columns(name)), "primaryKey": [[stream.primary_key]]}
                    for name, stream in spec.streams.items()
                ]
            },
            "createdAt": epoch_seconds(parse_instant(state.created_at)),
            "tags": [],
        })

    def config_connection_json(self, connection_id: str) -> dict[str, Any]:
        spec = self.spec(connection_id)
        state = self.state.connections[connection_id]
        data = self.source_data(connection_id)
        streams = []
        for name, stream in spec.streams.items():
            columns = data.columns(name)
            cursor = _cursor_field(columns)
            streams.append({
                "stream": {
                    "name": name,
                    "jsonSchema": {
                        "type": "object",
                        "$schema": "http://json-schema.org/draft-07/schema#",
                        "properties": {col: dict(JSON_SCHEMA_TYPES[c.type]) for col, c in columns.items()},
                    },
                    "supportedSyncModes": ["full_refresh", "incremental"],
                    "sourceDefinedCursor": bool(cursor),
                    "defaultCursorField": cursor,
                    "sourceDefinedPrimaryKey": [[stream.primary_key]],
                    **({"namespace": ns} if (ns := _source_namespace(spec)) else {}),
                },
                "config": {
                    "syncMode": "incremental" if cursor else "full_refresh",
                    "cursorField": cursor,
                    "destinationSyncMode": "append" if stream.append_only else "append_dedup",
                    "primaryKey": [[stream.primary_key]],
                    "aliasName": name,
                    "selected": True,
                    "fieldSelectionEnabled": False,
                    "selectedFields": [],
                    "mappers": [],
                },
            })
        schedule_data = (
            {"basicSchedule": dict(zip(("units", "timeUnit"), _basic_units(state.every_minutes or 60)))}
            if state.schedule_type == "basic" else
            {"cron": {"cronExpression": state.cron_expression, "cronTimeZone": "UTC"}}
            if state.schedule_type == "cron" else None
        )
        return json_safe({
            "connectionId": spec.id,
            "name": spec.name,
            "namespaceDefinition": "customformat",
            "namespaceFormat": spec.schema_,
            "prefix": spec.prefix,
            "sourceId": self.source_id(spec),
            "destinationId": self.spec_root.destination.id,
            "operationIds": [],
            "syncCatalog": {"streams": streams},
            "scheduleType": state.schedule_type,
            **({"scheduleData": schedule_data} if schedule_data else {}),
            "status": state.status,
            # Airbyte flags a connection whose source dropped, renamed or retyped a column.
            "breakingChange": any(c.change != "add_column" for c in data.state.schema_changes),
            "geography": "auto",
            "nonBreakingChangesPreference": state.non_breaking_updates,
            "notifySchemaChanges": True,
            "createdAt": epoch_seconds(parse_instant(state.created_at)),
        })

    def destination_json(self, destination_id: str) -> dict[str, Any]:
        dest = self.spec_root.destination
        if destination_id != dest.id:
            raise not_found("destination", destination_id)
        configuration: dict[str, Any] = {"schema": dest.schema_}
        if dest.database:
            configuration["database"] = dest.database
        return {
            "destinationId": dest.id,
            "name": dest.name,
            "destinationType": dest.type,
            "definitionId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"airbyte/destination-definition/{dest.type}")),
            "workspaceId": self.spec_root.workspace_id,
            "configuration": configuration,
            "createdAt": epoch_seconds(utc_now() - timedelta(days=self.scenario.history_days)),
        }

    def source_id(self, spec: AirbyteConnectionSpec) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"airbyte/source/{spec.id}"))

    def source_json(self, source_id: str) -> dict[str, Any]:
        spec = next((c for c in self.spec_root.connections if self.source_id(c) == source_id), None)
        if spec is None:
            raise not_found("source", source_id)
        return {
            "sourceId": source_id,
            "name": f"{spec.name} source",
            "sourceType": spec.source_type,
            "definitionId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"airbyte/source-definition/{spec.source_type}")),
            "workspaceId": self.spec_root.workspace_id,
            "configuration": {},
            "createdAt": epoch_seconds(parse_instant(self.state.connections[spec.id].created_at)),
        }

    def workspace_json(self, workspace_id: str) -> dict[str, Any]:
        if workspace_id != self.spec_root.workspace_id:
            raise not_found("workspace", workspace_id)
        # WorkspaceResponse requires notifications (NotificationsConfig: every entry optional)
        return {"workspaceId": workspace_id, "name": self.spec_root.workspace_name, "dataResidency": "auto",
                "notifications": {}}

    def connection_ids(self) -> list[str]:
        return [c.id for c in self.spec_root.connections]

    def debug_state(self) -> dict[str, Any]:
        with self.lock:
            dump = self.state.model_dump(mode="json")
            dump["tokens"] = {"active": len(dump["tokens"])}
            return json_safe(dump)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _source_namespace(spec: AirbyteConnectionSpec) -> str | None:
    return "public" if spec.source_type in ("postgres", "mssql", "redshift") else None


def _cursor_field(columns: dict[str, ColumnSpec]) -> list[str]:
    timestamps = [name for name, c in columns.items() if c.type == "timestamp"]
    preferred = [n for n in timestamps if "updated" in n] or timestamps
    return preferred[:1]


def _public_sync_mode(append_only: bool) -> str:
    return "incremental_append" if append_only else "incremental_deduped_history"


def _basic_units(minutes: int) -> tuple[int, str]:
    """The config API's basicSchedule (units, timeUnit) for an interval in minutes."""
    if minutes % 1440 == 0:
        return minutes // 1440, "days"
    return (minutes // 60, "hours") if minutes % 60 == 0 else (minutes, "minutes")


def _basic_timing(minutes: int) -> str:
    # ConnectionReadMapper renders the config API's basicSchedule as "Every ${units} ${timeUnit.name}"
    # (the Java enum constant: MINUTES, HOURS, DAYS, ...)
    units, unit = _basic_units(minutes)
    return f"Every {units} {unit.upper()}"


def quartz_problem(expression: Any, why: str) -> HttpProblem:
    return problem(400, "bad-request", f"The cron expression {expression} is not valid. Error: {why}. Please check "
                   "the cron expression format at https://www.quartz-scheduler.org/documentation/quartz-2.3.0/"
                   "tutorials/crontrigger.html")


def validate_quartz_cron(expression: Any) -> str:
    """The public API's check (``AirbyteCatalogHelper.validateCronConfiguration``): present, a Quartz
    expression (seconds minutes hours day-of-month month day-of-week [year], one of the two day
    fields ``?``), a trailing " UTC" dropped, seconds and minutes fixed numbers (at most hourly).
    Returns the normalised expression."""
    if expression is None:
        raise problem(400, "bad-request", "Missing cron expression in the schedule.")
    text = str(expression).strip()
    if text.endswith("UTC"):
        text = text[:-3].strip()
    fields = text.split()
    if len(fields) not in (6, 7):
        raise quartz_problem(expression, f"Cron expression contains {len(fields)} parts but we expect one of [6, 7]")
    if (fields[3] == "?") == (fields[5] == "?"):
        raise quartz_problem(expression, "Both, a day-of-week AND a day-of-month parameter, are not supported")
    if not (fields[0].isdigit() and fields[1].isdigit()):
        raise problem(400, "bad-request", f"The cron expression {expression} is not valid or is less than the one "
                      "hour minimum. The seconds and minutes values cannot be `*`.")
    if next_quartz_fire(text, utc_now()) is None:
        raise quartz_problem(expression, "unsupported or out-of-range field values")
    return text


def next_quartz_fire(expression: str, after: datetime) -> datetime | None:
    """Next UTC fire time of a Quartz expression (seconds dropped, ``?`` read as ``*``, day-of-week
    1-7 = SUN-SAT shifted to cron's 0-6); None when it cannot be read."""
    from dagster._utils.schedules import cron_string_iterator, is_valid_cron_string

    fields = expression.split()[:6]
    if len(fields) != 6:
        return None
    _, minute, hour, dom, month, dow = fields
    dow = "".join(str(int(c) - 1) if c.isdigit() else c for c in dow.replace("?", "*"))
    cron = " ".join([minute, hour, dom.replace("?", "*"), month, dow])
    if not is_valid_cron_string(cron):
        return None
    try:
        return next(cron_string_iterator(after.timestamp() + 1, cron, "UTC"))
    except Exception:  # noqa: BLE001 - an expression the iterator cannot follow
        return None


def _airbyte_columns(connection_id: str, job_id: int):
    def columns(count: int, now: datetime, table: str) -> dict[str, pa.Array]:
        return {
            "_airbyte_raw_id": deterministic_uuids(f"airbyte/{connection_id}/{job_id}/{table}/{now.isoformat()}", count),
            "_airbyte_extracted_at": pa.array([now] * count, pa.timestamp("us", tz="UTC")),
            "_airbyte_meta": pa.array([json.dumps({"changes": [], "sync_id": job_id})] * count, pa.string()),
            "_airbyte_generation_id": pa.array([0] * count, pa.int64()),
        }

    return columns
