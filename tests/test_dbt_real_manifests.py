"""Any real dbt project loads: the code location pointed at the two shared real manifests
(ORCHESTRATOR_DBT_PROJECT_DIR), and dbt meta mapped to values Dagster accepts whatever it holds."""

from __future__ import annotations

import gzip
import json
import logging

import dagster as dg
import pytest
from dagster._core.definitions.utils import VALID_GROUP_NAME_REGEX, is_valid_owner
from dbt_manifest_fixtures import REAL_MANIFESTS, build_location, make_dbt_project, manifest_path
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assets.dbt import DEFAULT_OWNER, ProjectDbtTranslator
from assets.dbt_meta import MetaReport, map_group, map_kinds, map_metadata, map_owner, map_tags
from orchestrator.project_graph import asset_graph_from_definitions

POLICY = """policies:
  - name: models-morning
    select: [{role: dbt_model}]
    deadline: {cron: '0 7 * * 1-5', timezone: America/New_York}
    tier: high
"""
DASHBOARD_POLICY = """  - name: dashboards
    select: [{role: dashboard}]
    deadline: {cron: '30 8 * * *', timezone: Europe/Berlin}
    max_lag: 1d
"""


def _load(name: str, tmp_path):
    project = make_dbt_project(name, tmp_path)
    policies = tmp_path / "policies"
    policies.mkdir()
    has_exposures = bool(_manifest(name).get("exposures"))
    (policies / "real.yaml").write_text(POLICY + (DASHBOARD_POLICY if has_exposures else ""))
    return build_location(project, policies)


@pytest.fixture(scope="module")
def real_defs(sandbox, tmp_path_factory):
    """The code location built once per real manifest (and the meta warnings it logged)."""
    loaded: dict[str, tuple[dg.Definitions, list[str]]] = {}

    def get(name: str):
        if not manifest_path(name).exists():
            pytest.skip(f"{manifest_path(name)} not present")
        if name not in loaded:
            handler = _Collect()
            logging.getLogger("orchestrator.lib.assets").addHandler(handler)
            try:
                defs = _load(name, tmp_path_factory.mktemp(name))
            finally:
                logging.getLogger("orchestrator.lib.assets").removeHandler(handler)
            loaded[name] = (defs, handler.messages)
        return loaded[name]

    return get


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def _manifest(name: str) -> dict:
    with gzip.open(manifest_path(name)) as fh:
        return json.load(fh)


@pytest.mark.parametrize("name", REAL_MANIFESTS)
def test_real_manifest_loads_as_a_code_location(name, real_defs):
    defs, messages = real_defs(name)
    manifest = _manifest(name)
    repo_graph = defs.resolve_asset_graph()
    keys = set(repo_graph.get_all_asset_keys())
    graph = asset_graph_from_definitions(defs)
    dbt_ids = {n.dbt_name for n in graph if n.role == "dbt_model"}
    expected = {
        uid for uid, node in manifest["nodes"].items()
        if node["resource_type"] in {"model", "seed", "snapshot"}
        and node.get("config", {}).get("enabled", True)
        and node.get("config", {}).get("materialized") != "ephemeral"  # not assets in dagster-dbt
    }
    assert expected and expected <= dbt_ids, sorted(expected - dbt_ids)[:5]
    exposures = {e["name"] for e in manifest.get("exposures", {}).values()}
    assert {n.dbt_name for n in graph.by_role("dashboard")} == exposures
    # Every owner, group, tag is one Dagster accepts (it would have refused to build otherwise)
    # and every asset has an owner and a non-default group.
    for key in keys:
        node = repo_graph.get(key)
        if not node.is_materializable:
            continue
        assert node.owners and all(is_valid_owner(o) for o in node.owners), (key, node.owners)
        assert node.group_name and VALID_GROUP_NAME_REGEX.match(node.group_name)
    # Policies compiled onto the real graph: governed models carry their SLA and freshness policy.
    assert defs.metadata["sla_policies/status"].text == "ok", defs.metadata
    governed = [repo_graph.get(dg.AssetKey.from_user_string(n.key)) for n in graph.by_role("dbt_model")]
    assert all(a.tags.get("sla/tier") == "high" for a in governed)
    assert all(a.freshness_policy is not None for a in governed)
    # Every job of the location resolves (the partitioned one is empty for these projects).
    for job in defs.resolve_all_job_defs():
        assert job.name
    # Problems in meta are reported once per distinct value, not once per asset.
    reports = [m for m in messages if m.startswith("dbt meta:")]
    assert len(reports) == len(set(reports))


def test_mitodl_owner_data_team_becomes_a_team(real_defs):
    name = "mitodl_ol_dbt"
    defs, messages = real_defs(name)
    manifest = _manifest(name)
    owned = [n for n in manifest["nodes"].values()
             if ((n.get("config") or {}).get("meta") or {}).get("owner") == "data_team"]
    assert len(owned) == 3  # the values that used to fail the whole load
    graph = asset_graph_from_definitions(defs)
    by_id = {n.dbt_name: n for n in graph}
    for node in owned:
        assert by_id[node["unique_id"]].owners[0] == "team:data_team"
    reports = [m for m in messages if "'data_team'" in m]
    assert len(reports) == 1 and "team:data_team" in reports[0]


def test_teamster_dagster_meta_groups_and_exposure_owners(real_defs):
    name = "teamster_kipptaf"
    defs, _ = real_defs(name)
    manifest = _manifest(name)
    graph = asset_graph_from_definitions(defs)
    by_id = {n.dbt_name: n for n in graph}
    grouped = {uid: n["config"]["meta"]["dagster"]["group"] for uid, n in manifest["nodes"].items()
               if n["resource_type"] == "model"
               and ((n.get("config") or {}).get("meta") or {}).get("dagster", {}).get("group")}
    assert grouped
    for uid, group in grouped.items():
        assert by_id[uid].group == group
    # Exposure owners have a name and no e-mail: they become teams instead of no owner.
    dashboards = {n.dbt_name: n for n in graph.by_role("dashboard")}
    for exposure in manifest["exposures"].values():
        assert dashboards[exposure["name"]].owners == (f"team:{exposure['owner']['name']}",)


# -- the mapping, on anything dbt meta may hold ----------------------------------------------------

meta_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=80),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=8,
)
owner_like = st.one_of(
    meta_values,
    st.emails(),
    st.text(max_size=30).map(lambda t: f"team:{t}"),
    st.from_regex(r"[A-Za-z _-]{0,20}@[A-Za-z.]{0,12}", fullmatch=True),
    st.fixed_dictionaries({"email": st.none() | st.emails() | st.text(max_size=20),
                           "name": st.none() | st.text(max_size=20)}),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(owner=owner_like, group=meta_values, tags=meta_values, kinds=st.lists(meta_values, max_size=14),
       metadata=meta_values)
def test_any_meta_builds_a_valid_asset_spec(owner, group, tags, kinds, metadata):
    report = MetaReport()
    mapped_owner = map_owner(owner, report, "model.x")
    if isinstance(owner, str) and is_valid_owner(owner.strip()) and owner == " ".join(owner.split()):
        assert mapped_owner == owner  # valid owners are kept as they are
    spec = dg.AssetSpec(
        key="x",
        owners=[mapped_owner] if mapped_owner else [],
        group_name=map_group(group, report, "model.x"),
        tags=map_tags(tags, report, "model.x"),
        kinds=map_kinds(["dbt", *kinds], report, "model.x"),
        metadata=map_metadata(metadata, report, "model.x"),
    )
    assert spec.key == dg.AssetKey("x")


@given(st.text(min_size=1, max_size=40).filter(lambda t: t.strip() and "@" not in t))
def test_a_bare_owner_name_becomes_a_team(name):
    owner = map_owner(name, None, "m")
    text = " ".join(name.split())
    assert owner == (text if text.startswith("team:") and len(text) > 5 else
                     None if text == "team:" else
                     f"team:{text[5:].strip() if text.startswith('team:') else text}")
    assert owner is None or is_valid_owner(owner)


def test_translator_owner_precedence_and_report_once():
    translator = ProjectDbtTranslator()
    props = {"unique_id": "model.p.a", "resource_type": "model", "fqn": ["p", "marts", "a"],
             "config": {"meta": {"owner": "data_team", "dagster": {"owners": ["x@example.com"]}}}}
    assert translator.get_owners(props) == ["team:data_team", "x@example.com"]
    assert translator.get_owners({**props, "config": {"meta": {}}}) == [DEFAULT_OWNER]
    assert translator.get_owners({**props, "config": {"meta": {"owner": 42}}}) == [DEFAULT_OWNER]
    for _ in range(5):
        translator.get_owners(props)
    assert translator.meta_report.counts[("owner", "'data_team' -> 'team:data_team'")] == 6
    assert len([k for k in translator.meta_report.counts if k[0] == "owner"]) == 2
    # Group: meta.dagster.group wins over the folder, and is made valid.
    assert translator.get_group_name(props) == "dbt_marts"
    grouped = {**props, "config": {"meta": {"dagster": {"group": "Data Team/core-models"}}}}
    assert translator.get_group_name(grouped) == "Data_Team/core_models"
