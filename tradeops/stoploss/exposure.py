"""What one venue holds, asset by asset, and whether that is flat (the emergency stop's measure).

Flat means: no open order, no perpetual position, and no balance of a non-cash asset above its
dust threshold (``stop_loss.dust``). Cash is every quote asset of the configured markets plus
``stop_loss.cash_assets``; it is what the book is sold into, never sold itself. Crypto spot and
equity shares are the same thing here: balances of a base asset, sold on the venue's spot market.
"""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from tradeops.config import Settings, VenueConfig
from tradeops.model import Balance, MarketKind, Order, Position, parse_symbol
from tradeops.venues.base import Venue

ZERO = Decimal(0)
VenueStatus = Literal["flat", "not_flat", "pending_open"]


@dataclass(frozen=True, kw_only=True)
class AssetExposure:
    """One base asset on one venue: the spot leg, the perp leg and what they add up to."""

    asset: str
    quote: str | None  # the asset ``net_quote`` is counted in; None when no market prices it here
    spot: Decimal  # balance total (free + reserved by open orders)
    spot_free: Decimal
    perp_legs: tuple[tuple[str, Decimal], ...]  # (perp symbol, signed size) of each open position
    mark: Decimal | None
    dust: Decimal

    @property
    def perp(self) -> Decimal:
        return sum((size for _symbol, size in self.perp_legs), ZERO)

    @property
    def net(self) -> Decimal:
        return self.spot + self.perp

    @property
    def net_quote(self) -> Decimal | None:
        if self.net == 0:
            return ZERO
        return None if self.mark is None else self.net * self.mark

    @property
    def spot_open(self) -> bool:
        return self.spot > self.dust

    @property
    def flat(self) -> bool:
        return not self.spot_open and self.perp == 0

    def to_dict(self) -> dict[str, object]:
        net_quote = self.net_quote
        return {
            "asset": self.asset,
            "quote": self.quote,
            "spot": str(self.spot),
            "perp": str(self.perp),
            "net": str(self.net),
            "net_quote": None if net_quote is None else str(net_quote),
            "dust": str(self.dust),
            "flat": self.flat,
        }


@dataclass(frozen=True, kw_only=True)
class VenueState:
    """A venue as read in one round. ``pending_open``: our own exit orders on an equity venue that
    wait for the next regular session (not flat, but nothing more to do until the open)."""

    venue: str
    exposures: tuple[AssetExposure, ...]
    open_orders: tuple[Order, ...]
    pending_open: tuple[Order, ...]
    unsellable: tuple[str, ...]  # assets above dust that no spot market here can sell

    @property
    def flat(self) -> bool:
        return not self.open_orders and not self.pending_open and all(e.flat for e in self.exposures)

    def pending_assets(self) -> set[str]:
        return {parse_symbol(order.symbol)[0] for order in self.pending_open}

    @property
    def actionable(self) -> bool:
        """True while another round can still change something (an order to cancel, a leg to close)."""
        if self.open_orders or any(e.perp != 0 for e in self.exposures):
            return True
        waiting = self.pending_assets() | set(self.unsellable)
        return any(e.spot_open and e.asset not in waiting for e in self.exposures)

    @property
    def status(self) -> VenueStatus:
        if self.flat:
            return "flat"
        if self.pending_open and not self.actionable and not self.unsellable:
            return "pending_open"
        return "not_flat"

    @property
    def open_legs(self) -> int:
        """Perp positions plus spot holdings above dust still open."""
        return sum(int(e.perp != 0) + int(e.spot_open) for e in self.exposures)


def spot_market(config: VenueConfig, asset: str, cash: Set[str]) -> str | None:
    """The first listed spot market selling ``asset`` for a cash asset, or None."""
    for symbol in config.markets:
        base, quote, kind = parse_symbol(symbol)
        if kind is MarketKind.SPOT and base == asset and quote in cash:
            return symbol
    return None


def _asset_exposure(
    venue: Venue, asset: str, balance: Balance | None, perps: list[Position], market: str | None, dust: Decimal
) -> AssetExposure:
    spot = balance.total if balance else ZERO
    perp = sum((p.size for p in perps), ZERO)
    price_symbol = market or (perps[0].symbol if perps else None)
    mark = None
    if perps:
        mark = perps[0].mark_price
    elif market is not None and spot + perp != 0:
        mark = venue.mark_price(market)
    return AssetExposure(
        asset=asset,
        quote=parse_symbol(price_symbol)[1] if price_symbol else None,
        spot=spot,
        spot_free=balance.free if balance else ZERO,
        perp_legs=tuple((p.symbol, p.size) for p in perps),
        mark=mark,
        dust=dust,
    )


def measure(venue: Venue, settings: Settings, own_order_ids: Set[str]) -> VenueState:
    """Read ``venue`` and say what it still holds; ``own_order_ids`` are this stop's exit orders."""
    config = settings.venue(venue.name)
    cash = settings.cash_assets()
    orders = venue.open_orders()
    equity = config.asset_class == "equity"
    pending = tuple(o for o in orders if equity and o.client_order_id in own_order_ids)
    others = tuple(o for o in orders if o not in pending)
    positions = [p for p in venue.positions() if p.size != 0]
    balances = venue.balances()
    perps: dict[str, list[Position]] = {}
    for position in positions:
        perps.setdefault(parse_symbol(position.symbol)[0], []).append(position)
    held = {asset for asset, balance in balances.items() if asset not in cash and balance.total != 0}
    listed = {parse_symbol(symbol)[0] for symbol in config.markets} - cash
    exposures = []
    unsellable = []
    for asset in sorted(held | listed | set(perps)):
        market = spot_market(config, asset, cash)
        exposure = _asset_exposure(
            venue, asset, balances.get(asset), perps.get(asset, []), market, settings.stop_loss.dust_of(asset)
        )
        exposures.append(exposure)
        if exposure.spot_open and market is None:
            unsellable.append(asset)
    return VenueState(
        venue=venue.name,
        exposures=tuple(exposures),
        open_orders=others,
        pending_open=pending,
        unsellable=tuple(unsellable),
    )
