"""The scrubber's fast path (screens that skip a pattern which cannot match, the memo of the
configured secrets) redacts exactly what the reference path redacts: every pattern run on every
text (``orchestrator.perf.disabled()``). Generated texts mix real-shaped secrets, the key names
and prose forms the patterns look for (in any case, with non-ASCII look-alikes such as the Kelvin
sign and the long s that ``(?i)`` matches as ASCII letters), quotes, separators and failure
messages from the corpus. A missed secret would be a leak: safety, not speed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator import perf
from orchestrator import scrubbing as S

DATA = Path(__file__).parent / "data"
SECRETS = [json.loads(x) for x in (DATA / "secrets_corpus.jsonl").read_text().splitlines() if x.strip()]
FAILURES = [json.loads(x)["message"] for x in (DATA / "failure_corpus.jsonl").read_text().splitlines() if x.strip()]

KEY_NAMES = [k.replace("[_-]?", "_").replace("(?:", "").replace(")?", "").replace("s?", "s")
             for k in S._KEY_NAMES.split("|")]
PROSE = ["password", "pass word", "client secret", "api key", "access key", "secret key", "private key",
         "bearer token", "auth token", "refresh token", "passphrase", "secret", "Invalid API key"]
VALUES = ["hunter2hunter2", "Zx8kQ2vP9mN4bL7cR1tY6uW3eA5sD0fGhJ2kL9pQ", "s3cr3t!", "a@b:c", "FTKEY-abc123XYZ987",
          "'quoted value'", '"dq value"', "`tick`", "x", "p@ss/w0rd", "eyJhbGciOi.eyJzdWIiOiIx.SflKxwRJSMeKKF2QT4"]
GLUE = ["=", ": ", " = ", '": "', "='", " is ", " was ", " of ", " set to ", " ", "\n", ", ", ";", "&", "-", "_",
        "://user:", "@db.example.com/x", "https://hooks.slack.com/services/T0/B0/x", "Bearer ", "token ",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIB\n", "$2b$12$", "sk-", "AKIA", "_live_", "KEY-"]
LOOKALIKES = ["\u212a", "\u017f", "\u0130", "\u0131", "é", "ß"]  # Kelvin K, long s, dotted/dotless i


def _case(draw, word: str) -> str:
    mode = draw(st.sampled_from(["lower", "upper", "title", "mixed", "lookalike"]))
    if mode == "upper":
        return word.upper()
    if mode == "title":
        return word.title()
    if mode == "mixed":
        return "".join(c.upper() if draw(st.booleans()) else c for c in word)
    if mode == "lookalike":
        return word.replace("k", "\u212a").replace("s", "\u017f", 1)
    return word


@st.composite
def adversarial_texts(draw):
    parts = []
    for _ in range(draw(st.integers(1, 7))):
        kind = draw(st.sampled_from(["kv", "prose", "secret", "glue", "failure", "noise", "lookalike"]))
        if kind == "kv":
            parts.append(draw(st.sampled_from(["", '"', "'", "db_", "X-"])) + _case(draw, draw(st.sampled_from(KEY_NAMES)))
                         + draw(st.sampled_from(["", '"', "'"])) + draw(st.sampled_from(GLUE[:6]))
                         + draw(st.sampled_from(VALUES)))
        elif kind == "prose":
            parts.append(_case(draw, draw(st.sampled_from(PROSE))) + draw(st.sampled_from(["", "s"]))
                         + draw(st.sampled_from(GLUE[4:12])) + draw(st.sampled_from(VALUES)))
        elif kind == "secret":
            row = draw(st.sampled_from(SECRETS))
            parts.append(draw(st.sampled_from([row["secret"], row["message"]])))
        elif kind == "glue":
            parts.append(draw(st.sampled_from(GLUE)))
        elif kind == "failure":
            msg = draw(st.sampled_from(FAILURES))
            start = draw(st.integers(0, max(0, len(msg) - 1)))
            parts.append(msg[start:start + draw(st.integers(0, 300))])
        elif kind == "lookalike":
            parts.append(draw(st.sampled_from(LOOKALIKES)))
        else:
            parts.append(draw(st.text(max_size=16)))
    return "".join(parts)


def _reference(text: str) -> str:
    with perf.disabled():
        return S.scrub(text)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=adversarial_texts())
def test_fast_path_scrubs_exactly_what_the_reference_scrubs(text):
    assert S.scrub(text) == _reference(text)


@settings(max_examples=150, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(list("aApPsSkK=:\"' _-@/.\n") + LOOKALIKES), max_size=60))
def test_fast_path_matches_on_dense_separator_soup(text):
    assert S.scrub(text) == _reference(text)


def test_fast_path_is_identical_on_every_corpus_message_and_planted_secret():
    texts = FAILURES + [r["message"] for r in SECRETS] + [r["secret"] for r in SECRETS]
    assert [S.scrub(t) for t in texts] == [_reference(t) for t in texts]


@pytest.mark.parametrize("row", SECRETS, ids=[r["kind"] for r in SECRETS])
def test_no_planted_secret_survives_the_fast_path(row):
    """Credentials by :func:`scrub`, personal data by :func:`scrub_pii` (what the sinks call)."""
    out = S.scrub_pii(row["message"])
    assert row["secret"] not in out
    with perf.disabled():
        assert out == S.scrub_pii(row["message"])


@pytest.mark.parametrize("text, secret", [
    ("db_password=hunter2hunter2 while connecting", "hunter2hunter2"),
    ('{"API_KEY": "Zx8kQ2vP9mN4bL7c"}', "Zx8kQ2vP9mN4bL7c"),
    ("Client_Secret : abc123def456", "abc123def456"),
    ("the pass word is tr0ub4dor&3", "tr0ub4dor&3"),
    ("AUTH TOKEN was 'opensesame'", "opensesame"),
    ("api-key:\tq1w2e3r4t5", "q1w2e3r4t5"),
    ("connection_string=Server=x;Password=y0y0y0", "y0y0y0"),
    # non-ASCII text: the lower-cased screens step aside and the (?i) patterns run
    ("pa\u017f\u017fword=hunter2hunter2 \u212a", "hunter2hunter2"),
    ("Ünicode fehler: secret is s3cr3t-v4lue", "s3cr3t-v4lue"),
])
def test_adversarial_secrets_are_redacted(text, secret):
    out = S.scrub(text)
    assert secret not in out and "<secret>" in out
    assert out == _reference(text)


def test_configured_secret_memo_follows_the_environment(monkeypatch):
    monkeypatch.setenv("ACME_API_TOKEN", "firstvalue-Qw3")
    assert "firstvalue-Qw3" not in S.scrub("login with firstvalue-Qw3 failed")
    monkeypatch.setenv("ACME_API_TOKEN", "secondvalue-Er4")
    assert "secondvalue-Er4" not in S.scrub("login with secondvalue-Er4 failed")
    monkeypatch.setenv("SMTP_PASSWORD", "mailbagpassword")  # read through the settings
    assert "mailbagpassword" not in S.scrub("smtp auth failed for mailbagpassword")
    S.register_secret("registeredliteral77")
    try:
        assert "registeredliteral77" not in S.scrub("x registeredliteral77 y")
    finally:
        S._extra_literals.discard("registeredliteral77")
    monkeypatch.delenv("ACME_API_TOKEN")
    assert "secondvalue-Er4" not in S.configured_secrets()
    with perf.disabled():
        reference = S.configured_secrets()
    assert S.configured_secrets() == reference

