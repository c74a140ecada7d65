"""The deterministic paper venue: a simulated multi-venue exchange kept in the project database.

Each ``PaperVenue`` is one venue of the configuration (``kind: paper``). All state (balances,
marks, positions, orders, fills, funding, transfers, scheduled faults) lives in the ``paper_``
tables, so several processes (Airflow tasks, the CLI, tests) see and change one world safely:
every write holds the venue's lock row, two-venue writes lock in sorted name order.

Every public call first applies what time has made due, using the injected clock: funding at
each crossed boundary and transfers whose settlement time has come. Then it consumes a scheduled
fault, if any (see ``inject_fault``). Order ids look like ``paper-<venue>-<n>``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Concatenate, ParamSpec, TypeVar

from sqlalchemy import Connection, Engine, select
from sqlalchemy.exc import DBAPIError, IntegrityError

from tradeops.config import Settings, VenueConfig
from tradeops.config import settings as load_default_settings
from tradeops.db import get_engine, transaction, utcnow
from tradeops.errors import ConfigError, InvalidOrderError, OperationalError, TemporaryVenueError
from tradeops.market_data.calendars import calendar_for
from tradeops.model import (
    Balance,
    Candle,
    Fill,
    FundingRate,
    MarketKind,
    Order,
    OrderRequest,
    OrderStatus,
    Position,
    Transfer,
)
from tradeops.venues import paper_bars
from tradeops.venues import paper_book as book
from tradeops.venues import paper_faults as faults
from tradeops.venues import paper_funding as funding
from tradeops.venues import paper_ohlcv as ohlcv_gen
from tradeops.venues import paper_trading as trading
from tradeops.venues import paper_transfers as transfers
from tradeops.venues.base import Venue
from tradeops.venues.equity_sessions import session_model
from tradeops.venues.paper_book import VenueSpec
from tradeops.venues.paper_faults import FaultError, FaultPhase
from tradeops.venues.paper_funding import FundingPayment
from tradeops.venues.paper_seed import seed_paper_world
from tradeops.venues.paper_tables import PAPER_TABLES, fills_table, orders_table
from tradeops.venues.reuse import check_order_reuse, check_transfer_reuse

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

_FAULTABLE: set[str] = set()
_TRANSIENT_DB_ERRORS = ("locked", "deadlock", "could not serialize", "connection")


@contextmanager
def _database_errors(venue: str) -> Iterator[None]:
    """Map database failures onto tradeops errors (venue methods raise only those)."""
    try:
        yield
    except DBAPIError as exc:
        detail = str(exc.orig)
        if any(word in detail.lower() for word in _TRANSIENT_DB_ERRORS):
            raise TemporaryVenueError(f"paper venue {venue}: database busy: {detail}") from exc
        if "no such table" in detail.lower() or "does not exist" in detail.lower():
            detail += " (migrate the project database and seed the paper venue: `tradeops init`)"
        raise OperationalError(f"paper venue {venue}: database error: {detail}") from exc


def _venue_call(
    *, housekeeping: bool = True
) -> Callable[[Callable[Concatenate[PaperVenue, P], R]], Callable[Concatenate[PaperVenue, P], R]]:
    """Wrap a public method: apply due funding/transfers, then honour a scheduled fault."""

    def decorate(method: Callable[Concatenate[PaperVenue, P], R]) -> Callable[Concatenate[PaperVenue, P], R]:
        _FAULTABLE.add(method.__name__)

        @functools.wraps(method)
        def wrapper(self: PaperVenue, *args: P.args, **kwargs: P.kwargs) -> R:
            with _database_errors(self.name):
                fault = self._enter(method.__name__, housekeeping=housekeeping)
                if fault is not None and fault.phase == "before":
                    raise fault.exception()
                result = method(self, *args, **kwargs)
            if fault is not None:
                raise fault.exception()
            return result

        return wrapper

    return decorate


def _require_finite_positive(value: Decimal, what: str) -> None:
    if not value.is_finite() or value <= 0:
        raise InvalidOrderError(f"{what} must be a positive finite number, got {value}")


class PaperVenue(Venue):
    """One simulated venue; see the module docstring for the model."""

    def __init__(
        self,
        name: str,
        settings: Settings,
        *,
        engine: Engine | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        config = settings.venue(name)
        if config.kind != "paper":
            raise ConfigError(f"venues.{name}.kind", f"PaperVenue needs kind 'paper', got '{config.kind}'")
        self.name = name
        self._settings = settings
        self._spec = VenueSpec(name, config, sessions=session_model(settings.paper.equity_sessions))
        self._engine = engine or get_engine()
        self._clock = clock

    def __repr__(self) -> str:
        return f"PaperVenue({self.name!r}, engine={self._engine.url!r})"

    @property
    def config(self) -> VenueConfig:
        return self._spec.config

    # -- plumbing -------------------------------------------------------------------------------

    def _now(self) -> datetime:
        now = self._clock()
        if now.tzinfo is None:
            raise ValueError("the paper venue clock returned a naive datetime; it must be timezone-aware")
        return now.astimezone(UTC)

    def _enter(self, method: str, *, housekeeping: bool) -> faults.Fault | None:
        if not housekeeping:
            # reads that need no housekeeping take the venue's lock only when a fault waits
            with transaction(self._engine) as conn:
                if not faults.scheduled(conn, self.name, method):
                    return None
        with transaction(self._engine) as conn:
            if housekeeping:
                self._housekeep(conn)
            else:
                book.lock_venues(conn, [self.name])
            return faults.pop(conn, self.name, method)

    def _housekeep(self, conn: Connection) -> tuple[list[FundingPayment], list[Transfer]]:
        """Settle due transfers touching this venue and pay crossed funding boundaries."""
        now = self._now()
        names = {self.name} | transfers.due_counterparties(conn, self.name, now)
        book.lock_venues(conn, names)
        settled = transfers.settle_due(conn, self.name, names, now)
        return funding.accrue(conn, self._spec, now), settled

    @contextmanager
    def _locked(self) -> Iterator[Connection]:
        """A transaction holding this venue's lock row."""
        with transaction(self._engine) as conn:
            book.lock_venues(conn, [self.name])
            yield conn

    def _perp(self, symbol: str) -> None:
        if self._spec.market(symbol)[2] is not MarketKind.PERP:
            raise InvalidOrderError(f"{self.name}: '{symbol}' is not a perpetual market")

    # -- balances, positions, prices ------------------------------------------------------------

    @_venue_call()
    def balances(self) -> dict[str, Balance]:
        """Balances as an exchange reports them: the initial margin of open positions is ``used``
        (what ``paper_book.available`` keeps back), not ``free``; the total is unchanged."""
        collateral = self._spec.collateral_assets()
        with transaction(self._engine) as conn:
            rows = book.all_balances(conn, self.name)
            margin = {r.asset: book.margin_used(conn, self._spec, r.asset) for r in rows if r.asset in collateral}
        return {
            r.asset: Balance(
                venue=self.name,
                asset=r.asset,
                free=r.free - margin.get(r.asset, Decimal(0)),
                used=r.used + margin.get(r.asset, Decimal(0)),
            )
            for r in rows
        }

    @_venue_call()
    def positions(self) -> list[Position]:
        with transaction(self._engine) as conn:
            items = book.open_positions(conn, self.name)
        return [
            Position(
                venue=self.name,
                symbol=symbol,
                size=state.size,
                entry_price=state.entry_price,
                mark_price=mark,
                unrealized_pnl=state.size * (mark - state.entry_price),
            )
            for symbol, state, mark in items
        ]

    @_venue_call()
    def mark_price(self, symbol: str) -> Decimal:
        self._spec.market(symbol)
        with transaction(self._engine) as conn:
            return book.mark_of(conn, self.name, symbol)

    @_venue_call()
    def set_mark_price(self, symbol: str, price: Decimal) -> list[Order]:
        """Move the mark price; resting limit orders it crosses fill (returned, oldest first)."""
        self._spec.market(symbol)
        _require_finite_positive(price, f"{self.name}: mark price of {symbol}")
        with self._locked() as conn:
            book.update_market(conn, self.name, symbol, mark_price=price)
            return trading.match_resting(conn, self._spec, symbol, self._now())

    @_venue_call()
    def funding_rates(self, symbols: list[str] | None = None) -> dict[str, FundingRate]:
        wanted = self._spec.perp_symbols() if symbols is None else symbols
        for symbol in wanted:
            self._perp(symbol)
        with transaction(self._engine) as conn:
            return {symbol: self._funding_rate(conn, symbol) for symbol in wanted}

    def _funding_rate(self, conn: Connection, symbol: str) -> FundingRate:
        market = book.market_row(conn, self.name, symbol)
        interval = self.config.funding_interval(symbol)
        return FundingRate(
            venue=self.name,
            symbol=symbol,
            rate=market.funding_rate or Decimal(0),
            interval_hours=interval,
            mark_price=market.mark_price,
            next_funding_at=funding.next_boundary(self._now(), interval),
        )

    @_venue_call()
    def set_funding_rate(self, symbol: str, rate: Decimal) -> FundingRate:
        """Set the rate paid at the next boundaries (boundaries already crossed used the old one)."""
        self._perp(symbol)
        if not rate.is_finite():
            raise InvalidOrderError(f"{self.name}: funding rate must be finite, got {rate}")
        with self._locked() as conn:
            book.update_market(conn, self.name, symbol, funding_rate=rate)
            return self._funding_rate(conn, symbol)

    @_venue_call(housekeeping=False)
    def accrue_funding(self) -> list[FundingPayment]:
        """Pay every funding boundary crossed since the last accrual; returns the payments made."""
        with transaction(self._engine) as conn:
            payments, _settled = self._housekeep(conn)
        return payments

    @_venue_call()
    def funding_payments(self, symbol: str | None = None) -> list[FundingPayment]:
        """Funding paid or received so far, oldest first."""
        with transaction(self._engine) as conn:
            return funding.payment_history(conn, self.name, symbol)

    # -- orders ---------------------------------------------------------------------------------

    def _validate_request(self, request: OrderRequest) -> None:
        if request.venue != self.name:
            raise InvalidOrderError(
                f"order {request.client_order_id} is for venue '{request.venue}', not '{self.name}'"
            )
        kind = self._spec.market(request.symbol)[2]
        _require_finite_positive(request.amount, f"order {request.client_order_id} amount")
        if request.price is not None:
            _require_finite_positive(request.price, f"order {request.client_order_id} price")
        if request.reduce_only and kind is not MarketKind.PERP:
            raise InvalidOrderError(f"order {request.client_order_id}: reduce_only applies to perpetuals only")

    @_venue_call()
    def place_order(self, request: OrderRequest) -> Order:
        self._validate_request(request)
        try:
            with self._locked() as conn:
                row = trading.find_order_row(conn, self.name, request.client_order_id)
                if row is None:
                    return trading.place(conn, self._spec, request, self._now())
        except IntegrityError:
            # The unique (venue, client_order_id) fired: another writer got there first.
            with transaction(self._engine) as conn:
                row = trading.find_order_row(conn, self.name, request.client_order_id)
            if row is None:
                raise
        return check_order_reuse(trading.order_from_row(row), request, venue=self.name)

    @_venue_call()
    def get_order(self, client_order_id: str, symbol: str | None = None) -> Order | None:
        with transaction(self._engine) as conn:
            row = trading.find_order_row(conn, self.name, client_order_id)
        if row is None or (symbol is not None and row.symbol != symbol):
            return None
        return trading.order_from_row(row)

    @_venue_call()
    def open_orders(self, symbol: str | None = None) -> list[Order]:
        return self._orders(symbol, status=OrderStatus.OPEN, limit=None)

    @_venue_call()
    def recent_orders(self, symbol: str | None = None, limit: int = 50) -> list[Order]:
        """The newest ``limit`` orders of any status, newest first."""
        if limit < 1:
            raise InvalidOrderError(f"limit must be at least 1, got {limit}")
        return self._orders(symbol, status=None, limit=limit)

    def _orders(self, symbol: str | None, *, status: OrderStatus | None, limit: int | None) -> list[Order]:
        if symbol is not None:
            self._spec.market(symbol)
        query = select(orders_table).where(orders_table.c.venue == self.name)
        if symbol is not None:
            query = query.where(orders_table.c.symbol == symbol)
        if status is not None:
            query = query.where(orders_table.c.status == status.value).order_by(orders_table.c.seq)
        else:
            query = query.order_by(orders_table.c.seq.desc()).limit(limit)
        with transaction(self._engine) as conn:
            return [trading.order_from_row(r) for r in conn.execute(query)]

    @_venue_call()
    def cancel_order(self, client_order_id: str, symbol: str | None = None) -> Order | None:
        with self._locked() as conn:
            row = trading.find_order_row(conn, self.name, client_order_id)
            if row is None or (symbol is not None and row.symbol != symbol):
                return None
            trading.cancel(conn, self._spec, row, self._now())
            return trading.order_from_row(trading.find_order_row(conn, self.name, client_order_id))

    @_venue_call()
    def fills(self, symbol: str | None = None) -> list[Fill]:
        query = select(fills_table).where(fills_table.c.venue == self.name)
        if symbol is not None:
            query = query.where(fills_table.c.symbol == symbol)
        with transaction(self._engine) as conn:
            return [trading.fill_from_row(r) for r in conn.execute(query.order_by(fills_table.c.id))]

    # -- transfers ------------------------------------------------------------------------------

    @_venue_call()
    def withdraw(
        self,
        *,
        transfer_id: str,
        asset: str,
        amount: Decimal,
        to_venue: str,
        network: str,
    ) -> Transfer:
        if not transfer_id:
            raise InvalidOrderError("transfer_id is required (idempotency)")
        _require_finite_positive(amount, f"withdrawal {transfer_id} amount")
        try:
            with self._locked() as conn:
                row = transfers.find_transfer(conn, transfer_id)
                if row is None:
                    route = transfers.validate_route(
                        self._settings,
                        self._spec,
                        asset=asset,
                        amount=amount,
                        to_venue=to_venue,
                        network=network,
                    )
                    return transfers.create(
                        conn,
                        self._spec,
                        route,
                        transfer_id=transfer_id,
                        asset=asset,
                        amount=amount,
                        to_venue=to_venue,
                        network=network,
                        now=self._now(),
                    )
        except IntegrityError:
            with transaction(self._engine) as conn:
                row = transfers.find_transfer(conn, transfer_id)
            if row is None:
                raise
        return check_transfer_reuse(
            transfers.transfer_from_row(row),
            venue=self.name,
            transfer_id=transfer_id,
            asset=asset,
            amount=amount,
            to_venue=to_venue,
            network=network,
        )

    @_venue_call()
    def get_transfer(self, transfer_id: str) -> Transfer | None:
        """The transfer if this venue sends or receives it, else None."""
        with transaction(self._engine) as conn:
            row = transfers.find_transfer(conn, transfer_id)
        if row is None or self.name not in (row.from_venue, row.to_venue):
            return None
        return transfers.transfer_from_row(row)

    @_venue_call(housekeeping=False)
    def settle_transfers(self) -> list[Transfer]:
        """Settle the due transfers this venue sends or receives; returns those settled now."""
        with transaction(self._engine) as conn:
            _payments, settled = self._housekeep(conn)
        return settled

    # -- history --------------------------------------------------------------------------------

    @_venue_call()
    def ohlcv(
        self,
        symbol: str,
        timeframe: str = "1h",
        since: datetime | None = None,
        limit: int | None = None,
    ) -> list[Candle]:
        """Seeded hourly candles for ``paper.ohlcv_days`` up to the current hour, oldest first."""
        self._spec.market(symbol)
        if timeframe != "1h":
            raise InvalidOrderError(f"{self.name}: timeframe '{timeframe}' is not supported; paper venues serve '1h'")
        if limit is not None and limit < 1:
            raise InvalidOrderError(f"limit must be at least 1, got {limit}")
        if since is not None and since.tzinfo is None:
            raise InvalidOrderError("since must be a timezone-aware datetime")
        with transaction(self._engine) as conn:
            mark = book.mark_of(conn, self.name, symbol)
        paper = self._settings.paper
        candles = ohlcv_gen.generate(
            seed=paper.seed,
            symbol=symbol,
            mark=mark,
            now=self._now(),
            days=paper.ohlcv_days,
            volatility_bps=paper.volatility_bps,
        )
        return ohlcv_gen.select_window(candles, since, limit)

    @_venue_call(housekeeping=False)
    def bars(self, symbol: str, timeframe: str, start: datetime, end: datetime) -> pd.DataFrame:
        """Seeded bars of any range, computed (not stored): see ``tradeops.venues.paper_bars``."""
        self._spec.market(symbol)
        if timeframe not in paper_bars.TIMEFRAME_MINUTES:
            raise InvalidOrderError(
                f"{self.name}: timeframe '{timeframe}' is not one of {sorted(paper_bars.TIMEFRAME_MINUTES)}"
            )
        config = self._spec.config
        level = paper_bars.base_price(symbol, dict(self._settings.paper.prices))
        level *= 1 + float(config.price_offset_bps) / 10_000
        minutes = paper_bars.minute_bars(
            seed=self._settings.paper.seed,
            venue=self.name,
            symbol=symbol,
            level=level,
            calendar=calendar_for(config.asset_class),
            start=start,
            end=end,
        )
        minutes = paper_bars.apply_faults(minutes, self.name, symbol, self._settings.paper.data_faults)
        return paper_bars.aggregate(minutes, timeframe)

    # -- scheduled faults -----------------------------------------------------------------------

    def inject_fault(
        self, method: str, error: FaultError, times: int = 1, phase: FaultPhase = "before", skip: int = 0
    ) -> None:
        """Make the next ``times`` calls of ``method`` on this venue raise ``error``, after letting
        the first ``skip`` calls through (to fail the second transfer of a saga, say).

        ``phase="after"`` applies and commits the call's effect first, then raises: the caller
        cannot tell whether it happened, as after a timeout. Stored in the database, so a fault
        injected here also hits other processes using this venue.
        """
        faults.validate(method, error, times, phase, FAULTABLE_METHODS)
        if skip < 0:
            raise ValueError(f"skip must not be negative, got {skip}")
        with self._locked() as conn:
            faults.inject(conn, self.name, method, error, times, phase, self._now(), skip)

    def clear_faults(self) -> int:
        """Drop every scheduled fault of this venue; returns how many schedules were dropped."""
        with self._locked() as conn:
            return faults.clear(conn, self.name)


FAULTABLE_METHODS: frozenset[str] = frozenset(_FAULTABLE)


def open_paper_venue(name: str, settings: Settings | None = None, engine: Engine | None = None) -> PaperVenue:
    """A ``PaperVenue`` for ``name`` with the process settings and default engine unless given."""
    return PaperVenue(name, settings or load_default_settings(), engine=engine)


__all__ = [
    "FAULTABLE_METHODS",
    "PAPER_TABLES",
    "FundingPayment",
    "PaperVenue",
    "open_paper_venue",
    "seed_paper_world",
]
