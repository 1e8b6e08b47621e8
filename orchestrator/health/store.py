"""Per-sync signals on the project store (table ``sync_signals``): record, read, prune.

Recording is idempotent per (connector, table, sync id): a sensor tick that sees the same sync
again does not add a row (a sync seen running first and completed later is updated). Retention
is bounded: ``prune`` drops loads older than ``retention_days``
(``ORCHESTRATOR_SIGNAL_RETENTION_DAYS``, default 75: a 30-day trend over a 42-day baseline) and
keeps at most ``max_per_table`` loads per table.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select

from orchestrator.health.signals import UTC, SyncSignal, aware
from orchestrator.store.signal_models import SyncSignalRow

DEFAULT_RETENTION_DAYS = 75.0
DEFAULT_MAX_PER_TABLE = 5000


def retention_days() -> float:
    raw = os.environ.get("ORCHESTRATOR_SIGNAL_RETENTION_DAYS", "")
    try:
        return float(raw) if raw else DEFAULT_RETENTION_DAYS
    except ValueError:
        raise ValueError(f"ORCHESTRATOR_SIGNAL_RETENTION_DAYS must be a number of days, got {raw!r}") from None


def _row_to_signal(r: SyncSignalRow) -> SyncSignal:
    return SyncSignal(
        connector=r.connector, table=r.table_key, sync_id=r.sync_id, started_at=aware(r.started_at),
        ended_at=aware(r.ended_at) if r.ended_at else None, status=r.status, rows=r.rows,
        attempts=r.attempts, warnings=r.warnings, rate_limited=r.rate_limited, retries=r.retries,
        cursor=aware(r.cursor) if r.cursor else None,
    )


def record_signals(store, signals: Iterable[SyncSignal]) -> int:
    """Insert new loads, update ones already recorded; returns how many rows were new."""
    signals = list(signals)
    if not signals:
        return 0
    new = 0
    with store.session() as s:
        keys = {(x.connector, x.table, x.sync_id) for x in signals}
        existing = {}
        for conn in {k[0] for k in keys}:
            ids = [k[2] for k in keys if k[0] == conn]
            for i in range(0, len(ids), 500):
                for row in s.scalars(select(SyncSignalRow).where(
                        SyncSignalRow.connector == conn, SyncSignalRow.sync_id.in_(ids[i:i + 500]))):
                    existing[(row.connector, row.table_key, row.sync_id)] = row
        for x in signals:
            row = existing.get((x.connector, x.table, x.sync_id))
            values = dict(started_at=aware(x.started_at), ended_at=aware(x.ended_at) if x.ended_at else None,
                          status=x.status, rows=x.rows, duration_s=x.duration_s, attempts=x.attempts,
                          warnings=x.warnings, rate_limited=x.rate_limited, retries=x.retries,
                          cursor=aware(x.cursor) if x.cursor else None)
            if row is None:
                row = SyncSignalRow(connector=x.connector, table_key=x.table, sync_id=x.sync_id, **values)
                s.add(row)
                existing[(x.connector, x.table, x.sync_id)] = row
                new += 1
            else:
                for k, v in values.items():
                    setattr(row, k, v)
    return new


def load_signals(store, *, since: datetime | None = None, connector: str | None = None,
                 tables: Iterable[str] | None = None) -> list[SyncSignal]:
    with store.session() as s:
        # connector-level traffic rows (orchestrator.health.traffic) are not loads of a table
        q = select(SyncSignalRow).where(SyncSignalRow.table_key != "").order_by(SyncSignalRow.started_at)
        if since is not None:
            q = q.where(SyncSignalRow.started_at >= aware(since))
        if connector is not None:
            q = q.where(SyncSignalRow.connector == connector)
        if tables is not None:
            q = q.where(SyncSignalRow.table_key.in_(list(tables)))
        return [_row_to_signal(r) for r in s.scalars(q)]


def prune(store, now: datetime | None = None, *, retention: float | None = None,
          max_per_table: int = DEFAULT_MAX_PER_TABLE) -> int:
    """Drop loads past retention and beyond ``max_per_table`` per table; returns rows removed."""
    now = aware(now or datetime.now(UTC))
    days = retention_days() if retention is None else retention
    removed = 0
    with store.session() as s:
        removed += s.execute(delete(SyncSignalRow).where(
            SyncSignalRow.started_at < now - timedelta(days=days))).rowcount or 0
        over = s.execute(select(SyncSignalRow.table_key, func.count()).group_by(SyncSignalRow.table_key)
                         .having(func.count() > max_per_table)).all()
        for table, n in over:
            cutoff = s.execute(select(SyncSignalRow.started_at).where(SyncSignalRow.table_key == table)
                               .order_by(SyncSignalRow.started_at.desc()).offset(max_per_table - 1).limit(1)
                               ).scalar_one()
            removed += s.execute(delete(SyncSignalRow).where(
                SyncSignalRow.table_key == table, SyncSignalRow.started_at < cutoff)).rowcount or 0
    return removed
