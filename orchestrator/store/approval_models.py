"""Store model of the approval links (revision ``0003_approval_tokens``).

- ``approval_token_uses``: one row per approval-link token that was spent (POSTed). The token's
  nonce is the primary key, so a token can be used once: a second insert fails (replay refused),
  atomically on SQLite and PostgreSQL alike. Who, when, from where and with what outcome is kept
  here and in ``audit_events``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from orchestrator.store.models import Base, utcnow


class ApprovalTokenUse(Base):
    __tablename__ = "approval_token_uses"

    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    action_id: Mapped[str] = mapped_column(String(64), nullable=False)
    proposal_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    decision: Mapped[str] = mapped_column(String(16), nullable=False)  # approve | reject
    actor: Mapped[str] = mapped_column(String(255), nullable=False)
    client_addr: Mapped[str | None] = mapped_column(String(255), nullable=True)
    user_agent: Mapped[str | None] = mapped_column(Text, nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(255), nullable=True)
    used_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)

    __table_args__ = (Index("ix_approval_token_uses_action_id", "action_id"),)
