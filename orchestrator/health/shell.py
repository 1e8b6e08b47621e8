"""Verdicts from the store into a snapshot (no Dagster imports): ``attach_holds``."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

from orchestrator.core.graph import CONNECTOR_TABLE

log = logging.getLogger(__name__)


def attach_holds(snapshot, store=None) -> None:
    """Fill ``snapshot.anomalous_loads`` from the signals the health sensor recorded. Without a
    store (the default SQLite file not created yet, or no ``sync_signals`` table) nothing is
    held; a store error is logged, never raised (the planner then runs without the hold)."""
    from orchestrator.health.detect import verdicts
    from orchestrator.health.hold import holds_from_verdicts
    from orchestrator.health.store import load_signals

    tables = [n.key for n in snapshot.graph if n.role == CONNECTOR_TABLE and n.connector]
    if not tables:
        return
    own = None
    try:
        if store is None:
            from orchestrator.store import default_store_url, open_store

            url = default_store_url()
            if url.startswith("sqlite:///") and not Path(url.split(":///", 1)[1]).exists():
                return
            own = store = open_store(url, migrate=False, cached=False)
        else:
            own = None
        history = []
        for i in range(0, len(tables), 500):
            history += load_signals(store, since=snapshot.taken_at - timedelta(days=45), tables=tables[i:i + 500])
    except Exception as exc:  # noqa: BLE001 - the hold is advisory; the cycle must go on
        log.debug("health: no load verdicts (%s)", exc)
        return
    finally:
        if store is not None and own is store:
            own.dispose()
    if history:
        snapshot.anomalous_loads = holds_from_verdicts(verdicts(history))
