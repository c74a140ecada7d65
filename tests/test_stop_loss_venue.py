"""The emergency stop on one venue (paper, real project DB), with an injected clock: dust,
assets no market can sell, equities outside NYSE hours; NYSE sessions; the undo of a HALT."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tests.fixtures.paper import FakeClock
from tradeops import risk
from tradeops.config import Settings, load_settings
from tradeops.model import OrderRequest, OrderStatus, Side
from tradeops.stoploss import flatten_desk, flatten_venue
from tradeops.stoploss.exposure import measure
from tradeops.venues.equity_sessions import NyseSessions, Session
from tradeops.venues.factory import GuardedVenue, open_venue
from tradeops.venues.paper import PaperVenue, seed_paper_world

TUESDAY_10_NY = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
SATURDAY = datetime(2026, 12, 5, 15, 0, tzinfo=UTC)


def _world(**env: str) -> Settings:
    settings = load_settings(env={f"TRADEOPS__{k.upper()}": v for k, v in env.items()})
    seed_paper_world(settings)
    return settings


@pytest.fixture
def halted(db_url: str) -> None:
    risk.set_state(risk.TradingState.HALTED, reason="test: emergency stop", changed_by="test")


def _paper(settings: Settings, name: str, clock: Callable[[], datetime]) -> PaperVenue:
    return PaperVenue(name, settings, clock=clock)


def _flatten(settings: Settings, name: str, clock: FakeClock) -> tuple[PaperVenue, dict[str, object]]:
    paper = _paper(settings, name, clock)
    report = flatten_venue(
        GuardedVenue(paper, None),
        settings,
        key_prefix="test",
        deadline=clock() + timedelta(seconds=30),
        clock=clock,
        sleep=lambda seconds: clock.advance(seconds=seconds),
    )
    return paper, report.to_dict()


def _sell(paper: PaperVenue, symbol: str, amount: str) -> None:
    request = OrderRequest(
        venue=paper.name, symbol=symbol, side=Side.SELL, amount=Decimal(amount), client_order_id=f"sell-{symbol}"
    )
    paper.place_order(request)


def test_measure_when_spot_left_is_within_its_dust_then_venue_flat(db_url: str) -> None:
    settings = _world()
    paper = _paper(settings, "binance", FakeClock(TUESDAY_10_NY))
    _sell(paper, "BTC/USDT", "1.999995")  # leaves 0.000005 BTC, dust 0.00001
    _sell(paper, "ETH/USDT", "19.99995")  # leaves 0.00005 ETH, dust 0.0001

    state = measure(paper, settings, set())

    assert state.flat and state.status == "flat"
    assert {e.asset: e.spot for e in state.exposures} == {"BTC": Decimal("0.000005"), "ETH": Decimal("0.00005")}


def test_flatten_when_spot_left_is_over_its_dust_then_not_flat_until_sold(db_url: str, halted: None) -> None:
    settings = _world()
    clock = FakeClock(TUESDAY_10_NY)
    paper = _paper(settings, "binance", clock)
    _sell(paper, "BTC/USDT", "1.99998")  # leaves 0.00002 BTC, over the 0.00001 dust
    _sell(paper, "ETH/USDT", "20")
    assert not measure(paper, settings, set()).flat

    paper, report = _flatten(settings, "binance", clock)

    assert report["flat"] and report["positions_closed"] == 1
    assert paper.balances()["BTC"].total == 0


def test_flatten_when_an_asset_has_no_market_here_then_reported_unsellable_and_not_flat(
    db_url: str, halted: None
) -> None:
    base = load_settings()
    config = base.venues["binance"]
    binance = config.model_copy(update={"initial_balances": {**config.initial_balances, "SOL": Decimal(5)}})
    settings = base.model_copy(update={"venues": {**base.venues, "binance": binance}})
    seed_paper_world(settings)
    clock = FakeClock(TUESDAY_10_NY)

    paper, report = _flatten(settings, "binance", clock)

    assert not report["flat"] and report["status"] == "not_flat"
    assert report["unsellable"] == ["SOL"]
    assert report["rounds"] == 1  # nothing a further round could change
    assert paper.balances()["BTC"].total == 0 and paper.balances()["SOL"].total == 5


def test_flatten_when_equities_outside_regular_hours_then_pending_the_open_not_flat(
    db_url: str, halted: None
) -> None:
    settings = _world(paper__equity_sessions="xnys")
    clock = FakeClock(SATURDAY)

    paper, report = _flatten(settings, "alpaca", clock)

    assert not report["flat"] and report["status"] == "pending_open"
    assert report["pending_open"] == ["IWM/USD", "TSLA/USD"]
    assert report["rounds"] == 1
    assert paper.balances()["TSLA"].total == 100  # still held, the sale waits for Monday's open
    assert {o.status for o in paper.open_orders()} == {OrderStatus.OPEN}


def test_flatten_when_equities_in_regular_hours_then_sold_and_flat(db_url: str, halted: None) -> None:
    settings = _world(paper__equity_sessions="xnys")

    paper, report = _flatten(settings, "alpaca", FakeClock(TUESDAY_10_NY))

    assert report["flat"] and report["status"] == "flat"
    assert paper.balances()["TSLA"].total == 0 and paper.balances()["IWM"].total == 0


def test_paper_order_when_queued_outside_hours_then_fills_at_the_first_mark_after_the_open(db_url: str) -> None:
    settings = _world(paper__equity_sessions="xnys")
    clock = FakeClock(SATURDAY)
    paper = _paper(settings, "alpaca", clock)
    _sell(paper, "TSLA/USD", "10")
    paper.set_mark_price("TSLA/USD", Decimal("260"))  # still the weekend: nothing fills
    assert paper.get_order("sell-TSLA/USD").status is OrderStatus.OPEN

    clock.now = datetime(2026, 12, 7, 14, 31, tzinfo=UTC)  # Monday 09:31 New York
    paper.set_mark_price("TSLA/USD", Decimal("255"))

    order = paper.get_order("sell-TSLA/USD")
    assert order.status is OrderStatus.FILLED and order.average_price == Decimal("255")
    assert paper.balances()["TSLA"].total == 90


@pytest.mark.parametrize(
    ("at", "session"),
    [
        (datetime(2026, 12, 1, 15, 0, tzinfo=UTC), Session.REGULAR),  # Tuesday 10:00 New York
        (datetime(2026, 12, 1, 12, 0, tzinfo=UTC), Session.PRE_MARKET),  # 07:00
        (datetime(2026, 12, 1, 22, 0, tzinfo=UTC), Session.AFTER_HOURS),  # 17:00
        (datetime(2026, 12, 2, 3, 0, tzinfo=UTC), Session.CLOSED),  # 22:00
        (datetime(2026, 12, 5, 15, 0, tzinfo=UTC), Session.CLOSED),  # Saturday
        (datetime(2026, 12, 25, 15, 0, tzinfo=UTC), Session.CLOSED),  # Christmas
        (datetime(2026, 11, 27, 17, 30, tzinfo=UTC), Session.REGULAR),  # early close day, 12:30
        (datetime(2026, 11, 27, 18, 30, tzinfo=UTC), Session.AFTER_HOURS),  # closed at 13:00
    ],
)
def test_session_at_when_nyse_calendar_then_regular_extended_or_closed(at: datetime, session: Session) -> None:
    assert NyseSessions().session_at(at) is session


def test_restore_state_when_halt_still_ours_then_put_back_else_left_alone(db_url: str) -> None:
    before = risk.get_state()
    ours = risk.set_state(risk.TradingState.HALTED, reason="stop (run 1)", changed_by="airflow:stop")
    assert risk.restore_state(ours, before, reason="redelivered only", changed_by="airflow:stop")
    assert risk.get_state().state is risk.TradingState.ACTIVE

    ours = risk.set_state(risk.TradingState.HALTED, reason="stop (run 2)", changed_by="airflow:stop")
    risk.set_state(risk.TradingState.HALTED, reason="a human halted too", changed_by="cli:alice")
    assert not risk.restore_state(ours, before, reason="redelivered only", changed_by="airflow:stop")
    assert risk.get_state().reason == "a human halted too"


def _open_perp(settings: Settings, venue: str, symbol: str, amount: str) -> None:
    request = OrderRequest(
        venue=venue, symbol=symbol, side=Side.BUY, amount=Decimal(amount), client_order_id=f"open-{venue}"
    )
    PaperVenue(venue, settings).place_order(request)


def _flatten_desk(settings: Settings, on_started: Callable[[], None]) -> list[dict[str, object]]:
    venues = ["binance", "okx"]
    return flatten_desk(
        venues,
        lambda name: open_venue(name, settings=settings, circuit_breaker=False),
        settings,
        key_prefix="desk-test",
        deadline=datetime.now(UTC) + timedelta(seconds=30),
        on_first_report=lambda snapshot: None,
        on_started=on_started,
    )


def test_flatten_desk_when_started_then_bookkeeping_runs_while_the_venues_are_flattened(db_url: str) -> None:
    settings = _world()
    _open_perp(settings, "okx", "BTC/USDT:USDT", "0.05")
    risk.set_state(risk.TradingState.HALTED, reason="test: emergency stop", changed_by="test")
    closed_while_recording: list[bool] = []

    def record() -> None:  # returns once a venue thread closed the perp, or gives up after 10 s
        deadline = time.monotonic() + 10
        while PaperVenue("okx", settings).positions() and time.monotonic() < deadline:
            time.sleep(0.01)
        closed_while_recording.append(not PaperVenue("okx", settings).positions())

    reports = _flatten_desk(settings, record)

    assert closed_while_recording == [True]
    assert all(report["flat"] for report in reports)


def test_flatten_desk_when_bookkeeping_fails_then_every_venue_flattened_then_raised(db_url: str) -> None:
    settings = _world()
    _open_perp(settings, "okx", "BTC/USDT:USDT", "0.05")
    risk.set_state(risk.TradingState.HALTED, reason="test: emergency stop", changed_by="test")

    def record() -> None:
        raise ConnectionError("xcom: api-server unreachable")

    with pytest.raises(ConnectionError, match="api-server unreachable"):
        _flatten_desk(settings, record)

    assert PaperVenue("okx", settings).positions() == []
    assert all(measure(PaperVenue(name, settings), settings, set()).flat for name in ("binance", "okx"))
