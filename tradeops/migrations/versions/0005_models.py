"""Models: alias history, routing table and its history, served predictions

Revision ID: 0005_models
Revises: 0004_kafka_watchers
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_models"
down_revision: str | None = "0004_kafka_watchers"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "model_alias_history",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("model", sa.String(length=250), nullable=False),
        sa.Column("alias", sa.String(length=64), nullable=False),
        sa.Column("old_version", sa.String(length=32), nullable=True),
        sa.Column("new_version", sa.String(length=32), nullable=True),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "model_predictions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("bar_ts", sa.DateTime(), nullable=True),
        sa.Column("venue", sa.String(length=64), nullable=False),
        sa.Column("symbol", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=250), nullable=False),
        sa.Column("version", sa.String(length=32), nullable=True),
        sa.Column("role", sa.String(length=16), nullable=True),
        sa.Column("probability", sa.Float(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("features", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("model_predictions", schema=None) as batch_op:
        batch_op.create_index("ix_model_predictions_instrument_at", ["venue", "symbol", "at"], unique=False)
        batch_op.create_index("ix_model_predictions_version_at", ["version", "at"], unique=False)

    op.create_table(
        "model_route_history",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("venue", sa.String(length=64), nullable=False),
        sa.Column("symbol", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=250), nullable=False),
        sa.Column("old_version", sa.String(length=32), nullable=True),
        sa.Column("new_version", sa.String(length=32), nullable=True),
        sa.Column("old_role", sa.String(length=16), nullable=True),
        sa.Column("new_role", sa.String(length=16), nullable=True),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "model_routes",
        sa.Column("venue", sa.String(length=64), nullable=False),
        sa.Column("symbol", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=250), nullable=False),
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("updated_by", sa.String(length=128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("venue", "symbol"),
    )


def downgrade() -> None:
    op.drop_table("model_routes")
    op.drop_table("model_route_history")
    with op.batch_alter_table("model_predictions", schema=None) as batch_op:
        batch_op.drop_index("ix_model_predictions_version_at")
        batch_op.drop_index("ix_model_predictions_instrument_at")

    op.drop_table("model_predictions")
    op.drop_table("model_alias_history")
