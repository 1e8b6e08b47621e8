"""Silent failures in the simulator: a sync that succeeds with wrong data leaves the dashboard
stale (true data time) while it looks fresh; with the health sensor's detection the SLA planner
re-syncs and meets the deadline, without it nobody does."""

from __future__ import annotations

import pytest
from test_simulator_engine import tiny

from orchestrator.simulator import ScenarioError, load_scenario
from orchestrator.simulator.bench import run_benchmark

SILENT = """
silent:
  - {kind: partial_volume, targets: ["fivetran:src"], at: ["22:30"], detected: DETECTED}
"""
RESYNC_OK = """
policies:
  - name: dash
    select: [{key: dashboard/d}]
    deadline: {cron: "0 6 * * *", timezone: UTC, window: 8h}
    tier: critical
    rollout: auto
    auto_approve: [retry, materialize, resync_table]
"""


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = {}
    for detected in ("true", "false"):
        d = tmp_path_factory.mktemp(f"silent-{detected}")
        path = tiny(d, extra=SILENT.replace("DETECTED", detected))
        (d / "p.yaml").write_text(RESYNC_OK)
        out[detected] = {p: run_benchmark(path, p, 0) for p in ("sla", "cron")}
    return out


def test_detected_silent_failure_is_resynced_before_the_deadline(results):
    r = results["true"]["sla"]
    assert r.sla_attainment == 1.0 and r.unsafe_actions == 0


def test_undetected_it_breaks_the_deadline_for_every_planner(results):
    assert results["false"]["sla"].sla_attainment == 0.0
    assert results["false"]["cron"].sla_attainment == 0.0
    assert results["true"]["cron"].sla_attainment == 0.0  # cron never looks


def test_silent_spec_is_validated(tmp_path):
    path = tiny(tmp_path, extra="silent:\n  - {kind: half_rows, targets: [\"fivetran:src\"], at: [\"22:30\"]}\n")
    with pytest.raises((ScenarioError, ValueError), match="kind"):
        load_scenario(path)
