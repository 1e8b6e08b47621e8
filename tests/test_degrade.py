"""Degrade, don't die: a policy naming a connector kind whose API is down is disabled alone; a
truncated dbt manifest is rebuilt with ``dbt parse`` (or reported) instead of failing the load."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from orchestrator.core.graph import AssetGraph, AssetNode
from orchestrator.policies import load_policies, resolve

NOW = datetime(2026, 3, 10, 9, 0, tzinfo=timezone.utc)

POLICIES = """
policies:
  - name: connectors
    select: [{kind: fivetran}]
    max_lag: 6h
  - name: exec
    select: [{key: dashboard/exec}]
    max_lag: 2h
    owners: [finance@example.com]
"""


def _graph_without_fivetran() -> AssetGraph:
    return AssetGraph([
        AssetNode("stg_accounts", role="dbt_model", kinds=frozenset({"dbt"})),
        AssetNode("dashboard/exec", role="dashboard", upstream=("stg_accounts",), kinds=frozenset({"dashboard"})),
    ])


def test_a_policy_on_an_unreachable_connector_kind_is_disabled_alone(tmp_path):
    (tmp_path / "p.yaml").write_text(POLICIES)
    graph = _graph_without_fivetran()
    strict = resolve(load_policies([tmp_path]), graph, now=NOW)
    assert not strict.ok  # a genuinely unknown kind is still an error
    res = resolve(load_policies([tmp_path]), graph, now=NOW, unavailable_kinds=["fivetran"])
    assert res.ok, res.skip_reason
    assert "dashboard/exec" in res.slas and res.slas["dashboard/exec"].owners == ("finance@example.com",)
    assert any("API is unreachable" in str(w) and "policy disabled" in str(w) for w in res.warnings)


def test_truncated_manifest_is_rebuilt_by_dbt_parse():
    from assets.dbt import ensure_manifest, manifest_problem
    from orchestrator.resources import dbt_project

    manifest = dbt_project().manifest_path
    ensure_manifest()
    nodes = len(json.loads(manifest.read_text())["nodes"])
    text = manifest.read_text()
    manifest.write_text(text[: len(text) // 2])  # truncated; its age alone looks fine
    assert manifest_problem(manifest) is not None
    assert ensure_manifest() == manifest
    assert manifest_problem(manifest) is None
    assert len(json.loads(manifest.read_text())["nodes"]) == nodes


def test_stale_manifest_is_rebuilt_by_dbt_parse_and_its_failure_named(monkeypatch):
    """A manifest older than a project file goes through ``dbt parse`` (run here by a stand-in that
    records the call); when the parse fails, dbt's own words are in the error."""
    import os
    import subprocess

    import assets.dbt as dbt_mod
    from assets.dbt import ManifestUnavailable, ensure_manifest
    from orchestrator.resources import dbt_project

    manifest = dbt_project().manifest_path
    ensure_manifest()
    st = manifest.stat()
    calls = []

    def parse(cmd, **kw):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 2, stdout="", stderr="Compilation Error in model stg_x: bad jinja")

    monkeypatch.setattr(dbt_mod.subprocess, "run", parse)
    try:
        os.utime(manifest, (0, 0))  # stale: older than every project file
        try:
            ensure_manifest()
            raise AssertionError("a stale manifest was loaded without `dbt parse`")
        except ManifestUnavailable as exc:
            assert "older than the project files" in str(exc) and "bad jinja" in str(exc)
        assert calls and calls[0][1] == "parse"
    finally:
        os.utime(manifest, (st.st_atime, st.st_mtime))


def test_unparseable_project_is_reported_and_the_rest_loads(monkeypatch, caplog):
    import assets.dbt as dbt_mod
    from orchestrator import definitions

    def broken():
        raise dbt_mod.ManifestUnavailable("dbt manifest x was unreadable and `dbt parse` could not rebuild it")

    monkeypatch.setattr(definitions, "build_dbt_assets", lambda keys, manifest=None: broken())
    monkeypatch.setattr(definitions, "_connector_assets", lambda *a: [])  # no API calls in this test
    defs = definitions.build_definitions()
    assert "dbt models and dashboards not loaded" in caplog.text
    assert defs.get_repository_def() is not None


def test_a_key_glob_of_an_unloaded_connector_disables_only_its_policy(tmp_path):
    (tmp_path / "p.yaml").write_text(POLICIES.replace("[{kind: fivetran}]", "[{key: 'salesforce/*'}]"))
    graph = _graph_without_fivetran()
    assert not resolve(load_policies([tmp_path]), graph, now=NOW).ok
    res = resolve(load_policies([tmp_path]), graph, now=NOW, unavailable_kinds=["fivetran"])
    assert res.ok and "dashboard/exec" in res.slas
    assert any("matches no asset" in str(w) and "policy disabled" in str(w) for w in res.warnings)
