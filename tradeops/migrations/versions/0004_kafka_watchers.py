"""Kafka watchers: health, event fingerprints, stale events; dead letters pending until confirmed

Revision ID: 0004_kafka_watchers
Revises: 0003_venue_withdrawals
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_kafka_watchers"
down_revision: str | None = "0003_venue_withdrawals"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "event_fingerprints",
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("topic", sa.String(length=250), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("event_id"),
    )
    op.create_table(
        "stale_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("watcher", sa.String(length=250), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("occurred_at", sa.DateTime(), nullable=False),
        sa.Column("age_seconds", sa.Float(), nullable=False),
        sa.Column("topic", sa.String(length=250), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("watcher", "topic", "partition", "offset", name="uq_stale_events_message"),
    )
    op.create_table(
        "watcher_health",
        sa.Column("watcher", sa.String(length=250), nullable=False),
        sa.Column("topic", sa.String(length=250), nullable=False),
        sa.Column("group_id", sa.String(length=250), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(), nullable=False),
        sa.Column("last_message_at", sa.DateTime(), nullable=True),
        sa.Column("lag", sa.BigInteger(), nullable=True),
        sa.Column("broker_state", sa.String(length=16), nullable=False),
        sa.Column("broker_down_since", sa.DateTime(), nullable=True),
        sa.Column("messages", sa.BigInteger(), nullable=False),
        sa.Column("fired", sa.BigInteger(), nullable=False),
        sa.Column("dead_lettered", sa.BigInteger(), nullable=False),
        sa.Column("stale", sa.BigInteger(), nullable=False),
        sa.Column("conflicts", sa.BigInteger(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("process", sa.String(length=250), nullable=False),
        sa.PrimaryKeyConstraint("watcher"),
    )
    with op.batch_alter_table("dead_letters", schema=None) as batch_op:
        batch_op.add_column(sa.Column("status", sa.String(length=16), server_default="stored", nullable=False))
        batch_op.add_column(sa.Column("event_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("size", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("sha256", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("truncated", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column("dlq_partition", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("dlq_offset", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("stored_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("dead_letters", schema=None) as batch_op:
        batch_op.drop_column("stored_at")
        batch_op.drop_column("dlq_offset")
        batch_op.drop_column("dlq_partition")
        batch_op.drop_column("truncated")
        batch_op.drop_column("sha256")
        batch_op.drop_column("size")
        batch_op.drop_column("event_id")
        batch_op.drop_column("status")

    op.drop_table("watcher_health")
    op.drop_table("stale_events")
    op.drop_table("event_fingerprints")
