"""What there is to tell: one thread per incident, its changes in order (pure Python over the store).

An incident is a root failure and its cascade (``orchestrator.diagnosis.incidents``). Its changes:

* ``opened``: where it failed, the diagnosis (category, transient or not), the summary;
* ``escalation:<category>``: the planner handed it to people (credentials, grants, setup);
* ``action:<id>:<phase>`` for each action of the agent on it: ``proposed`` (waiting for approval:
  the message carries the signed Approve/Reject links), ``running`` (approved by a person or by
  policy), ``succeeded``, ``failed``, ``rejected``, ``expired``, ``cancelled``, ``recorded``
  (shadow rollout / circuit breaker);
* ``resolved``: an action on it worked; the post-mortem line.

A change is identified by its key alone, so the same situation seen by many ticks is one change.
Every text is scrubbed (credentials and personal data) here, before any transport sees it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from orchestrator.scrubbing import scrub_pii

UTC = timezone.utc

PHASES = {
    "pending": "proposed", "approved": "running", "executing": "running", "succeeded": "succeeded",
    "failed": "failed", "declined": "rejected", "expired": "expired", "cancelled": "cancelled",
    "record_only": "recorded", "withdrawn": "withdrawn",
}
PHASE_ORDER = ["proposed", "running", "recorded", "rejected", "expired", "cancelled", "withdrawn", "failed",
               "succeeded"]


def _aware(t: datetime | None) -> datetime | None:
    if t is None:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _parse(ts) -> datetime | None:
    if isinstance(ts, datetime):
        return _aware(ts)
    try:
        return _aware(datetime.fromisoformat(str(ts)))
    except (TypeError, ValueError):
        return None


@dataclass
class PendingAction:
    action_id: str
    proposal_id: str | None
    type: str
    risk: str | None
    expires_at: datetime | None


@dataclass
class Change:
    key: str
    text: str  # scrubbed, plain (transports format it)
    at: datetime | None = None
    pending: PendingAction | None = None  # a proposal waiting for approval: links are added per recipient
    final: bool = False  # the incident is over (Slack: also shown in the channel)


@dataclass
class IncidentThread:
    incident_id: str
    title: str  # scrubbed, one line
    owners: tuple[str, ...]
    policies: tuple[str, ...]
    changes: list[Change] = field(default_factory=list)

    @property
    def resolved(self) -> bool:
        return any(c.key == "resolved" for c in self.changes)


OwnersOf = Callable[[str | None, str | None], tuple[tuple[str, ...], tuple[str, ...]]]


def _no_owners(asset_key: str | None, connector: str | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return (), ()


def _where(asset_key: str | None, connector: str | None) -> str:
    return asset_key or (f"connector {connector}" if connector else "a step")


def _target(payload: dict) -> str:
    keys = list(payload.get("asset_keys") or [])
    what = ", ".join(keys[:3]) + (f" (+{len(keys) - 3} more)" if len(keys) > 3 else "")
    if payload.get("connector"):
        what = f"{payload['connector']}" + (f" {what}" if what else "")
    if payload.get("partitions"):
        what += f" partitions {', '.join(payload['partitions'][:4])}"
    return what or "-"


def _action_text(row, phase: str, decided_by: str | None) -> str:
    what = f"{row.type} on {_target(row.payload or {})}"
    risk = f" (risk {row.risk}" + (f", confidence {row.confidence:.0%}" if row.confidence is not None else "") + ")" \
        if row.risk else ""
    if phase == "proposed":
        exp = _aware(row.expires_at)
        return (f"Proposed, waiting for approval: {what}{risk}. {row.reason}"
                + (f" Expires {exp:%Y-%m-%d %H:%M} UTC." if exp else ""))
    if phase == "running":
        who = "automatically (pre-authorised by the policy)" if row.decision == "execute" else \
            f"approved{' by ' + decided_by if decided_by else ''}"
        return f"Running {what}, {who}."
    if phase == "recorded":
        return f"Recorded, not run: {what} ({row.gate_reason or 'shadow rollout'})."
    if phase == "rejected":
        return f"Rejected{' by ' + decided_by if decided_by else ''}: {what}."
    if phase == "expired":
        return f"Expired without a decision: {what}."
    if phase == "cancelled":
        return f"Cancelled{' by ' + decided_by if decided_by else ''}: {what}."
    if phase == "withdrawn":  # stale: it could no longer succeed, or was already done
        return f"Withdrawn, no longer asked: {what}."
    if phase == "failed":
        return f"Failed: {what}."
    return f"Worked: {what}."


def collect_threads(store, *, now: datetime | None = None, lookback: timedelta = timedelta(hours=72),
                    owners_of: OwnersOf = _no_owners) -> list[IncidentThread]:
    """Every incident whose root failed within ``lookback``, with its changes in order."""
    from sqlalchemy import select

    from orchestrator.diagnosis.incidents import build_incidents
    from orchestrator.store.agent_models import ActionRow

    now = _aware(now) or datetime.now(UTC)
    # owners_from_project's callable also says which SLA deadlines an incident's assets serve
    incidents = [i for i in build_incidents(store, deadlines_of=getattr(owners_of, "deadlines_of", None))
                 if (_parse(i.at) or now) >= now - lookback]
    if not incidents:
        return []
    action_ids = [a.action_id for inc in incidents for a in inc.actions]
    with store.session() as s:
        rows = {r.id: r for r in s.scalars(select(ActionRow).where(ActionRow.id.in_(action_ids or [""]))).all()}
    members: dict[str, str] = {}
    for inc in incidents:
        members[inc.id] = inc.id
        for c in inc.cascade:
            if c.get("failure_id"):
                members[c["failure_id"]] = inc.id
    escalations: dict[str, list[dict]] = {}
    for ev in store.audit_events(kind="escalation", limit=100000):
        p = ev.get("payload") or {}
        root = members.get(p.get("failure_id") or "")
        if root:
            escalations.setdefault(root, []).append(dict(p, ts=ev.get("ts")))

    out: list[IncidentThread] = []
    for inc in sorted(incidents, key=lambda i: i.at):
        owners: list[str] = []
        policies: list[str] = []

        def add(os_: tuple[str, ...] | list[str], ps: tuple[str, ...] | list[str] = ()) -> None:
            owners.extend(o for o in os_ if o and o not in owners)
            policies.extend(p for p in ps if p and p not in policies)

        add(*owners_of(inc.asset_key, inc.connector))
        for c in inc.cascade:
            if not owners:
                add(*owners_of(c.get("asset_key"), c.get("connector")))
        where = _where(inc.asset_key, inc.connector)
        kind = "transient" if inc.transient else "needs a fix"
        title = scrub_pii(f"{where} failed: {inc.category} ({kind})")
        opened = [f"{where} failed at {inc.at} - {inc.category}, {kind} (confidence {inc.confidence:.0%})."]
        if inc.summary:
            opened.append(inc.summary)
        if inc.evidence:
            opened.append("Evidence: " + " | ".join(str(e)[:200] for e in inc.evidence[:2]))
        if inc.cascade:
            opened.append(f"Also affected: {', '.join(inc.affected[:8])}"
                          + (f" (+{len(inc.affected) - 8})" if len(inc.affected) > 8 else ""))
        if inc.deadlines:
            opened.append(f"Deadlines at stake: {', '.join(inc.deadlines[:6])}")
        changes = [Change("opened", scrub_pii("\n".join(opened)), _parse(inc.at))]
        seen_esc: set[str] = set()
        for e in escalations.get(inc.id, []):
            key = f"escalation:{e.get('category') or 'unknown'}"
            if key in seen_esc:
                continue
            seen_esc.add(key)
            add(tuple(e.get("owners") or ()))
            changes.append(Change(key, scrub_pii(f"Escalated to the owners: {e.get('reason') or e.get('category')}"),
                                  _parse(e.get("ts"))))
        acts = []
        for a in inc.actions:
            row = rows.get(a.action_id)
            if row is None or row.status == "rejected":  # refused by validation: never proposed to anyone
                continue
            add(tuple(row.owners or ()))
            phase = PHASES.get(row.status, row.status)
            if phase == "proposed" and row.expires_at is not None and _aware(row.expires_at) <= now:
                phase = "expired"
            pending = PendingAction(row.id, row.proposal_id, row.type, row.risk, _aware(row.expires_at)) \
                if phase == "proposed" else None
            acts.append((_aware(row.created_at) or now, PHASE_ORDER.index(phase) if phase in PHASE_ORDER else 99,
                         Change(f"action:{row.id}:{phase}", scrub_pii(_action_text(row, phase, a.decided_by)),
                                _aware(row.updated_at), pending=pending)))
        changes += [c for _, _, c in sorted(acts, key=lambda t: (t[0], t[1]))]
        if inc.status == "resolved":
            ttr = f" in {inc.time_to_recovery_s / 60:.0f} min" if inc.time_to_recovery_s is not None else ""
            changes.append(Change("resolved", scrub_pii(f"Resolved{ttr}. {inc.postmortem or ''}".strip()),
                                  _parse(inc.resolved_at), final=True))
        out.append(IncidentThread(inc.id, title, tuple(owners), tuple(policies), changes))
    return out


def owners_from_project(graph, resolution) -> OwnersOf:
    """Owners and policies of a failing asset or connector, as the digest reads them: the SLA's
    owners (else the asset's own); a connector's are those of its tables."""

    ok = resolution is not None and getattr(resolution, "ok", False)

    def of_key(key: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        sla = resolution.sla(key) if ok else None
        pols = tuple(dict.fromkeys([*sla.policies, *sla.propagated_from])) if sla is not None else ()
        if sla is not None and sla.owners:
            return tuple(sla.owners), pols
        try:
            return tuple(graph.node(key).owners), pols
        except KeyError:
            return (), pols

    def owners_of(asset_key: str | None, connector: str | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
        keys = [asset_key] if asset_key else [n.key for n in graph if connector and n.connector == connector]
        owners: list[str] = []
        pols: list[str] = []
        for k in keys:
            o, p = of_key(k)
            owners += [x for x in o if x not in owners]
            pols += [x for x in p if x not in pols]
        return tuple(owners), tuple(pols)

    from orchestrator.diagnosis.incidents import deadlines_from_resolution

    owners_of.deadlines_of = deadlines_from_resolution(resolution if ok else None)  # type: ignore[attr-defined]
    return owners_of
