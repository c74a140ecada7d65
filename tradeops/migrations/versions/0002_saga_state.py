"""Saga ledger state: saga_runs and saga_steps (intent before acting)

Revision ID: 0002_saga_state
Revises: 0001_baseline
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_saga_state"
down_revision: str | None = "0001_baseline"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "saga_runs",
        sa.Column("dag_id", sa.String(length=250), nullable=False),
        sa.Column("run_id", sa.String(length=250), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("opened_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("closed_by", sa.String(length=250), nullable=True),
        sa.Column("close_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("dag_id", "run_id"),
    )
    with op.batch_alter_table("saga_runs", schema=None) as batch_op:
        batch_op.create_index("ix_saga_runs_status", ["status"], unique=False)

    op.create_table(
        "saga_steps",
        sa.Column("idempotency_key", sa.String(length=64), nullable=False),
        sa.Column("dag_id", sa.String(length=250), nullable=False),
        sa.Column("run_id", sa.String(length=250), nullable=False),
        sa.Column("task_id", sa.String(length=250), nullable=False),
        sa.Column("map_index", sa.Integer(), nullable=False),
        sa.Column("step_index", sa.Integer(), nullable=False),
        sa.Column("step", sa.String(length=250), nullable=False),
        sa.Column("action", sa.String(length=250), nullable=False),
        sa.Column("undo", sa.String(length=250), nullable=False),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("try_number", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("idempotency_key"),
    )
    with op.batch_alter_table("saga_steps", schema=None) as batch_op:
        batch_op.create_index("ix_saga_steps_run", ["dag_id", "run_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("saga_steps", schema=None) as batch_op:
        batch_op.drop_index("ix_saga_steps_run")

    op.drop_table("saga_steps")
    with op.batch_alter_table("saga_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_saga_runs_status")

    op.drop_table("saga_runs")
