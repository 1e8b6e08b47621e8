"""Connector API faults read right by the project's Fivetran/Airbyte client subclasses, against a
scripted HTTP server on a random loopback port: unreachable, 429 with Retry-After, 5xx storms,
garbage bodies and hung responses become typed transient errors with the status code and the
vendor's message, diagnosed as what they are, within a bounded time."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from orchestrator.diagnosis import diagnose
from orchestrator.resources.airbyte import AirbyteWorkspaceResource
from orchestrator.resources.errors import ConnectorAPIError, api_deadline
from orchestrator.resources.fivetran import FivetranWorkspaceResource


class Script:
    def __init__(self):
        self.replies: list[tuple] = []  # (status, headers, body, delay)
        self.default = (200, {}, json.dumps({"data": {"items": []}}), 0.0)
        self.times: list[float] = []


@pytest.fixture
def server():
    script = Script()

    class H(BaseHTTPRequestHandler):
        def _reply(self):
            script.times.append(time.monotonic())
            status, headers, body, delay = script.replies.pop(0) if script.replies else script.default
            if delay:
                time.sleep(delay)
            try:
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body.encode())
            except (BrokenPipeError, ConnectionResetError):
                pass

        do_GET = do_POST = do_PATCH = _reply

        def log_message(self, *a):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
    httpd.daemon_threads = True
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield script, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def _fivetran(base, **kw):
    return FivetranWorkspaceResource(account_id="a", api_key="k", api_secret="s", api_base_url=base,
                                     request_retry_delay=0.05, **kw).get_client()


def _airbyte(base, **kw):
    return AirbyteWorkspaceResource(rest_api_base_url=f"{base}/api/public/v1",
                                    configuration_api_base_url=f"{base}/api/v1", workspace_id="w",
                                    request_retry_delay=0.05, **kw).get_client()


def _closed_port() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}"


def test_fivetran_api_down_is_a_typed_transient_error_not_unboundlocalerror():
    client = _fivetran(_closed_port())
    with pytest.raises(ConnectorAPIError) as ei:
        client.get_groups()
    e = ei.value
    assert e.status_code is None and e.transient and e.system == "fivetran"
    assert "could not connect" in str(e) and "Connection refused" in str(e)
    d = diagnose(str(e))
    assert d.category == "source_unavailable" and d.transient


def test_airbyte_429_storm_names_the_status_and_vendor_message_and_honours_retry_after(server):
    script, base = server
    script.replies = [(429, {"Retry-After": "1"}, json.dumps({"message": "Rate limit exceeded for workspace"}), 0)] * 4
    client = _airbyte(base)
    started = time.monotonic()
    with pytest.raises(ConnectorAPIError) as ei:
        client._single_request(method="GET", url=f"{base}/api/public/v1/jobs")
    e = ei.value
    assert e.status_code == 429 and e.transient and e.retry_after == 1.0
    assert "HTTP 429" in str(e) and "Rate limit exceeded for workspace" in str(e)
    assert time.monotonic() - started >= 2.9  # waited Retry-After between attempts (3 retries)
    gaps = [b - a for a, b in zip(script.times, script.times[1:])]
    assert all(g >= 0.95 for g in gaps), gaps
    assert diagnose(str(e)).category == "rate_limit"


def test_5xx_storm_then_recovery_succeeds_and_a_storm_is_source_unavailable(server):
    script, base = server
    script.replies = [(503, {}, json.dumps({"message": "upstream connect error"}), 0)] * 2
    assert _fivetran(base).get_groups() == {"items": []}  # retried through a short storm
    script.replies = [(503, {}, json.dumps({"code": "x", "message": "Service is under maintenance"}), 0)] * 10
    with pytest.raises(ConnectorAPIError) as ei:
        _fivetran(base).get_groups()
    assert ei.value.status_code == 503 and "under maintenance" in str(ei.value)
    d = diagnose(str(ei.value))
    assert d.category == "source_unavailable" and d.transient
    script.replies = [(502, {}, json.dumps({"message": "Airbyte server is temporarily unavailable"}), 0)] * 10
    with pytest.raises(ConnectorAPIError) as ei:
        _airbyte(base)._single_request(method="GET", url=f"{base}/api/public/v1/jobs")
    e = ei.value
    assert e.status_code == 502 and e.transient and "HTTP 502" in str(e) and "temporarily unavailable" in str(e)
    assert diagnose(str(e)).category == "source_unavailable"


def test_garbage_body_is_an_error_never_data(server):
    script, base = server
    script.default = (200, {"Content-Type": "text/html"}, "<html><body>Bad gateway page</body></html>", 0)
    with pytest.raises(ConnectorAPIError) as ei:
        _fivetran(base).get_groups()
    assert ei.value.status_code == 200 and "not a JSON object" in str(ei.value)
    assert diagnose(str(ei.value)).transient
    with pytest.raises(ConnectorAPIError):
        _airbyte(base)._single_request(method="GET", url=f"{base}/api/public/v1/jobs")


def test_non_transient_4xx_is_not_retried(server):
    script, base = server
    script.replies = [(401, {}, json.dumps({"message": "Invalid API key"}), 0)]
    with pytest.raises(ConnectorAPIError) as ei:
        _fivetran(base).get_groups()
    assert ei.value.status_code == 401 and not ei.value.transient and len(script.times) == 1
    assert diagnose(str(ei.value)).category == "auth_expired"


def test_a_hung_api_is_bounded_by_the_tick_deadline(server):
    script, base = server
    script.default = (200, {}, json.dumps({"data": {"items": []}}), 30.0)  # never answers in time
    client = _fivetran(base, request_timeout=2.0)
    started = time.monotonic()
    with api_deadline(5.0):
        for _ in range(10):  # ten requests in one tick: the first exhausts, the rest fail fast
            with pytest.raises(ConnectorAPIError) as ei:
                client.get_groups()
    took = time.monotonic() - started
    assert took < 25.0, took  # not a timing figure: it returned long before the 30 s hang ended
    assert ei.value.transient and ("timed out" in str(ei.value) or "budget" in str(ei.value))
