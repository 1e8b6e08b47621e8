"""Verdicts from the store into a snapshot (no Dagster imports): ``attach_holds`` fills the held
loads (``Snapshot.anomalous_loads``) and the early warning of at-risk connectors
(``Snapshot.connector_risk``, with the maintenance windows announced in the YAML file named by
``ORCHESTRATOR_MAINTENANCE_FILE``: ``windows: [{connector: fivetran:x, start: ISO, end: ISO}]``)."""

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
    try:
        snapshot.connector_risk = risks_from_signals(history, snapshot.taken_at, maintenance_windows())
    except Exception as exc:  # noqa: BLE001 - the early warning is advisory
        log.warning("health: no early warning (%s)", exc)


def maintenance_windows(path: str | None = None) -> dict[str, list[tuple]]:
    """connector -> [(start, end)] from ``ORCHESTRATOR_MAINTENANCE_FILE`` (none when unset)."""
    import os
    from datetime import datetime, timezone

    import yaml

    path = path or os.environ.get("ORCHESTRATOR_MAINTENANCE_FILE")
    if not path:
        return {}
    doc = yaml.safe_load(Path(path).read_text()) or {}
    out: dict[str, list[tuple]] = {}
    for i, w in enumerate(doc.get("windows") or []):
        try:
            a, b = (datetime.fromisoformat(str(w[k])) for k in ("start", "end"))
            conn = str(w["connector"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: windows[{i}]: needs connector, start and end (ISO times): {exc}") from None
        a, b = (t if t.tzinfo else t.replace(tzinfo=timezone.utc) for t in (a, b))
        if b <= a:
            raise ValueError(f"{path}: windows[{i}]: end {b.isoformat()} is not after start {a.isoformat()}")
        out.setdefault(conn, []).append((a, b))
    return out


def risks_from_signals(history, now, maintenance: dict | None = None) -> dict:
    """connector -> ``ConnectorRisk`` for connectors at risk or with a window ahead (the others are
    left out: nothing to pre-empt)."""
    from orchestrator.health.early import connector_risk

    by: dict[str, list] = {}
    for s in history:
        by.setdefault(s.connector, []).append(s)
    out = {}
    for conn in sorted(set(by) | set(maintenance or {})):
        r = connector_risk(by.get(conn, []), now, maintenance=(maintenance or {}).get(conn, ()), connector=conn)
        if r.at_risk or r.maintenance:
            out[conn] = r
    return out
