"""A live venue over ccxt's unified API (one account on one exchange).

Three rules shape this module:

* No ccxt exception escapes. Every public method runs under ``_venue_call``, which maps the
  vendor error onto ``tradeops.errors`` through ``ERROR_RULES`` (a table, most specific first,
  in ``tradeops.venues.ccxt_errors``).
* No retries here. ccxt's own ``maxRetriesOnFailure`` is forced to 0 and nothing loops on
  errors: retry and backoff belong to the saga layer, which knows whether a step is safe to
  repeat. What this adapter does instead is make repeating safe: ``place_order`` looks the
  client id up before acting and returns what already exists (the same id with other
  parameters is an ``IdempotencyKeyReusedError``); ``withdraw`` records every attempt in the
  project database first and never sends while an earlier attempt's outcome is unknown
  (``tradeops.venues.ccxt_transfers``).
* Exchange quirks are data (``QUIRKS``, after freqtrade's ``_ft_has``), not branches.

Credentials are handed to ccxt and never logged: ccxt's debug log of request headers goes to a
logger capped at INFO, and error messages are scrubbed of credential values.
"""

from __future__ import annotations

import decimal
import functools
import hashlib
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Concatenate, ParamSpec, TypeVar

import ccxt
from sqlalchemy import Engine

from tradeops.config import VenueConfig
from tradeops.errors import (
    ConfigError,
    OperationalError,
    VenueError,
)
from tradeops.model import (
    Balance,
    Candle,
    FundingRate,
    Order,
    OrderRequest,
    OrderStatus,
    OrderType,
    Position,
    Side,
    Transfer,
)
from tradeops.venues.base import Venue
from tradeops.venues.ccxt_convert import candle, dec, dec_or_none, from_ms, to_ms
from tradeops.venues.ccxt_errors import ERROR_RULES, ErrorRule, translate_ccxt_error
from tradeops.venues.ccxt_transfers import CcxtWithdrawals, WithdrawalRequest
from tradeops.venues.reuse import check_order_reuse

log = logging.getLogger(__name__)
_ccxt_log = logging.getLogger(f"{__name__}.ccxt")
_ccxt_log.setLevel(logging.INFO)  # ccxt logs request headers (API key, passphrase) at DEBUG

CREDENTIAL_KEYS = frozenset({"apiKey", "secret", "password", "uid"})
Raw = dict[str, Any]
P = ParamSpec("P")
R = TypeVar("R")


def _venue_call(func: Callable[Concatenate[CcxtVenue, P], R]) -> Callable[Concatenate[CcxtVenue, P], R]:
    """Run one public method; translate whatever it raises. Never retries.

    It runs in its own copy of the decimal context: ccxt's ``decimal_to_precision`` sets the
    thread's context to ROUND_HALF_UP with Underflow trapped and leaves it so, which would change
    every later Decimal calculation of the process (money included)."""

    @functools.wraps(func)
    def wrapper(self: CcxtVenue, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            with decimal.localcontext():
                return func(self, *args, **kwargs)
        except VenueError:
            raise
        except Exception as exc:
            raise translate_ccxt_error(exc, venue=self.name, method=func.__name__, secrets=self._secrets) from exc

    return wrapper


# --------------------------------------------------------------------------------------------
# exchange quirks, as data


@dataclass(frozen=True, kw_only=True)
class VenueQuirks:
    """What one exchange does differently. The defaults are the conservative guess."""

    client_id_pattern: str = r"[A-Za-z0-9]{1,32}"  # ids outside it are hashed into it
    fetch_order_by_client_id: bool = False  # fetch_order(params={"clientOrderId": ...}) works
    symbol_required: frozenset[str] = frozenset(
        {"fetch_order", "cancel_order", "fetch_open_orders", "fetch_closed_orders", "fetch_canceled_orders"}
    )
    duplicate_client_id_markers: tuple[str, ...] = ()  # text in an InvalidOrder meaning "id in use"
    withdraw_client_id_param: str | None = None  # withdraw/fetch_withdrawals param carrying our id
    withdrawal_client_id_field: str | None = None  # where a withdrawal row's ``info`` echoes it
    ohlcv_page_limit: int = 100  # candles one request reliably returns


QUIRKS: dict[str, VenueQuirks] = {
    "okx": VenueQuirks(
        fetch_order_by_client_id=True,
        symbol_required=frozenset({"fetch_order", "cancel_order"}),
        duplicate_client_id_markers=('"51016"',),
        withdraw_client_id_param="clientId",
        withdrawal_client_id_field="clientId",
        ohlcv_page_limit=100,  # history-candles answers at most 100
    ),
}


def venue_client_id(client_order_id: str, pattern: str) -> str:
    """``client_order_id`` if the exchange accepts it, else a stable 32-character hash of it."""
    if re.fullmatch(pattern, client_order_id):
        return client_order_id
    return "t" + hashlib.sha256(client_order_id.encode()).hexdigest()[:31]


# --------------------------------------------------------------------------------------------
# ccxt order statuses and lists (amounts and times: tradeops.venues.ccxt_convert)

_BALANCE_KEYS_NOT_ASSETS = frozenset({"info", "timestamp", "datetime", "free", "used", "total", "debt"})
_ORDER_STATUS = {
    "open": OrderStatus.OPEN,
    "closed": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELED,
    "expired": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED,
}
_ORDER_LISTS = (
    ("fetch_open_orders", "fetchOpenOrders"),
    ("fetch_closed_orders", "fetchClosedOrders"),
    ("fetch_canceled_orders", "fetchCanceledOrders"),
)


# --------------------------------------------------------------------------------------------
# building the ccxt exchange


def _build_exchange(name: str, config: VenueConfig, credentials: Mapping[str, str]) -> Any:
    if not config.ccxt_id:
        raise ConfigError(f"venues.{name}.ccxt_id", "a ccxt venue needs ccxt_id")
    exchange_class = getattr(ccxt, config.ccxt_id, None)
    if not (isinstance(exchange_class, type) and issubclass(exchange_class, ccxt.Exchange)):
        raise ConfigError(f"venues.{name}.ccxt_id", f"ccxt has no exchange '{config.ccxt_id}'")
    unknown = set(credentials) - CREDENTIAL_KEYS
    if unknown:
        raise ConfigError(
            f"venues.{name}.credentials", f"unknown keys {sorted(unknown)}; use {sorted(CREDENTIAL_KEYS)}"
        )
    exchange = exchange_class({**credentials, "enableRateLimit": True, "options": dict(config.options)})
    if config.sandbox:
        try:
            exchange.set_sandbox_mode(True)
        except ccxt.BaseError as exc:
            raise ConfigError(f"venues.{name}.sandbox", f"{config.ccxt_id} has no sandbox: {exc}") from None
    return exchange


def _override_api_urls(exchange: Any, urls: Mapping[str, Any]) -> None:
    current = exchange.urls.get("api")
    merged = exchange.deep_extend(current, dict(urls)) if isinstance(current, dict) else dict(urls)
    exchange.urls["api"] = merged


def _credential_values(exchange: Any) -> tuple[str, ...]:
    """What to scrub from error messages (whether we or the caller built the exchange)."""
    values = (getattr(exchange, key, None) for key in sorted(CREDENTIAL_KEYS))
    return tuple(value for value in values if isinstance(value, str) and value)


def _harden(exchange: Any) -> None:
    """No hidden retries, rate limiting on, no request dumps with credentials in the log."""
    exchange.enableRateLimit = True
    exchange.options["maxRetriesOnFailure"] = 0
    exchange.options["maxRetriesOnFailureDelay"] = 0
    exchange.verbose = False
    exchange.logger = _ccxt_log


# --------------------------------------------------------------------------------------------
# the venue


class CcxtVenue(Venue):
    """One account on one exchange through ccxt's unified, synchronous API.

    ``urls`` replaces (deep-merges into) the exchange's ``urls['api']``; tests point it at a
    local server. ``exchange`` injects a ready ccxt instance instead of building one.
    ``withdrawal_addresses`` maps ``(to_venue, asset, network)`` to a deposit address.

    Not thread-safe (one ccxt session per instance): use one instance per task or worker.
    """

    def __init__(
        self,
        name: str,
        config: VenueConfig,
        *,
        credentials: Mapping[str, str] | None = None,
        urls: Mapping[str, Any] | None = None,
        exchange: Any | None = None,
        withdrawal_addresses: Mapping[tuple[str, str, str], str] | None = None,
        withdrawal_history_lag_seconds: float = 120,
        engine: Engine | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self._exchange = exchange if exchange is not None else _build_exchange(name, config, credentials or {})
        self._secrets = _credential_values(self._exchange)
        if urls:
            _override_api_urls(self._exchange, urls)
        _harden(self._exchange)
        self.quirks = QUIRKS.get(self._exchange.id, VenueQuirks())
        self._client_ids: dict[str, str] = {}  # venue-side client id -> ours
        self._withdrawals = CcxtWithdrawals(
            venue=name,
            exchange=self._exchange,
            config=config,
            addresses=withdrawal_addresses or {},
            client_id_param=self.quirks.withdraw_client_id_param,
            client_id_field=self.quirks.withdrawal_client_id_field,
            venue_transfer_id=self._venue_transfer_id,
            history_lag=timedelta(seconds=withdrawal_history_lag_seconds),
            engine=engine,
        )

    @property
    def exchange(self) -> Any:
        """The underlying ccxt exchange (for diagnostics and tests)."""
        return self._exchange

    def __repr__(self) -> str:
        return f"CcxtVenue(name={self.name!r}, exchange={self._exchange.id!r})"

    @_venue_call
    def load_markets(self) -> None:
        """Load markets now rather than inside the first call (optional warm-up)."""
        self._exchange.load_markets()

    # ---- account ---------------------------------------------------------------------------

    @_venue_call
    def balances(self) -> dict[str, Balance]:
        raw = self._exchange.fetch_balance()
        return {
            asset: Balance(venue=self.name, asset=asset, free=dec(entry.get("free")), used=dec(entry.get("used")))
            for asset, entry in raw.items()
            if asset not in _BALANCE_KEYS_NOT_ASSETS and isinstance(entry, dict)
        }

    @_venue_call
    def positions(self) -> list[Position]:
        self._exchange.load_markets()
        found = [self._position(raw) for raw in self._exchange.fetch_positions() if self._is_linear_perp(raw)]
        return [position for position in found if position.size != 0]

    def _is_linear_perp(self, raw: Raw) -> bool:
        market = self._exchange.markets.get(raw.get("symbol")) or {}
        return bool(market.get("swap") and market.get("linear"))

    def _position(self, raw: Raw) -> Position:
        size = dec(raw.get("contracts")) * dec(raw.get("contractSize"), Decimal(1))
        return Position(
            venue=self.name,
            symbol=raw["symbol"],
            size=-size if raw.get("side") == "short" else size,
            entry_price=dec(raw.get("entryPrice")),
            mark_price=dec(raw.get("markPrice")),
            unrealized_pnl=dec(raw.get("unrealizedPnl")),
        )

    # ---- market data -----------------------------------------------------------------------

    @_venue_call
    def mark_price(self, symbol: str) -> Decimal:
        market = self._market(symbol)
        if market.get("contract") and self._exchange.has.get("fetchMarkPrice"):
            ticker = self._exchange.fetch_mark_price(symbol)
        else:
            ticker = self._exchange.fetch_ticker(symbol)
        price = next((ticker.get(key) for key in ("markPrice", "last", "close") if ticker.get(key)), None)
        if price is None:
            raise OperationalError(f"venue '{self.name}' mark_price(): no price for {symbol} in the ticker")
        return dec(price)

    @_venue_call
    def funding_rates(self, symbols: list[str] | None = None) -> dict[str, FundingRate]:
        wanted = self._perp_symbols(symbols)
        if not wanted:
            return {}
        if self._exchange.has.get("fetchFundingRates"):
            raw = self._exchange.fetch_funding_rates(wanted)
        else:
            raw = {symbol: self._exchange.fetch_funding_rate(symbol) for symbol in wanted}
        answered = {symbol: raw[symbol] for symbol in wanted if symbol in raw}
        intervals = self._intervals(answered)
        return {symbol: self._funding_rate(symbol, answer, intervals[symbol]) for symbol, answer in answered.items()}

    def _perp_symbols(self, symbols: list[str] | None) -> list[str]:
        """The symbols asked for; else the configured perps; else every linear perp listed."""
        if symbols is not None:
            return list(symbols)
        configured = [market for market in self.config.markets if ":" in market]
        if configured:
            return configured
        self._exchange.load_markets()
        return [s for s, m in self._exchange.markets.items() if m.get("swap") and m.get("linear")]

    def _funding_rate(self, symbol: str, raw: Raw, interval_hours: int) -> FundingRate:
        return FundingRate(
            venue=self.name,
            symbol=symbol,
            rate=dec(raw.get("fundingRate")),
            interval_hours=interval_hours,
            mark_price=dec_or_none(raw.get("markPrice")),
            next_funding_at=from_ms(raw.get("fundingTimestamp") or raw.get("nextFundingTimestamp")),
        )

    def _intervals(self, raw: Mapping[str, Raw]) -> dict[str, int]:
        """Funding interval per symbol: from the rates' answer, else asked of the venue
        (``fetch_funding_intervals`` / ``fetch_funding_interval`` where it has them), else the
        configured interval of the symbol."""
        hours = {symbol: self._hours(answer.get("interval")) for symbol, answer in raw.items()}
        missing = [symbol for symbol, value in hours.items() if value is None]
        if missing:
            hours.update(self._asked_intervals(missing))
        return {symbol: value or self.config.funding_interval(symbol) for symbol, value in hours.items()}

    def _asked_intervals(self, symbols: list[str]) -> dict[str, int | None]:
        if self._exchange.has.get("fetchFundingIntervals"):
            answers = self._exchange.fetch_funding_intervals(symbols)
            return {symbol: self._hours((answers.get(symbol) or {}).get("interval")) for symbol in symbols}
        if self._exchange.has.get("fetchFundingInterval"):
            fetch = self._exchange.fetch_funding_interval
            return {symbol: self._hours(fetch(symbol).get("interval")) for symbol in symbols}
        return {}

    def _hours(self, interval: str | None) -> int | None:
        """Whole hours of a ccxt interval such as "8h"; None when absent or not whole hours."""
        try:
            seconds = int(self._exchange.parse_timeframe(interval)) if interval else 0
        except (ccxt.BaseError, ValueError, KeyError, TypeError):
            seconds = 0
        if seconds <= 0 or seconds % 3600:
            return None
        return seconds // 3600

    @_venue_call
    def ohlcv(
        self,
        symbol: str,
        timeframe: str = "1h",
        since: datetime | None = None,
        limit: int | None = None,
    ) -> list[Candle]:
        step_ms = int(self._exchange.parse_timeframe(timeframe)) * 1000
        if since is None and limit is None:
            return [candle(row) for row in self._exchange.fetch_ohlcv(symbol, timeframe)]
        start = to_ms(since) if since is not None else self._latest_start(step_ms, limit or 0)
        return [candle(row) for row in self._paginate_ohlcv(symbol, timeframe, start, limit, step_ms)]

    def _latest_start(self, step_ms: int, count: int) -> int:
        return (int(self._exchange.milliseconds()) // step_ms - count + 1) * step_ms

    def _paginate_ohlcv(
        self, symbol: str, timeframe: str, start: int, limit: int | None, step_ms: int
    ) -> list[list[Any]]:
        """Walk forward page by page until ``limit`` candles or a page brings nothing new."""
        by_ts: dict[int, list[Any]] = {}
        cursor = start
        while limit is None or len(by_ts) < limit:
            page = self.quirks.ohlcv_page_limit
            if limit is not None:
                page = min(page, limit - len(by_ts))
            rows = self._exchange.fetch_ohlcv(symbol, timeframe, cursor, page)
            fresh = {int(row[0]): row for row in rows if int(row[0]) >= cursor and int(row[0]) not in by_ts}
            if not fresh:
                break
            by_ts.update(fresh)
            cursor = max(by_ts) + step_ms
        ordered = [by_ts[ts] for ts in sorted(by_ts)]
        return ordered if limit is None else ordered[:limit]

    # ---- orders ----------------------------------------------------------------------------

    @_venue_call
    def place_order(self, request: OrderRequest) -> Order:
        """Look the client order id up first, then place; a "duplicate id" answer also resolves
        to the existing order. So a retry after a timeout (order placed, answer lost) is safe."""
        existing = self._find_order(request.client_order_id, request.symbol)
        if existing is not None:
            log.info(
                "%s: order %s already exists as %s; not placing it again",
                self.name,
                request.client_order_id,
                existing.order_id,
            )
            return check_order_reuse(existing, request, venue=self.name, normalise=self._lot_rounded)
        try:
            raw = self._create_order(request)
        except ccxt.InvalidOrder as exc:
            found = self._find_order(request.client_order_id, request.symbol) if self._is_duplicate(exc) else None
            if found is None:
                raise
            return check_order_reuse(found, request, venue=self.name, normalise=self._lot_rounded)
        log.info(
            "%s: placed %s %s %s %s as %s",
            self.name,
            request.side.value,
            request.amount,
            request.symbol,
            request.client_order_id,
            raw.get("id"),
        )
        return self._placed(raw, request)

    def _create_order(self, request: OrderRequest) -> Raw:
        market = self._market(request.symbol)
        params: dict[str, Any] = {"clientOrderId": self._venue_client_id(request.client_order_id)}
        if request.reduce_only:
            params["reduceOnly"] = True
        price = float(request.price) if request.order_type is OrderType.LIMIT and request.price else None
        amount = request.amount / self._contract_size(market)
        return self._exchange.create_order(
            request.symbol, request.order_type.value, request.side.value, float(amount), price, params
        )

    def _lot_rounded(self, symbol: str, amount: Decimal) -> Decimal:
        """``amount`` (base units) as the venue stores it: in contracts, rounded to the lot size."""
        size = self._contract_size(self._market(symbol))
        return Decimal(self._exchange.amount_to_precision(symbol, float(amount / size))) * size

    @property
    def finds_orders_by_client_id(self) -> bool:  # type: ignore[override]
        """Only exchanges whose fetch_order takes a client id find every order: the open, closed
        and canceled lists that others are searched through are paged and time-limited."""
        return self.quirks.fetch_order_by_client_id

    def _is_duplicate(self, exc: ccxt.InvalidOrder) -> bool:
        text = str(exc)
        return isinstance(exc, ccxt.DuplicateOrderId) or any(m in text for m in self.quirks.duplicate_client_id_markers)

    def _placed(self, raw: Raw, request: OrderRequest) -> Order:
        """The order as the venue now reports it (create answers are often just an id)."""
        if raw.get("status") is not None and raw.get("amount") is not None:
            return self._order(raw)
        found = self._find_order(request.client_order_id, request.symbol)
        if found is not None:
            return found
        return Order(
            venue=self.name,
            order_id=str(raw.get("id") or ""),
            client_order_id=request.client_order_id,
            symbol=request.symbol,
            side=request.side,
            order_type=request.order_type,
            amount=request.amount,
            filled=Decimal(0),
            status=OrderStatus.OPEN,
            price=request.price,
            reduce_only=request.reduce_only,
        )

    @_venue_call
    def get_order(self, client_order_id: str, symbol: str | None = None) -> Order | None:
        return self._find_order(client_order_id, symbol)

    @_venue_call
    def open_orders(self, symbol: str | None = None) -> list[Order]:
        self._exchange.load_markets()
        symbols = self._symbols_for("fetch_open_orders", symbol)
        return [self._order(raw) for each in symbols for raw in self._exchange.fetch_open_orders(each)]

    @_venue_call
    def cancel_order(self, client_order_id: str, symbol: str | None = None) -> Order | None:
        order = self._find_order(client_order_id, symbol)
        if order is None or order.status is not OrderStatus.OPEN:
            return order
        try:
            self._exchange.cancel_order(order.order_id, order.symbol)
            log.info("%s: canceled order %s (%s)", self.name, client_order_id, order.order_id)
        except ccxt.OrderNotFound:
            log.info("%s: order %s was closed before the cancel arrived", self.name, client_order_id)
        return self._find_order(client_order_id, order.symbol)

    def _find_order(self, client_order_id: str, symbol: str | None) -> Order | None:
        self._exchange.load_markets()
        venue_id = self._venue_client_id(client_order_id)
        if self.quirks.fetch_order_by_client_id:
            raw = self._fetch_order_by_client_id(venue_id, symbol)
        else:
            raw = self._search_orders(venue_id, symbol)
        return None if raw is None else self._order(raw)

    def _fetch_order_by_client_id(self, venue_id: str, symbol: str | None) -> Raw | None:
        for each in self._symbols_for("fetch_order", symbol):
            try:
                return self._exchange.fetch_order(None, each, {"clientOrderId": venue_id})
            except ccxt.OrderNotFound:
                continue
        return None

    def _search_orders(self, venue_id: str, symbol: str | None) -> Raw | None:
        """For exchanges whose fetch_order cannot take a client id: scan open, closed, canceled."""
        for method, capability in _ORDER_LISTS:
            if not self._exchange.has.get(capability):
                continue
            for each in self._symbols_for(method, symbol):
                for raw in getattr(self._exchange, method)(each):
                    if raw.get("clientOrderId") == venue_id:
                        return raw
        return None

    def _symbols_for(self, method: str, symbol: str | None) -> list[str | None]:
        if symbol is not None:
            return [symbol]
        if method in self.quirks.symbol_required:
            return list(self.config.markets)
        return [None]

    def _venue_client_id(self, client_id: str) -> str:
        venue_id = venue_client_id(client_id, self.quirks.client_id_pattern)
        self._client_ids[venue_id] = client_id
        return venue_id

    def _order(self, raw: Raw) -> Order:
        size = self._contract_size(self._exchange.markets.get(raw["symbol"]) or {})
        fee = raw.get("fee") or {}
        venue_id = raw.get("clientOrderId") or ""
        return Order(
            venue=self.name,
            order_id=str(raw.get("id") or ""),
            client_order_id=self._client_ids.get(venue_id, venue_id),
            symbol=raw["symbol"],
            side=Side(raw["side"]),
            order_type=OrderType.MARKET if raw.get("type") == "market" else OrderType.LIMIT,
            amount=dec(raw.get("amount")) * size,
            filled=dec(raw.get("filled")) * size,
            status=_ORDER_STATUS.get(raw.get("status") or "open", OrderStatus.OPEN),
            price=dec_or_none(raw.get("price")),
            average_price=dec_or_none(raw.get("average")),
            fee=dec(fee.get("cost")),
            fee_asset=fee.get("currency") or "",
            reduce_only=bool(raw.get("reduceOnly")),
            created_at=from_ms(raw.get("timestamp")),
        )

    def _market(self, symbol: str) -> Raw:
        self._exchange.load_markets()
        return self._exchange.market(symbol)

    @staticmethod
    def _contract_size(market: Raw) -> Decimal:
        """Base units per contract: ccxt amounts on contract markets count contracts."""
        return dec(market.get("contractSize"), Decimal(1)) if market.get("contract") else Decimal(1)

    # ---- transfers (tradeops.venues.ccxt_transfers) ------------------------------------------

    @_venue_call
    def withdraw(
        self,
        *,
        transfer_id: str,
        asset: str,
        amount: Decimal,
        to_venue: str,
        network: str,
    ) -> Transfer:
        return self._withdrawals.withdraw(
            WithdrawalRequest(transfer_id=transfer_id, asset=asset, amount=amount, to_venue=to_venue, network=network)
        )

    @_venue_call
    def get_transfer(self, transfer_id: str) -> Transfer | None:
        return self._withdrawals.find(transfer_id)

    def _venue_transfer_id(self, transfer_id: str) -> str:
        return venue_client_id(transfer_id, self.quirks.client_id_pattern)

    def close(self) -> None:
        session = getattr(self._exchange, "session", None)
        if session is not None:
            session.close()


__all__ = [
    "ERROR_RULES",
    "QUIRKS",
    "CcxtVenue",
    "ErrorRule",
    "VenueQuirks",
    "translate_ccxt_error",
    "venue_client_id",
]
