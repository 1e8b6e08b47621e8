"""What goes into the daily digest, grouped by owner (plain data; no Dagster, no rendering).

    digest = build_digest(store, snapshot, assessment, resolution, now=now, since=now - 24h)
    for section in digest.owners: section.owner, section.sla_results, section.outlook, ...

Sources:

* **yesterday's SLA results**: every deadline tick of every policy target asset in
  ``(since, now]``: met when the asset materialized inside the tick's window
  (``tick - deadline.window .. tick``), else breached (with how late it became ready, if it did);
* **today's outlook**: the assessment's at-risk and breached assets (deadline, predicted ready
  time, slack, the upstream holding it back);
* **actions taken automatically** (gate decision ``execute``) since ``since``, with their outcome;
* **proposals awaiting approval** (``pending``, not expired): actions, rationale, confidence,
  risk, estimated cost, expiry;
* **failures** since ``since``: root causes only (downstream failures are counted under their
  root), category, transient or not, and whether the asset/connector succeeded since;
* **cost** against budget per policy scope;
* **circuit breaker**: subjects it stopped acting on (open now or tripped since ``since``) and the
  actions it turned into record-only.

Ownership: the SLA's owners of an asset (else the asset's own owners); an action's owners as the
gate recorded them (else those of its assets / its connector's tables). Whatever has no owner goes
to the catch-all section ``CATCH_ALL``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from orchestrator.core.records import Assessment, FreshnessStatus, Snapshot
from orchestrator.recovery import blocked_connectors, failure_assets, failure_subject, stale_reason
from orchestrator.scrubbing import scrub_pii

UTC = timezone.utc
CATCH_ALL = "unowned"
TIER_ORDER = {"critical": 0, "high": 1, "standard": 2, "low": 3}


def _aware(t: datetime | None) -> datetime | None:
    if t is None:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


@dataclass
class SlaResult:
    asset_key: str
    policy: str
    tier: str
    deadline: datetime
    met: bool
    ready_at: datetime | None  # first materialization in the window (met) or after the deadline (late)
    late_s: float | None = None  # breached and ready later: by how much


@dataclass
class OutlookItem:
    asset_key: str
    tier: str
    policy: str | None
    status: str  # at_risk | breached
    deadline: datetime | None
    predicted_ready: datetime | None
    slack_s: float | None
    blocking_asset: str | None
    reason: str


@dataclass
class ActionItem:
    action_id: str
    proposal_id: str
    type: str
    status: str
    target: str  # what it acts on, human-readable
    reason: str
    rationale: str | None
    risk: str | None
    confidence: float | None
    estimated_cost_usd: float
    expires_at: datetime | None
    gate_reason: str | None
    created_at: datetime
    outcome: str | None = None
    approve_url: str | None = None
    reject_url: str | None = None
    cancel_url: str | None = None  # an automatic action approved but not started yet


@dataclass
class FailureItem:
    failure_id: str
    at: datetime
    system: str
    subject: str  # the connector for a connector's failure, else the asset (as in the UI and the store)
    category: str
    transient: bool
    message: str
    evidence: tuple[str, ...]
    resolved: bool
    resolved_at: datetime | None
    downstream: list[str] = field(default_factory=list)
    assets: list[str] = field(default_factory=list)  # every asset it touched
    summary: str = ""  # the incident's root-cause summary (template, or the incident's in the store)
    remediation: list[str] = field(default_factory=list)
    deadlines: list[str] = field(default_factory=list)  # SLA policies whose deadlines it put at stake
    postmortem: str | None = None  # once resolved: what failed, impact, what was done, by whom, recovery


@dataclass
class EscalationItem:
    """Something the agent will not fix by itself: a person is asked (once per incident)."""

    subject: str  # "connector:<system>:<id>" | "asset:<key>"
    category: str
    reason: str
    failure_id: str | None
    at: datetime


@dataclass
class WithdrawnItem:
    """A proposal no longer asked of a person (withdrawn in the store: it cannot succeed or is
    already done), and why."""

    action: ActionItem
    reason: str


@dataclass
class CostItem:
    scope: str
    spent_today_usd: float
    forecast_day_usd: float
    budget_day_usd: float | None
    spent_month_usd: float
    forecast_month_usd: float
    budget_month_usd: float | None
    over_budget: bool
    spike: bool
    reason: str

    def _pct(self, value: float) -> int:
        """Share of the chart's width: the day's budget (or the forecast, without one) is 100."""
        scale = max(self.budget_day_usd or 0.0, self.forecast_day_usd, self.spent_today_usd, 0.01)
        return max(0, min(100, round(100 * value / scale)))

    @property
    def spent_pct(self) -> int:
        return self._pct(self.spent_today_usd)

    @property
    def forecast_pct(self) -> int:
        return self._pct(self.forecast_day_usd)

    @property
    def budget_pct(self) -> int | None:
        return self._pct(self.budget_day_usd) if self.budget_day_usd else None


@dataclass
class BreakerItem:
    subject: str
    reason: str
    opened_at: datetime | None
    still_open: bool
    stopped_actions: list[str] = field(default_factory=list)  # "type on target" recorded only


@dataclass
class OwnerDigest:
    owner: str
    recipients: list[str] = field(default_factory=list)
    sla_results: list[SlaResult] = field(default_factory=list)
    outlook: list[OutlookItem] = field(default_factory=list)
    auto_actions: list[ActionItem] = field(default_factory=list)
    pending: list[ActionItem] = field(default_factory=list)
    failures: list[FailureItem] = field(default_factory=list)
    escalations: list[EscalationItem] = field(default_factory=list)
    withdrawn: list[WithdrawnItem] = field(default_factory=list)  # stale: not asked any more
    cost: list[CostItem] = field(default_factory=list)
    breaker: list[BreakerItem] = field(default_factory=list)
    schema_changes: list[str] = field(default_factory=list)  # "removes stripe.invoice.x: breaks ..."
    connector_health: list[str] = field(default_factory=list)  # connectors needing attention (orchestrator.health)

    @property
    def label(self) -> str:
        return "Assets without an owner" if self.owner == CATCH_ALL else self.owner

    @property
    def empty(self) -> bool:
        return not (self.sla_results or self.outlook or self.auto_actions or self.pending or self.failures
                    or self.cost or self.breaker or self.schema_changes or self.escalations
                    or self.connector_health)

    @property
    def sla_by_tier(self) -> list[tuple[str, list[SlaResult]]]:
        tiers: dict[str, list[SlaResult]] = {}
        for r in sorted(self.sla_results, key=lambda r: (TIER_ORDER.get(r.tier, 9), r.met, r.asset_key)):
            tiers.setdefault(r.tier, []).append(r)
        return list(tiers.items())

    @property
    def counts(self) -> dict[str, int]:
        return {
            "met": sum(r.met for r in self.sla_results),
            "breached": sum(not r.met for r in self.sla_results),
            "at_risk": sum(o.status == "at_risk" for o in self.outlook),
            "late_now": sum(o.status == "breached" for o in self.outlook),
            "auto": len(self.auto_actions),
            "pending": len(self.pending),
            "failures": len(self.failures),
            "unresolved": sum(not f.resolved for f in self.failures),
            "over_budget": sum(c.over_budget for c in self.cost),
            "breaker": len(self.breaker),
            "escalations": len(self.escalations),
        }

    @property
    def headline(self) -> str:
        c = self.counts
        parts = []
        if c["escalations"]:
            parts.append(f"{c['escalations']} need{'s' if c['escalations'] == 1 else ''} a person")
        if c["pending"]:
            parts.append(f"{c['pending']} to approve")
        if c["at_risk"] or c["late_now"]:
            parts.append(f"{c['at_risk'] + c['late_now']} at risk")
        if c["breached"]:
            parts.append(f"{c['breached']} SLA breached")
        if c["unresolved"]:
            parts.append(f"{c['unresolved']} unresolved failure{'s' if c['unresolved'] != 1 else ''}")
        if c["over_budget"]:
            parts.append(f"{c['over_budget']} over budget")
        return ", ".join(parts) or "all clear"


@dataclass
class Digest:
    generated_at: datetime
    since: datetime
    timezone: str
    owners: list[OwnerDigest]
    skipped: str | None = None  # why the SLA parts are empty (e.g. invalid policies)

    def section(self, owner: str) -> OwnerDigest | None:
        return next((o for o in self.owners if o.owner == owner), None)

    @property
    def totals(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for o in self.owners:
            for k, v in o.counts.items():
                out[k] = out.get(k, 0) + v
        return out


# -- ownership --------------------------------------------------------------------------------------
class Owners:
    def __init__(self, snapshot: Snapshot, resolution):
        self.graph = snapshot.graph
        self.resolution = resolution if resolution is not None and getattr(resolution, "ok", False) else None

    def of_asset(self, key: str | None) -> tuple[str, ...]:
        if not key:
            return ()
        if self.resolution is not None:
            sla = self.resolution.sla(key)
            if sla is not None and sla.owners:
                return tuple(sla.owners)
        try:
            return tuple(self.graph.node(key).owners)
        except KeyError:
            return ()

    def of_connector(self, connector: str | None) -> tuple[str, ...]:
        if not connector:
            return ()
        return self.of_assets(n.key for n in self.graph if n.connector == connector)

    def of_assets(self, keys: Iterable[str]) -> tuple[str, ...]:
        out: list[str] = []
        for k in keys:
            out += [o for o in self.of_asset(k) if o not in out]
        return tuple(out)

    def of_subject(self, subject: str) -> tuple[str, ...]:
        kind, _, rest = subject.partition(":")
        if kind == "asset":
            return self.of_asset(rest)
        if kind == "connector":
            return self.of_connector(rest)
        return ()

    def of_scope(self, scope: str) -> tuple[str, ...]:
        kind, _, name = scope.partition(":")
        if kind == "policy" and self.resolution is not None:
            try:
                return tuple(self.resolution.policy(name).owners)
            except (KeyError, AssertionError, ValueError):
                return ()
        if kind == "group":
            return self.of_assets(n.key for n in self.graph if n.group == name)
        return ()


# -- sections ---------------------------------------------------------------------------------------
def sla_results(snapshot: Snapshot, resolution, since: datetime, now: datetime) -> list[SlaResult]:
    """Each deadline tick of each policy target in (since, now]: met or breached."""
    if resolution is None or not getattr(resolution, "ok", False):
        return []
    mats: dict[str, list[datetime]] = {}
    for m in snapshot.materializations:
        mats.setdefault(m.asset_key, []).append(_aware(m.at))
    for key, at in snapshot.last_success.items():
        mats.setdefault(key, []).append(_aware(at))
    out: list[SlaResult] = []
    schedules: dict[str, tuple] = {}
    for key, sla in sorted(resolution.slas.items()):
        dl = sla.deadline
        if dl is None or dl.target != key:
            continue
        if dl.policy not in schedules:
            policy = resolution.policy(dl.policy)
            schedule = policy.schedule()
            if schedule is None or policy.deadline is None:
                continue
            schedules[dl.policy] = (schedule, policy.deadline.effective_window(schedule))
        schedule, window = schedules[dl.policy]
        times = sorted(set(mats.get(key, [])))
        for tick in schedule.ticks(since, now):
            tick = tick.astimezone(UTC)
            inside = [t for t in times if tick - window <= t <= tick]
            if inside:
                out.append(SlaResult(key, dl.policy, sla.tier.value, tick, True, inside[0]))
            else:
                later = [t for t in times if t > tick]
                out.append(SlaResult(key, dl.policy, sla.tier.value, tick, False, later[0] if later else None,
                                     (later[0] - tick).total_seconds() if later else None))
    return out


def _target(payload: dict) -> str:
    keys = list(payload.get("asset_keys") or [])
    what = ", ".join(keys[:3]) + (f" (+{len(keys) - 3} more)" if len(keys) > 3 else "")
    if payload.get("connector"):
        tables = payload.get("tables") or {}
        tlist = [f"{s}.{t}" for s, ts in tables.items() if s != "sync_frequency" for t in ts]
        what = f"{payload['connector']}" + (f" ({', '.join(tlist[:3])})" if tlist else "") + (f" {what}" if what else "")
    if payload.get("partitions"):
        parts = payload["partitions"]
        what += f" - partitions {', '.join(parts[:4])}" + (f" (+{len(parts) - 4})" if len(parts) > 4 else "")
    if payload.get("run_id"):
        what += f" - run {payload['run_id'][:8]}"
    return what or "-"


def _action_item(row, rationale: str | None) -> ActionItem:
    payload = row.payload or {}
    return ActionItem(
        action_id=row.id, proposal_id=row.proposal_id, type=row.type, status=row.status, target=_target(payload),
        reason=scrub_pii(row.reason), rationale=scrub_pii(rationale) if rationale else rationale, risk=row.risk,
        confidence=row.confidence,
        estimated_cost_usd=float(payload.get("estimated_cost_usd") or 0.0), expires_at=_aware(row.expires_at),
        gate_reason=scrub_pii(row.gate_reason) if row.gate_reason else row.gate_reason, created_at=_aware(row.created_at),
    )


def _outcome(status: str, executions: list) -> str:
    if status == "succeeded":
        return "succeeded"
    if status == "failed":
        errs = [str((e.detail or {}).get("error", "")) for e in executions if e.status == "failed"]
        return "failed" + (f": {errs[-1][:160]}" if errs and errs[-1] else "")
    if status == "executing":
        return "running"
    if status == "approved":
        return "scheduled" if executions == [] else "launching"
    return status


def build_digest(store, snapshot: Snapshot, assessment: Assessment | None, resolution, *,
                 now: datetime | None = None, since: datetime | None = None, tz: str = "UTC",
                 include_empty: bool = False) -> Digest:
    from orchestrator.store.agent_models import ActionRow, ExecutionRow, ProposalRow
    from orchestrator.store.models import AuditEvent

    now = _aware(now or snapshot.taken_at)
    since = _aware(since or now - timedelta(hours=24))
    owners = Owners(snapshot, resolution)
    sections: dict[str, OwnerDigest] = {}

    def to(who: Iterable[str]) -> list[OwnerDigest]:
        names = list(dict.fromkeys(who)) or [CATCH_ALL]
        return [sections.setdefault(n, OwnerDigest(n)) for n in names]

    # yesterday's SLA results
    for r in sla_results(snapshot, resolution, since, now):
        for sec in to(owners.of_asset(r.asset_key)):
            sec.sla_results.append(r)

    # today's outlook
    if assessment is not None:
        for key, f in sorted(assessment.freshness.items(), key=lambda kv: (kv[1].slack_s or 0.0, kv[0])):
            if f.status is FreshnessStatus.ok:
                continue
            # only policy targets and the assets directly selected: an at-risk dashboard already
            # names the upstream that holds it back
            sla = resolution.sla(key) if resolution is not None and getattr(resolution, "ok", False) else None
            if sla is not None and not sla.direct:
                continue
            item = OutlookItem(key, f.tier, f.policy, f.status.value, _aware(f.deadline), _aware(f.predicted_ready),
                               f.slack_s, f.blocking_asset, scrub_pii(f.reason))
            for sec in to(owners.of_asset(key)):
                sec.outlook.append(item)

    # actions: automatic (since), pending (awaiting approval), breaker-stopped
    breaker_stopped: dict[str, list[str]] = {}
    with store.session() as s:
        rationale = {}

        def why(pid: str) -> str | None:
            if pid not in rationale:
                p = s.get(ProposalRow, pid)
                rationale[pid] = p.rationale if p else None
            return rationale[pid]

        auto = s.scalars(select(ActionRow).where(ActionRow.decision == "execute", ActionRow.created_at >= since)
                         .order_by(ActionRow.created_at)).all()
        for row in auto:
            item = _action_item(row, why(row.proposal_id))
            execs = s.scalars(select(ExecutionRow).where(ExecutionRow.action_id == row.id)).all()
            item.outcome = _outcome(row.status, list(execs))
            for sec in to(row.owners or _subject_owners(owners, row.subjects or [])):
                sec.auto_actions.append(item)
        pending = s.scalars(select(ActionRow).where(ActionRow.status == "pending")
                            .order_by(ActionRow.risk_score.desc(), ActionRow.created_at)).all()
        blocked = blocked_connectors(assessment.failures if assessment is not None else (), snapshot.last_success,
                                     snapshot.graph, snapshot.paused_connectors or ())
        stale_now: dict[str, str] = {}
        for row in pending:
            if row.expires_at is not None and _aware(row.expires_at) <= now:
                continue
            item = _action_item(row, why(row.proposal_id))
            payload = row.payload or {}
            stale = stale_reason(row.type, payload.get("asset_keys") or (), payload.get("connector"),
                                 row.created_at, graph=snapshot.graph, blocked=blocked,
                                 last_success=snapshot.last_success)
            if stale:  # withdrawn in the store below; listed with the withdrawn ones
                stale_now[row.id] = stale
                continue
            for sec in to(row.owners or _subject_owners(owners, row.subjects or [])):
                sec.pending.append(item)
        # withdrawn proposals (no longer asked: doomed or already done), the reason from the store
        from orchestrator.store.agent_models import ApprovalRow

        withdrawn_rows = s.scalars(select(ActionRow).where(
            ActionRow.status == "withdrawn", ActionRow.updated_at >= since).order_by(ActionRow.updated_at)).all()
        for row in withdrawn_rows:
            reason = s.scalars(select(ApprovalRow.comment).where(ApprovalRow.action_id == row.id,
                                                                  ApprovalRow.decision == "withdraw")
                               .order_by(ApprovalRow.id.desc())).first() or "no longer needed"
            for sec in to(row.owners or _subject_owners(owners, row.subjects or [])):
                sec.withdrawn.append(WithdrawnItem(_action_item(row, why(row.proposal_id)), reason))
        withdrawn_ids = {row.id for row in withdrawn_rows}
        for row in pending:
            if row.id in stale_now and row.id not in withdrawn_ids:
                for sec in to(row.owners or _subject_owners(owners, row.subjects or [])):
                    sec.withdrawn.append(WithdrawnItem(_action_item(row, why(row.proposal_id)), stale_now[row.id]))
        stopped = s.scalars(select(ActionRow).where(ActionRow.status == "record_only", ActionRow.created_at >= since,
                                                    ActionRow.gate_reason.like("circuit breaker%"))).all()
        for row in stopped:
            for sub in row.subjects or []:
                breaker_stopped.setdefault(sub, []).append(f"{row.type} on {_target(row.payload or {})}")
        trips = s.scalars(select(AuditEvent).where(AuditEvent.kind == "breaker.trip", AuditEvent.ts >= since)
                          .order_by(AuditEvent.id)).all()
        trip_info = {t.subject: (_aware(t.ts), (t.payload or {}).get("reason", ""), (t.payload or {}).get("owners") or [])
                     for t in trips if t.subject}

    # circuit breaker
    from orchestrator.proposals import Proposals

    breaker = Proposals(store).breaker()
    open_now = set(breaker.open_subjects(now))
    for subject in sorted(open_now | set(trip_info) | set(breaker_stopped)):
        at, reason, trip_owners = trip_info.get(subject, (None, breaker.reason(subject) or "", []))
        if subject in open_now and at is None:
            st = breaker.to_dict()["open"].get(subject) or {}
            at = _aware(datetime.fromisoformat(st["opened_at"])) if st.get("opened_at") else None
        item = BreakerItem(subject, scrub_pii(reason or breaker.reason(subject) or "circuit breaker open"), at,
                           subject in open_now, breaker_stopped.get(subject, []))
        for sec in to(trip_owners or owners.of_subject(subject)):
            sec.breaker.append(item)

    # failures: root causes since `since`, resolved when the subject succeeded afterwards; each
    # with its incident's summary and, once resolved, post-mortem (from the audit trail when the
    # failure sensor recorded it, else from what the snapshot shows)
    if assessment is not None:
        from orchestrator.diagnosis.incidents import build_incidents, deadlines_from_resolution
        from orchestrator.diagnosis.summaries import summarize

        deadlines_of = deadlines_from_resolution(resolution)
        recorded = {i.id: i for i in build_incidents(store, deadlines_of=deadlines_of)} if assessment.failures else {}
        by_id = {d.failure.failure_id: d for d in assessment.failures}
        downstream: dict[str, list[str]] = {}
        for d in assessment.failures:
            if d.root_failure_id and d.root_failure_id in by_id:
                downstream.setdefault(d.root_failure_id, []).append(d.failure.asset_key or d.failure.connector or "?")
        ok_syncs: dict[str, datetime] = {}  # connector or table -> latest successful sync
        for sy in snapshot.syncs:
            if sy.status == "succeeded" and sy.ended_at:
                for k in (sy.connector, *sy.tables):
                    ok_syncs[k] = max(ok_syncs.get(k, _aware(sy.ended_at)), _aware(sy.ended_at))
        for d in sorted(assessment.failures, key=lambda d: d.failure.at):
            f = d.failure
            if _aware(f.at) < since or (d.root_failure_id and d.root_failure_id in by_id):
                continue
            after = None
            if f.asset_key and f.asset_key in snapshot.last_success:
                ls = _aware(snapshot.last_success[f.asset_key])
                after = ls if ls > _aware(f.at) else None
            # a table's failure is resolved by a sync that landed that table; a connector-level
            # failure by any successful sync of the connector
            sync_key = f.asset_key if f.asset_key else f.connector
            if after is None and sync_key in ok_syncs and ok_syncs[sync_key] > _aware(f.at):
                after = ok_syncs[sync_key]
            touched = failure_assets(f, snapshot.graph)
            item = FailureItem(f.failure_id, _aware(f.at), f.system, failure_subject(f, snapshot.graph),
                               d.category, d.transient, _short(scrub_pii(f.message)),
                               tuple(scrub_pii(e) for e in d.evidence[:3]), after is not None,
                               after, sorted(set(downstream.get(f.failure_id, []))), touched)
            _incident_text(item, recorded.get(f.failure_id), summarize, deadlines_of)
            who = owners.of_assets(touched) or owners.of_asset(f.asset_key) or owners.of_connector(f.connector)
            for sec in to(who):
                sec.failures.append(item)

        # cost against budget
        for c in assessment.cost:
            if c.budget_day_usd is None and c.budget_month_usd is None and not c.spike:
                continue
            item = CostItem(c.scope, c.spent_today_usd, c.forecast_day_usd, c.budget_day_usd, c.spent_month_usd,
                            c.forecast_month_usd, c.budget_month_usd, c.over_budget, c.spike, c.reason)
            for sec in to(owners.of_scope(c.scope)):
                sec.cost.append(item)

    # escalations: what needs a person, once per incident until it is resolved. A subject failing
    # again the same way before anyone repaired it is the same incident: one item, the newest.
    resolved_ids = {f.failure_id for sec in sections.values() for f in sec.failures if f.resolved}
    told: set[tuple[str, str]] = set()
    for ev in sorted(store.audit_events(kind="escalation", limit=100000), key=lambda e: _aware(e["ts"]),
                     reverse=True):
        payload = ev["payload"] or {}
        if ev["actor"] != "planner" or _aware(ev["ts"]) < since:
            continue
        subject, category, failure_id = ev["subject"] or "", str(payload.get("category") or ""), payload.get("failure_id")
        if (subject, category) in told:
            continue
        told.add((subject, category))
        if failure_id and failure_id in resolved_ids:
            continue
        item = EscalationItem(subject, category, scrub_pii(str(payload.get("reason") or "")), failure_id,
                              _aware(ev["ts"]))
        for sec in to(payload.get("owners") or owners.of_subject(subject)):
            sec.escalations.append(item)

    # schema changes the schema_change_sensor detected (orchestrator.schema_changes)
    for ev in store.audit_events(kind="schema_change.detected", limit=100000):
        payload = ev["payload"] or {}
        if _aware(ev["ts"]) < since or not payload.get("summaries"):
            continue
        for sec in to(payload.get("owners") or owners.of_asset(payload.get("key"))):
            sec.schema_changes.extend(s for s in payload["summaries"] if s not in sec.schema_changes)

    # connector health (orchestrator.health): connectors with a low or falling score, anomalous
    # latest loads or an early warning, told to the owners of their tables
    for h in _unhealthy_connectors(store, now):
        from orchestrator.health.score import summary_line

        for sec in to(owners.of_connector(h.connector)):
            line = summary_line(h)
            if line not in sec.connector_health:
                sec.connector_health.append(line)

    out = [sec for name, sec in sorted(sections.items(), key=lambda kv: (kv[0] == CATCH_ALL, kv[0]))
           if include_empty or not sec.empty]
    return Digest(generated_at=now, since=since, timezone=tz, owners=out,
                  skipped=getattr(assessment, "skipped", None) if assessment is not None else None)


def _unhealthy_connectors(store, now: datetime) -> list:
    """Connectors needing attention from the signals in the store (advisory: none on any error)."""
    try:
        from orchestrator.health.score import health_report, needs_attention
        from orchestrator.health.store import load_signals

        signals = load_signals(store, since=now - timedelta(days=72))
        return [h for h in health_report([s for s in signals if s.started_at <= now], now) if needs_attention(h)]
    except Exception:  # noqa: BLE001 - the digest goes out without it
        return []


def _subject_owners(owners: Owners, subjects: Iterable[str]) -> tuple[str, ...]:
    out: list[str] = []
    for sub in subjects:
        out += [o for o in owners.of_subject(sub) if o not in out]
    return tuple(out)


def _incident_text(item: FailureItem, incident, summarize, deadlines_of) -> None:
    """Fill the failure's summary, remediation, deadlines at stake and (resolved) post-mortem."""
    if incident is not None:
        item.summary, item.remediation = incident.summary, list(incident.remediation)
        item.deadlines = list(incident.deadlines)
        item.postmortem = incident.postmortem
    else:
        s = summarize(item.category, list(item.evidence), item.system, item.transient)
        item.summary, item.remediation = str(s["summary"]), list(s["remediation"])  # type: ignore[arg-type]
        item.deadlines = list(dict.fromkeys(d for a in (item.assets or [item.subject]) for d in deadlines_of(a)))
    if item.resolved and not item.postmortem and item.resolved_at is not None:
        ttr = max(0.0, (item.resolved_at - item.at).total_seconds()) / 60
        held = f" It also held back {', '.join(item.downstream[:6])}." if item.downstream else ""
        stake = f" Deadlines at stake: {', '.join(item.deadlines[:6])}." if item.deadlines else ""
        item.postmortem = (f"{item.subject} failed at {item.at:%H:%M} ({item.category}).{held}{stake} "
                           f"It succeeded again at {item.resolved_at:%H:%M}, time to recovery {ttr:.0f} min.")
    item.summary = scrub_pii(item.summary)
    item.remediation = [scrub_pii(r) for r in item.remediation]
    item.postmortem = scrub_pii(item.postmortem) if item.postmortem else None


def _short(message: str, limit: int = 300) -> str:
    line = " ".join((message or "").split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
