"""Store-backed proposal lifecycle: one planning cycle -> proposal -> approval -> execution -> outcome.

    from orchestrator.proposals import Proposals
    props = Proposals()                                   # open_store() by default
    result = props.run_cycle(snapshot, assessment, resolution, durations)   # plan/agent/validate/gate/record
    props.approve(action_id, actor="ana@example.com", via="cli")
    props.executable(now)                                 # what the execution sensor launches
    props.record_outcome(action_id, success=True)         # -> failure memory, circuit breaker

Statuses of an action: ``rejected`` (validation), ``record_only`` (shadow / breaker open),
``pending`` (waits for approval), ``approved`` (by a person or, for ``execute`` decisions, by
policy), ``declined``, ``expired``, ``executing``, ``succeeded``, ``failed``. Every step appends
to the audit trail (``audit_events``). Action ids are deterministic, so a situation planned
again in the next cycle is not proposed twice.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import select, update

from orchestrator.core.records import Action, Assessment, Snapshot
from orchestrator.planning import (
    AWAIT_APPROVAL,
    EXECUTE,
    AgentPlan,
    CircuitBreaker,
    GateDecision,
    action_from_dict,
    action_to_dict,
    scrub_pii,
    subjects,
)
from orchestrator.planning.gate import related_failures
from orchestrator.policies import ActionType
from orchestrator.store import Store, open_store
from orchestrator.store.agent_models import (
    ActionRow,
    ApprovalRow,
    BreakerStateRow,
    ExecutionRow,
    LLMCallRow,
    ProposalRow,
)

UTC = timezone.utc
OPEN_STATUSES = ("pending", "approved", "executing")
PENDING_TTL = timedelta(hours=12)


def _now(now: datetime | None = None) -> datetime:
    now = now or datetime.now(UTC)
    return now if now.tzinfo else now.replace(tzinfo=UTC)


def _esc(e) -> dict:
    from dataclasses import asdict

    d = asdict(e)
    d["reason"] = scrub_pii(d["reason"])
    return d


def _aware(t: datetime | None) -> datetime | None:
    if t is None:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


@dataclass
class CycleResult:
    proposal_id: str
    baseline: AgentPlan
    plan: AgentPlan
    accepted: list[Action]
    rejected: list[tuple[Action, str]]
    decisions: list[GateDecision]
    context_tokens: int | None = None
    llm_calls: list = field(default_factory=list)
    fallback_reason: str | None = None
    new_action_ids: list[str] = field(default_factory=list)
    recorded: bool = False
    suppressed: list[tuple[Action, str]] = field(default_factory=list)  # already pending / done (ledger)

    def as_dict(self) -> dict[str, Any]:
        return {
            "proposal_id": self.proposal_id,
            "planner": self.plan.planner,
            "rationale": self.plan.rationale,
            "fallback_reason": self.fallback_reason,
            "context_tokens": self.context_tokens,
            "decisions": [{**d.as_dict(), "action": action_to_dict(d.action)} for d in self.decisions],
            "rejected": [{"action": action_to_dict(a), "reason": r} for a, r in self.rejected],
            "suppressed": [{"action": action_to_dict(a), "reason": r} for a, r in self.suppressed],
            "escalations": [_esc(e) for e in self.plan.escalations],
            "llm_calls": [
                {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in c.__dict__.items()}
                for c in self.llm_calls
            ],
            "recorded": self.recorded,
            "new_action_ids": self.new_action_ids,
        }


class Proposals:
    def __init__(self, store: Store | None = None, *, memory=None, breaker_threshold: int = 3,
                 breaker_window: timedelta = timedelta(hours=6)):
        self.store = store or open_store()
        self._memory = memory
        self._breaker_defaults = {"threshold": breaker_threshold, "window": breaker_window}

    # -- collaborators ----------------------------------------------------------------------------
    @property
    def memory(self):
        if self._memory is None:
            from orchestrator.diagnosis.memory import FailureMemory

            self._memory = FailureMemory(self.store, embeddings=False)
        return self._memory

    def breaker(self) -> CircuitBreaker:
        with self.store.session() as s:
            row = s.get(BreakerStateRow, "default")
            return CircuitBreaker.from_dict(row.state if row else None, **self._breaker_defaults)

    def save_breaker(self, breaker: CircuitBreaker) -> None:
        with self.store.session() as s:
            row = s.get(BreakerStateRow, "default")
            if row is None:
                s.add(BreakerStateRow(name="default", state=breaker.to_dict(), updated_at=_now()))
            else:
                row.state, row.updated_at = breaker.to_dict(), _now()

    # -- one cycle --------------------------------------------------------------------------------
    def ledger(self, now: datetime | None = None, *, keep: timedelta = timedelta(hours=48)):
        """The actions of earlier cycles the decision core must not repeat: every open one, and
        those that succeeded within ``keep`` (with whether a person approved them)."""
        from orchestrator.core.incidents import ActionLedger, LedgerEntry

        now = _now(now)
        ledger = ActionLedger()
        with self.store.session() as s:
            rows = s.scalars(select(ActionRow).where(
                ActionRow.status.in_(OPEN_STATUSES + ("succeeded",)),
                ActionRow.updated_at >= now - keep)).all()
            for r in rows:
                if r.status not in OPEN_STATUSES and r.status != "succeeded":
                    continue
                try:
                    action = action_from_dict(r.payload)
                except Exception:  # noqa: BLE001 - an unreadable old row is not a reason to stop planning
                    continue
                ledger.entries[r.id] = LedgerEntry(
                    action, r.status, _aware(r.updated_at),
                    by_person=r.decision == AWAIT_APPROVAL and r.status != "pending")
            # open rows older than ``keep`` still count (a pending approval is pending however old)
            old = s.scalars(select(ActionRow).where(ActionRow.status.in_(OPEN_STATUSES),
                                                    ActionRow.updated_at < now - keep)).all()
            for r in old:
                try:
                    ledger.entries[r.id] = LedgerEntry(action_from_dict(r.payload), r.status, _aware(r.updated_at),
                                                       by_person=r.decision == AWAIT_APPROVAL and r.status != "pending")
                except Exception:  # noqa: BLE001
                    continue
        return ledger

    def run_cycle(self, snapshot: Snapshot, assessment: Assessment, resolution, durations=None, *,
                  now: datetime | None = None, llm="env", client=None, dry_run: bool = False,
                  use_memory: bool = True) -> CycleResult:
        """One decision cycle (``orchestrator.core.decide.decide``: plan, LLM review when
        configured, the ledger of earlier actions, validate, gate), then record it."""
        from orchestrator.core.decide import decide, llm_reviewer

        now = _now(now or snapshot.taken_at)
        if llm == "env":
            from orchestrator.agent import LLMConfig

            llm = LLMConfig.from_env()
        reviewer = llm_reviewer(llm, client) if llm is not None else None
        d = decide(snapshot, resolution, memory=self.memory if use_memory else None, breaker=self.breaker(),
                   reviewer=reviewer, now=now, durations=durations, assessment=assessment,
                   ledger=self.ledger(now))
        review = d.review
        result = CycleResult(
            proposal_id=f"p-{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}", baseline=d.baseline, plan=d.plan,
            accepted=d.accepted, rejected=d.rejected, decisions=d.decisions,
            context_tokens=review.context_tokens if review else None,
            llm_calls=list(review.calls) if review else [], fallback_reason=review.fallback_reason if review else None,
            suppressed=d.suppressed,
        )
        if not dry_run:
            self.record(result, snapshot, d.assessment, now=now)
        return result

    def record(self, result: CycleResult, snapshot: Snapshot, assessment: Assessment, *,
               now: datetime | None = None) -> str:
        now = _now(now)
        audit: list[tuple[str, str, str | None, Any]] = []
        with self.store.session() as s:
            existing = set(s.scalars(select(ActionRow.id).where(
                ActionRow.id.in_([a.action_id for a in result.plan.actions] or [""]))).all())
            s.add(ProposalRow(
                id=result.proposal_id, created_at=now, snapshot_at=snapshot.taken_at,
                planner=result.plan.planner, rationale=result.plan.rationale[:4000],
                fallback_reason=result.fallback_reason, context_tokens=result.context_tokens,
                details={"escalations": [_esc(e) for e in result.plan.escalations],
                         "baseline_actions": [a.action_id for a in result.baseline.actions]},
            ))
            s.flush()
            for c in result.llm_calls:
                s.add(LLMCallRow(proposal_id=result.proposal_id, at=c.at, model=c.model, tier=c.tier,
                                 purpose=c.purpose, prompt_tokens=c.prompt_tokens,
                                 completion_tokens=c.completion_tokens, cost_usd=c.cost_usd,
                                 latency_s=c.latency_s, outcome=c.outcome, error=c.error))
                audit.append(("llm.call", "agent", f"proposal:{result.proposal_id}",
                              {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in c.__dict__.items()}))
            if result.fallback_reason:
                audit.append(("llm.fallback", "agent", f"proposal:{result.proposal_id}",
                              {"reason": result.fallback_reason}))

            def add(a: Action, status: str, **kw) -> None:
                if a.action_id in existing:
                    return
                existing.add(a.action_id)
                fails = [{"message": scrub_pii(d.failure.message)[:2000], "category": d.category,
                          "failure_id": d.failure.failure_id, "system": d.failure.system}
                         for d in related_failures(a, assessment)]
                s.add(ActionRow(
                    id=a.action_id, proposal_id=result.proposal_id, type=str(a.type)[:32], source=a.source,
                    status=status, reason=scrub_pii(a.reason)[:4000], subjects=subjects(a),
                    payload=action_to_dict(a), failures=fails, not_before=_aware(a.not_before),
                    created_at=now, updated_at=now, **kw,
                ))
                result.new_action_ids.append(a.action_id)

            for a, reason in result.rejected:
                add(a, "rejected", rejection_reason=reason)
                audit.append(("action.rejected", "validator", f"action:{a.action_id}",
                              {"reason": reason, "action": action_to_dict(a)}))
            for d in result.decisions:
                status = {"execute": "approved", "await_approval": "pending"}.get(d.decision, "record_only")
                ttl_from = max(now, _aware(d.action.not_before) or now)
                add(d.action, status, decision=d.decision, risk=d.risk, risk_score=d.risk_score,
                    confidence=d.confidence, gate_reason=d.reason, owners=list(d.owners),
                    expires_at=ttl_from + PENDING_TTL if status == "pending" else None)
                audit.append(("gate.decision", "gate", f"action:{d.action.action_id}",
                              {**d.as_dict(), "action": action_to_dict(d.action)}))
                if d.decision == EXECUTE and d.action.action_id in result.new_action_ids:
                    s.add(ApprovalRow(action_id=d.action.action_id, decision="approve",
                                      actor="policy", via="policy", comment=d.reason, at=now))
        for e in result.plan.escalations:
            audit.append(("escalation", "planner", e.subject, _esc(e)))
        self.store.append_audit("proposal", actor="planner", subject=f"proposal:{result.proposal_id}", payload={
            "planner": result.plan.planner, "actions": len(result.plan.actions),
            "accepted": len(result.accepted), "rejected": len(result.rejected),
            "decisions": {k: sum(1 for d in result.decisions if d.decision == k)
                          for k in ("execute", "await_approval", "record_only")},
            "new": len(result.new_action_ids), "rationale": result.plan.rationale[:1000],
        })
        for kind, actor, subject, payload in audit:
            self.store.append_audit(kind, actor=actor, subject=subject, payload=payload)
        result.recorded = True
        return result.proposal_id

    # -- approvals --------------------------------------------------------------------------------
    def _decide(self, action_id: str, approve: bool, actor: str, via: str, comment: str | None,
                now: datetime | None) -> dict:
        now = _now(now)
        still_pending = (ActionRow.id == action_id, ActionRow.status == "pending")
        with self.store.session() as s:
            row = s.get(ActionRow, action_id)
            if row is None:
                raise KeyError(f"no action {action_id!r}")
            if row.status != "pending":
                raise ValueError(f"action {action_id} is {row.status}, not pending")
            expires_at = row.expires_at
            expired = expires_at is not None and _aware(expires_at) <= now
            if expired:  # recorded (committed) before refusing, so it never looks pending again
                s.execute(update(ActionRow).where(*still_pending).values(status="expired", updated_at=now))
            else:
                # Conditional on still being pending: an Approve and a Reject link confirmed at the
                # same moment cannot both win.
                decided = s.execute(update(ActionRow).where(*still_pending).values(
                    status="approved" if approve else "declined", updated_at=now))
                if decided.rowcount != 1:
                    raise ValueError(f"action {action_id} was decided by someone else meanwhile")
                s.add(ApprovalRow(action_id=action_id, decision="approve" if approve else "reject",
                                  actor=actor, via=via, comment=comment, at=now))
                failures, atype = list(row.failures or []), row.type
        if expired:
            raise ValueError(f"action {action_id} expired at {expires_at.isoformat()}")
        self.store.append_audit("approval" if approve else "rejection", actor=actor, subject=f"action:{action_id}",
                                payload={"via": via, "comment": comment, "at": now.isoformat()})
        for f in failures:  # the operator's verdict teaches the failure memory
            try:
                self.memory.learn_from_approval(f["message"], f["category"], atype, approve, actor=actor)
            except Exception:
                pass
        return self.show(action_id)

    def approve(self, action_id: str, actor: str, via: str = "cli", comment: str | None = None,
                now: datetime | None = None) -> dict:
        return self._decide(action_id, True, actor, via, comment, now)

    def reject(self, action_id: str, actor: str, via: str = "cli", comment: str | None = None,
               now: datetime | None = None) -> dict:
        return self._decide(action_id, False, actor, via, comment, now)

    def expire(self, now: datetime | None = None) -> list[str]:
        now = _now(now)
        with self.store.session() as s:
            rows = s.scalars(select(ActionRow).where(ActionRow.status == "pending")).all()
            gone = [r for r in rows if r.expires_at is not None and _aware(r.expires_at) <= now]
            for r in gone:
                r.status, r.updated_at = "expired", now
            ids = [r.id for r in gone]
        for i in ids:
            self.store.append_audit("action.expired", actor="system", subject=f"action:{i}")
        return ids

    # -- execution --------------------------------------------------------------------------------
    def executable(self, now: datetime | None = None) -> list[Action]:
        """Approved actions whose ``not_before`` has come (and actions already launching: the
        execution sensor re-emits their RunRequests; run keys make that idempotent)."""
        now = _now(now)
        with self.store.session() as s:
            rows = s.scalars(select(ActionRow).where(ActionRow.status.in_(("approved", "executing")))
                             .order_by(ActionRow.created_at)).all()
            out = []
            for r in rows:
                if r.not_before is not None and _aware(r.not_before) > now:
                    continue
                out.append(action_from_dict(r.payload))
        out.sort(key=lambda a: -a.priority)
        return out

    def status(self, action_id: str) -> str | None:
        with self.store.session() as s:
            row = s.get(ActionRow, action_id)
            return row.status if row else None

    def claim(self, action_id: str, now: datetime | None = None) -> bool:
        """approved -> executing, atomically; False if someone else already claimed it."""
        with self.store.session() as s:
            res = s.execute(update(ActionRow).where(ActionRow.id == action_id, ActionRow.status == "approved")
                            .values(status="executing", updated_at=_now(now)))
            return res.rowcount == 1

    def record_execution(self, action_id: str, kind: str, *, run_key: str | None = None,
                         run_id: str | None = None, status: str = "launched", detail: Any = None,
                         now: datetime | None = None) -> None:
        now = _now(now)
        with self.store.session() as s:
            if run_id is not None and s.scalars(select(ExecutionRow.id).where(
                    ExecutionRow.action_id == action_id, ExecutionRow.run_id == run_id)).first():
                return
            s.add(ExecutionRow(action_id=action_id, kind=kind, run_key=run_key, run_id=run_id, status=status,
                               detail=detail, started_at=now))
            row = s.get(ActionRow, action_id)
            if row is not None and row.status == "approved":
                row.status, row.updated_at = "executing", now
        self.store.append_audit("execution", actor="executor", subject=f"action:{action_id}",
                                payload={"kind": kind, "run_key": run_key, "run_id": run_id, "status": status,
                                         "detail": detail})

    def record_outcome(self, action_id: str, success: bool, *, detail: Any = None, resolution=None,
                       now: datetime | None = None) -> list:
        """Close an action: status, failure memory (did this resolution work for this class?),
        circuit breaker (automatic actions only). Returns breaker trips."""
        now = _now(now)
        with self.store.session() as s:
            row = s.get(ActionRow, action_id)
            if row is None or row.status in ("succeeded", "failed"):
                return []
            row.status, row.updated_at = ("succeeded" if success else "failed"), now
            for ex in s.scalars(select(ExecutionRow).where(ExecutionRow.action_id == action_id,
                                                           ExecutionRow.ended_at.is_(None))).all():
                ex.status, ex.ended_at = ("succeeded" if success else "failed"), now
            automatic = row.decision == EXECUTE
            failures, atype, subs, payload = list(row.failures or []), row.type, list(row.subjects or []), row.payload
        self.store.append_audit("outcome", actor="executor", subject=f"action:{action_id}",
                                payload={"success": success, "detail": detail})
        from orchestrator.core.decide import learn_outcome

        # the same outcome step as the simulator's: failure memory, then the circuit breaker
        breaker = self.breaker()
        trips = learn_outcome(
            action_from_dict(payload) if payload else Action(action_id, atype, ""), success,
            failures=[(f["message"], f["category"], f.get("system")) for f in failures],
            memory=self.memory if failures else None, breaker=breaker, automatic=automatic, now=now,
            subjects=subs)
        self.save_breaker(breaker)
        for trip in trips:
            self._on_trip(trip, payload, resolution, now)
        return trips

    def _on_trip(self, trip, payload: dict, resolution, now: datetime) -> None:
        """Stop acting on the subject, pause its connector where the policy allows, tell owners."""
        owners: list[str] = []
        keys = list(payload.get("asset_keys") or [])
        if resolution is not None:
            for k in keys:
                sla = resolution.sla(k)
                owners += [o for o in (sla.owners if sla else ()) if o not in owners]
        self.store.append_audit("breaker.trip", actor="breaker", subject=trip.subject,
                                payload={"reason": trip.reason, "owners": owners, "failures": trip.failures})
        self.store.append_audit("escalation", actor="breaker", subject=trip.subject,
                                payload={"reason": trip.reason, "owners": owners})
        if not trip.subject.startswith("connector:"):
            return
        connector = trip.subject.split(":", 1)[1]
        allowed = False
        if resolution is not None and resolution.graph is not None:
            tables = [n.key for n in resolution.graph if n.connector == connector]
            slas = [resolution.sla(k) for k in tables]
            allowed = bool(slas) and all(s is not None and s.may_run_without_approval(ActionType.pause_connector)
                                         for s in slas)
        pause = Action(action_id=f"brk-{uuid.uuid4().hex[:12]}", type=ActionType.pause_connector.value,
                       connector=connector, reason=f"circuit breaker: {trip.reason}")
        with self.store.session() as s:
            pid = f"p-breaker-{uuid.uuid4().hex[:8]}"
            s.add(ProposalRow(id=pid, created_at=now, planner="circuit-breaker", rationale=trip.reason))
            s.flush()
            s.add(ActionRow(id=pause.action_id, proposal_id=pid, type=pause.type, source="breaker",
                            status="approved" if allowed else "pending",
                            decision=EXECUTE if allowed else AWAIT_APPROVAL, risk="medium",
                            reason=pause.reason, gate_reason="policy allows pause_connector" if allowed
                            else "pause_connector not in auto_approve", subjects=subjects(pause),
                            owners=owners, payload=action_to_dict(pause), created_at=now, updated_at=now,
                            expires_at=None if allowed else now + PENDING_TTL))

    # -- reading ----------------------------------------------------------------------------------
    def list(self, status: str | None = None, limit: int = 100) -> list[dict]:
        with self.store.session() as s:
            q = select(ActionRow).order_by(ActionRow.created_at.desc(), ActionRow.id).limit(limit)
            if status:
                q = q.where(ActionRow.status == status)
            return [self._row(r) for r in s.scalars(q).all()]

    @staticmethod
    def _row(r: ActionRow) -> dict:
        return {
            "action_id": r.id, "proposal_id": r.proposal_id, "type": r.type, "status": r.status,
            "decision": r.decision, "risk": r.risk, "risk_score": r.risk_score, "confidence": r.confidence,
            "source": r.source, "reason": r.reason, "gate_reason": r.gate_reason,
            "rejection_reason": r.rejection_reason, "owners": r.owners, "subjects": r.subjects,
            "not_before": r.not_before.isoformat() if r.not_before else None,
            "expires_at": r.expires_at.isoformat() if r.expires_at else None,
            "created_at": r.created_at.isoformat() if r.created_at else None, "action": r.payload,
        }

    def show(self, ident: str) -> dict:
        with self.store.session() as s:
            row = s.get(ActionRow, ident)
            if row is not None:
                out = self._row(row)
                out["approvals"] = [
                    {"decision": a.decision, "actor": a.actor, "via": a.via, "comment": a.comment,
                     "at": a.at.isoformat()}
                    for a in s.scalars(select(ApprovalRow).where(ApprovalRow.action_id == ident)
                                       .order_by(ApprovalRow.id)).all()
                ]
                out["executions"] = [
                    {"kind": e.kind, "run_key": e.run_key, "run_id": e.run_id, "status": e.status,
                     "detail": e.detail, "started_at": e.started_at.isoformat(),
                     "ended_at": e.ended_at.isoformat() if e.ended_at else None}
                    for e in s.scalars(select(ExecutionRow).where(ExecutionRow.action_id == ident)
                                       .order_by(ExecutionRow.id)).all()
                ]
                return out
            prop = s.get(ProposalRow, ident)
            if prop is None:
                raise KeyError(f"no proposal or action {ident!r}")
            actions = s.scalars(select(ActionRow).where(ActionRow.proposal_id == ident)).all()
            calls = s.scalars(select(LLMCallRow).where(LLMCallRow.proposal_id == ident)).all()
            return {
                "proposal_id": prop.id, "created_at": prop.created_at.isoformat(), "planner": prop.planner,
                "rationale": prop.rationale, "fallback_reason": prop.fallback_reason,
                "context_tokens": prop.context_tokens, "details": prop.details,
                "actions": [self._row(r) for r in actions],
                "llm_calls": [{"model": c.model, "tier": c.tier, "purpose": c.purpose, "outcome": c.outcome,
                               "prompt_tokens": c.prompt_tokens, "completion_tokens": c.completion_tokens,
                               "cost_usd": c.cost_usd, "latency_s": c.latency_s, "error": c.error}
                              for c in calls],
            }
