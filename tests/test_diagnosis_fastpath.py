"""The per-message path's shortcuts give the same objects as the library calls they replace:
``_construct`` vs ``Diagnosis.model_construct``, ``env_get`` vs ``os.environ.get`` (settings read
per message, so a changed environment must still be seen at once)."""

from __future__ import annotations

import os

from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.diagnosis import diagnose
from orchestrator.diagnosis.classifier import Diagnosis, _construct
from orchestrator.diagnosis.model import env_get

values = st.fixed_dictionaries({
    "category": st.sampled_from(["unknown", "auth_failure", "schema_drift"]),
    "transient": st.booleans(),
    "confidence": st.floats(0, 1),
    "evidence": st.lists(st.text(max_size=20), max_size=3),
    "scores": st.dictionaries(st.text(max_size=8), st.floats(-5, 5), max_size=3),
    "neighbours": st.lists(st.dictionaries(st.text(max_size=5), st.integers(), max_size=2), max_size=2),
    "basis": st.sampled_from(["rules", "model", "memory"]),
    "probabilities": st.dictionaries(st.text(max_size=8), st.floats(0, 1), max_size=3),
})


@settings(max_examples=60, deadline=None)
@given(kw=values)
def test_fast_construct_equals_model_construct(kw):
    a, b = Diagnosis.model_construct(**kw), _construct(**kw)
    assert a == b and list(a.__dict__) == list(b.__dict__)
    assert a.model_fields_set == b.model_fields_set
    assert a.model_dump() == b.model_dump() and a.model_dump_json() == b.model_dump_json()
    assert b.model_copy(deep=True) == a


def test_env_get_follows_the_environment(monkeypatch):
    monkeypatch.delenv("ORCHESTRATOR_DIAGNOSIS_THRESHOLD", raising=False)
    assert env_get("ORCHESTRATOR_DIAGNOSIS_THRESHOLD") is None
    monkeypatch.setenv("ORCHESTRATOR_DIAGNOSIS_THRESHOLD", "1.5")
    assert env_get("ORCHESTRATOR_DIAGNOSIS_THRESHOLD") == "1.5"
    assert env_get("PATH") == os.environ.get("PATH")
    # the per-message threshold setting is read on every call
    msg = "Snowflake: JWT token is invalid for user LOADER"
    assert diagnose(msg).category == "unknown"
    monkeypatch.delenv("ORCHESTRATOR_DIAGNOSIS_THRESHOLD")
    assert env_get("ORCHESTRATOR_DIAGNOSIS_THRESHOLD") is None
    assert diagnose(msg).category != "unknown"
