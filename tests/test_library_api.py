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


# --- the component governing another component's assets (a tiny dg project, no dbt, no API) ---

import os  # noqa: E402
import sys  # noqa: E402
import types  # noqa: E402

import pytest  # noqa: E402

from orchestrator.components import SlaPoliciesComponent  # noqa: E402

SHOP = '''
import dagster as dg

@dg.asset(key=["shop", "orders"], kinds={"python"})
def orders():
    return None

@dg.asset(key=["shop", "revenue"], deps=[orders], kinds={"python"})
def revenue():
    return None
'''
OTHER = '''
import dagster as dg

@dg.asset(key=["shop", "refunds"], kinds={"python"})
def refunds():
    return None
'''
SLA_YAML = '''
type: orchestrator.components.SlaPoliciesComponent
attributes:
  policies: ["{{ project_root }}/policies"]
  connectors: []
  governs: [shop]
  home: "{{ project_root }}/.home"
'''


def _tiny_project(root, sla_yaml=SLA_YAML):
    (root / "pyproject.toml").write_text('[tool.dg]\ndirectory_type = "project"\n\n[tool.dg.project]\n'
                                         'root_module = "tiny_team"\n')
    defs = root / "src" / "tiny_team" / "defs"
    (defs / "sla" / "shop").mkdir(parents=True)
    (root / "src" / "tiny_team" / "__init__.py").write_text("")
    (defs / "__init__.py").write_text("")
    (defs / "sla" / "defs.yaml").write_text(sla_yaml)
    (defs / "sla" / "shop" / "assets.py").write_text(SHOP)
    (defs / "other.py").write_text(OTHER)
    (root / "policies").mkdir()
    (root / "policies" / "orders.yaml").write_text(POLICY)
    return defs


@pytest.fixture
def tiny_load(tmp_path):
    before = dict(os.environ)
    sys.path.insert(0, str(tmp_path / "src"))

    def load(sla_yaml=SLA_YAML):
        _tiny_project(tmp_path, sla_yaml)
        return dg.load_from_defs_folder(path_within_project=tmp_path)

    yield load
    sys.path.remove(str(tmp_path / "src"))
    for name in [m for m in sys.modules if m == "tiny_team" or m.startswith("tiny_team.")]:
        del sys.modules[name]
    for name in set(os.environ) - set(before):  # the component sets ORCHESTRATOR_* for the process
        del os.environ[name]
    os.environ.update(before)


def test_component_compiles_policies_onto_the_components_it_governs(tiny_load):
    defs = tiny_load()
    assert defs.metadata["sla_policies/status"].value == "ok"
    graph = defs.get_repository_def().asset_graph
    revenue = graph.get(dg.AssetKey(["shop", "revenue"]))  # defs/sla/shop: governed
    assert revenue.tags["sla/policy"] == "orders-fresh" and "orders-team@example.com" in revenue.owners
    assert revenue.freshness_policy is not None
    refunds = graph.get(dg.AssetKey(["shop", "refunds"]))  # defs/other.py: read, checked, not changed
    assert "sla/policy" not in refunds.tags and refunds.freshness_policy is None
    assert "sla_freshness" in {c.name for c in refunds.check_keys} | {c.name for c in revenue.check_keys}
    assert "sla_freshness" in {c.name for c in refunds.check_keys}  # the policy selects shop/* there too
    assert len([k for k in graph.get_all_asset_keys() if k == dg.AssetKey(["shop", "revenue"])]) == 1


def test_component_refuses_to_govern_a_folder_outside_its_own(tmp_path):
    component = SlaPoliciesComponent(governs=["../ingest"])
    context = types.SimpleNamespace(path=tmp_path / "defs" / "sla")
    (tmp_path / "defs" / "ingest").mkdir(parents=True)
    with pytest.raises(ValueError, match="not a folder under the component's own folder"):
        component._governed_folder(context, "../ingest")
    with pytest.raises(ValueError, match="no folder"):
        component._governed_folder(context, "models")
