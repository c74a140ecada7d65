"""Trading agents: the decision and performance log

Revision ID: 0006_agents
Revises: 0005_models
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_agents"
down_revision: str | None = "0005_models"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "agent_decisions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("agent", sa.String(length=64), nullable=False),
        sa.Column("dag_id", sa.String(length=250), nullable=False),
        sa.Column("run_id", sa.String(length=250), nullable=False),
        sa.Column("venue", sa.String(length=64), nullable=False),
        sa.Column("symbol", sa.String(length=64), nullable=False),
        sa.Column("as_of", sa.DateTime(), nullable=False),
        sa.Column("decided_at", sa.DateTime(), nullable=False),
        sa.Column("logged_at", sa.DateTime(), nullable=False),
        sa.Column("price", sa.String(length=64), nullable=False),
        sa.Column("sentiment_score", sa.Float(), nullable=False),
        sa.Column("sentiment_confidence", sa.Float(), nullable=False),
        sa.Column("technical_signal", sa.Float(), nullable=False),
        sa.Column("technical_confidence", sa.Float(), nullable=False),
        sa.Column("model_version", sa.String(length=32), nullable=True),
        sa.Column("model_probability", sa.Float(), nullable=True),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("action", sa.String(length=8), nullable=False),
        sa.Column("amount", sa.String(length=64), nullable=True),
        sa.Column("rationale", sa.Text(), nullable=False),
        sa.Column("risk_rule", sa.String(length=64), nullable=True),
        sa.Column("risk_reason", sa.Text(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("client_order_id", sa.String(length=128), nullable=True),
        sa.Column("order_status", sa.String(length=16), nullable=True),
        sa.Column("filled", sa.String(length=64), nullable=False),
        sa.Column("fill_price", sa.String(length=64), nullable=True),
        sa.Column("fee", sa.String(length=64), nullable=False),
        sa.Column("position_after", sa.String(length=64), nullable=False),
        sa.Column("cash_after", sa.String(length=64), nullable=False),
        sa.Column("equity_after", sa.String(length=64), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("inputs", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("dag_id", "run_id", name="uq_agent_decisions_run"),
    )
    with op.batch_alter_table("agent_decisions", schema=None) as batch_op:
        batch_op.create_index("ix_agent_decisions_agent_as_of", ["agent", "as_of"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("agent_decisions", schema=None) as batch_op:
        batch_op.drop_index("ix_agent_decisions_agent_as_of")

    op.drop_table("agent_decisions")
