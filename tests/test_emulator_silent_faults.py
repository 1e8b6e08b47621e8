"""Scripted silent failures and precursors in the Fivetran emulator: syncs that succeed with zero
rows or a share of them, take longer and longer, or leave warnings -- and the health detectors
read them from what the emulator recorded."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pyarrow.parquet as pq
import pytest

from orchestrator.emulators.fivetran_engine import FivetranEmulator
from orchestrator.emulators.scenario import Scenario

UTC = timezone.utc

SCENARIO = {
    "name": "silent", "seed": 3,
    "fivetran": {
        "groups": [{"id": "g", "name": "g"}],
        "connectors": [{
            "id": "crm", "group": "g", "service": "salesforce", "schema": "crm", "schedule_type": "manual",
            "sync_duration_s": {"mean": 10},
            "tables": {"account": {"rows": 50, "rows_per_sync": 200, "columns": {
                "id": {"type": "string", "primary_key": True}, "name": {"type": "string"}}}},
        }],
    },
    "faults": [
        {"kind": "zero_rows", "target": "crm", "on_sync": 3},
        {"kind": "partial_volume", "target": "crm", "on_sync": 4, "share": 0.1},
        {"kind": "latency_creep", "target": "crm", "on_sync": 5, "factor": 3.0},
        {"kind": "sync_warning", "target": "crm", "on_sync": 5},
    ],
}


def _run(tmp_path, n):
    emu = FivetranEmulator(Scenario.model_validate(SCENARIO), tmp_path / "state", tmp_path / "landing",
                           auto_sync=False)
    t = datetime(2026, 3, 2, 8, tzinfo=UTC)
    durations = []
    for _ in range(n):
        with emu.lock:
            st = emu.connector_state("crm")
            emu._start_sync("crm", st, "incremental", None, "api", t)
            sync = st.current_sync
            end = datetime.fromisoformat(sync.ends_at.replace("Z", "+00:00"))
            durations.append((end - t).total_seconds())
            emu._finish_sync("crm", st, sync, end)
        t += timedelta(hours=1)
    return emu, durations


def test_silent_faults_succeed_with_wrong_volume_and_precursors_show(tmp_path):
    emu, durations = _run(tmp_path, 5)
    st = emu.connector_state("crm")
    assert [h.status for h in st.history] == ["SUCCESSFUL"] * 5
    rows = [h.rows.get("account") for h in st.history]
    assert rows[0] == 50 and rows[1] == 200  # history, then a normal incremental
    assert rows[2] == 0  # zero_rows: "succeeded" with nothing
    assert rows[3] == 20  # partial_volume 10%
    assert durations[4] == pytest.approx(3 * durations[3])  # latency creep
    assert any(w["code"] == "rate_limit_warning" for w in st.warnings)
    files = sorted((tmp_path / "landing" / "crm" / "account").glob("*.parquet"))
    landed = sum(pq.read_metadata(f).num_rows for f in files)
    assert landed == 50 + 200 + 20 + rows[4]  # the zero-row sync wrote no file, the partial one 20 rows


def test_silent_fault_fields_are_validated():
    bad = dict(SCENARIO, faults=[{"kind": "partial_volume", "target": "crm", "on_sync": 1, "share": 1.5}])
    with pytest.raises(Exception, match="share"):
        Scenario.model_validate(bad)


AIRBYTE = {
    "name": "silent-airbyte", "seed": 4,
    "airbyte": {
        "workspace_id": "0a1b2c3d-0000-4000-8000-00000000000a",
        "destination": {"id": "0a1b2c3d-0000-4000-8000-0000000000de", "name": "DuckDB", "type": "duckdb",
                        "database": "analytics"},
        "connections": [{
            "id": "0a1b2c3d-0000-4000-8000-0000000000c1", "name": "Product DB", "source_type": "postgres",
            "schema": "product", "sync_duration_s": {"mean": 10},
            "streams": {"users": {"rows": 50, "rows_per_sync": 200, "columns": {
                "user_id": {"type": "string", "primary_key": True}, "plan": {"type": "string"}}}},
        }],
    },
    "faults": [
        {"kind": "zero_rows", "target": "0a1b2c3d-0000-4000-8000-0000000000c1", "on_sync": 3},
        {"kind": "partial_volume", "target": "0a1b2c3d-0000-4000-8000-0000000000c1", "on_sync": 4, "share": 0.1},
        {"kind": "latency_creep", "target": "0a1b2c3d-0000-4000-8000-0000000000c1", "on_sync": 5, "factor": 3.0},
        {"kind": "sync_warning", "target": "0a1b2c3d-0000-4000-8000-0000000000c1", "on_sync": 5},
    ],
}


def test_airbyte_silent_faults_succeed_with_wrong_volume_and_precursors_show(tmp_path):
    from orchestrator.emulators.airbyte_engine import AirbyteEmulator

    cid = AIRBYTE["airbyte"]["connections"][0]["id"]
    emu = AirbyteEmulator(Scenario.model_validate(AIRBYTE), tmp_path / "state", tmp_path / "landing",
                          client_id="c", client_secret="s", auto_sync=False)
    t = datetime(2026, 3, 2, 8, tzinfo=UTC)
    jobs, durations = [], []
    for _ in range(5):
        with emu.lock:
            job = emu._create_job(cid, "sync", "api", t)
            end = datetime.fromisoformat(job.attempts[-1].ends_at.replace("Z", "+00:00"))
            durations.append((end - t).total_seconds())
            emu._advance_job(job, end)
            jobs.append(job)
        t += timedelta(hours=1)
    assert [j.status for j in jobs] == ["succeeded"] * 5  # every one "succeeds"
    rows = [j.attempts[-1].stream_stats.get("users") for j in jobs]
    assert rows[0] == 50 and rows[1] == 200
    assert rows[2] == 0 and rows[3] == 20  # zero rows, then 10% of the volume
    assert durations[4] == pytest.approx(3 * durations[3], rel=0.2)  # latency creep
    body = emu.config_job_json(jobs[4])
    logs = body["attempts"][-1]["logs"]["logLines"]
    assert any(" WARN rate_limit_warning" in line for line in logs)  # the precursor is in the log
    assert body["job"]["streamAggregatedStats"][0]["recordsCommitted"] == rows[4]
    assert emu.config_job_json(jobs[2])["job"]["aggregatedStats"]["recordsCommitted"] == 0


# -- stuck cursor: the sync succeeds and lands rows, but re-reads old ones -----------------------
def _stuck_fivetran():
    sc = {**SCENARIO, "faults": [{"kind": "stuck_cursor", "target": "crm", "on_sync": 7},
                                 {"kind": "stuck_cursor", "target": "crm", "on_sync": 8}]}
    sc["fivetran"] = {**sc["fivetran"], "connectors": [{**sc["fivetran"]["connectors"][0], "tables": {"account": {
        "rows": 50, "rows_per_sync": 200, "columns": {
            "id": {"type": "string", "primary_key": True}, "updated_at": {"type": "timestamp"}}}}}]}
    return sc


def _stuck_airbyte():
    cid = AIRBYTE["airbyte"]["connections"][0]["id"]
    sc = {**AIRBYTE, "faults": [{"kind": "stuck_cursor", "target": cid, "on_sync": 7},
                                {"kind": "stuck_cursor", "target": cid, "on_sync": 8}]}
    conn = {**AIRBYTE["airbyte"]["connections"][0], "streams": {"users": {
        "rows": 50, "rows_per_sync": 200, "columns": {
            "user_id": {"type": "string", "primary_key": True}, "last_modified": {"type": "timestamp"}}}}}
    sc["airbyte"] = {**AIRBYTE["airbyte"], "connections": [conn]}
    return sc


def _stamp_new_files(landing, seen: set, end: datetime) -> None:
    """Landed files get the simulated end of their sync as mtime (the landing reader dates loads by it)."""
    import os

    for f in landing.rglob("*.parquet"):
        if f not in seen:
            seen.add(f)
            os.utime(f, (end.timestamp(), end.timestamp()))


@pytest.mark.parametrize("system", ["fivetran", "airbyte"])
def test_stuck_cursor_succeeds_with_rows_and_the_detector_flags_it(tmp_path, system):
    from orchestrator.health.detect import TableSeries
    from orchestrator.health.landing import fill_rows
    from orchestrator.health.signals import SyncSignal

    landing, seen, t, loads = tmp_path / "landing", set(), datetime(2026, 3, 2, 8, tzinfo=UTC), []
    if system == "fivetran":
        emu = FivetranEmulator(Scenario.model_validate(_stuck_fivetran()), tmp_path / "state", landing,
                               auto_sync=False)
        table, conn = "crm/account", "fivetran:crm"
    else:
        from orchestrator.emulators.airbyte_engine import AirbyteEmulator

        emu = AirbyteEmulator(Scenario.model_validate(_stuck_airbyte()), tmp_path / "state", landing,
                              client_id="c", client_secret="s", auto_sync=False)
        cid = AIRBYTE["airbyte"]["connections"][0]["id"]
        table, conn = "product/users", f"airbyte:{cid}"
    for i in range(8):
        with emu.lock:
            if system == "fivetran":
                st = emu.connector_state("crm")
                emu._start_sync("crm", st, "incremental", None, "api", t)
                sync = st.current_sync
                end = datetime.fromisoformat(sync.ends_at.replace("Z", "+00:00"))
                emu._finish_sync("crm", st, sync, end)
                status, rows = st.history[-1].status, st.history[-1].rows.get("account")
                ok = status == "SUCCESSFUL"
            else:
                job = emu._create_job(cid, "sync", "api", t)
                end = datetime.fromisoformat(job.attempts[-1].ends_at.replace("Z", "+00:00"))
                emu._advance_job(job, end)
                ok, rows = job.status == "succeeded", job.attempts[-1].stream_stats.get("users")
        _stamp_new_files(landing, seen, end)
        assert ok  # every sync "succeeds"
        loads.append((t, end, rows))
        t += timedelta(hours=1)
    assert all(r and r > 0 for _, _, r in loads)  # the stuck loads land rows too: no zero-row alarm
    # the signals as the health sensor builds them: succeeded_at progress, rows and cursor from the landing zone
    sigs = [SyncSignal(conn, table, f"s{i}", a, b, cursor=b) for i, (a, b, _) in enumerate(loads)]
    sigs = fill_rows(sigs, landing, {})
    cursors = [s.cursor for s in sigs]
    assert all(cursors[i] > cursors[i - 1] for i in range(1, 6))  # a healthy cursor moves every load
    assert cursors[6] <= cursors[5] and cursors[7] <= cursors[5]  # re-read: it did not
    series = TableSeries(sigs)
    kinds = [[a.kind for a in series.detect(s)] for s in sigs]
    assert all("stuck_cursor" not in k for k in kinds[:6])
    for s in sigs[6:]:
        (a,) = [x for x in series.detect(s) if x.kind == "stuck_cursor"]
        assert a.severity == "ERROR" and "did not advance" in a.why


def test_stuck_cursor_is_a_silent_fault_kind():
    from orchestrator.emulators.scenario import SILENT_FAULT_KINDS

    assert "stuck_cursor" in SILENT_FAULT_KINDS
    with pytest.raises(Exception, match="on_sync or next_syncs"):
        Scenario.model_validate(dict(SCENARIO, faults=[{"kind": "stuck_cursor", "target": "crm"}]))
