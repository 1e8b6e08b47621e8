"""The sample policies in policies/ against a graph shaped like the sandbox project's, and the
Dagster attributes compiled from them."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from orchestrator.core.graph import AssetGraph, AssetNode
from orchestrator.policies.model import ActionType, Rollout, Tier, load_policies
from orchestrator.policies.resolve import resolve

ROOT = Path(__file__).resolve().parents[1]
POLICIES = ROOT / "policies"
UTC = timezone.utc

FIVETRAN = {"salesforce": ["account", "user", "contact", "opportunity"],
            "stripe": ["plan", "customer", "subscription", "invoice"],
            "zendesk": ["ticket", "organization"]}
AIRBYTE = {"product": ["users", "events"], "hubspot": ["campaigns", "email_events"],
           "google_ads": ["ad_group_ad_report"]}
EDGES = {
    "int_campaign_attribution": ["stg_hubspot__email_events", "stg_salesforce__contacts", "stg_salesforce__opportunities"],
    "int_account_product_usage": ["stg_product__users", "stg_product__events"],
    "fct_revenue_daily": ["stg_stripe__invoices"],
    "fct_product_events_daily": ["stg_product__events", "stg_product__users"],
    "stg_zendesk__tickets": ["zendesk/ticket"],
    "fct_support_tickets": ["int_ticket_sla", "stg_salesforce__accounts"],
    "fct_pipeline": ["stg_salesforce__opportunities", "stg_salesforce__accounts", "stg_salesforce__users"],
    "fct_product_usage_daily": ["stg_product__events", "stg_product__users"],
    "dim_accounts": ["int_account_360"],
    "int_account_360": ["stg_salesforce__accounts", "stg_salesforce__users", "stg_stripe__customers",
                        "int_subscriptions_enriched", "stg_stripe__invoices", "int_ticket_sla",
                        "stg_salesforce__opportunities", "int_account_product_usage"],
    "int_ticket_sla": ["stg_zendesk__tickets", "stg_zendesk__organizations"],
    "stg_zendesk__organizations": ["zendesk/organization"],
    "stg_stripe__subscriptions": ["stripe/subscription"],
    "stg_stripe__invoices": ["stripe/invoice"],
    "fct_mrr": ["int_mrr_by_customer_month"],
    "int_mrr_by_customer_month": ["int_subscriptions_enriched"],
    "int_subscriptions_enriched": ["stg_stripe__subscriptions", "stg_stripe__plans", "stg_stripe__customers"],
    "stg_stripe__plans": ["stripe/plan"],
    "stg_stripe__customers": ["stripe/customer"],
    "stg_product__users": ["product/users"],
    "stg_product__events": ["product/events"],
    "stg_salesforce__contacts": ["salesforce/contact"],
    "stg_salesforce__opportunities": ["salesforce/opportunity"],
    "stg_salesforce__accounts": ["salesforce/account"],
    "stg_salesforce__users": ["salesforce/user"],
    "fct_marketing_performance": ["stg_hubspot__campaigns", "stg_google_ads__ad_group_ad_report",
                                  "stg_hubspot__email_events", "int_campaign_attribution"],
    "stg_google_ads__ad_group_ad_report": ["google_ads/ad_group_ad_report"],
    "stg_hubspot__email_events": ["hubspot/email_events"],
    "stg_hubspot__campaigns": ["hubspot/campaigns"],
    "dashboard/product_engagement": ["fct_product_events_daily", "fct_product_usage_daily"],
    "dashboard/marketing_performance": ["fct_marketing_performance"],
    "dashboard/support_health": ["fct_support_tickets", "dim_accounts"],
    "dashboard/executive_revenue": ["fct_mrr", "fct_revenue_daily", "dim_accounts"],
    "dashboard/sales_pipeline": ["fct_pipeline", "dim_accounts"],
}
MART_OWNERS = {"fct_pipeline": "revops@example.com", "fct_revenue_daily": "finance-data@example.com",
               "fct_mrr": "finance-data@example.com", "fct_support_tickets": "support-ops@example.com",
               "fct_marketing_performance": "marketing-ops@example.com",
               "fct_product_usage_daily": "product-analytics@example.com",
               "fct_product_events_daily": "product-analytics@example.com",
               "dim_accounts": "revops@example.com"}
DASH_OWNERS = {"executive_revenue": "finance-data@example.com", "sales_pipeline": "revops@example.com",
               "support_health": "support-ops@example.com",
               "product_engagement": "product-analytics@example.com",
               "marketing_performance": "marketing-ops@example.com"}


def sandbox_graph() -> AssetGraph:
    """Shaped like the Dagster project's graph (assets/*.py): connector tables in
    fivetran_<schema>/airbyte_<schema> groups, dbt models in dbt_<layer>, dashboards."""
    nodes = []
    for tool, schemas in (("fivetran", FIVETRAN), ("airbyte", AIRBYTE)):
        for schema, tables in schemas.items():
            for table in tables:
                nodes.append(AssetNode(
                    key=f"{schema}/{table}", role="connector_table", kinds=frozenset({tool}),
                    group=f"{tool}_{schema}", owners=("team:data-platform",),
                    tags={"ingestion": tool}, connector=f"{tool}:{schema}"))
    for key, ups in EDGES.items():
        if key.startswith("dashboard/"):
            name = key.split("/", 1)[1]
            nodes.append(AssetNode(key=key, role="dashboard", upstream=tuple(ups),
                                   kinds=frozenset({"dashboard", "metabase"}), group="dashboards",
                                   owners=(DASH_OWNERS[name],), tags={"dbt_exposure": name}))
            continue
        layer = "staging" if key.startswith("stg_") else "intermediate" if key.startswith("int_") else "marts"
        nodes.append(AssetNode(
            key=key, role="dbt_model", upstream=tuple(ups), kinds=frozenset({"dbt", "duckdb"}),
            group=f"dbt_{layer}", owners=(MART_OWNERS.get(key, "team:analytics-engineering"),),
            tags={"partitioned_daily": ""} if key == "fct_product_events_daily" else {},
            partitioning="daily" if key == "fct_product_events_daily" else None))
    return AssetGraph(nodes)


NOW = datetime(2025, 6, 2, 13, 0, tzinfo=UTC)  # a Monday, after the 07:30 CDT pipeline deadline


@pytest.fixture(scope="module")
def resolution():
    return resolve(load_policies([POLICIES]), sandbox_graph(), now=NOW)


def test_sample_policies_validate_and_use_every_feature(resolution):
    assert resolution.ok, [str(e) for e in resolution.errors]
    policies = resolution.policy_set.policies
    sels = [s for p in policies for s in (*p.select, *p.exclude)]
    used = {f for s in sels for f in ("key", "group", "kind", "tag", "owner", "exposure", "role", "upstream_of")
            if getattr(s, f) is not None}
    assert used == {"key", "group", "kind", "tag", "owner", "exposure", "role", "upstream_of"}
    assert any(s.key and "*" in s.key for s in sels) and any(p.exclude for p in policies)
    assert {p.tier for p in policies} == set(Tier)
    assert {p.rollout for p in policies} == set(Rollout)
    deadlines = [p.deadline for p in policies if p.deadline]
    assert any(d.calendar and d.calendar.holidays and d.calendar.holidays.market for d in deadlines)
    assert any(d.calendar and d.calendar.extra_holidays and d.calendar.extra_business_days for d in deadlines)
    assert any(d.window for d in deadlines)
    assert any(p.max_lag for p in policies)
    assert any(p.budget and p.budget.per_day and p.budget.per_month for p in policies)
    assert any(p.windows.off_peak for p in policies) and any(p.windows.blackout for p in policies)
    assert any(p.priority for p in policies) and any(p.auto_approve for p in policies)


def test_revenue_deadline_reaches_the_stripe_connector(resolution):
    sla = resolution.sla("stripe/invoice")
    # the most urgent deadline among executive_revenue (06:00 NY), sales (07:30 Chicago), ...
    assert sla.deadline.policy == "executive-revenue"
    assert sla.tier is Tier.critical  # feeds a critical dashboard
    # operational settings from its own (connector) policy, not the dashboard's
    assert sla.primary_policy == "connectors-default"
    assert sla.owners == ("team:data-platform",)
    assert sla.may_run_without_approval(ActionType.retry)
    assert not sla.may_run_without_approval(ActionType.resync_table)
    chain = [link.key for link in resolution.chain("stripe/invoice")]
    assert chain[0] == "stripe/invoice" and chain[-1] == "dashboard/executive_revenue"
    # Tuesday 06:00 EDT = 10:00 UTC (Monday's 06:00 has passed at NOW)
    assert sla.deadline.target_deadline == datetime(2025, 6, 3, 10, 0, tzinfo=UTC)
    assert sla.deadline.at < sla.deadline.target_deadline


def test_salesforce_policy_priority_beats_connector_default(resolution):
    sla = resolution.sla("salesforce/account")
    assert sla.policies[0] == "salesforce-sync"
    assert sla.may_run_without_approval("resync_table")
    # blackout windows of every direct policy apply: Salesforce maintenance and warehouse maintenance
    reasons = {w.reason for w in sla.blackout}
    assert reasons == {"Salesforce maintenance", "warehouse maintenance"}
    # Saturday 23:00 Los Angeles is inside the Salesforce maintenance window
    assert sla.blackout_at(datetime(2025, 6, 8, 6, 0, tzinfo=UTC)) is not None  # Sat 23:00 PDT
    assert sla.blackout_at(datetime(2025, 6, 4, 6, 0, tzinfo=UTC)) is None


def test_exclude_keeps_finance_staging_out_of_staging_defaults(resolution):
    assert "staging-models" not in resolution.sla("stg_stripe__invoices").policies
    assert "staging-models" in resolution.sla("stg_hubspot__campaigns").policies


def test_shadow_policy_never_runs_without_approval(resolution):
    sla = resolution.sla("dashboard/marketing_performance")
    assert sla.rollout is Rollout.shadow and not sla.may_run_without_approval("retry")


def test_dagster_specs_carry_sla_and_freshness_policy(resolution):
    import dagster as dg

    from orchestrator.dagster_policies import apply_sla_to_specs, policy_status_metadata

    graph = sandbox_graph()
    specs = [dg.AssetSpec(key=dg.AssetKey(n.key.split("/")), deps=[dg.AssetKey(u.split("/")) for u in n.upstream])
             for n in graph]
    out = {s.key.to_user_string(): s for s in apply_sla_to_specs(specs, resolution)}
    defs = dg.Definitions(assets=list(out.values()), metadata=policy_status_metadata(resolution))
    repo = defs.resolve_asset_graph()
    node = repo.get(dg.AssetKey(["dashboard", "executive_revenue"]))
    assert node.tags["sla/tier"] == "critical"
    assert node.tags["sla/policy"] == "executive-revenue"
    assert node.tags["sla/deadline"] == "06h00"
    assert node.owners == ["finance-data@example.com"]
    fp = out["dashboard/executive_revenue"].freshness_policy
    assert isinstance(fp, dg.FreshnessPolicy)
    assert fp.deadline_cron == "0 6 * * 1,2,3,4,5" and fp.timezone == "America/New_York"
    # upstream: the cron is shifted earlier by the predicted path duration
    up = out["stripe/invoice"]
    lead = resolution.sla("stripe/invoice").deadline.lead
    local = (datetime(2025, 6, 3, 6, 0) - lead)
    assert up.freshness_policy.deadline_cron.startswith(f"{local.minute} {local.hour} ")
    assert up.metadata["sla/deadline_policy"] == "executive-revenue"
    assert "team:data-platform" in up.owners
    # max_lag only -> a time-window policy
    assert out["dashboard/support_health"].freshness_policy.fail_window.to_timedelta() == timedelta(hours=2)
    # an ungoverned asset is untouched
    assert all(v.freshness_policy is None for k, v in out.items() if k not in resolution.slas)


def test_invalid_policies_leave_specs_untouched(tmp_path):
    import dagster as dg

    from orchestrator.dagster_policies import apply_sla_to_specs, load_resolution, policy_status_metadata

    (tmp_path / "bad.yaml").write_text("policies:\n  - name: x\n    select: [{exposure: executive_revenu}]\n")
    res = load_resolution(sandbox_graph(), [tmp_path])
    assert not res.ok
    assert "bad.yaml:3" in res.skip_reason and "did you mean 'executive_revenue'" in res.skip_reason
    spec = dg.AssetSpec("dashboard/executive_revenue")
    assert apply_sla_to_specs([spec], res) == [spec]
    assert policy_status_metadata(res)["sla_policies/status"].startswith("invalid")
