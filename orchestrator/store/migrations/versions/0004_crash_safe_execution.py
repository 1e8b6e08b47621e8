"""Crash-safe execution: write-ahead executions, breaker rows, one diagnosis per failure,
hash-chained audit trail, tamper triggers on the agent's tables.

- ``executions``: ``idempotency_key`` (unique: one call per key), ``lease_until`` (a ``calling``
  row whose lease has passed is settled by the reconciler), ``owner`` (which tick wrote it).
- ``audit_events``: ``prev_hash``/``hash`` (SHA-256 chain in id order); ``audit_head`` holds the
  chain's head in one row; appending locks it, so appends (and everything recorded in the same
  transaction) are serialised on SQLite and PostgreSQL alike. Existing events are chained here.
- ``breaker_events``: every outcome of an automatic action per subject (unique per action and
  subject); ``breaker_trips``: one row per trip (unique ``trip_key``), ``reset_at`` when a
  person resets it.
- ``diagnosed_failures``: failure id primary key (the failure sensor diagnoses each failure once,
  whatever crashes in between).
- Triggers: ``approvals`` and ``proposals`` are append-only, ``executions`` and
  ``proposal_actions`` cannot be deleted and their settled rows cannot change (TRUNCATE refused
  too on PostgreSQL). A role owning the tables can still disable triggers; the hash chain is what
  makes that visible (``orchestrator audit verify``).

Revision ID: 0004_crash_safe_execution
Revises: 0003_approval_tokens
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import op

revision = "0004_crash_safe_execution"
down_revision = "0003_approval_tokens"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)
GENESIS = "0" * 64

SETTLED_ACTION = "('succeeded','failed','declined','expired','rejected','cancelled')"
SETTLED_EXEC = "('succeeded','failed')"


def _chain_hash(prev: str, ts, actor, kind, subject, payload) -> str:
    # same canonical form as orchestrator.store.audit_hash (kept local: migrations are frozen)
    if isinstance(ts, str):
        ts = datetime.fromisoformat(ts)
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=timezone.utc)
    if isinstance(payload, str):
        payload = json.loads(payload)
    body = json.dumps([ts.astimezone(timezone.utc).isoformat(), actor, kind, subject, payload],
                      sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256((prev + body).encode()).hexdigest()


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    with op.batch_alter_table("executions") as b:
        b.add_column(sa.Column("idempotency_key", sa.String(255), nullable=True))
        b.add_column(sa.Column("lease_until", TZ, nullable=True))
        b.add_column(sa.Column("owner", sa.String(128), nullable=True))
        b.create_unique_constraint("uq_executions_idempotency_key", ["idempotency_key"])
    op.create_index("ix_executions_status", "executions", ["status"])

    # audit chain: drop the append-only triggers for the one-time backfill, then restore them
    if dialect == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_update")
    elif dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_events_append_only ON audit_events")
    with op.batch_alter_table("audit_events") as b:
        b.add_column(sa.Column("prev_hash", sa.String(64), nullable=True))
        b.add_column(sa.Column("hash", sa.String(64), nullable=True))
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("last_id", sa.Integer, nullable=True),
        sa.Column("last_hash", sa.String(64), nullable=False),
        sa.Column("appends", sa.Integer, nullable=False, server_default="0"),
    )
    bind = op.get_bind()
    prev = GENESIS
    last_id = None
    rows = bind.execute(sa.text("SELECT id, ts, actor, kind, subject, payload FROM audit_events ORDER BY id")).all()
    for r in rows:
        h = _chain_hash(prev, r.ts, r.actor, r.kind, r.subject, r.payload)
        bind.execute(sa.text("UPDATE audit_events SET prev_hash=:p, hash=:h WHERE id=:i"), {"p": prev, "h": h, "i": r.id})
        prev, last_id = h, r.id
    bind.execute(sa.text("INSERT INTO audit_head (id, last_id, last_hash, appends) VALUES (1, :i, :h, 0)"),
                 {"i": last_id, "h": prev})
    if dialect == "sqlite":
        op.execute(
            "CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events "
            "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END"
        )
    elif dialect == "postgresql":
        op.execute(
            "CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events "
            "FOR EACH ROW EXECUTE PROCEDURE audit_events_reject_change()"
        )

    op.create_table(
        "breaker_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("action_id", sa.String(64), nullable=False),
        sa.Column("success", sa.Boolean, nullable=False),
        sa.Column("at", TZ, nullable=False),
        sa.UniqueConstraint("subject", "action_id", name="uq_breaker_events_subject_action"),
    )
    op.create_index("ix_breaker_events_subject_at", "breaker_events", ["subject", "at"])
    op.create_table(
        "breaker_trips",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("trip_key", sa.String(320), nullable=False, unique=True),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("opened_at", TZ, nullable=False),
        sa.Column("reset_at", TZ, nullable=True),
        sa.Column("reset_by", sa.String(255), nullable=True),
        sa.Column("pause_action_id", sa.String(64), nullable=True),
    )
    op.create_index("ix_breaker_trips_subject", "breaker_trips", ["subject"])
    op.create_table(
        "diagnosed_failures",
        sa.Column("failure_id", sa.String(255), primary_key=True),
        sa.Column("category", sa.String(32), nullable=True),
        sa.Column("at", TZ, nullable=False),
    )

    if dialect == "sqlite":
        for table in ("approvals", "proposals"):
            op.execute(f"CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table} "
                       f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END")
        for table in ("approvals", "proposals", "executions", "proposal_actions"):
            op.execute(f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} "
                       f"BEGIN SELECT RAISE(ABORT, '{table} rows cannot be deleted'); END")
        op.execute("CREATE TRIGGER executions_settled BEFORE UPDATE ON executions "
                   f"WHEN OLD.status IN {SETTLED_EXEC} OR NEW.action_id IS NOT OLD.action_id "
                   "OR NEW.idempotency_key IS NOT OLD.idempotency_key "
                   "BEGIN SELECT RAISE(ABORT, 'a settled execution cannot change'); END")
        op.execute("CREATE TRIGGER proposal_actions_settled BEFORE UPDATE ON proposal_actions "
                   f"WHEN OLD.status IN {SETTLED_ACTION} OR NEW.payload IS NOT OLD.payload "
                   "OR NEW.proposal_id IS NOT OLD.proposal_id OR NEW.type IS NOT OLD.type "
                   "BEGIN SELECT RAISE(ABORT, 'a settled action cannot change'); END")
    elif dialect == "postgresql":
        op.execute(
            "CREATE OR REPLACE FUNCTION orchestrator_reject_change() RETURNS trigger AS $$ "
            "BEGIN RAISE EXCEPTION '% is append-only (% refused)', TG_TABLE_NAME, TG_OP; END; $$ LANGUAGE plpgsql"
        )
        op.execute(
            "CREATE OR REPLACE FUNCTION orchestrator_guard_settled() RETURNS trigger AS $$ BEGIN "
            "IF TG_OP = 'DELETE' THEN RAISE EXCEPTION '% rows cannot be deleted', TG_TABLE_NAME; END IF; "
            "IF TG_TABLE_NAME = 'executions' THEN "
            f"  IF OLD.status IN {SETTLED_EXEC} OR NEW.action_id IS DISTINCT FROM OLD.action_id "
            "     OR NEW.idempotency_key IS DISTINCT FROM OLD.idempotency_key THEN "
            "    RAISE EXCEPTION 'a settled execution cannot change'; END IF; "
            "ELSE "
            f"  IF OLD.status IN {SETTLED_ACTION} OR NEW.payload::text IS DISTINCT FROM OLD.payload::text "
            "     OR NEW.proposal_id IS DISTINCT FROM OLD.proposal_id OR NEW.type IS DISTINCT FROM OLD.type THEN "
            "    RAISE EXCEPTION 'a settled action cannot change'; END IF; "
            "END IF; RETURN NEW; END; $$ LANGUAGE plpgsql"
        )
        for table in ("approvals", "proposals"):
            op.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                       "FOR EACH ROW EXECUTE PROCEDURE orchestrator_reject_change()")
        for table in ("approvals", "proposals", "executions", "proposal_actions"):
            op.execute(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                       "FOR EACH STATEMENT EXECUTE PROCEDURE orchestrator_reject_change()")
        for table in ("executions", "proposal_actions"):
            op.execute(f"CREATE TRIGGER {table}_guard BEFORE UPDATE OR DELETE ON {table} "
                       "FOR EACH ROW EXECUTE PROCEDURE orchestrator_guard_settled()")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for name in ("approvals_no_update", "proposals_no_update", "approvals_no_delete", "proposals_no_delete",
                     "executions_no_delete", "proposal_actions_no_delete", "executions_settled",
                     "proposal_actions_settled"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    elif dialect == "postgresql":
        for table in ("approvals", "proposals"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        for table in ("approvals", "proposals", "executions", "proposal_actions"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
        for table in ("executions", "proposal_actions"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_guard ON {table}")
        op.execute("DROP FUNCTION IF EXISTS orchestrator_guard_settled()")
        op.execute("DROP FUNCTION IF EXISTS orchestrator_reject_change()")
    op.drop_table("diagnosed_failures")
    op.drop_table("breaker_trips")
    op.drop_table("breaker_events")
    op.drop_table("audit_head")
    if dialect == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_update")
    elif dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_events_append_only ON audit_events")
    with op.batch_alter_table("audit_events") as b:
        b.drop_column("hash")
        b.drop_column("prev_hash")
    if dialect == "sqlite":
        op.execute("CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events "
                   "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END")
    elif dialect == "postgresql":
        op.execute("CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events "
                   "FOR EACH ROW EXECUTE PROCEDURE audit_events_reject_change()")
    op.drop_index("ix_executions_status", "executions")
    with op.batch_alter_table("executions") as b:
        b.drop_constraint("uq_executions_idempotency_key", type_="unique")
        b.drop_column("owner")
        b.drop_column("lease_until")
        b.drop_column("idempotency_key")
