"""The digest e-mail and the approval pages in headless Chromium (Debian's /usr/bin/chromium).

Screenshots land in artifacts/digest/: the HTML e-mail at desktop and phone widths, the
confirmation page a link opens, the page after confirming (clicked in the browser: a real form
POST), and the refusal when the same link is opened again."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from email import message_from_bytes, policy
from html import unescape
from pathlib import Path

import pytest

from orchestrator.approvals.app import create_app
from orchestrator.digest import run_digest
from orchestrator.digest.sample import record_sample
from orchestrator.proposals import Proposals
from orchestrator.settings import Settings
from orchestrator.store import open_store

UTC = timezone.utc
ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts" / "digest"


def test_email_and_approval_pages_render(browser, tmp_path, monkeypatch):
    from test_digest_email_e2e import ApprovalServer, free_port

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    port = free_port()
    for k, v in {"ORCHESTRATOR_HOME": str(tmp_path / "home"), "ORCHESTRATOR_APPROVAL_SECRET": "s" * 32,
                 "ORCHESTRATOR_APPROVAL_BASE_URL": f"http://127.0.0.1:{port}",
                 "DIGEST_RECIPIENTS": "team:growth=growth-lead@example.com, ops@example.com"}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("SMTP_HOST", raising=False)
    store = open_store(f"sqlite:///{tmp_path}/store.db", cached=False)
    now = datetime.now(UTC).replace(microsecond=0)
    snap, asm, res = record_sample(store, now)
    run = run_digest(store, snap, asm, res, now=now, send=True)
    assert run.report.mode == "outbox"
    emls = {message_from_bytes(p.read_bytes(), policy=policy.default)["To"]: p for p in run.report.paths}
    msg = message_from_bytes(emls["growth-lead@example.com"].read_bytes(), policy=policy.default)
    html = msg.get_body(preferencelist=("html",)).get_content()
    (ARTIFACTS / "digest-email.html").write_text(html)

    page = browser.new_page(viewport={"width": 900, "height": 900})
    page.set_content(html, wait_until="load")
    for needle in ("Waiting for your approval", "At risk today", "Yesterday's SLAs", "Done automatically",
                   "Failures", "Cost against budget", "Stopped by the circuit breaker"):
        assert page.get_by_text(needle, exact=False).count() >= 1, needle
    approve = page.get_by_role("link", name="Approve")
    assert approve.count() == 1 and approve.is_visible()
    box = approve.bounding_box()
    assert box and box["width"] > 60 and box["height"] > 25  # a real button, not a bare link
    page.screenshot(path=str(ARTIFACTS / "digest-email.png"), full_page=True)
    phone = browser.new_page(viewport={"width": 390, "height": 800})
    phone.set_content(html, wait_until="load")
    phone.screenshot(path=str(ARTIFACTS / "digest-email-phone.png"), full_page=True)
    phone.close()

    link = unescape(re.search(r'href="([^"]+/approve\?token=[^"]+)"', html).group(1))
    aid = link.split("/decide/")[1].split("/")[0]
    server = ApprovalServer(create_app(store=store, settings=Settings()))
    link = link.replace(f":{port}/", f":{server.port}/")
    try:
        page.close()  # the e-mail was rendered from a string (opaque origin): open the link fresh
        page = browser.new_page(viewport={"width": 900, "height": 760})
        page.goto(link, wait_until="load")
        assert page.get_by_role("button", name="Confirm approval").is_visible()
        page.screenshot(path=str(ARTIFACTS / "approval-confirm.png"), full_page=True)
        assert Proposals(store).show(aid)["status"] == "pending"
        page.fill("textarea[name=comment]", "approved from the screenshot test")
        page.get_by_role("button", name="Confirm approval").click()
        page.wait_for_load_state("load")
        assert page.get_by_role("heading", name="Approved").is_visible(), page.inner_text("body")[:600]
        page.screenshot(path=str(ARTIFACTS / "approval-done.png"), full_page=True)
        assert Proposals(store).show(aid)["status"] == "approved"
        page.goto(link, wait_until="load")  # the same link again
        assert page.get_by_text("already been used").is_visible()
        page.screenshot(path=str(ARTIFACTS / "approval-refused.png"), full_page=True)
    finally:
        server.stop()
        page.close()
        store.dispose()
