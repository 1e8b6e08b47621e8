"""Incidents: a root failure and the cascade it caused, with a summary and, once resolved, a
short post-mortem built from the audit trail.

Read-only over the project store: ``failure.diagnosed`` audit events (written by the failure
sensor; a cascade failure carries ``root`` = its root failure id), the agent's actions that
named those failures (``proposal_actions.failures[].failure_id``) and the audit events of those
actions (``approval``/``rejection``/``execution``/``outcome``, with actor and time).

An incident is *resolved* when an action on it ended with a successful ``outcome``; time to
recovery = that outcome's time - the root failure's time.

    orchestrator incidents list [--status open|resolved] [--json]
    orchestrator incidents show ID [--json]
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import click

from orchestrator.diagnosis.summaries import summarize
from orchestrator.scrubbing import scrub_pii


@dataclass
class IncidentAction:
    action_id: str
    type: str
    status: str
    decision: str | None
    created_at: str | None
    decided_by: str | None = None
    decided_at: str | None = None
    verdict: str | None = None  # approved | rejected | automatic
    outcome: bool | None = None
    outcome_at: str | None = None


@dataclass
class Incident:
    id: str
    at: str
    category: str
    transient: bool
    confidence: float
    system: str | None
    asset_key: str | None
    connector: str | None
    evidence: list[str]
    cascade: list[dict[str, Any]] = field(default_factory=list)
    actions: list[IncidentAction] = field(default_factory=list)
    status: str = "open"
    resolved_at: str | None = None
    time_to_recovery_s: float | None = None
    summary: str = ""
    remediation: list[str] = field(default_factory=list)
    postmortem: str | None = None
    assets: list[str] = field(default_factory=list)  # every asset the root and its cascade touched
    deadlines: list[str] = field(default_factory=list)  # the SLA policies whose deadline it put at stake

    @property
    def affected(self) -> list[str]:
        keys = [self.asset_key or (f"connector:{self.connector}" if self.connector else None)]
        keys += [c.get("asset_key") or (f"connector:{c['connector']}" if c.get("connector") else None)
                 for c in self.cascade]
        return sorted({k for k in keys if k})

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["affected"] = self.affected
        return d


def _parse(ts: str | None) -> datetime | None:
    if not ts:
        return None
    try:
        return datetime.fromisoformat(ts)
    except ValueError:
        return None


DeadlinesOf = Callable[[str], list[str]]


def deadlines_from_resolution(resolution) -> DeadlinesOf:
    """``deadlines_of(asset key)``: the SLA policies (with a deadline or a maximum lag) that govern
    the asset directly or reach it from downstream, as the resolved policies say."""

    ok = resolution is not None and getattr(resolution, "ok", True)

    def deadlines_of(key: str) -> list[str]:
        sla = resolution.sla(key) if ok else None
        if sla is None or (sla.deadline is None and sla.max_lag is None):
            return []
        return list(dict.fromkeys([*sla.policies, *sla.propagated_from]))

    return deadlines_of


def build_incidents(store, *, limit: int = 10000, deadlines_of: DeadlinesOf | None = None) -> list[Incident]:
    """The incidents among the newest ``limit`` diagnosed failures, newest first. With
    ``deadlines_of`` (e.g. :func:`deadlines_from_resolution`), each incident names the SLA
    policies whose deadlines its assets serve (its impact), and the post-mortem says so."""
    events = store.audit_events(kind="failure.diagnosed", limit=limit, newest=True)
    roots: dict[str, Incident] = {}
    cascade: list[tuple[str, dict[str, Any]]] = []
    for ev in events:
        p = ev.get("payload") or {}
        fid = ev.get("subject") or ""
        if p.get("root"):
            cascade.append((p["root"], dict(p, failure_id=fid)))
            continue
        if fid in roots:
            continue
        # scrubbed as read: rows another (or an older) writer left raw never reach a summary or a screen
        evidence = [scrub_pii(str(e)) for e in p.get("evidence") or []]
        s = summarize(p.get("category", "unknown"), evidence, p.get("system"), p.get("transient"))
        roots[fid] = Incident(
            id=fid, at=p.get("at") or str(ev.get("ts")), category=p.get("category", "unknown"),
            transient=bool(p.get("transient")), confidence=float(p.get("confidence") or 0.0),
            system=p.get("system"), asset_key=p.get("asset_key"), connector=p.get("connector"),
            evidence=evidence, summary=scrub_pii(str(s["summary"])),
            remediation=[scrub_pii(str(r)) for r in s["remediation"]],  # type: ignore[union-attr]
            assets=[str(a) for a in (p.get("assets") or ([p["asset_key"]] if p.get("asset_key") else []))],
        )
    for root, c in cascade:
        if root in roots:
            roots[root].cascade.append({k: c.get(k) for k in ("failure_id", "asset_key", "connector", "at",
                                                              "category")})
            inc = roots[root]
            for a in c.get("assets") or ([c["asset_key"]] if c.get("asset_key") else []):
                if a not in inc.assets:
                    inc.assets.append(str(a))
    _attach_actions(store, roots)
    for inc in roots.values():
        if deadlines_of is not None:
            inc.deadlines = list(dict.fromkeys(d for a in inc.assets for d in deadlines_of(a)))
        _postmortem(inc)  # structured fields only (no free text): it names the approver as is
    return sorted(roots.values(), key=lambda i: i.at, reverse=True)


def _attach_actions(store, roots: dict[str, Incident]) -> None:
    if not roots:
        return
    try:
        from sqlalchemy import select

        from orchestrator.store.agent_models import ActionRow
    except ImportError:  # pragma: no cover - agent tables not installed
        return
    members: dict[str, str] = {fid: fid for fid in roots}
    for fid, inc in roots.items():
        for c in inc.cascade:
            if c.get("failure_id"):
                members[c["failure_id"]] = fid
    with store.session() as s:
        rows = s.scalars(select(ActionRow).order_by(ActionRow.created_at)).all()
        found = []
        for r in rows:
            ids = {f.get("failure_id") for f in (r.failures or []) if isinstance(f, dict)}
            hit = next((members[i] for i in ids if i in members), None)
            if hit:
                found.append((hit, IncidentAction(
                    action_id=r.id, type=r.type, status=r.status, decision=r.decision,
                    created_at=r.created_at.isoformat() if r.created_at else None)))
    for root_id, act in found:
        for ev in store.audit_events(subject=f"action:{act.action_id}"):
            kind, ts = ev.get("kind"), str(ev.get("ts"))
            if kind in ("approval", "rejection") and act.decided_by is None:
                act.decided_by, act.decided_at = ev.get("actor"), ts
                act.verdict = "approved" if kind == "approval" else "rejected"
            elif kind == "outcome":
                act.outcome = bool((ev.get("payload") or {}).get("success"))
                act.outcome_at = ts
        if act.verdict is None and act.decision == "execute":
            act.verdict, act.decided_by = "automatic", "agent"
        roots[root_id].actions.append(act)


def _postmortem(inc: Incident) -> None:
    ok = [a for a in inc.actions if a.outcome]
    if not ok:
        return
    first = min(ok, key=lambda a: a.outcome_at or "")
    inc.status, inc.resolved_at = "resolved", first.outcome_at
    start, end = _parse(inc.at), _parse(first.outcome_at)
    if start and end:
        if (start.tzinfo is None) != (end.tzinfo is None):
            start, end = start.replace(tzinfo=None), end.replace(tzinfo=None)
        inc.time_to_recovery_s = max(0.0, (end - start).total_seconds())
    where = inc.asset_key or (f"connector {inc.connector}" if inc.connector else "an unnamed step")
    impact = (f"It also failed or held back {len(inc.cascade)} downstream step(s)"
              f" ({', '.join(inc.affected[:6])})." if inc.cascade else "Nothing downstream failed with it.")
    if inc.deadlines:
        impact += f" Deadlines at stake: {', '.join(inc.deadlines[:6])}."
    done = "; ".join(
        f"{a.type} ({a.verdict or a.decision or 'recorded'}"
        f"{' by ' + a.decided_by if a.decided_by and a.verdict != 'automatic' else ''}, "
        f"{'worked' if a.outcome else 'failed' if a.outcome is False else 'no outcome'})"
        for a in inc.actions
    )
    ttr = f"{inc.time_to_recovery_s / 60:.0f} min" if inc.time_to_recovery_s is not None else "unknown"
    inc.postmortem = (f"{where} failed at {inc.at} ({inc.category}). {impact} "
                      f"Done: {done}. Recovered at {inc.resolved_at}, time to recovery {ttr}.")


def incidents_by_asset(incidents: list[Incident], graph=None) -> dict[str, Incident]:
    """{asset key: the newest incident touching it}: the root's and the cascade's assets, and for a
    connector-level failure the connector's tables in ``graph`` (when given)."""
    out: dict[str, Incident] = {}
    for inc in sorted(incidents, key=lambda i: i.at, reverse=True):
        keys = list(inc.assets)
        keys += [k for k in (inc.asset_key, *(c.get("asset_key") for c in inc.cascade)) if k]
        if graph is not None:
            conns = {c for c in (inc.connector, *(c.get("connector") for c in inc.cascade)) if c}
            keys += [n.key for n in graph if conns and n.connector in conns]
        for k in dict.fromkeys(keys):
            out.setdefault(k, inc)
    return out


def _store(url: str | None):
    from orchestrator.store import open_store

    return open_store(url)


@click.group("incidents")
def incidents_group() -> None:
    """Incidents: root failures with their cascade, summary and post-mortem."""


@incidents_group.command("list")
@click.option("--status", type=click.Choice(["open", "resolved"]), default=None)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option("--store-url", default=None, help="Project store URL (default: ORCHESTRATOR_STORE_URL or SQLite).")
def list_command(status: str | None, as_json: bool, store_url: str | None) -> None:
    """List incidents, newest first."""
    items = [i for i in build_incidents(_store(store_url)) if status is None or i.status == status]
    if as_json:
        for i in items:
            click.echo(json.dumps(i.as_dict(), default=str))
        return
    if not items:
        click.echo("no incidents")
        return
    for i in items:
        where = i.asset_key or (f"connector:{i.connector}" if i.connector else "-")
        click.echo(f"{i.id}  {i.at}  {i.status:8s}  {i.category:20s}  {where}  "
                   f"(+{len(i.cascade)} downstream, {len(i.actions)} action(s))")


@incidents_group.command("show")
@click.argument("incident_id")
@click.option("--json", "as_json", is_flag=True)
@click.option("--store-url", default=None)
def show_command(incident_id: str, as_json: bool, store_url: str | None) -> None:
    """Show one incident: summary, remediation, cascade, actions and post-mortem."""
    found = [i for i in build_incidents(_store(store_url)) if i.id == incident_id]
    if not found:
        raise click.ClickException(f"no incident {incident_id!r} (see `orchestrator incidents list`)")
    i = found[0]
    if as_json:
        click.echo(json.dumps(i.as_dict(), indent=2, default=str))
        return
    click.echo(f"incident {i.id} — {i.status}")
    click.echo(f"  failed at {i.at} on {i.asset_key or i.connector or '-'} ({i.system or 'unknown system'})")
    click.echo(f"  diagnosis: {i.category} (confidence {i.confidence:.2f}, "
               f"{'transient' if i.transient else 'not transient'})")
    click.echo(f"  summary: {i.summary}")
    for n, step in enumerate(i.remediation, 1):
        click.echo(f"  {n}. {step}")
    for e in i.evidence:
        click.echo(f"  evidence: {e}")
    if i.cascade:
        click.echo(f"  cascade ({len(i.cascade)}): " + ", ".join(i.affected))
    for a in i.actions:
        click.echo(f"  action {a.action_id}: {a.type} {a.status}"
                   f"{' — ' + a.verdict if a.verdict else ''}{' by ' + a.decided_by if a.decided_by else ''}"
                   f"{'' if a.outcome is None else (' — worked' if a.outcome else ' — failed')}")
    if i.postmortem:
        click.echo(f"  post-mortem: {i.postmortem}")


__all__ = ["Incident", "IncidentAction", "build_incidents", "deadlines_from_resolution", "incidents_by_asset",
           "incidents_group"]
