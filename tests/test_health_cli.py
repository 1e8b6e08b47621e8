"""`orchestrator health`: scores explained by components, trends, anomalies and early warning,
from signals recorded in the project store (text and --json)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from click.testing import CliRunner

from orchestrator.cli import cli
from orchestrator.health.score import connector_health
from orchestrator.health.signals import SyncSignal
from orchestrator.health.store import record_signals
from orchestrator.health.synth import ConnectorProfile, SilentFault, TableProfile, generate
from orchestrator.store import open_store

UTC = timezone.utc
START = datetime(2026, 1, 5, tzinfo=UTC)
NOW = START + timedelta(days=50, hours=10)


def _profile(name, interval=60):
    t = TableProfile(base=3000, sigma=0.15, weekend=0.4, amplitude=0.5, peak_hour=13, month_end=1.0)
    return ConnectorProfile(name, {f"{name.split(':')[1]}/orders": t}, interval_min=interval, offset_min=3,
                            jitter_min=2, duration_s=600, duration_sigma=0.08, warning_rate=0.02,
                            rate_limit_rate=0.05)


@pytest.fixture(scope="module")
def worlds():
    good = generate(_profile("fivetran:good"), START, NOW, np.random.default_rng(1)).signals
    faults = [SilentFault("zero_rows", "airbyte:bad", NOW - timedelta(hours=1, minutes=30), loads=5),
              SilentFault("latency_creep", "airbyte:bad", NOW - timedelta(hours=14), loads=20, factor=1.1),
              SilentFault("rate_limits", "airbyte:bad", NOW - timedelta(hours=14), loads=20, factor=8)]
    bad = generate(_profile("airbyte:bad"), START, NOW, np.random.default_rng(2), faults).signals
    # and a few failed syncs in the last days
    bad = [replace(s, status="failed", rows=None) if i % 9 == 0 and s.started_at > NOW - timedelta(days=3) else s
           for i, s in enumerate(bad)]
    return good, bad


def test_a_degrading_connector_scores_lower_and_says_why(worlds):
    good, bad = worlds
    hg, hb = connector_health(good, NOW), connector_health(bad, NOW)
    assert hg.score >= 90 and hb.score < hg.score - 15
    comp = {c.name: c for c in hb.components}
    assert comp["reliability"].points < 35 and "syncs succeeded" in comp["reliability"].detail
    assert comp["latency"].points < comp["latency"].max_points
    assert {a.kind for a in hb.anomalies} >= {"zero_rows", "duration_creep"}
    assert hb.trend == "degrading" and hb.score_7d < hb.score_30d
    assert hb.early.p_fail > 2 * hg.early.p_fail and hb.early.why
    assert hb.early.p_overrun > hg.early.p_overrun


def test_health_command_text_and_json(tmp_path):
    # a lighter world (a sync every 3 h) keeps the store round trip quick
    start = NOW - timedelta(days=45)
    good = generate(_profile("fivetran:good", 180), start, NOW, np.random.default_rng(1)).signals
    faults = [SilentFault("zero_rows", "airbyte:bad", NOW - timedelta(hours=4), loads=3),
              SilentFault("latency_creep", "airbyte:bad", NOW - timedelta(days=2), loads=20, factor=1.2)]
    bad = generate(_profile("airbyte:bad", 180), start, NOW, np.random.default_rng(2), faults).signals
    url = f"sqlite:///{tmp_path / 'o.db'}"
    store = open_store(url, cached=False)
    record_signals(store, good + bad)
    store.dispose()
    runner = CliRunner()
    res = runner.invoke(cli, ["health", "--store", url, "--now", NOW.isoformat()])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0].split()[:4] == ["connector", "score", "7d", "30d"]
    assert lines[1].startswith("airbyte:bad")  # worst first
    assert "zero_rows on bad/orders" in res.output and "reliability" in res.output
    res = runner.invoke(cli, ["health", "--json", "--store", url, "--now", NOW.isoformat()])
    doc = json.loads(res.output)
    first = doc["connectors"][0]
    assert first["connector"] == "airbyte:bad" and 0 <= first["score"] <= 100
    assert sum(c["points"] for c in first["components"]) == pytest.approx(first["score"], abs=1)
    assert first["trend"]["direction"] == "degrading"
    assert {"p_fail", "p_overrun", "why"} <= set(first["early_warning"])
    assert any(a["kind"] == "zero_rows" and a["untrusted"] for a in first["anomalies"])
    res = runner.invoke(cli, ["health", "--store", url, "--now", "yesterday"])
    assert res.exit_code != 0 and "not an ISO time" in res.output


def test_no_signals_says_so(tmp_path):
    res = CliRunner().invoke(cli, ["health", "--store", f"sqlite:///{tmp_path / 'e.db'}"])
    assert res.exit_code == 0 and "no sync signals recorded yet" in res.output


def test_signal_of_a_failed_sync_counts_against_reliability():
    s = [SyncSignal("fivetran:x", "x/t", f"s{i}", NOW - timedelta(hours=i), NOW - timedelta(hours=i) + timedelta(minutes=5),
                    "failed" if i < 2 else "succeeded", None if i < 2 else 100) for i in range(10)]
    h = connector_health(s, NOW)
    rel = next(c for c in h.components if c.name == "reliability")
    assert rel.detail == "8/10 syncs succeeded" and rel.points == pytest.approx(28.0)


def test_the_digest_tells_the_owners_of_an_unhealthy_connector_and_not_of_a_healthy_one(worlds, tmp_path):
    from orchestrator.core.graph import CONNECTOR_TABLE, AssetGraph, AssetNode
    from orchestrator.core.records import Snapshot
    from orchestrator.digest.content import build_digest
    from orchestrator.digest.render import render_markdown, render_text

    good, bad = worlds
    store = open_store(f"sqlite:///{tmp_path / 'd.db'}", cached=False)
    cut = NOW - timedelta(days=40)
    record_signals(store, [s for s in good + bad if s.started_at >= cut])
    g = AssetGraph([AssetNode("good/orders", CONNECTOR_TABLE, connector="fivetran:good", owners=("team:sales",)),
                    AssetNode("bad/orders", CONNECTOR_TABLE, connector="airbyte:bad", owners=("team:product",))])
    d = build_digest(store, Snapshot(taken_at=NOW, graph=g), None, None, now=NOW)
    by = {s.owner: s for s in d.owners}
    assert "team:sales" not in by  # nothing to say about a healthy connector
    (line,) = by["team:product"].connector_health
    assert line.startswith("airbyte:bad: health ") and "degrading" in line and "zero_rows" in line
    text = render_text(d, by["team:product"])
    assert "CONNECTOR HEALTH" in text and "airbyte:bad: health" in text
    assert "**Connector health**" in render_markdown(d)
    store.dispose()
