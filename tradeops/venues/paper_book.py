"""The paper exchange's books: venue locks, balances, marks and positions on one connection.

Every function here runs inside a caller's transaction; callers hold the venue lock
(``lock_venues``) before they write.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Connection, Row, insert, select, update

from tradeops.config import VenueConfig
from tradeops.db import lock_clause
from tradeops.errors import InsufficientFundsError, InvalidOrderError, OperationalError
from tradeops.model import MarketKind, parse_symbol
from tradeops.venues.equity_sessions import ALWAYS_OPEN, SessionModel, waits_for_open
from tradeops.venues.paper_tables import balances_table, markets_table, positions_table, venues_table

ZERO = Decimal(0)
BPS = Decimal(10_000)


@dataclass(frozen=True)
class VenueSpec:
    """A paper venue's name, static configuration and (equity venues) trading sessions."""

    name: str
    config: VenueConfig
    sessions: SessionModel = field(default=ALWAYS_OPEN, compare=False)

    def queues_for_open(self, now: datetime) -> bool:
        """True when an order on this venue placed ``now`` waits for the next regular open."""
        return self.config.asset_class == "equity" and waits_for_open(self.sessions, now)

    def market(self, symbol: str) -> tuple[str, str, MarketKind]:
        """(base, quote, kind) of a symbol listed on this venue, else ``InvalidOrderError``."""
        if symbol not in self.config.markets:
            raise InvalidOrderError(f"{self.name}: unknown symbol '{symbol}'; listed: {', '.join(self.config.markets)}")
        return parse_symbol(symbol)

    def perp_symbols(self) -> list[str]:
        return [m for m in self.config.markets if parse_symbol(m)[2] is MarketKind.PERP]

    def collateral_assets(self) -> set[str]:
        """Quote assets that back perpetual positions (their free balance is the margin wallet)."""
        return {parse_symbol(m)[1] for m in self.perp_symbols()}

    def assets(self) -> set[str]:
        """Every asset this venue can hold."""
        listed = {part for m in self.config.markets for part in parse_symbol(m)[:2]}
        return listed | set(self.config.initial_balances) | set(self.config.withdrawal)

    def fee_rate(self, *, maker: bool) -> Decimal:
        return (self.config.maker_fee_bps if maker else self.config.taker_fee_bps) / BPS


def lock_venues(conn: Connection, names: Iterable[str]) -> None:
    """Lock the venue rows in sorted name order (no deadlock between two-venue transactions)."""
    for name in sorted(set(names)):
        query = select(venues_table.c.name).where(venues_table.c.name == name)
        if lock_clause(conn):
            query = query.with_for_update()
        if conn.execute(query).first() is None:
            raise OperationalError(f"paper venue '{name}' is not seeded; run `tradeops venue seed`")


def venue_exists(conn: Connection, name: str) -> bool:
    return conn.execute(select(venues_table.c.name).where(venues_table.c.name == name)).first() is not None


def next_order_seq(conn: Connection, venue: str) -> int:
    conn.execute(
        update(venues_table).where(venues_table.c.name == venue).values(order_seq=venues_table.c.order_seq + 1)
    )
    return int(conn.execute(select(venues_table.c.order_seq).where(venues_table.c.name == venue)).scalar_one())


def get_balance(conn: Connection, venue: str, asset: str) -> tuple[Decimal, Decimal]:
    """(free, used) of ``asset``; zero when the venue never held it."""
    row = conn.execute(
        select(balances_table.c.free, balances_table.c.used).where(
            balances_table.c.venue == venue, balances_table.c.asset == asset
        )
    ).first()
    return (ZERO, ZERO) if row is None else (row.free, row.used)


def change_balance(conn: Connection, venue: str, asset: str, *, free: Decimal = ZERO, used: Decimal = ZERO) -> None:
    """Add ``free`` and ``used`` (either may be negative) to a balance, creating the row if needed."""
    current_free, current_used = get_balance(conn, venue, asset)
    values = {"free": current_free + free, "used": current_used + used}
    updated = conn.execute(
        update(balances_table).where(balances_table.c.venue == venue, balances_table.c.asset == asset).values(**values)
    ).rowcount
    if not updated:
        conn.execute(insert(balances_table).values(venue=venue, asset=asset, **values))


def all_balances(conn: Connection, venue: str) -> list[Row]:
    query = select(balances_table).where(balances_table.c.venue == venue).order_by(balances_table.c.asset)
    return list(conn.execute(query))


def market_row(conn: Connection, venue: str, symbol: str) -> Row:
    row = conn.execute(
        select(markets_table).where(markets_table.c.venue == venue, markets_table.c.symbol == symbol)
    ).first()
    if row is None:
        raise OperationalError(f"paper venue '{venue}' has no market row for '{symbol}'; re-seed it")
    return row


def mark_of(conn: Connection, venue: str, symbol: str) -> Decimal:
    return market_row(conn, venue, symbol).mark_price


def update_market(conn: Connection, venue: str, symbol: str, **values: object) -> None:
    conn.execute(
        update(markets_table).where(markets_table.c.venue == venue, markets_table.c.symbol == symbol).values(**values)
    )


@dataclass(frozen=True)
class PositionState:
    size: Decimal
    entry_price: Decimal
    realized_pnl: Decimal


def get_position(conn: Connection, venue: str, symbol: str) -> PositionState:
    row = conn.execute(
        select(positions_table).where(positions_table.c.venue == venue, positions_table.c.symbol == symbol)
    ).first()
    if row is None:
        return PositionState(size=ZERO, entry_price=ZERO, realized_pnl=ZERO)
    return PositionState(size=row.size, entry_price=row.entry_price, realized_pnl=row.realized_pnl)


def save_position(conn: Connection, venue: str, symbol: str, state: PositionState) -> None:
    values = {"size": state.size, "entry_price": state.entry_price, "realized_pnl": state.realized_pnl}
    updated = conn.execute(
        update(positions_table)
        .where(positions_table.c.venue == venue, positions_table.c.symbol == symbol)
        .values(**values)
    ).rowcount
    if not updated:
        conn.execute(insert(positions_table).values(venue=venue, symbol=symbol, **values))


def open_positions(conn: Connection, venue: str) -> list[tuple[str, PositionState, Decimal]]:
    """(symbol, state, mark) of every position with a non-zero size, by symbol."""
    rows = conn.execute(
        select(positions_table, markets_table.c.mark_price)
        .join(
            markets_table,
            (markets_table.c.venue == positions_table.c.venue) & (markets_table.c.symbol == positions_table.c.symbol),
        )
        .where(positions_table.c.venue == venue)
        .order_by(positions_table.c.symbol)
    )
    return [
        (
            r.symbol,
            PositionState(size=r.size, entry_price=r.entry_price, realized_pnl=r.realized_pnl),
            r.mark_price,
        )
        for r in rows
        if r.size != 0
    ]


def margin_used(conn: Connection, spec: VenueSpec, quote: str, *, exclude: str | None = None) -> Decimal:
    """Initial margin held by open positions settled in ``quote``: notional at mark / leverage."""
    total = ZERO
    for symbol, state, mark in open_positions(conn, spec.name):
        if symbol != exclude and parse_symbol(symbol)[1] == quote:
            total += abs(state.size) * mark / spec.config.leverage
    return total


def available(conn: Connection, spec: VenueSpec, asset: str) -> Decimal:
    """What can be spent or withdrawn: free balance minus the margin that backs open positions."""
    free, _used = get_balance(conn, spec.name, asset)
    if asset in spec.collateral_assets():
        free -= margin_used(conn, spec, asset)
    return free


def require_available(conn: Connection, spec: VenueSpec, asset: str, needed: Decimal, what: str) -> None:
    have = available(conn, spec, asset)
    if have < needed:
        raise InsufficientFundsError(f"{spec.name}: {what} needs {needed} {asset}, only {have} available")
