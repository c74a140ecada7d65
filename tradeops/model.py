"""Value types of the trading domain. Every amount is a ``Decimal``, never a float."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any


class Side(enum.StrEnum):
    BUY = "buy"
    SELL = "sell"

    @property
    def sign(self) -> int:
        return 1 if self is Side.BUY else -1

    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class OrderType(enum.StrEnum):
    MARKET = "market"
    LIMIT = "limit"


class OrderStatus(enum.StrEnum):
    OPEN = "open"
    FILLED = "filled"
    CANCELED = "canceled"
    EXPIRED = "expired"
    REJECTED = "rejected"


class MarketKind(enum.StrEnum):
    SPOT = "spot"
    PERP = "perp"


class TransferStatus(enum.StrEnum):
    PENDING = "pending"
    SETTLED = "settled"
    FAILED = "failed"


def parse_symbol(symbol: str) -> tuple[str, str, MarketKind]:
    """Split a ccxt unified symbol into (base, quote, kind).

    ``BTC/USDT`` is spot; ``BTC/USDT:USDT`` is a USDT-margined perpetual.
    """
    if "/" not in symbol:
        raise ValueError(f"symbol '{symbol}' is not BASE/QUOTE or BASE/QUOTE:SETTLE")
    base, rest = symbol.split("/", 1)
    if ":" in rest:
        quote, settle = rest.split(":", 1)
        if settle != quote:
            raise ValueError(f"symbol '{symbol}': only linear perpetuals (settle == quote) are supported")
        return base, quote, MarketKind.PERP
    return base, rest, MarketKind.SPOT


@dataclass(frozen=True, kw_only=True)
class Balance:
    venue: str
    asset: str
    free: Decimal
    used: Decimal = Decimal(0)

    @property
    def total(self) -> Decimal:
        return self.free + self.used


@dataclass(frozen=True, kw_only=True)
class Position:
    """A perpetual position. ``size`` is signed: positive long, negative short."""

    venue: str
    symbol: str
    size: Decimal
    entry_price: Decimal
    mark_price: Decimal
    unrealized_pnl: Decimal = Decimal(0)

    @property
    def notional(self) -> Decimal:
        return abs(self.size) * self.mark_price


@dataclass(frozen=True, kw_only=True)
class OrderRequest:
    venue: str
    symbol: str
    side: Side
    amount: Decimal
    client_order_id: str
    order_type: OrderType = OrderType.MARKET
    price: Decimal | None = None
    reduce_only: bool = False

    def __post_init__(self) -> None:
        if self.amount <= 0:
            raise ValueError(f"order amount must be positive, got {self.amount}")
        if self.order_type is OrderType.LIMIT and (self.price is None or self.price <= 0):
            raise ValueError("a limit order needs a positive price")
        if not self.client_order_id:
            raise ValueError("client_order_id is required (idempotency)")


@dataclass(frozen=True, kw_only=True)
class Order:
    venue: str
    order_id: str
    client_order_id: str
    symbol: str
    side: Side
    order_type: OrderType
    amount: Decimal
    filled: Decimal
    status: OrderStatus
    price: Decimal | None = None
    average_price: Decimal | None = None
    fee: Decimal = Decimal(0)
    fee_asset: str = ""
    reduce_only: bool = False
    created_at: datetime | None = None

    @property
    def remaining(self) -> Decimal:
        return self.amount - self.filled


@dataclass(frozen=True, kw_only=True)
class Fill:
    venue: str
    order_id: str
    symbol: str
    side: Side
    amount: Decimal
    price: Decimal
    fee: Decimal
    fee_asset: str
    at: datetime


@dataclass(frozen=True, kw_only=True)
class FundingRate:
    """A funding rate as the venue quotes it: ``rate`` per ``interval_hours``."""

    venue: str
    symbol: str
    rate: Decimal
    interval_hours: int
    mark_price: Decimal | None = None
    next_funding_at: datetime | None = None

    def normalised(self, period_hours: int = 8) -> Decimal:
        """The rate scaled to ``period_hours`` so venues with different intervals compare."""
        return self.rate * Decimal(period_hours) / Decimal(self.interval_hours)


@dataclass(frozen=True, kw_only=True)
class Transfer:
    transfer_id: str
    asset: str
    amount: Decimal
    from_venue: str
    to_venue: str
    network: str
    fee: Decimal
    status: TransferStatus
    created_at: datetime | None = None
    settles_at: datetime | None = None

    @property
    def received(self) -> Decimal:
        return self.amount - self.fee


@dataclass(frozen=True, kw_only=True)
class Candle:
    ts: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal


def to_jsonable(value: Any) -> Any:
    """Convert domain values into JSON-safe structures (Decimal -> str, enums -> value)."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "__dataclass_fields__"):
        return {name: to_jsonable(getattr(value, name)) for name in value.__dataclass_fields__}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    return value


__all__ = [
    "Balance",
    "Candle",
    "Fill",
    "FundingRate",
    "MarketKind",
    "Order",
    "OrderRequest",
    "OrderStatus",
    "OrderType",
    "Position",
    "Side",
    "Transfer",
    "TransferStatus",
    "parse_symbol",
    "to_jsonable",
]
