"""Every breaking change reaches its owners in the first sensor tick after the sync that landed
it: generated changes (a dropped, renamed or retyped column of any shop table) land as a new file,
one tick of the schema-change sensor runs (detect, impact, audit, Slack), and every owner of each
breaking change has it in their channel; non-breaking ones send nothing. The shop project's
compiled manifest is cached on this machine (one dbt compile per version of its files)."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from notify_servers import SlackServer

from orchestrator.notify import NotifySettings
from orchestrator.schema_changes.lineage import build_lineage
from orchestrator.schema_changes.notify import SchemaChangeNotifier
from orchestrator.store import open_store
from schema_llm_fixtures import land_change, shop_compiled, write_shop_landing
from sensors.schema_changes import schema_tick, tell_owners

TOKEN = "xoxb-1111111111-2222222222-AbCdEfGhIjKlMnOpQrStUv12"
ROUTES = "sales-ops@example.com=#sales-ops, crm@example.com=#crm"
CHANNEL = {"sales-ops@example.com": "#sales-ops", "crm@example.com": "#crm"}
COLUMNS = {"orders": ["customer_id", "amount", "discount", "status", "channel", "ordered_at"],
           "customers": ["email", "country", "segment", "signed_up_at"],
           "refunds": ["order_id", "amount", "reason", "refunded_at"]}


def _context():
    from orchestrator.core.graph import CONNECTOR_TABLE, DASHBOARD, DBT_MODEL, AssetGraph, AssetNode
    from sensors import ProjectContext

    nodes = [AssetNode(f"shop/{t}", CONNECTOR_TABLE, connector="fivetran:bright_till") for t in COLUMNS]
    nodes += [AssetNode(m, DBT_MODEL, owners=("sales-ops@example.com",)) for m in
              ("stg_shop__orders", "stg_shop__customers", "stg_shop__refunds", "int_orders_enriched",
               "fct_daily_sales", "fct_refunds")]
    nodes += [AssetNode("dim_customers", DBT_MODEL, owners=("crm@example.com",)),
              AssetNode("dashboard/sales_dashboard", DASHBOARD)]
    return ProjectContext(graph=AssetGraph(nodes), resolution=None)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("owners")
    baseline = write_shop_landing(root / "baseline")
    compiled = shop_compiled(baseline)
    slack = SlackServer(TOKEN)
    yield {"baseline": baseline, "manifest": compiled, "lineage": build_lineage(compiled), "slack": slack,
           "ctx": _context(), "root": root}
    slack.stop()


def _notifier(slack):
    return lambda store: SchemaChangeNotifier(store, NotifySettings(
        slack_token=TOKEN, slack_api_url=slack.api_url, slack_channels=ROUTES, notify_min_interval=0.0))


def _tick(world, landing, store, state):
    return schema_tick(world["ctx"], state, manifest=world["manifest"], landing_dir=landing,
                       cache_dir=world["root"], project_dir=world["root"], lineage=lambda: world["lineage"],
                       store=store, llm=False)


cases = st.sampled_from(sorted(COLUMNS)).flatmap(lambda t: st.tuples(
    st.just(t), st.sampled_from(COLUMNS[t]), st.sampled_from(["removed", "renamed", "type_changed"])))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(cases)
def test_every_breaking_change_reaches_its_owners_in_the_first_tick_after_its_sync(world, tmp_path_factory, case):
    table, column, kind = case
    work = tmp_path_factory.mktemp("case")
    landing = work / "landing"
    shutil.copytree(world["baseline"], landing)
    store = open_store(f"sqlite:///{work / 'store.db'}", cached=False)
    slack = world["slack"]
    # the tick before the sync: everything matches, nothing to tell
    _, events, _, state = _tick(world, landing, store, {})
    assert events == []
    land_change(landing, table, kind, column, to=f"{column}_v2")  # the sync that delivers it
    before = len(slack.messages())
    reports, events, runs, state = _tick(world, landing, store, state)  # the first tick after it
    tell_owners(store, _notifier(slack), lambda: datetime.now(timezone.utc))
    sent = slack.messages()[before:]
    [report] = [r for r in reports if r.key == f"shop/{table}"]
    breaking = report.breaking
    for found in breaking:
        assert found.owners, found.summary()  # someone owns what breaks
        for owner in found.owners:
            texts = [m["body"]["text"] for m in sent if m["channel"] == CHANNEL[owner]]
            assert any(found.summary() in t for t in texts), (owner, found.summary(), texts)
    if not breaking:
        assert sent == []
    # and not again at the next tick
    _tick(world, landing, store, state)
    tell_owners(store, _notifier(slack), lambda: datetime.now(timezone.utc))
    assert len(slack.messages()) == before + len(sent)


def test_the_patch_proposal_follows_in_the_same_thread(world, tmp_path):
    """The owners' thread gets the patch (waiting for approval, how to review it) and its fate."""
    from orchestrator.schema_changes import patch
    from orchestrator.schema_changes.store import SchemaPatches

    landing = tmp_path / "landing"
    shutil.copytree(world["baseline"], landing)
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}", cached=False)
    slack = world["slack"]
    _, _, _, state = _tick(world, landing, store, {})
    land_change(landing, "orders", "renamed", "channel", to="sales_channel")
    reports, _, runs, _ = _tick(world, landing, store, state)
    assert [r.tags["orchestrator/schema_table"] for r in runs] == ["shop/orders"]
    before = len(slack.messages())
    tell_owners(store, _notifier(slack), lambda: datetime.now(timezone.utc))
    [opened] = slack.messages()[before:]
    assert opened["channel"] == "#sales-ops" and "renames shop.orders.channel to sales_channel" in opened["body"]["text"]

    class Verified:
        ok = True

        def as_dict(self):
            return {"ok": True, "commands": ["dbt build"]}

    [found] = [i for r in reports for i in r.breaking]
    the_patch = patch.build_patch(world["root"].parent / "unused", {"nodes": {}, "sources": {}}, [])
    the_patch.files["models/x.sql"] = ("a", "b")
    the_patch.answered.append(found.summary())
    proposal = SchemaPatches(store).propose(the_patch, [found], Verified())
    SchemaPatches(store).reject(proposal.id, "ana@example.com")
    tell_owners(store, _notifier(slack), lambda: datetime.now(timezone.utc))
    follow = slack.messages()[before + 1:]
    assert [m["channel"] for m in follow] == ["#sales-ops", "#sales-ops"]
    assert all(m["body"].get("thread_ts") == opened["ts"] for m in follow)  # in the change's thread
    assert f"orchestrator schema-changes show {proposal.id}" in follow[0]["body"]["text"]
    assert "never the main branch" in follow[0]["body"]["text"]
    assert f"Patch {proposal.id} rejected." in follow[1]["body"]["text"]
