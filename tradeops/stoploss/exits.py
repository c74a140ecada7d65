"""The orders that take a venue's exposure to zero, both legs of each asset together.

Perpetual positions close with reduce-only market orders. Spot balances (crypto or shares) are
sold for the market's cash asset with exit-only market orders (the only new orders HALTED lets
through besides reduce-only ones). Client order ids are deterministic per (key prefix, round,
symbol), so a retried call never closes twice.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from decimal import Decimal

from tradeops.config import Settings
from tradeops.model import OrderRequest, Side
from tradeops.stoploss.exposure import VenueState, spot_market


@dataclass(frozen=True)
class ExitOrder:
    request: OrderRequest
    exit_only: bool


def close_order_id(prefix: str, round_number: int, symbol: str) -> str:
    """A deterministic 32-character client order id for closing ``symbol`` in ``round_number``."""
    return "sl" + hashlib.sha256(f"{prefix}\x1f{round_number}\x1f{symbol}".encode()).hexdigest()[:30]


def _market_order(
    venue: str, symbol: str, side: Side, amount: Decimal, order_id: str, *, reduce_only: bool
) -> OrderRequest:
    return OrderRequest(
        venue=venue, symbol=symbol, side=side, amount=amount, client_order_id=order_id, reduce_only=reduce_only
    )


def exit_orders(state: VenueState, settings: Settings, prefix: str, round_number: int) -> list[ExitOrder]:
    """Per asset, the perp close then the spot sale, for every leg that is still open.

    Assets whose shares already wait for the open, and assets no market here can sell, get none.
    """
    config = settings.venue(state.venue)
    cash = settings.cash_assets()
    waiting = state.pending_assets()
    orders: list[ExitOrder] = []
    for exposure in state.exposures:
        for symbol, size in exposure.perp_legs:
            side = Side.SELL if size > 0 else Side.BUY
            order_id = close_order_id(prefix, round_number, symbol)
            request = _market_order(state.venue, symbol, side, abs(size), order_id, reduce_only=True)
            orders.append(ExitOrder(request, exit_only=False))
        market = spot_market(config, exposure.asset, cash)
        if market and exposure.spot_open and exposure.spot_free > 0 and exposure.asset not in waiting:
            order_id = close_order_id(prefix, round_number, market)
            request = _market_order(state.venue, market, Side.SELL, exposure.spot_free, order_id, reduce_only=False)
            orders.append(ExitOrder(request, exit_only=True))
    return orders
