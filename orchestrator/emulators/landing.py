"""What a source holds and what a sync lands: tables, schema drift, and Parquet files.

A sync writes one file per table, `<landing_dir>/<schema>/<table>/<sync-id>.parquet`, holding the
new and updated rows (the first sync and any resync land every current row). Consumers
deduplicate on the primary key keeping the latest `_fivetran_synced` / `_airbyte_extracted_at`.
Files are written under a dot-prefixed temporary name and renamed, so a reader globbing
`*.parquet` never sees half a file.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import BaseModel, Field

from orchestrator.emulators.datagen import ARROW_TYPES, RowBatch, RowGenerator, TableLedger
from orchestrator.emulators.scenario import ColumnSpec, SchemaChangeFault, TableSpec
from orchestrator.emulators.state import iso_z, parse_instant


class AppliedSchemaChange(BaseModel):
    table: str
    change: str
    column: str
    column_spec: dict[str, Any] | None = None
    to_type: str | None = None
    to_column: str | None = None
    sync_number: int
    applied_at: str
    # The connector's schema-change setting kept a new column out (Fivetran BLOCK_ALL, Airbyte
    # nonBreakingSchemaUpdatesBehavior=ignore): it is in the source's schema, disabled, never landed.
    blocked: bool = False


class SourceDataState(BaseModel):
    """Per connector/connection: generation ledgers, schema drift, and when data versions landed."""

    ledgers: dict[str, TableLedger] = Field(default_factory=dict)
    schema_changes: list[AppliedSchemaChange] = Field(default_factory=list)
    # data version (sync number) -> ISO time it landed; defines timestamp windows.
    landed_versions: dict[int, str] = Field(default_factory=dict)


# Fills the vendor's bookkeeping columns for `n` rows of one landed file of `table`.
MetadataColumns = Callable[[int, datetime, str], dict[str, pa.Array]]


class SourceData:
    """Tables of one connector/connection as they currently are, and how to land them."""

    def __init__(
        self,
        schema: str,
        tables: Mapping[str, TableSpec],
        state: SourceDataState,
        generator: RowGenerator,
        seed: int,
        history_days: float,
        table_prefix: str = "",
    ):
        self.schema = schema
        self.tables = tables
        self.state = state
        self.generator = generator
        self.seed = seed
        self.history = timedelta(days=history_days)
        self.table_prefix = table_prefix

    def destination_table(self, table: str) -> str:
        return f"{self.table_prefix}{table}"

    def table_ref(self, table: str) -> str:
        return f"{self.schema}.{self.destination_table(table)}"

    # --- schema drift ---

    def columns(self, table: str) -> dict[str, ColumnSpec]:
        """The table's columns after every schema change applied so far."""
        return {name: spec for name, (spec, _) in self._current(table).items()}

    def _current(self, table: str) -> dict[str, tuple[ColumnSpec, str]]:
        """Current columns -> (spec, the original column its values come from)."""
        columns = {name: (spec, name) for name, spec in self.tables[table].columns.items()}
        for change in self.state.schema_changes:
            if change.table != table:
                continue
            if change.blocked:
                if change.change == "rename_column":
                    # the old name is gone at the source and the new one is blocked: the old
                    # column stops receiving values, as a dropped one does
                    columns.pop(change.column, None)
                continue
            if change.change == "add_column":
                columns[change.column] = (ColumnSpec.model_validate(change.column_spec), change.column)
            elif change.change == "drop_column":
                columns.pop(change.column, None)
            elif change.change == "change_type" and change.column in columns:
                spec, origin = columns[change.column]
                columns[change.column] = (spec.model_copy(update={"type": change.to_type}), origin)
            elif change.change == "rename_column" and change.column in columns and change.to_column:
                # Keeps the position and the values: a column renamed at the source.
                columns = {
                    (change.to_column if name == change.column else name): value
                    for name, value in columns.items()
                }
        return columns

    def original_columns(self, table: str) -> dict[str, ColumnSpec]:
        return dict(self.tables[table].columns)

    def blocked_columns(self, table: str) -> dict[str, ColumnSpec]:
        """New columns the schema-change setting kept out (shown disabled, never landed)."""
        out: dict[str, ColumnSpec] = {}
        for change in self.state.schema_changes:
            if change.table != table or not change.blocked:
                continue
            if change.change == "add_column" and change.column_spec:
                out[change.column] = ColumnSpec.model_validate(change.column_spec)
            elif change.change == "rename_column" and change.to_column:
                before = self.tables[table].columns.get(change.column)
                if before is not None:
                    out[change.to_column] = before
        return out

    def apply_schema_change(self, fault: SchemaChangeFault, sync_number: int, now: datetime,
                            block_new_columns: bool = False) -> None:
        """``block_new_columns``: the connector's setting excludes new columns (Fivetran
        ``BLOCK_ALL``; Airbyte ``ignore``); a column added, or the new name of a renamed one,
        is then recorded disabled and not landed. Drops and type changes apply either way."""
        blocked = block_new_columns and fault.change in ("add_column", "rename_column")
        self.state.schema_changes.append(
            AppliedSchemaChange(
                table=fault.table,
                change=fault.change,
                column=fault.column,
                column_spec=fault.column_spec.model_dump(mode="json") if fault.column_spec else None,
                to_type=fault.to_type,
                to_column=fault.to_column,
                sync_number=sync_number,
                applied_at=iso_z(now),
                blocked=blocked,
            )
        )

    # --- landing ---

    def mark_cleared(self, tables: list[str] | None = None) -> None:
        for table in tables or list(self.tables):
            self.state.ledgers.setdefault(table, TableLedger()).needs_full = True

    def land(
        self,
        landing_dir: Path,
        sync_number: int,
        sync_id: str,
        now: datetime,
        metadata_columns: MetadataColumns,
        full_tables: set[str] | None = None,
        volume_share: float = 1.0,
        stuck_cursor: bool = False,
    ) -> dict[str, dict[str, int]]:
        """Generates and writes this sync's rows; returns {table: {"rows", "bytes"}}.
        ``volume_share`` < 1 (a silent-failure fault): only that share of a later sync's rows
        lands; the rest is lost, as when a source silently drops pages. ``stuck_cursor`` (a
        silent-failure fault): a later sync re-reads the rows of the newest version landed so far
        (same keys, same source timestamps) and the table's ledger does not advance."""
        self.state.landed_versions[sync_number] = iso_z(now)
        stats: dict[str, dict[str, int]] = {}
        for table, spec in self.tables.items():
            ledger = self.state.ledgers.setdefault(table, TableLedger())
            full = full_tables is not None and table in full_tables
            first = ledger.history_version is None
            if stuck_cursor and not first and not full and not ledger.needs_full:
                state = ledger.current_state()
                keep = state.versions == (state.versions.max() if len(state) else -1)
                batch = type(state)(state.indices[keep], state.versions[keep], state.created_versions[keep])
            else:
                batch = ledger.plan_sync(spec, sync_number, self.seed, self.table_ref(table), full=full)
            if volume_share < 1.0 and not first:
                n = int(len(batch) * volume_share)
                batch = type(batch)(batch.indices[:n], batch.versions[:n], batch.created_versions[:n])
            if len(batch) == 0 and not first:
                stats[table] = {"rows": 0, "bytes": 0}  # nothing changed: no empty file
                continue
            arrow_table = self._rows(table, batch)
            for name, array in metadata_columns(len(batch), now, table).items():
                arrow_table = arrow_table.append_column(name, array)
            path = landing_dir / self.schema / self.destination_table(table) / f"{sync_id}.parquet"
            stats[table] = {"rows": len(batch), "bytes": write_parquet_atomically(arrow_table, path)}
        return stats

    def clear_landed_files(self, landing_dir: Path, tables: list[str] | None = None) -> None:
        for table in tables or list(self.tables):
            folder = landing_dir / self.schema / self.destination_table(table)
            for file in folder.glob("*.parquet") if folder.exists() else []:
                file.unlink(missing_ok=True)

    def _rows(self, table: str, batch: RowBatch) -> pa.Table:
        ref = self.table_ref(table)
        current = self._current(table)
        original = self.original_columns(table)
        arrays = {}
        for name, (column, origin) in current.items():
            before = original.get(origin)
            if before is not None and before.type != column.type:
                arrays[name] = self._retyped(ref, origin, before, column, batch)
            else:
                arrays[name] = self._one(ref, origin, column, batch)
        return pa.table(arrays) if arrays else pa.table({})

    def _one(self, ref: str, name: str, column: ColumnSpec, batch: RowBatch) -> pa.Array:
        return self.generator.generate(ref, {name: column}, batch, self._window).column(0).combine_chunks()

    def _retyped(
        self, ref: str, name: str, before: ColumnSpec, after: ColumnSpec, batch: RowBatch
    ) -> pa.Array:
        # A type change keeps the values where they convert (integer -> string "1234"), as a
        # source column altered in place would; otherwise the column is generated afresh.
        values = self._one(ref, name, before, batch)
        try:
            return pc.cast(values, ARROW_TYPES[after.type])
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            fresh = after.model_copy(update={"values": None, "min": None, "max": None, "references": None})
            return self._one(ref, name, fresh, batch)

    def _window(self, versions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        landed = sorted((int(v), parse_instant(t)) for v, t in self.state.landed_versions.items())
        bounds: dict[int, tuple[int, int]] = {}
        previous: datetime | None = None
        for version, moment in landed:
            start = previous if previous is not None else moment - self.history
            bounds[version] = (_micros(start), _micros(moment))
            previous = moment
        starts = np.empty(versions.size, dtype=np.float64)
        ends = np.empty(versions.size, dtype=np.float64)
        fallback = bounds[max(bounds)] if bounds else (0, 0)
        for version in np.unique(versions).tolist():
            start, end = bounds.get(int(version), fallback)
            mask = versions == version
            starts[mask], ends[mask] = start, end
        return starts, ends


def _micros(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def write_parquet_atomically(table: pa.Table, path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path.stat().st_size


def deterministic_uuids(namespace: str, count: int) -> pa.Array:
    base = uuid.uuid5(uuid.NAMESPACE_URL, namespace)
    return pa.array([str(uuid.uuid5(base, str(i))) for i in range(count)], pa.string())
