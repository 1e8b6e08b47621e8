"""The scenario file: what the emulators serve, as validated pydantic models.

A scenario declares Fivetran groups and connectors, Airbyte connections, their tables/streams and
columns, row volumes, sync durations and scripted faults. ``load_scenario`` turns any problem into
a ``ScenarioError`` whose message names the field and the connector, e.g.
``fivetran.connectors[crimson_notebook].tables.account.columns.owner_id.references: unknown table 'salesforce.usr'``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

COLUMN_TYPES = ("string", "integer", "decimal", "boolean", "date", "timestamp", "email")
ColumnType = Literal["string", "integer", "decimal", "boolean", "date", "timestamp", "email"]
FIVETRAN_SYNC_FREQUENCIES = (5, 15, 30, 60, 120, 180, 360, 480, 720, 1440)


class ScenarioError(ValueError):
    """A scenario file that cannot be served; the message says where and why."""


class _Strict(BaseModel):
    # Typos in a hand-written YAML file must fail loudly, not be ignored.
    model_config = ConfigDict(extra="forbid")


class ColumnSpec(_Strict):
    type: ColumnType
    primary_key: bool = False
    references: str | None = Field(None, description="<schema>.<table>.<column> of a primary key")
    values: list[Any] | None = None
    min: float | None = None
    max: float | None = None
    nullable: float = Field(0.0, ge=0.0, le=1.0, description="share of nulls")

    @model_validator(mode="after")
    def _check_consistency(self) -> ColumnSpec:
        if self.values is not None and not self.values:
            raise ValueError("values must not be empty")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        if self.primary_key and self.nullable:
            raise ValueError("a primary key cannot be nullable")
        if self.references is not None and len(self.references.split(".")) != 3:
            raise ValueError(
                f"references must look like <schema>.<table>.<column>, got {self.references!r}"
            )
        return self


class TableSpec(_Strict):
    rows: int = Field(ge=0, description="rows landed by the first (historical) sync")
    rows_per_sync: int = Field(0, ge=0, description="new + updated rows on each later sync")
    append_only: bool = Field(False, description="later syncs only add rows, never update")
    update_share: float = Field(
        0.3, ge=0.0, le=1.0, description="share of rows_per_sync that update existing rows"
    )
    columns: dict[str, ColumnSpec]

    @model_validator(mode="after")
    def _one_primary_key(self) -> TableSpec:
        keys = [name for name, col in self.columns.items() if col.primary_key]
        if len(keys) != 1:
            raise ValueError(f"needs exactly one primary_key column, found {len(keys)}: {keys}")
        return self

    @property
    def primary_key(self) -> str:
        return next(name for name, col in self.columns.items() if col.primary_key)


class DurationSpec(_Strict):
    mean: float = Field(3.0, gt=0)
    stddev: float = Field(0.0, ge=0)


class FivetranDestinationSpec(_Strict):
    service: str = "duckdb"
    database: str | None = None
    region: str = "AWS_US_EAST_1"
    time_zone_offset: str = "0"


class FivetranGroupSpec(_Strict):
    id: str
    name: str
    destination: FivetranDestinationSpec = FivetranDestinationSpec()


class FivetranConnectorSpec(_Strict):
    id: str
    group: str
    service: str
    schema_: str = Field(alias="schema", description="connector name and destination schema")
    paused: bool = False
    schedule_type: Literal["auto", "manual"] = "auto"
    sync_frequency: int = 360
    daily_sync_time: str | None = None
    # how new schemas/tables/columns are handled (schema config endpoint)
    schema_change_handling: Literal["ALLOW_ALL", "ALLOW_COLUMNS", "BLOCK_ALL"] = "ALLOW_ALL"
    sync_duration_s: DurationSpec = DurationSpec()
    tables: dict[str, TableSpec]

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @field_validator("sync_frequency")
    @classmethod
    def _known_frequency(cls, value: int) -> int:
        if value not in FIVETRAN_SYNC_FREQUENCIES:
            raise ValueError(f"sync_frequency must be one of {FIVETRAN_SYNC_FREQUENCIES} minutes")
        return value


class FivetranSpec(_Strict):
    groups: list[FivetranGroupSpec] = []
    connectors: list[FivetranConnectorSpec] = []
    # Emulator extension, off by default: also serve each column's `type` in the schema config and
    # columns endpoints. Fivetran's documented column objects have no type.
    column_types: bool = False


class AirbyteDestinationSpec(_Strict):
    id: str
    name: str = "Warehouse"
    type: str = "duckdb"
    database: str | None = None
    schema_: str = Field("main", alias="schema")

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class AirbyteScheduleSpec(_Strict):
    type: Literal["manual", "basic", "cron"] = "manual"
    every_minutes: int | None = Field(None, gt=0, description="basic schedules only")
    cron_expression: str | None = None


class AirbyteConnectionSpec(_Strict):
    id: str
    name: str
    source_type: str
    schema_: str = Field(alias="schema", description="destination namespace the streams land in")
    prefix: str = ""
    status: Literal["active", "inactive"] = "active"
    schedule: AirbyteScheduleSpec = AirbyteScheduleSpec()
    sync_duration_s: DurationSpec = DurationSpec()
    streams: dict[str, TableSpec]

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class AirbyteSpec(_Strict):
    workspace_id: str
    workspace_name: str = "Default Workspace"
    destination: AirbyteDestinationSpec
    connections: list[AirbyteConnectionSpec] = []


# --- Scripted faults --------------------------------------------------------------------------


class _FaultBase(_Strict):
    target: str | None = Field(
        None, description="connector / connection id; omit for API-wide HTTP faults"
    )
    api: Literal["fivetran", "airbyte"] | None = Field(
        None, description="needed only when target is omitted"
    )


class _SyncTrigger(_FaultBase):
    on_sync: int | None = Field(None, ge=1, description="the Nth sync of the target (1-based)")
    next_syncs: int | None = Field(None, ge=1, description="the next N syncs that start")

    @model_validator(mode="after")
    def _one_trigger(self):
        if self.target is None:
            raise ValueError(f"{self.kind} faults need a target connector/connection id")
        if (self.on_sync is None) == (self.next_syncs is None):
            raise ValueError("give exactly one of on_sync or next_syncs")
        return self


class RateLimitFault(_FaultBase):
    """HTTP 429 with Retry-After on the next `requests` matching requests."""

    kind: Literal["rate_limit"]
    requests: int = Field(ge=1)
    retry_after_s: int = Field(60, ge=0)


class ServerErrorFault(_FaultBase):
    """A burst of HTTP 5xx on the next `requests` matching requests."""

    kind: Literal["server_error"]
    requests: int = Field(ge=1)
    status: int = Field(503, ge=500, le=599)


class SyncFailureFault(_SyncTrigger):
    """The sync runs its course, then fails with a vendor error message and lands nothing."""

    kind: Literal["sync_failure"]
    message: str | None = Field(None, description="vendor error text; a realistic default per service")
    # Fivetran: task/warning code; Airbyte: failureType.
    code: str | None = None
    failure_origin: str = "source"
    retryable: bool = True
    attempts: int = Field(1, ge=1, le=10, description="Airbyte attempts before the job fails")
    recovers: bool = Field(False, description=(
        "a transient failure the vendor's own retry absorbs: Airbyte runs one more attempt after "
        "the failed ones and the job succeeds (attempts + 1 attempts, `incomplete` between them); "
        "Fivetran records the failure (`failed_at`) and retries at once, the retry succeeds"))


class ExpiredCredentialsFault(_SyncTrigger):
    """Credentials stop working: this sync fails and the connector stays broken until repaired."""

    kind: Literal["expired_credentials"]


class HangFault(_SyncTrigger):
    """The sync never finishes: Airbyte until the job is cancelled, Fivetran until forced again."""

    kind: Literal["hang"]


class RescheduleFault(_SyncTrigger):
    """Fivetran only: the sync is rescheduled (source quota) and resumes `delay_s` later."""

    kind: Literal["rescheduled"]
    delay_s: float = Field(30.0, gt=0)


class SchemaChangeFault(_SyncTrigger):
    """The source schema changes before the sync; later syncs keep the change."""

    kind: Literal["schema_change"]
    table: str
    change: Literal["add_column", "drop_column", "change_type", "rename_column"]
    column: str
    column_spec: ColumnSpec | None = Field(None, description="add_column: the new column")
    to_type: ColumnType | None = Field(None, description="change_type: the new type")
    to_column: str | None = Field(None, description="rename_column: the new name (same values)")

    @model_validator(mode="after")
    def _change_needs_its_fields(self) -> SchemaChangeFault:
        if self.change == "add_column" and self.column_spec is None:
            raise ValueError("add_column needs column_spec (e.g. {type: string})")
        if self.change == "change_type" and self.to_type is None:
            raise ValueError(f"change_type needs to_type (one of {COLUMN_TYPES})")
        if self.change == "rename_column" and not self.to_column:
            raise ValueError("rename_column needs to_column (the new name)")
        return self


class ZeroRowsFault(_SyncTrigger):
    """a silent failure -- the sync succeeds and lands no rows."""

    kind: Literal["zero_rows"]


class PartialVolumeFault(_SyncTrigger):
    """a silent failure -- the sync succeeds with `share` of its rows (the rest is lost)."""

    kind: Literal["partial_volume"]
    share: float = Field(0.1, ge=0.0, lt=1.0)


class StuckCursorFault(_SyncTrigger):
    """a silent failure -- the sync succeeds and lands rows, but re-reads the previous sync's rows
    from a cursor that did not move: nothing new lands and the newest source timestamp (the
    table's updated/modified columns) does not advance."""

    kind: Literal["stuck_cursor"]


class LatencyCreepFault(_SyncTrigger):
    """a precursor -- each hit sync takes `factor` x the previous hit's duration."""

    kind: Literal["latency_creep"]
    factor: float = Field(1.3, gt=1.0, le=10.0)


class SyncWarningFault(_SyncTrigger):
    """a precursor -- the sync succeeds and leaves a warning (Fivetran: on the connector's
    `warnings`; Airbyte: a WARN line in the attempt's log and a `warnings` count on the job)."""

    kind: Literal["sync_warning"]
    code: str = "rate_limit_warning"
    message: str = "Source API rate limit reached; the sync slowed down and retried"


FaultSpec = Annotated[
    Union[
        RateLimitFault,
        ServerErrorFault,
        SyncFailureFault,
        ExpiredCredentialsFault,
        HangFault,
        RescheduleFault,
        SchemaChangeFault,
        ZeroRowsFault,
        PartialVolumeFault,
        StuckCursorFault,
        LatencyCreepFault,
        SyncWarningFault,
    ],
    Field(discriminator="kind"),
]
FAULT_KINDS = (
    "rate_limit",
    "server_error",
    "sync_failure",
    "expired_credentials",
    "hang",
    "rescheduled",
    "schema_change",
    "zero_rows",
    "partial_volume",
    "stuck_cursor",
    "latency_creep",
    "sync_warning",
)
# silent failures and precursors: the sync still succeeds (applied alongside one outcome fault)
SILENT_FAULT_KINDS = ("zero_rows", "partial_volume", "stuck_cursor", "latency_creep", "sync_warning")
HTTP_FAULT_KINDS = ("rate_limit", "server_error")


class Scenario(_Strict):
    name: str = "scenario"
    seed: int = 0
    history_days: float = Field(30, gt=0)
    fivetran: FivetranSpec = FivetranSpec()
    airbyte: AirbyteSpec | None = None
    faults: list[FaultSpec] = []

    @model_validator(mode="after")
    def _cross_references(self) -> Scenario:
        problems: list[str] = []
        group_ids = {g.id for g in self.fivetran.groups}
        tables = self.table_registry()
        seen_ids: set[str] = set()

        for connector in self.fivetran.connectors:
            where = f"fivetran.connectors[{connector.id}]"
            if connector.id in seen_ids:
                problems.append(f"{where}.id: duplicate id {connector.id!r}")
            seen_ids.add(connector.id)
            if connector.group not in group_ids:
                problems.append(
                    f"{where}.group: unknown group {connector.group!r} (known: {sorted(group_ids)})"
                )
            problems += _reference_problems(where, "tables", connector.tables, tables)

        for connection in self.airbyte.connections if self.airbyte else []:
            where = f"airbyte.connections[{connection.id}]"
            if connection.id in seen_ids:
                problems.append(f"{where}.id: duplicate id {connection.id!r}")
            seen_ids.add(connection.id)
            if connection.schedule.type == "basic" and not connection.schedule.every_minutes:
                problems.append(f"{where}.schedule.every_minutes: required for basic schedules")
            problems += _reference_problems(where, "streams", connection.streams, tables)

        landing_dirs: dict[str, str] = {}
        for owner, schema, table in self.landing_tables():
            path = f"{schema}/{table}"
            if path in landing_dirs:
                problems.append(
                    f"{owner}: table {path!r} also lands from {landing_dirs[path]}; "
                    "two connectors cannot write the same destination table"
                )
            landing_dirs[path] = owner

        for index, fault in enumerate(self.faults):
            problems += fault_problems(self, fault, where=f"faults[{index}]")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    # --- lookups used across the package ---

    def table_registry(self) -> dict[str, TableSpec]:
        """'<destination schema>.<table>' -> spec, the namespace `references` use."""
        registry: dict[str, TableSpec] = {}
        for connector in self.fivetran.connectors:
            for name, table in connector.tables.items():
                registry[f"{connector.schema_}.{name}"] = table
        for connection in self.airbyte.connections if self.airbyte else []:
            for name, stream in connection.streams.items():
                registry[f"{connection.schema_}.{connection.prefix}{name}"] = stream
        return registry

    def landing_tables(self) -> list[tuple[str, str, str]]:
        out = []
        for connector in self.fivetran.connectors:
            out += [
                (f"fivetran.connectors[{connector.id}]", connector.schema_, name)
                for name in connector.tables
            ]
        for connection in self.airbyte.connections if self.airbyte else []:
            out += [
                (f"airbyte.connections[{connection.id}]", connection.schema_, connection.prefix + name)
                for name in connection.streams
            ]
        return out

    def fivetran_connector(self, connector_id: str) -> FivetranConnectorSpec | None:
        return next((c for c in self.fivetran.connectors if c.id == connector_id), None)

    def airbyte_connection(self, connection_id: str) -> AirbyteConnectionSpec | None:
        if self.airbyte is None:
            return None
        return next((c for c in self.airbyte.connections if c.id == connection_id), None)

    def api_of(self, target: str) -> Literal["fivetran", "airbyte"] | None:
        if self.fivetran_connector(target):
            return "fivetran"
        if self.airbyte_connection(target):
            return "airbyte"
        return None


def _reference_problems(
    where: str, kind: str, tables: dict[str, TableSpec], registry: dict[str, TableSpec]
) -> list[str]:
    problems = []
    for table_name, table in tables.items():
        for column_name, column in table.columns.items():
            if column.references is None:
                continue
            field = f"{where}.{kind}.{table_name}.columns.{column_name}.references"
            schema, ref_table, ref_column = column.references.split(".")
            target = registry.get(f"{schema}.{ref_table}")
            if target is None:
                problems.append(f"{field}: unknown table '{schema}.{ref_table}'")
            elif ref_column not in target.columns:
                problems.append(f"{field}: table '{schema}.{ref_table}' has no column {ref_column!r}")
            elif ref_column != target.primary_key:
                problems.append(
                    f"{field}: {column.references!r} is not the primary key of '{schema}.{ref_table}'"
                )
            elif target.rows == 0:
                problems.append(f"{field}: '{schema}.{ref_table}' has no rows to reference")
            elif target.columns[ref_column].type != column.type:
                problems.append(
                    f"{field}: type {column.type} does not match {column.references} "
                    f"({target.columns[ref_column].type})"
                )
    return problems


def fault_problems(scenario: Scenario, fault: Any, where: str) -> list[str]:
    """Checks a fault against the scenario (also used for faults injected at runtime)."""
    if fault.target is None:
        if fault.kind not in HTTP_FAULT_KINDS:
            return [f"{where}.target: {fault.kind} faults need a target"]
        if fault.api is None:
            return [f"{where}.api: give api (fivetran or airbyte) when target is omitted"]
        return []
    api = scenario.api_of(fault.target)
    if api is None:
        return [f"{where}.target: unknown connector/connection {fault.target!r}"]
    if fault.api is not None and fault.api != api:
        return [f"{where}.api: {fault.target!r} is an {api} connector, not {fault.api}"]
    if fault.kind == "rescheduled" and api != "fivetran":
        return [f"{where}.kind: rescheduled faults exist only for Fivetran connectors"]
    if fault.kind == "schema_change":
        tables = (
            scenario.fivetran_connector(fault.target).tables
            if api == "fivetran"
            else scenario.airbyte_connection(fault.target).streams
        )
        table = tables.get(fault.table)
        if table is None:
            return [f"{where}.table: {fault.target!r} has no table {fault.table!r}"]
        if fault.change == "add_column" and fault.column in table.columns:
            return [f"{where}.column: {fault.table}.{fault.column} already exists"]
        if fault.change != "add_column" and fault.column not in table.columns:
            return [f"{where}.column: {fault.table} has no column {fault.column!r}"]
        if fault.change != "add_column" and table.columns[fault.column].primary_key:
            return [f"{where}.column: cannot {fault.change} the primary key {fault.column!r}"]
        if fault.change == "rename_column" and fault.to_column in table.columns:
            return [f"{where}.to_column: {fault.table}.{fault.to_column} already exists"]
    return []


def parse_fault(data: Any, scenario: Scenario) -> Any:
    """Validates one fault (runtime injection) against the scenario; raises ScenarioError."""
    from pydantic import TypeAdapter

    try:
        fault = TypeAdapter(FaultSpec).validate_python(data)
    except ValidationError as exc:
        raise ScenarioError(_format_validation_error(exc, data, prefix="fault")) from None
    problems = fault_problems(scenario, fault, where="fault")
    if problems:
        raise ScenarioError("; ".join(problems))
    return fault


def load_scenario(path: str | Path) -> Scenario:
    """Load an emulator scenario file. Parsed with the policy files' bounds
    (``orchestrator.policies.model.load_yaml_document``: size, depth, aliases, expansion, alias
    cycles): a hostile file is refused with ``file:line`` instead of exhausting memory."""
    from orchestrator.policies.model import MAX_YAML_BYTES, YAMLLimitError, load_yaml_document

    path = Path(path)
    try:
        size = path.stat().st_size
        if size > 4 * MAX_YAML_BYTES:  # not even read: the character limit below would refuse it
            raise ScenarioError(f"{path}:1: scenario file is larger than {MAX_YAML_BYTES:,} characters ({size:,} bytes)")
        _node, raw = load_yaml_document(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ScenarioError(f"scenario file not found: {path}") from None
    except UnicodeDecodeError as exc:
        raise ScenarioError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except YAMLLimitError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise ScenarioError(f"{path}:{mark.line + 1 if mark else 1}: refused: {exc.problem}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ScenarioError(f"{where}: not valid YAML: {exc}") from None
    return parse_scenario(raw, source=str(path))


def parse_scenario(raw: Any, source: str = "scenario") -> Scenario:
    if not isinstance(raw, dict):
        raise ScenarioError(f"{source}: the top level must be a mapping")
    try:
        return Scenario.model_validate(raw)
    except ValidationError as exc:
        raise ScenarioError(f"{source}: {_format_validation_error(exc, raw)}") from None


def _format_validation_error(exc: ValidationError, raw: Any, prefix: str = "") -> str:
    lines = []
    for error in exc.errors():
        location = _readable_location(error["loc"], raw, prefix)
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "union_tag_invalid":
            tag = error.get("ctx", {}).get("tag")
            message = f"unknown fault kind {tag!r} (expected one of {', '.join(FAULT_KINDS)})"
        elif error["type"] == "literal_error" and location.endswith(".type"):
            message = f"bad type {error.get('input')!r} (expected one of {', '.join(COLUMN_TYPES)})"
        lines.append(f"{location}: {message}" if location else message)
    return "; ".join(lines)


def _readable_location(loc: tuple, raw: Any, prefix: str) -> str:
    # Name list items by their id ("connectors[crimson_notebook]") rather than an index.
    parts: list[str] = [prefix] if prefix else []
    node = raw
    for item in loc:
        if isinstance(item, int):
            label = str(item)
            if isinstance(node, list) and item < len(node):
                node = node[item]
                if isinstance(node, dict) and "id" in node:
                    label = str(node["id"])
            else:
                node = None
            if parts:
                parts[-1] += f"[{label}]"
            else:
                parts.append(f"[{label}]")
            continue
        if not (isinstance(node, dict) and item in node) and item in FAULT_KINDS:
            continue  # pydantic's discriminator tag, not a key of the file
        node = node.get(item) if isinstance(node, dict) else None
        parts.append(str(item))
    return ".".join(parts)
