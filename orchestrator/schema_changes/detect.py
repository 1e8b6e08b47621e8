"""Detect: what a connector now delivers for a table against what the dbt project expects.

Expected columns come from the dbt manifest (source tables' ``columns`` with ``data_type``, in
declaration order; ``not_null`` constraints/tests or ``meta.nullable: false`` make a column
non-nullable). Delivered columns come from whichever the connector offers: the landed Parquet
files (newest file = the current schema, older files = the values a vanished column used to
hold), the warehouse ``information_schema``, Fivetran's schema config / columns endpoints, or an
Airbyte connection's catalog. ``diff`` pairs removed and added columns into renames when the
evidence (type, position, name similarity, value overlap) agrees.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from orchestrator.schema_changes.types import OTHER, family, json_schema_family

ChangeKind = Literal["added", "removed", "renamed", "type_changed", "nullability_changed"]
# Bookkeeping columns connectors add; not part of a source's contract unless declared.
SYSTEM_PREFIXES = ("_fivetran_", "_airbyte_")
RENAME_THRESHOLD = 0.6
SAMPLE_ROWS = 2000


@dataclass(frozen=True)
class Column:
    name: str
    type: str | None = None
    nullable: bool | None = None  # None: not known
    position: int = 0

    @property
    def family(self) -> str:
        return family(self.type)


@dataclass
class TableSchema:
    """One table's columns (ordered) and, where read from data, sample values per column."""

    source: str
    table: str
    columns: dict[str, Column]
    samples: dict[str, list[Any]] = field(default_factory=dict)
    # where the delivered schema was read from (landed file, API) -- shown as evidence
    origin: str = ""

    @property
    def ref(self) -> str:
        return f"{self.source}.{self.table}"


@dataclass(frozen=True)
class ColumnChange:
    kind: ChangeKind
    column: str  # the expected (old) column; the new one for "added"
    new_column: str | None = None  # renamed: the delivered name
    old_type: str | None = None
    new_type: str | None = None
    old_nullable: bool | None = None
    new_nullable: bool | None = None
    evidence: tuple[tuple[str, Any], ...] = ()

    def describe(self, table_ref: str) -> str:
        ref = f"{table_ref}.{self.column}"
        if self.kind == "added":
            return f"adds {ref} ({self.new_type})"
        if self.kind == "removed":
            return f"removes {ref}"
        if self.kind == "renamed":
            return f"renames {ref} to {self.new_column}"
        if self.kind == "type_changed":
            return f"changes {ref} from {self.old_type} to {self.new_type}"
        return f"makes {ref} {'nullable' if self.new_nullable else 'not nullable'}"

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "column": self.column, "new_column": self.new_column,
                "old_type": self.old_type, "new_type": self.new_type,
                "old_nullable": self.old_nullable, "new_nullable": self.new_nullable,
                "evidence": dict(self.evidence)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ColumnChange:
        return cls(**{**data, "evidence": tuple(sorted((data.get("evidence") or {}).items()))})


@dataclass
class TableDiff:
    source: str
    table: str
    changes: list[ColumnChange]
    origin: str = ""

    @property
    def ref(self) -> str:
        return f"{self.source}.{self.table}"

    def __bool__(self) -> bool:
        return bool(self.changes)


# --- what dbt expects ---------------------------------------------------------------------


def expected_from_manifest(manifest: dict[str, Any]) -> dict[tuple[str, str], TableSchema]:
    """(source name, table name) -> expected columns, from a dbt manifest.json."""
    not_null = _not_null_tests(manifest)
    out: dict[tuple[str, str], TableSchema] = {}
    for source in manifest.get("sources", {}).values():
        columns: dict[str, Column] = {}
        for position, (name, col) in enumerate((source.get("columns") or {}).items()):
            name = col.get("name") or name
            nullable = None
            constraints = {c.get("type") for c in col.get("constraints") or []}
            meta = col.get("meta") or {}
            if "not_null" in constraints or (source["unique_id"], name.lower()) in not_null:
                nullable = False
            if "nullable" in meta:
                nullable = bool(meta["nullable"])
            columns[name] = Column(name, col.get("data_type"), nullable, position)
        out[(source["source_name"], source["name"])] = TableSchema(
            source["source_name"], source["name"], columns, origin="dbt manifest"
        )
    return out


def has_contracts(manifest: dict[str, Any]) -> bool:
    return any(((n.get("config") or {}).get("contract") or {}).get("enforced")
               for n in manifest.get("nodes", {}).values() if n.get("resource_type") == "model")


def with_contract_types(expected: dict[tuple[str, str], TableSchema], lineage: Any) -> dict[tuple[str, str], TableSchema]:
    """Model contracts as expectations: a source column the YAML gives no ``data_type`` gets the
    type an enforced contract declares for the model column that passes it through unchanged
    (``contract: {enforced: true}``; through ``*``, bare projections and renames)."""
    by_uid = {uid: tuple(ref.split(".", 1)) for ref, uid in lineage.source_refs.items()}
    out = {key: TableSchema(t.source, t.table, dict(t.columns), dict(t.samples), t.origin) for key, t in expected.items()}
    for model, columns in sorted(lineage.contracts.items()):
        for column, declared in sorted(columns.items()):
            origin = lineage.passthrough_origin(model, column) if declared else None
            table = out.get(by_uid.get(origin[0])) if origin else None
            if table is None:
                continue
            name = next((n for n in table.columns if n.lower() == origin[1]), None)
            if name is None or table.columns[name].type:
                continue  # the source YAML's own type wins
            col = table.columns[name]
            table.columns[name] = Column(name, declared, col.nullable, col.position)
            table.origin += f"; {name}: {declared} from the contract of {lineage.names.get(model, model)}"
    return out


def _not_null_tests(manifest: dict[str, Any]) -> set[tuple[str, str]]:
    found = set()
    for node in manifest.get("nodes", {}).values():
        meta = node.get("test_metadata") or {}
        if node.get("resource_type") == "test" and meta.get("name") == "not_null":
            column = (meta.get("kwargs") or {}).get("column_name") or node.get("column_name")
            for parent in (node.get("depends_on") or {}).get("nodes", []):
                if parent.startswith("source.") and column:
                    found.add((parent, column.lower()))
    return found


# --- what the connector delivers --------------------------------------------------------


def delivered_from_parquet(folder: Path, source: str, table: str, sample_rows: int = SAMPLE_ROWS) -> TableSchema | None:
    """The newest landed file's schema, with samples; vanished columns' values from older files."""
    import pyarrow.parquet as pq

    files = sorted(Path(folder).glob("*.parquet"), key=lambda p: (p.stat().st_mtime_ns, p.name))
    if not files:
        return None
    newest = files[-1]
    schema = pq.read_schema(newest)
    columns = {
        f.name: Column(f.name, str(f.type), None, i) for i, f in enumerate(schema)
    }
    data = pq.read_table(newest).slice(0, sample_rows)
    samples = {name: data.column(name).to_pylist() for name in data.column_names}
    # Values of columns the newest file no longer has: from the latest file that had them.
    for older in reversed(files[:-1]):
        old_schema = pq.read_schema(older)
        missing = [n for n in old_schema.names if n not in samples]
        if missing:
            old = pq.read_table(older, columns=missing).slice(0, sample_rows)
            for name in missing:
                samples[name] = old.column(name).to_pylist()
    return TableSchema(source, table, columns, samples, origin=f"landed file {newest.name}")


def delivered_from_duckdb(connection: Any, schema: str, table: str, source: str | None = None) -> TableSchema | None:
    """A warehouse table's columns from DuckDB's information_schema."""
    rows = connection.execute(
        "select column_name, data_type, is_nullable, ordinal_position from information_schema.columns "
        "where table_schema = ? and table_name = ? order by ordinal_position",
        [schema, table],
    ).fetchall()
    if not rows:
        return None
    columns = {name: Column(name, dtype, nullable == "YES", int(pos) - 1) for name, dtype, nullable, pos in rows}
    return TableSchema(source or schema, table, columns, origin=f"information_schema {schema}.{table}")


def delivered_from_fivetran(schema_config: dict[str, Any], schema: str, table: str, source: str | None = None) -> TableSchema | None:
    """Fivetran ``GET /connectors/{id}/schemas`` (or the columns endpoint's ``columns``).

    Fivetran's public payload has no column types; a ``type`` key is used where present (the
    emulator serves one), otherwise only added/removed/renamed are visible from the API.
    """
    if "schemas" in schema_config:
        tables = ((schema_config.get("schemas") or {}).get(schema) or {}).get("tables") or {}
        config = tables.get(table)
        if config is None:
            return None
        columns_config = config.get("columns") or {}
    else:
        columns_config = schema_config.get("columns") or {}
    columns = {}
    for position, (name, col) in enumerate(columns_config.items()):
        if col.get("enabled", True) is False:
            continue
        destination = col.get("name_in_destination") or name
        columns[destination] = Column(destination, col.get("type"), None, position)
    return TableSchema(source or schema, table, columns, origin="Fivetran schema config")


def delivered_from_airbyte(connection: dict[str, Any], stream: str, source: str) -> TableSchema | None:
    """An Airbyte connection's (config API ``connections/get``) catalog entry for a stream."""
    for entry in (connection.get("syncCatalog") or {}).get("streams", []):
        if entry.get("stream", {}).get("name") != stream:
            continue
        config = entry.get("config") or {}
        if config.get("selected") is False:
            return None
        properties = entry["stream"].get("jsonSchema", {}).get("properties") or {}
        selected = {tuple(f.get("fieldPath") or [])[:1] for f in config.get("selectedFields") or []}
        columns = {}
        for position, (name, prop) in enumerate(properties.items()):
            if config.get("fieldSelectionEnabled") and (name,) not in selected:
                continue
            fam, nullable = json_schema_family(prop)
            columns[name] = Column(name, fam, nullable, position)
        return TableSchema(source, stream, columns, origin="Airbyte catalog")
    return None


# --- the diff -------------------------------------------------------------------------------


def diff(expected: TableSchema, delivered: TableSchema, threshold: float = RENAME_THRESHOLD) -> TableDiff:
    """Per-column differences; removed+added pairs with enough evidence become renames."""
    exp_cols = expected.columns
    got_cols = {
        name: col for name, col in delivered.columns.items()
        if name.lower() in _ci(exp_cols) or not name.lower().startswith(SYSTEM_PREFIXES)
    }
    exp_by_lower = _ci(exp_cols)
    got_by_lower = _ci(got_cols)
    removed = [c for c in exp_cols.values() if c.name.lower() not in got_by_lower]
    added = [c for c in got_cols.values() if c.name.lower() not in exp_by_lower]

    changes: list[ColumnChange] = []
    pairs = _pair_renames(removed, added, expected, delivered, threshold)
    paired_old = {old.name for old, _, _ in pairs}
    paired_new = {new.name for _, new, _ in pairs}
    for old, new, evidence in pairs:
        changes.append(ColumnChange("renamed", old.name, new.name, old.type, new.type,
                                    old.nullable, new.nullable, tuple(sorted(evidence.items()))))
        changes.extend(_type_and_null(old, new))
    for old in removed:
        if old.name not in paired_old:
            changes.append(ColumnChange("removed", old.name, old_type=old.type, old_nullable=old.nullable))
    for new in added:
        if new.name not in paired_new:
            changes.append(ColumnChange("added", new.name, new_type=new.type, new_nullable=new.nullable))
    for old in exp_cols.values():
        new = got_by_lower.get(old.name.lower())
        if new is not None:
            changes.extend(_type_and_null(old, new))
    return TableDiff(expected.source, expected.table, changes, origin=delivered.origin)


def _ci(columns: dict[str, Column]) -> dict[str, Column]:
    return {name.lower(): col for name, col in columns.items()}


def _type_and_null(old: Column, new: Column) -> list[ColumnChange]:
    out = []
    if old.family != OTHER and new.family != OTHER and old.family != new.family:
        out.append(ColumnChange("type_changed", old.name, new.name if new.name != old.name else None,
                                old.type, new.type))
    if old.nullable is False and new.nullable is True:
        out.append(ColumnChange("nullability_changed", old.name, None, old.type, new.type, False, True))
    elif old.nullable is True and new.nullable is False:
        out.append(ColumnChange("nullability_changed", old.name, None, old.type, new.type, True, False))
    return out


def rename_evidence(old: Column, new: Column, expected: TableSchema, delivered: TableSchema) -> dict[str, Any]:
    """How much a removed and an added column look like one column renamed (score 0..1)."""
    known_types = old.family != OTHER and new.family != OTHER
    type_match = 1.0 if (not known_types or old.family == new.family) else 0.0
    exp_index = list(expected.columns).index(old.name)
    got_index = list(delivered.columns).index(new.name)
    position = 1.0 / (1.0 + abs(exp_index - got_index))
    similarity = difflib.SequenceMatcher(None, old.name.lower(), new.name.lower()).ratio()
    overlap = _value_overlap(delivered.samples.get(old.name), delivered.samples.get(new.name))
    weights = {"type": 0.3, "position": 0.3, "name": 0.2, "values": 0.2}
    scores = {"type": type_match, "position": position, "name": similarity, "values": overlap}
    if overlap is None:  # no data to compare (API schemas): spread its weight over the rest
        weights.pop("values")
    total = sum(weights.values())
    score = sum(scores[k] * w for k, w in weights.items()) / total
    if known_types and old.family != new.family:
        score *= 0.5  # a rename with a type change needs much more of the rest
    return {
        "score": round(score, 3), "type_match": bool(type_match), "position": f"{exp_index}->{got_index}",
        "name_similarity": round(similarity, 3),
        "value_overlap": None if overlap is None else round(overlap, 3),
    }


def _pair_renames(removed, added, expected, delivered, threshold):
    candidates = []
    for old in removed:
        for new in added:
            evidence = rename_evidence(old, new, expected, delivered)
            if evidence["score"] >= threshold:
                candidates.append((evidence["score"], old, new, evidence))
    candidates.sort(key=lambda c: (-c[0], c[1].position, c[2].position))
    used_old, used_new, pairs = set(), set(), []
    for _, old, new, evidence in candidates:
        if old.name in used_old or new.name in used_new:
            continue
        used_old.add(old.name)
        used_new.add(new.name)
        pairs.append((old, new, evidence))
    return pairs


def _value_overlap(old_values: list[Any] | None, new_values: list[Any] | None) -> float | None:
    if not old_values or not new_values:
        return None
    old = {str(v) for v in old_values if v is not None}
    new = {str(v) for v in new_values if v is not None}
    if not old or not new:
        return None
    return len(old & new) / min(len(old), len(new))
