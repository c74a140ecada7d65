"""The trading state (ACTIVE / REDUCING / HALTED), stored durably, and the order check.

Every order passes ``check_order`` before it reaches a venue:
HALTED rejects every new order except those that reduce exposure and are either reduce-only
(how the emergency stop flattens the book) or undo one of our own fills (saga compensation).
REDUCING accepts only orders that reduce exposure.
HALTED also stops funds leaving a venue (``check_transfer``), except the reverse transfers of a
saga compensation. Going back to ACTIVE is always an explicit human action.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Column, Engine, Integer, String, Table, Text, insert, select, update

from tradeops.db import UTCDateTime, get_engine, insert_unless_exists, metadata, transaction, utcnow
from tradeops.errors import TradingHaltedError
from tradeops.model import MarketKind, OrderRequest, parse_symbol


class TradingState(enum.StrEnum):
    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"


trading_state_table = Table(
    "trading_state",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("state", String(16), nullable=False),
    Column("reason", Text, nullable=False),
    Column("changed_by", String(128), nullable=False),
    Column("changed_at", UTCDateTime, nullable=False),
)

trading_state_history = Table(
    "trading_state_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("state", String(16), nullable=False),
    Column("reason", Text, nullable=False),
    Column("changed_by", String(128), nullable=False),
    Column("changed_at", UTCDateTime, nullable=False),
)


@dataclass(frozen=True, kw_only=True)
class StateRecord:
    state: TradingState
    reason: str
    changed_by: str
    changed_at: datetime | None


def get_state(engine: Engine | None = None) -> StateRecord:
    """The current trading state; ACTIVE when it was never set."""
    with transaction(engine or get_engine()) as conn:
        row = conn.execute(select(trading_state_table).where(trading_state_table.c.id == 1)).first()
    if row is None:
        return StateRecord(state=TradingState.ACTIVE, reason="initial", changed_by="-", changed_at=None)
    return StateRecord(
        state=TradingState(row.state), reason=row.reason, changed_by=row.changed_by, changed_at=row.changed_at
    )


def set_state(state: TradingState, *, reason: str, changed_by: str, engine: Engine | None = None) -> StateRecord:
    """Set the trading state and append it to the history."""
    if not reason.strip():
        raise ValueError("a reason is required to change the trading state")
    now = utcnow()
    values = {"state": state.value, "reason": reason, "changed_by": changed_by, "changed_at": now}
    set_current = update(trading_state_table).where(trading_state_table.c.id == 1).values(**values)
    with transaction(engine or get_engine()) as conn:
        if not conn.execute(set_current).rowcount and not insert_unless_exists(
            conn, insert(trading_state_table).values(id=1, **values)
        ):
            conn.execute(set_current)  # a concurrent first change created the row: ours comes after it
        conn.execute(insert(trading_state_history).values(**values))
    return StateRecord(state=state, reason=reason, changed_by=changed_by, changed_at=now)


def ensure_halted(*, reason: str, changed_by: str, engine: Engine | None = None) -> StateRecord | None:
    """Set HALTED unless it already is (one conditional write, safe to repeat from any process):
    the record written, or None when trading was already HALTED (nothing written)."""
    if not reason.strip():
        raise ValueError("a reason is required to change the trading state")
    now = utcnow()
    values = {"state": TradingState.HALTED.value, "reason": reason, "changed_by": changed_by, "changed_at": now}
    table = trading_state_table
    halt = update(table).where(table.c.id == 1, table.c.state != TradingState.HALTED.value).values(**values)
    with transaction(engine or get_engine()) as conn:
        written = bool(conn.execute(halt).rowcount)
        if not written and conn.execute(select(table.c.id).where(table.c.id == 1)).first() is None:
            # never set before: create the row, or halt what a concurrent first change just wrote
            written = insert_unless_exists(conn, insert(table).values(id=1, **values)) or bool(
                conn.execute(halt).rowcount
            )
        if not written:
            return None
        conn.execute(insert(trading_state_history).values(**values))
    return StateRecord(state=TradingState.HALTED, reason=reason, changed_by=changed_by, changed_at=now)


def restore_state(
    expected: StateRecord, previous: StateRecord, *, reason: str, changed_by: str, engine: Engine | None = None
) -> bool:
    """Compare-and-set: put ``previous.state`` back only while the current state is still exactly
    ``expected`` (same state, reason, author and time). False, and nothing written, when anyone
    changed it since: a later change always wins over an undo."""
    if not reason.strip():
        raise ValueError("a reason is required to change the trading state")
    table = trading_state_table
    values = {"state": previous.state.value, "reason": reason, "changed_by": changed_by, "changed_at": utcnow()}
    still_ours = update(table).where(
        table.c.id == 1,
        table.c.state == expected.state.value,
        table.c.reason == expected.reason,
        table.c.changed_by == expected.changed_by,
        table.c.changed_at == expected.changed_at,
    )
    with transaction(engine or get_engine()) as conn:
        if not conn.execute(still_ours.values(**values)).rowcount:
            return False
        conn.execute(insert(trading_state_history).values(**values))
    return True


def history(limit: int = 20, engine: Engine | None = None) -> list[StateRecord]:
    with transaction(engine or get_engine()) as conn:
        rows = conn.execute(
            select(trading_state_history).order_by(trading_state_history.c.id.desc()).limit(limit)
        ).all()
    return [
        StateRecord(state=TradingState(r.state), reason=r.reason, changed_by=r.changed_by, changed_at=r.changed_at)
        for r in rows
    ]


def reduces_exposure(request: OrderRequest, current_exposure: Decimal) -> bool:
    """True when the order moves the signed exposure towards zero without crossing it."""
    signed = request.amount * request.side.sign
    if current_exposure == 0:
        return False
    return (current_exposure > 0 > signed or current_exposure < 0 < signed) and abs(signed) <= abs(current_exposure)


def _reduces(request: OrderRequest, current_exposure: Decimal) -> bool:
    if parse_symbol(request.symbol)[2] is MarketKind.PERP:
        return reduces_exposure(request, current_exposure)
    return request.side.value == "sell" and current_exposure >= request.amount


def check_order(
    request: OrderRequest, state: TradingState, current_exposure: Decimal, *, exit_only: bool = False
) -> None:
    """Raise ``TradingHaltedError`` when the trading state forbids ``request``.

    ``current_exposure`` is the signed position (perp) or the held base amount (spot).
    ``exit_only`` marks an order that exists only to take exposure off: a saga undo trading back
    one of our own fills, or the emergency stop selling equity holdings. While HALTED, only orders
    that reduce exposure AND are reduce-only or ``exit_only`` pass.
    """
    if state is TradingState.ACTIVE:
        return
    reduces = _reduces(request, current_exposure)
    if state is TradingState.HALTED:
        if reduces and (request.reduce_only or exit_only):
            return
        raise TradingHaltedError(
            f"trading is HALTED: order {request.client_order_id} ({request.side.value} "
            f"{request.amount} {request.symbol} on {request.venue}) refused"
        )
    if reduces:
        return
    raise TradingHaltedError(
        f"trading is REDUCING: order {request.client_order_id} ({request.side.value} {request.amount} "
        f"{request.symbol} on {request.venue}) would not reduce exposure ({current_exposure})"
    )


def check_transfer(state: TradingState, what: str, *, compensation: bool = False) -> None:
    """Raise ``TradingHaltedError`` when HALTED forbids moving funds (a withdrawal, a Wise
    transfer). Only the reverse transfers of a saga compensation pass while HALTED."""
    if state is TradingState.HALTED and not compensation:
        raise TradingHaltedError(f"trading is HALTED: {what} refused (only compensating transfers move funds)")
