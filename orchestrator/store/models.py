"""SQLAlchemy 2 models of the project store.

Tables owned here (revision ``0001_failure_memory``):

- ``failure_signatures``: one row per normalized failure signature (the failure memory's index).
- ``failure_occurrences``: every time a failure with that signature was seen (scrubbed message).
- ``resolutions``: resolutions tried for a signature/category and whether they worked.
- ``audit_events``: the generic append-only audit trail (UPDATE/DELETE rejected by triggers).

Portable between SQLite and PostgreSQL: no dialect-specific column types; JSON columns use the
generic ``sqlalchemy.JSON`` type (TEXT on SQLite, JSON on PostgreSQL).

To add tables, add models here (or in a sibling module importing ``Base``) *and* a new Alembic
revision under ``migrations/versions`` -- the schema is created by migrations only, never by
``Base.metadata.create_all``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    pass


class FailureSignature(Base):
    __tablename__ = "failure_signatures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    signature_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    signature: Mapped[str] = mapped_column(Text, nullable=False)
    example: Mapped[str] = mapped_column(Text, nullable=False, default="")
    system: Mapped[str | None] = mapped_column(String(64), nullable=True)
    category: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # How much the category label is trusted: confirmations (labels, approvals, resolutions
    # that worked) add, rejections subtract.
    label_weight: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    transient: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    occurrences: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    embedding: Mapped[Any | None] = mapped_column(JSON, nullable=True)
    embedding_model: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)

    __table_args__ = (Index("ix_failure_signatures_category", "category"),)


class FailureOccurrence(Base):
    __tablename__ = "failure_occurrences"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    signature_id: Mapped[int] = mapped_column(
        ForeignKey("failure_signatures.id", ondelete="CASCADE"), nullable=False
    )
    external_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    message: Mapped[str] = mapped_column(Text, nullable=False)
    system: Mapped[str | None] = mapped_column(String(64), nullable=True)
    category: Mapped[str | None] = mapped_column(String(32), nullable=True)
    confidence: Mapped[float | None] = mapped_column(Float, nullable=True)
    source: Mapped[str] = mapped_column(String(32), nullable=False, default="observed")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)

    __table_args__ = (Index("ix_failure_occurrences_signature_id", "signature_id"),)


class Resolution(Base):
    __tablename__ = "resolutions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    signature_id: Mapped[int | None] = mapped_column(
        ForeignKey("failure_signatures.id", ondelete="SET NULL"), nullable=True
    )
    category: Mapped[str] = mapped_column(String(32), nullable=False)
    resolution: Mapped[str] = mapped_column(String(128), nullable=False)
    worked: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    source: Mapped[str] = mapped_column(String(32), nullable=False, default="execution")
    details: Mapped[Any | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)

    __table_args__ = (
        Index("ix_resolutions_category_resolution", "category", "resolution"),
        Index("ix_resolutions_signature_id", "signature_id"),
    )


class AuditEvent(Base):
    """Append-only: the store API only inserts; database triggers reject UPDATE and DELETE."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)
    actor: Mapped[str] = mapped_column(String(128), nullable=False, default="system")
    kind: Mapped[str] = mapped_column(String(64), nullable=False)
    subject: Mapped[str | None] = mapped_column(String(255), nullable=True)
    payload: Mapped[Any | None] = mapped_column(JSON, nullable=True)
    # hash chain (revision 0004): hash = sha256(prev_hash + canonical(ts, actor, kind, subject, payload))
    prev_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    hash: Mapped[str | None] = mapped_column(String(64), nullable=True)

    __table_args__ = (Index("ix_audit_events_kind_ts", "kind", "ts"),)


class AuditHead(Base):
    """One row: the audit chain's head. Appending updates it first, which serialises appends."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    appends: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
