"""Rows per table per sync from the landing zone (the embedded default: Parquet files under
``<landing>/<schema>/<table>/<sync id>.parquet``). The connector APIs give a sync's status and
times, not rows per table; the files a sync landed do. A sync that landed nothing writes no file:
0 rows.

The cursor a load reached: the newest source timestamp in the files it landed (a column named
like ``updated``/``modified``/``last_``, the incremental cursor of most sources); a load that
re-read old rows (a stuck cursor) lands rows whose newest timestamp did not advance. Tables
without such a column keep the ``succeeded_at`` progress the API gives."""

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


CURSOR_WORDS = ("updated", "modified", "last_")


def _cursor_columns(schema) -> list[str]:
    import pyarrow as pa

    return [f.name for f in schema if pa.types.is_timestamp(f.type) and not f.name.startswith("_")
            and any(w in f.name.lower() for w in CURSOR_WORDS)]


def has_cursor_column(landing_dir: Path, table: str) -> bool:
    """The newest file of ``table`` has a source cursor column."""
    import pyarrow.parquet as pq

    files = sorted((Path(landing_dir) / table).glob("*.parquet"), key=lambda f: f.stat().st_mtime)
    try:
        return bool(files) and bool(_cursor_columns(pq.read_schema(files[-1])))
    except Exception:  # noqa: BLE001 - a file being written
        return False


def landed_cursor(landing_dir: Path, table: str, since: datetime | None, until: datetime) -> datetime | None:
    """The newest source timestamp in the files of ``table`` written in (since, until + 60 s];
    None when no file or no cursor column."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    folder = Path(landing_dir) / table
    if not folder.is_dir():
        return None
    lo = aware(since).timestamp() if since else float("-inf")
    hi = (aware(until) + SLACK).timestamp()
    best = None
    for f in folder.glob("*.parquet"):
        if not lo < f.stat().st_mtime <= hi:
            continue
        try:
            cols = _cursor_columns(pq.read_schema(f))
            if not cols:
                continue
            t = pq.read_table(f, columns=cols)
        except Exception:  # noqa: BLE001 - a file being written: read next time
            continue
        for c in cols:
            v = pc.max(t.column(c)).as_py()
            if v is not None:
                v = aware(v)
                best = v if best is None or v > best else best
    return best


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
            lo = since + SLACK if since else None
            rows = landed_rows(landing_dir, s.table, lo, s.ended_at)
            if rows is not None:
                s = replace(s, rows=rows)
                cursor = landed_cursor(landing_dir, s.table, lo, s.ended_at) if rows else None
                if cursor is not None:
                    s = replace(s, cursor=cursor)  # the source's own cursor, not succeeded_at
                elif rows == 0 and has_cursor_column(landing_dir, s.table):
                    s = replace(s, cursor=None)  # nothing landed: the cursor is unknown, not succeeded_at
        if s.ended_at is not None:
            previous_end[s.table] = s.ended_at
        out.append(s)
    return out
