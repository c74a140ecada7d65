"""Open venues by name, wrapped in the guards every caller must go through.

``GuardedVenue`` puts two checks in front of a venue:
- the trading-state check (HALTED / REDUCING) on every order and withdrawal;
- the idempotency check: a client order id / transfer id the venue already has answers only
  the same request (another one raises ``IdempotencyKeyReusedError``);
- the venue's circuit breaker on every call (temporary failures open it; it fails fast).

Live-venue credentials come from a credentials provider: the Airflow layer installs one that
reads Airflow connections; without it, the JSON form of ``AIRFLOW_CONN_<ID>`` is read from the
environment (the same variable Airflow itself would read), so the CLI works outside Airflow.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Engine

from tradeops import risk
from tradeops.config import Settings
from tradeops.config import settings as load_settings
from tradeops.errors import AuthenticationError, CircuitOpenError, TemporaryVenueError
from tradeops.model import (
    Balance,
    Candle,
    FundingRate,
    MarketKind,
    Order,
    OrderRequest,
    Position,
    Transfer,
    parse_symbol,
)
from tradeops.saga.breaker import CircuitBreaker
from tradeops.venues.base import Venue
from tradeops.venues.reuse import check_order_reuse, check_transfer_reuse

if TYPE_CHECKING:
    import pandas as pd

T = TypeVar("T")
CredentialsProvider = Callable[[str], Mapping[str, str]]


def environment_credentials(conn_id: str) -> Mapping[str, str]:
    """Credentials from ``AIRFLOW_CONN_<CONN_ID>`` in Airflow's JSON connection form."""
    raw = os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}")
    if not raw:
        raise AuthenticationError(f"no credentials: Airflow connection '{conn_id}' is not defined")
    try:
        conn = json.loads(raw)
    except json.JSONDecodeError:
        raise AuthenticationError(f"connection '{conn_id}' must use Airflow's JSON form outside Airflow") from None
    extra = conn.get("extra") or {}
    if isinstance(extra, str):
        extra = json.loads(extra)
    creds = {"apiKey": conn.get("login") or "", "secret": conn.get("password") or ""}
    if extra.get("passphrase"):
        creds["password"] = extra["passphrase"]
    return creds


_credentials_provider: CredentialsProvider = environment_credentials


def set_credentials_provider(provider: CredentialsProvider) -> None:
    """Install how live-venue credentials are looked up (the Airflow layer uses connections)."""
    global _credentials_provider
    _credentials_provider = provider


def open_raw_venue(name: str, *, settings: Settings | None = None, engine: Engine | None = None) -> Venue:
    """The venue adapter itself, without guards (for reads that must work while HALTED)."""
    settings = settings or load_settings()
    config = settings.venue(name)
    if config.kind == "paper":
        from tradeops.venues.paper import PaperVenue

        return PaperVenue(name, settings, engine=engine)
    from tradeops.venues.ccxt_venue import CcxtVenue

    if not config.connection_id:
        raise AuthenticationError(f"venue '{name}' is live but has no connection_id")
    return CcxtVenue(
        name,
        config,
        credentials=_credentials_provider(config.connection_id),
        withdrawal_addresses=settings.deposit_addresses(),
        withdrawal_history_lag_seconds=settings.saga.withdrawal_history_lag_seconds,
        engine=engine,
    )


def open_venue(
    name: str,
    *,
    settings: Settings | None = None,
    engine: Engine | None = None,
    clock: Callable[[], datetime] | None = None,
    circuit_breaker: bool = True,
) -> GuardedVenue:
    """The venue every trading path uses: risk-checked and behind its circuit breaker.

    ``circuit_breaker=False`` is for the emergency exit only: flattening keeps calling a venue
    whose breaker is open, because being stuck with positions costs more than a few failed calls.
    """
    settings = settings or load_settings()
    if not circuit_breaker:
        return GuardedVenue(open_raw_venue(name, settings=settings, engine=engine), None, engine=engine)
    breaker_kwargs: dict[str, Any] = {"engine": engine}
    if clock is not None:
        breaker_kwargs["clock"] = clock
    breaker = CircuitBreaker(
        name,
        threshold=settings.saga.breaker_failure_threshold,
        cooldown=timedelta(seconds=settings.saga.breaker_cooldown_seconds),
        **breaker_kwargs,
    )
    return GuardedVenue(open_raw_venue(name, settings=settings, engine=engine), breaker, engine=engine)


class GuardedVenue(Venue):
    """A venue behind the trading-state check and the circuit breaker."""

    def __init__(self, inner: Venue, breaker: CircuitBreaker | None, *, engine: Engine | None = None) -> None:
        self.inner = inner
        self.name = inner.name
        self.breaker = breaker
        self._engine = engine

    def _call(self, method: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if self.breaker is None:
            return method(*args, **kwargs)
        self.breaker.before_call()
        try:
            result = method(*args, **kwargs)
        except CircuitOpenError:
            raise
        except TemporaryVenueError:
            self.breaker.record_failure()
            raise
        except Exception:
            # The venue answered (a rejection is not an outage).
            self.breaker.record_success()
            raise
        self.breaker.record_success()
        return result

    def exposure(self, symbol: str) -> Decimal:
        """Signed perp position, or the held base amount for spot."""
        base, _quote, kind = parse_symbol(symbol)
        if kind is MarketKind.PERP:
            return sum((p.size for p in self.positions() if p.symbol == symbol), Decimal(0))
        balance = self.balances().get(base)
        return balance.total if balance else Decimal(0)

    def place_order(self, request: OrderRequest, *, exit_only: bool = False) -> Order:
        """Place ``request`` unless the venue already has it or the trading state forbids it."""
        existing = self.get_order(request.client_order_id, request.symbol)
        if existing is not None:
            # A retry of an order the venue already has: never act twice, and never answer a
            # different request with it.
            return check_order_reuse(existing, request, venue=self.name)
        state = risk.get_state(self._engine).state
        if state is not risk.TradingState.ACTIVE:
            risk.check_order(request, state, self.exposure(request.symbol), exit_only=exit_only)
        return self._call(self.inner.place_order, request)

    def balances(self) -> dict[str, Balance]:
        return self._call(self.inner.balances)

    def positions(self) -> list[Position]:
        return self._call(self.inner.positions)

    def mark_price(self, symbol: str) -> Decimal:
        return self._call(self.inner.mark_price, symbol)

    def funding_rates(self, symbols: list[str] | None = None) -> dict[str, FundingRate]:
        return self._call(self.inner.funding_rates, symbols)

    def get_order(self, client_order_id: str, symbol: str | None = None) -> Order | None:
        return self._call(self.inner.get_order, client_order_id, symbol)

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        return self._call(self.inner.open_orders, symbol)

    def cancel_order(self, client_order_id: str, symbol: str | None = None) -> Order | None:
        return self._call(self.inner.cancel_order, client_order_id, symbol)

    @property
    def finds_orders_by_client_id(self) -> bool:  # type: ignore[override]
        return self.inner.finds_orders_by_client_id

    def withdraw(
        self,
        *,
        transfer_id: str,
        asset: str,
        amount: Decimal,
        to_venue: str,
        network: str,
        compensation: bool = False,
    ) -> Transfer:
        """Send funds unless the venue already has this transfer or the trading state forbids it.

        While HALTED no funds leave a venue, except the reverse transfers of a saga compensation
        (``compensation=True``): bringing money back home is how a failed rebalance is undone.
        """
        existing = self.get_transfer(transfer_id)
        if existing is not None:
            return check_transfer_reuse(
                existing,
                venue=self.name,
                transfer_id=transfer_id,
                asset=asset,
                amount=amount,
                to_venue=to_venue,
                network=network,
            )
        risk.check_transfer(
            risk.get_state(self._engine).state,
            f"withdrawal {transfer_id} ({amount} {asset} from {self.name} to {to_venue})",
            compensation=compensation,
        )
        return self._call(
            self.inner.withdraw,
            transfer_id=transfer_id,
            asset=asset,
            amount=amount,
            to_venue=to_venue,
            network=network,
        )

    def get_transfer(self, transfer_id: str) -> Transfer | None:
        return self._call(self.inner.get_transfer, transfer_id)

    def ohlcv(
        self, symbol: str, timeframe: str = "1h", since: datetime | None = None, limit: int | None = None
    ) -> list[Candle]:
        return self._call(self.inner.ohlcv, symbol, timeframe, since, limit)

    def bars(self, symbol: str, timeframe: str, start: datetime, end: datetime) -> pd.DataFrame:
        """The inner venue's bars (its own fast range read, if it has one), behind the breaker."""
        return self._call(self.inner.bars, symbol, timeframe, start, end)

    def close(self) -> None:
        self.inner.close()
