"""Baseline: the schema exactly as `create_all` built it before the migrations existed.

Revision ID: 0001_baseline
Revises: (none)
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001_baseline"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "circuit_breakers",
        sa.Column("venue", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("opened_until", sa.DateTime(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("venue"),
    )
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("topic", sa.String(length=250), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("offset", sa.Integer(), nullable=False),
        sa.Column("field", sa.String(length=250), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("watcher", sa.String(length=250), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("topic", "partition", "offset", name="uq_dead_letters_message"),
    )
    op.create_table(
        "handled_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("consumer", sa.String(length=250), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("run_id", sa.String(length=250), nullable=False),
        sa.Column("claimed_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("consumer", "event_id", name="uq_handled_events_consumer_event"),
    )
    op.create_table(
        "leases",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("holder", sa.String(length=250), nullable=False),
        sa.Column("acquired_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "paper_balances",
        sa.Column("venue", sa.String(length=64), nullable=False),
        sa.Column("asset", sa.String(length=32), nullable=False),
        sa.Column("free", sa.String(length=64), nullable=False),
        sa.Column("used", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("venue", "asset"),
    )
    op.create_table(
        "paper_faults",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("venue", sa.String(length=64), nullable=False),
        sa.Column("method", sa.String(length=64), nullable=False),
        sa.Column("error", sa.String(length=32), nullable=False),
        sa.Column("phase", sa.String(length=8), nullable=False),
        sa.Column("remaining", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "paper_fills",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("venue", sa.String(length=64), nullable=False),
        sa.Column("order_id", sa.String(length=128), nullable=False),
        sa.Column("symbol", sa.String(length=64), nullable=False),
        sa.Column("side", sa.String(length=8), nullable=False),
        sa.Column("amount", sa.String(length=64), nullable=False),
        sa.Column("price", sa.String(length=64), nullable=False),
        sa.Column("fee", sa.String(length=64), nullable=False),
        sa.Column("fee_asset", sa.String(length=32), nullable=False),
        sa.Column("liquidity", sa.String(length=8), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("paper_fills", schema=None) as batch_op:
        batch_op.create_index("ix_paper_fills_venue_symbol", ["venue", "symbol"], unique=False)

    op.create_table(
        "paper_funding_payments",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("venue", sa.String(length=64), nullable=False),
        sa.Column("symbol", sa.String(length=64), nullable=False),
        sa.Column("funding_time", sa.DateTime(), nullable=False),
        sa.Column("size", sa.String(length=64), nullable=False),
        sa.Column("mark_price", sa.String(length=64), nullable=False),
        sa.Column("rate", sa.String(length=64), nullable=False),
        sa.Column("amount", sa.String(length=64), nullable=False),
        sa.Column("asset", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("venue", "symbol", "funding_time", name="uq_paper_funding_payments_boundary"),
    )
    op.create_table(
        "paper_markets",
        sa.Column("venue", sa.String(length=64), nullable=False),
        sa.Column("symbol", sa.String(length=64), nullable=False),
        sa.Column("mark_price", sa.String(length=64), nullable=False),
        sa.Column("funding_rate", sa.String(length=64), nullable=True),
        sa.Column("funding_accrued_to", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("venue", "symbol"),
    )
    op.create_table(
        "paper_orders",
        sa.Column("order_id", sa.String(length=128), nullable=False),
        sa.Column("venue", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("client_order_id", sa.String(length=128), nullable=False),
        sa.Column("symbol", sa.String(length=64), nullable=False),
        sa.Column("side", sa.String(length=8), nullable=False),
        sa.Column("order_type", sa.String(length=16), nullable=False),
        sa.Column("amount", sa.String(length=64), nullable=False),
        sa.Column("filled", sa.String(length=64), nullable=False),
        sa.Column("price", sa.String(length=64), nullable=True),
        sa.Column("average_price", sa.String(length=64), nullable=True),
        sa.Column("fee", sa.String(length=64), nullable=False),
        sa.Column("fee_asset", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reduce_only", sa.Boolean(), nullable=False),
        sa.Column("reserved_asset", sa.String(length=32), nullable=True),
        sa.Column("reserved_amount", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("order_id"),
        sa.UniqueConstraint("venue", "client_order_id", name="uq_paper_orders_venue_client_order_id"),
    )
    with op.batch_alter_table("paper_orders", schema=None) as batch_op:
        batch_op.create_index("ix_paper_orders_venue_status", ["venue", "status"], unique=False)

    op.create_table(
        "paper_positions",
        sa.Column("venue", sa.String(length=64), nullable=False),
        sa.Column("symbol", sa.String(length=64), nullable=False),
        sa.Column("size", sa.String(length=64), nullable=False),
        sa.Column("entry_price", sa.String(length=64), nullable=False),
        sa.Column("realized_pnl", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("venue", "symbol"),
    )
    op.create_table(
        "paper_transfers",
        sa.Column("transfer_id", sa.String(length=128), nullable=False),
        sa.Column("asset", sa.String(length=32), nullable=False),
        sa.Column("amount", sa.String(length=64), nullable=False),
        sa.Column("fee", sa.String(length=64), nullable=False),
        sa.Column("from_venue", sa.String(length=64), nullable=False),
        sa.Column("to_venue", sa.String(length=64), nullable=False),
        sa.Column("network", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("settles_at", sa.DateTime(), nullable=False),
        sa.Column("settled_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("transfer_id"),
    )
    with op.batch_alter_table("paper_transfers", schema=None) as batch_op:
        batch_op.create_index("ix_paper_transfers_status_settles_at", ["status", "settles_at"], unique=False)

    op.create_table(
        "paper_venues",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("order_seq", sa.Integer(), nullable=False),
        sa.Column("seeded_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "saga_ledger",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("dag_id", sa.String(length=250), nullable=False),
        sa.Column("run_id", sa.String(length=250), nullable=False),
        sa.Column("task_id", sa.String(length=250), nullable=False),
        sa.Column("map_index", sa.Integer(), nullable=False),
        sa.Column("step", sa.String(length=250), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("idempotency_key", sa.String(length=64), nullable=False),
        sa.Column("try_number", sa.Integer(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("saga_ledger", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_saga_ledger_dag_id"), ["dag_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_saga_ledger_run_id"), ["run_id"], unique=False)

    op.create_table(
        "trading_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("changed_by", sa.String(length=128), nullable=False),
        sa.Column("changed_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "trading_state_history",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("changed_by", sa.String(length=128), nullable=False),
        sa.Column("changed_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("trading_state_history")
    op.drop_table("trading_state")
    with op.batch_alter_table("saga_ledger", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_saga_ledger_run_id"))
        batch_op.drop_index(batch_op.f("ix_saga_ledger_dag_id"))

    op.drop_table("saga_ledger")
    op.drop_table("paper_venues")
    with op.batch_alter_table("paper_transfers", schema=None) as batch_op:
        batch_op.drop_index("ix_paper_transfers_status_settles_at")

    op.drop_table("paper_transfers")
    op.drop_table("paper_positions")
    with op.batch_alter_table("paper_orders", schema=None) as batch_op:
        batch_op.drop_index("ix_paper_orders_venue_status")

    op.drop_table("paper_orders")
    op.drop_table("paper_markets")
    op.drop_table("paper_funding_payments")
    with op.batch_alter_table("paper_fills", schema=None) as batch_op:
        batch_op.drop_index("ix_paper_fills_venue_symbol")

    op.drop_table("paper_fills")
    op.drop_table("paper_faults")
    op.drop_table("paper_balances")
    op.drop_table("leases")
    op.drop_table("handled_events")
    op.drop_table("dead_letters")
    op.drop_table("circuit_breakers")
