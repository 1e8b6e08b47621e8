"""Per-sync API traffic into the signal time series (no Dagster imports).

The project's Fivetran/Airbyte clients count what the API answered while they started and polled
one sync (``orchestrator.resources.errors.count_traffic``: HTTP 429s, requests sent again, Fivetran
reschedules for the source's API quota). ``record_traffic`` keeps those counts in the same
``sync_signals`` table as connector-level rows (``table_key`` = ``TRAFFIC_KEY``, never returned
by ``load_signals``):

* keyed by the sync's own id when the client learnt it (Fivetran ``<id>@<succeeded_at|failed_at>``,
  Airbyte the job id: the ids ``ConnectorReader`` gives the same syncs), and already recorded
  table signals of that sync get the counts at once;
* else (the sync was rescheduled, the poll gave up on the API, the run was stopped) as a
  *pending* row of the connector, folded into the connector's next completed sync.

``merge_traffic`` (the health sensor, before it records the signals it read) adds the traffic of
each sync to its table signals, so the ``rate_limit_rate`` detector, the health score's warnings
component and the early warning read live API traffic. Counts are never lowered: a sync seen by
the sensor and by the client keeps the larger count of each.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime

from sqlalchemy import select

from orchestrator.health.signals import SyncSignal, aware

TRAFFIC_KEY = ""  # the table key of connector-level traffic rows
PENDING = "pending@"


def record_traffic(store, connector: str, *, sync_id: str | None, started_at: datetime, ended_at: datetime,
                   rate_limited: int = 0, retries: int = 0, attempts: int = 1, status: str = "traffic") -> str:
    """Keep one sync's traffic; returns the key it was kept under (the sync id, or a pending key).
    Nothing is written when there is nothing to tell (no 429, no retry, one attempt) and the
    sync is known."""
    from orchestrator.store.signal_models import SyncSignalRow

    started_at, ended_at = aware(started_at), aware(ended_at)
    if sync_id is not None and rate_limited == 0 and retries == 0 and attempts <= 1:
        return sync_id
    key = sync_id if sync_id is not None else f"{PENDING}{ended_at.isoformat()}"
    with store.session() as s:
        rows = {r.table_key: r for r in s.scalars(select(SyncSignalRow).where(
            SyncSignalRow.connector == connector, SyncSignalRow.sync_id == key))}
        rl, rt, at = rate_limited, retries, attempts
        if sync_id is not None:  # pending traffic before this sync is its own
            for p in s.scalars(select(SyncSignalRow).where(
                    SyncSignalRow.connector == connector, SyncSignalRow.table_key == TRAFFIC_KEY,
                    SyncSignalRow.sync_id.like(f"{PENDING}%"), SyncSignalRow.started_at <= ended_at)):
                rl, rt, at = rl + p.rate_limited, rt + p.retries, at + max(0, p.attempts - 1)
                s.delete(p)
        own = rows.get(TRAFFIC_KEY)
        if own is None:
            s.add(SyncSignalRow(connector=connector, table_key=TRAFFIC_KEY, sync_id=key, started_at=started_at,
                                ended_at=ended_at, status=status if sync_id is not None else "pending",
                                rows=None, duration_s=None, attempts=at, warnings=0, rate_limited=rl, retries=rt))
        else:
            own.rate_limited, own.retries = max(own.rate_limited, rl), max(own.retries, rt)
            own.attempts = max(own.attempts, at)
        for table, r in rows.items():  # table signals the sensor recorded already
            if table == TRAFFIC_KEY:
                continue
            r.rate_limited, r.retries, r.attempts = max(r.rate_limited, rl), max(r.retries, rt), max(r.attempts, at)
    return key


def merge_traffic(store, signals: Iterable[SyncSignal]) -> list[SyncSignal]:
    """The signals with the traffic the clients recorded for their syncs (and pending traffic of
    their connector before them, which is then theirs: it is re-keyed to the sync)."""
    from orchestrator.store.signal_models import SyncSignalRow

    signals = list(signals)
    if not signals:
        return signals
    by_sync: dict[tuple[str, str], tuple[int, int, int]] = {}
    conns = sorted({s.connector for s in signals})
    with store.session() as s:
        for conn in conns:
            ids = sorted({x.sync_id for x in signals if x.connector == conn})
            own = {}
            for i in range(0, len(ids), 500):
                for r in s.scalars(select(SyncSignalRow).where(
                        SyncSignalRow.connector == conn, SyncSignalRow.table_key == TRAFFIC_KEY,
                        SyncSignalRow.sync_id.in_(ids[i:i + 500]))):
                    own[r.sync_id] = r
            done = sorted({(aware(x.ended_at or x.started_at), x.sync_id) for x in signals
                           if x.connector == conn and x.status != "running"})
            for p in s.scalars(select(SyncSignalRow).where(
                    SyncSignalRow.connector == conn, SyncSignalRow.table_key == TRAFFIC_KEY,
                    SyncSignalRow.sync_id.like(f"{PENDING}%")).order_by(SyncSignalRow.started_at)):
                hit = next((sid for end, sid in done if end >= aware(p.started_at)), None)
                if hit is None:
                    continue  # its sync has not completed yet
                r = own.get(hit)
                if r is None:  # the pending traffic becomes this sync's
                    p.sync_id, p.status = hit, "traffic"
                    own[hit] = p
                else:
                    r.rate_limited, r.retries = r.rate_limited + p.rate_limited, r.retries + p.retries
                    r.attempts = r.attempts + max(0, p.attempts - 1)
                    s.delete(p)
            for sid, r in own.items():
                by_sync[(conn, sid)] = (r.rate_limited, r.retries, r.attempts)
    out = []
    for x in signals:
        t = by_sync.get((x.connector, x.sync_id))
        if t is None:
            out.append(x)
            continue
        rl, rt, at = t
        out.append(replace(x, rate_limited=max(x.rate_limited, rl), retries=max(x.retries, rt),
                           attempts=max(x.attempts, at)))
    return out


def fivetran_attempts(signals: list[SyncSignal], history: Iterable[SyncSignal]) -> list[SyncSignal]:
    """Fivetran exposes no attempts: a succeeded sync whose connector failed since its previous
    success (``failed_at`` between the two ``succeeded_at``, each failure a sync of the history)
    took 1 + that many attempts."""
    fails: dict[str, set] = {}
    oks: dict[str, list[datetime]] = {}
    for s in list(history) + signals:
        if not s.connector.startswith("fivetran:"):
            continue
        end = aware(s.ended_at or s.started_at)
        if s.status == "failed":
            fails.setdefault(s.connector, set()).add((end, s.sync_id))
        elif s.succeeded:
            oks.setdefault(s.connector, []).append(end)
    out = []
    for s in signals:
        if not (s.succeeded and s.connector in fails):
            out.append(s)
            continue
        end = aware(s.ended_at or s.started_at)
        prev = max((t for t in oks.get(s.connector, ()) if t < end), default=None)
        n = sum(1 for t, _ in fails[s.connector] if t < end and (prev is None or t > prev))
        out.append(replace(s, attempts=max(s.attempts, 1 + n)) if n else s)
    return out
