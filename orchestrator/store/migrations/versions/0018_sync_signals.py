"""Connector health: per-sync signals (rows, duration, attempts, warnings, 429s, cursor).

Numbered after the issue (18); it follows 0011_notifications, which landed with it.

Revision ID: 0018_sync_signals
Revises: 0010_schema_patches
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018_sync_signals"
down_revision = "0011_notifications"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sync_signals",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("connector", sa.String(255), nullable=False),
        sa.Column("table_key", sa.String(512), nullable=False),
        sa.Column("sync_id", sa.String(255), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("rows", sa.Integer, nullable=True),
        sa.Column("duration_s", sa.Float, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="1"),
        sa.Column("warnings", sa.Integer, nullable=False, server_default="0"),
        sa.Column("rate_limited", sa.Integer, nullable=False, server_default="0"),
        sa.Column("retries", sa.Integer, nullable=False, server_default="0"),
        sa.Column("cursor", sa.DateTime(timezone=True), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("connector", "table_key", "sync_id", name="uq_sync_signals_load"),
    )
    op.create_index("ix_sync_signals_table_started", "sync_signals", ["table_key", "started_at"])
    op.create_index("ix_sync_signals_connector_started", "sync_signals", ["connector", "started_at"])


def downgrade() -> None:
    op.drop_index("ix_sync_signals_connector_started", table_name="sync_signals")
    op.drop_index("ix_sync_signals_table_started", table_name="sync_signals")
    op.drop_table("sync_signals")
