"""The emergency stop-loss DAG end to end (``dag.test()``) on the paper venue and the real broker."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from tests.dag_files import load_dag
from tests.fixtures.events import deliver
from tests.fixtures.kafka import end_offsets, read_from
from tradeops import risk
from tradeops.config import settings
from tradeops.desk import stops
from tradeops.events import build_event, parse_event, to_json
from tradeops.model import OrderRequest, OrderType, Side

DAG_ID = "emergency_stop_loss_saga"
pytestmark = [pytest.mark.airflow, pytest.mark.kafka, pytest.mark.slow]


def _alert(reason: str = "exchange keys leaked") -> dict[str, Any]:
    return json.loads(to_json(build_event("critical-alert", {"reason": reason, "scope": "global"})))


def _venue(name: str) -> Any:
    from tradeops.venues.paper import PaperVenue

    return PaperVenue(name, settings())


def _open_book() -> None:
    """Perp positions on three venues and a resting limit order, as a trading day leaves them."""
    orders = [
        ("binance", "BTC/USDT:USDT", Side.BUY, "0.5", None),
        ("bybit", "ETH/USDT:USDT", Side.SELL, "3", None),
        ("okx", "BTC/USDT:USDT", Side.SELL, "0.2", None),
        ("okx", "ETH/USDT", Side.BUY, "1", "1000"),  # rests far below the mark
    ]
    for number, (venue, symbol, side, amount, price) in enumerate(orders):
        _venue(venue).place_order(
            OrderRequest(
                venue=venue,
                symbol=symbol,
                side=side,
                amount=Decimal(amount),
                client_order_id=f"book{number}",
                order_type=OrderType.LIMIT if price else OrderType.MARKET,
                price=Decimal(price) if price else None,
            )
        )


def _assert_flat_everywhere() -> None:
    cash = settings().cash_assets()
    for name in settings().venues:
        venue = _venue(name)
        assert venue.positions() == [], name
        assert venue.open_orders() == [], name
        held = {a: b.total for a, b in venue.balances().items() if a not in cash}
        assert all(v <= settings().stop_loss.dust_of(a) for a, v in held.items()), (name, held)


def _short_stop(monkeypatch: pytest.MonkeyPatch, seconds: str) -> None:
    """Give the stop only ``seconds`` to get flat (a venue that never comes back ends it sooner)."""
    monkeypatch.setenv("TRADEOPS__STOP_LOSS__MAX_DURATION_SECONDS", seconds)
    settings.cache_clear()


def _reports_after(bootstrap: str, start: dict[int, int], stage: str = "final") -> list[dict[str, Any]]:
    messages = read_from(bootstrap, settings().kafka.topics.risk_alerts, start, polls=40)
    found = [json.loads(m.value()) for m in messages]
    return [m for m in found if m.get("event_type") == "stop_loss_report" and m.get("stage") == stage]


def _task_log(capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> str:
    """What the tasks logged: printed by Airflow's task logging, or as records (either, by test order)."""
    return capfd.readouterr().out + caplog.text


def _end_offsets(bootstrap: str) -> dict[int, int]:
    return end_offsets(bootstrap, settings().kafka.topics.risk_alerts)


def test_stop_loss_when_critical_alert_then_halted_flat_everywhere_and_report_published(
    paper_world: None, kafka_bootstrap: str
) -> None:
    _open_book()
    before = _end_offsets(kafka_bootstrap)
    alert = _alert()

    run = load_dag(DAG_ID).test(run_conf={"events": [alert]})

    assert run.state == "success"
    assert risk.get_state().state is risk.TradingState.HALTED
    _assert_flat_everywhere()
    reports = _reports_after(kafka_bootstrap, before)
    assert len(reports) == 1
    report = parse_event(reports[0])
    assert report.all_flat and report.trigger_event_ids == (alert["event_id"],)
    assert {v.venue for v in report.venues} == set(settings().venues)
    # 3 perps, BTC and ETH spot on 3 venues, TSLA and IWM shares
    assert sum(v.positions_closed for v in report.venues) == 3 + 6 + 2
    assert sum(v.orders_canceled for v in report.venues) == 1
    stored = stops.snapshot(limit=5)["reports"]  # what the desk shows: both reports, as published
    assert [(r["stage"], r["run_id"]) for r in stored] == [("final", run.run_id), ("first", run.run_id)]
    assert stored[0]["event_id"] == report.event_id and stored[0]["all_flat"] is True


def test_stop_loss_when_a_venue_fails_its_first_close_then_still_flat_everywhere(
    paper_world: None, kafka_bootstrap: str
) -> None:
    _open_book()
    _venue("bybit").inject_fault("place_order", "temporary", times=1)

    run = load_dag(DAG_ID).test(run_conf={"events": [_alert()]})

    assert run.state == "success"
    _assert_flat_everywhere()


def test_stop_loss_when_a_venue_keeps_failing_then_others_flat_and_run_failed(
    paper_world: None, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _short_stop(monkeypatch, "3")
    _open_book()
    _venue("okx").inject_fault("open_orders", "operational", times=100)
    before = _end_offsets(kafka_bootstrap)

    run = load_dag(DAG_ID).test(run_conf={"events": [_alert()]})

    assert run.state == "failed"
    for name in ("binance", "bybit"):
        assert _venue(name).positions() == []
    assert _venue("okx").positions() != []  # the broken venue is reported, not hidden
    _venue("okx").clear_faults()
    report = parse_event(_reports_after(kafka_bootstrap, before)[0])
    assert not report.all_flat
    assert [v.venue for v in report.venues if not v.flat] == ["okx"]


def test_stop_loss_when_same_event_delivered_twice_then_second_run_has_no_effect(
    paper_world: None, kafka_bootstrap: str
) -> None:
    alert = _alert()
    first = load_dag(DAG_ID).test(run_conf={"events": [alert, alert]})  # duplicated inside one run, too
    assert first.state == "success"
    risk.set_state(risk.TradingState.ACTIVE, reason="test: trading resumed", changed_by="test")
    _open_book()

    second = load_dag(DAG_ID).test(run_conf={"events": [alert]})

    assert second.state == "success"  # claim skipped the run
    assert risk.get_state().state is risk.TradingState.ACTIVE
    assert len(_venue("binance").positions()) == 1


def test_stop_loss_when_extreme_shock_published_then_watcher_fires_and_book_is_flattened(
    paper_world: None, kafka_bootstrap: str
) -> None:
    shock = {"symbol": "BTC/USDT", "move_pct": "-16", "window_seconds": 60, "price": "54600"}
    mild = {**shock, "move_pct": "-6"}  # a market shock for the rebalance, not extreme
    assert deliver(kafka_bootstrap, "stop_loss_shocks", "market-shock", mild) == []
    fired = deliver(kafka_bootstrap, "stop_loss_shocks", "market-shock", shock)
    _open_book()

    run = load_dag(DAG_ID).test(run_conf={"events": fired})

    assert run.state == "success"
    assert risk.get_state().state is risk.TradingState.HALTED
    _assert_flat_everywhere()


def _hedged_desk() -> None:
    """binance, bybit and okx each long their spot BTC/ETH and short the matching perps, with
    a resting spot sell (it reserves BTC) and a resting perp bid: net zero, yet nothing is flat."""
    for venue in ("binance", "bybit", "okx"):
        paper = _venue(venue)
        held = paper.balances()
        for number, asset in enumerate(("BTC", "ETH")):
            paper.place_order(
                OrderRequest(
                    venue=venue,
                    symbol=f"{asset}/USDT:USDT",
                    side=Side.SELL,
                    amount=held[asset].total,
                    client_order_id=f"hedge{number}",
                )
            )
        for number, (symbol, side, price) in enumerate(
            [("BTC/USDT", Side.SELL, "90000"), ("ETH/USDT:USDT", Side.BUY, "1000")]
        ):
            paper.place_order(
                OrderRequest(
                    venue=venue,
                    symbol=symbol,
                    side=side,
                    amount=Decimal("0.5"),
                    client_order_id=f"rest{number}",
                    order_type=OrderType.LIMIT,
                    price=Decimal(price),
                )
            )


def test_stop_loss_when_spot_long_perp_short_on_three_venues_then_both_legs_closed_and_net_zero(
    paper_world: None, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _short_stop(monkeypatch, "20")  # flat in one round; a regression fails in seconds, not 30 min
    _hedged_desk()
    before = _end_offsets(kafka_bootstrap)

    run = load_dag(DAG_ID).test(run_conf={"events": [_alert()]})

    assert run.state == "success"
    assert risk.get_state().state is risk.TradingState.HALTED
    _assert_flat_everywhere()
    for venue in ("binance", "bybit", "okx"):
        held = _venue(venue).balances()
        assert held["BTC"].total == 0 and held["ETH"].total == 0, venue
    report = parse_event(_reports_after(kafka_bootstrap, before)[0])
    assert report.all_flat
    assert all(v.flat and v.status == "flat" for v in report.venues)
    crypto = [v for v in report.venues if v.venue != "alpaca"]
    assert all({e.asset for e in v.exposures} == {"BTC", "ETH"} for v in crypto)
    assert all(e.spot == e.perp == e.net == 0 for v in crypto for e in v.exposures)
    desk = {(e.asset, e.quote): e for e in report.net_exposure}
    for asset in ("BTC", "ETH"):
        assert desk[(asset, "USDT")].net == 0 and desk[(asset, "USDT")].net_quote == 0
        assert desk[(asset, "USDT")].spot == desk[(asset, "USDT")].perp == 0
    assert sum(v.orders_canceled for v in crypto) == 6


def test_stop_loss_when_a_venue_fails_for_90_seconds_then_flattened_once_it_answers(
    paper_world: None, kafka_bootstrap: str, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    _open_book()
    bybit = _venue("bybit")
    bybit.inject_fault("open_orders", "temporary", times=100_000)  # 429/503 on every round
    recovered: list[datetime] = []

    def recover() -> None:
        bybit.clear_faults()
        recovered.append(datetime.now(UTC))

    timer = threading.Timer(90, recover)
    before = _end_offsets(kafka_bootstrap)
    timer.start()
    try:
        run = load_dag(DAG_ID).test(run_conf={"events": [_alert()]})
    finally:
        timer.cancel()

    assert run.state == "success"
    _assert_flat_everywhere()
    first = parse_event(_reports_after(kafka_bootstrap, before, stage="first")[0])
    assert first.occurred_at < recovered[0]
    assert [v.venue for v in first.venues if not v.flat] == ["bybit"]
    assert "TemporaryVenueError" in (next(v for v in first.venues if v.venue == "bybit").error or "")
    final = parse_event(_reports_after(kafka_bootstrap, before)[0])
    assert final.all_flat
    rounds = next(v for v in final.venues if v.venue == "bybit").rounds
    assert rounds >= 5
    task_log = _task_log(capfd, caplog)
    assert all(f"Stop bybit round {n}:" in task_log for n in range(1, rounds + 1))  # a progress line a round


def test_stop_loss_when_a_venue_never_answers_then_run_failed_naming_it_and_others_flat(
    paper_world: None,
    kafka_bootstrap: str,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    _short_stop(monkeypatch, "4")
    _open_book()
    _venue("okx").inject_fault("open_orders", "temporary", times=100_000)
    before = _end_offsets(kafka_bootstrap)

    run = load_dag(DAG_ID).test(run_conf={"events": [_alert()]})

    assert run.state == "failed"
    for name in ("alpaca", "binance", "bybit"):
        assert _venue(name).positions() == [] and _venue(name).open_orders() == [], name
    _venue("okx").clear_faults()
    assert _venue("okx").positions() != []
    assert "NOT FLAT: okx (not_flat; still failing after" in _task_log(capfd, caplog)  # the task failure
    report = parse_event(_reports_after(kafka_bootstrap, before)[0])
    assert not report.all_flat
    assert [v.venue for v in report.venues if not v.flat] == ["okx"]


def test_stop_loss_when_claiming_the_events_fails_then_trading_is_halted_anyway(
    paper_world: None, kafka_bootstrap: str
) -> None:
    from sqlalchemy import text

    from tradeops.db import get_engine

    with get_engine().begin() as conn:  # the event inbox refuses every write, as a broken disk would
        conn.execute(
            text(
                "CREATE TRIGGER refuse_claims BEFORE INSERT ON handled_events "
                "BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END"
            )
        )

    run = load_dag(DAG_ID).test(run_conf={"events": [_alert()]})

    assert run.state == "failed"
    assert risk.get_state().state is risk.TradingState.HALTED


def _strand(payload_events: list[dict[str, Any]], asset_name: str) -> None:
    """An asset event of ``asset_name`` stored in Airflow's database and attached to no run (what
    Airflow leaves behind when a burst's batches arrive while a run is being created)."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        asset = session.scalar(select(AssetModel).where(AssetModel.name == asset_name))
        assert asset is not None, asset_name
        payload = {"watcher": "stop_loss_alerts", "events": payload_events, "batch": {"messages": len(payload_events)}}
        session.add(AssetEvent(asset_id=asset.id, extra={"from_trigger": True, "payload": payload}))


def test_stop_loss_when_events_were_attached_to_no_run_then_the_next_stop_adopts_them_once(
    paper_world: None, kafka_bootstrap: str
) -> None:
    from tradeops.event_inbox import unhandled

    load_dag(DAG_ID).test(run_conf={"events": [_alert("registers the assets")]})
    stranded = [{"event": _alert(f"stranded {n}"), "reason": "r", "kafka": None} for n in range(3)]
    stale = {"event": _alert("hours old") | {"occurred_at": "2026-01-01T00:00:00+00:00"}, "reason": "r"}
    _strand([*stranded, stale], "tradeops_stop_loss_alerts")
    risk.set_state(risk.TradingState.ACTIVE, reason="test: trading resumed", changed_by="test")
    _open_book()

    run = load_dag(DAG_ID).test(run_conf={"events": [_alert("the trigger")]})

    assert run.state == "success"
    _assert_flat_everywhere()
    ids = [item["event"]["event_id"] for item in stranded]
    assert unhandled(DAG_ID, ids) == set()  # adopted by this run, not left for the sweeper
    assert unhandled(DAG_ID, [stale["event"]["event_id"]]) == {stale["event"]["event_id"]}  # stale: never
    risk.set_state(risk.TradingState.ACTIVE, reason="test: trading resumed", changed_by="test")
    again = load_dag(DAG_ID).test(run_conf={"events": [stranded[0]["event"]]})
    assert again.state == "success" and risk.get_state().state is risk.TradingState.ACTIVE  # nothing twice
