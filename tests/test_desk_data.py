"""The desk's data layer (tradeops/desk/): one JSON body per section, from the real parts.

The project database at the migrations' head (``db_url``), the seeded paper world
(``paper_world``), a real Kafka broker for the broker check and the stop report's publish
(``kafka_bootstrap``), a local server that accepts connections and never answers for a venue and
an MLflow that hang, and PostgreSQL for the stop-report store's unique key.
"""

from __future__ import annotations

import json
import logging
import socket
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal as D
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
from sqlalchemy import insert, text

from operators import stoploss as stoploss_operator
from tests.fixtures.kafka import end_offsets, read_from
from tests.local_http import LocalHttpFake
from tradeops import risk
from tradeops.agents.agent_tables import agent_decisions
from tradeops.config import Settings, settings
from tradeops.db import get_engine, transaction, utcnow
from tradeops.desk import agents, letters, models, sagas, state, stops, venues, watchers
from tradeops.desk.venue_account import open_for_reading
from tradeops.event_inbox import DeadLetterClaim, StoredCopy, claim_dead_letters, mark_dead_letters_stored
from tradeops.events import StopLossReport
from tradeops.kafka.watch_store import WatcherHealth, save_health
from tradeops.model import OrderRequest, OrderType, Side
from tradeops.models import routing
from tradeops.saga import ledger
from tradeops.saga.breaker import CircuitBreaker
from tradeops.saga.core import StepRef, compensate_run, compensation_record, escalate, run_action
from tradeops.stoploss import build_report
from tradeops.stoploss.exposure import measure
from tradeops.stoploss.loop import FlattenReport
from tradeops.stoploss.report_store import recent_reports, store_report
from tradeops.venues.ccxt_venue import CcxtVenue
from tradeops.venues.paper import PaperVenue

PERP = "BTC/USDT:USDT"


class SilentServer(LocalHttpFake):
    """Accepts connections and reads each request, and never answers (until stopped)."""

    thread_name = "silent-server"

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        self._stopping.wait()


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    with SilentServer() as server:
        yield server


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _use(monkeypatch: pytest.MonkeyPatch, **overrides: str) -> Settings:
    for name, value in overrides.items():
        monkeypatch.setenv(f"TRADEOPS__{name}", value)
    settings.cache_clear()
    return settings()


# --- state -------------------------------------------------------------------------------------


def test_state_when_stored_value_unknown_then_shown_flagged_unknown_instead_of_raising(db_url: str) -> None:
    risk.set_state(risk.TradingState.HALTED, reason="drill", changed_by="test")
    with transaction(get_engine()) as conn:  # what a newer release (or a hand-made fix) might write
        conn.execute(text("UPDATE trading_state SET state = 'PAUSED', reason = '<b>by hand</b>' WHERE id = 1"))
        conn.execute(
            text(
                "INSERT INTO trading_state_history (state, reason, changed_by, changed_at) "
                "VALUES ('PAUSED', '<b>by hand</b>', 'dba', '2026-12-02 10:15:00')"
            )
        )
    with pytest.raises(ValueError):
        risk.get_state()  # why the desk reads the rows itself

    body = state.snapshot(limit=5)

    assert body["state"] == {
        "state": "PAUSED",
        "known": False,
        "reason": "<b>by hand</b>",
        "changed_by": "test",
        "changed_at": body["state"]["changed_at"],
    }
    assert [(r["state"], r["known"], r["changed_by"]) for r in body["history"]] == [
        ("PAUSED", False, "dba"),
        ("HALTED", True, "test"),
    ]
    assert body["history"][0]["changed_at"] == "2026-12-02T10:15:00+00:00"


def test_state_when_never_set_then_active_initial_and_empty_history(db_url: str) -> None:
    assert state.snapshot() == {
        "state": {"state": "ACTIVE", "known": True, "reason": "initial", "changed_by": "-", "changed_at": None},
        "history": [],
    }


# --- venues ------------------------------------------------------------------------------------


def test_venues_when_venues_never_used_then_every_configured_one_listed_with_a_closed_breaker(
    paper_world: None,
) -> None:
    loaded = settings()
    for _ in range(loaded.saga.breaker_failure_threshold):
        CircuitBreaker(
            "okx", threshold=loaded.saga.breaker_failure_threshold, cooldown=timedelta(minutes=1)
        ).record_failure()

    body = venues.snapshot(loaded, max_age_seconds=0)

    assert [v["venue"] for v in body["venues"]] == sorted(loaded.venues) == ["alpaca", "binance", "bybit", "okx"]
    by_name = {v["venue"]: v for v in body["venues"]}
    assert by_name["bybit"]["breaker"] == {
        "state": "closed",
        "consecutive_failures": 0,
        "opened_until": None,
        "last_error": None,
    }
    assert by_name["okx"]["breaker"]["state"] == "open" and by_name["okx"]["breaker"]["consecutive_failures"] == 5
    assert all(v["reachable"] and v["error"] is None and v["kind"] == "paper" for v in body["venues"])
    assert {"asset": "BTC", "free": "2", "used": "0", "total": "2"} in by_name["binance"]["balances"]
    assert by_name["alpaca"]["pnl"] is None  # shares only: the paper venue keeps no PnL of spot trades


def test_venues_when_a_configured_venue_never_answers_then_unreachable_within_the_timeout_and_others_shown(
    paper_world: None, silent: SilentServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    loaded = _use(
        monkeypatch,
        VENUES__OKX_LIVE__KIND="ccxt",
        VENUES__OKX_LIVE__CCXT_ID="okx",
        VENUES__OKX_LIVE__CONNECTION_ID="tradeops_okx_live",
        VENUES__OKX_LIVE__MARKETS='["BTC/USDT"]',
    )

    def open_one(name: str) -> Any:
        if name != "okx_live":
            return open_for_reading(name, loaded)
        credentials = {"apiKey": "k", "secret": "s", "password": "p"}
        return CcxtVenue(name, loaded.venue(name), credentials=credentials, urls={"rest": silent.url})

    started = time.monotonic()
    body = venues.snapshot(loaded, timeout_seconds=1, open_one=open_one, max_age_seconds=0)
    took = time.monotonic() - started

    assert took < 4  # ccxt itself would wait 10 s for an answer
    by_name = {v["venue"]: v for v in body["venues"]}
    hung = by_name["okx_live"]
    assert (hung["kind"], hung["reachable"], hung["error"]) == ("ccxt", False, "no answer within 1 s")
    assert hung["balances"] == hung["positions"] == hung["open_orders"] == hung["exposure"] == []
    assert hung["pnl"] is None and hung["latency_ms"] is None and hung["breaker"]["state"] == "closed"
    assert all(by_name[name]["reachable"] for name in ("alpaca", "binance", "bybit", "okx"))


def test_venues_when_paper_perp_traded_and_a_limit_rests_then_positions_exposure_orders_and_pnl(
    paper_world: None,
) -> None:
    bybit = PaperVenue("bybit", settings())
    bought = bybit.place_order(
        OrderRequest(venue="bybit", symbol=PERP, side=Side.BUY, amount=D("0.5"), client_order_id="d1")
    )
    bybit.set_mark_price(PERP, D("66000"))
    bybit.place_order(OrderRequest(venue="bybit", symbol=PERP, side=Side.SELL, amount=D("0.2"), client_order_id="d2"))
    limit = OrderRequest(
        venue="bybit",
        symbol="BTC/USDT",
        side=Side.BUY,
        amount=D("0.1"),
        client_order_id="rest1",
        order_type=OrderType.LIMIT,
        price=D("1000"),
    )
    bybit.place_order(limit)
    entry = bought.average_price

    body = venues.snapshot(settings(), max_age_seconds=0)

    line = next(v for v in body["venues"] if v["venue"] == "bybit")
    assert line["positions"] == [
        {
            "symbol": PERP,
            "side": "long",
            "size": "0.3",
            "entry_price": str(entry),
            "mark_price": "66000",
            "unrealized_pnl": str(D("0.3") * (D("66000") - entry)),
        }
    ]
    btc = next(e for e in line["exposure"] if e["asset"] == "BTC")
    assert (btc["spot"], btc["perp"], btc["net"], btc["quote"]) == ("1", "0.3", "1.3", "USDT")
    assert [(o["client_order_id"], o["type"], o["price"], o["status"]) for o in line["open_orders"]] == [
        ("rest1", "limit", "1000", "open")
    ]
    assert line["pnl"]["currency"] == "USDT"
    assert D(line["pnl"]["realized"]) == D("0.2") * (D("66000") - entry)
    assert D(line["pnl"]["unrealized"]) == D("0.3") * (D("66000") - entry)
    assert isinstance(line["latency_ms"], int)


def test_venues_when_asked_again_within_the_cache_age_then_the_same_body_until_asked_fresh(
    paper_world: None,
) -> None:
    first = venues.snapshot(settings(), max_age_seconds=0)
    PaperVenue("binance", settings()).place_order(
        OrderRequest(venue="binance", symbol="BTC/USDT", side=Side.SELL, amount=D("1"), client_order_id="c1")
    )

    assert venues.snapshot(settings(), max_age_seconds=60) is first
    fresh = venues.snapshot(settings(), max_age_seconds=0)
    binance = next(v for v in fresh["venues"] if v["venue"] == "binance")
    assert {"asset": "BTC", "free": "1", "used": "0", "total": "1"} in binance["balances"]


# --- stop reports ------------------------------------------------------------------------------


def _venue_reports(names: list[str]) -> list[dict[str, Any]]:
    """What the stop's venue threads report after one round, measured on the paper venues."""
    loaded = settings()
    return [
        FlattenReport(venue=name, rounds=1, state=measure(open_for_reading(name, loaded), loaded, set())).to_dict()
        for name in names
    ]


def _report(stage: str) -> StopLossReport:
    return build_report(
        _venue_reports(["binance", "okx"]),
        stage=stage,
        trading_state="HALTED",
        trigger_event_ids=[str(uuid.uuid4())],
        run_id="asset_triggered__1",
        source="emergency_stop_loss_saga",
    )


def test_stop_report_when_stored_twice_then_one_row_and_shown_newest_first_with_venue_figures(
    paper_world: None,
) -> None:
    first, final = _report("first"), _report("final")

    assert store_report(first) is True
    assert store_report(first) is False  # a retry storing the same event: no second row
    assert store_report(final) is True

    body = stops.snapshot(limit=5)
    assert [(r["stage"], r["event_id"]) for r in body["reports"]] == [
        ("final", final.event_id),
        ("first", first.event_id),
    ]
    shown = body["reports"][1]
    assert (shown["dag_id"], shown["run_id"], shown["all_flat"], shown["trading_state"]) == (
        "emergency_stop_loss_saga",
        "asset_triggered__1",
        False,
        "HALTED",
    )
    assert shown["trigger_event_ids"] == list(first.trigger_event_ids)
    binance = shown["venues"][0]
    assert (binance["venue"], binance["status"], binance["rounds"], binance["open_positions"]) == (
        "binance",
        "not_flat",
        1,
        2,
    )
    assert {(e["asset"], e["spot"], e["perp"], e["net"]) for e in binance["exposures"]} == {
        ("BTC", "2", "0", "2"),
        ("ETH", "20", "0", "20"),
    }
    btc = next(line for line in shown["net_exposure"] if line["asset"] == "BTC")
    assert (btc["spot"], btc["net"], btc["flat"]) == ("3", "3", False)  # binance 2 + okx 1
    assert json.loads(json.dumps(body)) == body


@pytest.mark.postgres
def test_stop_report_when_stored_twice_on_postgres_then_one_row(pg_db_url: str) -> None:
    from tradeops.stoploss.desk import not_measured

    report = build_report(
        [not_measured("binance", "first round still running")],
        stage="first",
        trading_state="HALTED",
        trigger_event_ids=[],
        run_id="r",
        source="emergency_stop_loss_saga",
    )

    assert store_report(report) is True
    assert store_report(report) is False
    assert [r.event_id for r in recent_reports(10)] == [report.event_id]


def _publish(stage: str) -> StopLossReport:
    return stoploss_operator._publish(
        _venue_reports(["binance"]),
        stage,
        [str(uuid.uuid4())],
        {"run_id": "asset_triggered__2"},
        "emergency_stop_loss_saga",
        logging.getLogger("test.stop"),
    )


def test_publish_when_broker_unreachable_then_the_report_was_stored_before(
    paper_world: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tradeops.kafka.producer import DeliveryError

    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    _use(monkeypatch, KAFKA__BOOTSTRAP_SERVERS=f"127.0.0.1:{_closed_port()}", KAFKA__DELIVERY_TIMEOUT_SECONDS="1")

    with pytest.raises(DeliveryError):
        _publish("first")

    assert [(r.stage, r.run_id) for r in recent_reports(5)] == [("first", "asset_triggered__2")]


@pytest.mark.kafka
def test_publish_when_store_fails_then_published_anyway_and_logged_as_error(
    paper_world: None, kafka_bootstrap: str, caplog: pytest.LogCaptureFixture
) -> None:
    with transaction(get_engine()) as conn:
        conn.execute(text("DROP TABLE stop_reports"))
    start = end_offsets(kafka_bootstrap, "risk-alerts")

    with caplog.at_level(logging.INFO, logger="test.stop"):
        report = _publish("final")

    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "NOT stored" in errors[0].getMessage() and report.event_id in errors[0].getMessage()
    published = [json.loads(m.value()) for m in read_from(kafka_bootstrap, "risk-alerts", start)]
    assert [(m["event_id"], m["stage"]) for m in published] == [(report.event_id, "final")]


# --- dead letters ------------------------------------------------------------------------------


def _dead_letters() -> None:
    letters_in = [
        DeadLetterClaim(topic="risk-alerts", partition=0, offset=1, field="<json>", reason="not JSON"),
        DeadLetterClaim(
            topic="risk-alerts", partition=0, offset=2, field="schema_version", reason="Unsupported SCHEMA"
        ),
        DeadLetterClaim(topic="market-events", partition=1, offset=7, field="move_pct", reason="move of 100% too big"),
        DeadLetterClaim(topic="market-events", partition=1, offset=8, field="move_pct", reason="move of 1000 too big"),
    ]
    claim_dead_letters(letters_in, "stop_loss_alerts")
    mark_dead_letters_stored(
        [
            StoredCopy(
                topic=d.topic,
                partition=d.partition,
                offset=d.offset,
                size=10,
                sha256="0" * 64,
                truncated=False,
                dlq_partition=0,
                dlq_offset=index,
            )
            for index, d in enumerate(letters_in[:3])
        ]
    )


def test_dead_letters_when_filtered_by_topic_and_text_then_matching_rows_newest_first(db_url: str) -> None:
    _dead_letters()

    everything = letters.snapshot()
    by_topic = letters.snapshot(topic="risk-alerts")
    by_text = letters.snapshot(q="schema")
    literal = letters.snapshot(q="100%")  # % and _ are text here, not patterns

    assert (everything["total"], everything["matching"]) == (3, 4)  # the pending one is listed, not counted
    assert everything["topics"] == ["market-events", "risk-alerts"]
    assert [(i["offset"], i["status"]) for i in everything["items"]] == [
        (8, "pending"),
        (7, "stored"),
        (2, "stored"),
        (1, "stored"),
    ]
    assert [i["offset"] for i in by_topic["items"]] == [2, 1] and by_topic["matching"] == 2
    assert [i["field"] for i in by_text["items"]] == ["schema_version"] and by_text["total"] == 3
    assert [i["reason"] for i in literal["items"]] == ["move of 100% too big"]
    assert letters.snapshot(topic="market-events", q="MOVE_PCT", limit=1)["items"][0]["offset"] == 8
    assert letters.snapshot(topic="", q="")["matching"] == 4  # empty parameters do not filter


# --- watchers ----------------------------------------------------------------------------------


def _health(name: str, beat_seconds_ago: float) -> WatcherHealth:
    now = utcnow()
    return WatcherHealth(
        watcher=name,
        topic="risk-alerts",
        group_id=f"tradeops-{name}",
        started_at=now - timedelta(hours=1),
        heartbeat_at=now - timedelta(seconds=beat_seconds_ago),
        last_message_at=None,
        lag=3,
        broker_state="up",
        broker_down_since=None,
        messages=10,
        fired=1,
        dead_lettered=2,
        stale=0,
        conflicts=0,
        last_error=None,
        process="triggerer:1",
    )


@pytest.mark.kafka
def test_watchers_when_a_heartbeat_is_older_than_three_intervals_then_not_alive_and_broker_up(
    db_url: str, kafka_bootstrap: str
) -> None:
    save_health(_health("stop_loss_alerts", beat_seconds_ago=2))
    save_health(_health("stop_loss_shocks", beat_seconds_ago=60))

    body = watchers.snapshot(settings(), timeout_seconds=5)

    assert body["broker"]["bootstrap"] == kafka_bootstrap and body["broker"]["up"] is True
    assert body["broker"]["error"] is None
    assert body["stale_after_seconds"] == 15  # 3 x kafka.watch.heartbeat_seconds (5 s)
    by_name = {w["watcher"]: w for w in body["watchers"]}
    assert by_name["stop_loss_alerts"]["alive"] is True and by_name["stop_loss_alerts"]["problems"] == []
    shocks = by_name["stop_loss_shocks"]
    assert shocks["alive"] is False and "silent for 60s" in shocks["problems"][0]
    assert (shocks["lag"], shocks["dead_lettered"], shocks["broker_state"]) == (3, 2, "up")
    never = by_name["rebalance_capital"]
    assert never["alive"] is False and never["heartbeat_at"] is None and never["topic"] == "capital-events"


def test_watchers_when_broker_unreachable_then_down_with_the_error_within_the_timeout(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    loaded = _use(monkeypatch, KAFKA__BOOTSTRAP_SERVERS=f"127.0.0.1:{_closed_port()}")

    broker = watchers.snapshot(loaded, timeout_seconds=1)["broker"]

    assert broker["up"] is False and "no metadata within 1 s" in broker["error"]


# --- models ------------------------------------------------------------------------------------


def _route_a_canary() -> None:
    instruments = routing.instruments_of(settings().market_data.universe)
    routing.route_all("3", "champion", "deployment_pipeline", "version 3 passed every canary stage", instruments)
    routing.assign(instruments[:1], "4", "canary", "deployment_pipeline", "canary stage 1 of 4: 5% of the universe")
    routing.assign(instruments[1:2], "4", "canary", "deployment_pipeline", "canary stage 2 of 4: 25% of the universe")


def test_models_when_mlflow_store_missing_then_unavailable_and_routes_and_canary_from_the_database(
    db_url: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    loaded = _use(monkeypatch, MODELS__TRACKING_URI=str(tmp_path / "no-mlflow" / "mlflow.db"))
    _route_a_canary()

    body = models.snapshot(loaded)

    assert body["available"] is False and "no MLflow store" in body["error"]
    assert not (tmp_path / "no-mlflow").exists()  # a read does not create a store
    assert body["aliases"] == {} and body["model"] == "tradeops_direction"
    assert sorted((r["venue"], r["symbol"], r["version"], r["role"]) for r in body["routes"]) == [
        ("alpaca", "IWM/USD", "4", "canary"),
        ("alpaca", "TSLA/USD", "4", "canary"),
        ("binance", "BTC/USDT", "3", "champion"),
        ("binance", "ETH/USDT", "3", "champion"),
    ]
    canary = body["canary"]
    assert (canary["version"], canary["stage"], canary["canary_instruments"], canary["instruments"]) == (
        "4",
        "2 of 4",
        2,
        4,
    )
    assert canary["dag_run_id"] is None and canary["started_at"] is not None
    newest = body["changes"][0]
    assert (newest["kind"], newest["what"], newest["actor"]) == (
        "route",
        "alpaca TSLA/USD: 3 (champion) -> 4 (canary)",
        "deployment_pipeline",
    )
    assert len(body["changes"]) == 6 and body["changes"][-1]["what"].endswith(": unrouted -> 3 (champion)")


def test_models_when_mlflow_never_answers_then_unavailable_within_the_timeout(
    db_url: str, silent: SilentServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    loaded = _use(monkeypatch, MODELS__TRACKING_URI=silent.url)
    _route_a_canary()

    started = time.monotonic()
    body = models.snapshot(loaded, timeout_seconds=1)

    assert time.monotonic() - started < 4  # MLflow's own client waits 120 s, and retries
    assert body["available"] is False and body["error"] == f"MLflow at {silent.url} gave no answer within 1 s"
    assert len(body["routes"]) == 4 and body["canary"]["version"] == "4"


# --- agents ------------------------------------------------------------------------------------


def _decision(agent: str, venue: str, symbol: str, number: int, **fields: Any) -> dict[str, Any]:
    at = utcnow() - timedelta(hours=3 - number)
    verdict = fields.pop("verdict")
    row: dict[str, Any] = dict(
        agent=agent, dag_id=f"agent_{agent}_trading", run_id=f"scheduled__{number}", venue=venue, symbol=symbol,
        as_of=at, decided_at=at + timedelta(seconds=20), logged_at=at + timedelta(seconds=30),
        sentiment_score=0.4, sentiment_confidence=0.8, technical_signal=0.2, technical_confidence=0.6,
        model_version=None, model_probability=None, score=0.31, action="buy", amount=None, rationale="<i>up</i>",
        risk_rule=None, risk_reason=None, outcome="filled", client_order_id=None, order_status=None,
        filled=D(0), fill_price=None, fee=D(0), position_after=D(0), cash_after=D(0), equity_after=D(0),
        detail=None, inputs=json.dumps({"risk": {"verdict": verdict}}),
    )  # fmt: skip
    row.update(fields)
    return row


def test_agents_when_decisions_logged_then_last_decision_pnl_and_the_rejection_named(db_url: str) -> None:
    approved = {"approved": True, "rule": None, "reason": "every rule passed"}
    rejected = {"approved": False, "rule": "max_position", "reason": "rejected by max_position: 90 > 80"}
    rows = [
        _decision("btc", "binance", "BTC/USDT", 0, verdict=approved, amount=D("0.1"), filled=D("0.1"),
                  fill_price=D("65000"), price=D("65000"), position_after=D("0.1"), cash_after=D("-6500"),
                  equity_after=D("0")),
        _decision("btc", "binance", "BTC/USDT", 1, verdict=approved, action="hold", outcome="hold",
                  price=D("66000"), position_after=D("0.1"), cash_after=D("-6500"), equity_after=D("100")),
        _decision("tsla", "alpaca", "TSLA/USD", 1, verdict=rejected, amount=D("10"), outcome="rejected",
                  price=D("250"), risk_rule="max_position", risk_reason=rejected["reason"]),
    ]  # fmt: skip
    with transaction(get_engine()) as conn:
        conn.execute(insert(agent_decisions), rows)

    body = agents.snapshot(settings())

    assert body["error"] is None
    by_name = {a["agent"]: a for a in body["agents"]}
    assert list(by_name) == ["tsla", "iwm", "btc"]
    btc = by_name["btc"]
    assert (btc["dag_id"], btc["runs"], btc["position"], btc["pnl"], btc["equity"], btc["hit_rate"]) == (
        "agent_btc_trading",
        2,
        "0.1",
        "100",
        "100100",
        "1.0000",
    )
    assert btc["last"]["decision"] == "hold" and btc["last"]["price"] == "66000" and btc["last"]["rejected_by"] is None
    tsla = by_name["tsla"]["last"]
    assert (tsla["outcome"], tsla["rejected_by"], tsla["verdict"], tsla["rationale"]) == (
        "rejected",
        "max_position",
        "rejected by max_position: 90 > 80",
        "<i>up</i>",
    )
    assert by_name["iwm"]["runs"] == 0 and by_name["iwm"]["last"] is None and by_name["iwm"]["pnl"] is None


def test_agents_when_agents_file_broken_then_error_and_no_agent(
    db_url: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "agents.yaml"
    broken.write_text("agents:\n  btc: {venue: nowhere}\n")
    monkeypatch.setenv("TRADEOPS_AGENTS_CONFIG", str(broken))

    body = agents.snapshot(settings())

    assert body["agents"] == [] and "agents.btc" in body["error"]


# --- sagas -------------------------------------------------------------------------------------


def _step(task_id: str, index: int, params: dict[str, str]) -> Any:
    return compensation_record(
        StepRef(dag_id="saga_drill", run_id="manual__1", task_id=task_id),
        step=task_id,
        step_index=index,
        action="tradeops.saga.actions.place_order",
        params=params,
    )


def test_saga_run_when_an_undo_failed_then_needs_human_naming_step_venue_and_amount(paper_world: None) -> None:
    buy = _step("buy_spot", 0, {"venue": "binance", "symbol": "BTC/USDT", "side": "buy", "amount": "0.2"})
    hedge = _step("hedge_perp", 1, {"venue": "binance", "symbol": PERP, "side": "sell", "amount": "9000"})
    run_action(buy)
    with pytest.raises(Exception, match="needs"):
        run_action(hedge)  # far beyond the margin: insufficient funds, nothing placed
    PaperVenue("binance", settings()).inject_fault("place_order", "invalid_order", times=5)
    report = compensate_run("saga_drill", "manual__1", by="test", reason="hedge failed")
    assert [label for label, _ in report.failed] == ["buy_spot"]

    before_escalation = sagas.run("saga_drill", "manual__1")
    escalate("saga_drill", "manual__1", report, by="test", why="an undo failed")
    body = sagas.run("saga_drill", "manual__1")

    assert before_escalation["status"] == body["status"] == "needs_human"
    assert len(body["needs_human"]) == 1
    line = body["needs_human"][0]
    assert line.startswith("buy_spot (buy 0.2 BTC/USDT on binance): its undo FAILED (InvalidOrderError: ")
    assert line.endswith("check on binance and take it back by hand")
    steps = {s["step"]: s for s in body["steps"]}
    assert (steps["buy_spot"]["outcome"], steps["buy_spot"]["venue"], steps["buy_spot"]["state"]) == (
        "succeeded",
        "binance",
        "undo_failed",
    )
    assert steps["buy_spot"]["amounts"]["amount"] == "0.2" and steps["buy_spot"]["amounts"]["filled"] == "0.2"
    assert steps["buy_spot"]["undo"]["outcome"] == "undo_failed" and steps["buy_spot"]["undo"]["verified"] is None
    assert steps["hedge_perp"]["outcome"] == "failed"
    assert steps["hedge_perp"]["undo"]["outcome"] == "nothing_to_undo"
    assert steps["hedge_perp"]["undo"]["verified"] == "venue has no such order"
    assert body["saga"]["status"] == "needs_human" and body["saga"]["closed_by"] == "test"
    assert [e["id"] for e in body["entries"]] == sorted(e["id"] for e in body["entries"])
    assert sagas.recent()["runs"][0]["status"] == "needs_human"
    assert sagas.run("saga_drill", "manual__nothing") is None


def _entry(run_id: str, step: str, kind: str, outcome: str) -> None:
    ledger.record(
        dag_id="d",
        run_id=run_id,
        task_id=step,
        map_index=-1,
        step=step,
        kind=kind,
        outcome=outcome,
        idempotency_key=f"key-{run_id}-{step}",
        detail={},
    )


@pytest.mark.parametrize(
    ("entries", "status"),
    [
        ([("a", "action", "started"), ("a", "action", "succeeded")], "ok"),
        ([("a", "action", "started")], "in_progress"),
        ([("a", "action", "succeeded"), ("b", "action", "failed")], "failed"),
        ([("a", "action", "succeeded"), ("b", "action", "failed"), ("a", "undo", "waiting")], "in_progress"),
        (
            [
                ("a", "action", "succeeded"),
                ("b", "action", "failed"),
                ("b", "undo", "nothing_to_undo"),
                ("a", "undo", "undone"),
            ],
            "compensated",
        ),
        ([("a", "action", "succeeded"), ("a", "undo", "unknown")], "needs_human"),
        ([("a", "action", "succeeded"), ("a", "undo", "unknown"), ("a", "undo", "undone")], "compensated"),
        ([("a", "action", "succeeded"), ("a", "action", "refused")], "ok"),
    ],
)
def test_saga_status_when_ledger_holds_these_entries_then_this_status(
    db_url: str, entries: list[tuple[str, str, str]], status: str
) -> None:
    for step, kind, outcome in entries:
        _entry("r", step, kind, outcome)

    assert sagas.recent()["runs"][0]["status"] == status
    assert sagas.run("d", "r")["status"] == status
