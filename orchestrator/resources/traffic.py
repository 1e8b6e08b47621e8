"""Where the clients' per-sync API traffic goes: the project store's signal time series.

``ConfiguredFivetranClient``/``ConfiguredAirbyteClient`` count, while they start and poll a sync
(``orchestrator.resources.errors.count_traffic``), the HTTP 429s they were answered with, the
requests they sent again and (Fivetran) the reschedules for the source's API quota, and hand them
here with the sync's id when they learnt it. ``note_sync_traffic`` records them through
``orchestrator.health.traffic.record_traffic``; the health sensor folds them into the sync's
table signals. Best effort: a store that is not there yet or fails is logged, never raised (a
sync that ran must not fail over its bookkeeping).
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path

log = logging.getLogger(__name__)
UTC = timezone.utc


def note_sync_traffic(connector: str, traffic, *, sync_id: str | None, started_at: datetime,
                      ended_at: datetime | None = None, store=None) -> str | None:
    """Record one sync's traffic (``connector``: ``fivetran:<id>`` / ``airbyte:<id>``); returns the
    key it was kept under, None when nothing was recorded."""
    if traffic is None:
        return None
    rate_limited = traffic.rate_limited + traffic.rescheduled
    if not (rate_limited or traffic.retries):
        return None
    try:
        from orchestrator.health.traffic import record_traffic

        if store is None:
            from orchestrator.store import default_store_url, open_store

            url = default_store_url()
            if url.startswith("sqlite:///") and not Path(url.split(":///", 1)[1]).exists():
                return None  # no project store here (yet): nothing reads signals
            store = open_store(url, migrate=False)
        return record_traffic(store, connector, sync_id=sync_id, started_at=started_at,
                              ended_at=ended_at or datetime.now(UTC), rate_limited=rate_limited,
                              retries=traffic.retries)
    except Exception as exc:  # noqa: BLE001 - bookkeeping only
        log.warning("sync traffic of %s not recorded: %s", connector, str(exc)[:300])
        return None
