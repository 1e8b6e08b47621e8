"""Failure memory and the append-only audit trail.

Revision ID: 0001_failure_memory
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_failure_memory"
down_revision = None
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "failure_signatures",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("signature_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("signature", sa.Text, nullable=False),
        sa.Column("example", sa.Text, nullable=False, server_default=""),
        sa.Column("system", sa.String(64), nullable=True),
        sa.Column("category", sa.String(32), nullable=True),
        sa.Column("label_weight", sa.Float, nullable=False, server_default="0"),
        sa.Column("transient", sa.Boolean, nullable=True),
        sa.Column("occurrences", sa.Integer, nullable=False, server_default="0"),
        sa.Column("embedding", sa.JSON, nullable=True),
        sa.Column("embedding_model", sa.String(128), nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    )
    op.create_index("ix_failure_signatures_category", "failure_signatures", ["category"])

    op.create_table(
        "failure_occurrences",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "signature_id",
            sa.Integer,
            sa.ForeignKey("failure_signatures.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("external_id", sa.String(255), nullable=True),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("system", sa.String(64), nullable=True),
        sa.Column("category", sa.String(32), nullable=True),
        sa.Column("confidence", sa.Float, nullable=True),
        sa.Column("source", sa.String(32), nullable=False, server_default="observed"),
        sa.Column("created_at", TZ, nullable=False),
    )
    op.create_index("ix_failure_occurrences_signature_id", "failure_occurrences", ["signature_id"])

    op.create_table(
        "resolutions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "signature_id",
            sa.Integer,
            sa.ForeignKey("failure_signatures.id", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("resolution", sa.String(128), nullable=False),
        sa.Column("worked", sa.Boolean, nullable=True),
        sa.Column("source", sa.String(32), nullable=False, server_default="execution"),
        sa.Column("details", sa.JSON, nullable=True),
        sa.Column("created_at", TZ, nullable=False),
    )
    op.create_index("ix_resolutions_category_resolution", "resolutions", ["category", "resolution"])
    op.create_index("ix_resolutions_signature_id", "resolutions", ["signature_id"])

    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("ts", TZ, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False, server_default="system"),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(255), nullable=True),
        sa.Column("payload", sa.JSON, nullable=True),
    )
    op.create_index("ix_audit_events_kind_ts", "audit_events", ["kind", "ts"])

    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute(
            "CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events "
            "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END"
        )
        op.execute(
            "CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events "
            "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END"
        )
    elif dialect == "postgresql":
        op.execute(
            "CREATE OR REPLACE FUNCTION audit_events_reject_change() RETURNS trigger AS $$ "
            "BEGIN RAISE EXCEPTION 'audit_events is append-only'; END; $$ LANGUAGE plpgsql"
        )
        op.execute(
            "CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events "
            "FOR EACH ROW EXECUTE PROCEDURE audit_events_reject_change()"
        )
        # TRUNCATE bypasses row triggers; reject it too.
        op.execute(
            "CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events "
            "FOR EACH STATEMENT EXECUTE PROCEDURE audit_events_reject_change()"
        )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_delete")
    elif dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_events_append_only ON audit_events")
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_truncate ON audit_events")
        op.execute("DROP FUNCTION IF EXISTS audit_events_reject_change()")
    op.drop_table("audit_events")
    op.drop_table("resolutions")
    op.drop_table("failure_occurrences")
    op.drop_table("failure_signatures")
