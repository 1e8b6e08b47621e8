"""Typed connector API errors: what the vendor said, with the HTTP status, read right.

``ConnectorAPIError`` is a ``dagster.Failure`` (so runs fail with it as they did with
dagster-fivetran/airbyte's own Failures) carrying ``system``, ``status_code`` (None when the API
could not be reached), ``vendor_message`` (the vendor's own error text), ``transient`` and
``retry_after``. Its message names them, so the failure diagnosis reads it as what it is
(``rate_limit`` for 429, ``source_unavailable`` for 5xx, timeouts and an unreachable API).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email.utils import parsedate_to_datetime

import dagster as dg

TRANSIENT_STATUS = {408, 425, 429, 500, 502, 503, 504}


class ConnectorAPIError(dg.Failure):
    def __init__(self, system: str, method: str, endpoint: str, *, status_code: int | None = None,
                 vendor_message: str | None = None, transient: bool = True, retry_after: float | None = None,
                 reason: str | None = None, attempts: int = 1):
        self.system = system
        self.method = method
        self.endpoint = endpoint
        self.status_code = status_code
        self.vendor_message = vendor_message
        self.transient = transient
        self.retry_after = retry_after
        self.attempts = attempts
        name = {"fivetran": "Fivetran", "airbyte": "Airbyte"}.get(system, system)
        if status_code is None:
            what = f"{name} API unreachable ({reason or 'no response'})"
        else:
            what = f"{name} API returned HTTP {status_code}{' ' + reason if reason else ''}"
        msg = f"{what} on {method} {endpoint}"
        if vendor_message:
            msg += f": {vendor_message}"
        if attempts > 1:
            msg += f" (after {attempts} attempts)"
        msg += " [transient]" if transient else " [not transient]"
        super().__init__(description=msg, metadata={
            "system": system, "status_code": status_code if status_code is not None else -1,
            "vendor_message": vendor_message or "", "transient": transient,
        })
        self.message = msg

    def __str__(self) -> str:
        return self.message


def vendor_message(response) -> str | None:
    """The vendor's own error text from a response body (JSON ``message``/``error``/``detail``
    fields, else the start of the body)."""
    try:
        body = response.text or ""
    except Exception:  # noqa: BLE001
        return None
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict):
        for k in ("message", "error", "detail", "title", "reason"):
            v = data.get(k)
            if isinstance(v, str) and v.strip():
                return v.strip()[:500]
            if isinstance(v, dict) and isinstance(v.get("message"), str):
                return v["message"][:500]
    body = " ".join(body.split())
    return body[:300] or None


def retry_after_s(response, cap: float) -> float | None:
    """Seconds a ``Retry-After`` header asks for (seconds or an HTTP date), capped."""
    raw = (getattr(response, "headers", None) or {}).get("Retry-After")
    if not raw:
        return None
    try:
        v = float(raw)
    except ValueError:
        try:
            v = parsedate_to_datetime(raw).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return max(0.0, min(v, cap))


class Deadline:
    """A total time budget shared by the requests of one sensor tick or one call."""

    def __init__(self, seconds: float | None):
        self.until = None if seconds is None else time.monotonic() + seconds

    def remaining(self) -> float | None:
        return None if self.until is None else self.until - time.monotonic()


@contextmanager
def deadline(client, seconds: float | None) -> Iterator[None]:
    """Bound every request ``client`` makes inside the block by ``seconds`` in total."""
    prev = getattr(client, "_deadline", None)
    object.__setattr__(client, "_deadline", Deadline(seconds))
    try:
        yield
    finally:
        object.__setattr__(client, "_deadline", prev)
