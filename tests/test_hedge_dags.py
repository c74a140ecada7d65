"""The funding-rate hedge DAGs end to end (``dag.test()``) on the paper venue and the real broker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.dag_files import DAGS, load_dag
from tests.fixtures.events import deliver
from tests.fixtures.kafka import end_offsets, read_from
from tradeops import leases, risk
from tradeops.config import settings
from tradeops.saga import ledger

pytestmark = [pytest.mark.airflow, pytest.mark.kafka, pytest.mark.slow]
ROOT = DAGS.parent
BTC = "BTC/USDT:USDT"
ETH = "ETH/USDT:USDT"


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


def _waiting(dag_id: str) -> bool:
    """True once the run of ``dag_id`` waits (rescheduled) at ``acquire_leases``."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState

    with create_session() as session:
        query = session.query(TaskInstance).filter(
            TaskInstance.dag_id == dag_id,
            TaskInstance.task_id == "acquire_leases",
            TaskInstance.state == TaskInstanceState.UP_FOR_RESCHEDULE,
        )
        return query.count() > 0


def _release_when_both_wait(blocker: str, seen: dict[str, Any]) -> None:
    deadline = time.monotonic() + 240
    while not (_waiting("funding_rate_hedge_cron") and _waiting("funding_rate_hedge_event")):
        if time.monotonic() > deadline:
            seen["error"] = "the runs never waited for the lease"
            break
        time.sleep(0.5)
    seen["orders_while_held"] = sum(len(_venue(n).recent_orders()) for n in ("binance", "bybit", "okx"))
    leases.release("hedge:BTC/USDT:USDT", blocker)


def _cron_in_subprocess(log: Path) -> subprocess.Popen[bytes]:
    """The cron hedge's ``dag.test()`` in its own process (output to ``log``: a full pipe would
    stall it while it holds a database lock)."""
    code = "from tests.dag_files import load_dag; print('STATE', load_dag('funding_rate_hedge_cron').test().state)"
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=os.environ.copy(), stdout=out, stderr=out)


def test_cron_and_event_hedge_when_raced_on_one_symbol_then_each_waits_for_the_lease_and_hedge_placed_once(
    paper_world: None, kafka_bootstrap: str, tmp_path: Path
) -> None:
    [event] = deliver(kafka_bootstrap, "funding_deviation", "funding-rate-deviation", _deviation_fields(BTC))
    blocker = "test/another-run"
    assert leases.acquire("hedge:BTC/USDT:USDT", blocker, timedelta(minutes=10)) is not None
    seen: dict[str, Any] = {}
    assert not _waiting("funding_rate_hedge_cron")  # also loads Airflow's models here, not in the thread
    releaser = threading.Thread(target=_release_when_both_wait, args=(blocker, seen), daemon=True)

    cron = _cron_in_subprocess(tmp_path / "cron.log")
    releaser.start()
    event_run = load_dag("funding_rate_hedge_event").test(run_conf={"events": [event]})
    cron.wait(timeout=600)
    releaser.join(timeout=10)
    output = (tmp_path / "cron.log").read_text(errors="replace")

    assert "error" not in seen and seen["orders_while_held"] == 0  # both waited while the lease was held
    assert "STATE success" in output and event_run.state == "success", output[-3000:]
    assert _positions() == {("okx", BTC): Decimal("-4"), ("bybit", ETH): Decimal("-40")}  # never doubled
    btc_orders = [o for n in ("binance", "bybit", "okx") for o in _venue(n).recent_orders() if o.symbol == BTC]
    assert len(btc_orders) == 1
    assert leases.current("hedge:BTC/USDT:USDT") is None and leases.current("hedge:ETH/USDT:USDT") is None


def test_cron_hedge_when_a_leg_is_retried_after_its_order_went_through_then_not_ordered_twice(
    paper_world: None, kafka_bootstrap: str
) -> None:
    _venue("okx").inject_fault("place_order", "temporary", phase="after")  # the BTC leg: placed, then an error

    run = load_dag("funding_rate_hedge_cron").test()

    assert run.state == "success"
    assert _positions() == {("okx", BTC): Decimal("-4"), ("bybit", ETH): Decimal("-40")}
    assert len(_venue("okx").recent_orders()) == 1
    entries = ledger.entries(run.run_id, "funding_rate_hedge_cron")
    okx_leg = [e for e in entries if e.kind == "action" and e.map_index == 1]
    assert [e.outcome for e in okx_leg] == ["started", "failed", "started", "succeeded"]
    assert okx_leg[-1].detail["result"]["found_by_key"] is True


def test_cron_hedge_when_a_venue_is_unreadable_then_its_symbols_frozen_and_nothing_ordered(
    paper_world: None, kafka_bootstrap: str
) -> None:
    _venue("binance").inject_fault("balances", "operational", times=3)

    run = load_dag("funding_rate_hedge_cron").test()

    assert run.state == "success"
    assert _positions() == {}
    assert not [e for e in ledger.entries(run.run_id, "funding_rate_hedge_cron") if e.kind == "action"]
    assert leases.current("hedge:BTC/USDT:USDT") is None


@pytest.mark.parametrize("dag_id", ["funding_rate_hedge_cron", "funding_rate_hedge_event"])
def test_hedge_dag_when_wired_then_leases_taken_before_planning_and_released_after_compensate_and_verify(
    dag_id: str,
) -> None:
    dag = load_dag(dag_id)
    release = dag.get_task("release_leases")

    assert release.is_teardown and {"compensate", "verify_hedge"} <= release.upstream_task_ids
    assert "acquire_leases" in dag.get_task("snapshot_funding").upstream_task_ids
    assert dag.get_task("acquire_leases").mode == "reschedule"
