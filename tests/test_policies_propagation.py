"""Propagation along the critical path, precedence of overlapping policies, impossible
deadlines, and the explain chain, on small graphs and on the real dbt manifests."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator.core.graph import AssetGraph, AssetNode
from orchestrator.policies.cli import policies_group
from orchestrator.policies.durations import DurationModel
from orchestrator.policies.model import Rollout, Tier, load_policies_from_text
from orchestrator.policies.resolve import resolve

UTC = timezone.utc
NOW = datetime(2025, 6, 2, 13, 0, tzinfo=UTC)  # Monday 09:00 EDT
MANIFESTS = Path("/work/shared/data/dbt_manifests")
if not MANIFESTS.exists():
    MANIFESTS = Path(__file__).resolve().parents[2] / "shared/data/dbt_manifests"
KIPPTAF = MANIFESTS / "teamster_kipptaf.manifest.json.gz"
MITODL = MANIFESTS / "mitodl_ol_dbt.manifest.json.gz"


def diamond() -> AssetGraph:
    #   src_a -> stg_a -> fct -> dash
    #   src_b ----------/        \-> report (weekly)
    n = lambda key, role, *up, **kw: AssetNode(key, role=role, upstream=up, **kw)  # noqa: E731
    return AssetGraph([
        n("src_a", "connector_table", kinds=frozenset({"fivetran"}), group="ingest"),
        n("src_b", "connector_table", kinds=frozenset({"airbyte"}), group="ingest"),
        n("stg_a", "dbt_model", "src_a", group="staging"),
        n("fct", "dbt_model", "stg_a", "src_b", group="marts"),
        n("dash", "dashboard", "fct"),
        n("report", "dashboard", "fct"),
    ])


HISTORY = {"src_a": [600] * 20, "src_b": [3000] * 20, "stg_a": [300] * 20, "fct": [900] * 20, "dash": [60] * 20}


def test_most_urgent_deadline_wins_and_chain_is_kept():
    text = """
policies:
  - name: dash-0600
    select: [{key: dash}]
    deadline: {cron: "0 6 * * *", timezone: America/New_York}
    tier: high
  - name: report-0700
    select: [{key: report}]
    deadline: {cron: "0 7 * * *", timezone: America/New_York}
    tier: critical
"""
    res = resolve(load_policies_from_text(text), diamond(), DurationModel(HISTORY), NOW)
    assert res.ok
    sla = res.sla("src_a")
    assert sla.deadline.policy == "dash-0600"
    # path src_a -> stg_a -> fct -> dash: 5m + 15m + 1m after src_a completes
    assert sla.deadline.lead == timedelta(minutes=21)
    assert sla.deadline.at == datetime(2025, 6, 3, 10, 0, tzinfo=UTC) - timedelta(minutes=21)
    assert [l.key for l in res.chain("src_a")] == ["src_a", "stg_a", "fct", "dash"]
    assert sla.tier is Tier.critical  # the report's tier reaches it too
    # fct: the longer of its own downstream paths per policy
    assert res.sla("fct").deadline.lead == timedelta(minutes=1)
    # governed set of a policy includes everything upstream
    assert res.governed_by("report-0700") == {"report", "fct", "stg_a", "src_a", "src_b"}


def test_overlapping_policies_precedence():
    text = """
policies:
  - name: everything-ingest
    select: [{group: ingest}]
    rollout: auto
    auto_approve: [retry]
    owners: [team:platform]
    windows: {blackout: [{days: sun, start: "02:00", end: "04:00"}]}
  - name: fivetran-only
    select: [{kind: fivetran}]
    rollout: recommend
    owners: [team:fivetran-admins]
    windows: {blackout: [{days: sat, start: "02:00", end: "04:00"}]}
  - name: exact-src-a
    select: [src_a]
    rollout: shadow
    owners: [alice@example.com]
  - name: priority-wins
    select: [{group: ingest}]
    exclude: [src_a]
    priority: 5
    rollout: auto
    auto_approve: [resync_table]
    owners: [bob@example.com]
"""
    res = resolve(load_policies_from_text(text), diamond(), now=NOW)
    a = res.sla("src_a")
    # exact key (most specific) beats kind, which ties with group on specificity... kind=group=20:
    assert a.policies == ("exact-src-a", "everything-ingest", "fivetran-only")
    assert a.rollout is Rollout.shadow and a.owners == ("alice@example.com",)
    assert not a.may_run_without_approval("retry")
    # blackouts are the union over direct policies
    assert len(a.blackout) == 2
    b = res.sla("src_b")
    assert b.policies[0] == "priority-wins"  # explicit priority beats everything
    assert b.may_run_without_approval("resync_table") and not b.may_run_without_approval("retry")


def test_impossible_deadline_is_reported():
    text = """
policies:
  - name: tight
    select: [{key: dash}]
    deadline: {cron: "0 6 * * *", timezone: America/New_York, window: 1h}
"""
    res = resolve(load_policies_from_text(text, "tight.yaml"), diamond(), DurationModel(HISTORY), NOW)
    assert res.ok  # reported, not an error
    [inf] = res.infeasible
    # src_b (50m) + fct (15m) + dash (1m) = 66m > 1h window
    assert (inf.start, inf.target, inf.path) == ("src_b", "dash", ("src_b", "fct", "dash"))
    assert inf.required == timedelta(minutes=66) and inf.allowed == timedelta(hours=1)
    warning = str(inf.as_error())
    assert warning.startswith("tight.yaml:5: warning: deadline: deadline cannot be met")
    assert "short by 6m" in warning
    assert res.sla("src_b").infeasible == ("tight",) and res.sla("src_a").infeasible == ()
    assert "CANNOT BE MET" in res.explain("src_b")


def test_max_lag_propagates_and_can_be_impossible():
    text = """
policies:
  - name: lag
    select: [{key: dash}]
    max_lag: 1h
"""
    res = resolve(load_policies_from_text(text), diamond(), DurationModel(HISTORY), NOW)
    assert res.sla("fct").max_lag == timedelta(minutes=59)
    assert res.sla("src_b").max_lag == timedelta(minutes=44)
    assert [i.kind for i in res.infeasible] == ["max_lag"]  # src_b 50m + 16m > 1h


def test_duration_model_quantile_and_priors():
    node = AssetNode("x", role="dbt_model")
    assert DurationModel().estimate(node).seconds == 180
    m = DurationModel({"x": list(range(1, 101))})
    assert m.estimate(node).seconds == pytest.approx(90.1)
    assert m.estimate(node).basis == "p90 of 100 runs"
    few = DurationModel({"x": [60]})  # 1 run blended with 4 priors of 180s
    assert few.estimate(node).seconds == pytest.approx((60 + 4 * 180) / 5)
    sync = AssetNode("s", role="connector_table", kinds=frozenset({"airbyte"}))
    assert DurationModel().estimate(sync).seconds == 1200


@pytest.fixture(scope="module")
def kipptaf():
    return AssetGraph.from_dbt_manifest(KIPPTAF)


def test_propagation_over_kipptaf_manifest(kipptaf):
    text = """
policies:
  - name: all-dashboards
    select: [{role: dashboard}]
    deadline: {cron: "0 7 * * *", timezone: America/New_York, calendar: {holidays: {country: US}}}
    tier: high
  - name: attrition
    select: [{exposure: attrition_dashboard}]
    deadline: {cron: "0 5 * * *", timezone: America/New_York}
    tier: critical
"""
    res = resolve(load_policies_from_text(text), kipptaf, now=NOW)
    assert res.ok
    dashboards = {n.key for n in kipptaf.by_role("dashboard")}
    assert len(dashboards) == 120
    governed = set().union(*(kipptaf.upstream_closure(d, include_self=True) for d in dashboards))
    assert set(res.slas) == governed
    # every governed asset's deadline is no later than its children's minus their durations
    for key, sla in res.slas.items():
        for child in kipptaf.children(key):
            csla = res.sla(child)
            if csla is None:  # a child that feeds no dashboard
                continue
            dur = timedelta(seconds=res.durations.seconds(kipptaf.node(child)))
            assert sla.deadline.at <= csla.deadline.at - dur + timedelta(microseconds=1)
    # an upstream of the attrition dashboard takes the 05:00 deadline
    up = next(iter(kipptaf.upstream_closure("dashboard/attrition_dashboard")))
    chain = res.chain(up, "attrition")
    assert chain[-1].key == "dashboard/attrition_dashboard" and chain[0].key == up


def test_propagation_over_mitodl_manifest_with_upstream_of_and_globs():
    graph = AssetGraph.from_dbt_manifest(MITODL)
    text = """
policies:
  - name: reporting
    select: [{group: reporting}]
    deadline: {cron: "0 8 * * 1-5", timezone: America/New_York}
  - name: staging
    select: ["stg__*"]
    tier: low
"""
    res = resolve(load_policies_from_text(text), graph, now=NOW)
    assert res.ok, res.errors
    reporting = {n.key for n in graph if n.group == "reporting"}
    assert len(reporting) == 28
    assert res.governed_by("reporting") == set().union(*(graph.upstream_closure(k, include_self=True) for k in reporting))


def test_cli_explain_prints_the_chain(tmp_path, kipptaf):
    path = tmp_path / "p.yaml"
    path.write_text("""\
policies:
  - name: attrition
    select: [{exposure: attrition_dashboard}]
    deadline: {cron: "0 6 * * *", timezone: America/New_York}
    tier: critical
    owners: [finance-data@example.com]
""")
    durations = tmp_path / "d.json"
    durations.write_text('{"rpt_tableau__staff_attrition_details": [600, 600, 600, 600, 600]}')
    result = CliRunner().invoke(policies_group, [
        "explain", "rpt_tableau__staff_attrition_details", "--policies", str(path),
        "--manifest", str(KIPPTAF), "--durations", str(durations), "--at", "2025-06-02T12:00:00"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "effective deadline: Tue 2025-06-03 05:59 EDT (09:59 UTC)" in out
    assert "dashboard/attrition_dashboard due Tue 2025-06-03 06:00 EDT (10:00 UTC) minus 1m" in out
    lines = out.splitlines()
    i = lines.index("  critical path (this asset first, the policy's asset last):")
    assert lines[i + 1].split()[:4] == ["rpt_tableau__staff_attrition_details", "complete", "by", "05:59"]
    assert "runs ~   10m (p90 of 5 runs)" in lines[i + 1]
    assert lines[i + 2].split()[0] == "dashboard/attrition_dashboard" and "<- policy deadline" in lines[i + 2]
    assert "tier: critical" in out and "owners: finance-data@example.com" in out


def test_equal_critical_paths_name_the_same_target_whatever_the_node_order():
    # src feeds two dashboards under one policy by paths of equal length: the metadata shown in
    # the UI (sla/deadline_target, sla/critical_path_next) must not change between reloads, where
    # dagster-dbt lists nodes in a different order
    text = """
policies:
  - name: dashes-0600
    select: [{key: "dash_*"}]
    deadline: {cron: "0 6 * * *", timezone: America/New_York}
"""
    n = lambda key, role, *up: AssetNode(key, role=role, upstream=up)  # noqa: E731
    nodes = [
        n("src", "connector_table"),
        n("m_a", "dbt_model", "src"), n("m_b", "dbt_model", "src"),
        n("dash_a", "dashboard", "m_a"), n("dash_b", "dashboard", "m_b"),
    ]
    history = {k.key: [600] * 5 for k in nodes}
    seen = set()
    for order in (nodes, list(reversed(nodes)), nodes[:1] + nodes[2:0:-1] + nodes[:2:-1]):
        res = resolve(load_policies_from_text(text), AssetGraph(order), DurationModel(history), NOW)
        assert res.ok
        dl = res.sla("src").deadline
        seen.add((dl.target, dl.via))
    assert seen == {("dash_a", "m_a")}
