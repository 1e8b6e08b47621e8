"""Schema-change suite: 22 scripted changes across two dbt projects, end to end.

For each project (this repo's dbt_project on the default sandbox scenario, and
tests/projects/shop on its own scenario): the emulators land a baseline, the project is compiled
(its lineage built from the compiled SQL), schema changes are injected through the emulators'
control API and synced; then, from the landed Parquet alone, every change must be detected as
scripted and its impact (models, columns, exposures, broken models) must be exactly the expected
set. The breaking renames and type changes of round A are answered by one patch per project,
verified by `dbt compile` + `dbt build` of the affected models and their tests on the new data in
a scratch DuckDB; removals (round B) are injected after that, since no patch answers them.
The figures go to artifacts/schema_changes/report.json.

dbt runs are slow on the shared machine: 3 dbt invocations per project, all cases batched.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from orchestrator.schema_changes import detect, impact, lineage, patch
from schema_change_world import connectors, inject, resync, start_world, sync

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts" / "schema_changes"
MAIN_SCENARIO = ROOT / "orchestrator" / "emulators" / "scenarios" / "default.yaml"
SHOP = Path(__file__).parent / "projects" / "shop"


@dataclass
class Case:
    name: str
    target: str
    table: str  # source table (= landed schema/table)
    fault: dict
    kind: str
    new_column: str | None = None
    breaking: bool = True
    models: set = field(default_factory=set)
    columns: set = field(default_factory=set)  # "model.column"
    exposures: set = field(default_factory=set)
    broken: set = field(default_factory=set)
    api: str = "fivetran"


def _rename(target, table, column, to, **kw):
    return Case(f"rename {table}.{column}", target, table, {"change": "rename_column", "column": column,
                                                            "to_column": to}, "renamed", to, **kw)


def _retype(target, table, column, to_type, **kw):
    return Case(f"retype {table}.{column}", target, table, {"change": "change_type", "column": column,
                                                            "to_type": to_type}, "type_changed", **kw)


def _drop(target, table, column, **kw):
    return Case(f"drop {table}.{column}", target, table, {"change": "drop_column", "column": column}, "removed", **kw)


def _add(target, table, column, spec, **kw):
    return Case(f"add {table}.{column}", target, table, {"change": "add_column", "column": column,
                                                         "column_spec": spec}, "added", breaking=False, **kw)


S = "bright_till"
ORDERS_DOWN = {"int_orders_enriched", "fct_daily_sales", "dim_customers"}
SHOP_A = [
    _rename(S, "shop.orders", "amount", "amount_total",
            models={"stg_shop__orders", "int_orders_enriched", "fct_daily_sales", "dim_customers"},
            columns={"stg_shop__orders.amount", "stg_shop__orders.amount_cents", "int_orders_enriched.amount",
                     "int_orders_enriched.amount_cents", "fct_daily_sales.revenue", "dim_customers.lifetime_value"},
            exposures={"sales_dashboard", "customer_dashboard"}, broken={"stg_shop__orders"}),
    _rename(S, "shop.orders", "channel", "sales_channel",
            models={"stg_shop__orders", "int_orders_enriched", "fct_daily_sales"},
            columns={"stg_shop__orders.channel", "int_orders_enriched.channel", "fct_daily_sales.channel"},
            exposures={"sales_dashboard", "customer_dashboard"}, broken={"stg_shop__orders"}),
    _retype(S, "shop.orders", "discount", "string",
            models={"stg_shop__orders", "int_orders_enriched", "fct_daily_sales"},
            columns={"stg_shop__orders.discount_cents", "int_orders_enriched.discount_cents",
                     "fct_daily_sales.discount_cents"},
            exposures={"sales_dashboard", "customer_dashboard"}, broken={"stg_shop__orders"}),
    _retype(S, "shop.orders", "ordered_at", "string",
            models={"stg_shop__orders", "int_orders_enriched", "fct_daily_sales"},
            columns={"stg_shop__orders.ordered_at", "int_orders_enriched.ordered_at", "fct_daily_sales.sale_date"},
            exposures={"sales_dashboard", "customer_dashboard"}, broken={"stg_shop__orders"}),
    _add(S, "shop.orders", "gift_message", {"type": "string"}),
    _rename(S, "shop.customers", "email", "email_address",
            models={"stg_shop__customers", "dim_customers"},
            columns={"stg_shop__customers.email", "dim_customers.email"},
            exposures={"sales_dashboard", "customer_dashboard"}, broken={"stg_shop__customers"}),
    # passed through unchanged into the dashboard's table: nothing fails
    _retype(S, "shop.customers", "signed_up_at", "string", breaking=False,
            models={"stg_shop__customers", "dim_customers"},
            columns={"stg_shop__customers.signed_up_at", "dim_customers.signed_up_at"},
            exposures={"customer_dashboard"}),
    _retype(S, "shop.customers", "country", "integer", breaking=False,
            models={"stg_shop__customers", "int_orders_enriched", "dim_customers"},
            columns={"stg_shop__customers.country", "int_orders_enriched.country", "dim_customers.country"},
            exposures={"customer_dashboard"}),
    # stg_shop__refunds is `select *`: it passes the rename along; fct_refunds names `amount`
    _rename(S, "shop.refunds", "amount", "refund_amount_cents",
            models={"stg_shop__refunds", "fct_refunds"},
            columns={"stg_shop__refunds.amount", "fct_refunds.refund_amount"},
            exposures={"sales_dashboard"}, broken={"fct_refunds"}),
]
SHOP_B = [
    _drop(S, "shop.customers", "segment", models={"stg_shop__customers", "int_orders_enriched"},
          columns={"stg_shop__customers.segment", "int_orders_enriched.segment"},
          exposures={"sales_dashboard", "customer_dashboard"}, broken={"stg_shop__customers"}),
    # read only in a filter downstream (fct_daily_sales: where status <> 'cancelled')
    _drop(S, "shop.orders", "status", models={"stg_shop__orders", "int_orders_enriched", "fct_daily_sales"},
          columns={"stg_shop__orders.status", "int_orders_enriched.status"},
          exposures={"sales_dashboard", "customer_dashboard"}, broken={"stg_shop__orders"}),
    _drop(S, "shop.refunds", "refunded_at", models={"stg_shop__refunds", "fct_refunds"},
          columns={"stg_shop__refunds.refunded_at", "fct_refunds.refunded_at"},
          exposures={"sales_dashboard"}, broken={"fct_refunds"}),
]

SF, STRIPE, ZD = "crimson_notebook", "dapper_ledger", "quiet_harbor"
PRODUCT, HUBSPOT = "1f0c6a2e-8d4b-4e7a-9c31-0b5d7e8f9a12", "7a3d9e15-4c2b-4f8e-b6a0-2e1c9d8f7b34"


def _main_cases():
    a = [
        _rename(STRIPE, "stripe.invoice", "amount_due", "amount_due_total"),
        _retype(STRIPE, "stripe.invoice", "amount_paid", "string"),
        _rename(SF, "salesforce.opportunity", "stage_name", "stage"),
        _add(SF, "salesforce.account", "region", {"type": "string", "values": ["EMEA", "AMER"]}),
        _rename(ZD, "zendesk.ticket", "priority", "ticket_priority"),
        _retype(ZD, "zendesk.ticket", "subject", "integer"),
        _rename(PRODUCT, "product.users", "plan", "plan_tier", api="airbyte"),
    ]
    b = [
        _drop(SF, "salesforce.account", "industry"),
        _drop(HUBSPOT, "hubspot.campaigns", "channel", api="airbyte"),
        _drop(ZD, "zendesk.organization", "name"),
    ]
    for case in a + b:
        expected = MAIN_EXPECTED.get(case.name)
        if expected:
            for key, value in expected.items():
                setattr(case, key, value)
    return a, b


MAIN_EXPECTED: dict[str, dict] = {
    # read off the project's SQL (grep the column through staging -> marts -> exposures)
    'rename stripe.invoice.amount_due': {"breaking": True, "models": {'dim_accounts', 'fct_revenue_daily', 'stg_stripe__invoices', 'int_account_360'},
        "columns": {'stg_stripe__invoices.amount_due', 'fct_revenue_daily.amount_written_off', 'dim_accounts.open_receivables', 'fct_revenue_daily.amount_outstanding', 'int_account_360.open_receivables', 'fct_revenue_daily.amount_invoiced', 'dim_accounts.health_score', 'stg_stripe__invoices.amount_due_cents'},
        "exposures": {'executive_revenue', 'support_health', 'sales_pipeline'}, "broken": {'stg_stripe__invoices'}},
    'retype stripe.invoice.amount_paid': {"breaking": True, "models": {'dim_accounts', 'fct_revenue_daily', 'stg_stripe__invoices', 'int_account_360'},
        "columns": {'stg_stripe__invoices.amount_paid', 'fct_revenue_daily.amount_collected_mtd', 'dim_accounts.lifecycle_stage', 'dim_accounts.open_receivables', 'fct_revenue_daily.amount_outstanding', 'int_account_360.open_receivables', 'int_account_360.lifetime_revenue', 'stg_stripe__invoices.amount_paid_cents', 'fct_revenue_daily.amount_collected', 'dim_accounts.health_score', 'dim_accounts.lifetime_revenue'},
        "exposures": {'executive_revenue', 'support_health', 'sales_pipeline'}, "broken": {'stg_stripe__invoices'}},
    'rename salesforce.opportunity.stage_name': {"breaking": True, "models": {'int_account_360', 'dim_accounts', 'fct_pipeline', 'int_campaign_attribution', 'stg_salesforce__opportunities'},
        "columns": {'int_account_360.open_opportunities', 'dim_accounts.open_pipeline_amount', 'int_account_360.open_pipeline_amount', 'dim_accounts.lifecycle_stage', 'dim_accounts.open_opportunities', 'stg_salesforce__opportunities.stage_name', 'fct_pipeline.is_past_due', 'int_account_360.won_amount', 'fct_pipeline.is_won', 'stg_salesforce__opportunities.is_won', 'stg_salesforce__opportunities.is_closed', 'fct_pipeline.stage_name', 'dim_accounts.won_amount', 'fct_pipeline.is_closed'},
        "exposures": {'executive_revenue', 'support_health', 'sales_pipeline', 'marketing_performance'}, "broken": {'stg_salesforce__opportunities'}},
    'add salesforce.account.region': {"breaking": False, "models": set(),
        "columns": set(),
        "exposures": set(), "broken": set()},
    'rename zendesk.ticket.priority': {"breaking": True, "models": {'int_account_360', 'int_ticket_sla', 'dim_accounts', 'stg_zendesk__tickets', 'fct_support_tickets'},
        "columns": {'int_ticket_sla.sla_status', 'fct_support_tickets.sla_target_hours', 'int_ticket_sla.priority', 'fct_support_tickets.priority', 'stg_zendesk__tickets.priority', 'int_ticket_sla.sla_target_hours', 'fct_support_tickets.sla_status', 'int_account_360.sla_breaches', 'dim_accounts.health_score', 'fct_support_tickets.is_sla_breached', 'dim_accounts.sla_breaches'},
        "exposures": {'executive_revenue', 'support_health', 'sales_pipeline'}, "broken": {'stg_zendesk__tickets'}},
    'retype zendesk.ticket.subject': {"breaking": False, "models": {'fct_support_tickets', 'int_ticket_sla', 'stg_zendesk__tickets'},
        "columns": {'fct_support_tickets.subject', 'int_ticket_sla.subject', 'stg_zendesk__tickets.subject'},
        "exposures": {'support_health'}, "broken": set()},
    'rename product.users.plan': {"breaking": True, "models": {'stg_product__users'},
        "columns": {'stg_product__users.plan'},
        "exposures": {'executive_revenue', 'support_health', 'sales_pipeline', 'product_engagement'}, "broken": {'stg_product__users'}},
    'drop salesforce.account.industry': {"breaking": True, "models": {'int_account_360', 'dim_accounts', 'fct_pipeline', 'fct_support_tickets', 'stg_salesforce__accounts'},
        "columns": {'dim_accounts.industry', 'int_account_360.industry', 'fct_pipeline.industry', 'stg_salesforce__accounts.industry', 'fct_support_tickets.industry'},
        "exposures": {'executive_revenue', 'support_health', 'sales_pipeline'}, "broken": {'stg_salesforce__accounts'}},
    'drop hubspot.campaigns.channel': {"breaking": True, "models": {'stg_hubspot__campaigns', 'fct_marketing_performance'},
        "columns": {'fct_marketing_performance.channel', 'stg_hubspot__campaigns.channel'},
        "exposures": {'marketing_performance'}, "broken": {'stg_hubspot__campaigns'}},
    'drop zendesk.organization.name': {"breaking": True, "models": {'stg_zendesk__organizations'},
        "columns": {'stg_zendesk__organizations.organization_name'},
        "exposures": {'executive_revenue', 'support_health', 'sales_pipeline'}, "broken": {'stg_zendesk__organizations'}},
}


def _impacts_for(world, cases):
    """Detects every landed table of the project against its manifest; the impact of each case."""
    manifest, lin, landing = world["manifest"], world["lineage"], world["landing"]
    expected = detect.expected_from_manifest(manifest)
    diffs = {}
    for (source, table), schema in expected.items():
        relation = next(s for s in manifest["sources"].values() if s["source_name"] == source and s["name"] == table)
        folder = landing / relation["schema"] / (relation.get("identifier") or table)
        delivered = detect.delivered_from_parquet(folder, source, table)
        if delivered is not None:
            diffs[f"{source}.{table}"] = detect.diff(schema, delivered)
    results = []
    for case in cases:
        diff = diffs[case.table]
        change = next((c for c in diff.changes if c.column == case.fault["column"] and c.kind == case.kind), None)
        found = None if change is None else impact.analyze(detect.TableDiff(diff.source, diff.table, [change]), lin)[0]
        results.append((case, change, found, diff))
    return diffs, results


def _check(case, change, found):
    """Exactness of one case: detection and the four impact sets; the differences, if any."""
    problems = []
    if change is None:
        return [f"{case.name}: not detected as {case.kind}"]
    if case.new_column and change.new_column != case.new_column:
        problems.append(f"{case.name}: paired with {change.new_column}, not {case.new_column}")
    got = {"breaking": found.breaking, "models": found.models,
           "columns": {f"{m}.{c}" for m, c in found.columns}, "exposures": found.exposures,
           "broken": found.broken_models}
    want = {"breaking": case.breaking, "models": case.models, "columns": case.columns,
            "exposures": case.exposures, "broken": case.broken}
    for key in want:
        if got[key] != want[key]:
            problems.append(f"{case.name}: {key} {sorted(got[key]) if isinstance(got[key], set) else got[key]} "
                            f"!= expected {sorted(want[key]) if isinstance(want[key], set) else want[key]}")
    return problems


def _run_project(name, project_dir, scenario, round_a, round_b, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"schema-{name}")
    fivetran_ids, airbyte_ids = connectors(scenario)
    timings = {}
    handle = start_world(scenario, root)
    try:
        t = time.monotonic()
        sync(handle, fivetran_ids, airbyte_ids)
        timings["baseline_sync_s"] = time.monotonic() - t
        t = time.monotonic()
        manifest = patch.compile_manifest(project_dir, handle.landing_dir)
        timings["dbt_compile_s"] = time.monotonic() - t
        t = time.monotonic()
        lin = lineage.build_lineage(manifest)
        timings["lineage_s"] = time.monotonic() - t
        world = {"manifest": manifest, "lineage": lin, "landing": handle.landing_dir}
        baseline, _ = _impacts_for(world, [])

        def run_round(cases):
            touched = set()
            for case in cases:
                inject(handle, {"kind": "schema_change", "target": case.target, "next_syncs": 1,
                                "table": case.table.split(".")[1], **case.fault}, api=case.api)
                touched.add((case.api, case.target))
            sync(handle, sorted(t for a, t in touched if a == "fivetran"),
                 sorted(t for a, t in touched if a == "airbyte"))
            t0 = time.monotonic()
            out = _impacts_for(world, cases)
            timings.setdefault("detect_and_impact_s", 0.0)
            timings["detect_and_impact_s"] += time.monotonic() - t0
            return out

        _, results_a = run_round(round_a)
        # The connector re-lands the changed tables (a table resync, as the schema-change handling
        # does for drift), so the history is under the new schema too: the patch is verified there.
        t = time.monotonic()
        fivetran_tables, airbyte_streams = {}, {}
        for case in round_a:
            schema, table = case.table.split(".")
            if case.api == "fivetran":
                fivetran_tables.setdefault(case.target, {}).setdefault(schema, []).append(table)
            else:
                airbyte_streams.setdefault(case.target, []).append(table)
        resync(handle, {c: {s: sorted(set(t)) for s, t in v.items()} for c, v in fivetran_tables.items()},
               {c: sorted(set(v)) for c, v in airbyte_streams.items()})
        timings["resync_s"] = time.monotonic() - t
        impacts_a = [found for case, change, found, _ in results_a if found is not None]
        t = time.monotonic()
        the_patch = patch.build_patch(project_dir, manifest, impacts_a)
        timings["patch_build_s"] = time.monotonic() - t
        t = time.monotonic()
        verification = patch.verify(project_dir, the_patch, handle.landing_dir)
        timings["verify_s"] = time.monotonic() - t
        _, results_b = run_round(round_b)
    finally:
        handle.stop()
    return {"baseline": baseline, "results": results_a + results_b, "patch": the_patch, "landing": handle.landing_dir,
            "verification": verification, "timings": timings, "lineage": lin, "manifest": manifest}


def _patch_outcomes(run):
    """Per breaking rename/type change: did the patch touch its readers and do they build and test?"""
    outcomes = {}
    verification, lin = run["verification"], run["lineage"]
    for case, change, found, _ in run["results"]:
        if found is None or not found.breaking or case.kind not in ("renamed", "type_changed"):
            continue
        readers = {lin.names[uid] for uid in found.direct_readers}
        patched = readers <= run["patch"].models
        built = all(verification.passed(model) for model in readers | found.blocked_models)
        outcomes[case.name] = patched and built
    return outcomes


@pytest.fixture(scope="module")
def shop_run(tmp_path_factory):
    return _run_project("shop", SHOP, SHOP / "scenario.yaml", SHOP_A, SHOP_B, tmp_path_factory)


@pytest.fixture(scope="module")
def main_run(tmp_path_factory):
    a, b = _main_cases()
    return _run_project("main", ROOT / "dbt_project", MAIN_SCENARIO, a, b, tmp_path_factory)


def _write_report(name, run):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    outcomes = _patch_outcomes(run)
    problems = [p for case, change, found, _ in run["results"] for p in _check(case, change, found)]
    report = {
        "project": name, "cases": len(run["results"]),
        "impact_exact": sum(1 for c, ch, f, _ in run["results"] if not _check(c, ch, f)),
        "problems": problems,
        "patches": {"breaking_renames_and_type_changes": len(outcomes), "build_and_test_pass": sum(outcomes.values()),
                    "per_case": outcomes, "verification": run["verification"].as_dict() | {"log_tail": ""},
                    "diff": run["patch"].diff(), "unanswered": run["patch"].unanswered},
        "timings_s": {k: round(v, 2) for k, v in run["timings"].items()},
        "summaries": [f.summary() for _, _, f, _ in run["results"] if f is not None],
    }
    (ARTIFACTS / f"report-{name}.json").write_text(json.dumps(report, indent=2, default=str))
    return report


@pytest.mark.slow
def test_shop_project_impact_exact_and_patches_build(shop_run):
    assert all(not d for d in shop_run["baseline"].values()), {k: d.changes for k, d in shop_run["baseline"].items() if d}
    report = _write_report("shop", shop_run)
    assert report["problems"] == []
    assert report["impact_exact"] == len(SHOP_A) + len(SHOP_B)
    patches = report["patches"]
    assert patches["breaking_renames_and_type_changes"] == 6
    assert patches["build_and_test_pass"] / patches["breaking_renames_and_type_changes"] >= 0.9, patches
    assert "--- a/models/staging/stg_shop__orders.sql" in patches["diff"]
    assert shop_run["verification"].ok and shop_run["verification"].compile_ok


@pytest.mark.slow
def test_main_project_impact_exact_and_patches_build(main_run):
    assert all(not d for d in main_run["baseline"].values()), {k: d.changes for k, d in main_run["baseline"].items() if d}
    report = _write_report("main", main_run)
    for case, change, found, _ in main_run["results"]:
        print(case.name, found.as_dict() if found else None)
    assert report["problems"] == []
    assert report["impact_exact"] == report["cases"] == 10
    patches = report["patches"]
    assert patches["breaking_renames_and_type_changes"] == 5
    assert main_run["verification"].ok, patches["verification"]["nodes"]
    assert patches["build_and_test_pass"] / max(1, patches["breaking_renames_and_type_changes"]) >= 0.9, patches


def _shop_context():
    from orchestrator.core.graph import CONNECTOR_TABLE, DASHBOARD, DBT_MODEL, AssetGraph, AssetNode
    from sensors import ProjectContext

    nodes = [AssetNode(f"shop/{t}", CONNECTOR_TABLE, connector="fivetran:bright_till") for t in ("orders", "customers", "refunds")]
    nodes += [AssetNode(m, DBT_MODEL, owners=("sales-ops@example.com",)) for m in
              ("stg_shop__orders", "stg_shop__customers", "stg_shop__refunds", "int_orders_enriched",
               "fct_daily_sales", "fct_refunds")]
    nodes += [AssetNode("dim_customers", DBT_MODEL, owners=("crm@example.com",)),
              AssetNode("dashboard/sales_dashboard", DASHBOARD)]
    return ProjectContext(graph=AssetGraph(nodes), resolution=None)


@pytest.mark.slow
def test_sensor_reports_breaking_changes_on_the_source_asset_in_its_first_tick(shop_run, tmp_path):
    import dagster as dg

    from orchestrator.digest.content import build_digest
    from orchestrator.digest.render import render_markdown
    from orchestrator.store import open_store
    from sensors.schema_changes import CHECK_NAME, JOB_NAME, schema_tick

    store = open_store(f"sqlite:///{tmp_path / 'store.db'}", cached=False)
    ctx = _shop_context()
    started = time.monotonic()
    reports, events, runs, state = schema_tick(
        ctx, {}, manifest=shop_run["manifest"], landing_dir=shop_run["landing"], cache_dir=tmp_path,
        project_dir=SHOP, lineage=lambda: shop_run["lineage"], store=store)
    tick_s = time.monotonic() - started
    by_key = {e.asset_key.to_user_string(): e for e in events}
    assert set(by_key) == {"shop/orders", "shop/customers", "shop/refunds"}
    orders = by_key["shop/orders"]
    assert orders.check_name == CHECK_NAME and not orders.passed
    assert orders.severity == dg.AssetCheckSeverity.ERROR
    assert "renames shop.orders.amount to amount_total: breaks 1 model, blocks 3, 2 dashboards" in orders.description
    assert "removes shop.orders.status" in orders.metadata["schema/summary"].value
    table = orders.metadata["schema/changes"].value
    assert "| renames shop.orders.amount to amount_total | yes | stg_shop__orders | 3 |" in table and "| patch |" in table
    assert "| adds shop.orders.gift_message (string) | no | - | 0 | - | none |" in table
    # breaking renames/type changes: a patch run per table; removals alone go to a person
    assert sorted(r.tags["orchestrator/schema_table"] for r in runs) == ["shop/customers", "shop/orders", "shop/refunds"]
    assert all(r.job_name == JOB_NAME for r in runs)
    events_recorded = store.audit_events(kind="schema_change.detected")
    assert {e["subject"] for e in events_recorded} == {"shop/orders", "shop/customers", "shop/refunds"}
    refunds = next(e for e in events_recorded if e["subject"] == "shop/refunds")["payload"]
    assert refunds["owners"] == ["sales-ops@example.com"] and refunds["breaking"]
    # the next tick with the same files reports nothing again
    _, again, runs_again, _ = schema_tick(ctx, state, manifest=shop_run["manifest"], landing_dir=shop_run["landing"],
                                          cache_dir=tmp_path, project_dir=SHOP, lineage=lambda: shop_run["lineage"],
                                          store=store)
    assert again == [] and runs_again == []
    assert tick_s < 60, tick_s  # within one sensor interval of the sync that landed it

    # the digest lists them for their owners
    from orchestrator.core.records import Snapshot
    from datetime import datetime, timezone
    snapshot = Snapshot(taken_at=datetime.now(timezone.utc), graph=ctx.graph)
    digest = build_digest(store, snapshot, None, None)
    crm = digest.section("crm@example.com")
    assert crm is not None and any(c.startswith("renames shop.customers.email to email_address: breaks 1 model")
                                   for c in crm.schema_changes)
    assert "**Schema changes**: " in render_markdown(digest)
    # the Dagster sensor itself: the same checks and runs, and its cursor remembers the files
    from sensors.schema_changes import build_schema_sensor

    sensor = build_schema_sensor(ctx, paths=lambda: (shop_run["landing"], tmp_path),
                                 manifest_loader=lambda: shop_run["manifest"], project_dir=SHOP,
                                 lineage=lambda: shop_run["lineage"], store_factory=lambda: store)
    from orchestrator.resources import airbyte_workspace, fivetran_workspace

    resources = {"fivetran": fivetran_workspace(), "airbyte": airbyte_workspace()}  # not called: no policy
    with dg.instance_for_test() as instance:
        result = sensor(dg.build_sensor_context(instance=instance, resources=resources))
        assert {e.asset_key.to_user_string() for e in result.asset_events} == set(by_key)
        assert len(result.run_requests) == 3
        quiet = sensor(dg.build_sensor_context(instance=instance, cursor=result.cursor, resources=resources))
        assert not quiet.asset_events and not quiet.run_requests

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "sensor-tick.json").write_text(json.dumps({"tick_s": round(tick_s, 3), "events": len(events)}))


@pytest.mark.slow
def test_main_project_dashboards_carry_their_sla_deadline_and_owners(main_run, project_defs):
    from orchestrator.dagster_policies import load_resolution
    from orchestrator.project_graph import asset_graph_from_definitions
    from orchestrator.settings import get_settings

    graph = asset_graph_from_definitions(project_defs)
    resolution = load_resolution(graph, [get_settings().policies_dir])
    assert resolution.ok
    deadlines = impact.deadlines_from_resolution(resolution, main_run["lineage"])
    change = detect.ColumnChange("removed", "amount_due", old_type="bigint")
    [found] = impact.analyze(detect.TableDiff("stripe", "invoice", [change]), main_run["lineage"], deadlines)
    assert {d.exposure for d in found.deadlines} == {"executive_revenue", "sales_pipeline", "support_health"}
    by_name = {d.exposure: d for d in found.deadlines}
    assert by_name["executive_revenue"].label == "06:00 America/New_York"  # policies/finance.yaml
    first = min((d for d in found.deadlines if d.at is not None), key=lambda d: d.at)
    assert found.summary() == f"removes stripe.invoice.amount_due: breaks 1 model, blocks 3, 3 dashboards due {first.label}"
    assert "finance-data@example.com" in found.owners


def test_safe_changes_resync_once_where_the_policy_allows_it(shop_run, tmp_path):
    """Non-breaking type changes (customers.signed_up_at, customers.country) under a propagating
    setting: one table resync, only with `resync_table` in the policy's auto_approve, never twice."""
    from orchestrator.store import open_store
    from sensors.schema_changes import schema_tick

    class Sla:
        deadline, owners, tier = None, (), "low"

        def __init__(self, allowed):
            self.allowed = allowed

        def may_run_without_approval(self, action):
            return action in self.allowed

    class Resolution:
        ok = True

        def __init__(self, allowed):
            self.allowed = allowed

        def sla(self, key):
            return Sla(self.allowed)

    store = open_store(f"sqlite:///{tmp_path / 'store.db'}", cached=False)
    ctx = _shop_context()
    calls = []
    kwargs = dict(manifest=shop_run["manifest"], landing_dir=shop_run["landing"], cache_dir=tmp_path, project_dir=SHOP,
                  lineage=lambda: shop_run["lineage"], store=store, settings={"shop/customers": "ALLOW_ALL"},
                  resync=lambda key, connector: calls.append((key, connector)))
    ctx.resolution = Resolution(set())
    reports, _, _, state = schema_tick(ctx, {}, **kwargs)
    customers = next(r for r in reports if r.key == "shop/customers")
    assert ("changes shop.customers.country from varchar to int64: non-breaking (3 models read it)",
            "resync_table") in customers.handling
    assert calls == []  # the policy wants a person
    ctx.resolution = Resolution({"resync_table"})
    _, _, _, state = schema_tick(ctx, {}, **kwargs)
    assert calls == [("shop/customers", "fivetran:bright_till")]  # one resync for the table's changes
    _, _, _, _ = schema_tick(ctx, {"resynced": state["resynced"]}, **kwargs)
    assert calls == [("shop/customers", "fivetran:bright_till")]  # not again for the same changes
    [event] = store.audit_events(kind="schema_change.resynced")
    assert len(event["payload"]["changes"]) == 2
