"""Signature normalization and secret scrubbing."""

from __future__ import annotations

import json

import pytest

from orchestrator.diagnosis import diagnose, normalize, scrub
from orchestrator.diagnosis.normalize import signature_hash

SECRETS = [
    "hunter2-Sup3rSecret",
    "AKIAIOSFODNN7EXAMPLE",
    "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "sk-proj-4fGh7JkL9mNpQrStUvWxYz012345",
    "Zq8XvB2nT5kL0pR7sW3yU6iO9aE1dF4g",
]


def test_placeholders():
    sig = normalize(
        "2024-03-05 01:36:00 ERROR Sync 8563fa2d-bbd1-4cd5-a035-732c46eb705b for table 'orders' failed "
        "after 3 attempts at /var/lib/airbyte/job_42/logs.txt, see https://cloud.airbyte.com/ws/1 "
        "or mail ops@example.com, object 0xdeadbeef hash a94a8fe5ccb19ba61c4c0873d391e987982fbbd3"
    )
    for ph in ("<uuid>", "<q>", "<num>", "<path>", "<url>", "<email>", "<hex>"):
        assert ph in sig, (ph, sig)
    for raw in ("8563fa2d", "orders", "airbyte.com", "example.com", "deadbeef", "a94a8fe5", "2024-03-05"):
        assert raw not in sig


def test_same_failure_same_signature():
    a = "Database Error in model orders_2024 (models/orders.sql)\n  column \"id_17\" does not exist at 2024-01-01T10:00:00Z"
    b = "Database Error in model orders_2025 (models/orders.sql)\n  column \"id_99\" does not exist at 2025-06-30T23:59:59Z"
    assert signature_hash(normalize(a)) != signature_hash(normalize("totally different failure"))
    assert normalize(a).replace("orders_2024", "X") == normalize(b).replace("orders_2025", "X")


@pytest.mark.parametrize(
    "text",
    [
        "psycopg2.OperationalError: FATAL: password authentication failed for user \"loader\" password=hunter2-Sup3rSecret",
        "connection to postgresql://loader:hunter2-Sup3rSecret@db.internal:5432/prod refused",
        "AWS error with key AKIAIOSFODNN7EXAMPLE: 403 Forbidden",
        "git clone failed: 401 Unauthorized token=ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        "401 Unauthorized: Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        "openai.AuthenticationError: Incorrect API key provided: sk-proj-4fGh7JkL9mNpQrStUvWxYz012345",
        '{"api_secret": "Zq8XvB2nT5kL0pR7sW3yU6iO9aE1dF4g", "error": "429 Too Many Requests"}',
        "Fivetran 401 Unauthorized: invalid api key Zq8XvB2nT5kL0pR7sW3yU6iO9aE1dF4g",
    ],
)
def test_secrets_are_scrubbed_everywhere(text):
    cleaned = scrub(text)
    sig = normalize(text)
    d = diagnose(text)
    blob = json.dumps(d.as_output("x")) + json.dumps(d.model_dump())
    for secret in SECRETS:
        assert secret not in cleaned
        assert secret not in sig
        assert secret not in blob
    assert d.evidence, "a secret-bearing line should still be usable as (scrubbed) evidence"
    assert any("<secret>" in e for e in d.evidence) or d.category != "unknown"


def test_private_key_block_scrubbed():
    text = "Could not deserialize key data:\n-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----"
    assert "MIIEvQ" not in scrub(text)


def test_scrub_keeps_diagnostic_text():
    text = "Warehouse 'COMPUTE_WH' cannot be resumed because resource monitor 'CREDITLIMIT' has exceeded its quota."
    assert scrub(text) == text
    d = diagnose(text)
    assert d.category == "destination_capacity" and d.transient is False
    assert d.evidence == [text]


def test_unknown_below_threshold():
    d = diagnose("Job failed: 1234")
    assert d.category == "unknown"
    d2 = diagnose("request timed out", model=None)  # one weak rule hint only
    assert d2.category == "unknown"
    assert diagnose("request timed out", threshold=0.3, model=None).category == "source_unavailable"
    # the model has seen how runtime logs use "timed out" and settles it
    assert diagnose("request timed out").category == "source_unavailable"
