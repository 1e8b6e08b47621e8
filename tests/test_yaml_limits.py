"""Hostile policy and scenario files: alias bombs, self-referencing aliases, deep nesting and
over-size files are refused with the file and line, fast, without exhausting memory."""

from __future__ import annotations

import time

import pytest
from click.testing import CliRunner

from orchestrator.policies.model import (
    MAX_YAML_BYTES,
    YAMLLimitError,
    load_policies,
    load_yaml_document,
    parse_policy_text,
)
from orchestrator.simulator.scenario import ScenarioError, parse_scenario_text

LAUGHS = "\n".join(
    [f'{chr(97 + i)}: &{chr(97 + i)} [' + ",".join([f"*{chr(96 + i)}"] * 9 if i else ['"lol"'] * 9) + "]"
     for i in range(9)] + ["policies: *i", ""])
HOSTILE = {
    "alias bomb": (LAUGHS, 6, "alias bomb"),
    "self-referencing sequence": ("policies: &a\n  - name: x\n    select: *a\n", 1, "self-referencing"),
    "self-referencing mapping": ("version: 1\nx-loop: &a {b: {c: *a}}\npolicies: []\n", 2, "self-referencing"),
    "deep flow nesting": ("policies: " + "[" * 200_000 + "]" * 200_000 + "\n", 1, "levels deep"),
    "deep flow nesting with content": ("version: 1\npolicies: " + "[a, " * 100_000 + "\n", 2, "levels deep"),
    "deep block nesting": ("".join("  " * i + f"k{i}:\n" for i in range(200)), 64, "levels deep"),
    "alias deep expansion": ("".join(f"l{i}: &l{i} [{'*l' + str(i - 1) if i else 0}]\n" for i in range(100)), 64,
                             "levels deep once aliases"),
    "too many aliases": ("x-a: &a 1\nx-list: [" + ",".join(["*a"] * 1500) + "]\npolicies: []\n", 2, "aliases"),
    "over-size": ("policies: []\n" + "# padding padding padding\n" * 100_000, None, "larger than"),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_policy_file_is_refused_fast_with_file_and_line(name):
    text, line, words = HOSTILE[name]
    t0 = time.perf_counter()
    policies, errors = parse_policy_text(text, "policies/evil.yaml")
    elapsed = time.perf_counter() - t0
    assert policies == [] and len(errors) == 1
    err = str(errors[0])
    assert err.startswith("policies/evil.yaml:") and "YAML rejected" in err and words in err, err
    if line is not None:
        assert errors[0].line == line, err
    assert elapsed < 10.0, f"{name}: {elapsed:.2f}s"  # a bomb left to expand takes minutes or all memory


@pytest.mark.parametrize("name", ["alias bomb", "self-referencing sequence", "deep flow nesting", "over-size"])
def test_hostile_scenario_file_is_refused_fast(name):
    text, line, words = HOSTILE[name]
    t0 = time.perf_counter()
    with pytest.raises(ScenarioError) as exc:
        parse_scenario_text(text, "scenarios/evil.yaml")
    assert time.perf_counter() - t0 < 10.0
    assert "scenarios/evil.yaml:" in str(exc.value) and words in str(exc.value)
    if line is not None:
        assert f"scenarios/evil.yaml:{line}:" in str(exc.value)


def test_policies_check_cli_names_file_and_line_for_a_bomb(tmp_path, monkeypatch):
    from orchestrator.cli import cli
    from orchestrator.core.graph import AssetGraph

    monkeypatch.setattr("orchestrator.policies.cli._graph", lambda manifest: AssetGraph([]))
    (tmp_path / "evil.yaml").write_text(LAUGHS)
    t0 = time.perf_counter()
    res = CliRunner().invoke(cli, ["policies", "check", str(tmp_path / "evil.yaml")])
    assert time.perf_counter() - t0 < 10.0
    assert res.exit_code == 1 and "evil.yaml:6:" in res.output and "alias bomb" in res.output, res.output


def test_huge_policy_file_is_not_read_whole(tmp_path):
    big = tmp_path / "huge.yaml"
    with open(big, "w") as fh:
        fh.write("policies: []\n")
        fh.write(("# " + "x" * 1000 + "\n") * (3 * MAX_YAML_BYTES // 1000))
    t0 = time.perf_counter()
    ps = load_policies([big])
    assert time.perf_counter() - t0 < 10.0
    assert any("larger than" in str(e) for e in ps.errors)


def test_ordinary_anchors_and_merge_keys_still_load():
    text = """version: 1
x-defaults: &defaults
  tier: standard
  owners: [team:data]
  deadline: {cron: "0 6 * * *", timezone: UTC}
policies:
  - name: a
    <<: *defaults
    select: [{key: "x"}]
  - name: b
    <<: *defaults
    select: [{key: "y"}]
"""
    policies, errors = parse_policy_text(text, "ok.yaml")
    assert errors == [] and [p.name for p in policies] == ["a", "b"]


def test_limit_error_is_a_marked_yaml_error():
    with pytest.raises(YAMLLimitError) as exc:
        load_yaml_document("a: &a [*a]\n")
    assert exc.value.problem_mark.line == 0
