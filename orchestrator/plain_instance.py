"""A Dagster SQLite instance read from its tables, without importing Dagster.

``orchestrator plan --dry-run`` needs from the instance what every sensor reads
(``orchestrator.snapshot.InstanceReader``): the in-flight and recently updated runs, the recent
materializations, each asset's latest materialization and the failure events of the runs that
failed. Importing Dagster and opening a ``DagsterInstance`` costs more CPU than the whole rest of
the dry-run, so on the default instance layout - ``$DAGSTER_HOME`` with no ``storage`` /
``run_storage`` / ``event_log_storage`` in its ``dagster.yaml``: ``history/runs.db`` and the event
log shards ``history/runs/index.db`` + ``history/runs/<run id>.db`` - this reads the same rows with
``sqlite3`` and answers the ``plain_*`` questions ``InstanceReader`` asks (``plain_instance()``
returns None for any other layout: PostgreSQL, a custom storage; the caller then opens a
``DagsterInstance`` as the sensors do). ``tests/test_plain_instance.py`` checks it reads what
Dagster's own API reads, on runs Dagster executed.

Read only: the databases are opened ``mode=ro``; nothing is migrated or written.
"""

from __future__ import annotations

import json
import re
import sqlite3
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

UTC = timezone.utc
STORAGE_KEYS = re.compile(r"^(storage|run_storage|event_log_storage)\s*:", re.MULTILINE)
RUN_RESULTS_KEY = "dbt_run_results"  # orchestrator.resources.dbt_failures.METADATA_KEY


def plain_instance(dagster_home: str | Path) -> PlainInstance | None:
    """The reader of ``dagster_home``'s SQLite instance, or None when its storage is configured
    elsewhere (or it has no run database yet: nothing ran, and Dagster would create it)."""
    home = Path(dagster_home)
    config = home / "dagster.yaml"
    try:
        text = config.read_text(encoding="utf-8") if config.exists() else ""
    except OSError:
        return None
    if STORAGE_KEYS.search(text):
        return None
    base = home / "history"
    if not (base / "runs.db").exists() or not (base / "runs" / "index.db").exists():
        return None
    return PlainInstance(base)


def _connect(path: Path):
    """A read-only connection, closed when the ``with`` block ends."""
    return closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False))


def _naive_utc(value: datetime) -> str:
    """A timezone-aware time as the naive UTC text the tables hold (SQLAlchemy's SQLite DateTime:
    microseconds always written, so text order is time order)."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _parse_ts(text: str | None) -> datetime | None:
    if text is None:
        return None
    if isinstance(text, datetime):
        value = text
    else:
        value = datetime.fromisoformat(str(text))
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _user_key(path: list[Any]) -> str:
    return "/".join(str(p) for p in path)


def _db_path(db_key: str) -> list[str]:
    if db_key.startswith("["):
        return [str(p) for p in json.loads(db_key)]
    return db_key.split(".")


def _unpack(value: Any) -> Any:
    """Dagster's serdes JSON -> plain values (``__frozenset__``/``__set__`` -> list, ``__enum__``
    -> its member name, objects -> dicts without ``__class__``)."""
    if isinstance(value, dict):
        if "__frozenset__" in value:
            return [_unpack(v) for v in value["__frozenset__"]]
        if "__set__" in value:
            return [_unpack(v) for v in value["__set__"]]
        if "__enum__" in value:
            return str(value["__enum__"]).rsplit(".", 1)[-1]
        return {k: _unpack(v) for k, v in value.items() if k != "__class__"}
    if isinstance(value, list):
        return [_unpack(v) for v in value]
    return value


def _metadata(data: dict) -> dict[str, Any]:
    """``UserFailureData`` metadata as label -> value (new ``metadata`` or legacy
    ``metadata_entries`` with ``entry_data``)."""
    out: dict[str, Any] = {}
    for label, value in (data.get("metadata") or {}).items():
        out[label] = value.get("data", value.get("value", value)) if isinstance(value, dict) else value
    for entry in data.get("metadata_entries") or []:
        inner = entry.get("entry_data") or {}
        out[entry.get("label")] = inner.get("data", inner.get("value", inner.get("text", inner)))
    return out


def _error(data: dict | None):
    if not data:
        return None
    return SimpleNamespace(message=str(data.get("message") or ""), cause=_error(data.get("cause")))


@dataclass
class PlainInstance:
    """``history/`` of a SQLite ``DagsterInstance``, read with ``sqlite3`` (see the module doc)."""

    base: Path
    _runs: dict[str, Any] = field(default_factory=dict)  # run id -> record, as read

    def _run_record(self, row) -> SimpleNamespace:
        run_id, job, status, body, created, start, end = row
        payload = json.loads(body) if body else {}
        selection = payload.get("asset_selection")
        keys = tuple(_user_key(k["path"]) for k in _unpack(selection)) if selection else ()
        run = SimpleNamespace(run_id=run_id, job_name=job, status=status, asset_selection=keys,
                              tags={str(k): str(v) for k, v in (payload.get("tags") or {}).items()})
        rec = SimpleNamespace(dagster_run=run, create_timestamp=_parse_ts(created), start_time=start, end_time=end)
        self._runs[run_id] = rec
        return rec

    _RUN_COLUMNS = "run_id, pipeline_name, status, run_body, create_timestamp, start_time, end_time"

    def plain_run_records(self, *, statuses=None, updated_after: datetime | None = None,
                          limit: int | None = None) -> list[SimpleNamespace]:
        """``instance.get_run_records(RunsFilter(statuses=...|updated_after=...), limit)``:
        newest first (by storage id, as Dagster orders them)."""
        where, args = [], []
        if statuses:
            where.append(f"status IN ({', '.join('?' * len(statuses))})")
            args.extend(statuses)
        if updated_after is not None:
            where.append("update_timestamp > ?")
            args.append(_naive_utc(updated_after))
        sql = f"SELECT {self._RUN_COLUMNS} FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC"
        if limit:
            sql += f" LIMIT {int(limit)}"
        with _connect(self.base / "runs.db") as con:
            return [self._run_record(row) for row in con.execute(sql, args)]

    def get_run_by_id(self, run_id: str):
        rec = self._runs.get(run_id)
        if rec is None:
            with _connect(self.base / "runs.db") as con:
                row = con.execute(f"SELECT {self._RUN_COLUMNS} FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if row is None:
                return None
            rec = self._run_record(row)
        return rec.dagster_run

    def plain_materialization_rows(self, since: datetime, limit: int | None) -> list[tuple[str, float, str, str | None]]:
        """(asset key, timestamp, run id, partition) of materializations after ``since``, newest
        first (``orchestrator.snapshot._materialization_rows``' SQL path, one query: the index
        shard's ``(dagster_event_type, id)`` order)."""
        sql = ("SELECT asset_key, timestamp, run_id, partition FROM event_logs "
               "WHERE dagster_event_type = 'ASSET_MATERIALIZATION' AND timestamp > ? ORDER BY id DESC")
        if limit:
            sql += f" LIMIT {int(limit)}"
        after = _naive_utc(datetime.fromtimestamp(since.timestamp(), UTC))
        out = []
        with _connect(self.base / "runs" / "index.db") as con:
            for key, ts, run_id, part in con.execute(sql, (after,)):
                if key:
                    out.append((_user_key(_db_path(key)), _parse_ts(ts).timestamp(), run_id, part))
        return out

    def plain_last_success(self, keys) -> dict[str, datetime]:
        """Asset key -> time of its latest materialization since its last wipe (none for
        never-materialized or wiped-since assets)."""
        wanted = {json.dumps(k.split("/")): k for k in keys}
        out: dict[str, datetime] = {}
        if not wanted:
            return out
        sql = ("SELECT k.asset_key, k.wipe_timestamp, (SELECT e.timestamp FROM event_logs e "
               "WHERE e.id = (SELECT max(m.id) FROM event_logs m WHERE m.asset_key = k.asset_key "
               "AND m.dagster_event_type = 'ASSET_MATERIALIZATION' "
               "AND (k.wipe_timestamp IS NULL OR m.timestamp > k.wipe_timestamp))) FROM asset_keys k "
               "WHERE k.asset_key IN ({})")
        db_keys = list(wanted)
        with _connect(self.base / "runs" / "index.db") as con:
            for i in range(0, len(db_keys), 500):
                chunk = db_keys[i:i + 500]
                for db_key, _wiped, ts in con.execute(sql.format(", ".join("?" * len(chunk))), chunk):
                    if ts is not None:
                        out[wanted[db_key]] = _parse_ts(ts)
        return out

    def plain_failure_events(self, run_id: str) -> list[SimpleNamespace]:
        """The run's STEP_FAILURE and RUN_FAILURE events (``instance.all_logs(run_id, of_type=...)``)
        shaped as ``EventLogEntry`` where ``InstanceReader.failures`` reads them."""
        path = self.base / "runs" / f"{run_id}.db"
        if not path.exists():
            return []
        with _connect(path) as con:
            rows = con.execute("SELECT event FROM event_logs WHERE dagster_event_type IN "
                               "('STEP_FAILURE', 'PIPELINE_FAILURE') ORDER BY id").fetchall()
        out = []
        for (body,) in rows:
            entry = json.loads(body)
            event = entry.get("dagster_event") or {}
            specific = event.get("event_specific_data") or {}
            step_failure = None
            run_results = None
            if event.get("event_type_value") == "STEP_FAILURE":
                user = specific.get("user_failure_data")
                metadata = _metadata(user) if user else {}
                step_failure = SimpleNamespace(
                    error=_error(specific.get("error")),
                    user_failure_data=SimpleNamespace(description=user.get("description"), metadata=metadata)
                    if user else None)
                value = metadata.get(RUN_RESULTS_KEY)
                if isinstance(value, dict) and isinstance(value.get("results"), list):
                    run_results = dict(value)
            out.append(SimpleNamespace(
                dagster_event=SimpleNamespace(event_type=event.get("event_type_value"), step_failure_data=step_failure,
                                              message=event.get("message")),
                step_key=entry.get("step_key") or event.get("step_key"),
                timestamp=entry.get("timestamp"),
                user_message=entry.get("user_message"),
                plain_run_results=run_results,
            ))
        return out
