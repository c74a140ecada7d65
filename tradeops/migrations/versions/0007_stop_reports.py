"""Emergency stop reports kept for the desk

Revision ID: 0007_stop_reports
Revises: 0006_agents
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_stop_reports"
down_revision: str | None = "0006_agents"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "stop_reports",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("dag_id", sa.String(length=250), nullable=False),
        sa.Column("run_id", sa.String(length=250), nullable=True),
        sa.Column("stage", sa.String(length=16), nullable=False),
        sa.Column("occurred_at", sa.DateTime(), nullable=False),
        sa.Column("all_flat", sa.Boolean(), nullable=False),
        sa.Column("trading_state", sa.String(length=16), nullable=False),
        sa.Column("report", sa.Text(), nullable=False),
        sa.Column("stored_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id", name="uq_stop_reports_event_id"),
    )
    with op.batch_alter_table("stop_reports", schema=None) as batch_op:
        batch_op.create_index("ix_stop_reports_occurred_at", ["occurred_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("stop_reports", schema=None) as batch_op:
        batch_op.drop_index("ix_stop_reports_occurred_at")

    op.drop_table("stop_reports")
