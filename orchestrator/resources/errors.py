"""Typed connector API errors: what the vendor said, with the HTTP status, read right.

``ConnectorAPIError`` is a ``dagster.Failure`` (so runs fail with it as they did with
dagster-fivetran/airbyte's own Failures) carrying ``system``, ``status_code`` (None when the API
could not be reached), ``vendor_message`` (the vendor's own error text), ``transient`` and
``retry_after``. Its message names them, so the failure diagnosis reads it as what it is
(``rate_limit`` for 429, ``source_unavailable`` for 5xx, timeouts and an unreachable API).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from email.utils import parsedate_to_datetime

import dagster as dg

TRANSIENT_STATUS = {408, 425, 429, 500, 502, 503, 504}


class ConnectorAPIError(dg.Failure):
    def __init__(self, system: str, method: str, endpoint: str, *, status_code: int | None = None,
                 vendor_message: str | None = None, transient: bool = True, retry_after: float | None = None,
                 reason: str | None = None, attempts: int = 1, ambiguous: bool = False):
        self.system = system
        # the request may have reached the vendor and been acted on (a read timeout, a dropped
        # connection, 5xx, a garbled 2xx): whether a write happened is read from the vendor's state
        self.ambiguous = ambiguous
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
    """A total time budget shared by every connector request made inside ``api_deadline``; an
    API found unreachable inside it fails fast afterwards (one timeout per API per tick, not one
    per request)."""

    def __init__(self, seconds: float | None):
        self.seconds = seconds
        self.until = None if seconds is None else time.monotonic() + seconds
        self.down: dict[str, ConnectorAPIError] = {}

    def remaining(self) -> float | None:
        return None if self.until is None else self.until - time.monotonic()


_CURRENT: ContextVar[Deadline | None] = ContextVar("orchestrator_api_deadline", default=None)


def current_deadline() -> Deadline | None:
    return _CURRENT.get()


@contextmanager
def api_deadline(seconds: float | None) -> Iterator[Deadline]:
    """Bound the connector requests made inside the block (this thread/task) by ``seconds`` in
    total: each request's timeout is cut to what is left, retries stop when it is spent."""
    d = Deadline(seconds)
    token = _CURRENT.set(d)
    try:
        yield d
    finally:
        _CURRENT.reset(token)


class SyncTraffic:
    """What the API answered while one sync was started and polled (``count_traffic``): HTTP 429s,
    requests sent again after a transient answer (429/5xx/timeouts), and vendor-side signs the
    client saw while polling (Fivetran reschedules: the source's API quota). Counted per sync, they
    become the sync's ``rate_limited``/``retries`` signals (``orchestrator.health.traffic``)."""

    __slots__ = ("requests", "rate_limited", "retries", "rescheduled")

    def __init__(self) -> None:
        self.requests = 0
        self.rate_limited = 0
        self.retries = 0
        self.rescheduled = 0

    def __repr__(self) -> str:
        return (f"SyncTraffic(requests={self.requests}, rate_limited={self.rate_limited}, "
                f"retries={self.retries}, rescheduled={self.rescheduled})")


_TRAFFIC: ContextVar[SyncTraffic | None] = ContextVar("orchestrator_sync_traffic", default=None)


@contextmanager
def count_traffic() -> Iterator[SyncTraffic]:
    """Count the connector requests made inside the block (this thread/task): every request
    ``send`` makes, the 429s it was answered with and the retries it made."""
    t = SyncTraffic()
    token = _TRAFFIC.set(t)
    try:
        yield t
    finally:
        _TRAFFIC.reset(token)


def current_traffic() -> SyncTraffic | None:
    return _TRAFFIC.get()


_WRITES_ONCE: ContextVar[bool] = ContextVar("orchestrator_writes_once", default=False)
IDEMPOTENT_METHODS = {"GET", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE"}


@contextmanager
def single_attempt_writes() -> Iterator[None]:
    """Inside the block a non-idempotent request (POST: start a sync, a resync, a reset) is never
    sent twice once it may have reached the vendor: it is retried only when it certainly did not
    (the connection was refused or not established, 408/425/429). Otherwise the error is raised at
    once, ``ambiguous``, and the caller reads the vendor's state to learn whether it took effect
    (the execution sensor does; a blind retry could start a second resync)."""
    token = _WRITES_ONCE.set(True)
    try:
        yield
    finally:
        _WRITES_ONCE.reset(token)


def _not_sent(exc: BaseException) -> bool:
    """True when a ``requests`` exception means the request never reached the server."""
    import requests

    if isinstance(exc, requests.ConnectTimeout):
        return True
    if isinstance(exc, requests.ConnectionError) and not isinstance(exc, requests.ReadTimeout):
        text = repr(exc)
        return any(m in text for m in ("NewConnectionError", "Failed to establish", "Connection refused",
                                       "Name or service not known", "nodename nor servname"))
    return False


def sensor_api_deadline_s() -> float:
    """``ORCHESTRATOR_SENSOR_API_DEADLINE`` (seconds, default 30): what one sensor tick may
    spend on connector APIs in total (Dagster stops a sensor tick at 60 s)."""
    return float(os.environ.get("ORCHESTRATOR_SENSOR_API_DEADLINE", "30"))


def send(system: str, method: str, endpoint: str, do_request, *, timeout: float, max_retries: int,
         retry_delay: float, backoff: float = 2.0, retry_after_cap: float = 60.0, key: str = ""):
    """Send one request with retries; returns the ``requests.Response`` (status < 400) or raises
    a ``ConnectorAPIError``: unreachable/timeouts and 408/425/429/5xx are transient and retried
    (``Retry-After`` honoured, capped by the deadline), other 4xx are not retried."""
    import requests

    dl = current_deadline()
    if dl is not None and key in dl.down:
        raise dl.down[key]
    once = _WRITES_ONCE.get() and method.upper() not in IDEMPOTENT_METHODS
    traffic = _TRAFFIC.get()
    attempt = 0
    while True:
        attempt += 1
        if traffic is not None:
            traffic.requests += 1
            if attempt > 1:
                traffic.retries += 1
        t = timeout
        left = dl.remaining() if dl is not None else None
        if left is not None:
            if left <= 0.05:
                raise ConnectorAPIError(system, method, endpoint, reason=f"time budget of {dl.seconds:.0f}s spent",
                                        transient=True, attempts=attempt - 1 or 1)
            # one hung API cannot take the whole tick: at most half of the deadline per request
            t = min(t, left, max(dl.seconds / 2, 0.1) if dl.seconds else left)
        try:
            response = do_request(t)
        except requests.RequestException as exc:
            if isinstance(exc, requests.Timeout):
                why = f"timed out after {t:.0f}s: {type(exc).__name__}"
            else:
                why = f"could not connect to the server: {type(exc).__name__}: {_last_reason(exc)}"
            err = ConnectorAPIError(system, method, endpoint, reason=why, transient=True, attempts=attempt,
                                    ambiguous=not _not_sent(exc))
            if once and err.ambiguous:
                raise err
            if dl is not None and isinstance(exc, requests.Timeout):
                # inside a tick's deadline a request that got no answer in time is not tried
                # again: that API is down for the rest of the tick (the others still get read)
                dl.down[key] = err
                raise err
            wait = retry_delay * (backoff ** (attempt - 1))
        else:
            code = response.status_code
            if code < 400:
                return response
            if code == 429 and traffic is not None:
                traffic.rate_limited += 1
            transient = code in TRANSIENT_STATUS
            ra = retry_after_s(response, retry_after_cap)
            err = ConnectorAPIError(system, method, endpoint, status_code=code, reason=response.reason or None,
                                    vendor_message=vendor_message(response), transient=transient,
                                    retry_after=ra, attempts=attempt, ambiguous=code >= 500)
            if not transient or (once and err.ambiguous):
                raise err
            wait = ra if ra is not None else retry_delay * (backoff ** (attempt - 1))
        left = dl.remaining() if dl is not None else None
        if attempt > max_retries or (left is not None and wait >= left):
            if dl is not None and err.status_code is None:
                dl.down[key] = err
            raise err
        time.sleep(wait)


def _last_reason(exc: BaseException) -> str:
    """The innermost cause's words (e.g. ``[Errno 111] Connection refused``), without the URL."""
    text = str(exc)
    for marker in ("Failed to establish a new connection:", "Caused by "):
        if marker in text:
            text = text.split(marker, 1)[1]
    return " ".join(text.split()).rstrip("'\")( ")[:160]


def json_body(system: str, method: str, endpoint: str, response):
    """The response's JSON object, or a transient ``ConnectorAPIError`` naming the garbage."""
    try:
        data = response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        snippet = " ".join((response.text or "").split())[:200]
        raise ConnectorAPIError(system, method, endpoint, status_code=response.status_code,
                                reason="with a body that is not a JSON object (API temporarily unavailable "
                                       "or a proxy in the way)", vendor_message=snippet or "(empty)",
                                transient=True, ambiguous=True)
    return data
