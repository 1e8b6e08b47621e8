"""Root-cause linking and diagnosis: a downstream failure is linked to its root, diagnosed once."""

from datetime import UTC, datetime, timedelta

from orchestrator.assessment import assess, diagnose_failures, link_root_causes
from orchestrator.core.graph import AssetGraph, AssetNode
from orchestrator.core.records import FailureRecord, Snapshot

T0 = datetime(2026, 3, 10, 5, tzinfo=UTC)


def graph():
    return AssetGraph([
        AssetNode("stripe/invoice", role="connector_table", connector="fivetran:dapper_ledger"),
        AssetNode("hubspot/campaigns", role="connector_table", connector="airbyte:7a3d"),
        AssetNode("stg_invoices", role="dbt_model", upstream=("stripe/invoice",)),
        AssetNode("stg_campaigns", role="dbt_model", upstream=("hubspot/campaigns",)),
        AssetNode("fct_revenue", role="dbt_model", upstream=("stg_invoices",)),
        AssetNode("dashboard/exec", role="dashboard", upstream=("fct_revenue",)),
    ])


SYNC = FailureRecord("sync:fivetran:dapper_ledger:1", T0, "reconnect: Fivetran is unable to connect: "
                     "401 Unauthorized - the OAuth token has expired, please re-authenticate",
                     "fivetran", connector="fivetran:dapper_ledger")
STEP = FailureRecord("run:r1:stripe/invoice", T0 + timedelta(seconds=30),
                     "Sync for connector 'dapper_ledger' failed!", "dagster",
                     asset_key="stripe/invoice", run_id="r1")
DBT = FailureRecord("run:r2:stg_invoices", T0 + timedelta(minutes=20),
                    "Runtime Error in model stg_invoices: Catalog Error: Table with name invoice does not exist!",
                    "dbt", asset_key="stg_invoices", run_id="r2")
DASH = FailureRecord("run:r3:dashboard/exec", T0 + timedelta(minutes=25), "extract empty", "dagster",
                     asset_key="dashboard/exec", run_id="r3")
OTHER = FailureRecord("run:r4:stg_campaigns", T0 + timedelta(minutes=20),
                      "Database Error in model stg_campaigns: permission denied for schema hubspot",
                      "dbt", asset_key="stg_campaigns", run_id="r4")
OLD = FailureRecord("run:r0:stg_invoices", T0 - timedelta(hours=8), "division by zero", "dbt",
                    asset_key="stg_invoices")


def test_links_downstream_and_duplicate_to_root():
    roots = link_root_causes([DASH, DBT, STEP, SYNC, OTHER, OLD], graph())
    assert roots[SYNC.failure_id] is None
    assert roots[STEP.failure_id] == SYNC.failure_id  # same event seen by dagster and by Fivetran
    assert roots[DBT.failure_id] == SYNC.failure_id
    assert roots[DASH.failure_id] == SYNC.failure_id  # chains followed to the ultimate root
    assert roots[OTHER.failure_id] is None  # different branch
    assert roots[OLD.failure_id] is None  # long before: unrelated


def test_roots_diagnosed_once_downstream_inherit():
    calls = []

    class Memory:
        def nearest(self, text, **kw):
            calls.append(text)
            return []

    out = {d.failure.failure_id: d for d in diagnose_failures([SYNC, STEP, DBT, OTHER], graph(), Memory())}
    assert len(calls) == 2  # SYNC and OTHER only
    assert out[SYNC.failure_id].category == "auth_expired"
    assert out[SYNC.failure_id].root_failure_id is None
    assert out[DBT.failure_id].category == "auth_expired"
    assert out[DBT.failure_id].root_failure_id == SYNC.failure_id
    assert "caused by upstream failure" in out[DBT.failure_id].evidence[0]
    assert out[OTHER.failure_id].category == "permission_denied"


def test_assess_combines_without_policies():
    snap = Snapshot(T0, graph(), failures=[SYNC, DBT])
    a = assess(snap, None)
    assert a.skipped and len(a.failures) == 2
