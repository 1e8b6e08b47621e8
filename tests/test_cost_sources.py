"""Cost sources on recorded result rows: Snowflake, BigQuery, dbt run_results, embedded runs/syncs."""

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from orchestrator.assessment import CostRates
from orchestrator.core.records import RunRecord, RunStatus, SyncRecord
from orchestrator.cost import (
    BigQueryCostSource,
    CombinedCostSource,
    CostSource,
    EmbeddedCostSource,
    SnowflakeCostSource,
)

DATA = Path(__file__).parent / "data"
SINCE, UNTIL = datetime(2026, 3, 10, tzinfo=UTC), datetime(2026, 3, 11, tzinfo=UTC)


def load(path):
    return json.loads((DATA / path).read_text())


def test_snowflake_sql_and_parsing():
    calls = []

    def query(sql, params):
        calls.append((sql, params))
        if "warehouse_metering_history" in sql:
            return load("cost_snowflake/warehouse_metering_history.json")
        return load("cost_snowflake/query_attribution_history.json")

    src = SnowflakeCostSource(query, usd_per_credit=3.0, warehouses=["TRANSFORMING", "LOADING"])
    assert isinstance(src, CostSource)
    recs = src.costs(SINCE, UNTIL)
    assert "snowflake.account_usage.warehouse_metering_history" in calls[0][0]
    assert "query_attribution_history" in calls[1][0]
    assert "warehouse_name in (%(wh0)s, %(wh1)s)" in calls[0][0]
    assert calls[0][1]["since"] == SINCE and calls[0][1]["wh1"] == "LOADING"

    by_key = {r.asset_key: r for r in recs if r.source == "query"}
    assert by_key["fct_revenue_daily"].amount_usd == pytest.approx(0.6 * 3)
    assert by_key["stg_stripe__invoices"].amount_usd == pytest.approx(0.3 * 3)  # + query acceleration
    assert None in by_key  # the untagged analyst query
    # no double counting: all records sum to the metered credits
    metered = sum(r["CREDITS_USED"] for r in load("cost_snowflake/warehouse_metering_history.json"))
    assert sum(r.amount_usd for r in recs) == pytest.approx(metered * 3)
    idle = [r for r in recs if r.source == "warehouse" and r.detail["warehouse"] == "TRANSFORMING"]
    assert idle[0].amount_usd == pytest.approx((1.35 - 0.9) * 3)
    assert idle[0].at == datetime(2026, 3, 10, 6, tzinfo=UTC)


def test_bigquery_on_demand_and_editions():
    rows = load("cost_bigquery/jobs.json")
    seen = {}

    def query(sql, params):
        seen["sql"], seen["params"] = sql, params
        return rows

    src = BigQueryCostSource(query, project="proj", region="us")
    recs = src.costs(SINCE, UNTIL)
    assert "`proj`.`region-us`.INFORMATION_SCHEMA.JOBS" in seen["sql"]
    assert seen["params"] == {"since": SINCE, "until": UNTIL}
    assert [r.asset_key for r in recs] == ["fct_revenue_daily", "stg_stripe__invoices", None]
    assert recs[0].amount_usd == pytest.approx(6.25)  # 1 TiB billed
    assert recs[1].amount_usd == pytest.approx(6.25 / 4)
    assert recs[2].amount_usd == 0  # cache hit
    ent = BigQueryCostSource(query, project="proj", pricing="enterprise").costs(SINCE, UNTIL)
    assert ent[0].amount_usd == pytest.approx(2 * 0.06)  # 7.2e6 slot-ms = 2 slot-hours
    with pytest.raises(ValueError):
        BigQueryCostSource(query, pricing="gold")


def test_embedded_runs_syncs_and_dbt_run_results():
    t = lambda h, m=0: datetime(2026, 3, 10, h, m, tzinfo=UTC)  # noqa: E731
    runs = [
        RunRecord("r1", RunStatus.success, ("a", "b"), created_at=t(5), started_at=t(5), ended_at=t(6)),
        RunRecord("r2", RunStatus.queued, ("c",), created_at=t(5)),  # never started: no cost
    ]
    syncs = [SyncRecord("fivetran:x", "s1", "succeeded", started_at=t(4), ended_at=t(4, 30))]
    rates = CostRates(run_usd_per_hour=1.0, sync_usd_per_hour={"fivetran": 2.0}, dbt_usd_per_hour=4.0)
    src = EmbeddedCostSource(runs, lambda: syncs, [DATA / "cost_dbt/run_results.json"], rates)
    recs = src.costs(SINCE, UNTIL)
    run_recs = [r for r in recs if r.source == "run"]
    assert {r.asset_key for r in run_recs} == {"a", "b"}
    assert sum(r.amount_usd for r in run_recs) == pytest.approx(1.0)
    sync = next(r for r in recs if r.source == "sync")
    assert sync.connector == "fivetran:x" and sync.amount_usd == pytest.approx(1.0)
    dbt = {r.asset_key: r for r in recs if r.detail.get("origin") == "dbt_run_results"}
    assert dbt["fct_revenue_daily"].amount_usd == pytest.approx(540 / 3600 * 4)
    assert dbt["fct_revenue_daily"].at == datetime(2026, 3, 10, 5, 29, 1, tzinfo=UTC)
    assert dbt["stg_stripe__invoices"].compute_s == 180
    combined = CombinedCostSource([src, EmbeddedCostSource(runs=runs, rates=rates)])
    assert len(combined.costs(SINCE, UNTIL)) == len(recs) + 2
