"""Trading state: durable storage and the check every order passes through."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tradeops import risk
from tradeops.config import settings
from tradeops.errors import TradingHaltedError
from tradeops.model import OrderRequest, Side
from tradeops.risk import TradingState, check_order


def _order(side: str, amount: str, symbol: str = "BTC/USDT:USDT", reduce_only: bool = False) -> OrderRequest:
    return OrderRequest(
        venue="bybit",
        symbol=symbol,
        side=Side(side),
        amount=Decimal(amount),
        client_order_id="to1",
        reduce_only=reduce_only,
    )


@pytest.mark.parametrize(
    ("state", "order", "exposure", "exit_only", "allowed"),
    [
        (TradingState.ACTIVE, _order("buy", "1"), Decimal(0), False, True),
        (TradingState.REDUCING, _order("sell", "1"), Decimal("2"), False, True),
        (TradingState.REDUCING, _order("sell", "3"), Decimal("2"), False, False),  # would flip short
        (TradingState.REDUCING, _order("buy", "1"), Decimal("2"), False, False),
        (TradingState.REDUCING, _order("buy", "1"), Decimal("-2"), False, True),
        (TradingState.REDUCING, _order("buy", "1"), Decimal(0), False, False),
        (TradingState.REDUCING, _order("sell", "1", "BTC/USDT"), Decimal("2"), False, True),
        (TradingState.REDUCING, _order("buy", "1", "BTC/USDT"), Decimal("2"), False, False),
        (TradingState.HALTED, _order("sell", "1"), Decimal("2"), False, False),  # reduces, not reduce-only
        (TradingState.HALTED, _order("sell", "1", reduce_only=True), Decimal("2"), False, True),
        (TradingState.HALTED, _order("buy", "1", reduce_only=True), Decimal("2"), False, False),
        (TradingState.HALTED, _order("sell", "1", "BTC/USDT"), Decimal("2"), True, True),  # compensation
        (TradingState.HALTED, _order("buy", "1", "BTC/USDT"), Decimal("2"), True, False),
    ],
)
def test_check_order_when_state_and_exposure_then_allowed_or_refused(
    state: TradingState, order: OrderRequest, exposure: Decimal, exit_only: bool, allowed: bool
) -> None:
    if allowed:
        check_order(order, state, exposure, exit_only=exit_only)
    else:
        with pytest.raises(TradingHaltedError, match=state.value):
            check_order(order, state, exposure, exit_only=exit_only)


def test_state_when_set_then_durable_with_history(db_url: str) -> None:
    assert risk.get_state().state is TradingState.ACTIVE
    risk.set_state(TradingState.HALTED, reason="stop-loss", changed_by="emergency")
    risk.set_state(TradingState.ACTIVE, reason="resolved", changed_by="alice")

    assert risk.get_state().state is TradingState.ACTIVE
    assert [(h.state, h.changed_by) for h in risk.history()] == [
        (TradingState.ACTIVE, "alice"),
        (TradingState.HALTED, "emergency"),
    ]
    with pytest.raises(ValueError, match="reason"):
        risk.set_state(TradingState.ACTIVE, reason=" ", changed_by="bob")


def test_guarded_venue_when_halted_then_new_exposure_refused_and_exit_allowed(db_url: str) -> None:
    from tradeops.venues.factory import open_venue
    from tradeops.venues.paper import seed_paper_world

    settings.cache_clear()
    seed_paper_world(settings())
    venue = open_venue("bybit")
    venue.place_order(_order("buy", "0.5"))
    risk.set_state(TradingState.HALTED, reason="test", changed_by="test")

    with pytest.raises(TradingHaltedError):
        venue.place_order(
            OrderRequest(
                venue="bybit",
                symbol="BTC/USDT:USDT",
                side=Side.BUY,
                amount=Decimal("0.1"),
                client_order_id="to2",
            )
        )
    venue.place_order(
        OrderRequest(
            venue="bybit",
            symbol="BTC/USDT:USDT",
            side=Side.SELL,
            amount=Decimal("0.5"),
            client_order_id="to3",
            reduce_only=True,
        )
    )
    assert venue.positions() == []
    # A retry of an order the venue already has returns it even while HALTED.
    assert venue.place_order(_order("buy", "0.5")).client_order_id == "to1"
