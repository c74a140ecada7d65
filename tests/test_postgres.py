"""The stateful parts on a real PostgreSQL server: paper venue, trading state, saga ledger, breaker.

The same behaviours the SQLite tests pin down, where the backend matters: exact Decimal storage,
timezone-aware UTC datetimes (the test server's zone is not UTC), autoincrement ids, row locks
(``SELECT ... FOR UPDATE``) between OS processes, and unique-key races, which on Postgres abort the
failed statement's transaction. Numbers as in tests/test_paper_venue.py (config/tradeops.yaml).
"""

from __future__ import annotations

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, insert, select, text

from tests import paper_workers, saga_fixtures
from tests.fixtures.paper import T0, FakeClock
from tradeops import risk
from tradeops.config import Settings, load_settings
from tradeops.db import get_engine, transaction, utcnow
from tradeops.errors import CircuitOpenError, InsufficientFundsError
from tradeops.model import OrderRequest, OrderStatus, OrderType, Side, TransferStatus, to_jsonable
from tradeops.risk import TradingState
from tradeops.saga import ledger
from tradeops.saga.breaker import BreakerState, CircuitBreaker, all_statuses, circuit_breakers
from tradeops.saga.core import StepRef, compensate, compensation_record
from tradeops.venues import paper_trading, paper_transfers
from tradeops.venues.paper import PaperVenue, seed_paper_world
from tradeops.venues.paper_tables import fills_table, orders_table, transfers_table

pytestmark = pytest.mark.postgres

BTC = "BTC/USDT"
BTC_PERP = "BTC/USDT:USDT"


@pytest.fixture
def engine(pg_db_url: str, settings: Settings) -> Engine:
    engine = get_engine(pg_db_url)
    assert engine.dialect.name == "postgresql"
    assert seed_paper_world(settings, engine) is True
    return engine


def place(venue: PaperVenue, symbol: str, side: Side, amount: str, cid: str, **kwargs: Any):
    return venue.place_order(
        OrderRequest(venue=venue.name, symbol=symbol, side=side, amount=D(amount), client_order_id=cid, **kwargs)
    )


def limit(price: str) -> dict[str, Any]:
    return {"order_type": OrderType.LIMIT, "price": D(price)}


def free(venue: PaperVenue, asset: str) -> D:
    return venue.balances()[asset].free


def used(venue: PaperVenue, asset: str) -> D:
    return venue.balances()[asset].used


def total(venue: PaperVenue, asset: str) -> D:
    return venue.balances()[asset].total


def count_rows(engine: Engine, table: Any) -> int:
    with transaction(engine) as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def wait_for_lock_waiter(engine: Engine, seconds: float = 20) -> None:
    """Return once some other session of this database is blocked on a lock."""
    deadline = time.monotonic() + seconds
    query = text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
    )
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            if conn.execute(query).scalar_one():
                return
        time.sleep(0.02)
    raise AssertionError("no session started waiting for a lock")


# -- spawned-process entry points (importable by 'spawn' children) -------------------------------


def settle_from_either_side_at_barrier(db_url: str, barrier: Any, results: Any) -> None:
    """Two racers: the barrier's index decides which one settles from the source, which from the destination."""
    venues = [PaperVenue(name, load_settings(), engine=get_engine(db_url)) for name in ("binance", "okx")]
    try:
        venue = venues[barrier.wait(timeout=120)]
        results.put(("ok", venue.name, [to_jsonable(t) for t in venue.settle_transfers()]))
    except Exception as exc:
        results.put(("error", repr(exc), []))


# -- seeding and storage -------------------------------------------------------------------------


def test_seed_when_world_empty_then_configured_venues_once_with_exact_decimal_text(engine, settings, open_venue):
    assert seed_paper_world(settings, engine) is False

    with transaction(engine) as conn:
        stored = conn.execute(
            text("SELECT mark_price FROM paper_markets WHERE venue = 'bybit' AND symbol = :s"), {"s": BTC_PERP}
        ).scalar_one()
        venues = conn.execute(text("SELECT name FROM paper_venues ORDER BY name")).scalars().all()
    assert stored == "65019.5000"  # text, not a float or a rounded NUMERIC
    assert venues == ["alpaca", "binance", "bybit", "okx"]
    assert open_venue("okx").mark_price("ETH/USDT") == D("3199.36")
    assert open_venue("okx").funding_rates()[BTC_PERP].rate == D("0.00012")
    assert open_venue("alpaca").balances()["TSLA"].free == D(100)


# -- spot orders ---------------------------------------------------------------------------------


def test_market_buy_when_funds_suffice_then_fills_at_mark_with_exact_taker_fee_and_utc_times(binance):
    order = place(binance, BTC, Side.BUY, "0.5", "c1")

    assert (order.order_id, order.status) == ("paper-binance-1", OrderStatus.FILLED)
    assert (order.filled, order.average_price, order.fee, order.fee_asset) == (D("0.5"), D(65000), D("16.25"), "USDT")
    assert order.created_at == T0 and order.created_at.utcoffset() == timedelta(0)
    assert free(binance, "USDT") == D("367483.75")
    assert free(binance, "BTC") == D("2.5")
    [fill] = binance.fills()
    assert (fill.order_id, fill.amount, fill.price, fill.fee, fill.at) == (
        "paper-binance-1",
        D("0.5"),
        D(65000),
        D("16.25"),
        T0,
    )


def test_market_sell_when_venue_has_price_offset_then_fee_exact_to_the_last_digit(bybit):
    order = place(bybit, BTC, Side.SELL, "1", "c1")

    assert (order.average_price, order.fee) == (D("65019.5"), D("35.760725"))
    assert free(bybit, "USDT") == D("364983.739275")
    assert free(bybit, "BTC") == 0


def test_market_buy_when_quote_short_then_rolled_back_and_order_id_not_used(binance, engine):
    with pytest.raises(InsufficientFundsError, match="USDT"):
        place(binance, BTC, Side.BUY, "7", "c1")

    assert binance.get_order("c1") is None
    assert count_rows(engine, orders_table) == 0
    assert free(binance, "USDT") == D(400000)
    assert place(binance, BTC, Side.BUY, "0.1", "c2").order_id == "paper-binance-1"


def test_limit_buy_when_mark_crosses_then_rests_reserving_quote_then_fills_as_maker(binance):
    resting = place(binance, BTC, Side.BUY, "1", "c1", **limit("60000"))

    assert resting.status is OrderStatus.OPEN
    assert (free(binance, "USDT"), used(binance, "USDT")) == (D(339988), D(60012))
    assert binance.set_mark_price(BTC, D(60500)) == []

    [filled] = binance.set_mark_price(BTC, D(59000))

    assert (filled.client_order_id, filled.status, filled.average_price, filled.fee) == (
        "c1",
        OrderStatus.FILLED,
        D(60000),
        D(12),
    )
    assert (free(binance, "USDT"), used(binance, "USDT")) == (D(339988), D(0))
    assert free(binance, "BTC") == D(3)
    assert [f.price for f in binance.fills()] == [D(60000)]


def test_cancel_when_limit_sell_rests_then_base_released(binance):
    place(binance, BTC, Side.SELL, "1", "c1", **limit("70000"))
    assert (free(binance, "BTC"), used(binance, "BTC")) == (D(1), D(1))

    assert binance.cancel_order("c1").status is OrderStatus.CANCELED

    assert (free(binance, "BTC"), used(binance, "BTC")) == (D(2), D(0))
    assert binance.set_mark_price(BTC, D(71000)) == []


# -- perpetuals and funding ----------------------------------------------------------------------


def test_perp_open_increase_reduce_close_when_mark_moves_then_realises_exact_pnl_minus_fees(binance):
    place(binance, BTC_PERP, Side.BUY, "1", "p1")  # fee 32.5
    binance.set_mark_price(BTC_PERP, D(66000))
    place(binance, BTC_PERP, Side.BUY, "1", "p2")  # fee 33
    [position] = binance.positions()
    assert (position.size, position.entry_price, position.unrealized_pnl) == (D(2), D(65500), D(1000))
    assert total(binance, "USDT") == D("399934.5")

    binance.set_mark_price(BTC_PERP, D(67000))
    place(binance, BTC_PERP, Side.SELL, "0.5", "p3")  # realised 750, fee 16.75
    assert total(binance, "USDT") == D("400667.75")

    binance.set_mark_price(BTC_PERP, D(64000))
    place(binance, BTC_PERP, Side.SELL, "1.5", "p4")  # realised -2250, fee 48

    assert binance.positions() == []
    assert total(binance, "USDT") == D("398369.75")


def test_perp_increase_when_entry_is_a_repeating_decimal_then_all_28_digits_survive_storage(binance):
    place(binance, BTC_PERP, Side.BUY, "1", "p1")
    binance.set_mark_price(BTC_PERP, D(66000))
    place(binance, BTC_PERP, Side.BUY, "2", "p2")

    [position] = binance.positions()

    assert position.entry_price == D(197000) / D(3)
    assert str(position.entry_price) == "65666.66666666666666666666667"


def test_funding_when_boundaries_cross_then_each_venue_pays_at_its_own_utc_interval(binance, bybit, clock):
    place(binance, BTC_PERP, Side.BUY, "1", "long")  # fee 32.5
    place(bybit, BTC_PERP, Side.SELL, "2", "short")  # fee 71.52145
    clock.advance(hours=8)  # 09:00 UTC: binance crossed 08:00; bybit 04:00 and 08:00

    assert total(binance, "USDT") == D(399961)  # -1 * 65000 * 0.0001 = -6.5
    payments = bybit.accrue_funding()

    assert [(p.funding_time, p.amount) for p in payments] == [
        (datetime(2024, 1, 1, 4, tzinfo=UTC), D("6.50195")),
        (datetime(2024, 1, 1, 8, tzinfo=UTC), D("6.50195")),
    ]
    assert total(bybit, "USDT") == D("299941.48245")
    [paid] = binance.funding_payments()
    assert (paid.funding_time, paid.amount) == (datetime(2024, 1, 1, 8, tzinfo=UTC), D("-6.5"))
    assert binance.funding_rates([BTC_PERP])[BTC_PERP].next_funding_at == datetime(2024, 1, 1, 16, tzinfo=UTC)


# -- client order ids ----------------------------------------------------------------------------


def test_place_order_when_client_order_id_repeats_then_same_order_and_one_fill(binance, engine):
    first = place(binance, BTC, Side.BUY, "0.5", "same")

    assert place(binance, BTC, Side.BUY, "0.5", "same") == first
    assert free(binance, "BTC") == D("2.5")
    assert count_rows(engine, fills_table) == 1


def test_place_order_when_unique_key_fires_inside_transaction_then_returns_winner_order(binance, engine, monkeypatch):
    first = place(binance, BTC, Side.BUY, "0.5", "same")
    real_find = paper_trading.find_order_row
    calls = []

    def find_missing_once(conn, venue, client_order_id):
        calls.append(client_order_id)
        return None if len(calls) == 1 else real_find(conn, venue, client_order_id)

    monkeypatch.setattr(paper_trading, "find_order_row", find_missing_once)

    again = place(binance, BTC, Side.BUY, "0.5", "same")

    assert again == first
    assert len(calls) == 2  # pre-check missed, the INSERT hit the unique key, a new transaction re-read it
    assert count_rows(engine, orders_table) == 1
    assert free(binance, "BTC") == D("2.5")
    assert place(binance, BTC, Side.BUY, "0.1", "next").order_id == "paper-binance-2"


def test_place_order_when_two_processes_race_same_client_order_id_then_one_order_one_fill(pg_db_url, engine):
    outcomes = paper_workers.run_racers(paper_workers.place_order_at_barrier, 2, pg_db_url, "race-1")

    assert [status for status, _ in outcomes] == ["ok", "ok"], outcomes
    assert outcomes[0][1] == outcomes[1][1]
    assert outcomes[0][1]["order_id"] == "paper-binance-1"
    assert count_rows(engine, orders_table) == 1
    assert count_rows(engine, fills_table) == 1
    balances = PaperVenue("binance", load_settings(), engine=engine).balances()
    assert (balances["BTC"].free, balances["USDT"].free) == (D("2.1"), D("393496.75"))  # 400000 - 6500 - 3.25


# -- transfers -----------------------------------------------------------------------------------


def test_withdraw_when_settle_delay_elapses_then_destination_credited_minus_fee_once(binance, okx, clock):
    transfer = binance.withdraw(transfer_id="t1", asset="USDT", amount=D(1000), to_venue="okx", network="TRC20")

    assert (transfer.status, transfer.fee, transfer.created_at, transfer.settles_at) == (
        TransferStatus.PENDING,
        D(1),
        T0,
        T0 + timedelta(seconds=60),
    )
    assert free(binance, "USDT") == D(399000)
    clock.advance(seconds=59)
    assert free(okx, "USDT") == D(300000)

    clock.advance(seconds=1)

    assert free(okx, "USDT") == D(300999)
    assert binance.get_transfer("t1").status is TransferStatus.SETTLED
    assert okx.settle_transfers() == [] and binance.settle_transfers() == []


def test_settle_transfers_when_called_on_source_then_exact_fee_deducted(binance, okx, clock):
    binance.withdraw(transfer_id="t1", asset="ETH", amount=D(5), to_venue="okx", network="ERC20")
    clock.advance(minutes=5)

    [settled] = binance.settle_transfers()

    assert (settled.transfer_id, settled.received) == ("t1", D("4.9985"))
    assert free(okx, "ETH") == D("14.9985")


def test_withdraw_when_unique_key_fires_inside_transaction_then_returns_existing_transfer(binance, monkeypatch):
    args = {"transfer_id": "t1", "asset": "USDT", "amount": D(1000), "to_venue": "okx", "network": "TRC20"}
    first = binance.withdraw(**args)
    real_find = paper_transfers.find_transfer
    calls = []

    def find_missing_once(conn, transfer_id):
        calls.append(transfer_id)
        return None if len(calls) == 1 else real_find(conn, transfer_id)

    monkeypatch.setattr(paper_transfers, "find_transfer", find_missing_once)

    again = binance.withdraw(**args)

    assert again == first
    assert len(calls) == 2  # pre-check missed, the INSERT hit the primary key, a new transaction re-read it
    assert free(binance, "USDT") == D(399000)


def test_withdraw_when_two_processes_race_same_transfer_id_then_single_debit(pg_db_url, engine):
    outcomes = paper_workers.run_racers(paper_workers.withdraw_at_barrier, 2, pg_db_url, "race-t")

    assert [status for status, _ in outcomes] == ["ok", "ok"], outcomes
    assert outcomes[0][1] == outcomes[1][1]
    assert (outcomes[0][1]["transfer_id"], outcomes[0][1]["fee"]) == ("race-t", "1")
    assert count_rows(engine, transfers_table) == 1
    assert PaperVenue("binance", load_settings(), engine=engine).balances()["USDT"].free == D(399000)


def test_settle_transfers_when_both_venues_settle_at_once_in_two_processes_then_credited_once(
    pg_db_url, engine, settings
):
    past = utcnow() - timedelta(minutes=10)
    source = PaperVenue("binance", settings, engine=engine, clock=lambda: past)
    source.withdraw(transfer_id="t1", asset="USDT", amount=D(1000), to_venue="okx", network="TRC20")  # due after 60 s

    outcomes = paper_workers.run_racers(settle_from_either_side_at_barrier, 2, pg_db_url)

    assert [status for status, _, _ in outcomes] == ["ok", "ok"], outcomes
    assert sorted(side for _, side, _ in outcomes) == ["binance", "okx"]
    settled = [t for _, _, transfers in outcomes for t in transfers]
    assert [(t["transfer_id"], t["status"], t["fee"]) for t in settled] == [("t1", "settled", "1")]
    okx = PaperVenue("okx", settings, engine=engine)
    assert okx.balances()["USDT"].free == D("300999")
    assert PaperVenue("binance", settings, engine=engine).balances()["USDT"].free == D(399000)


# -- trading state -------------------------------------------------------------------------------


def test_set_state_when_changed_twice_then_current_state_and_history_newest_first(pg_db_url):
    assert risk.get_state().state is TradingState.ACTIVE
    before = utcnow()

    risk.set_state(TradingState.HALTED, reason="venue down", changed_by="ops")
    risk.set_state(TradingState.REDUCING, reason="recovering", changed_by="ops2")

    current = risk.get_state()
    assert (current.state, current.reason, current.changed_by) == (TradingState.REDUCING, "recovering", "ops2")
    assert current.changed_at.tzinfo is UTC and before <= current.changed_at <= utcnow()
    assert [(h.state, h.reason) for h in risk.history()] == [
        (TradingState.REDUCING, "recovering"),
        (TradingState.HALTED, "venue down"),
    ]
    assert [(h.state, h.reason) for h in risk.history(limit=1)] == [(TradingState.REDUCING, "recovering")]
    with transaction() as conn:
        ids = conn.execute(text("SELECT id FROM trading_state_history ORDER BY id")).scalars().all()
    assert ids == [1, 2]


def test_set_state_when_another_transaction_inserts_first_state_row_concurrently_then_both_apply(pg_db_url):
    engine = get_engine(pg_db_url)
    with engine.connect() as other:
        tx = other.begin()
        other.execute(
            insert(risk.trading_state_table).values(
                id=1, state="REDUCING", reason="other desk", changed_by="other", changed_at=utcnow()
            )
        )
        with ThreadPoolExecutor(max_workers=1) as pool:
            mine = pool.submit(risk.set_state, TradingState.HALTED, reason="mine", changed_by="me")
            wait_for_lock_waiter(engine)  # our INSERT waits on the other's uncommitted key
            tx.commit()
            record = mine.result(timeout=30)

    assert record.state is TradingState.HALTED
    current = risk.get_state()
    assert (current.state, current.reason) == (TradingState.HALTED, "mine")
    assert [h.reason for h in risk.history()] == ["mine"]


# -- saga ledger, compensation, breaker ----------------------------------------------------------


def test_ledger_when_entries_recorded_then_read_back_in_order_and_runs_summarised(pg_db_url):
    def record(run_id: str, step: str, kind: str, outcome: str, **detail: Any) -> None:
        ledger.record(
            dag_id="dag",
            run_id=run_id,
            task_id=step,
            map_index=-1,
            step=step,
            kind=kind,
            outcome=outcome,
            idempotency_key="k" * 32,
            detail=detail,
        )

    before = utcnow()
    record("r1", "buy", "action", "succeeded", amount=D("0.10"))
    record("r1", "sell", "action", "failed", error="InvalidOrderError")
    record("r1", "buy", "undo", "undone")
    record("r2", "buy", "action", "succeeded")

    entries = ledger.entries("r1")
    assert [(e.step, e.kind, e.outcome) for e in entries] == [
        ("buy", "action", "succeeded"),
        ("sell", "action", "failed"),
        ("buy", "undo", "undone"),
    ]
    assert entries[0].detail == {"amount": "0.10"}
    assert all(e.at.tzinfo is UTC and before <= e.at <= utcnow() for e in entries)
    assert ledger.entries("r1", dag_id="other") == []
    runs = ledger.recent_runs()
    assert [(r.run_id, r.steps_succeeded, r.steps_failed, r.undone, r.undo_failed) for r in runs] == [
        ("r2", 1, 0, 0, 0),
        ("r1", 1, 1, 1, 0),
    ]
    assert runs[1].first_at == entries[0].at and runs[1].last_at == entries[-1].at
    assert [r.run_id for r in ledger.recent_runs(limit=1)] == ["r2"]


def test_compensate_when_an_undo_fails_then_carries_on_in_reverse_and_ledger_says_so(pg_db_url, tmp_path, monkeypatch):
    monkeypatch.setenv("SAGA_FIXTURE_JOURNAL", str(tmp_path / "journal.jsonl"))
    records = [
        compensation_record(
            StepRef(dag_id="d", run_id="r1", task_id=f"step{i}"),
            step=f"step{i}",
            step_index=i,
            action="tests.saga_fixtures.record_step",
            params={"name": f"step{i}", **extra},
        )
        for i, extra in enumerate([{}, {"undo_fails": "yes"}, {"undo_fails": "temporary"}, {}])
    ]

    report = compensate(reversed(records))

    assert [e["name"] for e in saga_fixtures.journal() if e["call"] == "undo"] == ["step3", "step2", "step1", "step0"]
    assert report.undone == ["step3", "step0"]
    assert [label for label, _ in report.failed] == ["step1"]
    assert [label for label, _ in report.temporary] == ["step2"]  # retried later, not given up
    assert report.temporary_failures == 1 and report.pending and not report.ok
    assert [(e.step, e.outcome) for e in ledger.entries("r1", dag_id="d")] == [
        ("step3", "undone"),
        ("step2", "temporary"),
        ("step1", "undo_failed"),
        ("step0", "undone"),
    ]
    assert ledger.recent_runs()[0].undone == 2 and ledger.recent_runs()[0].undo_failed == 1


def test_breaker_when_threshold_failures_then_opens_until_exact_time_and_closes_after_trial(pg_db_url):
    clock = FakeClock(datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC))
    breaker = CircuitBreaker("binance", threshold=2, cooldown=timedelta(seconds=60), clock=clock)
    breaker.record_failure()
    assert breaker.status().state is BreakerState.CLOSED

    opened = breaker.record_failure()

    assert (opened.state, opened.consecutive_failures) == (BreakerState.OPEN, 2)
    assert breaker.status().opened_until == clock.now + timedelta(seconds=60)  # microseconds and zone intact
    with pytest.raises(CircuitOpenError, match="binance"):
        breaker.before_call()
    clock.advance(seconds=61)
    breaker.before_call()
    assert breaker.status().state is BreakerState.HALF_OPEN
    breaker.record_success()
    assert (breaker.status().state, breaker.status().consecutive_failures) == (BreakerState.CLOSED, 0)


def test_breaker_when_opened_by_one_process_then_seen_by_another(pg_db_url):
    CircuitBreaker("binance", threshold=1, cooldown=timedelta(minutes=5)).record_failure()
    code = (
        "from datetime import timedelta\n"
        "from tradeops.db import default_db_url\n"
        "from tradeops.saga.breaker import CircuitBreaker\n"
        "from tradeops.errors import CircuitOpenError\n"
        "assert default_db_url().startswith('postgresql+psycopg://'), default_db_url()\n"
        "CircuitBreaker('okx', threshold=1, cooldown=timedelta(minutes=5)).before_call()\n"
        "try:\n"
        "    CircuitBreaker('binance', threshold=1, cooldown=timedelta(minutes=5)).before_call()\n"
        "except CircuitOpenError:\n"
        "    raise SystemExit(7)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=Path(__file__).parent.parent
    )

    assert result.returncode == 7, result.stderr
    assert [(s.venue, s.state) for s in all_statuses()] == [
        ("binance", BreakerState.OPEN),
        ("okx", BreakerState.CLOSED),
    ]


def test_breaker_when_another_transaction_creates_its_row_concurrently_then_sees_that_row(pg_db_url):
    engine = get_engine(pg_db_url)
    opened_until = utcnow() + timedelta(minutes=5)
    with engine.connect() as other:
        tx = other.begin()
        other.execute(
            insert(circuit_breakers).values(
                venue="binance",
                state=BreakerState.OPEN.value,
                consecutive_failures=3,
                opened_until=opened_until,
                updated_at=utcnow(),
            )
        )
        breaker = CircuitBreaker("binance", threshold=3, cooldown=timedelta(minutes=5), engine=engine)
        with ThreadPoolExecutor(max_workers=1) as pool:
            call = pool.submit(breaker.before_call)
            wait_for_lock_waiter(engine)  # our first-use INSERT waits on the other's uncommitted row
            tx.commit()
            with pytest.raises(CircuitOpenError, match="after 3 temporary failures"):
                call.result(timeout=30)

    status = breaker.status()
    assert (status.state, status.consecutive_failures, status.opened_until) == (BreakerState.OPEN, 3, opened_until)
