"""Live withdrawal attempts (venue_withdrawals): idempotency across processes

Revision ID: 0003_venue_withdrawals
Revises: 0002_saga_state
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_venue_withdrawals"
down_revision: str | None = "0002_saga_state"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "venue_withdrawals",
        sa.Column("transfer_id", sa.String(length=128), nullable=False),
        sa.Column("venue", sa.String(length=64), nullable=False),
        sa.Column("asset", sa.String(length=32), nullable=False),
        sa.Column("amount", sa.String(length=64), nullable=False),
        sa.Column("to_venue", sa.String(length=64), nullable=False),
        sa.Column("network", sa.String(length=32), nullable=False),
        sa.Column("address", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("venue_withdrawal_id", sa.String(length=128), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempted_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("transfer_id"),
        sa.UniqueConstraint("venue", "venue_withdrawal_id", name="uq_venue_withdrawals_venue_withdrawal_id"),
    )


def downgrade() -> None:
    op.drop_table("venue_withdrawals")
