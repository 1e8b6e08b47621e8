"""A real HTTP proxy on a loopback port (port 0) in front of a connector emulator, for fault
injection: each request gets a fault chosen by ``decide(method, path)`` and every request that was
forwarded is recorded with the emulator's answer, so a test can count what reached the vendor.

Faults: ``pass``; ``delay`` (forwarded after a short pause); ``hang`` (never answered: held, then
the connection closed); ``refuse`` (connection closed, not forwarded); ``garbage`` (a 200 HTML page,
not forwarded); ``throttle`` (429 with ``Retry-After: 0``, not forwarded); and faults where the
request *reached the emulator* but its answer is lost: ``corrupt`` (a truncated 200 body),
``bad_gateway`` (502 HTML), ``drop`` (connection closed without an answer) and ``slow_answer`` (the
answer held back past the client's timeout).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

FORWARDED = {"pass", "delay", "corrupt", "bad_gateway", "drop", "slow_answer"}
NOT_FORWARDED = {"hang", "refuse", "garbage", "throttle"}
FAULTS = sorted(FORWARDED | NOT_FORWARDED)


@dataclass
class Forwarded:
    method: str
    path: str
    body: bytes
    status: int  # the emulator's answer
    fault: str


@dataclass
class FaultProxy:
    target: str  # http://127.0.0.1:PORT of the emulator
    decide: Callable[[str, str], str] = lambda method, path: "pass"
    hang_s: float = 5.0
    slow_s: float = 2.0
    forwarded: list[Forwarded] = field(default_factory=list)
    faults: list[tuple[str, str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    port: int = 0

    def start(self) -> FaultProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fault = proxy.decide(self.command, self.path)
                with proxy.lock:
                    proxy.faults.append((self.command, self.path, fault))
                if fault == "hang":
                    time.sleep(proxy.hang_s)
                    self.close_connection = True
                    return
                if fault == "refuse":
                    self.close_connection = True
                    return
                if fault == "garbage":
                    return self._send(200, b"<html><body>502 upstream gone</body></html>", "text/html")
                if fault == "throttle":
                    return self._send(429, b'{"message": "Rate limit exceeded (proxy)"}', "application/json",
                                      {"Retry-After": "0"})
                if fault == "delay":
                    time.sleep(0.2)
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("host", "content-length", "connection", "accept-encoding")}
                up = requests.request(self.command, proxy.target + self.path, data=body or None, headers=headers,
                                      timeout=30)
                with proxy.lock:
                    proxy.forwarded.append(Forwarded(self.command, self.path.split("?", 1)[0], body,
                                                     up.status_code, fault))
                if fault == "corrupt":
                    return self._send(200, up.content[: max(1, len(up.content) // 2)], "application/json")
                if fault == "bad_gateway":
                    return self._send(502, b"<html>502 Bad Gateway</html>", "text/html")
                if fault == "drop":
                    self.close_connection = True
                    return
                if fault == "slow_answer":
                    time.sleep(proxy.slow_s)
                self._send(up.status_code, up.content, up.headers.get("Content-Type", "application/json"))

            def _send(self, status, content, ctype, extra=None):
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(content)))
                    for k, v in (extra or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(content)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle

            def log_message(self, *a):
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rebase(self, url: str) -> str:
        """The emulator URL ``url`` (same host as ``target``) through this proxy."""
        return self.url + url[len(self.target):]

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
