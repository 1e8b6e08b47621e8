"""Issue 14, item 1: the library's Python entry point on a team's own assets (no dbt, no API):
``with_sla_policies`` compiles the policies onto the specs and adds the checks and sensors;
invalid policies apply nothing and say why in the code location's metadata."""

import dagster as dg

from orchestrator.lib import connector_resources, with_sla_policies

POLICY = """
policies:
  - name: orders-fresh
    select: [{key: "shop/*"}]
    max_lag: 3h
    tier: high
    owners: [orders-team@example.com]
"""


def _team_defs() -> dg.Definitions:
    @dg.asset(key=["shop", "orders"], kinds={"python"})
    def orders():
        return None

    @dg.asset(key=["shop", "revenue"], deps=[orders], kinds={"python"})
    def revenue():
        return None

    @dg.asset(key="unrelated")
    def unrelated():
        return None

    return dg.Definitions(assets=[orders, revenue, unrelated])


def test_policies_compiled_onto_the_team_specs_and_sensors_added(tmp_path):
    (tmp_path / "orders.yaml").write_text(POLICY)
    defs = with_sla_policies(_team_defs(), [tmp_path], resources=connector_resources([]))
    assert defs.metadata["sla_policies/status"].value == "ok"
    graph = defs.get_repository_def().asset_graph
    revenue = graph.get(dg.AssetKey(["shop", "revenue"]))
    assert revenue.tags["sla/policy"] == "orders-fresh" and revenue.tags["sla/tier"] == "high"
    assert "orders-team@example.com" in revenue.owners
    assert revenue.freshness_policy is not None
    assert "sla_freshness" in {c.name for c in revenue.check_keys}
    assert "sla/policy" not in graph.get(dg.AssetKey("unrelated")).tags
    assert {"sla_freshness_sensor", "failure_diagnosis_sensor", "orchestrator_execution"} <= {
        s.name for s in defs.get_repository_def().sensor_defs}


def test_invalid_policies_apply_nothing_and_say_why(tmp_path):
    (tmp_path / "bad.yaml").write_text(POLICY.replace("max_lag: 3h", "max_lag: soon"))
    defs = with_sla_policies(_team_defs(), [tmp_path], resources=connector_resources([]))
    assert defs.metadata["sla_policies/status"].value != "ok"
    revenue = defs.get_repository_def().asset_graph.get(dg.AssetKey(["shop", "revenue"]))
    assert "sla/policy" not in revenue.tags
