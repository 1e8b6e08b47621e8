"""Column types across connectors and the warehouse, reduced to what a schema change is about.

Fivetran, Airbyte (JSON schema), Parquet (Arrow) and dbt (``data_type`` in YAML, DuckDB names)
all spell types differently; each is mapped to a *family* (integer, decimal, string, boolean,
date, timestamp). A change of family is a type change; a timestamp with or without a time zone
is the same family (connectors disagree on it all the time and dbt models normalise it).
"""

from __future__ import annotations

from typing import Any

import sqlglot
from sqlglot import exp

INTEGER, DECIMAL, STRING, BOOLEAN, DATE, TIMESTAMP, OTHER = (
    "integer", "decimal", "string", "boolean", "date", "timestamp", "other",
)

# Canonical DuckDB type per family: what a patch casts back to when the family changed.
CANONICAL = {INTEGER: "bigint", DECIMAL: "double", STRING: "varchar", BOOLEAN: "boolean",
             DATE: "date", TIMESTAMP: "timestamp"}

_EMULATOR = {"string": STRING, "email": STRING, "integer": INTEGER, "decimal": DECIMAL,
             "boolean": BOOLEAN, "date": DATE, "timestamp": TIMESTAMP}

_T = exp.DataType.Type
_FAMILIES: dict[Any, str] = {}
for _family, _types in {
    INTEGER: ("TINYINT", "SMALLINT", "INT", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINT",
              "UBIGINT", "UHUGEINT", "INT128", "INT256", "MEDIUMINT"),
    DECIMAL: ("DECIMAL", "DOUBLE", "FLOAT", "MONEY", "BIGDECIMAL", "UDECIMAL"),
    STRING: ("VARCHAR", "TEXT", "CHAR", "NVARCHAR", "NCHAR", "UUID", "NAME"),
    BOOLEAN: ("BOOLEAN",),
    DATE: ("DATE", "DATE32"),
    TIMESTAMP: ("TIMESTAMP", "TIMESTAMPTZ", "TIMESTAMPLTZ", "TIMESTAMP_S", "TIMESTAMP_MS",
                "TIMESTAMP_NS", "DATETIME", "DATETIME64"),
}.items():
    for _name in _types:
        if hasattr(_T, _name):
            _FAMILIES[getattr(_T, _name)] = _family


def family(type_name: str | None) -> str:
    """The family of a type spelled by dbt/DuckDB, Fivetran, the emulator or Arrow."""
    if not type_name:
        return OTHER
    text = str(type_name).strip()
    lowered = text.lower()
    if lowered in _EMULATOR:
        return _EMULATOR[lowered]
    arrow = _arrow_family(lowered)
    if arrow:
        return arrow
    try:
        built = exp.DataType.build(text, dialect="duckdb")
    except (sqlglot.errors.ParseError, ValueError):
        return OTHER
    return _FAMILIES.get(built.this, OTHER)


def _arrow_family(lowered: str) -> str | None:
    if lowered in ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"):
        return INTEGER
    if lowered.startswith(("decimal128", "decimal256")) or lowered in ("float", "double", "halffloat"):
        return DECIMAL
    if lowered in ("string", "large_string", "utf8", "large_utf8"):
        return STRING
    if lowered == "bool":
        return BOOLEAN
    if lowered in ("date32[day]", "date64[ms]", "date32", "date64"):
        return DATE
    if lowered.startswith("timestamp["):
        return TIMESTAMP
    # Fivetran's own column type names
    fivetran = {"long": INTEGER, "short": INTEGER, "integer": INTEGER, "bigdecimal": DECIMAL,
                "local_date": DATE, "local_datetime": TIMESTAMP, "instant": TIMESTAMP,
                "naive_datetime": TIMESTAMP, "utc_datetime": TIMESTAMP, "boolean": BOOLEAN}
    return fivetran.get(lowered)


def json_schema_family(schema: dict[str, Any]) -> tuple[str, bool]:
    """(family, nullable) of an Airbyte catalog JSON-schema property."""
    types = schema.get("type") or []
    types = [types] if isinstance(types, str) else list(types)
    nullable = "null" in types
    kinds = [t for t in types if t != "null"]
    kind = kinds[0] if kinds else "string"
    fmt, airbyte_type = schema.get("format"), schema.get("airbyte_type")
    if kind == "integer" or airbyte_type == "integer":
        return INTEGER, nullable
    if kind == "number":
        return DECIMAL, nullable
    if kind == "boolean":
        return BOOLEAN, nullable
    if kind == "string" and fmt == "date":
        return DATE, nullable
    if kind == "string" and (fmt == "date-time" or (airbyte_type or "").startswith("timestamp")):
        return TIMESTAMP, nullable
    if kind == "string":
        return STRING, nullable
    return OTHER, nullable


# Whether every value of one family converts to another where a model casts it (DuckDB).
# Casts from a string depend on the values (a string holding digits casts to a number, 'n/a'
# does not), so they count as unsafe: the patch's dbt build on the new data settles it.
_SAFE_CASTS = {
    (INTEGER, DECIMAL), (DECIMAL, INTEGER), (INTEGER, STRING), (DECIMAL, STRING), (BOOLEAN, STRING),
    (DATE, STRING), (TIMESTAMP, STRING), (DATE, TIMESTAMP), (TIMESTAMP, DATE), (INTEGER, BOOLEAN),
}


def cast_is_safe(source: str, target: str) -> bool:
    return source == target or (source, target) in _SAFE_CASTS


def implicitly_compatible(old: str, new: str) -> bool:
    """A bare use of a column (arithmetic, comparison, a function) keeps working after the change."""
    return old == new or (old, new) in {(INTEGER, DECIMAL), (DATE, TIMESTAMP)}
