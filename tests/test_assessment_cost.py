"""Cost assessment: budgets per policy and group, burn-rate forecasts, spikes."""

from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.assessment import CostRates, assess_cost
from orchestrator.core.graph import AssetGraph, AssetNode
from orchestrator.core.records import CostRecord, Snapshot
from orchestrator.policies import DurationModel, load_policies, resolve

POLICY = """
policies:
  - name: exec
    select: [{key: "dashboard/exec"}]
    deadline: {cron: "0 6 * * *", timezone: UTC}
    budget: {per_day: 10, per_month: 200}
  - name: credits
    select: [{key: "other"}]
    max_lag: 1d
    budget: {per_day: 2, unit: credits}
"""
NOW = datetime(2026, 3, 10, 12, tzinfo=UTC)  # half the day, 9 days + 12 h of a 31-day month


@pytest.fixture
def env(tmp_path):
    (tmp_path / "p.yaml").write_text(POLICY)
    graph = AssetGraph([
        AssetNode("src/t1", role="connector_table", connector="fivetran:c", group="sources"),
        AssetNode("src/t2", role="connector_table", connector="fivetran:c", group="sources"),
        AssetNode("mart", role="dbt_model", upstream=("src/t1", "src/t2"), group="marts"),
        AssetNode("dashboard/exec", role="dashboard", upstream=("mart",), group="dashboards"),
        AssetNode("other", role="dbt_model", group="marts"),
    ])
    res = resolve(load_policies([tmp_path]), graph, DurationModel(), NOW)
    assert res.ok
    return graph, res


def by_scope(out):
    return {c.scope: c for c in out}


def test_spend_per_policy_and_group_and_forecast(env):
    graph, res = env
    costs = [
        CostRecord(NOW - timedelta(hours=2), 3.0, "run", asset_key="mart"),
        CostRecord(NOW - timedelta(hours=1), 2.0, "sync", connector="fivetran:c"),  # split over 2 tables
        CostRecord(NOW - timedelta(days=3), 4.0, "run", asset_key="mart"),
        CostRecord(NOW - timedelta(hours=1), 1.0, "warehouse"),  # unattributed: total only
    ]
    out = by_scope(assess_cost(Snapshot(NOW, graph, costs=costs), res, CostRates(), NOW))
    exec_ = out["policy:exec"]
    assert exec_.spent_today_usd == pytest.approx(5.0)
    assert exec_.spent_month_usd == pytest.approx(9.0)
    assert exec_.forecast_day_usd == pytest.approx(10.0)  # 5 in 12 h -> 10 by midnight
    month_elapsed = 9.5 * 86400
    assert exec_.forecast_month_usd == pytest.approx(9 + 9 / month_elapsed * (31 * 86400 - month_elapsed))
    assert exec_.budget_day_usd == 10 and exec_.budget_month_usd == 200
    assert not exec_.over_budget
    assert out["group:sources"].spent_today_usd == pytest.approx(2.0)
    assert out["group:marts"].spent_today_usd == pytest.approx(3.0)
    assert out["total"].spent_today_usd == pytest.approx(6.0)
    # credits budgets converted with the credit price; shown even without spend
    assert out["policy:credits"].budget_day_usd == pytest.approx(2 * 3.0)
    assert out["policy:credits"].spent_today_usd == 0


def test_over_budget_sorted_first(env):
    graph, res = env
    costs = [CostRecord(NOW - timedelta(hours=1), 6.0, "run", asset_key="dashboard/exec")]
    out = assess_cost(Snapshot(NOW, graph, costs=costs), res, CostRates(), NOW)
    assert out[0].scope == "policy:exec" and out[0].over_budget
    assert "over budget" in out[0].reason


def test_spike_against_baseline(env):
    graph, res = env
    history = [CostRecord(NOW - timedelta(days=d), 1.0, "run", asset_key="mart") for d in range(1, 8)]
    calm = assess_cost(Snapshot(NOW, graph, costs=history + [
        CostRecord(NOW - timedelta(hours=1), 0.5, "run", asset_key="mart")]), res, CostRates(), NOW)
    assert not by_scope(calm)["group:marts"].spike
    assert by_scope(calm)["group:marts"].baseline_day_usd == pytest.approx(1.0)
    hot = assess_cost(Snapshot(NOW, graph, costs=history + [
        CostRecord(NOW - timedelta(hours=1), 3.0, "run", asset_key="mart")]), res, CostRates(), NOW)
    marts = by_scope(hot)["group:marts"]
    assert marts.spike and "spike" in marts.reason
    # early in the day the raw spend (not the extrapolation) decides
    early = NOW.replace(hour=0, minute=20)
    e = by_scope(assess_cost(Snapshot(early, graph, costs=[
        CostRecord(early - timedelta(days=d), 1.0, "run", asset_key="mart") for d in range(1, 8)
    ] + [CostRecord(early - timedelta(minutes=5), 0.5, "run", asset_key="mart")]), res, CostRates(), early))
    assert not e["group:marts"].spike
