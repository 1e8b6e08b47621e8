"""Store model of the owner notifications (revision ``0011_notifications``).

- ``notification_messages``: one row per message of an incident change to one destination
  (``dedup_key`` = ``<destination>|<incident>|<change>``, unique): a tick claims a row by inserting
  it (``sending``) before it calls Slack/Teams, so concurrent or repeated ticks never send the same
  change twice. ``sent`` rows keep the provider's message id (Slack ``ts``); ``retry`` rows (HTTP
  429, 5xx, unreachable) are sent again after ``not_before``; ``failed`` rows were refused by the
  provider (bad token, unknown channel) and are not retried.
- ``notification_threads``: the Slack thread of an incident in a channel (the ``ts`` of the
  message that opened it); follow-ups are posted with ``thread_ts``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from orchestrator.store.models import Base, utcnow


class NotificationMessageRow(Base):
    __tablename__ = "notification_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dedup_key: Mapped[str] = mapped_column(String(512), nullable=False, unique=True)
    provider: Mapped[str] = mapped_column(String(16), nullable=False)  # slack | teams
    destination: Mapped[str] = mapped_column(String(255), nullable=False)  # channel / webhook name
    incident_id: Mapped[str] = mapped_column(String(255), nullable=False)
    change: Mapped[str] = mapped_column(String(255), nullable=False)  # opened | action:<id>:<status> | resolved
    status: Mapped[str] = mapped_column(String(16), nullable=False)  # sending | sent | retry | failed
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    message_id: Mapped[str | None] = mapped_column(String(64), nullable=True)  # Slack ts
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    not_before: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    __table_args__ = (Index("ix_notification_messages_incident", "incident_id"),
                      Index("ix_notification_messages_status", "status"))


class NotificationThreadRow(Base):
    __tablename__ = "notification_threads"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    provider: Mapped[str] = mapped_column(String(16), nullable=False)
    destination: Mapped[str] = mapped_column(String(255), nullable=False)
    incident_id: Mapped[str] = mapped_column(String(255), nullable=False)
    thread_id: Mapped[str] = mapped_column(String(64), nullable=False)  # Slack ts of the opening message
    channel_id: Mapped[str | None] = mapped_column(String(64), nullable=True)  # Slack's channel id (C...)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)

    __table_args__ = (UniqueConstraint("provider", "destination", "incident_id", name="uq_notification_threads"),)
