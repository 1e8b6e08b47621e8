"""Approval links: spent single-use tokens (nonce primary key).

Revision ID: 0003_approval_tokens
Revises: 0002_scheduling_agent
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_approval_tokens"
down_revision = "0002_scheduling_agent"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "approval_token_uses",
        sa.Column("nonce", sa.String(64), primary_key=True),
        sa.Column("action_id", sa.String(64), nullable=False),
        sa.Column("proposal_id", sa.String(64), nullable=True),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("client_addr", sa.String(255), nullable=True),
        sa.Column("user_agent", sa.Text, nullable=True),
        sa.Column("outcome", sa.String(255), nullable=True),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_approval_token_uses_action_id", "approval_token_uses", ["action_id"])


def downgrade() -> None:
    op.drop_index("ix_approval_token_uses_action_id", table_name="approval_token_uses")
    op.drop_table("approval_token_uses")
