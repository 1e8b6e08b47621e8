"""Template summaries (what people read when no LLM is configured) and their place on assets."""

from __future__ import annotations

import re

import pytest

from orchestrator.diagnosis import diagnose
from orchestrator.diagnosis.rules import CATEGORIES
from orchestrator.diagnosis.summaries import summarize


@pytest.mark.parametrize("category", CATEGORIES)
def test_every_class_has_a_short_summary_and_steps(category):
    s = summarize(category, ["ERROR: something specific happened here"], "snowflake")
    sentences = [x for x in re.split(r"(?<=[.!?])\s+", s["summary"]) if x]
    assert 2 <= len(sentences) <= 4, s["summary"]
    assert s["remediation"] and all(isinstance(x, str) and x for x in s["remediation"])
    assert "{" not in s["summary"]


def test_summary_quotes_the_evidence_and_names_the_system():
    msg = "HTTP 429 Too Many Requests: rate limit exceeded for endpoint /crm/v3/objects"
    d = diagnose(msg, "hubspot")
    s = summarize(d.category, d.evidence, "hubspot", d.transient)
    assert "hubspot" in s["summary"] and "429" in s["summary"]
    assert "retry" in s["summary"].lower()


def test_memory_evidence_is_not_quoted_as_log_text():
    s = summarize("auth_expired", ["memory: similar to past failure #3 labelled auth_expired"], "fivetran")
    assert "memory:" not in s["summary"]


def test_long_evidence_is_cut():
    s = summarize("data_quality", ["x" * 500], None)
    assert len(s["summary"]) < 400
    assert "…" in s["summary"]


def test_cli_explain_adds_basis_summary_and_steps_after_the_contract_fields(tmp_path):
    import json

    from click.testing import CliRunner

    from orchestrator.cli import cli

    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"id": 1, "message": "permission denied for schema analytics",
                               "system": "postgres"}) + "\n")
    res = CliRunner().invoke(cli, ["diagnose", str(src), "--no-memory", "--explain"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output.strip().splitlines()[-1])
    assert list(out)[:5] == ["id", "category", "transient", "confidence", "evidence"]
    assert out["category"] == "permission_denied" and out["basis"] in {"rules", "model"}
    assert "privilege" in out["summary"] and out["remediation"]
    plain = CliRunner().invoke(cli, ["diagnose", str(src), "--no-memory"])
    assert list(json.loads(plain.output.strip().splitlines()[-1])) == ["id", "category", "transient",
                                                                       "confidence", "evidence"]
