"""CcxtVenue over real, unmodified ccxt talking HTTP to a local fake OKX (tests/fake_exchange.py).

Nothing is mocked between the adapter and ccxt: errors come from OKX's own error payloads,
ccxt's own ``handle_errors`` raises the ccxt exception, and the adapter translates it.
"""

from __future__ import annotations

import itertools
import logging
import socket
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import ccxt
import pytest

from tests import fake_exchange as fx
from tests.fake_exchange import FakeOkx
from tradeops.config import VenueConfig
from tradeops.errors import (
    AuthenticationError,
    ConfigError,
    IdempotencyKeyReusedError,
    InsufficientFundsError,
    InvalidOrderError,
    NotFoundError,
    OperationalError,
    OutcomeUnknownError,
    TemporaryVenueError,
    VenueError,
)
from tradeops.model import OrderRequest, OrderStatus, OrderType, Side, TransferStatus
from tradeops.venues import withdrawal_ledger
from tradeops.venues.ccxt_venue import (
    ERROR_RULES,
    QUIRKS,
    CcxtVenue,
    ErrorRule,
    translate_ccxt_error,
    venue_client_id,
)

VENUE = "okx-main"
MARKETS = ("BTC/USDT", "BTC/USDT:USDT", "ETH/USDT:USDT")
CREDENTIALS = {"apiKey": "fake-key", "secret": "fake-secret", "password": "fake-pass"}
ADDRESSES = {("binance", "USDT", "TRC20"): "TQn9Y2khEsLJW1ChVWFMSMeRDow5KcbLSE"}
OPTIONS = {"fetchMarkets": {"types": ["spot", "swap"]}}  # what an OKX user without options/futures sets
HOUR_MS = 3_600_000


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOkx]:
    with FakeOkx(*CREDENTIALS.values()) as fake:
        yield fake


@pytest.fixture(autouse=True)
def project_db(db_url: str) -> str:
    """Live withdrawals are recorded in the project database (a fresh one per test)."""
    return db_url


@pytest.fixture
def fake(server: FakeOkx) -> FakeOkx:
    server.reset()
    return server


def make_venue(
    fake: FakeOkx, credentials: dict[str, str] | None = None, withdrawal_history_lag_seconds: float = 60, **config: Any
) -> CcxtVenue:
    lag = withdrawal_history_lag_seconds
    settings = VenueConfig(
        kind="ccxt",
        ccxt_id="okx",
        markets=MARKETS,
        options=config.pop("options", OPTIONS),
        withdrawal={"USDT": {"TRC20": {"fee": "1.5", "settle_seconds": 120}}},
        **config,
    )
    venue = CcxtVenue(
        VENUE,
        settings,
        credentials=CREDENTIALS if credentials is None else credentials,
        urls=fake.urls,
        withdrawal_addresses=ADDRESSES,
        withdrawal_history_lag_seconds=lag,
    )
    venue.exchange.rateLimit = 1  # ccxt's own throttle (enableRateLimit stays on); keeps the suite fast
    return venue


@pytest.fixture
def venue(fake: FakeOkx) -> Iterator[CcxtVenue]:
    venue = make_venue(fake)
    venue.load_markets()
    fake.clear_requests()
    yield venue
    venue.close()


def order(client_order_id: str = "open1", **fields: Any) -> OrderRequest:
    values: dict[str, Any] = {"symbol": "BTC/USDT:USDT", "side": Side.BUY, "amount": Decimal("0.3")}
    values.update(fields)
    return OrderRequest(venue=VENUE, client_order_id=client_order_id, **values)


def resting_limit(client_order_id: str = "rest1") -> OrderRequest:
    return order(
        client_order_id,
        symbol="BTC/USDT",
        amount=Decimal("0.1"),
        order_type=OrderType.LIMIT,
        price=Decimal(40000),
    )


def hour_floor(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


# --------------------------------------------------------------------------------------------
# construction


def test_load_markets_when_spot_and_swap_configured_then_one_currency_and_two_instrument_calls(fake):
    venue = make_venue(fake)

    venue.load_markets()

    assert fake.paths() == ["GET asset/currencies", "GET public/instruments", "GET public/instruments"]
    assert set(MARKETS) <= set(venue.exchange.markets)


def test_init_when_built_then_rate_limit_on_and_ccxt_retries_forced_off(fake):
    venue = make_venue(fake, options={**OPTIONS, "maxRetriesOnFailure": 3, "defaultMarginMode": "isolated"})

    assert venue.exchange.enableRateLimit is True
    assert venue.exchange.options["maxRetriesOnFailure"] == 0
    assert venue.exchange.options["defaultMarginMode"] == "isolated"  # config.options merged
    assert venue.exchange.options["fetchMarkets"] == {"types": ["spot", "swap"]}
    assert venue.exchange.urls["api"] == {"rest": fake.url}


def test_init_when_sandbox_then_simulated_trading_header_and_no_currency_call(fake):
    venue = make_venue(fake, sandbox=True)

    venue.balances()

    assert fake.paths() == ["GET public/instruments", "GET public/instruments", "GET account/balance"]
    assert fake.requests[-1].headers.get("x-simulated-trading") == "1"


@pytest.mark.parametrize("ccxt_id", ["nosuchexchange", None])
def test_init_when_ccxt_id_unknown_or_missing_then_config_error_names_the_key(fake, ccxt_id):
    config = VenueConfig(kind="paper", ccxt_id=ccxt_id, markets=MARKETS)

    with pytest.raises(ConfigError) as caught:
        CcxtVenue(VENUE, config)

    assert caught.value.key == f"venues.{VENUE}.ccxt_id"


def test_init_when_exchange_injected_then_used_as_is_but_without_ccxt_retries(fake):
    exchange = ccxt.okx({"options": {**OPTIONS, "maxRetriesOnFailure": 5}})
    config = VenueConfig(kind="ccxt", ccxt_id="okx", markets=MARKETS)

    venue = CcxtVenue(VENUE, config, exchange=exchange, urls=fake.urls)

    assert venue.exchange is exchange
    assert exchange.options["maxRetriesOnFailure"] == 0
    assert venue.mark_price("BTC/USDT") == Decimal(50000)


def test_init_when_credential_key_unknown_then_config_error_without_values(fake):
    with pytest.raises(ConfigError) as caught:
        make_venue(fake, credentials={"api_key": "leaky-value", "secret": "s"})

    assert "api_key" in str(caught.value)
    assert "leaky-value" not in str(caught.value)


# --------------------------------------------------------------------------------------------
# happy paths, one per Venue method


def test_balances_when_order_rests_then_free_and_used_are_decimals(venue, fake):
    venue.place_order(resting_limit())

    balances = venue.balances()

    assert balances["USDT"].used == Decimal("4002")  # 0.1 * 40000 plus the 5 bps taker fee reserve
    assert balances["USDT"].free == Decimal("95998")
    assert balances["BTC"].free == Decimal(2)
    assert all(isinstance(b.free, Decimal) and isinstance(b.used, Decimal) for b in balances.values())


def test_positions_when_long_and_short_perps_then_signed_sizes_in_base_units(venue):
    venue.place_order(order("long1"))
    venue.place_order(order("short1", symbol="ETH/USDT:USDT", side=Side.SELL, amount=Decimal("1.5")))

    positions = {p.symbol: p for p in venue.positions()}

    assert positions["BTC/USDT:USDT"].size == Decimal("0.3")  # 30 contracts x 0.01 BTC
    assert positions["BTC/USDT:USDT"].entry_price == Decimal(50010)
    assert positions["ETH/USDT:USDT"].size == Decimal("-1.5")  # 15 contracts x 0.1 ETH, short
    assert positions["ETH/USDT:USDT"].mark_price == Decimal(3000)


def test_positions_when_flat_then_empty(venue):
    assert venue.positions() == []


def test_mark_price_when_perp_then_venue_mark_price(venue, fake):
    assert venue.mark_price("BTC/USDT:USDT") == Decimal(50010)
    assert fake.paths() == ["GET public/mark-price"]


def test_mark_price_when_spot_then_ticker_last(venue, fake):
    assert venue.mark_price("BTC/USDT") == Decimal(50000)
    assert fake.paths() == ["GET market/ticker"]


def test_funding_rates_when_symbols_omitted_then_configured_perps_with_their_intervals(venue, fake):
    rates = venue.funding_rates()

    assert set(rates) == {"BTC/USDT:USDT", "ETH/USDT:USDT"}
    assert rates["BTC/USDT:USDT"].rate == Decimal("0.0001")
    assert rates["BTC/USDT:USDT"].interval_hours == 8
    assert rates["ETH/USDT:USDT"].rate == Decimal("-0.00005")
    assert rates["ETH/USDT:USDT"].interval_hours == 4
    assert rates["ETH/USDT:USDT"].next_funding_at > datetime.now(UTC)
    assert fake.paths() == ["GET public/funding-rate"]  # one call for all (instId=ANY)


def test_funding_rates_when_venue_publishes_no_interval_then_configured_interval_per_symbol(fake):
    venue = make_venue(fake, funding_interval_hours=2, funding_interval_hours_by_symbol={"ETH/USDT:USDT": 1})
    fake.publish_funding_interval = False

    rates = venue.funding_rates(["BTC/USDT:USDT", "ETH/USDT:USDT"])

    assert rates["BTC/USDT:USDT"].interval_hours == 2  # the venue's interval
    assert rates["ETH/USDT:USDT"].interval_hours == 1  # the symbol's own


def test_funding_rates_when_bulk_answer_has_no_interval_then_interval_asked_per_symbol(venue, fake):
    fake.bulk_funding_interval = False

    rates = venue.funding_rates()

    assert (rates["BTC/USDT:USDT"].interval_hours, rates["ETH/USDT:USDT"].interval_hours) == (8, 4)
    assert fake.paths() == ["GET public/funding-rate"] * 3  # all at once, then fetch_funding_interval each


def test_place_order_when_market_perp_then_filled_in_base_units_with_fee(venue, fake):
    placed = venue.place_order(order())

    assert placed.status is OrderStatus.FILLED
    assert placed.client_order_id == "open1"
    assert placed.amount == placed.filled == Decimal("0.3")
    assert placed.average_price == Decimal(50010)
    assert placed.fee == Decimal("7.5015")
    assert placed.fee_asset == "USDT"
    assert fake.requests[1].body == [
        {
            "instId": "BTC-USDT-SWAP",
            "side": "buy",
            "ordType": "market",
            "sz": "30",
            "tdMode": "cross",
            "clOrdId": "open1",
        }
    ]


def test_place_order_when_ccxt_rounded_amounts_then_the_process_decimal_context_is_unchanged(venue, fake):
    import decimal

    before = decimal.getcontext().copy()
    venue.place_order(order())

    after = decimal.getcontext()
    assert (after.rounding, after.prec, after.traps) == (before.rounding, before.prec, before.traps)
    assert after.rounding == decimal.ROUND_HALF_EVEN and not after.traps[decimal.Underflow]


def test_place_order_when_reduce_only_then_flag_reaches_the_venue(venue, fake):
    venue.place_order(order("open1"))

    closing = venue.place_order(order("close1", side=Side.SELL, reduce_only=True))

    assert closing.reduce_only is True
    assert fake.requests[-2].body[0]["reduceOnly"] is True
    assert venue.positions() == []


def test_place_order_when_limit_then_open_and_listed_in_open_orders(venue):
    placed = venue.place_order(resting_limit())

    assert placed.status is OrderStatus.OPEN
    assert placed.price == Decimal(40000)
    assert [o.client_order_id for o in venue.open_orders()] == ["rest1"]
    assert venue.open_orders("BTC/USDT:USDT") == []


def test_place_order_when_client_order_id_already_used_then_returns_first_order_without_placing(venue, fake):
    first = venue.place_order(order("same1"))

    second = venue.place_order(order("same1"))

    assert second == first
    assert fake.calls("trade/batch-orders") == 1
    assert len(fake.book.orders) == 1


def test_place_order_when_venue_reports_duplicate_client_id_then_returns_existing_order(venue, fake):
    first = venue.place_order(order("dup1"))
    fake.clear_requests()
    fake.fail("trade/order", fx.ORDER_NOT_FOUND, method="GET")  # the look-up misses (lagging replica)

    again = venue.place_order(order("dup1"))

    assert again.order_id == first.order_id
    assert fake.paths() == ["GET trade/order", "POST trade/batch-orders", "GET trade/order"]
    assert len(fake.book.orders) == 1


def test_place_order_when_create_times_out_after_venue_accepted_then_retry_returns_it_once(venue, fake):
    venue.exchange.timeout = 250
    fake.fail("trade/batch-orders", fx.slow(1.0, processed=True))
    with pytest.raises(TemporaryVenueError, match="RequestTimeout"):
        venue.place_order(order("late1"))

    retried = venue.place_order(order("late1"))  # what the saga's retry does

    assert retried.client_order_id == "late1" and retried.status is OrderStatus.FILLED
    assert fake.calls("trade/batch-orders") == 1
    assert len(fake.book.orders) == 1


def test_place_order_when_client_id_not_accepted_by_venue_then_stable_hashed_id_and_ours_returned(venue, fake):
    client_id = "saga-42/open:leg_1"

    placed = venue.place_order(order(client_id))

    sent = fake.book.orders[0]["clOrdId"]
    assert sent == venue_client_id(client_id, QUIRKS["okx"].client_id_pattern) != client_id
    assert placed.client_order_id == client_id
    assert make_venue(fake).get_order(client_id, "BTC/USDT:USDT").order_id == placed.order_id


def test_place_order_when_symbol_unknown_then_invalid_order_without_any_call(venue, fake):
    with pytest.raises(InvalidOrderError, match="place_order"):
        venue.place_order(order(symbol="DOGE/USDT"))

    assert fake.paths() == []


def test_place_order_when_amount_below_one_contract_then_invalid_order_and_nothing_created(venue, fake):
    with pytest.raises(InvalidOrderError):
        venue.place_order(order(amount=Decimal("0.00001")))  # 0.001 contract, lot is 0.01

    assert fake.calls("trade/batch-orders") == 0


def test_place_order_when_margin_too_small_then_insufficient_funds(venue):
    with pytest.raises(InsufficientFundsError, match="51008"):
        venue.place_order(order(amount=Decimal(100)))


def test_get_order_when_known_then_current_state(venue):
    venue.place_order(resting_limit())

    found = venue.get_order("rest1", "BTC/USDT")

    assert found is not None and found.status is OrderStatus.OPEN and found.symbol == "BTC/USDT"


def test_get_order_when_symbol_omitted_then_searches_configured_markets(venue, fake):
    placed = venue.place_order(order())
    fake.clear_requests()

    found = venue.get_order("open1")

    assert found == placed
    assert fake.calls("trade/order", "GET") == 2  # BTC/USDT (not there), then BTC/USDT:USDT


def test_get_order_when_unknown_then_none(venue):
    assert venue.get_order("never1", "BTC/USDT:USDT") is None
    assert venue.get_order("never1") is None


def test_get_order_when_venue_cannot_fetch_by_client_id_then_scans_order_lists(fake, monkeypatch):
    monkeypatch.setitem(QUIRKS, "okx", replace(QUIRKS["okx"], fetch_order_by_client_id=False))
    venue = make_venue(fake)
    placed = venue.place_order(order())
    fake.clear_requests()

    found = venue.get_order("open1", "BTC/USDT:USDT")

    assert found == placed
    assert fake.paths() == ["GET trade/orders-pending", "GET trade/orders-history"]


def test_open_orders_when_none_rest_then_empty(venue):
    venue.place_order(order())

    assert venue.open_orders() == []


def test_cancel_order_when_open_then_canceled_and_funds_released(venue, fake):
    venue.place_order(resting_limit())

    canceled = venue.cancel_order("rest1", "BTC/USDT")

    assert canceled is not None and canceled.status is OrderStatus.CANCELED
    assert venue.balances()["USDT"].used == 0
    assert fake.calls("trade/cancel-order") == 1


def test_cancel_order_when_already_filled_then_returns_it_without_cancel_call(venue, fake):
    venue.place_order(resting_limit())
    fake.fill("rest1")

    result = venue.cancel_order("rest1")

    assert result is not None and result.status is OrderStatus.FILLED
    assert fake.calls("trade/cancel-order") == 0


def test_cancel_order_when_unknown_then_none(venue, fake):
    assert venue.cancel_order("never1", "BTC/USDT") is None
    assert fake.calls("trade/cancel-order") == 0


def test_cancel_order_when_venue_says_already_closed_then_state_read_afterwards(venue, fake):
    venue.place_order(resting_limit())
    fake.fail(
        "trade/cancel-order",
        fx.Fault(code="51402", msg="Cancellation failed as the order is already completed."),
    )

    result = venue.cancel_order("rest1", "BTC/USDT")

    assert result is not None and result.status is OrderStatus.OPEN  # the fake never filled it
    assert fake.calls("trade/cancel-order") == 1


def test_withdraw_when_address_known_then_pending_transfer_with_venue_fee(venue, fake):
    transfer = venue.withdraw(
        transfer_id="rebal-7", asset="USDT", amount=Decimal(250), to_venue="binance", network="TRC20"
    )

    assert transfer.status is TransferStatus.PENDING
    assert (transfer.amount, transfer.fee, transfer.received) == (Decimal(250), Decimal(1), Decimal(249))
    assert (transfer.from_venue, transfer.to_venue, transfer.network) == (VENUE, "binance", "TRC20")
    sent = fake.requests[-1].body
    assert sent["toAddr"] == ADDRESSES[("binance", "USDT", "TRC20")] and sent["chain"] == "USDT-TRC20"
    assert sent["clientId"] == venue_client_id("rebal-7", QUIRKS["okx"].client_id_pattern)


def test_withdraw_when_same_transfer_id_twice_then_one_withdrawal(venue, fake):
    first = venue.withdraw(transfer_id="rebal7", asset="USDT", amount=Decimal(250), to_venue="binance", network="TRC20")

    second = make_venue(fake).withdraw(
        transfer_id="rebal7", asset="USDT", amount=Decimal(250), to_venue="binance", network="TRC20"
    )

    assert second.transfer_id == first.transfer_id and second.amount == first.amount
    assert fake.calls("asset/withdrawal") == 1


def test_withdraw_when_request_times_out_after_venue_sent_it_then_retry_returns_it_once(venue, fake):
    venue.exchange.timeout = 250
    fake.fail("asset/withdrawal", fx.slow(1.0, processed=True))
    with pytest.raises(TemporaryVenueError):
        venue.withdraw(transfer_id="late1", asset="USDT", amount=Decimal(5), to_venue="binance", network="TRC20")

    retried = venue.withdraw(transfer_id="late1", asset="USDT", amount=Decimal(5), to_venue="binance", network="TRC20")

    assert retried.transfer_id == "late1" and retried.status is TransferStatus.PENDING
    assert fake.calls("asset/withdrawal") == 1


def test_withdraw_when_no_address_configured_then_operational_error_before_any_call(venue, fake):
    with pytest.raises(OperationalError, match="no deposit address"):
        venue.withdraw(transfer_id="w1", asset="USDT", amount=Decimal(1), to_venue="kraken", network="TRC20")

    assert fake.paths() == []


def test_withdraw_when_balance_too_small_then_insufficient_funds(venue):
    with pytest.raises(InsufficientFundsError, match="58350"):
        venue.withdraw(transfer_id="w1", asset="USDT", amount=Decimal(10**9), to_venue="binance", network="TRC20")


def test_get_transfer_when_sent_on_chain_then_settled(venue, fake):
    venue.withdraw(transfer_id="rebal7", asset="USDT", amount=Decimal(250), to_venue="binance", network="TRC20")
    fake.settle_withdrawal("rebal7")

    transfer = venue.get_transfer("rebal7")

    assert transfer is not None and transfer.status is TransferStatus.SETTLED
    assert (transfer.asset, transfer.amount, transfer.fee) == ("USDT", Decimal(250), Decimal(1))
    assert (transfer.to_venue, transfer.network) == ("binance", "TRC20")


def test_get_transfer_when_failed_on_venue_then_failed(venue, fake):
    venue.withdraw(transfer_id="rebal7", asset="USDT", amount=Decimal(250), to_venue="binance", network="TRC20")
    fake.settle_withdrawal("rebal7", state="-1")

    assert venue.get_transfer("rebal7").status is TransferStatus.FAILED


def test_get_transfer_when_unknown_then_none(venue):
    assert venue.get_transfer("never") is None


@pytest.fixture
def no_withdrawal_client_id(monkeypatch: pytest.MonkeyPatch) -> None:
    """The exchange as if it kept no client id for withdrawals (most venues but OKX)."""
    quirks = replace(QUIRKS["okx"], withdraw_client_id_param=None, withdrawal_client_id_field=None)
    monkeypatch.setitem(QUIRKS, "okx", quirks)


def _usdt(venue: CcxtVenue, transfer_id: str = "w1", amount: str = "5") -> Any:
    return venue.withdraw(
        transfer_id=transfer_id, asset="USDT", amount=Decimal(amount), to_venue="binance", network="TRC20"
    )


def test_get_transfer_when_venue_keeps_no_client_id_then_stored_withdrawal_id_is_used_by_any_process(
    fake, no_withdrawal_client_id
):
    _usdt(make_venue(fake))

    found = make_venue(fake).get_transfer("w1")  # a new instance: nothing in its memory

    assert found is not None and found.amount == Decimal(5)
    assert "clientId" not in fake.requests[-1].query
    assert withdrawal_ledger.find("w1").venue_withdrawal_id == fake.book.withdrawals[0]["wdId"]


def test_withdraw_when_answer_lost_and_retried_by_another_process_then_found_in_history_and_sent_once(
    fake, no_withdrawal_client_id
):
    first = make_venue(fake)
    first.exchange.timeout = 250
    fake.fail("asset/withdrawal", fx.slow(1.0, processed=True))
    with pytest.raises(TemporaryVenueError):
        _usdt(first)
    assert withdrawal_ledger.find("w1").status is withdrawal_ledger.AttemptStatus.UNKNOWN

    retried = _usdt(make_venue(fake))

    assert retried.transfer_id == "w1" and retried.amount == Decimal(5)
    assert fake.calls("asset/withdrawal") == 1
    assert withdrawal_ledger.find("w1").venue_withdrawal_id == fake.book.withdrawals[0]["wdId"]
    assert make_venue(fake).get_transfer("w1").status is TransferStatus.PENDING


def test_withdraw_when_outcome_unknown_and_history_silent_then_never_sent_again_until_lag_passed(
    fake, no_withdrawal_client_id
):
    first = make_venue(fake)
    first.exchange.timeout = 250
    fake.fail("asset/withdrawal", fx.slow(1.0, processed=False))  # lost before the venue acted
    with pytest.raises(TemporaryVenueError):
        _usdt(first)

    with pytest.raises(OutcomeUnknownError, match="not sent again before"):
        _usdt(make_venue(fake))
    with pytest.raises(OutcomeUnknownError):
        make_venue(fake).get_transfer("w1")  # an undo must not read this as "nothing to undo"
    assert fake.calls("asset/withdrawal") == 1

    after_lag = make_venue(fake, withdrawal_history_lag_seconds=0)
    assert after_lag.get_transfer("w1") is None  # the history still lacks it after the lag: not sent
    sent = _usdt(after_lag)
    assert fake.calls("asset/withdrawal") == 2 and len(fake.book.withdrawals) == 1
    assert sent.transfer_id == "w1"


def test_withdraw_when_two_history_rows_match_then_unknown_not_a_guess(fake, no_withdrawal_client_id):
    other = make_venue(fake)
    other.exchange.withdraw("USDT", 5.0, ADDRESSES[("binance", "USDT", "TRC20")], params={"network": "TRC20"})
    other.exchange.withdraw("USDT", 5.0, ADDRESSES[("binance", "USDT", "TRC20")], params={"network": "TRC20"})
    withdrawal_ledger.record_attempt(
        transfer_id="w1",
        venue=VENUE,
        asset="USDT",
        amount=Decimal(5),
        to_venue="binance",
        network="TRC20",
        address=ADDRESSES[("binance", "USDT", "TRC20")],
    )

    with pytest.raises(OutcomeUnknownError, match="matches 2 withdrawals"):
        _usdt(make_venue(fake))
    assert fake.calls("asset/withdrawal") == 2


def test_withdraw_when_same_transfer_id_with_other_amount_then_key_reused_error_and_nothing_sent(venue, fake):
    _usdt(venue, "rebal8", "250")

    with pytest.raises(IdempotencyKeyReusedError, match="amount 250 != 300"):
        _usdt(make_venue(fake), "rebal8", "300")
    assert fake.calls("asset/withdrawal") == 1


def test_place_order_when_same_client_id_with_other_amount_then_key_reused_error(venue, fake):
    venue.place_order(order("same1"))

    with pytest.raises(IdempotencyKeyReusedError, match="amount"):
        make_venue(fake).place_order(order("same1", amount=Decimal("0.5")))
    with pytest.raises(IdempotencyKeyReusedError, match="side"):
        make_venue(fake).place_order(order("same1", side=Side.SELL))
    assert make_venue(fake).place_order(order("same1")).amount == Decimal("0.3")  # the same request: the order


def test_ohlcv_when_limit_exceeds_one_page_then_paginates_without_duplicates(venue, fake):
    since = hour_floor(datetime.now(UTC)) - timedelta(hours=300)

    candles = venue.ohlcv("BTC/USDT", "1h", since=since, limit=250)

    assert len(candles) == 250
    assert candles[0].ts == since
    assert all(b.ts - a.ts == timedelta(hours=1) for a, b in itertools.pairwise(candles))
    assert fake.calls("market/candles") == 3  # 100 + 100 + 50
    assert [r.query["limit"] for r in fake.requests] == ["100", "100", "50"]
    assert isinstance(candles[0].close, Decimal)


def test_bars_when_a_range_of_minutes_then_paginated_frame_of_exactly_that_range(venue, fake):
    """What the data pipeline's extract calls: ``Venue.bars`` through ccxt, page by page."""
    start = hour_floor(datetime.now(UTC)) - timedelta(hours=20)
    end = start + timedelta(hours=4)

    bars = venue.bars("BTC/USDT", "1m", start, end)

    assert len(bars) == 240 and str(bars["ts"].dtype) == "datetime64[us, UTC]"
    assert bars["ts"].iloc[0] == start and bars["ts"].iloc[-1] == end - timedelta(minutes=1)
    assert bars["ts"].is_unique and bars["ts"].is_monotonic_increasing
    assert [str(bars[c].dtype) for c in ("open", "high", "low", "close", "volume")] == ["float64"] * 5
    assert fake.calls("market/candles") + fake.calls("market/history-candles") == 3  # 100 + 100 + 40


def test_ohlcv_when_only_since_then_walks_forward_until_no_new_candles(venue, fake):
    since = hour_floor(datetime.now(UTC)) - timedelta(hours=150)

    candles = venue.ohlcv("BTC/USDT", "1h", since=since)

    assert candles[0].ts == since
    assert len({c.ts for c in candles}) == len(candles) >= 151
    assert fake.calls("market/candles") == 3  # 100, 51, then an empty page


def test_ohlcv_when_only_limit_then_latest_candles_in_one_call(venue, fake):
    candles = venue.ohlcv("BTC/USDT", "1h", limit=5)

    assert len(candles) == 5
    assert candles[-1].ts >= hour_floor(datetime.now(UTC)) - timedelta(hours=1)
    assert fake.calls("market/candles") == 1


def test_ohlcv_when_since_is_months_ago_then_history_endpoint(venue, fake):
    since = hour_floor(datetime.now(UTC)) - timedelta(days=90)

    candles = venue.ohlcv("BTC/USDT", "1h", since=since, limit=120)

    assert len(candles) == 120 and candles[0].ts == since
    assert fake.calls("market/history-candles") == 2


# --------------------------------------------------------------------------------------------
# error translation through the wire: method x fault -> project error, one HTTP call, no retry


def _place(venue: CcxtVenue) -> Any:
    return venue.place_order(order("err1"))


def _withdraw(venue: CcxtVenue) -> Any:
    return venue.withdraw(transfer_id="err1", asset="USDT", amount=Decimal(5), to_venue="binance", network="TRC20")


# method -> (failing endpoint, HTTP method, the call)
METHODS: dict[str, tuple[str, str, Callable[[CcxtVenue], Any]]] = {
    "balances": ("account/balance", "GET", lambda v: v.balances()),
    "positions": ("account/positions", "GET", lambda v: v.positions()),
    "mark_price": ("public/mark-price", "GET", lambda v: v.mark_price("BTC/USDT:USDT")),
    "funding_rates": ("public/funding-rate", "GET", lambda v: v.funding_rates()),
    "place_order": ("trade/batch-orders", "POST", _place),
    "get_order": ("trade/order", "GET", lambda v: v.get_order("err1", "BTC/USDT:USDT")),
    "open_orders": ("trade/orders-pending", "GET", lambda v: v.open_orders()),
    "cancel_order": ("trade/cancel-order", "POST", lambda v: v.cancel_order("err1", "BTC/USDT")),
    "withdraw": ("asset/withdrawal", "POST", _withdraw),
    "get_transfer": ("asset/withdrawal-history", "GET", lambda v: v.get_transfer("err1")),
    "ohlcv": ("market/candles", "GET", lambda v: v.ohlcv("BTC/USDT", "1h", limit=5)),
}
FAULTS: dict[str, tuple[fx.Fault, type[VenueError]]] = {
    "rate_limited_429": (fx.RATE_LIMITED, TemporaryVenueError),
    "maintenance_503": (fx.MAINTENANCE, TemporaryVenueError),
    "bad_gateway_502_html": (fx.BAD_GATEWAY, TemporaryVenueError),
    "timeout": (fx.slow(1.0), TemporaryVenueError),
    "insufficient_funds": (fx.INSUFFICIENT_FUNDS, InsufficientFundsError),
    "invalid_order": (fx.INVALID_ORDER, InvalidOrderError),
    "auth_failed_401": (fx.AUTH_FAILED, AuthenticationError),
}


@pytest.mark.parametrize("fault_name", FAULTS)
@pytest.mark.parametrize("method", METHODS)
def test_each_method_when_venue_answers_fault_then_project_error_after_exactly_one_call(
    venue, fake, method, fault_name
):
    path, http_method, call = METHODS[method]
    fault, expected = FAULTS[fault_name]
    if method == "cancel_order":
        venue.place_order(resting_limit("err1"))
    if fault.delay:
        venue.exchange.timeout = 250  # ms; the fake answers after 1 s
    fake.clear_requests()
    fake.fail(path, fault, method=http_method)

    with pytest.raises(expected) as caught:
        call(venue)

    assert type(caught.value) is expected
    assert f"venue '{VENUE}' {method}()" in str(caught.value)
    assert fake.calls(path, http_method) == 1  # no hidden retry
    assert fake.paths()[-1] == f"{http_method} {path}"  # and nothing after the failure


def test_balances_when_secret_is_wrong_then_authentication_error_without_credentials_in_message(fake):
    venue = make_venue(fake, credentials={**CREDENTIALS, "secret": "wrong-secret"})

    with pytest.raises(AuthenticationError, match="50113") as caught:
        venue.balances()  # fails already at the private currency list load_markets asks for

    assert "wrong-secret" not in str(caught.value)
    assert "fake-key" not in str(caught.value) and "fake-pass" not in str(caught.value)


def test_balances_when_venue_unreachable_then_temporary_error(fake):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = VenueConfig(kind="ccxt", ccxt_id="okx", markets=MARKETS, options=OPTIONS)
    venue = CcxtVenue(VENUE, config, credentials=CREDENTIALS, urls={"rest": f"http://127.0.0.1:{port}"})

    with pytest.raises(TemporaryVenueError, match="balances"):
        venue.balances()


def test_calls_when_debug_logging_then_credentials_never_logged(fake, caplog):
    caplog.set_level(logging.DEBUG)
    venue = make_venue(fake)

    venue.balances()
    venue.place_order(order())
    with pytest.raises(InsufficientFundsError):
        venue.place_order(order("big1", amount=Decimal(100)))

    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "trade/batch-orders" in logged or "placed" in logged
    for secret in CREDENTIALS.values():
        assert secret not in logged


# --------------------------------------------------------------------------------------------
# translate_ccxt_error as a pure function, over every row of the table


def _method_for(rule: ErrorRule) -> str:
    return sorted(rule.methods)[0] if rule.methods else "balances"


@pytest.mark.parametrize("rule", ERROR_RULES, ids=lambda rule: rule.ccxt_error.__name__)
def test_translate_ccxt_error_when_table_row_then_its_project_error(rule):
    error = translate_ccxt_error(rule.ccxt_error("okx boom"), venue="v", method=_method_for(rule))

    assert type(error) is rule.error
    assert str(error) == f"venue 'v' {_method_for(rule)}() failed: {rule.ccxt_error.__name__}: okx boom"


def test_translate_ccxt_error_when_table_read_top_down_then_no_row_is_shadowed():
    for later_index, later in enumerate(ERROR_RULES):
        for earlier in ERROR_RULES[:later_index]:
            shadowed = issubclass(later.ccxt_error, earlier.ccxt_error) and earlier.methods is None
            assert not shadowed, f"{later.ccxt_error.__name__} is hidden by {earlier.ccxt_error.__name__}"


def test_translate_ccxt_error_when_order_not_found_outside_a_look_up_then_invalid_order():
    assert type(translate_ccxt_error(ccxt.OrderNotFound("x"), venue="v", method="get_order")) is NotFoundError
    assert type(translate_ccxt_error(ccxt.OrderNotFound("x"), venue="v", method="place_order")) is InvalidOrderError


def test_translate_ccxt_error_when_network_error_then_temporary_although_not_an_exchange_error():
    assert not issubclass(ccxt.NetworkError, ccxt.ExchangeError)
    error = translate_ccxt_error(ccxt.NetworkError("reset"), venue="v", method="balances")
    assert type(error) is TemporaryVenueError


def test_translate_ccxt_error_when_not_a_ccxt_error_then_operational_error():
    assert type(translate_ccxt_error(KeyError("ordId"), venue="v", method="get_order")) is OperationalError


def test_translate_ccxt_error_when_already_a_venue_error_then_unchanged():
    original = InvalidOrderError("x")
    assert translate_ccxt_error(original, venue="v", method="place_order") is original


def test_translate_ccxt_error_when_message_contains_credentials_then_redacted():
    exc = ccxt.AuthenticationError("okx GET /x?apiKey=k-123&sig=s-456 rejected")

    error = translate_ccxt_error(exc, venue="v", method="balances", secrets=("k-123", "s-456", ""))

    assert "k-123" not in str(error) and "s-456" not in str(error)
    assert "apiKey=***" in str(error)
