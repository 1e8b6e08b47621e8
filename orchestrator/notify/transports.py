"""Sending one message: the Slack Web API (``chat.postMessage``) and Teams incoming webhooks, over httpx.

Both raise typed errors the dispatcher acts on: :class:`RateLimited` (HTTP 429 with its
``Retry-After``, or Slack's ``ratelimited``), :class:`Transient` (unreachable, timeouts, 5xx) and
:class:`Refused` (anything the provider will refuse again: bad token, unknown channel, 4xx).
No error text carries the token or the webhook URL.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from orchestrator.scrubbing import scrub


class NotifyError(Exception):
    pass


class RateLimited(NotifyError):
    def __init__(self, retry_after: float, detail: str):
        super().__init__(f"rate limited, retry after {retry_after:g} s ({detail})")
        self.retry_after = retry_after


class Transient(NotifyError):
    pass


class Refused(NotifyError):
    pass


def _retry_after(resp: httpx.Response, default: float = 30.0) -> float:
    try:
        return max(0.0, float(resp.headers.get("Retry-After", default)))
    except ValueError:
        return default


_CLIENTS: dict[float, httpx.Client] = {}


def shared_client(timeout: float) -> httpx.Client:
    """One pooled client per timeout for the process (creating one loads the CA bundle: ~0.3 s)."""
    client = _CLIENTS.get(timeout)
    if client is None or client.is_closed:
        client = _CLIENTS[timeout] = httpx.Client(timeout=timeout)
    return client


@dataclass
class Sent:
    message_id: str | None  # Slack ts
    channel_id: str | None = None


class SlackClient:
    """``chat.postMessage`` with ``thread_ts`` (follow-ups in the incident's thread)."""

    def __init__(self, token: str, base_url: str = "https://slack.com/api", *, timeout: float = 10.0,
                 client: httpx.Client | None = None):
        self._token = token
        self.base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._given = client

    @property
    def _client(self) -> httpx.Client:
        return self._given or shared_client(self._timeout)

    def post_message(self, channel: str, text: str, *, blocks: list | None = None, thread_ts: str | None = None,
                     reply_broadcast: bool = False) -> Sent:
        body: dict = {"channel": channel, "text": text, "unfurl_links": False, "unfurl_media": False}
        if blocks:
            body["blocks"] = blocks
        if thread_ts:
            body["thread_ts"] = thread_ts
            if reply_broadcast:
                body["reply_broadcast"] = True
        try:
            resp = self._client.post(f"{self.base_url}/chat.postMessage", json=body,
                                     headers={"Authorization": f"Bearer {self._token}"})
        except httpx.HTTPError as exc:
            raise Transient(f"Slack unreachable: {scrub(str(exc)) or type(exc).__name__}") from None
        if resp.status_code == 429:
            raise RateLimited(_retry_after(resp), f"Slack HTTP 429 on chat.postMessage to {channel}")
        if resp.status_code >= 500:
            raise Transient(f"Slack HTTP {resp.status_code} on chat.postMessage to {channel}")
        try:
            data = resp.json()
        except ValueError:
            raise Transient(f"Slack answered HTTP {resp.status_code} with a body that is not JSON") from None
        if resp.status_code >= 400 or not data.get("ok"):
            error = str(data.get("error") or f"HTTP {resp.status_code}")
            if error == "ratelimited":
                raise RateLimited(_retry_after(resp), f"Slack ratelimited on {channel}")
            if error in ("internal_error", "fatal_error", "service_unavailable", "request_timeout"):
                raise Transient(f"Slack {error} on chat.postMessage to {channel}")
            raise Refused(f"Slack refused chat.postMessage to {channel}: {scrub(error)}")
        return Sent(str(data.get("ts") or "") or None, data.get("channel"))


class TeamsWebhook:
    """An incoming-webhook URL (Workflows or the older Office 365 connector): one Adaptive Card per
    message. Teams webhooks cannot reply in a thread: every message names its incident instead."""

    def __init__(self, *, timeout: float = 10.0, client: httpx.Client | None = None):
        self._timeout = timeout
        self._given = client

    @property
    def _client(self) -> httpx.Client:
        return self._given or shared_client(self._timeout)

    def post(self, url: str, name: str, card: dict) -> Sent:
        body = {"type": "message", "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}]}
        try:
            resp = self._client.post(url, json=body)
        except httpx.HTTPError as exc:
            raise Transient(f"Teams webhook {name} unreachable: {type(exc).__name__}") from None
        if resp.status_code == 429:
            raise RateLimited(_retry_after(resp), f"Teams HTTP 429 on webhook {name}")
        if resp.status_code >= 500:
            raise Transient(f"Teams HTTP {resp.status_code} on webhook {name}")
        if resp.status_code >= 400:
            raise Refused(f"Teams refused webhook {name}: HTTP {resp.status_code} {scrub(resp.text[:200])}")
        return Sent(None)
