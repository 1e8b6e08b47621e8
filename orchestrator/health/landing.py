"""Rows per table per sync from the landing zone (the embedded default: Parquet files under
``<landing>/<schema>/<table>/<sync id>.parquet``). The connector APIs give a sync's status and
times, not rows per table; the files a sync landed do. A sync that landed nothing writes no file:
0 rows."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from orchestrator.health.signals import SyncSignal, aware

SLACK = timedelta(seconds=60)


def landed_rows(landing_dir: Path, table: str, since: datetime | None, until: datetime) -> int | None:
    """Rows in the files of ``table`` ("schema/table") written in (since, until + 60 s]; None
    when the table has no folder (not landed here)."""
    import pyarrow.parquet as pq

    folder = Path(landing_dir) / table
    if not folder.is_dir():
        return None
    lo = aware(since).timestamp() if since else float("-inf")
    hi = (aware(until) + SLACK).timestamp()
    total = 0
    for f in folder.glob("*.parquet"):
        m = f.stat().st_mtime
        if lo < m <= hi:
            try:
                total += pq.read_metadata(f).num_rows
            except Exception:  # noqa: BLE001 - a file being written: counted next time
                continue
    return total


def fill_rows(signals: list[SyncSignal], landing_dir: Path | None, previous_end: dict[str, datetime]
              ) -> list[SyncSignal]:
    """Signals of succeeded loads without rows get the rows landed since the table's previous
    load (``previous_end``: table -> end of its previous recorded load)."""
    if landing_dir is None or not Path(landing_dir).is_dir():
        return signals
    from dataclasses import replace

    out = []
    for s in sorted(signals, key=lambda x: x.started_at):
        if s.rows is None and s.succeeded and s.ended_at is not None:
            since = previous_end.get(s.table)
            rows = landed_rows(landing_dir, s.table, since + SLACK if since else None, s.ended_at)
            if rows is not None:
                s = replace(s, rows=rows)
        if s.ended_at is not None:
            previous_end[s.table] = s.ended_at
        out.append(s)
    return out
