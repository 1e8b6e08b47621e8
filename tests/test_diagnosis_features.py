"""Structured tokens of failure messages (issue 16, seventh round): documented identifiers and marks of
where a fix lies, read as separate model features (``orchestrator.diagnosis.model.structured_tokens``)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.diagnosis.model import MAX_CHARS, features, structured_tokens, typed_tokens


@pytest.mark.parametrize("message, expected", [
    ('psycopg2.errors.UndefinedTable: relation "orders" does not exist', {"xp:undefined", "xp:table", "m:psycopg2"}),
    ("ERROR: permission denied for table x\nSQLSTATE: 42501", {"sq:42501", "sqc:42"}),
    ("002003 (42S02): SQL compilation error: Object 'X' does not exist or not authorized.", {"sq:42s02", "sqc:42"}),
    ("ORA-00942: table or view does not exist", {"v:ora-00942"}),
    ('(1045, "Access denied for user \'loader\'@\'10.0.0.1\'")', {"v:mysql-1045"}),
    ("urllib3 NewConnectionError: [Errno 111] Connection refused", {"en:econnrefused"}),
    ("connect ECONNRESET 10.1.2.3:443", {"en:econnreset"}),
    ("grpc._channel._InactiveRpcError: status = StatusCode.DEADLINE_EXCEEDED", {"g:deadline_exceeded", "m:grpc"}),
    ("Env var DBT_PROFILES_DIR is not set; no profiles.yml found", {"s:envvar", "s:cfgfile"}),
    ("Reservation must be None or a string, got int", {"s:typecheck"}),
    ("Waiter does not exist: {waiter_name}", {"s:placeholder"}),
    ("routine name \"%s\" is not unique", {"s:placeholder"}),
    ("requires pyarrow>=14.0.1; found version 12.0.0", {"s:version"}),
    ("'credentials' and 'credentials_file' are mutually exclusive.", {"s:quoted_ident"}),
])
def test_documented_identifiers_become_their_own_tokens(message, expected):
    got = set(structured_tokens(message))
    assert expected <= got, got - expected


def test_a_grpc_status_name_is_not_read_as_an_environment_variable():
    assert "s:envvar" not in structured_tokens("rpc failed: DEADLINE_EXCEEDED")
    assert "s:envvar" in structured_tokens("rpc failed: DEADLINE_EXCEEDED; set GRPC_TIMEOUT_MS")


def test_plain_prose_gives_no_tokens_and_tokens_are_distinct():
    assert structured_tokens("the job failed") == []
    toks = structured_tokens("botocore.exceptions.ClientError and botocore.exceptions.ClientError again")
    assert len(toks) == len(set(toks)) and "m:botocore" in toks


def test_the_tokens_are_model_features():
    f = features("psycopg2.errors.UndefinedTable SQLSTATE 42P01 [Errno 2]")
    assert {"sq:42p01", "sqc:42", "xp:undefined", "m:psycopg2", "en:enoent"} <= set(f)
    assert set(structured_tokens("ORA-00942 missing")) <= set(typed_tokens("ORA-00942 missing"))


_ALPHABET = st.sampled_from(list("aEZ_.-:'\"`{}()[]<>%$=\n 0123456789") + [
    "Error", "SQLSTATE ", "ORA-", "[Errno ", "ECONN", "DEADLINE_EXCEEDED", "must be ", "got ", "str", "{x}",
    "%s", ".yml", "version ", "psycopg2.errors.", "UndefinedTable", "(1045, '", "<class '", "\u00e9", "\U0001f600"])


@settings(max_examples=200, deadline=None)
@given(st.lists(_ALPHABET, max_size=120).map("".join))
def test_any_text_gives_string_tokens_of_known_kinds(text):
    toks = structured_tokens(text)
    assert all(isinstance(t, str) and t.split(":", 1)[0] in
               {"sq", "sqc", "v", "en", "g", "xp", "m", "s"} for t in toks)
    assert len(toks) == len(set(toks))
    features(text)  # never raises


@settings(max_examples=30, deadline=None)
@given(st.text(max_size=300), st.integers(min_value=0, max_value=5))
def test_only_the_first_max_chars_are_read(text, pad):
    """Bounded work: whatever follows the first MAX_CHARS characters changes nothing."""
    head = (text * (MAX_CHARS // max(1, len(text)) + 1))[:MAX_CHARS] if text else "x" * MAX_CHARS
    tail = ("SQLSTATE 42P01 ORA-00942 {x} DBT_TARGET_PATH " * (pad + 1))
    assert structured_tokens(head + tail) == structured_tokens(head)


@pytest.mark.parametrize("adversarial", [
    "{" * 200_000, "must be " + " " * 200_000 + "str", "a." * 200_000 + "Error", "A_" * 200_000,
    "Ab" * 200_000, "%(" * 200_000, "$" + "A" * 200_000, "sqlstate" + " " * 200_000,
])
def test_adversarial_long_inputs_return(adversarial):
    """Long pathological inputs (nested-quantifier traps for a careless regex) return at once: the
    patterns are linear and only MAX_CHARS characters are read (a hang would stall this test)."""
    assert isinstance(structured_tokens(adversarial), list)
    assert isinstance(features(adversarial), dict)


def test_the_shipped_model_was_fitted_with_them():
    from orchestrator.diagnosis.model import load_default

    # the shipped TF-IDF model keeps the typed tokens as its "t:" block
    vocab = {f[2:] for f in load_default().vocab_list if f.startswith("t:")}
    assert {"s:placeholder", "s:typecheck", "s:envvar", "s:cfgfile"} <= vocab
    assert any(f.startswith("xp:") for f in vocab) and any(f.startswith("m:") for f in vocab)


@settings(max_examples=60, deadline=None)
@given(st.lists(_ALPHABET, max_size=60).map("".join))
def test_fast_logits_include_the_structured_tokens(text):
    """Inference (cached per-word rows + typed tokens) gives exactly the training vector's logits,
    structured tokens included."""
    import numpy as np

    from orchestrator.diagnosis.model import load_default

    m = load_default()
    idx, val = m.vector(text)
    slow = (val @ m.W[idx] + m.b) if len(idx) else m.b
    assert np.allclose(m.logits(text), slow, atol=1e-4)
