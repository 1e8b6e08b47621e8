"""Schema changes: patch proposals for breaking schema changes (verified, then approved/published).

Numbered high so it does not clash with other revisions being added; re-point ``down_revision``
at the current head when merging if another revision landed after 0003.

Revision ID: 0010_schema_patches
Revises: 0004_crash_safe_execution
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_schema_patches"
down_revision = "0004_crash_safe_execution"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "schema_patches",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False, unique=True),
        sa.Column("tables", sa.Text, nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("impact", sa.JSON, nullable=False),
        sa.Column("diff", sa.Text, nullable=False),
        sa.Column("files", sa.JSON, nullable=False),
        sa.Column("verification", sa.JSON, nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("owners", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_by", sa.String(255), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("branch", sa.String(255), nullable=True),
        sa.Column("commit", sa.String(64), nullable=True),
        sa.Column("pr_url", sa.Text, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
    )
    op.create_index("ix_schema_patches_status", "schema_patches", ["status"])


def downgrade() -> None:
    op.drop_index("ix_schema_patches_status", table_name="schema_patches")
    op.drop_table("schema_patches")
