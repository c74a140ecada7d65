"""The ``Venue`` interface every exchange adapter implements (paper or live via ccxt)."""

from __future__ import annotations

import abc
import math
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from tradeops.model import Balance, Candle, FundingRate, Order, OrderRequest, Position, Transfer

if TYPE_CHECKING:
    import pandas as pd

# Bar lengths ``bars`` understands, in minutes.
BAR_MINUTES: dict[str, int] = {"1m": 1, "5m": 5, "15m": 15, "30m": 30, "1h": 60}


class Venue(abc.ABC):
    """One trading venue (one account on one exchange).

    Symbols are ccxt unified symbols: ``BTC/USDT`` (spot), ``BTC/USDT:USDT`` (linear perp).
    Every method raises only ``tradeops.errors`` exceptions.
    """

    name: str
    # True when ``get_order`` finds any order by client id, whatever its status (open, filled,
    # canceled): then "not found" means the venue never had it. Where it is False (only open
    # orders, or a short history, can be searched), "not found" means "unknown".
    finds_orders_by_client_id: bool = True

    @abc.abstractmethod
    def balances(self) -> dict[str, Balance]:
        """Spot/wallet balances by asset."""

    @abc.abstractmethod
    def positions(self) -> list[Position]:
        """Open perpetual positions (size != 0)."""

    @abc.abstractmethod
    def mark_price(self, symbol: str) -> Decimal:
        """Current mark price of ``symbol``."""

    @abc.abstractmethod
    def funding_rates(self, symbols: list[str] | None = None) -> dict[str, FundingRate]:
        """Current funding rate of each perpetual symbol (all when ``symbols`` is None)."""

    @abc.abstractmethod
    def place_order(self, request: OrderRequest) -> Order:
        """Place an order. The same ``client_order_id`` twice returns the first order when the
        request is the same, and raises ``IdempotencyKeyReusedError`` when it differs."""

    @abc.abstractmethod
    def get_order(self, client_order_id: str, symbol: str | None = None) -> Order | None:
        """The order with this client order id, or None when the venue has none."""

    @abc.abstractmethod
    def open_orders(self, symbol: str | None = None) -> list[Order]:
        """Orders still open."""

    @abc.abstractmethod
    def cancel_order(self, client_order_id: str, symbol: str | None = None) -> Order | None:
        """Cancel an open order; returns its final state, or None when there is no such order."""

    @abc.abstractmethod
    def withdraw(
        self,
        *,
        transfer_id: str,
        asset: str,
        amount: Decimal,
        to_venue: str,
        network: str,
    ) -> Transfer:
        """Send ``amount`` of ``asset`` to ``to_venue`` over ``network``; idempotent on ``transfer_id``
        (the same id with other parameters raises ``IdempotencyKeyReusedError``)."""

    @abc.abstractmethod
    def get_transfer(self, transfer_id: str) -> Transfer | None:
        """The transfer with this id, or None."""

    @abc.abstractmethod
    def ohlcv(
        self,
        symbol: str,
        timeframe: str = "1h",
        since: datetime | None = None,
        limit: int | None = None,
    ) -> list[Candle]:
        """Candles, oldest first; implementations paginate as needed."""

    def bars(self, symbol: str, timeframe: str, start: datetime, end: datetime) -> pd.DataFrame:
        """Bars with ``start <= ts < end`` as one frame, oldest first: ``ts`` (UTC, microseconds)
        and float64 ``open, high, low, close, volume``. Market data, not money: amounts stay Decimal.

        By default through ``ohlcv`` (which paginates); venues that can serve a range faster override.
        """
        from tradeops.market_data.frames import candles_to_frame

        if timeframe not in BAR_MINUTES:
            from tradeops.errors import InvalidOrderError

            raise InvalidOrderError(f"{self.name}: timeframe '{timeframe}' is not one of {sorted(BAR_MINUTES)}")
        expected = math.ceil((end - start).total_seconds() / 60 / BAR_MINUTES[timeframe])
        if expected <= 0:
            return candles_to_frame([])
        candles = self.ohlcv(symbol, timeframe, since=start, limit=expected)
        return candles_to_frame([c for c in candles if start <= c.ts < end])

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections. Default: nothing to release."""
