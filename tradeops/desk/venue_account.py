"""One venue's account as the desk shows it: balances, positions, exposure, open orders, PnL.

The venue is opened through the project's factory without the circuit breaker, as the
emergency stop opens it (``open_venue(..., circuit_breaker=False)``): a read-only view must not
count failures against the breaker or be refused by it, and must see the venue while HALTED.
The account is read with ``balances``, ``positions`` and the stop-loss measure (which reads
orders, positions and balances again, and marks of held spot assets): a few calls per venue.
Exposure per base asset is the stop-loss measure (``tradeops.stoploss.exposure.measure``): spot
and perp legs and their net, the same figures the emergency stop acts on.

PnL is shown only where the venue knows it. The paper venue records, per perpetual position,
the PnL realised by reducing or closing it (before fees and funding, which it books separately
to the quote balance) and marks open positions to market; it keeps no PnL of spot trades. So a
paper venue with perpetual markets in one quote asset has ``realized`` and ``unrealized`` (its
perpetuals only, said in ``scope``); any other venue has ``pnl: null``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from tradeops.config import Settings
from tradeops.db import get_engine, transaction, utcnow
from tradeops.model import Balance, MarketKind, Order, Position, parse_symbol, to_jsonable
from tradeops.stoploss.exposure import measure
from tradeops.venues import paper_book
from tradeops.venues.base import Venue
from tradeops.venues.factory import open_venue

PNL_SCOPE = "perpetuals: realised on reducing or closing, before fees and funding; unrealised at mark"


def open_for_reading(name: str, settings: Settings) -> Venue:
    """The venue as the emergency stop opens it: the factory's, without the circuit breaker."""
    return open_venue(name, settings=settings, circuit_breaker=False)


def read_account(name: str, settings: Settings, open_one: Callable[[str], Venue]) -> dict[str, Any]:
    """Read venue ``name`` (opened by ``open_one``) once; raises what the venue raises. Closes it."""
    started = time.monotonic()
    venue = open_one(name)
    try:
        balances = venue.balances()
        positions = venue.positions()
        state = measure(venue, settings, frozenset())  # our own exit orders: none, every order is open
    finally:
        venue.close()
    config = settings.venue(name)
    return {
        "checked_at": to_jsonable(utcnow()),
        "latency_ms": round((time.monotonic() - started) * 1000),
        "balances": [_balance(b) for _asset, b in sorted(balances.items()) if b.total or b.free or b.used],
        "positions": [_position(p) for p in sorted(positions, key=lambda p: p.symbol) if p.size != 0],
        "exposure": [exposure.to_dict() for exposure in state.exposures],
        "open_orders": [_order(o) for o in state.open_orders],
        "pnl": paper_pnl(name, config.markets, positions) if config.kind == "paper" else None,
    }


def paper_pnl(name: str, markets: tuple[str, ...], positions: list[Position]) -> dict[str, Any] | None:
    """What paper venue ``name`` knows of its PnL (see the module docstring), or None."""
    perps = [symbol for symbol in markets if parse_symbol(symbol)[2] is MarketKind.PERP]
    quotes = {parse_symbol(symbol)[1] for symbol in perps}
    if len(quotes) != 1:
        return None
    with transaction(get_engine()) as conn:
        realized = sum((paper_book.get_position(conn, name, symbol).realized_pnl for symbol in perps), Decimal(0))
    unrealized = sum((p.unrealized_pnl for p in positions if p.symbol in perps), Decimal(0))
    return {"currency": quotes.pop(), "realized": str(realized), "unrealized": str(unrealized), "scope": PNL_SCOPE}


def _balance(balance: Balance) -> dict[str, Any]:
    return {
        "asset": balance.asset,
        "free": str(balance.free),
        "used": str(balance.used),
        "total": str(balance.total),
    }


def _position(position: Position) -> dict[str, Any]:
    return {
        "symbol": position.symbol,
        "side": "long" if position.size > 0 else "short",
        "size": str(abs(position.size)),
        "entry_price": str(position.entry_price),
        "mark_price": str(position.mark_price),
        "unrealized_pnl": str(position.unrealized_pnl),
    }


def _order(order: Order) -> dict[str, Any]:
    return {
        "client_order_id": order.client_order_id,
        "symbol": order.symbol,
        "side": order.side.value,
        "type": order.order_type.value,
        "amount": str(order.amount),
        "price": None if order.price is None else str(order.price),
        "filled": str(order.filled),
        "status": order.status.value,
        "created_at": to_jsonable(order.created_at),
    }
