"""Connector health: the thin Dagster shell around ``orchestrator.health``.

``connector_health_sensor`` (every 60 s) reads the connectors' syncs (``ConnectorReader``: the
same API calls as the other sensors), turns each completed one into per-table signals (rows from
the API when it gives them per table, attempts, warnings, ``succeeded_at`` progress, and the
HTTP 429s/retries the project's clients met while polling each sync: ``orchestrator.health.traffic``), records them in the project store (``sync_signals``, bounded retention), runs the
detectors on each table's latest load against its own seasonal history, and reports a
``load_anomalies`` check on the connector table whenever its latest load changes: passed, or
WARN/ERROR with the baseline, the observed value and why. The planning side reads the verdicts
through ``orchestrator.health.shell.attach_holds`` (an untrusted load is not fresh).
``ORCHESTRATOR_HEALTH_SENSOR=off`` leaves the sensor stopped.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

import dagster as dg

from orchestrator.core.graph import CONNECTOR_TABLE
from orchestrator.resources.airbyte import AirbyteWorkspaceResource
from orchestrator.resources.fivetran import FivetranWorkspaceResource
from . import ProjectContext
from ._checks import multi_asset_check

if TYPE_CHECKING:  # numpy (the detectors) is imported on the first tick, not at load
    from orchestrator.health.detect import LoadVerdict

UTC = timezone.utc
CHECK_NAME = "load_anomalies"
SENSOR_NAME = "connector_health_sensor"


def check_evaluation(v: LoadVerdict, sync_id: str, health=None) -> dg.AssetCheckEvaluation:
    """``health``: the connector's ``ConnectorHealth`` (its score, trend and early warning go in
    the metadata, so the connector's assets show them)."""
    errors = [a for a in v.anomalies if a.severity == "ERROR"]
    first = (errors or v.anomalies or [None])[0]
    extra = {}
    if health is not None:
        from orchestrator.health.score import summary_line

        extra = {"health_score": health.score, "health_trend": health.trend,
                 "health_p_fail": round(health.early.p_fail, 3), "health": summary_line(health)[:1000]}
    return dg.AssetCheckEvaluation(
        asset_key=dg.AssetKey.from_user_string(v.table),
        check_name=CHECK_NAME,
        passed=not v.anomalies,
        severity=dg.AssetCheckSeverity.ERROR if errors else dg.AssetCheckSeverity.WARN,
        description=("; ".join(f"{a.kind}: {a.why}" for a in v.anomalies) or "latest load within its seasonal baseline")[:2000],
        metadata={
            "sync_id": sync_id,
            "kinds": ",".join(a.kind for a in v.anomalies),
            "baseline": first.baseline if first else "",
            "observed": first.observed if first else "",
            "why": first.why if first else "",
            "untrusted": v.untrusted,
            "trusted_data_time": v.trusted_data_time.isoformat() if v.trusted_data_time else "",
            **extra,
        },
    )


def health_tick(store, syncs, state: dict, *, now: datetime, landing_dir=None
                ) -> tuple[list[dg.AssetCheckEvaluation], dict]:
    """Record the syncs' signals, judge each table's latest load, report what changed. Rows per
    table the API does not give come from the landing zone (``landing_dir``) when it is local."""
    from orchestrator.health.detect import verdicts
    from orchestrator.health.landing import fill_rows
    from orchestrator.health.signals import from_sync_record
    from orchestrator.health.store import load_signals, prune, record_signals

    signals = [sig for s in syncs if s.status != "running" for sig in from_sync_record(s)]
    if landing_dir is not None and any(s.rows is None for s in signals):
        seen = {}
        for s in load_signals(store, since=now - timedelta(days=3), tables={x.table for x in signals}):
            if s.ended_at is not None and s.sync_id not in {x.sync_id for x in signals}:
                seen[s.table] = max(seen.get(s.table, s.ended_at), s.ended_at)
        signals = fill_rows(signals, landing_dir, seen)
    if signals:
        from orchestrator.health.traffic import fivetran_attempts, merge_traffic

        # the 429s/retries the clients met polling these syncs, and Fivetran's attempts (failures
        # since the previous success, from failed_at/succeeded_at)
        signals = merge_traffic(store, signals)
        if any(s.connector.startswith("fivetran:") for s in signals):
            recent = load_signals(store, since=now - timedelta(days=7), tables={x.table for x in signals})
            signals = fivetran_attempts(signals, recent)
    record_signals(store, signals)
    if now.timestamp() - state.get("pruned", 0) > 3600:
        prune(store, now)
        state = {**state, "pruned": now.timestamp()}
    tables = sorted({s.table for s in signals})
    if not tables:
        return [], state
    history = load_signals(store, since=now - timedelta(days=45), tables=tables)
    reported: dict = dict(state.get("reported", {}))
    events = []
    latest_ids = {}
    for s in history:
        if s.succeeded:
            latest_ids[s.table] = s.sync_id
    health: dict = {}
    for table, v in sorted(verdicts(history).items()):
        sid = latest_ids.get(table, "")
        if reported.get(table) == sid:
            continue
        reported[table] = sid
        conn = next((s.connector for s in history if s.table == table), None)
        if conn is not None and conn not in health:
            from orchestrator.health.score import connector_health

            health[conn] = connector_health([s for s in history if s.connector == conn], now)
        events.append(check_evaluation(v, sid, health.get(conn)))
    return events, {**state, "reported": reported}


def build_health_sensor(ctx: ProjectContext, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                        minimum_interval_seconds: int = 60) -> dg.SensorDefinition:
    off = os.environ.get("ORCHESTRATOR_HEALTH_SENSOR", "").lower() == "off"

    @dg.sensor(name=SENSOR_NAME, minimum_interval_seconds=minimum_interval_seconds,
               default_status=dg.DefaultSensorStatus.STOPPED if off else dg.DefaultSensorStatus.RUNNING,
               description="Connector health: per-sync signals, load anomalies (load_anomalies checks).")
    def connector_health_sensor(context: dg.SensorEvaluationContext, fivetran: FivetranWorkspaceResource,
                                airbyte: AirbyteWorkspaceResource):
        from orchestrator.resources.errors import api_deadline, sensor_api_deadline_s
        from orchestrator.snapshot import ConnectorReader
        from orchestrator.store import open_store

        now = clock()
        state = json.loads(context.cursor) if context.cursor else {}
        reader = ConnectorReader(fivetran=fivetran, airbyte=airbyte, read_warnings=True)
        with api_deadline(sensor_api_deadline_s()):
            syncs = reader.syncs(ctx.graph, now - timedelta(days=2))
        if reader.errors:
            context.log.warning("connector state unavailable: %s", "; ".join(reader.errors))
        from orchestrator.settings import get_settings

        events, new_state = health_tick(open_store(), syncs, state, now=now,
                                        landing_dir=get_settings().landing_dir)
        if not events:
            return dg.SensorResult(cursor=json.dumps(new_state), skip_reason="no new loads")
        return dg.SensorResult(asset_events=events, cursor=json.dumps(new_state))

    return connector_health_sensor


def build_anomaly_checks(ctx: ProjectContext):
    known = {k.to_user_string() for k in ctx.asset_specs} if ctx.asset_specs else set(ctx.graph.keys)
    keys = sorted(n.key for n in ctx.graph if n.role == CONNECTOR_TABLE and n.connector and n.key in known)
    if not keys:
        return []
    specs = [dg.AssetCheckSpec(CHECK_NAME, asset=dg.AssetKey.from_user_string(k),
                               description="The latest load against the table's own seasonal baseline: zero "
                                           "rows, drops/spikes, stuck cursor, duration creep, warning/429 rates.")
             for k in keys]

    @multi_asset_check(specs=specs, can_subset=True, name="load_anomaly_checks")
    def load_anomaly_checks(context):
        from orchestrator.health.detect import verdicts
        from orchestrator.health.store import load_signals
        from orchestrator.store import open_store

        wanted = sorted(k.asset_key.to_user_string() for k in context.selected_asset_check_keys)
        # every table of the same connectors: a sync is also judged on its tables together
        conns = {n.connector for n in map(ctx.graph.get, wanted) if n is not None and n.connector}
        peers = {k for k in keys if ctx.graph.get(k).connector in conns}
        history = load_signals(open_store(), since=datetime.now(UTC) - timedelta(days=45),
                               tables=sorted(set(wanted) | peers))
        vs = verdicts(history)
        for key in wanted:
            v = vs.get(key)
            if v is None:
                yield dg.AssetCheckResult(asset_key=dg.AssetKey.from_user_string(key), check_name=CHECK_NAME,
                                          passed=True, description="no loads recorded yet",
                                          metadata={"sync_id": ""})
                continue
            sid = next((s.sync_id for s in reversed(history) if s.table == key and s.succeeded), "")
            conn = next((s.connector for s in history if s.table == key), None)
            h = None
            if conn is not None:
                from orchestrator.health.score import connector_health

                h = connector_health([s for s in history if s.connector == conn], datetime.now(UTC))
            ev = check_evaluation(v, sid, h)
            yield dg.AssetCheckResult(asset_key=ev.asset_key, check_name=CHECK_NAME, passed=ev.passed,
                                      severity=ev.severity, description=ev.description, metadata=ev.metadata)

    return [load_anomaly_checks]


def definitions(ctx: ProjectContext) -> dg.Definitions:
    return dg.Definitions(asset_checks=build_anomaly_checks(ctx), sensors=[build_health_sensor(ctx)])
