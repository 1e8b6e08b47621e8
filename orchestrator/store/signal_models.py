"""Store model of connector health signals (revision ``0018_sync_signals``).

- ``sync_signals``: one row per (connector, table, sync): rows landed, duration, attempts,
  warnings, HTTP 429s/retries, cursor; a bounded time series (``orchestrator.health.store.prune``
  keeps ``ORCHESTRATOR_SIGNAL_RETENTION_DAYS``, 75 by default, and at most 5,000 loads a table).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Float, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from orchestrator.store.models import Base, utcnow


class SyncSignalRow(Base):
    __tablename__ = "sync_signals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    connector: Mapped[str] = mapped_column(String(255), nullable=False)
    table_key: Mapped[str] = mapped_column(String(512), nullable=False)
    sync_id: Mapped[str] = mapped_column(String(255), nullable=False)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    status: Mapped[str] = mapped_column(String(32), nullable=False)
    rows: Mapped[int | None] = mapped_column(Integer, nullable=True)
    duration_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    warnings: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    rate_limited: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    retries: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    cursor: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)

    __table_args__ = (
        UniqueConstraint("connector", "table_key", "sync_id", name="uq_sync_signals_load"),
        Index("ix_sync_signals_table_started", "table_key", "started_at"),
        Index("ix_sync_signals_connector_started", "connector", "started_at"),
    )
