"""The funding snapshot: what every crypto venue says about the hedge symbols, read once.

``snapshot_funding`` reads funding rates (normalised to one period; each symbol at the interval its
venue reports for it), marks, perp positions and spot holdings. A venue that fails is recorded as
unavailable and the others are still read: no single venue blocks the hedge. The snapshot is
JSON-safe (``to_dict`` / ``from_dict``), so it can travel between Airflow tasks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar, cast

from tradeops.conditions import normalised_rate
from tradeops.config import Settings, VenueConfig
from tradeops.config import settings as load_settings
from tradeops.errors import VenueError
from tradeops.model import MarketKind, Position, parse_symbol, to_jsonable
from tradeops.venues.base import Venue

log = logging.getLogger(__name__)

ZERO = Decimal(0)
R = TypeVar("R")


@dataclass(frozen=True, kw_only=True)
class PerpQuote:
    """One venue's perpetual market at snapshot time; ``position`` is signed (negative = short)."""

    venue: str
    symbol: str
    rate: Decimal
    interval_hours: int
    normalised_rate: Decimal
    mark_price: Decimal
    position: Decimal


@dataclass(frozen=True, kw_only=True)
class SpotHolding:
    """The base asset one venue holds (free + reserved)."""

    venue: str
    asset: str
    amount: Decimal


@dataclass(frozen=True, kw_only=True)
class VenueFailure:
    """A venue that could not be read; ``error`` is the tradeops error class name."""

    venue: str
    error: str
    message: str


PARSERS: dict[str, Callable[[Any], Any]] = {
    "str": str,
    "int": int,
    "bool": bool,
    "Decimal": lambda value: Decimal(str(value)),
}


def parse_record(cls: type[R], data: Mapping[str, Any], parsers: Mapping[str, Callable[[Any], Any]] = PARSERS) -> R:
    """A flat record dataclass back from its ``to_jsonable`` form (``parsers`` by field type name)."""
    return cls(**{f.name: parsers[str(f.type)](data[f.name]) for f in fields(cast(Any, cls))})


@dataclass(frozen=True, kw_only=True)
class FundingSnapshot:
    """What every venue said at ``taken_at``; normalised rates are per ``period_hours``."""

    taken_at: datetime
    period_hours: int
    symbols: tuple[str, ...]
    perps: tuple[PerpQuote, ...] = ()
    spot: tuple[SpotHolding, ...] = ()
    unavailable: tuple[VenueFailure, ...] = ()

    def quotes(self, symbol: str) -> list[PerpQuote]:
        return [quote for quote in self.perps if quote.symbol == symbol]

    def quote(self, venue: str, symbol: str) -> PerpQuote | None:
        return next((q for q in self.perps if q.venue == venue and q.symbol == symbol), None)

    def spot_total(self, asset: str) -> Decimal:
        return sum((holding.amount for holding in self.spot if holding.asset == asset), ZERO)

    def failure(self, venue: str) -> VenueFailure | None:
        return next((failure for failure in self.unavailable if failure.venue == venue), None)

    def to_dict(self) -> dict[str, Any]:
        return cast(dict[str, Any], to_jsonable(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FundingSnapshot:
        return cls(
            taken_at=datetime.fromisoformat(data["taken_at"]),
            period_hours=int(data["period_hours"]),
            symbols=tuple(data["symbols"]),
            perps=tuple(parse_record(PerpQuote, item) for item in data["perps"]),
            spot=tuple(parse_record(SpotHolding, item) for item in data["spot"]),
            unavailable=tuple(parse_record(VenueFailure, item) for item in data["unavailable"]),
        )


def _perp_symbols(symbols: Iterable[str]) -> tuple[str, ...]:
    chosen = tuple(sorted(set(symbols)))
    for symbol in chosen:
        if parse_symbol(symbol)[2] is not MarketKind.PERP:
            raise ValueError(f"'{symbol}' is not a perpetual (BASE/QUOTE:QUOTE)")
    return chosen


def venue_scope(config: VenueConfig, symbols: Sequence[str]) -> tuple[list[str], list[str]]:
    """(perps listed here, base assets of ``symbols`` traded here in any market)."""
    if config.asset_class != "crypto":
        return [], []
    listed = [symbol for symbol in symbols if symbol in config.markets]
    traded = {parse_symbol(market)[0] for market in config.markets}
    assets = sorted({parse_symbol(symbol)[0] for symbol in symbols} & traded)
    return listed, assets


def _quote(venue: Venue, name: str, symbol: str, rates: Mapping[str, Any], size: Decimal, period: int) -> PerpQuote:
    rate = rates.get(symbol)
    if rate is None:
        raise VenueError(f"{name} returned no funding rate for {symbol}")
    mark = rate.mark_price if rate.mark_price is not None else venue.mark_price(symbol)
    return PerpQuote(
        venue=name,
        symbol=symbol,
        rate=rate.rate,
        interval_hours=rate.interval_hours,
        normalised_rate=normalised_rate(rate.rate, rate.interval_hours, period),
        mark_price=mark,
        position=size,
    )


def _sizes(positions: Iterable[Position]) -> dict[str, Decimal]:
    sizes: dict[str, Decimal] = {}
    for position in positions:
        sizes[position.symbol] = sizes.get(position.symbol, ZERO) + position.size
    return sizes


def _read_venue(
    venue: Venue, name: str, listed: list[str], assets: list[str], period: int
) -> tuple[list[PerpQuote], list[SpotHolding]]:
    """Everything the hedge needs from one venue; raises the venue's error if any call fails."""
    balances = venue.balances()
    spot = [
        SpotHolding(venue=name, asset=asset, amount=balances[asset].total if asset in balances else ZERO)
        for asset in assets
    ]
    if not listed:
        return [], spot
    rates = venue.funding_rates(listed)
    sizes = _sizes(venue.positions())
    return [_quote(venue, name, symbol, rates, sizes.get(symbol, ZERO), period) for symbol in listed], spot


def snapshot_funding(
    venues: Mapping[str, Venue], symbols: Sequence[str], *, settings: Settings | None = None
) -> FundingSnapshot:
    """Funding, marks, perp positions and spot holdings of ``symbols`` on every crypto venue.

    A venue is read when it lists one of the perps (rates, marks, positions, spot) or trades the
    base asset in any market (spot only: spot held there needs hedging too). Venues failing with a
    ``VenueError`` are recorded in ``unavailable``; the others are still read.
    """
    settings = settings or load_settings()
    wanted = _perp_symbols(symbols)
    period = settings.thresholds.funding_period_hours
    perps: list[PerpQuote] = []
    spot: list[SpotHolding] = []
    failures: list[VenueFailure] = []
    for name in sorted(venues):
        listed, assets = venue_scope(settings.venue(name), wanted)
        if not assets:
            continue
        try:
            venue_perps, venue_spot = _read_venue(venues[name], name, listed, assets, period)
        except VenueError as exc:
            log.warning("funding snapshot: venue %s unavailable: %s: %s", name, type(exc).__name__, exc)
            failures.append(VenueFailure(venue=name, error=type(exc).__name__, message=str(exc)))
            continue
        perps.extend(venue_perps)
        spot.extend(venue_spot)
    return FundingSnapshot(
        taken_at=datetime.now(UTC),
        period_hours=period,
        symbols=wanted,
        perps=tuple(perps),
        spot=tuple(spot),
        unavailable=tuple(failures),
    )


__all__ = [
    "FundingSnapshot",
    "PerpQuote",
    "SpotHolding",
    "VenueFailure",
    "parse_record",
    "snapshot_funding",
    "venue_scope",
]
