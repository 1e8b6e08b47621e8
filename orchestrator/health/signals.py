"""Per-sync signals: what one sync did to one table (no Dagster imports).

One ``SyncSignal`` per (connector, table, sync): rows landed, how long the sync took, attempts,
warnings and HTTP 429s/retries seen while it ran, and the cursor it reached (the newest source
timestamp landed; Fivetran's ``succeeded_at`` progress when nothing finer is known). They come
from the connector APIs (``from_sync_record``: the snapshot's ``SyncRecord``) or from run events
(``rows``/``attempts``/``warnings``/``rate_limited`` metadata), are stored as a bounded time
series in the project store (``orchestrator.health.store``) and read by the detectors
(``orchestrator.health.detect``), the health score and the early warning.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

UTC = timezone.utc


def aware(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class SyncSignal:
    connector: str  # "fivetran:<id>" | "airbyte:<id>"
    table: str  # asset key of the connector table ("salesforce/account")
    sync_id: str
    started_at: datetime
    ended_at: datetime | None = None
    status: str = "succeeded"  # succeeded | failed | cancelled
    rows: int | None = None
    attempts: int = 1
    warnings: int = 0
    rate_limited: int = 0  # HTTP 429s answered while it ran
    retries: int = 0
    cursor: datetime | None = None  # newest source timestamp landed (or succeeded_at progress)

    @property
    def duration_s(self) -> float | None:
        if self.ended_at is None:
            return None
        return max(0.0, (aware(self.ended_at) - aware(self.started_at)).total_seconds())

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"

    def to_dict(self) -> dict:
        return {
            "connector": self.connector, "table": self.table, "sync_id": self.sync_id,
            "started_at": self.started_at.isoformat(),
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            "status": self.status, "rows": self.rows, "attempts": self.attempts,
            "warnings": self.warnings, "rate_limited": self.rate_limited, "retries": self.retries,
            "cursor": self.cursor.isoformat() if self.cursor else None,
        }


def from_sync_record(sync, rows_by_table: dict[str, int] | None = None, *, warnings: int = 0,
                     rate_limited: int = 0, retries: int = 0, attempts: int = 1,
                     cursor_by_table: dict[str, datetime] | None = None) -> list[SyncSignal]:
    """Signals of one completed ``SyncRecord`` (one per table it lands). Rows per table when the
    API gives them; else the sync's total split evenly is *not* invented: rows stay unknown."""
    if sync.status == "running":
        return []
    out = []
    for table in sync.tables:
        rows = (rows_by_table or {}).get(table)
        if rows is None and len(sync.tables) == 1:
            rows = sync.rows
        cursor = (cursor_by_table or {}).get(table)
        if cursor is None and sync.status == "succeeded":
            cursor = sync.ended_at  # succeeded_at progress
        out.append(SyncSignal(
            connector=sync.connector, table=table, sync_id=sync.sync_id, started_at=aware(sync.started_at),
            ended_at=aware(sync.ended_at) if sync.ended_at else None, status=sync.status, rows=rows,
            attempts=max(attempts, int(getattr(sync, "attempts", 1) or 1)), warnings=warnings or int(getattr(sync, "warnings", 0) or 0), rate_limited=rate_limited, retries=retries, cursor=cursor,
        ))
    return out
