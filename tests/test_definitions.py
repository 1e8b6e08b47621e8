"""The code location loads against the emulators and shows one connected graph."""

import dagster as dg
from dagster._core.definitions.dependency import NodeHandle

from orchestrator.core.graph import CONNECTOR_TABLE, DASHBOARD, DBT_MODEL
from orchestrator.emulators.scenario import load_scenario
from orchestrator.project_graph import asset_graph_from_definitions


def test_every_scenario_table_is_a_connector_asset(sandbox, project_defs):
    graph = asset_graph_from_definitions(project_defs)
    scenario = load_scenario(sandbox.settings.scenario)
    expected = {f"{schema}/{table}" for _, schema, table in scenario.landing_tables()}
    connector_tables = {n.key for n in graph.by_role(CONNECTOR_TABLE)}
    assert connector_tables == expected
    systems = {n.connector.split(":")[0] for n in graph.by_role(CONNECTOR_TABLE)}
    assert systems == {"fivetran", "airbyte"}
    assert len({n.connector for n in graph.by_role(CONNECTOR_TABLE)}) >= 5


def test_every_connector_table_reaches_a_dashboard_that_uses_it(project_defs):
    graph = asset_graph_from_definitions(project_defs)
    dashboards = {n.key for n in graph.by_role(DASHBOARD)}
    assert len(dashboards) >= 3
    for table in graph.by_role(CONNECTOR_TABLE):
        reached = graph.downstream_closure(table.key) & dashboards
        assert reached, f"{table.key} feeds no dashboard"
        # ... through dbt models, not by a direct edge.
        assert any(graph.node(c).role == DBT_MODEL for c in graph.children(table.key))


def test_dbt_sources_are_linked_not_left_dangling(project_defs):
    graph = asset_graph_from_definitions(project_defs)
    # Anything that is neither a connector table nor a dbt model nor a dashboard would be an
    # unlinked dbt source (an external asset with dagster-dbt's default key).
    roles = {n.key: n.role for n in graph if n.key != "orchestrator_digest"}  # the digest email
    assert {r for r in roles.values()} == {CONNECTOR_TABLE, DBT_MODEL, DASHBOARD}
    staging = [n for n in graph.by_role(DBT_MODEL) if n.key.startswith("stg_")]
    assert staging and all(
        all(roles[u] == CONNECTOR_TABLE for u in n.upstream) for n in staging
    )


def test_assets_carry_kinds_groups_owners_descriptions(project_defs):
    repo_graph = project_defs.resolve_asset_graph()
    for key in repo_graph.get_all_asset_keys():
        node = repo_graph.get(key)
        who = key.to_user_string()
        assert node.kinds, f"{who} has no kinds"
        assert node.group_name and node.group_name != "default", f"{who} has no group"
        assert node.owners, f"{who} has no owner"
        assert node.description, f"{who} has no description"
    dashboard = repo_graph.get(dg.AssetKey(["dashboard", "executive_revenue"]))
    assert dashboard.owners == ["finance-data@example.com"]
    assert "dashboard" in dashboard.kinds


def test_partitioned_model_is_daily(project_defs):
    repo_graph = project_defs.resolve_asset_graph()
    node = repo_graph.get(dg.AssetKey("fct_product_events_daily"))
    assert isinstance(node.partitions_def, dg.DailyPartitionsDefinition)


def test_connector_assets_say_their_state_came_live(project_defs):
    spec = project_defs.resolve_asset_graph().get(dg.AssetKey(["salesforce", "account"]))
    assert spec.metadata["connector_state"].startswith("live from the API")


def test_governed_assets_carry_their_sla_and_a_native_freshness_policy(project_defs):
    assert project_defs.metadata["sla_policies/status"].text == "ok"
    node = project_defs.resolve_asset_graph().get(dg.AssetKey(["dashboard", "executive_revenue"]))
    assert node.tags["sla/tier"] == "critical"
    assert node.tags["sla/deadline_tz"] == "America.New_York"
    assert node.freshness_policy is not None
    # Deadlines propagate upstream: a connector feeding the revenue dashboard must be ready earlier.
    invoice = project_defs.resolve_asset_graph().get(dg.AssetKey(["stripe", "invoice"]))
    # the deadline shown is the most urgent of those reaching it: which one depends on the hour
    # (sales-pipeline, 07:30 Chicago on weekdays, is next from 06:00 New York until 07:30 Chicago)
    assert invoice.tags["sla/deadline_policy"] in {"executive-revenue", "sales-pipeline"}
    if invoice.tags["sla/deadline_policy"] == "executive-revenue":  # same time zone: comparable
        assert invoice.tags["sla/deadline"] < node.tags["sla/deadline"]
    else:  # due before the dashboard it feeds: the local time is earlier than 07:30 Chicago
        assert invoice.tags["sla/deadline"] < "07h30"


def test_invalid_policies_never_half_apply_and_the_location_still_loads(sandbox, tmp_path, monkeypatch):
    from orchestrator.definitions import build_definitions
    from orchestrator.settings import get_settings

    (tmp_path / "broken.yaml").write_text(
        "policies:\n"
        "  - name: revenue\n"
        "    select: [{exposure: executive_revenue}]\n"
        "    tier: critical\n"
        "  - name: typo\n"
        "    select: [{key: stripe/invoices}]\n"
        "    tier: high\n"
    )
    monkeypatch.setenv("ORCHESTRATOR_POLICIES_DIR", str(tmp_path))
    get_settings.cache_clear()
    try:
        defs = build_definitions()
    finally:
        monkeypatch.delenv("ORCHESTRATOR_POLICIES_DIR")
        get_settings.cache_clear()
    assert defs.metadata["sla_policies/status"].text.startswith("invalid")
    errors = defs.metadata["sla_policies/errors"].text
    assert "broken.yaml:6" in errors and "stripe/invoice" in errors  # names file:line, suggests the key
    node = defs.resolve_asset_graph().get(dg.AssetKey(["dashboard", "executive_revenue"]))
    assert not any(tag.startswith("sla/") for tag in node.tags)  # the valid policy did not apply either


def test_refresh_job_runs_dbt_tests_but_not_the_sensor_checks(project_defs):
    job = project_defs.resolve_job_def("refresh_everything")
    selected = job.asset_layer.get_selected_entity_keys_for_node(NodeHandle("dbt_models", None))
    check_names = {key.name for key in selected if isinstance(key, dg.AssetCheckKey)}
    assert any(name.startswith("not_null") for name in check_names)  # dbt tests still run
    steps = {node.name for node in job.graph.node_defs}
    assert "dbt_models" in steps
    assert not {"sla_freshness_checks", "connector_sync_checks"} & steps
