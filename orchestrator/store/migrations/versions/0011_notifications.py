"""Owner notifications (Slack / Teams): one row per incident change and destination, threads.

Revision ID: 0011_notifications
Revises: 0010_schema_patches
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_notifications"
down_revision = "0010_schema_patches"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notification_messages",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("dedup_key", sa.String(512), nullable=False, unique=True),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("destination", sa.String(255), nullable=False),
        sa.Column("incident_id", sa.String(255), nullable=False),
        sa.Column("change", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("message_id", sa.String(64), nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_notification_messages_incident", "notification_messages", ["incident_id"])
    op.create_index("ix_notification_messages_status", "notification_messages", ["status"])
    op.create_table(
        "notification_threads",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("destination", sa.String(255), nullable=False),
        sa.Column("incident_id", sa.String(255), nullable=False),
        sa.Column("thread_id", sa.String(64), nullable=False),
        sa.Column("channel_id", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("provider", "destination", "incident_id", name="uq_notification_threads"),
    )


def downgrade() -> None:
    op.drop_table("notification_threads")
    op.drop_index("ix_notification_messages_status", table_name="notification_messages")
    op.drop_index("ix_notification_messages_incident", table_name="notification_messages")
    op.drop_table("notification_messages")
