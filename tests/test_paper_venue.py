"""The deterministic paper venue: fills, fees, margin, funding, transfers, OHLCV, faults, CLI.

Numbers come from config/tradeops.yaml: binance taker 5 bps / maker 2 bps, 8 h funding, BTC at
65000; bybit taker 5.5 bps, +3 bps price offset (BTC 65019.5), 4 h funding; leverage 5.
"""

from __future__ import annotations

import argparse
import itertools
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest
from sqlalchemy import Engine, func, select

from tests import paper_workers
from tests.fixtures.paper import T0
from tradeops.cli import venue_cmds
from tradeops.config import Settings, load_settings
from tradeops.db import get_engine, transaction
from tradeops.errors import (
    ConfigError,
    InsufficientFundsError,
    InvalidOrderError,
    OperationalError,
    TemporaryVenueError,
    TradeopsError,
)
from tradeops.model import OrderRequest, OrderStatus, OrderType, Side, TransferStatus, to_jsonable
from tradeops.venues import factory, paper_trading
from tradeops.venues.paper import FAULTABLE_METHODS, PaperVenue, open_paper_venue, seed_paper_world
from tradeops.venues.paper_tables import fills_table, orders_table

BTC = "BTC/USDT"
BTC_PERP = "BTC/USDT:USDT"
ETH_PERP = "ETH/USDT:USDT"


@pytest.fixture
def engine(db_url: str, settings: Settings) -> Engine:
    engine = get_engine(db_url)
    assert seed_paper_world(settings, engine) is True
    return engine


def request(venue: PaperVenue, symbol: str, side: Side, amount: str, cid: str, **kwargs: object) -> OrderRequest:
    return OrderRequest(venue=venue.name, symbol=symbol, side=side, amount=D(amount), client_order_id=cid, **kwargs)


def buy(venue: PaperVenue, symbol: str, amount: str, cid: str, **kwargs: object):
    return venue.place_order(request(venue, symbol, Side.BUY, amount, cid, **kwargs))


def sell(venue: PaperVenue, symbol: str, amount: str, cid: str, **kwargs: object):
    return venue.place_order(request(venue, symbol, Side.SELL, amount, cid, **kwargs))


def limit(price: str) -> dict[str, object]:
    return {"order_type": OrderType.LIMIT, "price": D(price)}


def free(venue: PaperVenue, asset: str) -> D:
    return venue.balances()[asset].free


def used(venue: PaperVenue, asset: str) -> D:
    return venue.balances()[asset].used


def total(venue: PaperVenue, asset: str) -> D:
    return venue.balances()[asset].total


def count_rows(engine: Engine, table: object) -> int:
    with transaction(engine) as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


# -- spot orders ---------------------------------------------------------------------------------


def test_market_buy_when_funds_suffice_then_fills_at_mark_with_taker_fee(binance):
    order = buy(binance, BTC, "0.5", "c1")

    assert order.status is OrderStatus.FILLED
    assert order.order_id == "paper-binance-1"
    assert (order.filled, order.average_price, order.fee, order.fee_asset) == (
        D("0.5"),
        D(65000),
        D("16.25"),
        "USDT",
    )
    assert free(binance, "USDT") == D("367483.75")  # 400000 - 32500 - 16.25
    assert free(binance, "BTC") == D("2.5")
    [fill] = binance.fills()
    assert (fill.order_id, fill.amount, fill.price, fill.fee, fill.at) == (
        order.order_id,
        D("0.5"),
        D(65000),
        D("16.25"),
        T0,
    )


def test_market_sell_when_venue_has_price_offset_then_fills_at_offset_mark_with_its_fee(bybit):
    order = sell(bybit, BTC, "1", "c1")

    assert order.average_price == D("65019.5")
    assert order.fee == D("35.760725")  # 65019.5 * 5.5 / 10000
    assert free(bybit, "USDT") == D("364983.739275")
    assert free(bybit, "BTC") == 0


def test_market_buy_when_quote_short_then_insufficient_funds_and_nothing_written(binance, engine):
    with pytest.raises(InsufficientFundsError, match="USDT"):
        buy(binance, BTC, "7", "c1")  # 455000 USDT > 400000

    assert free(binance, "USDT") == D(400000)
    assert binance.get_order("c1") is None
    assert count_rows(engine, fills_table) == 0
    assert buy(binance, BTC, "0.1", "c2").order_id == "paper-binance-1"  # the failed order used no id


def test_market_sell_when_base_short_then_insufficient_funds(binance):
    with pytest.raises(InsufficientFundsError, match="BTC"):
        sell(binance, BTC, "2.5", "c1")

    assert free(binance, "BTC") == D(2)


@pytest.mark.parametrize(
    ("venue_name", "symbol", "extra", "message"),
    [
        ("binance", "DOGE/USDT", {}, "unknown symbol"),
        ("bybit", BTC, {}, "for venue 'bybit'"),
        ("binance", BTC, {"reduce_only": True}, "perpetuals only"),
    ],
)
def test_place_order_when_request_invalid_then_invalid_order(binance, venue_name, symbol, extra, message):
    bad = OrderRequest(venue=venue_name, symbol=symbol, side=Side.BUY, amount=D(1), client_order_id="c1", **extra)

    with pytest.raises(InvalidOrderError, match=message):
        binance.place_order(bad)
    assert binance.get_order("c1") is None


def test_limit_buy_when_below_mark_then_rests_reserving_quote_and_fills_as_maker_on_cross(binance):
    resting = buy(binance, BTC, "1", "c1", **limit("60000"))

    assert resting.status is OrderStatus.OPEN
    assert used(binance, "USDT") == D(60012)  # 60000 + maker fee 12
    assert free(binance, "USDT") == D(339988)
    assert binance.set_mark_price(BTC, D(60500)) == []
    assert binance.fills() == []

    [filled] = binance.set_mark_price(BTC, D(59000))

    assert (filled.client_order_id, filled.status, filled.average_price, filled.fee) == (
        "c1",
        OrderStatus.FILLED,
        D(60000),
        D(12),
    )
    assert binance.balances()["USDT"].used == 0
    assert free(binance, "USDT") == D(339988)
    assert free(binance, "BTC") == D(3)
    assert binance.open_orders() == []
    assert binance.fills()[0].price == D(60000)


def test_cancel_when_limit_sell_rests_then_releases_base_and_is_idempotent(binance):
    sell(binance, BTC, "1", "c1", **limit("70000"))
    assert (free(binance, "BTC"), used(binance, "BTC")) == (D(1), D(1))

    canceled = binance.cancel_order("c1")

    assert canceled.status is OrderStatus.CANCELED
    assert (free(binance, "BTC"), used(binance, "BTC")) == (D(2), D(0))
    assert binance.cancel_order("c1") == canceled
    assert binance.cancel_order("never-placed") is None
    assert binance.set_mark_price(BTC, D(71000)) == []
    assert free(binance, "BTC") == D(2)


def test_cancel_when_order_already_filled_then_returned_unchanged(binance):
    filled = buy(binance, BTC, "0.1", "c1")

    assert binance.cancel_order("c1") == filled
    assert free(binance, "BTC") == D("2.1")


def test_limit_buy_when_marketable_then_fills_at_mark_as_taker(binance):
    order = buy(binance, BTC, "0.1", "c1", **limit("66000"))

    assert (order.status, order.average_price, order.fee) == (OrderStatus.FILLED, D(65000), D("3.25"))
    assert free(binance, "USDT") == D("393496.75")


def test_open_orders_when_filtered_by_symbol_then_only_that_market(binance):
    buy(binance, BTC, "1", "c1", **limit("60000"))
    buy(binance, "ETH/USDT", "1", "c2", **limit("3000"))

    assert [o.client_order_id for o in binance.open_orders()] == ["c1", "c2"]
    assert [o.client_order_id for o in binance.open_orders("ETH/USDT")] == ["c2"]
    assert [o.client_order_id for o in binance.recent_orders(limit=1)] == ["c2"]


# -- perpetuals ----------------------------------------------------------------------------------


def test_perp_open_increase_reduce_close_when_mark_moves_then_realises_pnl_minus_fees(binance):
    buy(binance, BTC_PERP, "1", "p1")  # fee 32.5
    binance.set_mark_price(BTC_PERP, D(66000))
    buy(binance, BTC_PERP, "1", "p2")  # fee 33
    [position] = binance.positions()
    assert (position.size, position.entry_price, position.unrealized_pnl) == (D(2), D(65500), D(1000))
    assert total(binance, "USDT") == D("399934.5")

    binance.set_mark_price(BTC_PERP, D(67000))
    sell(binance, BTC_PERP, "0.5", "p3")  # realised 0.5 * 1500 = 750, fee 16.75
    [position] = binance.positions()
    assert (position.size, position.entry_price) == (D("1.5"), D(65500))
    assert total(binance, "USDT") == D("400667.75")

    binance.set_mark_price(BTC_PERP, D(64000))
    sell(binance, BTC_PERP, "1.5", "p4")  # realised 1.5 * -1500 = -2250, fee 48

    assert binance.positions() == []
    assert total(binance, "USDT") == D("398369.75")
    assert free(binance, "BTC") == D(2)  # perps never touch the spot base balance


def test_perp_order_when_it_flips_a_short_then_realises_and_reopens_at_fill_price(binance):
    sell(binance, BTC_PERP, "1", "p1")  # short 1 @ 65000, fee 32.5
    binance.set_mark_price(BTC_PERP, D(64000))

    buy(binance, BTC_PERP, "3", "p2")  # closes 1 (+1000), opens long 2 @ 64000, fee 96

    [position] = binance.positions()
    assert (position.size, position.entry_price) == (D(2), D(64000))
    assert total(binance, "USDT") == D("400871.5")


def test_balances_when_perp_position_open_then_its_initial_margin_is_used_not_free(binance):
    before = binance.balances()["USDT"]
    buy(binance, BTC_PERP, "2", "p1")  # margin 2 * 65000 / 5 = 26000, fee 65

    after = binance.balances()["USDT"]

    assert (after.free, after.used, after.total) == (before.free - 26065, D(26000), before.total - 65)
    with pytest.raises(InsufficientFundsError):  # free is what can leave the venue
        binance.withdraw(transfer_id="w1", asset="USDT", amount=after.free + 1, to_venue="okx", network="TRC20")


def test_perp_order_when_margin_insufficient_then_insufficient_funds(binance):
    with pytest.raises(InsufficientFundsError, match="initial margin"):
        buy(binance, BTC_PERP, "31", "p1")  # 2015000 / 5 = 403000 > 400000

    buy(binance, BTC_PERP, "30", "p2")  # margin 390000 + fee 975; 9025 left
    with pytest.raises(InsufficientFundsError):
        buy(binance, ETH_PERP, "15", "p3")  # margin 9600
    buy(binance, ETH_PERP, "14", "p4")  # margin 8960 + fee 22.4
    with pytest.raises(InsufficientFundsError):
        buy(binance, BTC, "0.2", "s1")  # spot cannot spend the collateral
    assert [p.symbol for p in binance.positions()] == [BTC_PERP, ETH_PERP]


def test_perp_flip_when_new_side_lacks_margin_then_insufficient_funds_and_position_kept(binance):
    buy(binance, BTC_PERP, "30", "p1")  # long 30 @ 65000, fee 975
    binance.set_mark_price(BTC_PERP, D(64000))

    with pytest.raises(InsufficientFundsError):
        sell(binance, BTC_PERP, "60", "p2")  # loss 30000 + fee 1920 leaves 367105 < 384000 margin

    [position] = binance.positions()
    assert position.size == D(30)
    assert total(binance, "USDT") == D(399025)


@pytest.mark.parametrize("price", ["0", "-1", "NaN"])
def test_set_mark_price_when_not_positive_finite_then_invalid_order(binance, price):
    with pytest.raises(InvalidOrderError):
        binance.set_mark_price(BTC, D(price))

    assert binance.mark_price(BTC) == D(65000)


def test_reduce_only_when_it_would_open_increase_or_flip_then_invalid_order(binance):
    with pytest.raises(InvalidOrderError, match="increase"):
        sell(binance, BTC_PERP, "1", "r1", reduce_only=True)
    buy(binance, BTC_PERP, "1", "p1")
    with pytest.raises(InvalidOrderError, match="increase"):
        buy(binance, BTC_PERP, "0.5", "r2", reduce_only=True)
    with pytest.raises(InvalidOrderError, match="exceeds the position size 1"):
        sell(binance, BTC_PERP, "2", "r3", reduce_only=True)

    closing = sell(binance, BTC_PERP, "1", "r4", reduce_only=True)

    assert closing.status is OrderStatus.FILLED and closing.reduce_only
    assert binance.positions() == []


def test_resting_reduce_only_when_position_closed_before_cross_then_canceled_not_filled(binance):
    buy(binance, BTC_PERP, "1", "p1")
    sell(binance, BTC_PERP, "1", "tp", reduce_only=True, **limit("70000"))
    sell(binance, BTC_PERP, "1", "p2")

    assert binance.set_mark_price(BTC_PERP, D(71000)) == []

    assert binance.get_order("tp").status is OrderStatus.CANCELED
    assert binance.positions() == []


def test_perp_limit_when_resting_then_reserves_margin_and_fills_as_maker(binance):
    buy(binance, BTC_PERP, "1", "p1", **limit("60000"))
    assert used(binance, "USDT") == D(12012)  # 60000 / 5 + maker fee 12

    binance.set_mark_price(BTC_PERP, D(59000))

    [position] = binance.positions()
    assert (position.size, position.entry_price, position.unrealized_pnl) == (D(1), D(60000), D(-1000))
    assert (free(binance, "USDT"), used(binance, "USDT")) == (D(388188), D(11800))  # margin 59000 / 5 is used


# -- funding -------------------------------------------------------------------------------------


def test_funding_when_boundaries_cross_then_each_venue_pays_at_its_own_interval(binance, bybit, clock):
    buy(binance, BTC_PERP, "1", "long")  # fee 32.5
    sell(bybit, BTC_PERP, "2", "short")  # fee 2 * 65019.5 * 0.00055 = 71.52145
    clock.advance(hours=8)  # 09:00: binance crossed 08:00; bybit crossed 04:00 and 08:00

    assert total(binance, "USDT") == D(399961)  # applied lazily: -1 * 65000 * 0.0001 = -6.5
    assert binance.accrue_funding() == []
    payments = bybit.accrue_funding()

    assert [(p.funding_time.hour, p.amount) for p in payments] == [(4, D("6.50195")), (8, D("6.50195"))]
    assert total(bybit, "USDT") == D("299941.48245")
    [paid] = binance.funding_payments()
    assert (paid.funding_time, paid.size, paid.amount) == (
        datetime(2024, 1, 1, 8, tzinfo=UTC),
        D(1),
        D("-6.5"),
    )
    assert binance.funding_rates([BTC_PERP])[BTC_PERP].next_funding_at == datetime(2024, 1, 1, 16, tzinfo=UTC)
    assert bybit.funding_rates()[BTC_PERP].next_funding_at == datetime(2024, 1, 1, 12, tzinfo=UTC)
    clock.advance(hours=3)  # 12:00 exactly: bybit only
    assert [p.venue for p in (*binance.accrue_funding(), *bybit.accrue_funding())] == ["bybit"]


def test_funding_when_rate_and_mark_change_between_boundaries_then_each_boundary_uses_its_values(bybit, clock):
    sell(bybit, BTC_PERP, "2", "short")
    clock.advance(hours=1)  # 02:00
    bybit.set_mark_price(BTC_PERP, D(60000))
    clock.advance(hours=3)  # 05:00, crossed 04:00 at mark 60000, rate 0.00005: short receives 6
    bybit.set_funding_rate(BTC_PERP, D("-0.0001"))
    clock.advance(hours=3)  # 08:00, negative rate: short pays 2 * 60000 * 0.0001 = 12

    payments = bybit.funding_payments(BTC_PERP)

    assert [(p.rate, p.amount) for p in payments] == [(D("0.00005"), D(6)), (D("-0.0001"), D(-12))]
    assert total(bybit, "USDT") == D(300000) - D("71.52145") + D(6) - D(12)


def test_funding_when_symbol_has_its_own_interval_then_rates_and_payments_follow_it(engine, settings, clock):
    venues = dict(settings.venues)
    venues["binance"] = venues["binance"].model_copy(update={"funding_interval_hours_by_symbol": {ETH_PERP: 1}})
    binance = PaperVenue("binance", settings.model_copy(update={"venues": venues}), engine=engine, clock=clock)
    sell(binance, BTC_PERP, "0.1", "b1")
    sell(binance, ETH_PERP, "1", "e1")

    rates = binance.funding_rates()
    clock.advance(hours=3)  # 01:00 -> 04:00: ETH pays hourly, BTC's next boundary is 08:00
    payments = binance.accrue_funding()

    assert (rates[BTC_PERP].interval_hours, rates[ETH_PERP].interval_hours) == (8, 1)
    assert rates[ETH_PERP].next_funding_at == datetime(2024, 1, 1, 2, tzinfo=UTC)
    assert [(p.symbol, p.funding_time.hour) for p in payments] == [(ETH_PERP, 2), (ETH_PERP, 3), (ETH_PERP, 4)]


def test_funding_when_no_position_then_no_payment(binance, clock):
    binance.balances()
    clock.advance(days=2)

    assert binance.accrue_funding() == []
    assert free(binance, "USDT") == D(400000)


def test_funding_rates_when_symbol_is_spot_then_invalid_order(binance):
    with pytest.raises(InvalidOrderError, match="not a perpetual"):
        binance.funding_rates([BTC])


# -- client order ids ----------------------------------------------------------------------------


def test_place_order_when_client_order_id_repeats_then_same_order_and_one_fill(binance, engine):
    first = buy(binance, BTC, "0.5", "same")
    second = buy(binance, BTC, "0.5", "same")

    assert second == first
    assert free(binance, "BTC") == D("2.5")
    assert count_rows(engine, fills_table) == 1


def test_place_order_when_insert_loses_race_then_returns_winner_order(binance, engine, monkeypatch):
    first = buy(binance, BTC, "0.5", "same")
    real_find = paper_trading.find_order_row
    calls = []

    def find_missing_once(conn, venue, client_order_id):
        calls.append(client_order_id)
        return None if len(calls) == 1 else real_find(conn, venue, client_order_id)

    monkeypatch.setattr(paper_trading, "find_order_row", find_missing_once)

    again = buy(binance, BTC, "0.5", "same")

    assert again == first
    assert len(calls) == 2  # the pre-check missed; the unique constraint fired; re-read found it
    assert count_rows(engine, orders_table) == 1
    assert free(binance, "BTC") == D("2.5")


@pytest.mark.slow
def test_place_order_when_two_processes_race_same_client_order_id_then_one_order_one_fill(db_url, engine):
    outcomes = paper_workers.run_racers(paper_workers.place_order_at_barrier, 2, db_url, "race-1")

    assert [status for status, _ in outcomes] == ["ok", "ok"], outcomes
    orders = [order for _, order in outcomes]
    assert orders[0]["order_id"] == orders[1]["order_id"] == "paper-binance-1"
    assert count_rows(engine, orders_table) == 1
    assert count_rows(engine, fills_table) == 1
    assert PaperVenue("binance", load_settings(), engine=engine).balances()["BTC"].free == D("2.1")


# -- transfers -----------------------------------------------------------------------------------


def test_withdraw_when_settle_delay_not_elapsed_then_pending_until_due_then_credited_minus_fee(binance, okx, clock):
    transfer = binance.withdraw(transfer_id="t1", asset="USDT", amount=D(1000), to_venue="okx", network="TRC20")

    assert (transfer.status, transfer.fee, transfer.settles_at) == (
        TransferStatus.PENDING,
        D(1),
        T0 + timedelta(seconds=60),
    )
    assert free(binance, "USDT") == D(399000)
    clock.advance(seconds=59)
    assert free(okx, "USDT") == D(300000)
    assert okx.get_transfer("t1").status is TransferStatus.PENDING

    clock.advance(seconds=1)

    assert free(okx, "USDT") == D(300999)
    assert binance.get_transfer("t1").status is TransferStatus.SETTLED
    assert free(binance, "USDT") == D(399000)
    assert okx.settle_transfers() == []


def test_settle_transfers_when_called_on_source_then_destination_credited_once(binance, okx, clock):
    binance.withdraw(transfer_id="t1", asset="ETH", amount=D(5), to_venue="okx", network="ERC20")
    clock.advance(minutes=5)

    [settled] = binance.settle_transfers()

    assert (settled.transfer_id, settled.received) == ("t1", D("4.9985"))
    assert free(okx, "ETH") == D("14.9985")
    assert binance.settle_transfers() == [] and okx.settle_transfers() == []


def test_withdraw_when_transfer_id_repeats_then_same_transfer_and_single_debit(binance, okx, clock):
    first = binance.withdraw(transfer_id="t1", asset="USDT", amount=D(1000), to_venue="okx", network="TRC20")
    clock.advance(seconds=5)
    again = binance.withdraw(transfer_id="t1", asset="USDT", amount=D(1000), to_venue="okx", network="TRC20")
    clock.advance(minutes=5)
    settled = binance.withdraw(transfer_id="t1", asset="USDT", amount=D(1000), to_venue="okx", network="TRC20")

    assert again == first
    assert settled.status is TransferStatus.SETTLED and settled.created_at == first.created_at
    assert free(binance, "USDT") == D(399000)
    assert free(okx, "USDT") == D(300999)


@pytest.mark.parametrize(
    ("asset", "amount", "to_venue", "network", "message"),
    [
        ("USDT", "100", "okx", "BEP20", "allowed networks: ERC20, TRC20"),
        ("USDT", "100", "alpaca", "TRC20", "does not support USDT"),
        ("USDT", "100", "kraken", "TRC20", "unknown destination"),
        ("USDT", "100", "binance", "TRC20", "same venue"),
        ("USDT", "1", "okx", "TRC20", "must exceed"),
        ("DOGE", "100", "okx", "TRC20", "no withdrawal route"),
        ("USDT", "-5", "okx", "TRC20", "positive"),
    ],
)
def test_withdraw_when_route_invalid_then_invalid_order_and_no_debit(
    binance, asset, amount, to_venue, network, message
):
    with pytest.raises(InvalidOrderError, match=message):
        binance.withdraw(transfer_id="t1", asset=asset, amount=D(amount), to_venue=to_venue, network=network)

    assert free(binance, "USDT") == D(400000)
    assert binance.get_transfer("t1") is None


def test_withdraw_when_amount_exceeds_balance_then_insufficient_funds(binance):
    with pytest.raises(InsufficientFundsError):
        binance.withdraw(transfer_id="t1", asset="BTC", amount=D("2.5"), to_venue="okx", network="BTC")

    assert free(binance, "BTC") == D(2)


@pytest.mark.slow
def test_withdraw_when_two_processes_race_same_transfer_id_then_single_debit(db_url, engine):
    outcomes = paper_workers.run_racers(paper_workers.withdraw_at_barrier, 2, db_url, "race-t")

    assert [status for status, _ in outcomes] == ["ok", "ok"], outcomes
    assert outcomes[0][1] == outcomes[1][1]
    assert PaperVenue("binance", load_settings(), engine=engine).balances()["USDT"].free == D(399000)


# -- OHLCV ---------------------------------------------------------------------------------------


def test_ohlcv_when_called_twice_then_identical_hourly_history_ending_at_mark(binance, settings, clock):
    clock.advance(minutes=37)
    candles = binance.ohlcv(BTC)

    assert candles == binance.ohlcv(BTC)
    assert len(candles) == settings.paper.ohlcv_days * 24
    assert candles[-1].ts == T0 and candles[-1].close == D(65000)
    assert candles[0].ts == T0 - timedelta(hours=len(candles) - 1)
    for earlier, later in itertools.pairwise(candles):
        assert later.ts - earlier.ts == timedelta(hours=1)
        assert later.open == earlier.close
    assert all(c.low <= min(c.open, c.close) and c.high >= max(c.open, c.close) and c.volume > 0 for c in candles)
    assert len({c.close for c in candles}) > 600  # a walk, not a flat line


def test_ohlcv_when_since_and_limit_given_then_ccxt_window(binance):
    candles = binance.ohlcv(BTC)

    assert binance.ohlcv(BTC, since=candles[100].ts, limit=10) == candles[100:110]
    assert binance.ohlcv(BTC, since=candles[100].ts + timedelta(minutes=1), limit=2) == candles[101:103]
    assert binance.ohlcv(BTC, since=candles[-3].ts) == candles[-3:]
    assert binance.ohlcv(BTC, limit=5) == candles[-5:]
    assert binance.ohlcv(BTC, since=candles[0].ts - timedelta(days=400), limit=1) == candles[:1]


def test_ohlcv_when_seed_or_symbol_differs_then_history_differs(binance, engine, clock):
    other_seed = load_settings(env={"TRADEOPS__PAPER__SEED": "8"})
    reseeded = PaperVenue("binance", other_seed, engine=engine, clock=clock)
    base = binance.ohlcv(BTC)

    assert reseeded.ohlcv(BTC) != base
    assert [c.close for c in binance.ohlcv("BTC/USDT:USDT")] != [c.close for c in base]


@pytest.mark.parametrize("kwargs", [{"timeframe": "5m"}, {"limit": 0}, {"since": datetime(2024, 1, 1)}])
def test_ohlcv_when_arguments_unsupported_then_invalid_order(binance, kwargs):
    with pytest.raises(InvalidOrderError):
        binance.ohlcv(BTC, **kwargs)


@pytest.mark.slow
def test_ohlcv_when_generated_in_another_process_then_identical(binance, db_url):
    status, candles = paper_workers.run_once(paper_workers.ohlcv_in_process, db_url, T0.isoformat(), BTC)

    assert status == "ok", candles
    assert candles == to_jsonable(binance.ohlcv(BTC))


# -- scheduled faults ----------------------------------------------------------------------------


def test_fault_when_phase_before_then_call_raises_and_nothing_happens(binance):
    binance.inject_fault("place_order", "temporary")

    with pytest.raises(TemporaryVenueError, match="paper fault injected"):
        buy(binance, BTC, "0.5", "c1")

    assert binance.get_order("c1") is None
    assert free(binance, "BTC") == D(2)
    assert buy(binance, BTC, "0.5", "c1").status is OrderStatus.FILLED


def test_fault_when_phase_after_then_effect_committed_and_retry_returns_same_order(binance, engine):
    binance.inject_fault("place_order", "temporary", phase="after")

    with pytest.raises(TemporaryVenueError):
        buy(binance, BTC, "0.5", "c1")

    placed = binance.get_order("c1")
    assert placed.status is OrderStatus.FILLED
    assert buy(binance, BTC, "0.5", "c1") == placed
    assert count_rows(engine, fills_table) == 1
    assert free(binance, "BTC") == D("2.5")


def test_fault_when_withdraw_times_out_after_debit_then_retry_does_not_debit_again(binance):
    binance.inject_fault("withdraw", "temporary", phase="after")
    args = {"transfer_id": "t1", "asset": "USDT", "amount": D(1000), "to_venue": "okx", "network": "TRC20"}

    with pytest.raises(TemporaryVenueError):
        binance.withdraw(**args)

    assert binance.withdraw(**args).transfer_id == "t1"
    assert free(binance, "USDT") == D(399000)


@pytest.mark.parametrize(
    ("error", "exception"),
    [
        ("temporary", TemporaryVenueError),
        ("operational", OperationalError),
        ("insufficient_funds", InsufficientFundsError),
        ("invalid_order", InvalidOrderError),
    ],
)
def test_fault_when_scheduled_twice_then_next_two_calls_raise_mapped_error(binance, error, exception):
    binance.inject_fault("balances", error, times=2)

    for _ in range(2):
        with pytest.raises(exception):
            binance.balances()

    assert binance.balances()["USDT"].free == D(400000)


def test_fault_when_injected_from_another_instance_then_hits_this_venue_only_until_cleared(open_venue, binance):
    open_venue("binance").inject_fault("mark_price", "operational", times=5)
    bybit = open_venue("bybit")

    assert bybit.mark_price(BTC) == D("65019.5")
    with pytest.raises(OperationalError):
        binance.mark_price(BTC)
    assert binance.clear_faults() == 1
    assert binance.mark_price(BTC) == D(65000)


def test_inject_fault_when_method_or_error_unknown_then_value_error(binance):
    assert {"place_order", "withdraw", "cancel_order", "ohlcv", "balances"} <= FAULTABLE_METHODS
    with pytest.raises(ValueError, match="faultable methods"):
        binance.inject_fault("inject_fault", "temporary")
    with pytest.raises(ValueError, match="unknown fault error"):
        binance.inject_fault("balances", "boom")
    with pytest.raises(ValueError, match="times"):
        binance.inject_fault("balances", "temporary", times=0)


# -- seeding and opening -------------------------------------------------------------------------


def test_seed_when_already_seeded_then_false_and_state_kept_until_reset(binance, engine, settings):
    buy(binance, BTC, "0.5", "c1", **limit("60000"))

    assert seed_paper_world(settings, engine) is False
    assert binance.get_order("c1").status is OrderStatus.OPEN
    assert free(binance, "USDT") == D(370000) - D(6)

    assert seed_paper_world(settings, engine, reset=True) is True

    assert binance.get_order("c1") is None
    assert (free(binance, "USDT"), used(binance, "USDT")) == (D(400000), D(0))


def test_seed_when_venue_has_price_offset_then_marks_and_rates_follow_config(open_venue):
    assert open_venue("bybit").mark_price(BTC_PERP) == D("65019.5")
    assert open_venue("okx").mark_price("ETH/USDT") == D("3199.36")
    assert open_venue("okx").funding_rates()[BTC_PERP].rate == D("0.00012")
    assert open_venue("alpaca").balances()["TSLA"].free == D(100)


def test_venue_call_when_world_not_seeded_then_operational_error_naming_seed(db_url, settings):
    venue = PaperVenue("binance", settings, engine=get_engine(db_url))

    with pytest.raises(OperationalError, match="venue seed"):
        venue.balances()


def test_paper_venue_when_configured_kind_is_ccxt_then_config_error():
    live = load_settings(env={"TRADEOPS__VENUES__BINANCE__KIND": "ccxt"})

    with pytest.raises(ConfigError, match="kind"):
        PaperVenue("binance", live)


def test_open_paper_venue_when_defaults_then_uses_project_settings_and_engine(engine):
    venue = open_paper_venue("okx")

    assert venue.balances()["USDT"].free == D(300000)


# -- CLI -----------------------------------------------------------------------------------------


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="tradeops")
    venue_cmds.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["venue", *argv])
    return args.func(args)


def test_cli_balances_when_json_then_every_paper_venue_listed(engine, capsys):
    assert run_cli("balances", "--json") == 0

    rows = json.loads(capsys.readouterr().out)
    assert {r["venue"] for r in rows} == {"alpaca", "binance", "bybit", "okx"}
    usdt = next(r for r in rows if (r["venue"], r["asset"]) == ("binance", "USDT"))
    assert (usdt["free"], usdt["used"]) == ("400000", "0")


def test_cli_set_price_when_it_crosses_a_resting_order_then_reports_the_fill(engine, capsys):
    PaperVenue("binance", load_settings(), engine=engine).place_order(
        OrderRequest(venue="binance", symbol=BTC, side=Side.BUY, amount=D(1), client_order_id="c1", **limit("60000"))
    )

    assert run_cli("set-price", "binance", BTC, "59000") == 0
    out = capsys.readouterr().out
    assert "mark price set to 59000" in out and "1 resting order(s) filled" in out and "c1" in out

    assert run_cli("orders", "--venue", "binance", "--all") == 0
    table = capsys.readouterr().out
    assert "paper-binance-1" in table and "filled" in table
    assert run_cli("orders", "--venue", "binance") == 0
    assert capsys.readouterr().out.strip() == "no open orders"


def test_cli_positions_and_set_funding_when_position_open_then_shown(engine, capsys):
    venue = PaperVenue("bybit", load_settings(), engine=engine)
    venue.place_order(OrderRequest(venue="bybit", symbol=BTC_PERP, side=Side.SELL, amount=D(2), client_order_id="s"))

    assert run_cli("set-funding", "bybit", BTC_PERP, "0.0003", "--json") == 0
    assert json.loads(capsys.readouterr().out)["rate"] == "0.0003"
    assert run_cli("positions", "--venue", "bybit") == 0
    out = capsys.readouterr().out
    assert BTC_PERP in out and "-2" in out
    assert venue.funding_rates()[BTC_PERP].rate == D("0.0003")


def test_cli_seed_when_run_twice_then_second_run_keeps_state(db_url, capsys):
    assert run_cli("seed") == 0
    assert "seeded from config" in capsys.readouterr().out
    assert run_cli("seed", "--json") == 0
    assert json.loads(capsys.readouterr().out) == {"seeded": False, "reset": False}


def test_cli_fault_when_scheduled_then_next_call_fails(engine, capsys):
    assert run_cli("fault", "binance", "balances", "temporary") == 0
    with pytest.raises(TemporaryVenueError):
        PaperVenue("binance", load_settings(), engine=engine).balances()


def test_cli_set_price_when_argument_not_a_number_then_usage_error(engine, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_cli("set-price", "binance", BTC, "cheap")

    assert exit_info.value.code == 2
    assert "not a decimal number" in capsys.readouterr().err


def test_cli_open_when_venue_is_live_without_credentials_then_error_names_connection(monkeypatch):
    live = load_settings(env={"TRADEOPS__VENUES__OKX__KIND": "ccxt"})
    monkeypatch.setattr(venue_cmds, "settings", lambda: live)
    monkeypatch.delenv("AIRFLOW_CONN_TRADEOPS_OKX", raising=False)
    # Airflow tasks run in this process earlier may have installed the connection-based provider.
    monkeypatch.setattr(factory, "_credentials_provider", factory.environment_credentials)

    with pytest.raises(TradeopsError, match="tradeops_okx"):
        venue_cmds._open("okx")
    with pytest.raises(TradeopsError, match="tradeops_okx"):
        venue_cmds._open_paper("okx")
    assert isinstance(venue_cmds._open("binance"), PaperVenue)


def test_fault_when_skip_given_then_first_calls_pass_and_next_fails(binance):
    binance.inject_fault("balances", "temporary", times=1, skip=2)

    binance.balances()
    binance.balances()
    with pytest.raises(TemporaryVenueError):
        binance.balances()
    binance.balances()


def test_airflow_credentials_when_connection_missing_then_authentication_error_names_it(airflow_db):
    from operators.credentials import connection_credentials
    from tradeops.errors import AuthenticationError

    with pytest.raises(AuthenticationError, match="tradeops_nowhere"):
        connection_credentials("tradeops_nowhere")
