"""Store-backed proposal lifecycle: one planning cycle -> proposal -> approval -> execution -> outcome.

    from orchestrator.proposals import Proposals
    props = Proposals()                                   # open_store() by default
    result = props.run_cycle(snapshot, assessment, resolution, durations)   # plan/agent/validate/gate/record
    props.approve(action_id, actor="ana@example.com", via="cli")
    props.executable(now)                                 # what the execution sensor launches
    props.record_outcome(action_id, success=True)         # -> failure memory, circuit breaker

Statuses of an action: ``rejected`` (validation), ``record_only`` (shadow / breaker open), ``cancelled``,
``pending`` (waits for approval), ``approved`` (by a person or, for ``execute`` decisions, by
policy), ``declined``, ``expired``, ``executing``, ``succeeded``, ``failed``. Every step appends
to the audit trail (``audit_events``). Action ids are deterministic, so a situation planned
again in the next cycle is not proposed twice.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from orchestrator.agent.envelope import DROP_TYPE, drop_target
from orchestrator.core.incidents import ANY_CLASS
from orchestrator.core.records import Action, Assessment, Snapshot
from orchestrator.core.standing import ACTIVE as STANDING_ACTIVE
from orchestrator.core.standing import STANDING, STANDING_TTL
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
from orchestrator.diagnosis.normalize import normalize
from orchestrator.diagnosis.rules import CATEGORIES
from orchestrator.planning.breaker import Trip, schedule_allowance
from orchestrator.planning.gate import answered_failures
from orchestrator.policies import ActionType
from orchestrator.store import Store, open_store
from orchestrator.store.models import AuditEvent
from orchestrator.store.agent_models import (
    ActionRow,
    ApprovalRow,
    BreakerEventRow,
    BreakerTripRow,
    ExecutionRow,
    LLMCallRow,
    ProposalRow,
)

UTC = timezone.utc
REPAIR_EVENT = "incident.repaired"  # audit kind of a repair reported outside any action
OPEN_STATUSES = ("pending", "approved", "executing")
PENDING_TTL = timedelta(hours=12)
RUN_ACTION_TYPES = ("materialize", "retry", "backfill", "defer")
# A write-ahead ``calling`` row belongs to its tick for this long (a tick is bounded well below
# it); after that the reconciler settles it from the connector's or the instance's own state.
CALL_LEASE = timedelta(seconds=float(os.environ.get("ORCHESTRATOR_CALL_LEASE", "120")))
PAUSE_RETRY_BASE = timedelta(minutes=1)
PAUSE_RETRY_MAX = timedelta(hours=1)


def record_repair(store: Store, subject: str, category: str, actor: str, now: datetime | None = None) -> None:
    """A repair of ``subject`` reported outside any action (see :meth:`Proposals.record_repair`):
    one audit event, and the subject's open circuit-breaker trips closed, in one transaction."""
    now = _now(now)
    with store.session() as s:
        store.lock(s)
        store.audit(s, REPAIR_EVENT, actor=actor, subject=subject, payload={"category": category}, ts=now)
        s.execute(update(BreakerTripRow).where(BreakerTripRow.subject == subject, BreakerTripRow.reset_at.is_(None))
                  .values(reset_at=now, reset_by=actor))


def parse_duration(text: str) -> timedelta:
    """``90s``, ``30m``, ``12h``, ``2d`` or plain seconds."""
    t = text.strip().lower()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        if t and t[-1] in units:
            return timedelta(seconds=float(t[:-1]) * units[t[-1]])
        return timedelta(seconds=float(t))
    except ValueError:
        raise ValueError(f"invalid duration {text!r}: expected e.g. 90s, 30m, 12h, 2d") from None


def approved_ttl() -> timedelta | None:
    """How long an approved action may wait to start (``ORCHESTRATOR_APPROVED_TTL``, default 24h;
    ``off`` = forever)."""
    raw = os.environ.get("ORCHESTRATOR_APPROVED_TTL", "24h")
    return None if raw.strip().lower() in ("off", "none", "0", "") else parse_duration(raw)


def _now(now: datetime | None = None) -> datetime:
    now = now or datetime.now(UTC)
    return now if now.tzinfo else now.replace(tzinfo=UTC)


def _esc(e) -> dict:
    from dataclasses import asdict

    d = asdict(e)
    d["reason"] = scrub_pii(d["reason"])
    return d


def _clean(a: Action) -> dict:
    """``action_to_dict`` with its free text scrubbed (the LLM's rationale, failure quotes)."""
    d = action_to_dict(a)
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

    # -- circuit breaker (rows: breaker_events, breaker_trips) ------------------------------------
    def breaker(self, now: datetime | None = None) -> CircuitBreaker:
        """The breaker as the gate sees it: failures since each subject's last success/reset within
        the window, and the open trips."""
        now = _now(now)
        with self.store.session() as s:
            return self._breaker_in(s, now)

    def _breaker_in(self, s, now: datetime) -> CircuitBreaker:
        window = self._breaker_defaults["window"]
        trips = s.scalars(select(BreakerTripRow).where(BreakerTripRow.reset_at.is_(None))).all()
        events = s.scalars(select(BreakerEventRow).where(BreakerEventRow.at > now - window)
                           .order_by(BreakerEventRow.at, BreakerEventRow.id)).all()
        resets = dict(s.execute(select(BreakerTripRow.subject, func.max(BreakerTripRow.reset_at))
                                .where(BreakerTripRow.reset_at.is_not(None))
                                .group_by(BreakerTripRow.subject)).all())
        failures: dict[str, list[str]] = {}
        for e in events:
            reset = _aware(resets.get(e.subject))
            if reset is not None and _aware(e.at) <= reset:
                continue
            if e.success:
                failures.pop(e.subject, None)
            else:
                failures.setdefault(e.subject, []).append(_aware(e.at).isoformat())
        # the last failed attempt on each open subject (a failed half-open trial keeps it open)
        tried = {e.subject: _aware(e.at) for e in events if not e.success}
        return CircuitBreaker.from_dict({
            "threshold": self._breaker_defaults["threshold"], "window_s": window.total_seconds(),
            "failures": failures,
            "open": {t.subject: {"opened_at": _aware(t.opened_at).isoformat(), "reason": t.reason,
                                 **({"last_attempt": tried[t.subject].isoformat()}
                                    if t.subject in tried and tried[t.subject] > _aware(t.opened_at) else {})}
                     for t in trips},
        })

    def save_breaker(self, breaker: CircuitBreaker) -> None:
        """Persist an in-memory breaker's failures and open subjects (samples, imports)."""
        data = breaker.to_dict()
        with self.store.session() as s:
            self.store.lock(s)
            for subject, times in data["failures"].items():
                for i, t in enumerate(times):
                    s.add(BreakerEventRow(subject=subject, action_id=f"import-{i}-{t}"[:64], success=False,
                                          at=datetime.fromisoformat(t)))
            open_now = set(s.scalars(select(BreakerTripRow.subject).where(BreakerTripRow.reset_at.is_(None))).all())
            for subject, st in data["open"].items():
                if subject not in open_now:
                    s.add(BreakerTripRow(trip_key=f"{subject}@{st['opened_at']}", subject=subject,
                                         failures=len(data["failures"].get(subject, [])), reason=st["reason"],
                                         opened_at=datetime.fromisoformat(st["opened_at"])))

    def reset_breaker(self, subject: str, actor: str, now: datetime | None = None) -> int:
        """A person takes over: close the subject's open trips (its pause stops being retried)."""
        now = _now(now)
        with self.store.session() as s:
            self.store.lock(s)
            n = s.execute(update(BreakerTripRow).where(BreakerTripRow.subject == subject,
                                                       BreakerTripRow.reset_at.is_(None))
                          .values(reset_at=now, reset_by=actor)).rowcount
            if n:
                self.store.audit(s, "breaker.reset", actor=actor, subject=subject, ts=now)
        return n

    def record_repair(self, subject: str, category: str, actor: str, now: datetime | None = None) -> None:
        """``actor`` reports the cause of ``subject``'s failures repaired (``category``, or
        ``ANY_CLASS``: whatever made it fail), e.g. the schema-change sensor once a broken table
        matches the project again (the patch merged and deployed, or a person's fix). The next
        planning cycles' ledger carries it (:meth:`ledger`): the subject is retried at once, its
        connector resumed when paused, and its open circuit breaker trips are closed (a person
        took over). Audit event :data:`REPAIR_EVENT`."""
        record_repair(self.store, subject, category, actor, now)

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
            # repairs reported outside any action (record_repair): the failures before them are retried
            for ev in s.scalars(select(AuditEvent).where(AuditEvent.kind == REPAIR_EVENT,
                                                         AuditEvent.ts >= now - keep).order_by(AuditEvent.id)):
                if ev.subject:
                    ledger.record_repair(ev.subject, str((ev.payload or {}).get("category") or ANY_CLASS),
                                         _aware(ev.ts))
            # standing approvals, whatever their status and age: active ones authorise, refused
            # ones are not asked again (orchestrator.core.standing)
            for r in s.scalars(select(ActionRow).where(ActionRow.type == STANDING)):
                try:
                    ledger.entries[r.id] = LedgerEntry(action_from_dict(r.payload), r.status, _aware(r.updated_at),
                                                       by_person=r.status == STANDING_ACTIVE)
                except Exception:  # noqa: BLE001
                    continue
        return ledger

    def run_cycle(self, snapshot: Snapshot, assessment: Assessment, resolution, durations=None, *,
                  now: datetime | None = None, llm="env", client=None, dry_run: bool = False,
                  use_memory: bool = True, planner_config=None, gate_config=None) -> CycleResult:
        """One decision cycle (``orchestrator.core.decide.decide``: plan, LLM review when
        configured, the ledger of earlier actions, validate, gate), then record it. The configs
        default to the settings' (``orchestrator.recovery.cycle_configs``: automation mode,
        backoff scale), the same for every caller."""
        from orchestrator.core.decide import decide, llm_reviewer

        if planner_config is None or gate_config is None:
            from orchestrator.recovery import cycle_configs

            p_cfg, g_cfg = cycle_configs()
            planner_config = planner_config or p_cfg
            gate_config = gate_config or g_cfg

        now = _now(now or snapshot.taken_at)
        if llm == "env":
            from orchestrator.agent import LLMConfig

            llm = LLMConfig.from_env()
        reviewer = llm_reviewer(llm, client) if llm is not None else None
        d = decide(snapshot, resolution, memory=self.memory if use_memory else None, breaker=self.breaker(now),
                   reviewer=reviewer, now=now, durations=durations, assessment=assessment,
                   ledger=self.ledger(now), planner_config=planner_config, gate_config=gate_config)
        review = d.review
        result = CycleResult(
            proposal_id=f"p-{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}", baseline=d.baseline, plan=d.plan,
            accepted=d.accepted, rejected=d.rejected, decisions=list(d.decisions) + list(d.standing_requests),
            context_tokens=review.context_tokens if review else None,
            llm_calls=list(review.calls) if review else [], fallback_reason=review.fallback_reason if review else None,
            suppressed=d.suppressed,
        )
        if not dry_run:
            self.record(result, snapshot, d.assessment, now=now)
            for pending_id, why in d.superseded:  # the gate runs its work by itself now
                self.withdraw(pending_id, why, now=now)
        return result

    def record(self, result: CycleResult, snapshot: Snapshot, assessment: Assessment, *,
               now: datetime | None = None) -> str:
        """The proposal, its actions, policy approvals and every audit event: one transaction."""
        now = _now(now)
        new_ids: list[str] = []
        with self.store.session() as s:
            self.store.lock(s)
            existing = set(s.scalars(select(ActionRow.id).where(
                ActionRow.id.in_([a.action_id for a in result.plan.actions] or [""]))).all())
            s.add(ProposalRow(
                id=result.proposal_id, created_at=now, snapshot_at=snapshot.taken_at,
                planner=result.plan.planner, rationale=scrub_pii(result.plan.rationale)[:4000],
                fallback_reason=result.fallback_reason, context_tokens=result.context_tokens,
                details={"escalations": [_esc(e) for e in result.plan.escalations],
                         "baseline_actions": [a.action_id for a in result.baseline.actions]},
            ))
            s.flush()
            self.store.audit(s, "proposal", actor="planner", subject=f"proposal:{result.proposal_id}", ts=now,
                             payload={
                "planner": result.plan.planner, "actions": len(result.plan.actions),
                "accepted": len(result.accepted), "rejected": len(result.rejected),
                "decisions": {k: sum(1 for d in result.decisions if d.decision == k)
                              for k in ("execute", "await_approval", "record_only")},
                "new": len([a for a in result.plan.actions if a.action_id not in existing]),
                "rationale": scrub_pii(result.plan.rationale)[:1000],
            })
            for c in result.llm_calls:
                s.add(LLMCallRow(proposal_id=result.proposal_id, at=c.at, model=c.model, tier=c.tier,
                                 purpose=c.purpose, prompt_tokens=c.prompt_tokens,
                                 completion_tokens=c.completion_tokens, cost_usd=c.cost_usd,
                                 latency_s=c.latency_s, outcome=c.outcome, error=scrub_pii(c.error) or None))
                self.store.audit(s, "llm.call", actor="agent", subject=f"proposal:{result.proposal_id}", ts=now,
                                 payload={k: (v.isoformat() if isinstance(v, datetime)
                                              else scrub_pii(v) if isinstance(v, str) else v)
                                          for k, v in c.__dict__.items()})
            if result.fallback_reason:
                self.store.audit(s, "llm.fallback", actor="agent", subject=f"proposal:{result.proposal_id}",
                                 ts=now, payload={"reason": scrub_pii(result.fallback_reason)})

            def add(a: Action, status: str, **kw) -> None:
                if a.action_id in existing:
                    return
                existing.add(a.action_id)
                fails = [{"message": scrub_pii(d.failure.message)[:2000], "category": d.category,
                          "failure_id": d.failure.failure_id, "system": d.failure.system}
                         for d in answered_failures(a, assessment, snapshot)]
                s.add(ActionRow(
                    id=a.action_id, proposal_id=result.proposal_id, type=str(a.type)[:32], source=a.source,
                    status=status, reason=scrub_pii(a.reason)[:4000], subjects=subjects(a),
                    payload=_clean(a), failures=fails, not_before=_aware(a.not_before),
                    created_at=now, updated_at=now, **kw,
                ))
                new_ids.append(a.action_id)

            for a, reason in result.rejected:
                add(a, "rejected", rejection_reason=reason)
                self.store.audit(s, "action.rejected", actor="validator", subject=f"action:{a.action_id}", ts=now,
                                 payload={"reason": scrub_pii(reason), "action": _clean(a)})
            for d in result.decisions:
                status = {"execute": "approved", "await_approval": "pending"}.get(d.decision, "record_only")
                ttl_from = max(now, _aware(d.action.not_before) or now)
                add(d.action, status, decision=d.decision, risk=d.risk, risk_score=d.risk_score,
                    confidence=d.confidence, gate_reason=d.reason, owners=list(d.owners),
                    expires_at=ttl_from + PENDING_TTL if status == "pending" else None)
                self.store.audit(s, "gate.decision", actor="gate", subject=f"action:{d.action.action_id}", ts=now,
                                 payload={**d.as_dict(), "action": _clean(d.action)})
                if d.decision == EXECUTE and d.action.action_id in new_ids:
                    by = getattr(d, "authorised_by", None)
                    s.add(ApprovalRow(action_id=d.action.action_id, decision="approve",
                                      actor=f"standing:{by}"[:255] if by else "policy",
                                      via="standing" if by else "policy", comment=d.reason, at=now))
            # one escalation per incident (subject + failure), however many cycles see it
            told = {(ev.subject, (ev.payload or {}).get("failure_id")) for ev in s.scalars(
                select(AuditEvent).where(AuditEvent.kind == "escalation", AuditEvent.actor == "planner",
                                         AuditEvent.subject.in_([e.subject for e in result.plan.escalations] or [""])))}
            for e in result.plan.escalations:
                if (e.subject, e.failure_id) in told:
                    continue
                told.add((e.subject, e.failure_id))
                self.store.audit(s, "escalation", actor="planner", subject=e.subject, ts=now, payload=_esc(e))
        result.new_action_ids.extend(new_ids)
        result.recorded = True
        return result.proposal_id

    # -- approvals --------------------------------------------------------------------------------
    def _decide(self, action_id: str, approve: bool, actor: str, via: str, comment: str | None,
                now: datetime | None) -> dict:
        now = _now(now)
        still_pending = (ActionRow.id == action_id, ActionRow.status == "pending")
        with self.store.session() as s:
            self.store.lock(s)
            row = s.get(ActionRow, action_id)
            if row is None:
                raise KeyError(f"no action {action_id!r}")
            if row.status != "pending":
                raise ValueError(f"action {action_id} is {row.status}, not pending")
            expires_at = row.expires_at
            expired = expires_at is not None and _aware(expires_at) <= now
            if expired:  # recorded (committed) before refusing, so it never looks pending again
                if s.execute(update(ActionRow).where(*still_pending).values(status="expired", updated_at=now)).rowcount:
                    self.store.audit(s, "action.expired", actor="system", subject=f"action:{action_id}", ts=now,
                                     payload={"expires_at": _aware(expires_at).isoformat(), "refused": actor})
            else:
                # Conditional on still being pending: an Approve and a Reject link confirmed at the
                # same moment cannot both win.
                # a standing approval (orchestrator.core.standing) stands once approved: it never
                # runs, it authorises routine refreshes of its scope until it expires or is revoked
                standing = row.type == STANDING
                status = (STANDING_ACTIVE if standing else "approved") if approve else "declined"
                extra = {"expires_at": now + STANDING_TTL} if standing and approve else {}
                decided = s.execute(update(ActionRow).where(*still_pending).values(
                    status=status, updated_at=now, **extra))
                if decided.rowcount != 1:
                    raise ValueError(f"action {action_id} was decided by someone else meanwhile")
                s.add(ApprovalRow(action_id=action_id, decision="approve" if approve else "reject",
                                  actor=actor, via=via, comment=comment, at=now))
                self.store.audit(s, "approval" if approve else "rejection", actor=actor,
                                 subject=f"action:{action_id}", ts=now,
                                 payload={"via": via, "comment": comment, "at": now.isoformat(),
                                          **({"standing": True, "expires_at": (now + STANDING_TTL).isoformat()}
                                             if standing and approve else {})})
                failures, atype = list(row.failures or []), row.type
                if row.type == DROP_TYPE:  # an LLM's drop: carried out here, never by the sensor
                    self._settle_drop(s, row, approve, actor, via, now)
        if expired:
            raise ValueError(f"action {action_id} expired at {expires_at.isoformat()}")
        for f in failures:  # the operator's verdict teaches the failure memory
            try:
                self.memory.learn_from_approval(f["message"], f["category"], atype, approve, actor=actor)
            except Exception:
                pass
        return self.show(action_id)

    def _settle_drop(self, s, row: ActionRow, approve: bool, actor: str, via: str, now: datetime) -> None:
        """An approved LLM drop cancels its baseline action if that has not started (pending or
        approved); a rejected one keeps it. The drop itself is settled at once (its outcome says
        what happened), in the approval's transaction; a declined drop stays ``declined``."""
        if not approve:  # declined: the baseline action stays as it is
            return
        target = drop_target(action_from_dict(row.payload)) if row.payload else None
        trow = s.get(ActionRow, target) if target else None
        if trow is None:
            final, detail = "failed", f"no action {target!r} to cancel"
        elif s.execute(update(ActionRow).where(ActionRow.id == target, ActionRow.status.in_(("pending", "approved")))
                       .values(status="cancelled", updated_at=now)).rowcount == 1:
            s.add(ApprovalRow(action_id=target, decision="cancel", actor=actor, via=via,
                              comment=f"LLM drop {row.id} approved", at=now))
            self.store.audit(s, "cancellation", actor=actor, subject=f"action:{target}", ts=now,
                             payload={"via": via, "comment": f"LLM drop {row.id} approved", "was": trow.status})
            final, detail = "succeeded", f"{target} cancelled"
        else:
            final, detail = "failed", f"{target} is {trow.status}: too late to cancel"
        s.execute(update(ActionRow).where(ActionRow.id == row.id).values(status=final, updated_at=now))
        self.store.audit(s, "outcome", actor="orchestrator", subject=f"action:{row.id}", ts=now,
                         payload={"success": final == "succeeded", "detail": detail})

    def approve(self, action_id: str, actor: str, via: str = "cli", comment: str | None = None,
                now: datetime | None = None) -> dict:
        return self._decide(action_id, True, actor, via, comment, now)

    def reject(self, action_id: str, actor: str, via: str = "cli", comment: str | None = None,
               now: datetime | None = None) -> dict:
        return self._decide(action_id, False, actor, via, comment, now)

    def cancel(self, action_id: str, actor: str, via: str = "cli", comment: str | None = None,
               now: datetime | None = None) -> dict:
        """Withdraw a pending or approved action before it starts (atomic with its audit event).
        An action already executing is refused: its run is cancelled in Dagster, its call is made."""
        now = _now(now)
        with self.store.session() as s:
            self.store.lock(s)
            row = s.get(ActionRow, action_id)
            if row is None:
                raise KeyError(f"no action {action_id!r}")
            revocable = ("pending", "approved", STANDING_ACTIVE)  # cancelling a standing approval revokes it
            if row.status not in revocable:
                hint = " (cancel its run in Dagster)" if row.status == "executing" else ""
                raise ValueError(f"action {action_id} is {row.status}; only pending or approved actions can be "
                                 f"cancelled{hint}")
            res = s.execute(update(ActionRow).where(ActionRow.id == action_id,
                                                    ActionRow.status.in_(revocable))
                            .values(status="cancelled", updated_at=now))
            if res.rowcount != 1:
                raise ValueError(f"action {action_id} changed meanwhile; not cancelled")
            s.add(ApprovalRow(action_id=action_id, decision="cancel", actor=actor, via=via, comment=comment, at=now))
            self.store.audit(s, "cancellation", actor=actor, subject=f"action:{action_id}", ts=now,
                             payload={"via": via, "comment": comment, "was": row.status})
        return self.show(action_id)

    def withdraw(self, action_id: str, reason: str, *, actor: str = "orchestrator",
                 now: datetime | None = None) -> bool:
        """A pending action that can no longer succeed or is already done is withdrawn: status
        ``withdrawn``, the reason kept (an approval row ``withdraw`` with it as comment) and a
        ``withdrawal`` audit event, atomically. False when it was not pending any more."""
        now = _now(now)
        with self.store.session() as s:
            self.store.lock(s)
            res = s.execute(update(ActionRow).where(ActionRow.id == action_id, ActionRow.status == "pending")
                            .values(status="withdrawn", updated_at=now))
            if res.rowcount != 1:
                return False
            s.add(ApprovalRow(action_id=action_id, decision="withdraw", actor=actor, via="policy",
                              comment=reason[:2000], at=now))
            self.store.audit(s, "withdrawal", actor=actor, subject=f"action:{action_id}", ts=now,
                             payload={"reason": reason[:2000], "was": "pending"})
        return True

    def expire(self, now: datetime | None = None) -> list[str]:
        """Pending actions past ``expires_at`` and approved actions not started within
        ``ORCHESTRATOR_APPROVED_TTL`` of their approval expire (each with its audit event)."""
        now = _now(now)
        ttl = approved_ttl()
        out: list[str] = []
        with self.store.session() as s:
            rows = s.execute(select(ActionRow.id, ActionRow.status, ActionRow.expires_at, ActionRow.updated_at,
                                    ActionRow.not_before)
                             .where(ActionRow.status.in_(("pending", "approved")))).all()
            gone = []
            for r in s.execute(select(ActionRow.id, ActionRow.expires_at).where(
                    ActionRow.status == STANDING_ACTIVE, ActionRow.expires_at <= now)).all():
                gone.append((r.id, STANDING_ACTIVE, {"expires_at": _aware(r.expires_at).isoformat(),
                                                      "reason": "standing approval expired"}))
            for r in rows:
                if r.status == "pending" and r.expires_at is not None and _aware(r.expires_at) <= now:
                    gone.append((r.id, "pending", {"expires_at": _aware(r.expires_at).isoformat()}))
                elif r.status == "approved" and ttl is not None:
                    since = max(_aware(r.updated_at), _aware(r.not_before) or _aware(r.updated_at))
                    if since + ttl <= now:
                        gone.append((r.id, "approved", {"approved_ttl_s": ttl.total_seconds(),
                                                        "reason": "approved but not started in time"}))
            if not gone:
                return []
            self.store.lock(s)
            for aid, was, payload in gone:
                res = s.execute(update(ActionRow).where(ActionRow.id == aid, ActionRow.status == was)
                                .values(status="expired", updated_at=now))
                if res.rowcount:
                    self.store.audit(s, "action.expired", actor="system", subject=f"action:{aid}", ts=now,
                                     payload={**payload, "was": was})
                    out.append(aid)
        return out

    # -- execution --------------------------------------------------------------------------------
    def executable(self, now: datetime | None = None) -> list[Action]:
        """Approved actions whose ``not_before`` has come (and run actions already launching: the
        execution sensor re-emits their RunRequests; run keys make that idempotent)."""
        now = _now(now)
        with self.store.session() as s:
            rows = s.scalars(select(ActionRow).where(ActionRow.status.in_(("approved", "executing")))
                             .order_by(ActionRow.created_at)).all()
            out = []
            for r in rows:
                if r.not_before is not None and _aware(r.not_before) > now:
                    continue
                try:
                    out.append(action_from_dict(r.payload))
                except Exception:  # an unreadable payload must not hide the others; settled by fail_invalid
                    out.append(Action(action_id=r.id, type=r.type, reason="(unreadable payload)"))
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

    def begin_call(self, action_id: str, kind: str = "connector_api", *, owner: str | None = None,
                   lease: timedelta = CALL_LEASE, detail: Any = None, now: datetime | None = None) -> int | None:
        """Write-ahead record of a connector call (or cancellation): claim the action
        (approved -> executing), insert its ``calling`` execution with the idempotency key
        ``<action_id>:call`` and its audit event, in one committed transaction. Returns the execution
        id, or None when someone else holds the call (nothing to do). Call the API only after this
        returned: a crash after the call leaves ``calling``, which the reconciler settles."""
        now = _now(now)
        try:
            with self.store.session() as s:
                self.store.lock(s)
                res = s.execute(update(ActionRow).where(ActionRow.id == action_id, ActionRow.status == "approved")
                                .values(status="executing", updated_at=now))
                if res.rowcount != 1:
                    return None
                ex = ExecutionRow(action_id=action_id, kind=kind, status="calling", detail=detail, started_at=now,
                                  idempotency_key=f"{action_id}:call", lease_until=now + lease,
                                  owner=(owner or "")[:128] or None)
                s.add(ex)
                s.flush()
                self.store.audit(s, "execution", actor="executor", subject=f"action:{action_id}", ts=now,
                                 payload={"kind": kind, "status": "calling", "execution_id": ex.id,
                                          "idempotency_key": ex.idempotency_key, "detail": detail})
                return ex.id
        except IntegrityError:  # the idempotency key exists: this call was already written ahead
            return None

    def begin_runs(self, action_id: str, run_keys: list[str], *, owner: str | None = None,
                   lease: timedelta = CALL_LEASE, now: datetime | None = None,
                   own_prefix: str | None = None) -> list[str]:
        """Write-ahead records of a run action's launches (one ``calling`` execution per run key,
        idempotency key ``run:<run_key>``) committed before the sensor returns its RunRequests.
        Returns the run keys this tick may emit: those it recorded now, and those left ``calling``
        by a tick whose lease has passed (it died before Dagster saw the request; Dagster skips a
        run key it already launched). A key another live tick just wrote ahead is left to it.

        ``own_prefix``: the owner prefix of this sensor's ticks. Ticks of one sensor run one after
        another, so a launch an *earlier* tick of the same sensor wrote ahead (owner with this
        prefix, started before ``now``) and that has no run is retaken at once, without waiting
        for its lease: that tick is over and its answer was lost (the evaluation timed out on a
        busy code server), and waiting out the lease would delay the retry by minutes."""
        now = _now(now)
        mine: list[str] = []
        for attempt in range(2):
            try:
                with self.store.session() as s:
                    rows = {r.idempotency_key: r for r in s.scalars(select(ExecutionRow).where(
                        ExecutionRow.action_id == action_id, ExecutionRow.kind == "run")).all() if r.idempotency_key}
                    missing = [k for k in run_keys if f"run:{k}" not in rows]
                    stale = [k for k in run_keys if (r := rows.get(f"run:{k}")) is not None and r.status == "calling"
                             and (r.lease_until is None or _aware(r.lease_until) <= now
                                  or (own_prefix and (r.owner or "").startswith(own_prefix)
                                      and (r.owner or "") != owner and _aware(r.started_at) < now))]
                    if not missing and not stale:
                        return []
                    self.store.lock(s)
                    s.execute(update(ActionRow).where(ActionRow.id == action_id, ActionRow.status == "approved")
                              .values(status="executing", updated_at=now))
                    mine = list(missing)
                    for k in missing:
                        s.add(ExecutionRow(action_id=action_id, kind="run", run_key=k, status="calling",
                                           started_at=now, idempotency_key=f"run:{k}", lease_until=now + lease,
                                           owner=(owner or "")[:128] or None))
                    for k in stale:  # take over a dead tick's launch, conditionally (one taker)
                        r = rows[f"run:{k}"]
                        taken = s.execute(update(ExecutionRow).where(
                            ExecutionRow.id == r.id, ExecutionRow.status == "calling",
                            ExecutionRow.lease_until.is_(None) if r.lease_until is None
                            else ExecutionRow.lease_until == r.lease_until,
                        ).values(lease_until=now + lease, owner=(owner or "")[:128] or None)).rowcount
                        if taken:
                            mine.append(k)
                    s.flush()
                    if mine:
                        self.store.audit(s, "execution", actor="executor", subject=f"action:{action_id}", ts=now,
                                         payload={"kind": "run", "status": "calling", "run_keys": mine,
                                                  "retaken": [k for k in mine if k not in missing]})
                return mine
            except IntegrityError:  # another tick wrote the same keys ahead first: look again
                if attempt:
                    return []
        return mine

    def record_execution(self, action_id: str, kind: str, *, run_key: str | None = None,
                         run_id: str | None = None, status: str = "launched", detail: Any = None,
                         now: datetime | None = None) -> None:
        """A launched run (seen in the instance) or an execution that needed no write-ahead: the
        ``calling`` row of that run key becomes ``launched`` with its run id (one audit event)."""
        now = _now(now)
        with self.store.session() as s:
            if run_id is not None and s.scalars(select(ExecutionRow.id).where(
                    ExecutionRow.action_id == action_id, ExecutionRow.run_id == run_id)).first():
                return
            self.store.lock(s)
            pending = None
            if run_key is not None:
                pending = s.scalars(select(ExecutionRow).where(
                    ExecutionRow.idempotency_key == f"run:{run_key}", ExecutionRow.status == "calling")).first()
            if pending is not None:
                pending.status, pending.run_id, pending.lease_until = status, run_id, None
            else:
                s.add(ExecutionRow(action_id=action_id, kind=kind, run_key=run_key, run_id=run_id, status=status,
                                   detail=detail, started_at=now,
                                   idempotency_key=f"run:{run_key}" if (kind == "run" and run_key) else None))
            s.execute(update(ActionRow).where(ActionRow.id == action_id, ActionRow.status == "approved")
                      .values(status="executing", updated_at=now))
            self.store.audit(s, "execution", actor="executor", subject=f"action:{action_id}", ts=now,
                             payload={"kind": kind, "run_key": run_key, "run_id": run_id, "status": status,
                                      "detail": detail})

    def open_calls(self, now: datetime | None = None) -> list[dict]:
        """Executions left ``calling`` whose lease has passed (their tick died or is gone), and
        actions left ``executing`` with no open execution (a crash before 0004 or between
        claim and record): what the reconciler must settle."""
        now = _now(now)
        out: list[dict] = []
        with self.store.session() as s:
            for ex in s.scalars(select(ExecutionRow).where(ExecutionRow.status == "calling")).all():
                if ex.lease_until is not None and _aware(ex.lease_until) > now:
                    continue
                row = s.get(ActionRow, ex.action_id)
                if row is None or row.status not in ("approved", "executing"):
                    continue
                out.append({"execution_id": ex.id, "action_id": ex.action_id, "kind": ex.kind,
                            "run_key": ex.run_key, "started_at": _aware(ex.started_at), "payload": row.payload})
            open_actions = {r for r in s.scalars(select(ExecutionRow.action_id).where(
                ExecutionRow.status.in_(("calling", "launched")))).all()}
            for row in s.scalars(select(ActionRow).where(ActionRow.status == "executing")).all():
                if row.id in open_actions or row.type in RUN_ACTION_TYPES:
                    continue
                if _aware(row.updated_at) + CALL_LEASE > now:
                    continue
                out.append({"execution_id": None, "action_id": row.id, "kind": "connector_api", "run_key": None,
                            "started_at": _aware(row.updated_at), "payload": row.payload})
        return out

    def record_outcome(self, action_id: str, success: bool, *, detail: Any = None, resolution=None,
                       now: datetime | None = None, reconciled: bool = False, count: bool = True) -> list:
        """Close an action in ONE transaction: its status, its open executions, the ``outcome``
        audit event, the failure memory (did this resolution work for this class?), the circuit
        breaker's rows (automatic actions only) and, when it trips, the trip, its escalation and
        the pause action. Returns breaker trips (empty when the action was already settled).
        ``count=False`` records the outcome without feeding the breaker (an unconfirmed call)."""
        now = _now(now)
        with self.store.session() as s:
            self.store.lock(s)
            row = s.get(ActionRow, action_id)
            if row is None or row.status not in ("approved", "executing"):
                return []
            final = "succeeded" if success else "failed"
            res = s.execute(update(ActionRow).where(ActionRow.id == action_id,
                                                    ActionRow.status.in_(("approved", "executing")))
                            .values(status=final, updated_at=now))
            if res.rowcount != 1:
                return []
            for ex in s.scalars(select(ExecutionRow).where(ExecutionRow.action_id == action_id,
                                                           ExecutionRow.status.in_(("calling", "launched")))).all():
                ex.status, ex.ended_at, ex.lease_until = final, now, None
                if detail is not None and ex.kind != "run":
                    ex.detail = detail
            s.flush()
            self.store.audit(s, "outcome", actor="reconciler" if reconciled else "executor",
                             subject=f"action:{action_id}", ts=now,
                             payload={"success": success, "detail": detail, "reconciled": reconciled})
            for f in list(row.failures or []):
                if f.get("category") not in CATEGORIES or not normalize(f.get("message") or ""):
                    continue
                self.memory.record_resolution(f["message"], f["category"], row.type, success,
                                              system=f.get("system"), session=s)
            trips = []
            automatic = row.decision == EXECUTE and row.source != "breaker" and count
            if automatic:
                trips = self._count_breaker(s, row, success, now, resolution)
            if row.source == "breaker" and row.type == ActionType.pause_connector.value and not success:
                self._retry_pause(s, row, now)
        return trips

    def _count_breaker(self, s, row: ActionRow, success: bool, now: datetime, resolution) -> list[Trip]:
        """Append this outcome per subject and trip where the failures since the last success
        (or reset) within the window reach the threshold. Runs under the audit lock, so concurrent
        outcomes are counted one after the other."""
        threshold, window = self._breaker_defaults["threshold"], self._breaker_defaults["window"]
        # a prescribed retry schedule is not cut short (the planner escalates once it is spent)
        threshold = max(threshold, schedule_allowance(row.type, [f.get("category") for f in row.failures or []]))
        trips: list[Trip] = []
        for sub in list(row.subjects or []):
            s.add(BreakerEventRow(subject=sub, action_id=row.id, success=success, at=now))
            s.flush()
            if success:
                continue
            if s.scalars(select(BreakerTripRow.id).where(BreakerTripRow.subject == sub,
                                                         BreakerTripRow.reset_at.is_(None))).first():
                continue
            since = now - window
            last_ok = s.scalars(select(func.max(BreakerEventRow.at)).where(
                BreakerEventRow.subject == sub, BreakerEventRow.success.is_(True))).first()
            last_reset = s.scalars(select(func.max(BreakerTripRow.reset_at)).where(
                BreakerTripRow.subject == sub)).first()
            for t in (last_ok, last_reset):
                if t is not None and _aware(t) > since:
                    since = _aware(t)
            n = s.scalar(select(func.count()).select_from(BreakerEventRow).where(
                BreakerEventRow.subject == sub, BreakerEventRow.success.is_(False), BreakerEventRow.at > since))
            if n >= threshold:
                reason = (f"{n} failed automatic actions on {sub} within "
                          f"{int(window.total_seconds() // 60)} min")
                trip = Trip(sub, n, now, reason)
                self._on_trip(s, trip, row.id, row.payload, resolution, now)
                trips.append(trip)
        return trips

    def _on_trip(self, s, trip: Trip, action_id: str, payload: dict, resolution, now: datetime) -> None:
        """Stop acting on the subject, pause its connector where the policy allows, tell owners
        (inside the outcome's transaction)."""
        owners: list[str] = []
        keys = list(payload.get("asset_keys") or [])
        if resolution is not None:
            for k in keys:
                sla = resolution.sla(k)
                owners += [o for o in (sla.owners if sla else ()) if o not in owners]
        trip_row = BreakerTripRow(trip_key=f"{trip.subject}@{action_id}", subject=trip.subject,
                                  failures=trip.failures, reason=trip.reason, opened_at=now)
        s.add(trip_row)
        self.store.audit(s, "breaker.trip", actor="breaker", subject=trip.subject, ts=now,
                         payload={"reason": trip.reason, "owners": owners, "failures": trip.failures,
                                  "action_id": action_id})
        self.store.audit(s, "escalation", actor="breaker", subject=trip.subject, ts=now,
                         payload={"reason": trip.reason, "owners": owners})
        if not trip.subject.startswith("connector:"):
            s.flush()
            return
        connector = trip.subject.split(":", 1)[1]
        allowed = False
        if resolution is not None and resolution.graph is not None:
            tables = [n.key for n in resolution.graph if n.connector == connector]
            slas = [resolution.sla(k) for k in tables]
            allowed = bool(slas) and all(s_ is not None and s_.may_run_without_approval(ActionType.pause_connector)
                                         for s_ in slas)
        pause = Action(action_id=f"brk-{uuid.uuid4().hex[:12]}", type=ActionType.pause_connector.value,
                       connector=connector, reason=f"circuit breaker: {trip.reason}")
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
        if allowed:
            s.add(ApprovalRow(action_id=pause.action_id, decision="approve", actor="policy", via="policy",
                              comment="circuit breaker pause", at=now))
        trip_row.pause_action_id = pause.action_id
        s.flush()
        self.store.audit(s, "proposal", actor="breaker", subject=f"proposal:{pid}", ts=now,
                         payload={"planner": "circuit-breaker", "actions": 1, "pause_action": pause.action_id,
                                  "status": "approved" if allowed else "pending"})

    def _retry_pause(self, s, row: ActionRow, now: datetime) -> None:
        """A breaker pause that failed is tried again (backing off) while its trip is open, until
        it succeeds or a person takes over (resets the breaker, rejects or cancels the pause)."""
        trip = s.scalars(select(BreakerTripRow).where(BreakerTripRow.pause_action_id == row.id,
                                                      BreakerTripRow.reset_at.is_(None))).first()
        if trip is None:
            return
        attempt = len(s.scalars(select(ActionRow.id).where(ActionRow.proposal_id == row.proposal_id)).all())
        delay = min(PAUSE_RETRY_BASE * (2 ** (attempt - 1)), PAUSE_RETRY_MAX)
        nb = now + delay
        new_id = f"{row.id.split('~')[0]}~{attempt}"
        payload = action_to_dict(replace(action_from_dict(row.payload), action_id=new_id, not_before=nb))
        s.add(ActionRow(id=new_id, proposal_id=row.proposal_id, type=row.type, source="breaker",
                        status="approved", decision=EXECUTE, risk=row.risk, reason=row.reason,
                        gate_reason=f"retry {attempt} of the breaker's pause (the last one failed)",
                        subjects=row.subjects, owners=row.owners, payload=payload, not_before=nb,
                        created_at=now, updated_at=now))
        s.add(ApprovalRow(action_id=new_id, decision="approve", actor="breaker", via="policy",
                          comment=f"pause retry {attempt}", at=now))
        trip.pause_action_id = new_id
        s.flush()
        self.store.audit(s, "breaker.pause_retry", actor="breaker", subject=trip.subject, ts=now,
                         payload={"failed": row.id, "retry": new_id, "not_before": nb.isoformat()})

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
