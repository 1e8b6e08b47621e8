"""Approval links under attack: forged, expired, replayed and cross-proposal tokens are refused
with a page that says why; a GET alone changes nothing; an expired proposal never executes on an
old approval link; the service refuses to start without a secret outside the sandbox."""

from __future__ import annotations

import os
import re
import stat
from datetime import datetime, timedelta, timezone
from html import unescape

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from orchestrator.approvals import tokens
from orchestrator.approvals.app import create_app
from orchestrator.digest.sample import record_sample
from orchestrator.proposals import Proposals
from orchestrator.settings import Settings
from orchestrator.store import open_store

UTC = timezone.utc
SECRET = b"attack-test-secret-0123456789"


class Clock:
    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("ORCHESTRATOR_HOME", str(tmp_path / "home"))
    store = open_store(f"sqlite:///{tmp_path}/store.db", cached=False)
    now = datetime.now(UTC).replace(microsecond=0)
    record_sample(store, now)
    props = Proposals(store)
    pending = props.list(status="pending")
    assert len(pending) >= 2
    clock = Clock(now)
    client = TestClient(create_app(store=store, secret=SECRET, settings=Settings(), clock=clock),
                        headers={"User-Agent": "attack-test"})
    yield store, props, pending, clock, client
    store.dispose()


def link(row, decision="approve", *, secret=SECRET, now=None, ttl=timedelta(hours=12), not_after="action",
         to="ana@example.com") -> tuple[str, str]:
    exp = datetime.fromisoformat(row["expires_at"]) if not_after == "action" and row["expires_at"] else None
    tok = tokens.issue(row["action_id"], row["proposal_id"], decision, to, secret=secret,
                       now=now or datetime.now(UTC), ttl=ttl, not_after=exp)
    return f"/decide/{row['action_id']}/{decision}", tok


def nothing_changed(store, props, aid):
    shown = props.show(aid)
    assert shown["status"] == "pending" and shown["approvals"] == []
    assert not [e for e in store.audit_events() if e["kind"] in ("approval", "rejection", "approval.link")
                and e["subject"] == f"action:{aid}"]


def test_get_shows_confirmation_and_changes_nothing(env):
    store, props, pending, _, client = env
    path, tok = link(pending[0])
    for _ in range(3):  # scanners, previews, the user: all GET
        r = client.get(path, params={"token": tok})
        assert r.status_code == 200 and "Confirm approval" in r.text and "Nothing has been changed yet" in r.text
        assert 'method="post"' in r.text
    r = client.head(path, params={"token": tok})
    assert r.status_code == 200
    nothing_changed(store, props, pending[0]["action_id"])
    claims = tokens.verify(tok, SECRET, action_id=pending[0]["action_id"], decision="approve")
    assert not tokens.is_spent(store, claims.nonce)


@pytest.mark.parametrize("how", ["other_secret", "tampered_claims", "bit_flip", "garbage", "missing"])
def test_forged_tokens_are_refused(env, how):
    store, props, pending, _, client = env
    row, other = pending[0], pending[1]
    path, good = link(row)
    body, sig = good.split(".")
    tok = {
        "other_secret": link(row, secret=b"not-the-service-secret-xxxxxxx")[1],
        # claims of another action with this action's signature
        "tampered_claims": link(other)[1].split(".")[0] + "." + sig,
        "bit_flip": body + "." + ("A" if sig[0] != "A" else "B") + sig[1:],
        "garbage": "not-a-token",
        "missing": "",
    }[how]
    get = client.get(path, params={"token": tok})
    post = client.post(path, data={"token": tok})
    for r in (get, post):
        if how in ("garbage", "missing"):
            assert r.status_code == 400 and "incomplete or damaged" in r.text
        else:
            assert r.status_code == 403 and "This approval link is not valid" in r.text
        assert "Nothing was changed" in r.text
    nothing_changed(store, props, row["action_id"])
    refused = store.audit_events(kind="approval.refused")
    assert refused and refused[-1]["payload"]["user_agent"] == "attack-test"


def test_expired_token_is_refused(env):
    store, props, pending, clock, client = env
    row = pending[0]
    path, tok = link(row, now=clock.now - timedelta(hours=2), ttl=timedelta(hours=1))
    for r in (client.get(path, params={"token": tok}), client.post(path, data={"token": tok})):
        assert r.status_code == 410 and "This approval link has expired" in r.text
    nothing_changed(store, props, row["action_id"])


def test_replayed_token_is_refused(env):
    store, props, pending, _, client = env
    row = pending[0]
    path, tok = link(row)
    first = client.post(path, data={"token": tok})
    assert first.status_code == 200 and "Approved" in first.text
    assert props.show(row["action_id"])["status"] == "approved"
    again = client.post(path, data={"token": tok})
    assert again.status_code in (409,) and "already" in again.text
    assert client.get(path, params={"token": tok}).status_code == 409  # a spent link says so on GET too
    # the reject link of the same action cannot undo it either
    rpath, rtok = link(row, "reject")
    r = client.post(rpath, data={"token": rtok})
    assert r.status_code == 409 and "already approved" in r.text
    shown = props.show(row["action_id"])
    assert shown["status"] == "approved" and len(shown["approvals"]) == 1


def test_cross_proposal_and_cross_decision_tokens_are_refused(env):
    store, props, pending, _, client = env
    a, b = pending[0], pending[1]
    assert a["action_id"] != b["action_id"]
    _, tok_a = link(a)
    path_b = f"/decide/{b['action_id']}/approve"
    for r in (client.get(path_b, params={"token": tok_a}), client.post(path_b, data={"token": tok_a})):
        assert r.status_code == 403 and "belongs to a different proposal" in r.text
    # an approve token on the reject URL (and the other way round)
    _, reject_a = link(a, "reject")
    r = client.post(f"/decide/{a['action_id']}/approve", data={"token": reject_a})
    assert r.status_code == 403 and "different proposal" in r.text
    r = client.post(f"/decide/{a['action_id']}/reject", data={"token": tok_a})
    assert r.status_code == 403
    nothing_changed(store, props, a["action_id"])
    nothing_changed(store, props, b["action_id"])


def test_expired_proposal_never_executes_on_an_old_link(env):
    store, props, pending, clock, client = env
    row = pending[0]
    expires = datetime.fromisoformat(row["expires_at"])
    expires = expires if expires.tzinfo else expires.replace(tzinfo=UTC)
    # a link signed with a lifetime beyond the proposal's expiry (as if misissued)
    path, tok = link(row, ttl=timedelta(days=3), not_after=None)
    clock.now = expires + timedelta(minutes=1)
    for r in (client.get(path, params={"token": tok}), client.post(path, data={"token": tok})):
        assert r.status_code == 410 and "This proposal has expired" in r.text
    assert props.show(row["action_id"])["status"] in ("pending", "expired")
    assert row["action_id"] not in [a.action_id for a in props.executable(clock.now + timedelta(hours=1))]
    # normally issued links expire with the proposal
    _, normal = link(row)
    claims = tokens.verify(normal, SECRET, action_id=row["action_id"], decision="approve",
                           now=expires - timedelta(seconds=1))
    assert claims.expires_at <= expires


def test_reject_link_records_who_when_where(env):
    store, props, pending, _, client = env
    row = pending[1]
    path, tok = link(row, "reject", to="lead@example.com")
    page = client.get(path, params={"token": tok})
    assert "Confirm rejection" in page.text
    form_token = unescape(re.search(r'name="token" value="([^"]+)"', page.text).group(1))
    r = client.post(path, data={"token": form_token, "comment": "not during quarter close"},
                    headers={"X-Forwarded-For": "203.0.113.9"})
    assert r.status_code == 200 and "Rejected" in r.text
    shown = props.show(row["action_id"])
    assert shown["status"] == "declined"
    assert shown["approvals"][-1] | {"at": None} == {"decision": "reject", "actor": "lead@example.com", "via": "email",
                                                     "comment": "not during quarter close", "at": None}
    ev = store.audit_events(kind="approval.link")[-1]
    # not behind a configured proxy: a client-sent X-Forwarded-For is not trusted, nor recorded
    assert ev["actor"] == "lead@example.com" and "forwarded_for" not in ev["payload"]
    assert ev["payload"]["client_addr"] != "203.0.113.9"
    assert ev["payload"]["user_agent"] == "attack-test" and ev["payload"]["client_addr"] and ev["payload"]["at"]


def test_secret_required_outside_the_sandbox(tmp_path, monkeypatch):
    monkeypatch.setenv("ORCHESTRATOR_HOME", str(tmp_path))
    monkeypatch.delenv("ORCHESTRATOR_APPROVAL_SECRET", raising=False)
    monkeypatch.setenv("FIVETRAN_API_KEY", "real-key")  # not the sandbox any more
    monkeypatch.delenv("FIVETRAN_API_BASE_URL", raising=False)
    with pytest.raises(tokens.MissingSecret):
        tokens.approval_secret(Settings())
    from orchestrator.cli import cli

    out = CliRunner().invoke(cli, ["serve-approvals", "--store", f"sqlite:///{tmp_path}/s.db"])
    assert out.exit_code != 0 and "refusing to start" in out.output and "ORCHESTRATOR_APPROVAL_SECRET" in out.output
    monkeypatch.setenv("ORCHESTRATOR_APPROVAL_SECRET", "short")
    with pytest.raises(tokens.MissingSecret, match="at least 16"):
        tokens.approval_secret(Settings())
    monkeypatch.setenv("ORCHESTRATOR_APPROVAL_SECRET", "x" * 32)
    assert tokens.approval_secret(Settings()) == b"x" * 32


def test_sandbox_generates_one_private_secret_per_home(tmp_path, monkeypatch):
    monkeypatch.setenv("ORCHESTRATOR_HOME", str(tmp_path))
    monkeypatch.delenv("ORCHESTRATOR_APPROVAL_SECRET", raising=False)
    monkeypatch.delenv("FIVETRAN_API_KEY", raising=False)
    monkeypatch.delenv("FIVETRAN_API_BASE_URL", raising=False)
    monkeypatch.delenv("AIRBYTE_REST_API_BASE_URL", raising=False)
    first = tokens.approval_secret(Settings())
    assert len(first) >= 32 and tokens.approval_secret(Settings()) == first
    path = tmp_path / tokens.SECRET_FILE
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    # the emulators on loopback (what `orchestrator dev` sets) are still the sandbox
    monkeypatch.setenv("FIVETRAN_API_KEY", "emulator-key")
    monkeypatch.setenv("FIVETRAN_API_BASE_URL", "http://127.0.0.1:8701")
    monkeypatch.setenv("AIRBYTE_REST_API_BASE_URL", "http://127.0.0.1:8702/api/public/v1")
    assert tokens.in_sandbox() and tokens.approval_secret(Settings()) == first
    monkeypatch.setenv("AIRBYTE_REST_API_BASE_URL", "https://api.airbyte.com/v1")
    assert not tokens.in_sandbox()
