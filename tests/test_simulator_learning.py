"""The learning loop on the project simulator (``orchestrator/simulator/learning.py``): the real
engine and sla planner, one simulated day at a time, the failure memory kept between days. A
failure whose wording the classifier is unsure about waits for a person the first day; the person's
approval becomes a memory case and the next day the same failure resolves by itself."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator.simulator.learning import DayIncident, LearningReport, run_learning
from orchestrator.simulator.scenario import load_scenario

# the learning-30d fleet over a short evening: one uncertain wording on the web database
SHORT = """
name: learning-short
description: test
start: 2026-03-02T22:00:00Z
horizon: 3h
policies: [{policies}]
sensor_tick: 5m
graph:
  connectors:
    - {{id: "airbyte:web", source: postgres_web, tables: [web/events], schedule: "30 */1 * * *", rows_per_hour: 400000}}
  assets:
    - {{key: stg_events, upstream: [web/events]}}
    - {{key: fct_sessions, upstream: [stg_events]}}
    - {{key: dashboard/web_traffic, role: dashboard, upstream: [fct_sessions]}}
durations:
  connector: {{median: 6m, sigma: 0.2}}
  model: {{median: 3m, sigma: 0.2}}
capacity: {{warehouse_slots: 2, per_source: 1}}
faults:
  - {{name: web-mysql-gone, category: source_unavailable, targets: ["airbyte:web"], at: ["22:25"], lasts: 20m,
     message: "Source MySQL not reachable"}}
approvals: {{delay: 30m}}
"""


POLICIES = """
policies:
  - name: web-traffic
    select: [{key: dashboard/web_traffic}]
    deadline: {cron: "0 7 * * *", timezone: UTC, window: 10h}
    tier: standard
    owners: [team:growth]
    rollout: auto
    auto_approve: [retry, materialize, resync_table]
  - name: platform
    select: [{role: connector_table}]
    tier: standard
    owners: [team:data-platform]
    rollout: auto
    auto_approve: [retry, resync_table]
"""


@pytest.fixture(scope="module")
def short(tmp_path_factory):
    d = tmp_path_factory.mktemp("learn")
    (d / "short.policies.yaml").write_text(POLICIES)
    p = d / "learning-short.yaml"
    p.write_text(SHORT.format(policies="short.policies.yaml"))
    return load_scenario(p)


@pytest.fixture(scope="module")
def two_days(short):
    return run_learning(short, days=2, seed=0)


def test_an_approved_resolution_lets_the_next_occurrence_resolve_itself(two_days):
    r = two_days
    by_day = {d: [i for i in r.incidents if i.day == d and i.fault == "web-mysql-gone"] for d in range(2)}
    assert all(by_day.values()), "the fault fails the web sync every day"
    # day 1: the classifier alone is unsure (confidence ~0.3): a person approves the retry
    assert not any(i.auto for i in by_day[0]) and r.approvals[0] >= 1
    # the approval is a labelled memory case; from then on the same wording runs by itself
    assert r.memory_cases[0] >= 1
    assert all(i.auto for i in by_day[1])
    assert r.total_unsafe == 0
    w = r.weekly()[0]
    assert w["recurring"] == sum(len(v) for v in by_day.values()) and 0 < w["share"] < 1


def test_without_the_memory_carried_over_every_day_waits_for_a_person(short):
    # the control: the second day's world on a fresh memory (the same seed as day 2 above) waits
    second_alone = run_learning(short, days=1, seed=0, first_day=1)
    assert second_alone.incidents and not any(i.auto for i in second_alone.incidents)


def test_weekly_shares_count_recurring_faults_only_and_blocks_of_seven_days():
    r = LearningReport("x", 0, 10, approvals=[0] * 10, unsafe=[0] * 9 + [1], applied=[0] * 10,
                       memory_cases=list(range(10)))
    r.incidents = [DayIncident(d, "rec", "rate_limit", True, d >= 3, False) for d in range(10)]
    r.incidents.append(DayIncident(4, "once", "auth_expired", False, False, True))  # occurs once: not recurring
    weeks = r.weekly()
    assert [w["days"] for w in weeks] == [[1, 7], [8, 10]]
    assert weeks[0]["recurring"] == 7 and weeks[0]["auto_resolved"] == 4 and weeks[0]["share"] == pytest.approx(4 / 7, abs=1e-3)
    assert weeks[1]["share"] == 1.0 and weeks[1]["unsafe"] == 1 and r.total_unsafe == 1
    j = r.as_json()
    assert j["first_week_share"] == pytest.approx(0.5714) and j["last_week_share"] == 1.0
    assert "first week 57% -> last week 100%" in r.format()


def test_bench_cli_runs_the_learning_scenario(short, monkeypatch):
    from orchestrator.cli import cli

    runner = CliRunner()
    res = runner.invoke(cli, ["bench", "--scenario", str(short.file), "--planner", "sla", "--quiet", "--json"])
    assert res.exit_code == 0, res.output  # an ordinary scenario: the one-day report
    assert "auto_resolved_share" in json.loads(res.output.strip().splitlines()[-1])
    shipped = load_scenario("learning-30d")
    assert shipped.name == "learning-30d" and Path(shipped.file).name == "learning-30d.yaml"
    renamed = dataclasses.replace(short, spec=short.spec.model_copy(update={"name": "learning-30d"}), _worlds={})
    monkeypatch.setattr("orchestrator.simulator.cli.load_scenario", lambda _n: renamed)
    res = runner.invoke(cli, ["bench", "--scenario", "learning-30d", "--planner", "sla", "--days", "2", "--quiet",
                              "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output.strip().splitlines()[-1])
    assert out["days"] == 2 and out["unsafe_actions"] == 0 and len(out["weekly_auto_resolved_share"]) == 1
    res = runner.invoke(cli, ["bench", "--scenario", "learning-30d", "--planner", "cron", "--days", "1", "--quiet"])
    assert res.exit_code != 0 and "sla planner" in res.output
