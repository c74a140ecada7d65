"""Perpetual funding on the paper exchange.

Funding is paid at boundaries every ``VenueConfig.funding_interval(symbol)`` hours (per symbol),
aligned to midnight UTC (counted from the Unix epoch, which is midnight-aligned for every interval that divides 24).
Accrual is lazy: each venue call first pays every boundary crossed since the last one paid.
That is exact because every change of size, mark or rate is itself a venue call, so the state
seen at accrual time is the state that held at each crossed boundary.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import Connection, insert, select

from tradeops.model import parse_symbol
from tradeops.venues import paper_book as book
from tradeops.venues.paper_book import VenueSpec
from tradeops.venues.paper_tables import funding_payments_table

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, kw_only=True)
class FundingPayment:
    """One funding settlement. ``amount`` is signed: negative paid by us, positive received."""

    venue: str
    symbol: str
    funding_time: datetime
    size: Decimal
    mark_price: Decimal
    rate: Decimal
    amount: Decimal
    asset: str


_FIELDS = tuple(f.name for f in fields(FundingPayment))


def last_boundary(now: datetime, interval_hours: int) -> datetime:
    """The latest funding boundary at or before ``now``."""
    step = timedelta(hours=interval_hours)
    return EPOCH + ((now - EPOCH) // step) * step


def next_boundary(now: datetime, interval_hours: int) -> datetime:
    """The first funding boundary strictly after ``now``."""
    return last_boundary(now, interval_hours) + timedelta(hours=interval_hours)


def boundaries_between(after: datetime, until: datetime, interval_hours: int) -> list[datetime]:
    """Funding boundaries ``t`` with ``after < t <= until``."""
    step = timedelta(hours=interval_hours)
    current = last_boundary(after, interval_hours) + step
    times: list[datetime] = []
    while current <= until:
        times.append(current)
        current += step
    return times


def accrue(conn: Connection, spec: VenueSpec, now: datetime) -> list[FundingPayment]:
    """Pay every funding boundary crossed since the last accrual of each perp market."""
    payments: list[FundingPayment] = []
    for symbol in spec.perp_symbols():
        payments.extend(_accrue_market(conn, spec, symbol, now))
    return payments


def _accrue_market(conn: Connection, spec: VenueSpec, symbol: str, now: datetime) -> list[FundingPayment]:
    market = book.market_row(conn, spec.name, symbol)
    interval = spec.config.funding_interval(symbol)
    if market.funding_accrued_to is None:
        book.update_market(conn, spec.name, symbol, funding_accrued_to=last_boundary(now, interval))
        return []
    times = boundaries_between(market.funding_accrued_to, now, interval)
    if not times:
        return []
    size = book.get_position(conn, spec.name, symbol).size
    rate = market.funding_rate or Decimal(0)
    payments: list[FundingPayment] = []
    if size != 0 and rate != 0:
        quote = parse_symbol(symbol)[1]
        for at in times:
            payments.append(_pay(conn, spec.name, symbol, quote, at, size, market.mark_price, rate))
    book.update_market(conn, spec.name, symbol, funding_accrued_to=times[-1])
    return payments


def _pay(
    conn: Connection,
    venue: str,
    symbol: str,
    quote: str,
    at: datetime,
    size: Decimal,
    mark: Decimal,
    rate: Decimal,
) -> FundingPayment:
    """Longs pay shorts when the rate is positive: the wallet changes by ``-size * mark * rate``."""
    payment = FundingPayment(
        venue=venue,
        symbol=symbol,
        funding_time=at,
        size=size,
        mark_price=mark,
        rate=rate,
        amount=-(size * mark * rate),
        asset=quote,
    )
    conn.execute(insert(funding_payments_table).values(**asdict(payment)))
    book.change_balance(conn, venue, quote, free=payment.amount)
    return payment


def payment_history(conn: Connection, venue: str, symbol: str | None) -> list[FundingPayment]:
    query = select(funding_payments_table).where(funding_payments_table.c.venue == venue)
    if symbol is not None:
        query = query.where(funding_payments_table.c.symbol == symbol)
    rows = conn.execute(query.order_by(funding_payments_table.c.funding_time, funding_payments_table.c.id))
    return [FundingPayment(**{name: getattr(r, name) for name in _FIELDS}) for r in rows]
