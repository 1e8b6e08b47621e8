"""Local stand-ins for the Slack Web API and a Teams incoming webhook (real HTTP on 127.0.0.1,
ephemeral ports) that record what arrives, for the notification tests."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Server:
    def __init__(self, handler_cls):
        self.lock = threading.Lock()
        self.received: list[dict] = []  # accepted requests, in arrival order
        self.raw: list[str] = []  # every body that arrived (accepted or not), for the secret scan
        outer = self

        class H(handler_cls):
            server_obj = outer

            def log_message(self, *a):  # keep test output quiet
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _SlackHandler(BaseHTTPRequestHandler):
    server_obj: "SlackServer"

    def _json(self, code: int, body: dict, headers: dict | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):  # noqa: N802
        srv = self.server_obj
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        with srv.lock:
            srv.raw.append(raw + "\n" + "\n".join(f"{k}: {v}" for k, v in self.headers.items()
                                                  if k.lower() != "authorization"))
            if self.path != "/api/chat.postMessage":
                return self._json(404, {"ok": False, "error": "unknown_method"})
            if self.headers.get("Authorization") != f"Bearer {srv.token}":
                return self._json(200, {"ok": False, "error": "invalid_auth"})
            now = time.monotonic()
            if now < srv.limited_until:
                srv.early_calls += 1  # a client that ignores Retry-After
                return self._json(429, {"ok": False, "error": "ratelimited"},
                                  {"Retry-After": str(srv.retry_after)})
            if srv.throttle_next > 0:
                srv.throttle_next -= 1
                srv.throttled += 1
                if srv.enforce:
                    srv.limited_until = now + srv.retry_after
                return self._json(429, {"ok": False, "error": "ratelimited"},
                                  {"Retry-After": str(srv.retry_after)})
            body = json.loads(raw)
            channel = body.get("channel", "")
            if channel in srv.channel_ids.values():
                channel = next(k for k, v in srv.channel_ids.items() if v == channel)
            if not channel.startswith("#"):
                return self._json(200, {"ok": False, "error": "channel_not_found"})
            cid = srv.channel_ids.setdefault(channel, f"C{len(srv.channel_ids) + 1:06d}")
            srv.seq += 1
            ts = f"{1700000000 + srv.seq}.{srv.seq:06d}"
            srv.received.append({"channel": channel, "ts": ts, "body": body, "at": now})
            return self._json(200, {"ok": True, "channel": cid, "ts": ts, "message": {"text": body.get("text")}})


class SlackServer(_Server):
    """``POST /api/chat.postMessage``: checks the bearer token, answers ``ts`` and the channel id;
    ``throttle_next`` answers that many calls with 429 + ``Retry-After: retry_after`` (and, with
    ``enforce``, keeps refusing until that time has passed, counting ``early_calls``)."""

    def __init__(self, token: str):
        self.token = token
        self.seq = 0
        self.channel_ids: dict[str, str] = {}
        self.throttle_next = 0
        self.throttled = 0
        self.retry_after = 1
        self.enforce = True
        self.limited_until = 0.0
        self.early_calls = 0
        super().__init__(_SlackHandler)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def messages(self, channel: str | None = None) -> list[dict]:
        with self.lock:
            return [m for m in self.received if channel is None or m["channel"] == channel]


class _TeamsHandler(BaseHTTPRequestHandler):
    server_obj: "TeamsServer"

    def do_POST(self):  # noqa: N802
        srv = self.server_obj
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        with srv.lock:
            srv.raw.append(raw)
            if srv.throttle_next > 0:
                srv.throttle_next -= 1
                self.send_response(429)
                self.send_header("Retry-After", "1")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            srv.received.append({"path": self.path, "body": json.loads(raw)})
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", "1")
        self.end_headers()
        self.wfile.write(b"1")


class TeamsServer(_Server):
    def __init__(self):
        self.throttle_next = 0
        super().__init__(_TeamsHandler)

    def url(self, hook: str) -> str:
        return f"http://127.0.0.1:{self.port}/webhookb2/{hook}"
