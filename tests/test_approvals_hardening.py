"""The approval service against a hostile web: cross-site POSTs refused even with a valid token,
security headers on every response, no token in any log, X-Forwarded-For trusted only in proxy
mode, loopback bind unless --host is given."""

from __future__ import annotations

import logging
import re
import socket
import threading
import time
from datetime import datetime, timedelta, timezone
from html import unescape

import httpx
import pytest
import uvicorn
from click.testing import CliRunner
from starlette.testclient import TestClient

from orchestrator.approvals import tokens
from orchestrator.approvals.app import HEADERS, create_app
from orchestrator.digest.sample import record_sample
from orchestrator.proposals import Proposals
from orchestrator.settings import Settings
from orchestrator.store import open_store

UTC = timezone.utc
SECRET = b"k" * 32
BASE = "https://approvals.example.com"


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("ORCHESTRATOR_HOME", str(tmp_path / "home"))
    store = open_store(f"sqlite:///{tmp_path}/store.db", cached=False)
    now = datetime.now(UTC).replace(microsecond=0)
    record_sample(store, now)
    props = Proposals(store)
    pending = props.list(status="pending")
    yield store, props, pending
    store.dispose()


def link(row, decision="approve"):
    exp = datetime.fromisoformat(row["expires_at"]) if row["expires_at"] else None
    tok = tokens.issue(row["action_id"], row["proposal_id"], decision, "ana@example.com", secret=SECRET,
                       now=datetime.now(UTC), ttl=timedelta(hours=1), not_after=exp)
    return f"/decide/{row['action_id']}/{decision}", tok


def client_for(store, **kw):
    app = create_app(store=store, secret=SECRET, settings=Settings(approval_base_url=BASE), **kw)
    return TestClient(app, base_url="http://127.0.0.1:8703")


@pytest.mark.parametrize("headers", [
    {"Origin": "https://evil.example"},
    {"Origin": "null"},
    {"Origin": "http://approvals.example.com"},  # scheme differs
    {"Referer": "https://evil.example/page?x=1"},
    {"Origin": "https://approvals.example.com.evil.example"},
])
def test_cross_site_post_is_refused_even_with_a_valid_token(env, headers):
    store, props, pending = env
    row = pending[0]
    path, tok = link(row)
    with client_for(store) as c:
        r = c.post(path, data={"token": tok}, headers=headers)
    assert r.status_code == 403 and "another site" in r.text
    assert props.show(row["action_id"])["status"] == "pending"
    ev = store.audit_events(kind="approval.refused")[-1]
    assert ev["payload"]["reason"] == "cross_site"
    # the token was not spent: the real page can still use it
    with client_for(store) as c:
        ok = c.post(path, data={"token": tok}, headers={"Origin": BASE})
    assert ok.status_code == 200 and props.show(row["action_id"])["status"] == "approved"


def test_same_origin_post_from_the_confirmation_page_works(env):
    store, props, pending = env
    row = pending[0]
    path, tok = link(row, "reject")
    with client_for(store) as c:
        page = c.get(path, params={"token": tok})
        form = unescape(re.search(r'name="token" value="([^"]+)"', page.text).group(1))
        # the browser sends the page's own origin (the host it was served from)
        r = c.post(path, data={"token": form}, headers={"Origin": "http://127.0.0.1:8703",
                                                        "Referer": "http://127.0.0.1:8703" + path})
    assert r.status_code == 200 and props.show(row["action_id"])["status"] == "declined"


def test_security_headers_on_every_response(env):
    store, _, pending = env
    path, tok = link(pending[0])
    with client_for(store) as c:
        responses = [c.get(path, params={"token": tok}), c.get("/healthz"), c.get("/"), c.get("/nope"),
                     c.put(path), c.get(path, params={"token": "forged"}),
                     c.post(path, data={"token": tok}, headers={"Origin": "https://evil.example"})]
    for r in responses:
        for name, value in HEADERS.items():
            assert r.headers.get(name) == value, (r.request.url, name)
        assert r.headers["strict-transport-security"].startswith("max-age=")  # the base URL is https
    assert responses[0].headers["referrer-policy"] == "same-origin"


def test_forwarded_for_is_trusted_only_in_proxy_mode(env):
    store, props, pending = env
    for trust, row in ((False, pending[0]), (True, pending[1])):
        path, tok = link(row)
        with client_for(store, trust_proxy=trust) as c:
            r = c.post(path, data={"token": tok}, headers={"X-Forwarded-For": "203.0.113.9"})
        assert r.status_code == 200
        ev = store.audit_events(kind="approval.link")[-1]
        assert ev["payload"].get("forwarded_for") == ("203.0.113.9" if trust else None)
        assert ev["payload"]["client_addr"] != "203.0.113.9"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_no_token_in_any_log_of_the_real_server(env, caplog, capfd):
    """The service as the CLI runs it (uvicorn with server_options): GET and POST with a token,
    then every log line (records and what reached stdout/stderr) is searched for it."""
    from orchestrator.approvals.cli import server_options

    store, props, pending = env
    path, tok = link(pending[0])
    port = _free_port()
    app = create_app(store=store, secret=SECRET, settings=Settings(approval_base_url=f"http://127.0.0.1:{port}"))
    server = uvicorn.Server(uvicorn.Config(app, **server_options("127.0.0.1", port, False, "127.0.0.1")))
    caplog.set_level(logging.DEBUG)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(200):
            if server.started:
                break
            time.sleep(0.02)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as c:
            assert c.get(path, params={"token": tok}).status_code == 200
            assert c.post(path, data={"token": tok}).status_code == 200
            c.get(path, params={"token": tok})  # replayed: refused page
        # if uvicorn's own access log were on, the record would still be scrubbed
        logging.getLogger("uvicorn.access").info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5", "GET",
                                                  f"{path}?token={tok}", "1.1", 200)
    finally:
        server.should_exit = True
        thread.join(timeout=5)
    out, err = capfd.readouterr()
    text = caplog.text + out + err
    assert any("orchestrator.approvals.access" == r.name and path in r.getMessage() for r in caplog.records)
    assert tok not in text and tok[:24] not in text


def test_serve_approvals_binds_loopback_unless_host_is_given(tmp_path, monkeypatch):
    import orchestrator.approvals.cli as cli_mod
    from orchestrator.cli import cli

    seen = []
    monkeypatch.setattr("uvicorn.run", lambda app, **kw: seen.append(kw))
    monkeypatch.setenv("ORCHESTRATOR_APPROVAL_SECRET", "s" * 32)
    monkeypatch.setenv("ORCHESTRATOR_APPROVAL_BASE_URL", "https://approvals.example.com")
    monkeypatch.setenv("ORCHESTRATOR_HOME", str(tmp_path))
    store = f"sqlite:///{tmp_path}/s.db"
    runner = CliRunner()
    assert runner.invoke(cli, ["serve-approvals", "--store", store]).exit_code == 0
    assert runner.invoke(cli, ["serve-approvals", "--store", store, "--host", "0.0.0.0", "--proxy-headers"]).exit_code == 0
    assert seen[0]["host"] == "127.0.0.1" and seen[0]["proxy_headers"] is False and seen[0]["forwarded_allow_ips"] is None
    assert seen[0]["access_log"] is False
    assert seen[1]["host"] == "0.0.0.0" and seen[1]["proxy_headers"] is True
    assert seen[1]["forwarded_allow_ips"] == "127.0.0.1,::1"
    assert cli_mod.server_options("127.0.0.1", 1, False, "*")["access_log"] is False
