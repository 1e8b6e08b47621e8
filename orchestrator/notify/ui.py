"""What the Dagster UI shows of the agent on each asset (pure Python over the store; the Dagster
side is ``sensors/notify.py``): the proposals waiting for approval that touch it (action, risk,
expiry, the signed Approve/Reject links) and, once decided, how it went and the runs it launched."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from orchestrator.notify.threads import _aware, _target
from orchestrator.scrubbing import scrub_pii

UTC = timezone.utc
UI_RECIPIENT = "dagster-ui"


@dataclass
class AssetProposals:
    asset_key: str
    pending: list[dict] = field(default_factory=list)  # waiting for approval, most urgent first
    recent: list[dict] = field(default_factory=list)  # decided within the window: status, runs
    incident: dict | None = None  # the newest incident touching the asset: summary, status, post-mortem

    @property
    def waiting(self) -> bool:
        return bool(self.pending)

    def fingerprint(self) -> str:
        """What the UI shows, without the links (re-signed each time): a change means a new
        evaluation."""
        strip = [{k: v for k, v in d.items() if not k.endswith("_url")} for d in self.pending]
        inc = (self.incident["id"], self.incident["status"]) if self.incident else None
        body = json.dumps([strip, [(d["action_id"], d["status"], d.get("runs")) for d in self.recent], inc],
                          sort_keys=True, default=str)
        return hashlib.sha256(body.encode()).hexdigest()[:16]


def _keys_of(row, graph) -> list[str]:
    payload = row.payload or {}
    keys = list(payload.get("asset_keys") or [])
    if not keys and payload.get("connector") and graph is not None:
        keys = [n.key for n in graph if n.connector == payload["connector"]]
    keys += [s.split(":", 1)[1] for s in (row.subjects or []) if s.startswith("asset:")]
    return list(dict.fromkeys(keys))


def proposals_by_asset(store, graph=None, *, now: datetime | None = None, recent: timedelta = timedelta(hours=24),
                       links: Callable[[object], dict[str, str] | None] | None = None,
                       run_url: Callable[[str], str] | None = None,
                       incidents: timedelta | None = timedelta(hours=72),
                       deadlines_of: Callable[[str], list[str]] | None = None) -> dict[str, AssetProposals]:
    """{asset key: AssetProposals} for every asset a pending action touches or an action decided
    within ``recent`` touched, and (``incidents``: a lookback, None for none) every asset an
    incident whose root failed within it touched, with that incident's summary, remediation,
    status and, once resolved, post-mortem. ``links(row)`` signs the Approve/Reject links of a
    pending action. ``deadlines_of(key)`` names the SLA policies an incident puts at stake."""
    from orchestrator.store.agent_models import ActionRow, ExecutionRow

    now = _aware(now) or datetime.now(UTC)
    out: dict[str, AssetProposals] = {}
    with store.session() as s:
        pending = s.scalars(select(ActionRow).where(ActionRow.status == "pending")
                            .order_by(ActionRow.risk_score.desc(), ActionRow.created_at)).all()
        decided = s.scalars(select(ActionRow).where(
            ActionRow.status.in_(("approved", "executing", "succeeded", "failed", "declined", "expired",
                                  "cancelled", "withdrawn")), ActionRow.updated_at >= now - recent)
            .order_by(ActionRow.updated_at)).all()
        runs: dict[str, list[str]] = {}
        ids = [r.id for r in decided]
        if ids:
            for e in s.scalars(select(ExecutionRow).where(ExecutionRow.action_id.in_(ids),
                                                          ExecutionRow.run_id.is_not(None))).all():
                runs.setdefault(e.action_id, []).append(e.run_id)
    for row in pending:
        exp = _aware(row.expires_at)
        if exp is not None and exp <= now:
            continue
        item = {"action_id": row.id, "proposal_id": row.proposal_id, "action": f"{row.type} on {_target(row.payload or {})}",
                "type": row.type, "risk": row.risk or "", "risk_score": row.risk_score,
                "confidence": row.confidence, "expires_at": exp.isoformat() if exp else "",
                "reason": scrub_pii(row.reason)[:1000], "gate_reason": scrub_pii(row.gate_reason or "")[:500]}
        signed = links(row) if links is not None else None
        if signed:
            item["approve_url"], item["reject_url"] = signed["approve"], signed["reject"]
        for k in _keys_of(row, graph):
            out.setdefault(k, AssetProposals(k)).pending.append(item)
    for row in decided:
        item = {"action_id": row.id, "proposal_id": row.proposal_id, "action": f"{row.type} on {_target(row.payload or {})}",
                "status": row.status, "runs": sorted(set(runs.get(row.id, [])))}
        if run_url is not None:
            item["run_urls"] = [run_url(r) for r in item["runs"]]
        for k in _keys_of(row, graph):
            out.setdefault(k, AssetProposals(k)).recent.append(item)
    if incidents is not None:
        for k, inc in incident_views(store, graph, now=now, lookback=incidents,
                                     deadlines_of=deadlines_of).items():
            out.setdefault(k, AssetProposals(k)).incident = inc
    return out


def incident_views(store, graph=None, *, now: datetime, lookback: timedelta = timedelta(hours=72),
                   deadlines_of: Callable[[str], list[str]] | None = None) -> dict[str, dict]:
    """{asset key: what the UI shows of the newest incident touching it} (scrubbed): id, status,
    category, summary, remediation, the cascade's size, deadlines at stake and the post-mortem."""
    from orchestrator.diagnosis.incidents import build_incidents, incidents_by_asset
    from orchestrator.notify.threads import _parse

    recent = [i for i in build_incidents(store, deadlines_of=deadlines_of)
              if (_parse(i.at) or now) >= now - lookback]
    views: dict[str, dict] = {}
    for key, inc in incidents_by_asset(recent, graph).items():
        views[key] = {
            "id": inc.id, "status": inc.status, "category": inc.category, "transient": inc.transient,
            "at": inc.at, "root": inc.asset_key or (f"connector:{inc.connector}" if inc.connector else ""),
            "summary": scrub_pii(inc.summary)[:2000], "remediation": [scrub_pii(r) for r in inc.remediation],
            "cascade": len(inc.cascade), "deadlines": list(inc.deadlines), "resolved_at": inc.resolved_at,
            "postmortem": scrub_pii(inc.postmortem)[:2000] if inc.postmortem else None,
        }
    return views


def signer(approval_settings=None, *, recipient: str = UI_RECIPIENT, now: datetime | None = None):
    """``links(row)`` for :func:`proposals_by_asset`, or None when no approval secret is set."""
    from orchestrator.approvals.tokens import MissingSecret, approval_secret, decision_url, issue, token_ttl

    if approval_settings is None:
        from orchestrator.settings import Settings

        approval_settings = Settings()
    try:
        secret = approval_secret(approval_settings)
    except MissingSecret:
        return None
    ttl = token_ttl(approval_settings)

    def links(row) -> dict[str, str]:
        return {d: decision_url(approval_settings.approval_base_url, row.id, d,
                                issue(row.id, row.proposal_id, d, recipient, secret=secret, now=now, ttl=ttl,
                                      not_after=_aware(row.expires_at)))
                for d in ("approve", "reject")}

    return links
