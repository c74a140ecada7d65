"""Live withdrawals we attempted, kept in the project database so idempotency crosses processes.

Before a live venue is asked to send funds, the attempt is written here under our transfer id
(the saga step's key) with what it sends where; the venue's withdrawal id is stored as soon as
the venue answers. A retry in another process (a new Airflow try, a restarted worker) therefore
knows an earlier attempt exists even when its answer was lost, and looks it up instead of
sending again:

- ``sending``: written before the call; the call has not answered (yet, or ever);
- ``sent``: the venue answered with its withdrawal id;
- ``unknown``: the call failed in a way that does not tell whether the venue acted (timeout,
  connection lost after the request);
- ``rejected``: the venue answered "no" (insufficient funds, invalid address...): nothing left.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Column, Engine, Row, String, Table, Text, UniqueConstraint, insert, select, update

from tradeops.db import DecimalText, UTCDateTime, get_engine, insert_unless_exists, metadata, transaction, utcnow

venue_withdrawals = Table(
    "venue_withdrawals",
    metadata,
    Column("transfer_id", String(128), primary_key=True),
    Column("venue", String(64), nullable=False),
    Column("asset", String(32), nullable=False),
    Column("amount", DecimalText, nullable=False),
    Column("to_venue", String(64), nullable=False),
    Column("network", String(32), nullable=False),
    Column("address", String(255), nullable=False),
    Column("status", String(16), nullable=False),
    Column("venue_withdrawal_id", String(128), nullable=True),
    Column("error", Text, nullable=True),
    Column("attempted_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("venue", "venue_withdrawal_id", name="uq_venue_withdrawals_venue_withdrawal_id"),
)


class AttemptStatus(enum.StrEnum):
    SENDING = "sending"
    SENT = "sent"
    UNKNOWN = "unknown"
    REJECTED = "rejected"


@dataclass(frozen=True, kw_only=True)
class WithdrawalAttempt:
    transfer_id: str
    venue: str
    asset: str
    amount: Decimal
    to_venue: str
    network: str
    address: str
    status: AttemptStatus
    venue_withdrawal_id: str | None
    attempted_at: datetime


def _to_attempt(row: Row[Any]) -> WithdrawalAttempt:
    return WithdrawalAttempt(
        transfer_id=row.transfer_id,
        venue=row.venue,
        asset=row.asset,
        amount=row.amount,
        to_venue=row.to_venue,
        network=row.network,
        address=row.address,
        status=AttemptStatus(row.status),
        venue_withdrawal_id=row.venue_withdrawal_id,
        attempted_at=row.attempted_at,
    )


def find(transfer_id: str, *, engine: Engine | None = None) -> WithdrawalAttempt | None:
    with transaction(engine or get_engine()) as conn:
        row = conn.execute(select(venue_withdrawals).where(venue_withdrawals.c.transfer_id == transfer_id)).first()
    return None if row is None else _to_attempt(row)


def claimed_ids(venue: str, *, engine: Engine | None = None) -> set[str]:
    """The venue withdrawal ids already tied to one of our transfer ids on ``venue``."""
    with transaction(engine or get_engine()) as conn:
        rows = conn.execute(
            select(venue_withdrawals.c.venue_withdrawal_id).where(
                venue_withdrawals.c.venue == venue, venue_withdrawals.c.venue_withdrawal_id.is_not(None)
            )
        )
        return {str(row.venue_withdrawal_id) for row in rows}


def record_attempt(
    *,
    transfer_id: str,
    venue: str,
    asset: str,
    amount: Decimal,
    to_venue: str,
    network: str,
    address: str,
    engine: Engine | None = None,
) -> WithdrawalAttempt:
    """Write a new attempt (``sending``, now) before the venue is called; a retry after a
    rejection or a confirmed non-send starts over with a new timestamp."""
    now = utcnow()
    values = {
        "venue": venue,
        "asset": asset,
        "amount": amount,
        "to_venue": to_venue,
        "network": network,
        "address": address,
        "status": AttemptStatus.SENDING.value,
        "venue_withdrawal_id": None,
        "error": None,
        "attempted_at": now,
        "updated_at": now,
    }
    table = venue_withdrawals
    with transaction(engine or get_engine()) as conn:
        exists = conn.execute(select(table.c.transfer_id).where(table.c.transfer_id == transfer_id)).first()
        new_row = insert(table).values(transfer_id=transfer_id, **values)
        if exists is not None or not insert_unless_exists(conn, new_row):
            conn.execute(update(table).where(table.c.transfer_id == transfer_id).values(**values))
        row = conn.execute(select(table).where(table.c.transfer_id == transfer_id)).one()
    return _to_attempt(row)


def mark(
    transfer_id: str,
    status: AttemptStatus,
    *,
    venue_withdrawal_id: str | None = None,
    error: str | None = None,
    engine: Engine | None = None,
) -> None:
    values: dict[str, object] = {"status": status.value, "updated_at": utcnow()}
    if venue_withdrawal_id is not None:
        values["venue_withdrawal_id"] = venue_withdrawal_id
    if error is not None:
        values["error"] = error[:2000]
    with transaction(engine or get_engine()) as conn:
        conn.execute(update(venue_withdrawals).where(venue_withdrawals.c.transfer_id == transfer_id).values(**values))
