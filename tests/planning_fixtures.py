"""Shared fixtures of the scheduling-agent tests: a small project, and a scripted
OpenAI-compatible HTTP server (starlette + uvicorn on 127.0.0.1) that records what it receives."""

from __future__ import annotations

import asyncio
import json
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from orchestrator.core.graph import CONNECTOR_TABLE, DASHBOARD, DBT_MODEL, AssetGraph, AssetNode
from orchestrator.core.records import (
    Assessment,
    DiagnosedFailure,
    FailureRecord,
    FreshnessAssessment,
    FreshnessStatus,
    Snapshot,
)
from orchestrator.policies import DurationModel, load_policies, resolve

UTC = timezone.utc
NOW = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)  # a Tuesday

POLICIES = """
policies:
  - name: exec
    select: [{key: "dashboard/exec"}]
    deadline: {cron: "0 10 * * *", timezone: UTC, window: 8h}
    tier: critical
    owners: [finance-data@example.com]
    rollout: auto
    auto_approve: [retry, materialize, resync_table, cancel_run, defer]
  - name: growth
    select: [{key: "dashboard/growth"}, {key: "fct_events_daily"}]
    deadline: {cron: "0 12 * * *", timezone: UTC, window: 12h}
    tier: low
    owners: [team:growth]
    rollout: auto
    auto_approve: [retry, materialize, defer, backfill]
    budget: {per_day: 50, unit: usd}
    windows:
      off_peak: [{days: daily, start: "10:00", end: "11:00"}]
BLACKOUT
"""


def graph() -> AssetGraph:
    n = AssetNode
    return AssetGraph([
        n("crm/account", CONNECTOR_TABLE, kinds=frozenset({"fivetran"}), connector="fivetran:crm"),
        n("crm/contact", CONNECTOR_TABLE, kinds=frozenset({"fivetran"}), connector="fivetran:crm"),
        n("events/page_view", CONNECTOR_TABLE, kinds=frozenset({"airbyte"}), connector="airbyte:events"),
        n("stg_account", DBT_MODEL, upstream=("crm/account",)),
        n("stg_contact", DBT_MODEL, upstream=("crm/contact",)),
        n("stg_events", DBT_MODEL, upstream=("events/page_view",)),
        n("fct_revenue", DBT_MODEL, upstream=("stg_account", "stg_contact")),
        n("fct_events_daily", DBT_MODEL, upstream=("stg_events",), partitioning="daily"),
        n("dashboard/exec", DASHBOARD, upstream=("fct_revenue",)),
        n("dashboard/growth", DASHBOARD, upstream=("stg_events",)),
    ])


def resolution(g: AssetGraph, now: datetime = NOW, blackout: str = ""):
    text = POLICIES.replace("BLACKOUT", blackout)
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "p.yaml"
        p.write_text(text)
        res = resolve(load_policies([p]), g, DurationModel(), now)
    assert res.ok, res.skip_reason
    return res


def fresh(key, status="at_risk", slack=-600.0, blocker=None, tier="critical", deadline=None):
    return FreshnessAssessment(asset_key=key, status=FreshnessStatus(status), tier=tier, policy=None,
                               deadline=deadline or NOW + timedelta(hours=1), predicted_ready=None,
                               slack_s=slack, blocking_asset=blocker, reason="test")


def failure(fid, category, message, *, connector=None, asset=None, partition=None, transient=True,
            at=None, system="fivetran", confidence=0.9):
    f = FailureRecord(failure_id=fid, at=at or NOW - timedelta(minutes=30), message=message, system=system,
                      asset_key=asset, connector=connector, partition=partition)
    return DiagnosedFailure(f, category, transient, confidence, (message[:120],))


@dataclass
class Scenario:
    graph: AssetGraph
    snapshot: Snapshot
    assessment: Assessment
    resolution: object
    durations: DurationModel = field(default_factory=DurationModel)


def scenario(freshness=(), failures=(), runs=(), costs=(), blackout="", now=NOW) -> Scenario:
    g = graph()
    snap = Snapshot(taken_at=now, graph=g, runs=list(runs), costs=list(costs),
                    failures=[d.failure for d in failures],
                    last_success={k: now - timedelta(hours=20) for k in g.keys})
    asm = Assessment(taken_at=now, freshness={f.asset_key: f for f in freshness}, failures=list(failures))
    return Scenario(g, snap, asm, resolution(g, now, blackout))


# -- a scripted OpenAI-compatible server ------------------------------------------------------------
def completion(content: str | None, *, refusal: str | None = None, finish="stop", model="m"):
    return {
        "id": "chatcmpl-test", "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "finish_reason": finish,
                     "message": {"role": "assistant", "content": content, "refusal": refusal}}],
        "usage": {"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500},
    }


class FakeLLM:
    """``script``: a list of replies, one per request: ("json", obj) | ("text", str) |
    ("refusal", str) | ("sleep", seconds, obj). ``requests`` records every request body."""

    def __init__(self):
        self.script: list[tuple] = []
        self.requests: list[dict] = []
        self.port = _free_port()
        app = Starlette(routes=[Route("/v1/chat/completions", self._chat, methods=["POST"])])
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        for _ in range(200):
            if self.server.started:
                break
            time.sleep(0.02)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def raw_received(self) -> str:
        return json.dumps(self.requests)

    async def _chat(self, request: Request):
        body = await request.json()
        self.requests.append(body)
        step = self.script.pop(0) if self.script else ("text", "{}")
        kind = step[0]
        if kind == "json":
            return JSONResponse(completion(json.dumps(step[1]), model=body.get("model", "m")))
        if kind == "text":
            return JSONResponse(completion(step[1]))
        if kind == "refusal":
            return JSONResponse(completion(None, refusal=step[1]))
        if kind == "sleep":
            await asyncio.sleep(step[1])
            return JSONResponse(completion(json.dumps(step[2])))
        raise ValueError(kind)

    def stop(self):
        self.server.should_exit = True
        self.thread.join(timeout=5)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
