"""The funding-rate hedge DAGs end to end (``dag.test()``) on the paper venue and the real broker."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from tests.dag_files import load_dag
from tests.fixtures.events import deliver
from tests.fixtures.kafka import end_offsets, read_from
from tradeops import risk
from tradeops.config import settings
from tradeops.saga import ledger

pytestmark = [pytest.mark.airflow, pytest.mark.kafka, pytest.mark.slow]


def _venue(name: str) -> Any:
    from tradeops.venues.paper import PaperVenue

    return PaperVenue(name, settings())


def _positions() -> dict[tuple[str, str], Decimal]:
    return {(n, p.symbol): p.size for n in ("binance", "bybit", "okx") for p in _venue(n).positions()}


def _deviation_fields(symbol: str) -> dict[str, Any]:
    return {
        "symbol": symbol,
        "deviation_bps": "29",
        "rates": [
            {"venue": "binance", "rate": "0.0001", "interval_hours": 8},
            {"venue": "bybit", "rate": "0.0015", "interval_hours": 4},
        ],
    }


def test_cron_hedge_when_spot_unhedged_then_shorts_placed_on_best_venue_and_verified(
    paper_world: None, kafka_bootstrap: str
) -> None:
    run = load_dag("funding_rate_hedge_cron").test()

    assert run.state == "success"
    # 4 BTC and 40 ETH held spot across venues; okx pays the most BTC funding, bybit the most ETH.
    assert _positions() == {("okx", "BTC/USDT:USDT"): Decimal("-4"), ("bybit", "ETH/USDT:USDT"): Decimal("-40")}
    steps = [e for e in ledger.entries(run.run_id, "funding_rate_hedge_cron") if e.outcome == "succeeded"]
    assert len(steps) == 2


def test_cron_hedge_when_rates_deviate_over_threshold_then_deviation_event_published(
    paper_world: None, kafka_bootstrap: str
) -> None:
    _venue("bybit").set_funding_rate("BTC/USDT:USDT", Decimal("0.0015"))  # 30 bps per 8 h on bybit
    topic = settings().kafka.topics.funding_rate_events
    start = end_offsets(kafka_bootstrap, topic)

    run = load_dag("funding_rate_hedge_cron").test()

    assert run.state == "success"
    published = [json.loads(m.value()) for m in read_from(kafka_bootstrap, topic, start)]
    assert [(e["event_type"], e["symbol"]) for e in published] == [("funding_rate_deviation", "BTC/USDT:USDT")]
    assert Decimal(published[0]["deviation_bps"]) > 20
    # The short moved to where it now earns the most: bybit.
    assert _positions()[("bybit", "BTC/USDT:USDT")] == Decimal("-4")


def test_cron_hedge_when_second_adjustment_fails_then_first_undone_and_run_failed(
    paper_world: None, kafka_bootstrap: str
) -> None:
    _venue("okx").inject_fault("place_order", "insufficient_funds")  # the ETH leg on bybit goes first

    run = load_dag("funding_rate_hedge_cron").test()

    assert run.state == "failed"
    assert all(size == 0 for size in _positions().values())
    undone = [e.step for e in ledger.entries(run.run_id, "funding_rate_hedge_cron") if e.outcome == "undone"]
    assert undone == ["adjust_hedge"]


def test_cron_hedge_when_trading_halted_then_no_exposure_opened(paper_world: None, kafka_bootstrap: str) -> None:
    risk.set_state(risk.TradingState.HALTED, reason="test", changed_by="test")

    run = load_dag("funding_rate_hedge_cron").test()

    assert run.state == "success"
    assert _positions() == {}
    assert not [e for e in ledger.entries(run.run_id, "funding_rate_hedge_cron") if e.kind == "action"]


def test_event_hedge_when_deviation_event_then_only_named_symbol_hedged_once(
    paper_world: None, kafka_bootstrap: str
) -> None:
    fired = deliver(kafka_bootstrap, "funding_deviation", "funding-rate-deviation", _deviation_fields("BTC/USDT:USDT"))
    assert len(fired) == 1  # 1 bp vs 30 bps per 8 h: over the 20 bps threshold
    event = fired[0]

    first = load_dag("funding_rate_hedge_event").test(run_conf={"events": [event]})
    _venue("bybit").set_funding_rate("BTC/USDT:USDT", Decimal("0.0015"))  # bybit now best: a re-run would move
    second = load_dag("funding_rate_hedge_event").test(run_conf={"events": [event]})

    assert first.state == "success" and second.state == "success"
    assert _positions() == {("okx", "BTC/USDT:USDT"): Decimal("-4")}
    assert not [e for e in ledger.entries(second.run_id, "funding_rate_hedge_event") if e.kind == "action"]


def test_cron_hedge_when_first_adjustment_fails_then_later_ones_never_act(
    paper_world: None, kafka_bootstrap: str
) -> None:
    _venue("bybit").inject_fault("place_order", "insufficient_funds")  # the first leg (ETH on bybit)

    run = load_dag("funding_rate_hedge_cron").test()

    assert run.state == "failed"
    assert _positions() == {}
    actions = [e for e in ledger.entries(run.run_id, "funding_rate_hedge_cron") if e.kind == "action"]
    assert {e.map_index for e in actions} == {0}  # the okx leg (map index 1) was skipped, not run
