"""The emergency exit: cancel every open order and close every position on a venue, then check.

Perpetual positions close with reduce-only market orders; on equity venues the held shares are
the positions and are sold with exit-only market orders. Each round re-reads the venue (the
venue's state is the truth, not ours) and the loop ends when the venue is flat or the rounds
run out. Order ids are deterministic per (key prefix, round, symbol), so a retried task never
closes twice. A venue that fails is reported; it never stops the others (each venue runs in
its own task).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from tradeops.config import Settings
from tradeops.errors import VenueError
from tradeops.model import OrderRequest, Side, parse_symbol
from tradeops.venues.factory import GuardedVenue

log = logging.getLogger(__name__)


@dataclass
class FlattenReport:
    venue: str
    flat: bool = False
    rounds: int = 0
    orders_canceled: int = 0
    positions_closed: int = 0
    open_positions: int = 0
    open_orders: int = 0
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {
            "venue": self.venue,
            "flat": self.flat,
            "rounds": self.rounds,
            "orders_canceled": self.orders_canceled,
            "positions_closed": self.positions_closed,
            "open_positions": self.open_positions,
            "open_orders": self.open_orders,
            "errors": list(self.errors),
        }


def close_order_id(prefix: str, round_number: int, symbol: str) -> str:
    """A deterministic 32-character client order id for closing ``symbol`` in ``round_number``."""
    return "sl" + hashlib.sha256(f"{prefix}\x1f{round_number}\x1f{symbol}".encode()).hexdigest()[:30]


def _equity_holdings(venue: GuardedVenue, settings: Settings) -> dict[str, Decimal]:
    """symbol -> shares held, for the equity markets of an equity venue."""
    config = settings.venue(venue.name)
    if config.asset_class != "equity":
        return {}
    balances = venue.balances()
    holdings = {}
    for symbol in config.markets:
        base = parse_symbol(symbol)[0]
        held = balances[base].free if base in balances else Decimal(0)
        if held > 0:
            holdings[symbol] = held
    return holdings


def _exit_orders(
    venue: GuardedVenue, settings: Settings, prefix: str, round_number: int
) -> list[tuple[OrderRequest, bool]]:
    """(order, exit_only) pairs that take this venue's exposure to zero."""
    orders = []
    for position in venue.positions():
        if position.size == 0:
            continue
        side = Side.SELL if position.size > 0 else Side.BUY
        request = OrderRequest(
            venue=venue.name,
            symbol=position.symbol,
            side=side,
            amount=abs(position.size),
            client_order_id=close_order_id(prefix, round_number, position.symbol),
            reduce_only=True,
        )
        orders.append((request, False))
    for symbol, shares in _equity_holdings(venue, settings).items():
        request = OrderRequest(
            venue=venue.name,
            symbol=symbol,
            side=Side.SELL,
            amount=shares,
            client_order_id=close_order_id(prefix, round_number, symbol),
        )
        orders.append((request, True))
    return orders


def _round(venue: GuardedVenue, settings: Settings, prefix: str, number: int, report: FlattenReport) -> None:
    for order in venue.open_orders():
        venue.cancel_order(order.client_order_id, order.symbol)
        report.orders_canceled += 1
    for request, exit_only in _exit_orders(venue, settings, prefix, number):
        venue.place_order(request, exit_only=exit_only)
        report.positions_closed += 1


def _measure(venue: GuardedVenue, settings: Settings, report: FlattenReport) -> None:
    report.open_orders = len(venue.open_orders())
    report.open_positions = len([p for p in venue.positions() if p.size != 0]) + len(_equity_holdings(venue, settings))
    report.flat = report.open_orders == 0 and report.open_positions == 0


def flatten_venue(
    venue: GuardedVenue,
    settings: Settings,
    *,
    key_prefix: str,
    max_rounds: int = 5,
    pause_seconds: float = 0.2,
    sleep: Callable[[float], None] = time.sleep,
) -> FlattenReport:
    """Cancel all open orders and close all positions on ``venue``, re-checking until flat."""
    report = FlattenReport(venue=venue.name)
    for number in range(1, max_rounds + 1):
        report.rounds = number
        try:
            _round(venue, settings, key_prefix, number, report)
            _measure(venue, settings, report)
        except VenueError as exc:
            report.errors.append(f"round {number}: {type(exc).__name__}: {exc}")
            log.error("Flattening %s, round %d: %s", venue.name, number, exc)
        if report.flat:
            return report
        sleep(pause_seconds * number)
    return report
