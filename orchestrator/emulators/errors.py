"""An HTTP error raised by an emulator engine and rendered as the vendor's error body."""

from __future__ import annotations

from typing import Any


class HttpProblem(Exception):
    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None):
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body
        self.headers = headers or {}
