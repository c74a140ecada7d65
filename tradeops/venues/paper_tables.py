"""SQL tables of the paper exchange, registered on ``tradeops.db.metadata`` at import.

One row of ``paper_venues`` per simulated venue is also that venue's lock row: every write to a
venue's state happens in a transaction holding it (``SELECT ... FOR UPDATE`` on Postgres; SQLite
transactions already hold the database write lock from ``BEGIN IMMEDIATE``).
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Index, Integer, String, Table, UniqueConstraint

from tradeops.db import DecimalText, UTCDateTime, metadata

venues_table = Table(
    "paper_venues",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("order_seq", Integer, nullable=False),
    Column("seeded_at", UTCDateTime, nullable=False),
)

balances_table = Table(
    "paper_balances",
    metadata,
    Column("venue", String(64), primary_key=True),
    Column("asset", String(32), primary_key=True),
    Column("free", DecimalText, nullable=False),
    Column("used", DecimalText, nullable=False),
)

markets_table = Table(
    "paper_markets",
    metadata,
    Column("venue", String(64), primary_key=True),
    Column("symbol", String(64), primary_key=True),
    Column("mark_price", DecimalText, nullable=False),
    Column("funding_rate", DecimalText, nullable=True),
    # Last funding boundary already paid; NULL until the venue's first call starts the clock.
    Column("funding_accrued_to", UTCDateTime, nullable=True),
)

positions_table = Table(
    "paper_positions",
    metadata,
    Column("venue", String(64), primary_key=True),
    Column("symbol", String(64), primary_key=True),
    Column("size", DecimalText, nullable=False),
    Column("entry_price", DecimalText, nullable=False),
    Column("realized_pnl", DecimalText, nullable=False),
)

orders_table = Table(
    "paper_orders",
    metadata,
    Column("order_id", String(128), primary_key=True),
    Column("venue", String(64), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("client_order_id", String(128), nullable=False),
    Column("symbol", String(64), nullable=False),
    Column("side", String(8), nullable=False),
    Column("order_type", String(16), nullable=False),
    Column("amount", DecimalText, nullable=False),
    Column("filled", DecimalText, nullable=False),
    Column("price", DecimalText, nullable=True),
    Column("average_price", DecimalText, nullable=True),
    Column("fee", DecimalText, nullable=False),
    Column("fee_asset", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("reduce_only", Boolean, nullable=False),
    Column("reserved_asset", String(32), nullable=True),
    Column("reserved_amount", DecimalText, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("venue", "client_order_id", name="uq_paper_orders_venue_client_order_id"),
    Index("ix_paper_orders_venue_status", "venue", "status"),
)

fills_table = Table(
    "paper_fills",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("venue", String(64), nullable=False),
    Column("order_id", String(128), nullable=False),
    Column("symbol", String(64), nullable=False),
    Column("side", String(8), nullable=False),
    Column("amount", DecimalText, nullable=False),
    Column("price", DecimalText, nullable=False),
    Column("fee", DecimalText, nullable=False),
    Column("fee_asset", String(32), nullable=False),
    Column("liquidity", String(8), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Index("ix_paper_fills_venue_symbol", "venue", "symbol"),
)

funding_payments_table = Table(
    "paper_funding_payments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("venue", String(64), nullable=False),
    Column("symbol", String(64), nullable=False),
    Column("funding_time", UTCDateTime, nullable=False),
    Column("size", DecimalText, nullable=False),
    Column("mark_price", DecimalText, nullable=False),
    Column("rate", DecimalText, nullable=False),
    Column("amount", DecimalText, nullable=False),
    Column("asset", String(32), nullable=False),
    UniqueConstraint("venue", "symbol", "funding_time", name="uq_paper_funding_payments_boundary"),
)

transfers_table = Table(
    "paper_transfers",
    metadata,
    Column("transfer_id", String(128), primary_key=True),
    Column("asset", String(32), nullable=False),
    Column("amount", DecimalText, nullable=False),
    Column("fee", DecimalText, nullable=False),
    Column("from_venue", String(64), nullable=False),
    Column("to_venue", String(64), nullable=False),
    Column("network", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("settles_at", UTCDateTime, nullable=False),
    Column("settled_at", UTCDateTime, nullable=True),
    Index("ix_paper_transfers_status_settles_at", "status", "settles_at"),
)

faults_table = Table(
    "paper_faults",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("venue", String(64), nullable=False),
    Column("method", String(64), nullable=False),
    Column("error", String(32), nullable=False),
    Column("phase", String(8), nullable=False),
    Column("remaining", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

PAPER_TABLES: tuple[Table, ...] = (
    venues_table,
    balances_table,
    markets_table,
    positions_table,
    orders_table,
    fills_table,
    funding_payments_table,
    transfers_table,
    faults_table,
)
