"""Store models of the scheduling agent (revision ``0002_scheduling_agent``).

- ``proposals``: one planning cycle's outcome (planner, rationale, LLM model or fallback reason).
- ``proposal_actions``: every action of a proposal with its validation/gate outcome and lifecycle
  status (rejected, record_only, pending, approved, executing, succeeded, failed, expired,
  declined); ``payload`` is the full action (``planning.action_to_dict``).
- ``approvals``: who approved or declined an action, when, through what (cli, ui, email, api).
- ``executions``: each launch (Dagster run / connector API call) and its outcome.
- ``llm_calls``: every LLM call with model, tokens, cost, latency and outcome.
- ``breaker_state``: the circuit breaker's serialised state (one row; unused since revision 0004,
  which counts ``breaker_events`` rows and records ``breaker_trips``).
- revision 0004: ``executions.idempotency_key``/``lease_until``/``owner`` (write-ahead calls),
  ``breaker_events``, ``breaker_trips``, ``diagnosed_failures`` (one diagnosis per failure id).
The audit trail stays in ``audit_events`` (append-only).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from orchestrator.store.models import Base, utcnow


class ProposalRow(Base):
    __tablename__ = "proposals"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)
    snapshot_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    planner: Mapped[str] = mapped_column(String(128), nullable=False)
    rationale: Mapped[str] = mapped_column(Text, nullable=False, default="")
    fallback_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    context_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    details: Mapped[Any | None] = mapped_column(JSON, nullable=True)


class ActionRow(Base):
    __tablename__ = "proposal_actions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # action_id
    proposal_id: Mapped[str] = mapped_column(ForeignKey("proposals.id", ondelete="CASCADE"), nullable=False)
    type: Mapped[str] = mapped_column(String(32), nullable=False)
    source: Mapped[str] = mapped_column(String(16), nullable=False, default="planner")
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    decision: Mapped[str | None] = mapped_column(String(16), nullable=True)
    risk: Mapped[str | None] = mapped_column(String(8), nullable=True)
    risk_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    confidence: Mapped[float | None] = mapped_column(Float, nullable=True)
    reason: Mapped[str] = mapped_column(Text, nullable=False, default="")
    gate_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    rejection_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    subjects: Mapped[Any | None] = mapped_column(JSON, nullable=True)
    owners: Mapped[Any | None] = mapped_column(JSON, nullable=True)
    payload: Mapped[Any] = mapped_column(JSON, nullable=False)
    failures: Mapped[Any | None] = mapped_column(JSON, nullable=True)  # [{message, category}] scrubbed
    not_before: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)

    __table_args__ = (
        Index("ix_proposal_actions_status", "status"),
        Index("ix_proposal_actions_proposal_id", "proposal_id"),
    )


class ApprovalRow(Base):
    __tablename__ = "approvals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    action_id: Mapped[str] = mapped_column(ForeignKey("proposal_actions.id", ondelete="CASCADE"), nullable=False)
    decision: Mapped[str] = mapped_column(String(16), nullable=False)  # approve | reject
    actor: Mapped[str] = mapped_column(String(255), nullable=False)
    via: Mapped[str] = mapped_column(String(32), nullable=False)  # cli | ui | email | api | policy
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)

    __table_args__ = (Index("ix_approvals_action_id", "action_id"),)


class ExecutionRow(Base):
    __tablename__ = "executions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    action_id: Mapped[str] = mapped_column(ForeignKey("proposal_actions.id", ondelete="CASCADE"), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)  # run | connector_api | cancel
    run_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # calling (write-ahead, before the call/launch) | launched | succeeded | failed
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    detail: Mapped[Any | None] = mapped_column(JSON, nullable=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(255), nullable=True, unique=True)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    owner: Mapped[str | None] = mapped_column(String(128), nullable=True)

    __table_args__ = (Index("ix_executions_action_id", "action_id"), Index("ix_executions_run_id", "run_id"))


class LLMCallRow(Base):
    __tablename__ = "llm_calls"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    proposal_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)
    model: Mapped[str] = mapped_column(String(128), nullable=False)
    tier: Mapped[str] = mapped_column(String(8), nullable=False)  # fast | deep
    purpose: Mapped[str] = mapped_column(String(16), nullable=False)  # review | repair
    prompt_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    completion_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    cost_usd: Mapped[float | None] = mapped_column(Float, nullable=True)
    latency_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    outcome: Mapped[str] = mapped_column(String(16), nullable=False)  # ok | invalid | refusal | timeout | error
    error: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (Index("ix_llm_calls_proposal_id", "proposal_id"),)


class BreakerStateRow(Base):
    __tablename__ = "breaker_state"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[Any] = mapped_column(JSON, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)


class BreakerEventRow(Base):
    """One outcome of an automatic action on a subject (revision 0004): the breaker counts rows."""

    __tablename__ = "breaker_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    subject: Mapped[str] = mapped_column(String(255), nullable=False)
    action_id: Mapped[str] = mapped_column(String(64), nullable=False)
    success: Mapped[bool] = mapped_column(Boolean, nullable=False)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)

    __table_args__ = (UniqueConstraint("subject", "action_id", name="uq_breaker_events_subject_action"),
                      Index("ix_breaker_events_subject_at", "subject", "at"))


class BreakerTripRow(Base):
    __tablename__ = "breaker_trips"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    trip_key: Mapped[str] = mapped_column(String(320), nullable=False, unique=True)
    subject: Mapped[str] = mapped_column(String(255), nullable=False)
    failures: Mapped[int] = mapped_column(Integer, nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    reset_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    reset_by: Mapped[str | None] = mapped_column(String(255), nullable=True)
    pause_action_id: Mapped[str | None] = mapped_column(String(64), nullable=True)

    __table_args__ = (Index("ix_breaker_trips_subject", "subject"),)


class DiagnosedFailureRow(Base):
    """One row per failure id the failure sensor has diagnosed: the primary key makes it once."""

    __tablename__ = "diagnosed_failures"

    failure_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    category: Mapped[str | None] = mapped_column(String(32), nullable=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)
