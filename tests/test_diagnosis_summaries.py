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
