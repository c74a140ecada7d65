"""The saga ledger is the truth, under real Airflow (``dag.test()``) on the paper venue.

The ``saga_drill`` DAG (transfer okx->binance, spot buy on binance, perp short on bybit) fails at
``hedge_perp`` and compensates. Then Airflow's own clear is used on the same run: a compensated
saga is closed, so no step acts again and the run ends FAILED. Reverse orders that expire are
followed by new ones, and "undone" is only reported when the fills add up.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from tests.dag_files import load_dag_module
from tradeops import risk
from tradeops.config import settings
from tradeops.saga import ledger, store

pytestmark = [pytest.mark.airflow, pytest.mark.slow]

VENUES = ("okx", "binance", "bybit")
FAIL_AT_HEDGE = {"fail_at": "hedge_perp", "error": "insufficient_funds"}


def _book() -> dict[str, Any]:
    from tradeops.venues.paper import PaperVenue

    book: dict[str, Any] = {}
    for name in VENUES:
        venue = PaperVenue(name, settings())
        book[name] = (
            {a: b.total for a, b in venue.balances().items()},
            {p.symbol: p.size for p in venue.positions()},
            len(venue.fills()),
        )
    return book


def _drill() -> Any:
    return load_dag_module("saga_drill").dag


def _clear(dag: Any, run_id: str, task_ids: list[str] | None) -> None:
    """Airflow's own clear of a run (the UI's "Clear"), leaving the run RUNNING for dag.test."""
    from airflow.serialization.serialized_objects import DagSerialization
    from airflow.utils.state import DagRunState

    scheduler_dag = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag))
    scheduler_dag.clear(task_ids=task_ids, run_id=run_id, dag_run_state=DagRunState.RUNNING)


def _failed_and_compensated(logical: datetime) -> Any:
    # dag.test names the run after run_after: the same run_after later means the same run.
    run = _drill().test(logical_date=logical, run_after=logical, run_conf=FAIL_AT_HEDGE)
    assert run.state == "failed"
    saga = store.get_run("saga_drill", run.run_id)
    assert saga is not None and saga.status is store.SagaStatus.COMPENSATED
    return run


def test_cleared_step_when_saga_compensated_then_it_refuses_and_run_ends_failed(paper_world: None) -> None:
    logical = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    first = _failed_and_compensated(logical)
    book = _book()
    dag = _drill()

    # Clear the failed step and compensate only; the earlier steps keep their success (dag.test
    # clears every task of the run, so they are marked success instead of running again).
    _clear(dag, first.run_id, ["hedge_perp", "compensate"])
    again = dag.test(
        logical_date=logical,
        run_after=logical,  # the same run
        run_conf=FAIL_AT_HEDGE,
        mark_success_pattern=r"^(arm_drill|move_usdt|buy_spot)$",
    )

    assert again.run_id == first.run_id
    assert again.state == "failed"
    assert _book() == book  # no naked leg: the cleared step placed nothing
    refused = [e for e in ledger.entries(first.run_id, "saga_drill") if e.outcome == "refused"]
    assert [e.step for e in refused] == ["hedge_perp"]
    assert "trigger a new run" in refused[0].detail["message"]


def test_run_when_cleared_from_the_start_after_compensation_then_nothing_acts_and_run_ends_failed(
    paper_world: None,
) -> None:
    logical = datetime(2026, 3, 2, 11, 0, tzinfo=UTC)
    first = _failed_and_compensated(logical)
    book = _book()
    dag = _drill()
    undos_before = [e for e in ledger.entries(first.run_id, "saga_drill") if e.kind == "undo"]

    _clear(dag, first.run_id, None)
    again = dag.test(logical_date=logical, run_after=logical, run_conf=FAIL_AT_HEDGE)

    assert again.run_id == first.run_id
    assert again.state == "failed"
    assert _book() == book  # the old, already reversed orders are not returned as a success
    entries = ledger.entries(first.run_id, "saga_drill")
    assert [e.step for e in entries if e.outcome == "refused"] == ["move_usdt"]
    assert [e for e in entries if e.kind == "undo"] == undos_before  # nothing undone twice
    assert store.get_run("saga_drill", first.run_id).status is store.SagaStatus.COMPENSATED


def test_undo_when_first_reverse_order_expires_then_a_second_one_trades_back_and_step_undone(
    paper_world: None,
) -> None:
    from tradeops.venues.paper import PaperVenue

    btc_before = PaperVenue("binance", settings()).balances()["BTC"].total

    run = _drill().test(run_conf={**FAIL_AT_HEDGE, "undo_fill": "expire", "undo_fill_times": 1})

    assert run.state == "failed"
    undo = next(e for e in ledger.entries(run.run_id, "saga_drill") if e.kind == "undo" and e.step == "buy_spot")
    assert undo.outcome == "undone"
    assert [(r["status"], r["filled"]) for r in undo.detail["reverses"]] == [("expired", "0"), ("filled", "0.2")]
    assert PaperVenue("binance", settings()).balances()["BTC"].total == btc_before
    assert store.get_run("saga_drill", run.run_id).status is store.SagaStatus.COMPENSATED


def test_undo_when_every_reverse_order_fills_only_partly_then_not_undone_halted_and_handed_to_a_human(
    paper_world: None,
) -> None:
    from tradeops.venues.paper import PaperVenue

    btc_before = PaperVenue("binance", settings()).balances()["BTC"].total

    run = _drill().test(run_conf={**FAIL_AT_HEDGE, "undo_fill": "partial", "undo_fill_times": 10})

    assert run.state == "failed"
    undo = next(e for e in ledger.entries(run.run_id, "saga_drill") if e.kind == "undo" and e.step == "buy_spot")
    assert undo.outcome == "undo_failed"
    assert "still not traded back" in undo.detail["message"]
    # Five reverse orders each filled half of what was left: 0.2 * (1 - 1/32) sold back.
    left = PaperVenue("binance", settings()).balances()["BTC"].total - btc_before
    assert left == Decimal("0.2") / 32
    assert risk.get_state().state is risk.TradingState.HALTED
    saga = store.get_run("saga_drill", run.run_id)
    assert saga.status is store.SagaStatus.NEEDS_HUMAN
    assert "buy_spot" in saga.close_reason


def test_compensate_when_transfer_still_settling_then_waits_by_rescheduling_not_by_spending_retries(
    paper_world: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    for venue in ("okx", "binance"):
        monkeypatch.setenv(f"TRADEOPS__VENUES__{venue.upper()}__WITHDRAWAL__USDT__TRC20__SETTLE_SECONDS", "12")
    settings.cache_clear()

    run = _drill().test(run_conf={"fail_at": "buy_spot", "error": "insufficient_funds"})

    assert run.state == "failed"
    undos = [e for e in ledger.entries(run.run_id, "saga_drill") if e.kind == "undo" and e.step == "move_usdt"]
    outcomes = [e.outcome for e in undos]
    assert outcomes[0] == "waiting" and outcomes[-1] == "undone"
    assert "waiting" in outcomes[:-1] and set(outcomes[:-1]) == {"waiting"}
    assert {e.try_number for e in undos} == {1}  # rescheduled while it waited: no retry spent
    assert store.get_run("saga_drill", run.run_id).status is store.SagaStatus.COMPENSATED
    from tradeops.venues.paper import PaperVenue

    assert PaperVenue("okx", settings()).balances()["USDT"].total == Decimal(300000) - Decimal("0.8") - Decimal("1")
