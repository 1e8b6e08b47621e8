"""Patch proposals on the project store (table ``schema_patches``, migration ``0010_schema_patches``).

Lifecycle: ``proposed`` (verified: its dbt build passed) or ``failed_verification`` (kept with the
evidence, never approvable) -> ``approved`` by a person -> ``published`` (a new git branch of the
dbt project, and a pull request where a Git host token is configured) or ``publish_failed``;
``rejected``. Nothing is ever written to the project's main branch; nothing is published without a
recorded approval. Every step appends an audit event.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, DateTime, Index, String, Text, select, update
from sqlalchemy.orm import Mapped, mapped_column

from orchestrator.scrubbing import scrub_obj, scrub_pii
from orchestrator.store import Store, open_store
from orchestrator.store.models import Base, utcnow

UTC = timezone.utc


class SchemaPatchRow(Base):
    __tablename__ = "schema_patches"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    tables: Mapped[str] = mapped_column(Text, nullable=False)
    summary: Mapped[str] = mapped_column(Text, nullable=False)
    impact: Mapped[Any] = mapped_column(JSON, nullable=False)
    diff: Mapped[str] = mapped_column(Text, nullable=False)
    files: Mapped[Any] = mapped_column(JSON, nullable=False)
    verification: Mapped[Any] = mapped_column(JSON, nullable=True)
    status: Mapped[str] = mapped_column(String(32), nullable=False)
    owners: Mapped[Any] = mapped_column(JSON, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)
    decided_by: Mapped[str | None] = mapped_column(String(255), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    branch: Mapped[str | None] = mapped_column(String(255), nullable=True)
    commit: Mapped[str | None] = mapped_column(String(64), nullable=True)
    pr_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (Index("ix_schema_patches_status", "status"),)


class PatchDecisionError(Exception):
    """A decision the proposal's state does not allow (named in the message)."""


@dataclass
class PatchProposal:
    id: str
    status: str
    summary: str
    tables: list[str]
    diff: str
    files: dict[str, str]  # path relative to the dbt project -> new text
    impact: list[dict[str, Any]]
    verification: dict[str, Any] | None
    owners: list[str]
    branch: str | None
    commit: str | None
    pr_url: str | None
    decided_by: str | None
    error: str | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: SchemaPatchRow) -> PatchProposal:
        return cls(row.id, row.status, row.summary, json.loads(row.tables), row.diff, dict(row.files),
                   list(row.impact), row.verification, list(row.owners), row.branch, row.commit, row.pr_url,
                   row.decided_by, row.error, row.created_at)


class SchemaPatches:
    def __init__(self, store: Store | None = None):
        self.store = store or open_store()

    def propose(self, patch, impacts, verification, *, now: datetime | None = None) -> PatchProposal:
        """Records a verified (or failed) patch; the same change set is proposed once."""
        now = now or datetime.now(UTC)
        files = {path: after for path, (_, after) in sorted(patch.files.items())}
        fingerprint = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()
        tables = sorted({i.table for i in impacts})
        owners = sorted({o for i in impacts for o in i.owners})
        status = "proposed" if verification is not None and verification.ok else "failed_verification"
        author = getattr(patch, "author", "rules")
        summary = "; ".join(patch.answered) or "no change answered"
        if author != "rules":  # the reviewer sees who wrote it
            summary += f" (patch written by {author}, verified by dbt build)"
        with self.store.session() as s:
            existing = s.scalar(select(SchemaPatchRow).where(SchemaPatchRow.fingerprint == fingerprint))
            if existing is not None:
                return PatchProposal.from_row(existing)
            row = SchemaPatchRow(
                id=uuid.uuid4().hex[:16], fingerprint=fingerprint, tables=json.dumps(tables),
                summary=scrub_pii(summary), impact=scrub_obj([i.as_dict() for i in impacts]),
                # dbt's messages and log tail may quote a credential or personal data (scrubbed)
                diff=patch.diff(), files=files,
                verification=scrub_obj(verification.as_dict()) if verification else None,
                status=status, owners=owners, created_at=now,
            )
            s.add(row)
            s.flush()
            proposal = PatchProposal.from_row(row)
        self.store.append_audit("schema_patch.proposed", subject=proposal.id,
                                payload={"status": status, "tables": tables, "summary": proposal.summary,
                                         "author": author})
        return proposal

    def get(self, patch_id: str) -> PatchProposal:
        with self.store.session() as s:
            row = s.get(SchemaPatchRow, patch_id)
            if row is None:
                raise PatchDecisionError(f"no schema patch {patch_id!r}")
            return PatchProposal.from_row(row)

    def list(self, status: str | None = None) -> list[PatchProposal]:
        with self.store.session() as s:
            query = select(SchemaPatchRow).order_by(SchemaPatchRow.created_at)
            if status:
                query = query.where(SchemaPatchRow.status == status)
            return [PatchProposal.from_row(r) for r in s.scalars(query)]

    def _decide(self, patch_id: str, status: str, actor: str, now: datetime) -> PatchProposal:
        with self.store.session() as s:
            # a conditional update: of two simultaneous decisions exactly one wins
            done = s.execute(update(SchemaPatchRow).where(SchemaPatchRow.id == patch_id,
                                                          SchemaPatchRow.status == "proposed")
                             .values(status=status, decided_by=actor, decided_at=now)).rowcount
        if not done:
            current = self.get(patch_id)
            raise PatchDecisionError(f"schema patch {patch_id} is {current.status}, not proposed: "
                                     f"cannot {'approve' if status == 'approved' else 'reject'} it")
        self.store.append_audit(f"schema_patch.{status}", subject=patch_id, actor=actor)
        return self.get(patch_id)

    def reject(self, patch_id: str, actor: str, now: datetime | None = None) -> PatchProposal:
        return self._decide(patch_id, "rejected", actor, now or datetime.now(UTC))

    def approve(self, patch_id: str, actor: str, publisher, now: datetime | None = None) -> PatchProposal:
        """Records the approval, then writes the patch on a new branch (and opens a PR) via `publisher`."""
        proposal = self._decide(patch_id, "approved", actor, now or datetime.now(UTC))
        try:
            published = publisher.publish(proposal)
        except Exception as exc:  # noqa: BLE001 - recorded and re-raised with the reason
            error = scrub_pii(str(exc))  # git's error may carry a remote URL with its token
            with self.store.session() as s:
                s.execute(update(SchemaPatchRow).where(SchemaPatchRow.id == patch_id)
                          .values(status="publish_failed", error=error[:2000]))
            self.store.append_audit("schema_patch.publish_failed", subject=patch_id, payload={"error": error[:500]})
            raise
        with self.store.session() as s:
            s.execute(update(SchemaPatchRow).where(SchemaPatchRow.id == patch_id).values(
                status="published", branch=published.branch, commit=published.commit, pr_url=published.pr_url))
        self.store.append_audit("schema_patch.published", subject=patch_id, actor=actor,
                                payload={"branch": published.branch, "pr_url": published.pr_url})
        return self.get(patch_id)
