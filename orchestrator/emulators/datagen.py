"""Deterministic synthetic rows for the emulated sources.

Every cell is a pure function of (scenario seed, table, column, row key index, row version), computed
with a vectorised counter-based hash. So a row regenerated for a full resync is identical to the
one an earlier incremental sync landed, adding or dropping a column never shifts another column's
values, and two machines with the same scenario land the same data.

Foreign keys only point into the referenced table's historical rows (index < its `rows`), which
exist as soon as that table has synced once; so dbt relationship tests pass once every source
has synced.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, Field

from orchestrator.emulators.scenario import ColumnSpec, TableSpec

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)
_EPOCH_DAY = date(1970, 1, 1)

FIRST_NAMES = (
    "Ava", "Liam", "Noah", "Emma", "Olivia", "Mateo", "Sofia", "Lucas", "Mia", "Ethan", "Amara",
    "Kenji", "Priya", "Omar", "Hannah", "Diego", "Chloe", "Ivan", "Leila", "Tomas", "Grace", "Ravi",
    "Elena", "Jonas", "Zara", "Felix", "Nora", "Samuel", "Yuki", "Aisha",
)
LAST_NAMES = (
    "Smith", "Garcia", "Chen", "Muller", "Rossi", "Kowalski", "Nguyen", "Patel", "Okafor", "Silva",
    "Johansson", "Dubois", "Tanaka", "Haddad", "Novak", "Brown", "Fischer", "Martin", "Kim", "Lopez",
    "Andersen", "Moreau", "Ivanova", "Singh", "Walker", "Costa", "Berg", "Ali", "Weber", "Hughes",
)
COMPANY_WORDS = (
    "Northwind", "Acme", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Tyrell", "Cyberdyne",
    "Hooli", "Vandelay", "Soylent", "Aperture", "Blue Sun", "Gringotts", "Oscorp", "Wonka",
    "Pied Piper", "Massive Dynamic", "Sterling", "Virtucon", "Monarch", "Nakatomi", "Zorg",
)
COMPANY_SUFFIXES = ("Analytics", "Labs", "Systems", "Logistics", "Health", "Retail", "Capital",
                    "Foods", "Robotics", "Media", "Energy", "Software")
SUBJECT_PHRASES = (
    "Cannot log in after password reset", "Invoice amount looks wrong", "Export to CSV times out",
    "Feature request: dark mode", "SSO configuration help", "Dashboard not loading",
    "Billing address update", "API rate limit questions", "Data missing from report",
    "Cancel my subscription", "Integration with Slack broken", "How do I invite my team?",
)
WORDS = ("alpha", "bravo", "delta", "echo", "harbor", "summit", "meadow", "orbit", "cedar", "ember",
         "falcon", "quartz", "river", "atlas", "nova", "pixel", "lumen", "vertex")
EMAIL_DOMAINS = ("example.com", "mail.test", "corp.example", "acme.test", "inbox.example")
PERSON_TABLES = ("user", "users", "contact", "contacts", "customer", "customers", "person", "people")


def stable_salt(*parts: object) -> np.uint64:
    """A 64-bit salt that is the same on every machine and Python run (unlike hash())."""
    text = "\x1f".join(str(p) for p in parts).encode()
    return np.uint64((zlib.crc32(text) << 32) | zlib.crc32(text[::-1]))


def _splitmix(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        x = (x + np.uint64(0x9E3779B97F4A7C15)) & _MASK64
        x = ((x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _MASK64
        x = ((x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _MASK64
        return x ^ (x >> np.uint64(31))


def hash64(indices: np.ndarray, versions: np.ndarray | int, salt: np.uint64) -> np.ndarray:
    keys = np.asarray(indices, dtype=np.int64).astype(np.uint64)
    vers = np.broadcast_to(np.asarray(versions, dtype=np.int64), keys.shape).astype(np.uint64)
    with np.errstate(over="ignore"):
        return _splitmix(_splitmix(keys ^ salt) ^ (vers * np.uint64(0xD6E8FEB86659FD93)))


def uniform(indices: np.ndarray, versions: np.ndarray | int, salt: np.uint64) -> np.ndarray:
    return (hash64(indices, versions, salt) >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def primary_key_values(seed: int, table_ref: str, column_type: str, indices: np.ndarray) -> list:
    """Key i of a table, the same wherever it is computed (references rely on that)."""
    if column_type == "integer":
        return (np.asarray(indices, dtype=np.int64) + 1).tolist()
    table = table_ref.split(".")[-1]
    prefix = "".join(ch for ch in table.lower() if ch.isalnum())[:3] or "id"
    hashes = hash64(indices, 0, stable_salt(seed, table_ref, "primary_key"))
    return [f"{prefix}_{int(h):016x}" for h in hashes]


@dataclass(frozen=True)
class RowBatch:
    """Which rows a sync lands: key indices, the version their values come from, and when each
    key was created (creation-time columns such as created_at stay stable across updates)."""

    indices: np.ndarray
    versions: np.ndarray
    created_versions: np.ndarray

    def __len__(self) -> int:
        return int(self.indices.size)


# (versions) -> (window start, window end) in epoch microseconds, per element.
WindowFn = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


class TableLedger(BaseModel):
    """What has been generated for one table so far; persisted with the emulator state."""

    next_index: int = 0
    history_version: int | None = None
    # Row keys created per version: [start, end, version].
    created_ranges: list[tuple[int, int, int]] = Field(default_factory=list)
    # Last version at which an existing key was updated (only keys ever updated).
    updated: dict[int, int] = Field(default_factory=dict)
    # Destination was cleared (Airbyte clear/reset): the next sync re-lands everything.
    needs_full: bool = False

    def plan_sync(
        self, spec: TableSpec, version: int, seed: int, table_ref: str, full: bool = False
    ) -> RowBatch:
        """Advances the ledger by one landed sync and returns the rows to land."""
        if self.history_version is None:
            self.history_version = version
            self.next_index = spec.rows
            self.created_ranges.append((0, spec.rows, version))
            changed = np.arange(spec.rows, dtype=np.int64)
        else:
            n_updates = 0 if spec.append_only else int(round(spec.rows_per_sync * spec.update_share))
            n_updates = min(n_updates, self.next_index)
            n_new = spec.rows_per_sync - n_updates
            rng = np.random.default_rng([seed, int(stable_salt(table_ref) >> np.uint64(1)), version])
            updated = (
                np.sort(rng.choice(self.next_index, size=n_updates, replace=False))
                if n_updates
                else np.empty(0, dtype=np.int64)
            )
            new = np.arange(self.next_index, self.next_index + n_new, dtype=np.int64)
            if n_new:
                self.created_ranges.append((self.next_index, self.next_index + n_new, version))
            self.next_index += n_new
            for key in updated.tolist():
                self.updated[int(key)] = version
            changed = np.concatenate([updated.astype(np.int64), new])
        if full or self.needs_full:
            self.needs_full = False
            return self.current_state()
        return RowBatch(changed, np.full(changed.size, version, dtype=np.int64), self.created_version(changed))

    def current_state(self) -> RowBatch:
        indices = np.arange(self.next_index, dtype=np.int64)
        created = self.created_version(indices)
        versions = created.copy()
        for key, version in self.updated.items():
            if key < self.next_index:
                versions[key] = version
        return RowBatch(indices, versions, created)

    def created_version(self, indices: np.ndarray) -> np.ndarray:
        out = np.zeros(indices.size, dtype=np.int64)
        for start, end, version in self.created_ranges:
            out[(indices >= start) & (indices < end)] = version
        return out


class RowGenerator:
    """Turns a RowBatch into a typed Arrow table for one table's current columns."""

    def __init__(self, seed: int, registry: Mapping[str, TableSpec]):
        self.seed = seed
        self.registry = registry

    def generate(
        self, table_ref: str, columns: Mapping[str, ColumnSpec], batch: RowBatch, window: WindowFn
    ) -> pa.Table:
        arrays = {}
        for name, column in columns.items():
            arrays[name] = self._column(table_ref, name, column, batch, window)
        return pa.table(arrays)

    def _column(
        self, table_ref: str, name: str, column: ColumnSpec, batch: RowBatch, window: WindowFn
    ) -> pa.Array:
        arrow_type = ARROW_TYPES[column.type]
        if column.primary_key:
            return pa.array(primary_key_values(self.seed, table_ref, column.type, batch.indices), arrow_type)

        salt = stable_salt(self.seed, table_ref, name, column.type)
        u = uniform(batch.indices, batch.versions, salt)
        if column.references:
            values = self._references(column, u)
        elif column.values is not None:
            picks = np.minimum((u * len(column.values)).astype(np.int64), len(column.values) - 1)
            values = [_coerce(column.values[i], column.type) for i in picks.tolist()]
        else:
            values = self._typed(table_ref, name, column, batch, u, window)

        if column.nullable:
            is_null = uniform(batch.indices, batch.versions, stable_salt(salt, "null")) < column.nullable
            values = [None if null else v for v, null in zip(values, is_null.tolist())]
        return pa.array(values, arrow_type)

    def _references(self, column: ColumnSpec, u: np.ndarray) -> list:
        schema, table, _ = column.references.split(".")
        target_ref = f"{schema}.{table}"
        target = self.registry[target_ref]
        picks = np.minimum((u * target.rows).astype(np.int64), target.rows - 1)
        return primary_key_values(self.seed, target_ref, column.type, picks)

    def _typed(
        self, table_ref: str, name: str, column: ColumnSpec, batch: RowBatch, u: np.ndarray,
        window: WindowFn,
    ) -> list:
        kind = column.type
        if kind == "integer":
            low, high = int(column.min if column.min is not None else 0), int(
                column.max if column.max is not None else 10_000
            )
            return (low + np.floor(u * (high - low + 1))).astype(np.int64).clip(low, high).tolist()
        if kind == "decimal":
            low = column.min if column.min is not None else 0.0
            high = column.max if column.max is not None else 10_000.0
            return [Decimal(f"{v:.2f}") for v in (low + u * (high - low)).tolist()]
        if kind == "boolean":
            return (u < 0.5).tolist()
        if kind in ("timestamp", "date"):
            # Creation-time columns keep the key's creation window; "updated"-like ones move on.
            moves = any(word in name.lower() for word in ("updated", "modified", "last_"))
            versions = batch.versions if moves else batch.created_versions
            start, end = window(versions)
            micros = (start + u * (end - start)).astype(np.int64)
            if kind == "timestamp":
                return micros.tolist()
            return (micros // 86_400_000_000).astype(np.int32).tolist()
        if kind == "email":
            return _emails(batch, stable_salt(self.seed, table_ref, name, "email"))
        return _strings(table_ref, name, batch, u, stable_salt(self.seed, table_ref, name, "text"))


ARROW_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "email": pa.string(),
    "integer": pa.int64(),
    "decimal": pa.decimal128(18, 2),
    "boolean": pa.bool_(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us", tz="UTC"),
}


def _pick(options: tuple[str, ...], u: np.ndarray) -> list[str]:
    return [options[i] for i in np.minimum((u * len(options)).astype(np.int64), len(options) - 1)]


def _emails(batch: RowBatch, salt: np.uint64) -> list[str]:
    first = _pick(FIRST_NAMES, uniform(batch.indices, batch.versions, stable_salt(salt, 1)))
    last = _pick(LAST_NAMES, uniform(batch.indices, batch.versions, stable_salt(salt, 2)))
    domain = _pick(EMAIL_DOMAINS, uniform(batch.indices, batch.versions, stable_salt(salt, 3)))
    return [f"{f.lower()}.{l.lower()}{int(i)}@{d}" for f, l, d, i in zip(first, last, domain, batch.indices)]


def _strings(table_ref: str, name: str, batch: RowBatch, u: np.ndarray, salt: np.uint64) -> list[str]:
    table = table_ref.split(".")[-1].lower()
    lowered = name.lower()
    second = uniform(batch.indices, batch.versions, stable_salt(salt, 2))
    if lowered == "first_name":
        return _pick(FIRST_NAMES, u)
    if lowered == "last_name":
        return _pick(LAST_NAMES, u)
    if lowered in ("name", "full_name", "display_name") and table in PERSON_TABLES:
        return [f"{f} {l}" for f, l in zip(_pick(FIRST_NAMES, u), _pick(LAST_NAMES, second))]
    if lowered.endswith("name") or lowered in ("company", "nickname"):
        return [f"{c} {s}" for c, s in zip(_pick(COMPANY_WORDS, u), _pick(COMPANY_SUFFIXES, second))]
    if lowered in ("subject", "title", "description"):
        return _pick(SUBJECT_PHRASES, u)
    if lowered.endswith("_id") or lowered.endswith("id"):
        hashes = hash64(batch.indices, batch.versions, salt)
        return [f"{int(h):016x}" for h in hashes]
    return [f"{a}-{b}" for a, b in zip(_pick(WORDS, u), _pick(WORDS, second))]


def _coerce(value: object, column_type: str) -> object:
    """`values` come from YAML; make them fit the column's Arrow type."""
    if value is None:
        return None
    if column_type == "decimal":
        return Decimal(str(value))
    if column_type == "integer":
        return int(value)
    if column_type == "boolean":
        return value if isinstance(value, bool) else str(value).lower() in ("true", "1", "yes")
    if column_type == "timestamp":
        parsed = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    if column_type == "date":
        return value if isinstance(value, date) else date.fromisoformat(str(value))
    return str(value)
