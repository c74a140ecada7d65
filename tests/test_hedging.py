"""The funding-rate hedge on the real paper exchange (no mocks).

Default paper world (config/tradeops.yaml): spot BTC 2 / 1 / 1 and ETH 20 / 10 / 10 on
binance / bybit / okx; BTC perp funding 0.0001 per 8 h / 0.00005 per 4 h / 0.00012 per 8 h,
ETH perp 0.0001 / 0.00006 per 4 h / 0.0001. Normalised to 8 h: BTC pays best on okx (1.2 bps),
ETH on bybit (1.2 bps). Marks: okx BTC 64987 (-2 bps offset), bybit ETH 3200.96 (+3 bps).
min_adjustment BTC 0.001 / ETH 0.01; max_adjustment_notional 2,000,000; deviation threshold 20 bps.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal as D
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from tradeops import risk
from tradeops.conditions import funding_deviation
from tradeops.config import Settings, settings
from tradeops.errors import TemporaryVenueError
from tradeops.events import parse_event, to_json
from tradeops.funding_events import EVENT_SOURCE, deviation_events, publish_deviations
from tradeops.funding_snapshot import FundingSnapshot, snapshot_funding
from tradeops.hedging import AdjustmentStatus, HedgePlan, plan_hedge, verify_hedge
from tradeops.model import OrderRequest, OrderType, Side
from tradeops.position_steps import set_perp_position, undo_set_perp_position
from tradeops.risk import TradingState
from tradeops.saga.core import UndoOutcome
from tradeops.saga.keys import idempotency_key, undo_key
from tradeops.venues.base import Venue
from tradeops.venues.factory import open_venue
from tradeops.venues.paper import PaperVenue, seed_paper_world

BTC = "BTC/USDT:USDT"
ETH = "ETH/USDT:USDT"
HEDGE = (BTC, ETH)
DAG_ID = "funding_rate_hedge_cron"


@pytest.fixture
def world(db_url: str) -> Iterator[dict[str, Venue]]:
    """A freshly seeded paper world; every configured venue opened through the guarded factory."""
    settings.cache_clear()
    seed_paper_world(settings())
    yield {name: open_venue(name) for name in settings().venues}
    settings.cache_clear()


def _paper(name: str) -> PaperVenue:
    return PaperVenue(name, settings())


def _open_perp(venue: str, symbol: str, size: str) -> None:
    """Give ``venue`` a perp position of signed ``size`` before the hedge looks."""
    amount = D(size)
    _paper(venue).place_order(
        OrderRequest(
            venue=venue,
            symbol=symbol,
            side=Side.BUY if amount > 0 else Side.SELL,
            amount=abs(amount),
            client_order_id=f"setup-{venue}-{symbol.split('/')[0]}",
        )
    )


def _step(venue: str, symbol: str, target: str) -> dict[str, Any]:
    return {"venue": venue, "symbol": symbol, "target": target}


def _hedge_settings(**changes: Any) -> Settings:
    current = settings()
    return current.model_copy(update={"hedge": current.hedge.model_copy(update=changes)})


def _plan(world: dict[str, Venue], state: TradingState = TradingState.ACTIVE) -> HedgePlan:
    return plan_hedge(snapshot_funding(world, HEDGE), settings(), state)


def _execute(plan: HedgePlan, run_id: str = "run-1") -> list[tuple[dict[str, Any], str]]:
    """Run every planned step through the saga action, keyed like map-indexed Airflow tasks."""
    done = []
    for index, step in enumerate(plan.to_saga_steps()):
        key = idempotency_key(DAG_ID, run_id, "adjust", index)
        set_perp_position(step, key)
        done.append((step, key))
    return done


def _positions(world: dict[str, Venue]) -> dict[tuple[str, str], D]:
    return {(q.venue, q.symbol): q.position for q in snapshot_funding(world, HEDGE).perps if q.position != 0}


# -- snapshot -----------------------------------------------------------------------------------


def test_snapshot_when_default_world_then_bybit_4h_rate_normalised_to_8h_exactly(world: dict[str, Venue]) -> None:
    snapshot = snapshot_funding(world, HEDGE)

    bybit_btc = snapshot.quote("bybit", BTC)
    assert bybit_btc is not None
    assert (bybit_btc.rate, bybit_btc.interval_hours, bybit_btc.normalised_rate) == (D("0.00005"), 4, D("0.0001"))
    assert snapshot.quote("bybit", ETH).normalised_rate == D("0.00012")
    assert snapshot.quote("binance", BTC).normalised_rate == D("0.0001")
    assert snapshot.quote("okx", BTC).normalised_rate == D("0.00012")
    assert snapshot.period_hours == 8


def test_snapshot_when_default_world_then_crypto_venues_spot_marks_and_positions_read(
    world: dict[str, Venue],
) -> None:
    _open_perp("bybit", BTC, "-0.5")

    snapshot = snapshot_funding(world, HEDGE)

    assert sorted({q.venue for q in snapshot.perps}) == ["binance", "bybit", "okx"]
    assert (snapshot.spot_total("BTC"), snapshot.spot_total("ETH")) == (D(4), D(40))
    assert snapshot.quote("okx", BTC).mark_price == D("64987")
    assert snapshot.quote("bybit", BTC).position == D("-0.5")
    assert snapshot.quote("okx", BTC).position == 0
    assert snapshot.unavailable == ()


def test_snapshot_when_serialised_through_json_then_round_trips_exactly(world: dict[str, Venue]) -> None:
    _open_perp("okx", BTC, "-1.25")
    _paper("binance").inject_fault("balances", "operational")
    snapshot = snapshot_funding(world, HEDGE)

    restored = FundingSnapshot.from_dict(json.loads(json.dumps(snapshot.to_dict())))

    assert restored == snapshot
    assert restored.unavailable[0].venue == "binance"
    assert restored.quote("okx", BTC).position == D("-1.25")


def _all_orders(world: dict[str, Venue]) -> list[Any]:
    return [order for name in ("binance", "bybit", "okx") for order in _paper(name).recent_orders()]


def test_plan_when_venue_unreadable_then_every_symbol_it_may_hold_frozen_and_nothing_ordered(
    world: dict[str, Venue], caplog: pytest.LogCaptureFixture
) -> None:
    _paper("binance").inject_fault("funding_rates", "temporary", times=5)

    snapshot = snapshot_funding(world, HEDGE)
    plan = plan_hedge(snapshot, settings(), TradingState.ACTIVE)
    _execute(plan)

    assert [(f.venue, f.error) for f in snapshot.unavailable] == [("binance", "TemporaryVenueError")]
    assert plan.to_saga_steps() == []
    assert [(f.symbol, f.venue) for f in plan.frozen] == [(BTC, "binance"), (ETH, "binance")]
    assert "FROZEN BTC/USDT:USDT: binance unavailable (TemporaryVenueError" in plan.explain()
    assert [item["symbol"] for item in plan.to_dict()["frozen"]] == [BTC, ETH]
    assert HedgePlan.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan
    assert "BTC/USDT:USDT frozen: binance unavailable" in caplog.text
    assert _all_orders(world) == []
    assert verify_hedge(snapshot_funding(world, HEDGE), plan) == []


def test_plan_when_unreadable_venue_trades_only_eth_then_btc_still_hedged_and_eth_frozen(
    world: dict[str, Venue],
) -> None:
    current = settings()
    venues = dict(current.venues)
    venues["binance"] = venues["binance"].model_copy(update={"markets": ("ETH/USDT", ETH)})
    eth_only = current.model_copy(update={"venues": venues})
    _paper("binance").inject_fault("balances", "operational")

    plan = plan_hedge(snapshot_funding(world, HEDGE, settings=eth_only), eth_only, TradingState.ACTIVE)

    assert plan.to_saga_steps() == [_step("okx", BTC, "-2")]  # spot held on bybit and okx: 1 + 1
    assert [(f.symbol, f.venue) for f in plan.frozen] == [(ETH, "binance")]


# -- plan -----------------------------------------------------------------------------------------


def test_plan_when_default_world_then_total_spot_shorted_on_best_funding_venue(world: dict[str, Venue]) -> None:
    plan = _plan(world)

    assert plan.to_saga_steps() == [_step("bybit", ETH, "-40"), _step("okx", BTC, "-4")]
    assert [(h.symbol, h.target_net, h.best_venue) for h in plan.hedges] == [
        (BTC, D(-4), "okx"),
        (ETH, D(-40), "bybit"),
    ]
    assert "PLANNED okx sell 4" in plan.explain()


@pytest.mark.parametrize(
    ("existing", "status"),
    [("-3.9995", AdjustmentStatus.SKIPPED), ("-3.999", AdjustmentStatus.PLANNED)],
)
def test_plan_when_leg_below_min_adjustment_then_skipped_else_planned(
    world: dict[str, Venue], existing: str, status: AdjustmentStatus
) -> None:
    _open_perp("okx", BTC, existing)

    plan = _plan(world)

    [leg] = [a for a in plan.adjustments if a.symbol == BTC]
    assert (leg.venue, leg.side, leg.amount, leg.status) == ("okx", Side.SELL, D(existing) + 4, status)
    assert (_step("okx", BTC, "-4") in plan.to_saga_steps()) is (status is AdjustmentStatus.PLANNED)


@pytest.mark.parametrize(
    ("limit", "status"), [("259947.99", AdjustmentStatus.REFUSED), ("259948", AdjustmentStatus.PLANNED)]
)
def test_plan_when_leg_notional_above_max_then_refused_not_trimmed(
    world: dict[str, Venue], limit: str, status: AdjustmentStatus
) -> None:
    plan = plan_hedge(
        snapshot_funding(world, HEDGE), _hedge_settings(max_adjustment_notional=D(limit)), TradingState.ACTIVE
    )

    [btc] = [a for a in plan.adjustments if a.symbol == BTC]
    assert (btc.amount, btc.status) == (D(4), status)
    assert ("max_adjustment_notional" in btc.reason) is (status is AdjustmentStatus.REFUSED)
    assert _step("bybit", ETH, "-40") in plan.to_saga_steps()


def test_plan_when_one_leg_of_a_move_refused_then_every_leg_of_the_symbol_refused(world: dict[str, Venue]) -> None:
    _open_perp("bybit", BTC, "-3")  # closing it (195,058 notional) is within the limit, opening 4 on okx is not
    _paper("okx").set_funding_rate(BTC, D("0.0003"))

    plan = plan_hedge(
        snapshot_funding(world, HEDGE), _hedge_settings(max_adjustment_notional=D(200_000)), TradingState.ACTIVE
    )

    btc_legs = [(a.venue, a.side, a.amount, a.status) for a in plan.adjustments if a.symbol == BTC]
    assert btc_legs == [
        ("bybit", Side.BUY, D(3), AdjustmentStatus.REFUSED),
        ("okx", Side.SELL, D(4), AdjustmentStatus.REFUSED),
    ]
    assert plan.to_saga_steps() == [_step("bybit", ETH, "-40")]


def test_plan_when_existing_short_within_tolerance_of_best_then_kept_in_place(world: dict[str, Venue]) -> None:
    _open_perp("bybit", BTC, "-4")  # bybit pays 1.0 bp, okx 1.2 bps: within the 1 bp tolerance

    plan = _plan(world)

    assert [a for a in plan.adjustments if a.symbol == BTC] == []
    assert {t.venue: t.target for t in plan.positions if t.symbol == BTC} == {"binance": 0, "bybit": -4, "okx": 0}


def test_plan_when_existing_short_far_below_best_then_moved_with_reductions_first(world: dict[str, Venue]) -> None:
    _open_perp("bybit", BTC, "-4")
    _paper("okx").set_funding_rate(BTC, D("0.0003"))  # okx 3 bps vs bybit 1 bp

    plan = _plan(world)

    assert plan.to_saga_steps() == [
        _step("bybit", BTC, "0"),
        _step("bybit", ETH, "-40"),
        _step("okx", BTC, "-4"),
    ]


def test_plan_when_position_must_change_sign_then_reduce_only_close_before_open(world: dict[str, Venue]) -> None:
    _open_perp("okx", BTC, "1")

    plan = _plan(world)

    assert plan.to_saga_steps() == [
        _step("okx", BTC, "0"),
        _step("bybit", ETH, "-40"),
        _step("okx", BTC, "-4"),
    ]


@pytest.mark.parametrize("state", [TradingState.REDUCING, TradingState.HALTED])
def test_plan_when_trading_not_active_then_only_reductions_planned_and_said_so(
    world: dict[str, Venue], state: TradingState
) -> None:
    _open_perp("bybit", BTC, "-5")  # over-hedged by 1 BTC, on a venue ACTIVE would move away from
    _paper("okx").set_funding_rate(BTC, D("0.0003"))

    plan = _plan(world, state)

    assert plan.to_saga_steps() == [_step("bybit", BTC, "-4")]
    [eth] = [a for a in plan.adjustments if a.symbol == ETH]
    assert eth.status is AdjustmentStatus.SKIPPED and f"trading state {state.value}" in eth.reason
    assert any(f"trading state {state.value}" in note and "only reductions" in note for note in plan.notes)


def test_plan_when_symbols_named_then_only_configured_hedge_symbols_planned(world: dict[str, Venue]) -> None:
    snapshot = snapshot_funding(world, [BTC])

    plan = plan_hedge(snapshot, settings(), TradingState.ACTIVE, symbols=[BTC, "SOL/USDT:USDT"])

    assert plan.to_saga_steps() == [_step("okx", BTC, "-4")]
    assert any(note.startswith("SOL/USDT:USDT is not a hedge symbol") for note in plan.notes)


def test_plan_when_serialised_through_json_then_round_trips_with_same_steps(world: dict[str, Venue]) -> None:
    _open_perp("okx", BTC, "1")
    plan = _plan(world, TradingState.REDUCING)

    restored = HedgePlan.from_dict(json.loads(json.dumps(plan.to_dict())))

    assert restored == plan
    assert restored.to_saga_steps() == plan.to_saga_steps() == [_step("okx", BTC, "0")]


# -- execution and verification -------------------------------------------------------------------


def test_execute_when_planned_steps_placed_then_targets_reached_and_verify_clean(world: dict[str, Venue]) -> None:
    plan = _plan(world)

    _execute(plan)

    after = snapshot_funding(world, HEDGE)
    assert verify_hedge(after, plan) == []
    assert _positions(world) == {("bybit", ETH): D(-40), ("okx", BTC): D(-4)}
    assert plan_hedge(after, settings(), TradingState.ACTIVE).to_saga_steps() == []


def test_execute_when_two_runs_planned_from_one_state_then_hedge_reached_once_not_doubled(
    world: dict[str, Venue],
) -> None:
    first, second = _plan(world), _plan(world)  # two runs raced: both saw no short yet

    _execute(first, "run-1")
    _execute(second, "run-2")

    assert _positions(world) == {("bybit", ETH): D(-40), ("okx", BTC): D(-4)}
    assert len(_all_orders(world)) == 2  # the second run's legs found the target already reached


def test_set_perp_position_when_retried_after_its_order_went_through_then_found_by_key_not_reordered(
    world: dict[str, Venue],
) -> None:
    _paper("okx").inject_fault("place_order", "temporary", phase="after")
    step, key = _step("okx", BTC, "-4"), idempotency_key(DAG_ID, "run-1", "adjust", 0)
    with pytest.raises(TemporaryVenueError):
        set_perp_position(step, key)
    _open_perp("okx", BTC, "1")  # the position moved before the retry

    retried = set_perp_position(step, key)

    assert retried["found_by_key"] is True
    assert sorted(o.client_order_id for o in _paper("okx").recent_orders()) == sorted(["setup-okx-BTC", key])
    assert _positions(world) == {("okx", BTC): D(-3)}


@pytest.mark.parametrize(
    ("existing", "side", "amount", "reduce_only"),
    [("-5", Side.BUY, "1", True), ("-3", Side.SELL, "1", False), ("1", Side.SELL, "5", False)],
)
def test_set_perp_position_when_live_position_differs_then_orders_the_difference_reduce_only_if_it_only_reduces(
    world: dict[str, Venue], existing: str, side: Side, amount: str, reduce_only: bool
) -> None:
    _open_perp("okx", BTC, existing)
    key = idempotency_key(DAG_ID, "run-1", "adjust", 0)

    result = set_perp_position(_step("okx", BTC, "-4"), key)

    order = _paper("okx").get_order(key)
    assert (order.side, order.amount, order.reduce_only) == (side, D(amount), reduce_only)
    assert result["before"] == existing
    assert _positions(world) == {("okx", BTC): D(-4)}


def test_set_perp_position_when_within_min_adjustment_then_nothing_ordered(world: dict[str, Venue]) -> None:
    _open_perp("okx", BTC, "-3.9995")  # 0.0005 from the target, min_adjustment BTC 0.001
    key = idempotency_key(DAG_ID, "run-1", "adjust", 0)

    result = set_perp_position(_step("okx", BTC, "-4"), key)

    assert result["order"] is None and "min_adjustment" in result["reason"]
    assert _paper("okx").get_order(key) is None
    assert undo_set_perp_position(_step("okx", BTC, "-4"), key).outcome is UndoOutcome.NOTHING_TO_UNDO


def test_undo_set_perp_position_when_run_twice_then_traded_back_once(world: dict[str, Venue]) -> None:
    _open_perp("okx", BTC, "-1")
    step, key = _step("okx", BTC, "-4"), idempotency_key(DAG_ID, "run-1", "adjust", 0)
    set_perp_position(step, key)

    first, second = undo_set_perp_position(step, key), undo_set_perp_position(step, key)

    assert (first.outcome, second.outcome) == (UndoOutcome.UNDONE, UndoOutcome.UNDONE)
    reverse = _paper("okx").get_order(undo_key(key))
    assert (reverse.side, reverse.amount, reverse.reduce_only) == (Side.BUY, D(3), True)
    assert _positions(world) == {("okx", BTC): D(-1)}


def test_undo_set_perp_position_when_reverse_order_rests_unfilled_then_canceled_and_traded_back_again(
    world: dict[str, Venue],
) -> None:
    step, key = _step("okx", BTC, "-4"), idempotency_key(DAG_ID, "run-1", "adjust", 0)
    set_perp_position(step, key)
    resting = OrderRequest(
        venue="okx",
        symbol=BTC,
        side=Side.BUY,
        amount=D(4),
        client_order_id=undo_key(key),
        order_type=OrderType.LIMIT,
        price=D(1000),
    )
    _paper("okx").place_order(resting)  # the reverse order rests unfilled (as after a venue outage)

    result = undo_set_perp_position(step, key)

    assert result.outcome is UndoOutcome.UNDONE
    assert [(r["status"], r["filled"]) for r in result.detail["reverses"]] == [("canceled", "0"), ("filled", "4")]
    assert _positions(world) == {}


def test_undo_when_steps_undone_in_reverse_then_adjustments_reversed(world: dict[str, Venue]) -> None:
    done = _execute(_plan(world))

    outcomes = [undo_set_perp_position(step, key).outcome for step, key in reversed(done)]

    assert outcomes == [UndoOutcome.UNDONE, UndoOutcome.UNDONE]
    assert _positions(world) == {}


def test_execute_when_halted_then_reduce_only_legs_pass_the_guard_and_verify_clean(world: dict[str, Venue]) -> None:
    _open_perp("bybit", BTC, "-5")
    risk.set_state(TradingState.HALTED, reason="test", changed_by="test_hedging")
    plan = _plan(world, risk.get_state().state)

    _execute(plan)

    assert verify_hedge(snapshot_funding(world, HEDGE), plan) == []
    assert _positions(world) == {("bybit", BTC): D(-4)}


def test_verify_when_steps_not_executed_then_each_missed_position_reported(world: dict[str, Venue]) -> None:
    plan = _plan(world)

    problems = verify_hedge(snapshot_funding(world, HEDGE), plan)

    assert len(problems) == 2
    assert problems[0].startswith("okx BTC/USDT:USDT: position 0, expected -4")
    assert problems[1].startswith("bybit ETH/USDT:USDT: position 0, expected -40")


# -- deviation events -----------------------------------------------------------------------------


@pytest.mark.parametrize("bybit_rate", ["0.00005", "0.00105"])  # 0.00105 per 4 h: exactly 20 bps off
def test_deviation_events_when_gap_not_above_threshold_then_none(world: dict[str, Venue], bybit_rate: str) -> None:
    _paper("bybit").set_funding_rate(BTC, D(bybit_rate))

    assert deviation_events(snapshot_funding(world, HEDGE), settings()) == []


def test_deviation_events_when_gap_above_threshold_then_event_round_trips_and_condition_fires(
    world: dict[str, Venue],
) -> None:
    _paper("bybit").set_funding_rate(BTC, D("0.0015"))  # 30 bps per 8 h vs binance 1 bp

    [event] = deviation_events(snapshot_funding(world, HEDGE), settings())

    assert (event.symbol, event.deviation_bps, event.source) == (BTC, D(29), EVENT_SOURCE)
    assert [(r.venue, r.rate, r.interval_hours) for r in event.rates] == [
        ("binance", D("0.0001"), 8),
        ("bybit", D("0.0015"), 4),
        ("okx", D("0.00012"), 8),
    ]
    parsed = parse_event(to_json(event))
    assert parsed == event
    assert funding_deviation(parsed, settings()).fire


def _read_at(bootstrap: str, topic: str, partition: int, offset: int, timeout: float = 20.0) -> bytes:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"test-{uuid.uuid4()}"})
    try:
        consumer.assign([TopicPartition(topic, partition, offset)])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                return bytes(message.value())
        raise AssertionError(f"nothing at {topic}[{partition}]@{offset} after {timeout}s")
    finally:
        consumer.close()


@pytest.mark.kafka
def test_publish_deviations_when_gap_above_threshold_then_broker_stores_event_passing_condition(
    kafka_bootstrap: str, world: dict[str, Venue]
) -> None:
    _paper("okx").set_funding_rate(ETH, D("-0.002"))

    [report] = publish_deviations(snapshot_funding(world, HEDGE), settings(), bootstrap=kafka_bootstrap)

    stored = parse_event(_read_at(kafka_bootstrap, report.topic, report.partition, report.offset))
    assert (report.topic, report.key, stored.event_id) == ("funding-rate-events", ETH, report.event_id)
    assert funding_deviation(stored, settings()).fire
