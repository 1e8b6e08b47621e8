"""The Dagster shell of connector health: a sensor tick records signals from the connectors'
syncs, reports load_anomalies checks (WARN/ERROR with baseline, observed, why) once per new load,
and the planning snapshot holds the untrusted load."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import dagster as dg
import numpy as np

from orchestrator.core.graph import CONNECTOR_TABLE, DBT_MODEL, AssetGraph, AssetNode
from orchestrator.core.records import Snapshot, SyncRecord
from orchestrator.health.shell import attach_holds
from orchestrator.health.store import record_signals
from orchestrator.health.synth import ConnectorProfile, SilentFault, TableProfile, generate
from orchestrator.store import open_store
from sensors import ProjectContext
from sensors.health import CHECK_NAME, build_anomaly_checks, build_health_sensor, health_tick

UTC = timezone.utc
START = datetime(2026, 1, 5, tzinfo=UTC)
NOW = START + timedelta(days=30, hours=9, minutes=30)


def _history(fault: bool):
    t = TableProfile(base=8000, sigma=0.15, weekend=0.5, amplitude=0.4, peak_hour=12, month_end=1.0)
    p = ConnectorProfile("fivetran:crm", {"crm/account": t}, interval_min=120, offset_min=2, jitter_min=2,
                         duration_s=240, duration_sigma=0.1, warning_rate=0.0, rate_limit_rate=0.0)
    faults = [SilentFault("zero_rows", "fivetran:crm", NOW - timedelta(hours=2, minutes=10), loads=2)] if fault else []
    return generate(p, START, NOW - timedelta(minutes=20), np.random.default_rng(4), faults).signals


def _syncs(signals):
    return [SyncRecord(connector=s.connector, sync_id=s.sync_id, status="succeeded", started_at=s.started_at,
                       ended_at=s.ended_at, rows=s.rows, tables=(s.table,)) for s in signals]


def test_a_tick_reports_the_zero_row_load_once_and_the_planner_holds_it(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'o.db'}", cached=False)
    sigs = _history(fault=True)
    record_signals(store, sigs[:-15])  # earlier ticks recorded the history
    events, state = health_tick(store, _syncs(sigs[-15:]), {}, now=NOW)
    (ev,) = events
    assert ev.asset_key == dg.AssetKey(["crm", "account"]) and ev.check_name == CHECK_NAME
    assert not ev.passed and ev.severity == dg.AssetCheckSeverity.ERROR
    md = {k: v.value if hasattr(v, "value") else v for k, v in ev.metadata.items()}
    assert md["kinds"] == "zero_rows" and md["observed"] == "0 rows" and "rows (median of" in md["baseline"]
    assert md["untrusted"] is True and md["trusted_data_time"]
    # the connector's health is on its asset too: the latest load is untrusted, the score drops
    assert md["health_score"] < 100 and md["health"].startswith("fivetran:crm: health ")
    assert "volume" in md["health"] and "zero_rows" in md["health"]
    # the same loads again: nothing new to report
    again, _ = health_tick(store, _syncs(sigs[-15:]), state, now=NOW)
    assert again == []
    g = AssetGraph([AssetNode("crm/account", CONNECTOR_TABLE, connector="fivetran:crm"),
                    AssetNode("stg_account", DBT_MODEL, upstream=("crm/account",))])
    snap = Snapshot(taken_at=NOW, graph=g)
    attach_holds(snap, store)
    trusted, why = snap.anomalous_loads["crm/account"]
    assert "zero_rows" in why and trusted < sigs[-1].started_at
    store.dispose()


def test_a_normal_load_passes(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'o.db'}", cached=False)
    sigs = _history(fault=False)
    record_signals(store, sigs[:-5])
    (ev,) = health_tick(store, _syncs(sigs[-5:]), {}, now=NOW)[0]
    assert ev.passed, ev.description
    store.dispose()


def test_checks_are_declared_on_connector_tables_only():
    g = AssetGraph([AssetNode("crm/account", CONNECTOR_TABLE, connector="fivetran:crm"),
                    AssetNode("stg_account", DBT_MODEL, upstream=("crm/account",))])
    ctx = ProjectContext(graph=g, resolution=None)
    (checks,) = build_anomaly_checks(ctx)
    assert {k.asset_key.to_user_string() for k in checks.check_keys} == {"crm/account"}
    assert build_health_sensor(ctx).name == "connector_health_sensor"


def test_rows_per_table_come_from_the_landing_zone(tmp_path):
    import os

    import pyarrow as pa
    import pyarrow.parquet as pq

    from orchestrator.health.landing import fill_rows
    from orchestrator.health.signals import SyncSignal

    folder = tmp_path / "crm" / "account"
    folder.mkdir(parents=True)
    t1, t2 = NOW - timedelta(hours=2), NOW - timedelta(hours=1)
    for name, n, t in (("a", 120, t1), ("b", 30, t2)):
        pq.write_table(pa.table({"id": list(range(n))}), folder / f"{name}.parquet")
        os.utime(folder / f"{name}.parquet", (t.timestamp(), t.timestamp()))
    sigs = [SyncSignal("fivetran:crm", "crm/account", s, t - timedelta(minutes=5), t)
            for s, t in (("s1", t1), ("s2", t2), ("s3", NOW))]
    got = fill_rows(sigs, tmp_path, {})
    assert [s.rows for s in got] == [120, 30, 0]  # the third sync landed nothing: 0 rows
    other = SyncSignal("fivetran:crm", "crm/contact", "s1", t1, t1)
    assert fill_rows([other], tmp_path, {})[0].rows is None  # never landed here: unknown


def test_fivetran_status_warnings_become_the_sync_signal_warnings(monkeypatch):
    """Fivetran's connector status lists its current warnings (a sync_warning precursor in the
    emulator); the reader carries their count on the successful sync, the signal keeps it, so the
    warning-rate detector and the early warning see them."""
    from orchestrator.health.signals import from_sync_record
    from orchestrator.snapshot import ConnectorReader

    conn = {"id": "crm", "schedule_type": "auto", "succeeded_at": "2026-03-02T08:00:00Z",
            "status": {"sync_state": "scheduled", "setup_state": "connected",
                       "warnings": [{"code": "rate_limit_warning", "message": "Warning", "details": "slowed"},
                                    {"code": "sync_failed", "message": "Sync Failed", "details": "old"}]}}

    class Client:
        def get_groups(self):
            return {"items": [{"id": "g"}]}

        def list_connectors_for_group(self, gid):
            return [conn]

    monkeypatch.setattr(ConnectorReader, "_client", staticmethod(lambda resource: Client()))
    (sync,) = ConnectorReader(fivetran=object(), airbyte=None).fivetran_syncs({"fivetran:crm": ["crm/account"]})
    assert sync.status == "succeeded" and sync.warnings == 1  # the failure note is not a precursor
    (sig,) = from_sync_record(sync)
    assert sig.warnings == 1 and sig.table == "crm/account"


def test_airbyte_warn_log_lines_become_the_sync_signal_warnings(tmp_path):
    """The Airbyte emulator logs a ``sync_warning`` precursor as a WARN line of the attempt (the
    public API has no warnings); the reader (health sensor mode) reads the succeeded job's logs
    through the config API ``jobs/get`` once, counts the WARN lines onto the SyncRecord, and the
    signal and the warning-rate detector see them. Other readers do not fetch logs."""
    from orchestrator.emulators.airbyte_engine import AirbyteEmulator
    from orchestrator.emulators.scenario import Scenario
    from orchestrator.health.signals import from_sync_record
    from orchestrator.snapshot import ConnectorReader

    cid = "0a1b2c3d-0000-4000-8000-0000000000c1"
    scenario = {
        "name": "warn", "seed": 4,
        "airbyte": {"workspace_id": "0a1b2c3d-0000-4000-8000-00000000000a",
                    "destination": {"id": "0a1b2c3d-0000-4000-8000-0000000000de", "name": "DuckDB",
                                    "type": "duckdb", "database": "analytics"},
                    "connections": [{"id": cid, "name": "Product DB", "source_type": "postgres", "schema": "product",
                                     "sync_duration_s": {"mean": 10},
                                     "streams": {"users": {"rows": 5, "rows_per_sync": 5, "columns": {
                                         "user_id": {"type": "string", "primary_key": True}}}}}]},
        "faults": [{"kind": "sync_warning", "target": cid, "on_sync": 2},
                   {"kind": "sync_warning", "target": cid, "on_sync": 3, "code": "backoff_warning"},
                   {"kind": "sync_warning", "target": cid, "on_sync": 3}],
    }
    emu = AirbyteEmulator(Scenario.model_validate(scenario), tmp_path / "state", tmp_path / "landing",
                          client_id="c", client_secret="s", auto_sync=False)
    t, jobs = datetime(2026, 3, 2, 8, tzinfo=UTC), []
    for _ in range(3):
        with emu.lock:
            job = emu._create_job(cid, "sync", "api", t)
            emu._advance_job(job, datetime.fromisoformat(job.attempts[-1].ends_at.replace("Z", "+00:00")))
            jobs.append(job)
        t += timedelta(hours=1)
    calls = []

    class Client:
        workspace_id = "w"
        rest_api_base_url = "http://emu/api/public/v1"
        configuration_api_base_url = f"http://emu-{tmp_path.name}/api/v1"

        def _paginated_request(self, method, url, params):
            return [emu.public_job_json(j) for j in jobs]

        def _single_request(self, method, url, data):
            if url.endswith("/connections"):
                return {"data": []}
            calls.append(data["id"])
            body = emu.config_job_json(next(j for j in jobs if j.id == data["id"]))
            if data["id"] == jobs[2].id:  # a first attempt that failed and was retried (no WARN lines)
                body["attempts"] = [{"attempt": {"id": -1, "status": "failed"},
                                     "logs": {"logLines": ["2026-03-02T10:00:00Z ERROR source timed out"]}}
                                    ] + body["attempts"]
            return body

    client = Client()
    tables = {f"airbyte:{cid}": ["product/users"]}

    def read(**kw):
        r = ConnectorReader(fivetran=None, airbyte=object(), **kw)
        r._client = lambda resource: client
        orig = client._paginated_request
        client._paginated_request = lambda method, url, params: (
            [] if url.endswith("/connections") else orig(method, url, params))
        try:
            return r.airbyte_syncs(tables, datetime(2026, 3, 1, tzinfo=UTC)), r.errors
        finally:
            client._paginated_request = orig

    plain, _ = read()
    assert [s.warnings for s in plain] == [0, 0, 0] and calls == []  # only the health sensor reads logs
    syncs, errors = read(read_warnings=True)
    assert errors == [] and [s.status for s in syncs] == ["succeeded"] * 3
    assert [s.warnings for s in syncs] == [0, 1, 2]  # one WARN line per warning, per job
    assert [s.attempts for s in syncs] == [1, 1, 2]  # the retried job's attempts come along
    assert sorted(calls) == sorted(j.id for j in jobs)
    (sig,) = from_sync_record(syncs[2])
    assert sig.warnings == 2 and sig.attempts == 2 and sig.table == "product/users"
    again, _ = read(read_warnings=True)  # a finished job's logs are read once
    assert [(s.warnings, s.attempts) for s in again] == [(0, 1), (1, 1), (2, 2)] and len(calls) == 3
