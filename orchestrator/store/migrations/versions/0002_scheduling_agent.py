"""Scheduling agent: proposals, actions, approvals, executions, LLM calls, breaker state.

Revision ID: 0002_scheduling_agent
Revises: 0001_failure_memory
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_scheduling_agent"
down_revision = "0001_failure_memory"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "proposals",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("snapshot_at", TZ, nullable=True),
        sa.Column("planner", sa.String(128), nullable=False),
        sa.Column("rationale", sa.Text, nullable=False, server_default=""),
        sa.Column("fallback_reason", sa.Text, nullable=True),
        sa.Column("context_tokens", sa.Integer, nullable=True),
        sa.Column("details", sa.JSON, nullable=True),
    )
    op.create_table(
        "proposal_actions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("proposal_id", sa.String(64), sa.ForeignKey("proposals.id", ondelete="CASCADE"), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("source", sa.String(16), nullable=False, server_default="planner"),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("decision", sa.String(16), nullable=True),
        sa.Column("risk", sa.String(8), nullable=True),
        sa.Column("risk_score", sa.Float, nullable=True),
        sa.Column("confidence", sa.Float, nullable=True),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Column("gate_reason", sa.Text, nullable=True),
        sa.Column("rejection_reason", sa.Text, nullable=True),
        sa.Column("subjects", sa.JSON, nullable=True),
        sa.Column("owners", sa.JSON, nullable=True),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("failures", sa.JSON, nullable=True),
        sa.Column("not_before", TZ, nullable=True),
        sa.Column("expires_at", TZ, nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    )
    op.create_index("ix_proposal_actions_status", "proposal_actions", ["status"])
    op.create_index("ix_proposal_actions_proposal_id", "proposal_actions", ["proposal_id"])
    op.create_table(
        "approvals",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("action_id", sa.String(64), sa.ForeignKey("proposal_actions.id", ondelete="CASCADE"), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("via", sa.String(32), nullable=False),
        sa.Column("comment", sa.Text, nullable=True),
        sa.Column("at", TZ, nullable=False),
    )
    op.create_index("ix_approvals_action_id", "approvals", ["action_id"])
    op.create_table(
        "executions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("action_id", sa.String(64), sa.ForeignKey("proposal_actions.id", ondelete="CASCADE"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("run_key", sa.String(255), nullable=True),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("detail", sa.JSON, nullable=True),
        sa.Column("started_at", TZ, nullable=False),
        sa.Column("ended_at", TZ, nullable=True),
    )
    op.create_index("ix_executions_action_id", "executions", ["action_id"])
    op.create_index("ix_executions_run_id", "executions", ["run_id"])
    op.create_table(
        "llm_calls",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("proposal_id", sa.String(64), nullable=True),
        sa.Column("at", TZ, nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("tier", sa.String(8), nullable=False),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("prompt_tokens", sa.Integer, nullable=True),
        sa.Column("completion_tokens", sa.Integer, nullable=True),
        sa.Column("cost_usd", sa.Float, nullable=True),
        sa.Column("latency_s", sa.Float, nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("error", sa.Text, nullable=True),
    )
    op.create_index("ix_llm_calls_proposal_id", "llm_calls", ["proposal_id"])
    op.create_table(
        "breaker_state",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("state", sa.JSON, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("breaker_state")
    op.drop_index("ix_llm_calls_proposal_id", "llm_calls")
    op.drop_table("llm_calls")
    op.drop_index("ix_executions_run_id", "executions")
    op.drop_index("ix_executions_action_id", "executions")
    op.drop_table("executions")
    op.drop_index("ix_approvals_action_id", "approvals")
    op.drop_table("approvals")
    op.drop_index("ix_proposal_actions_proposal_id", "proposal_actions")
    op.drop_index("ix_proposal_actions_status", "proposal_actions")
    op.drop_table("proposal_actions")
    op.drop_table("proposals")
