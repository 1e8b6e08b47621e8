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
