"""End to end: the digest goes through a real SMTP server (aiosmtpd on loopback, with AUTH), the
test parses the MIME message, follows the Approve link against the running approval service
(uvicorn), sees a confirmation page that changes nothing, confirms with POST, and the execution
sensor then requests the run."""

from __future__ import annotations

import re
import socket
import threading
import time
from datetime import datetime, timezone
from email import message_from_bytes, policy
from html import unescape

import dagster as dg
import httpx
import pytest
import uvicorn
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from orchestrator.approvals.app import create_app
from orchestrator.digest import run_digest
from orchestrator.digest.sample import record_sample
from orchestrator.proposals import Proposals
from orchestrator.settings import Settings
from orchestrator.store import open_store

UTC = timezone.utc
SECRET = "test-secret-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Inbox:
    def __init__(self):
        self.messages: list[tuple[list[str], bytes]] = []
        self.logins: list[str] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((list(envelope.rcpt_tos), envelope.original_content or envelope.content))
        return "250 Message accepted for delivery"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        ok = auth_data.login == b"digest" and auth_data.password == b"s3cret"
        if ok:
            self.logins.append(auth_data.login.decode())
        return AuthResult(success=ok)


@pytest.fixture
def smtp():
    inbox = Inbox()
    port = free_port()
    ctl = Controller(inbox, hostname="127.0.0.1", port=port, authenticator=inbox.authenticate,
                     auth_require_tls=False, auth_required=True)
    ctl.start()
    yield inbox, port
    ctl.stop()


class ApprovalServer:
    def __init__(self, app):
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        for _ in range(250):
            if self.server.started:
                break
            time.sleep(0.02)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self):
        self.server.should_exit = True
        self.thread.join(timeout=5)


def sample_assets() -> list[dg.AssetsDefinition]:
    """Dagster assets with the sample graph's keys, so RunRequests resolve against a repository."""
    from orchestrator.digest.sample import graph

    out = []
    for node in graph():
        @dg.asset(key=dg.AssetKey.from_user_string(node.key),
                  deps=[dg.AssetKey.from_user_string(u) for u in node.upstream],
                  partitions_def=dg.DailyPartitionsDefinition("2020-01-01") if node.partitioning else None)
        def _a():
            return None
        out.append(_a)
    return out


def parts(raw: bytes):
    msg = message_from_bytes(raw, policy=policy.default)
    assert msg.get_content_type() == "multipart/alternative"
    text = msg.get_body(preferencelist=("plain",)).get_content()
    html = msg.get_body(preferencelist=("html",)).get_content()
    return msg, text, html


def test_digest_smtp_approve_link_post_then_run_requested(tmp_path, monkeypatch, smtp):
    inbox, smtp_port = smtp
    url = f"sqlite:///{tmp_path}/store.db"
    approvals_port = free_port()
    for k, v in {
        "ORCHESTRATOR_HOME": str(tmp_path / "home"), "ORCHESTRATOR_STORE_URL": url,
        "ORCHESTRATOR_APPROVAL_SECRET": SECRET,
        "ORCHESTRATOR_APPROVAL_BASE_URL": f"http://127.0.0.1:{approvals_port}",
        "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(smtp_port), "SMTP_USERNAME": "digest", "SMTP_PASSWORD": "s3cret",
        "DIGEST_SENDER": "orchestrator@example.com",
        "DIGEST_RECIPIENTS": "team:growth=growth-lead@example.com, ops@example.com",
    }.items():
        monkeypatch.setenv(k, v)
    store = open_store(url, cached=False)
    now = datetime.now(UTC).replace(microsecond=0)
    snap, asm, res = record_sample(store, now)

    run = run_digest(store, snap, asm, res, now=now, send=True)
    assert run.report.mode == "smtp" and run.links
    assert inbox.logins == ["digest"]
    by_rcpt = {rcpts[0]: raw for rcpts, raw in inbox.messages}
    # one message per owner: the finance owner is an address, the team is mapped, the catch-all
    # (assets without an owner) goes to the bare address
    assert set(by_rcpt) == {"finance-data@example.com", "growth-lead@example.com", "ops@example.com"}
    msg, text, html = parts(by_rcpt["growth-lead@example.com"])
    assert msg["From"].addresses[0].addr_spec == "orchestrator@example.com"
    assert "team:growth" in msg["Subject"] and "1 to approve" in msg["Subject"]
    for needle in ("WAITING FOR YOUR APPROVAL", "AT RISK TODAY", "YESTERDAY'S SLAS", "DONE AUTOMATICALLY",
                   "FAILURES", "COST AGAINST BUDGET", "STOPPED BY THE CIRCUIT BREAKER"):
        assert needle in text, needle
    _, _, unowned_html = parts(by_rcpt["ops@example.com"])
    assert "Assets without an owner" in unowned_html and "misc/export" in unowned_html

    props = Proposals(store)
    retry = [r for r in props.list(status="pending") if r["type"] == "retry"][0]
    aid = retry["action_id"]
    links = [unescape(u) for u in re.findall(r'href="([^"]+)"', html)]
    approve = [u for u in links if f"/decide/{aid}/approve?" in u]
    assert len(approve) == 1 and any(f"/decide/{aid}/reject?" in u for u in links)
    assert f"Approve: {approve[0]}" in text  # the plain-text part carries the same link

    server = ApprovalServer(create_app(store=store, settings=Settings()))
    assert server.port != approvals_port
    link = approve[0].replace(f":{approvals_port}/", f":{server.port}/")
    try:
        with httpx.Client(headers={"User-Agent": "digest-e2e-test"}) as client:
            page = client.get(link)  # what a mail scanner or a click does
            assert page.status_code == 200 and "Confirm approval" in page.text
            assert page.headers["cache-control"] == "no-store" and page.headers["referrer-policy"] == "same-origin"
            assert props.show(aid)["status"] == "pending"  # GET changed nothing
            token = re.search(r'name="token" value="([^"]+)"', page.text).group(1)
            done = client.post(link.split("?")[0], data={"token": unescape(token), "comment": "go ahead"})
            assert done.status_code == 200 and "Approved" in done.text, done.text
    finally:
        server.stop()

    shown = props.show(aid)
    assert shown["status"] == "approved"
    assert shown["approvals"][-1]["actor"] == "growth-lead@example.com" and shown["approvals"][-1]["via"] == "email"
    audit = [e for e in store.audit_events(kind="approval.link") if e["subject"] == f"action:{aid}"]
    assert audit and audit[0]["actor"] == "growth-lead@example.com"
    assert audit[0]["payload"]["client_addr"] == "127.0.0.1" and audit[0]["payload"]["user_agent"] == "digest-e2e-test"
    assert audit[0]["payload"]["comment"] == "go ahead"

    # the execution sensor now requests the run for the approved action (run key = action id)
    from sensors.execution import build_execution_sensor

    sensor = build_execution_sensor(store_url=url, minimum_interval_seconds=1)
    defs = dg.Definitions(assets=sample_assets(), sensors=[sensor])
    with dg.instance_for_test() as instance:
        data = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=defs))
    reqs = [r for r in data.run_requests if r.tags.get("orchestrator/action_id") == aid]
    assert len(reqs) == 1, data.run_requests
    assert reqs[0].run_key == f"{aid}:{retry['action']['partitions'][0]}"
    assert reqs[0].partition_key == retry["action"]["partitions"][0]
    assert [k.to_user_string() for k in reqs[0].asset_selection] == retry["action"]["asset_keys"]
    # the finance proposal nobody approved is not requested
    assert not [r for r in data.run_requests if r.tags.get("orchestrator/action_type") == "resync_table"]
    store.dispose()
