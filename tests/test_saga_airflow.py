"""The saga machinery under real Airflow (``dag.test()``) on the paper venue.

The shipped ``saga_drill`` DAG runs a 3-step saga (transfer okx->binance, spot buy on binance,
perp short on bybit); its ``arm_drill`` task arms a paper-venue fault for the chosen step.
"""

from __future__ import annotations

import os
import subprocess
import sys
from decimal import Decimal

import pytest

from tests.dag_files import load_dag_module
from tradeops import risk
from tradeops.config import settings
from tradeops.saga import ledger

pytestmark = [pytest.mark.airflow, pytest.mark.slow]

STEPS = ["move_usdt", "buy_spot", "hedge_perp"]
VENUES = ["okx", "binance", "bybit"]


def _snapshot() -> dict[str, object]:
    from tradeops.venues.paper import PaperVenue

    book: dict[str, object] = {}
    for name in VENUES:
        venue = PaperVenue(name, settings())
        book[f"{name}.balances"] = {a: b.total for a, b in venue.balances().items()}
        book[f"{name}.positions"] = {p.symbol: p.size for p in venue.positions()}
        book[f"{name}.open_orders"] = len(venue.open_orders())
    return book


def _fees(venue_name: str) -> Decimal:
    from tradeops.venues.paper import PaperVenue

    return sum((f.fee for f in PaperVenue(venue_name, settings()).fills()), Decimal(0))


def _run_drill(**conf: str):
    dag = load_dag_module("saga_drill").dag
    return dag.test(run_conf=conf)


@pytest.mark.parametrize("failing_step", STEPS)
def test_saga_when_step_fails_then_completed_steps_undone_in_reverse_and_run_failed(
    paper_world: None, failing_step: str
) -> None:
    start = _snapshot()

    run = _run_drill(fail_at=failing_step, error="insufficient_funds")

    assert run.state == "failed"
    entries = ledger.entries(run.run_id, "saga_drill")
    completed = STEPS[: STEPS.index(failing_step)]
    undone = [e.step for e in entries if e.kind == "undo" and e.outcome == "undone"]
    assert undone == list(reversed(completed))
    failed_step_undo = [e.outcome for e in entries if e.kind == "undo" and e.step == failing_step]
    assert failed_step_undo == ["nothing_to_undo"]
    assert not [e for e in entries if e.kind == "undo" and e.outcome == "undo_failed"]
    assert not [e for e in entries if e.kind == "action" and e.step not in [*completed, failing_step]]

    end = _snapshot()
    # Positions and base assets come back exactly; the quote assets lose exactly the fees paid.
    transfer_fees = {"okx": Decimal("0.8") + Decimal("1")} if "move_usdt" in completed else {}
    for name in VENUES:
        assert end[f"{name}.positions"] == {} or all(v == 0 for v in end[f"{name}.positions"].values())
        assert end[f"{name}.open_orders"] == 0
        start_bal, end_bal = start[f"{name}.balances"], end[f"{name}.balances"]
        quote = "USDT"
        expected_quote = start_bal[quote] - _fees(name) - transfer_fees.get(name, Decimal(0))
        assert end_bal[quote] == expected_quote, name
        assert {a: v for a, v in end_bal.items() if a != quote} == {a: v for a, v in start_bal.items() if a != quote}


def test_saga_when_no_fault_then_all_steps_succeed_and_compensate_skipped(paper_world: None) -> None:
    run = _run_drill(fail_at="none")

    assert run.state == "success"
    entries = ledger.entries(run.run_id, "saga_drill")
    assert [e.step for e in entries if e.outcome == "succeeded"] == STEPS
    assert not [e for e in entries if e.kind == "undo"]
    end = _snapshot()
    assert end["bybit.positions"] == {"BTC/USDT:USDT": Decimal("-0.2")}


def test_saga_when_call_times_out_after_order_placed_then_retry_places_no_second_order(paper_world: None) -> None:
    from tradeops.venues.paper import PaperVenue

    run = _run_drill(fail_at="buy_spot", error="temporary", phase="after")

    assert run.state == "success"
    fills = PaperVenue("binance", settings()).fills()
    assert len(fills) == 1 and fills[0].amount == Decimal("0.2")
    tries = [(e.try_number, e.outcome) for e in ledger.entries(run.run_id, "saga_drill") if e.step == "buy_spot"]
    assert tries == [(1, "started"), (1, "failed"), (2, "started"), (2, "succeeded")]


def test_saga_when_operational_error_then_compensated_and_trading_halted(paper_world: None) -> None:
    run = _run_drill(fail_at="hedge_perp", error="operational")

    assert run.state == "failed"
    assert risk.get_state().state is risk.TradingState.HALTED
    entries = ledger.entries(run.run_id, "saga_drill")
    # Compensation still works while HALTED: the undos only reduce exposure.
    assert [e.step for e in entries if e.kind == "undo" and e.outcome == "undone"] == [
        "buy_spot",
        "move_usdt",
    ]


def test_step_when_process_killed_after_order_placed_then_rerun_places_no_second_order(paper_world: None) -> None:
    """A real process death (SIGKILL) between the venue accepting the order and the step finishing."""
    from tradeops.saga.core import StepRef, compensation_record, run_action
    from tradeops.venues.paper import PaperVenue

    ref = StepRef(dag_id="saga_drill", run_id="killed-run", task_id="buy_spot")
    params = {"venue": "binance", "symbol": "BTC/USDT", "side": "buy", "amount": "0.3"}
    script = (
        "import os, signal\n"
        "from tradeops.venues.paper import PaperVenue\n"
        "original = PaperVenue.place_order\n"
        "def place_then_die(self, request):\n"
        "    original(self, request)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "PaperVenue.place_order = place_then_die\n"
        "from tradeops.saga.core import StepRef, compensation_record, run_action\n"
        "ref = StepRef(dag_id='saga_drill', run_id='killed-run', task_id='buy_spot')\n"
        "record = compensation_record(ref, step='buy_spot', step_index=1,\n"
        f"    action='tradeops.saga.actions.place_order', params={params!r})\n"
        "run_action(record)\n"
    )
    died = subprocess.run(
        [sys.executable, "-c", script], env=os.environ.copy(), capture_output=True, text=True, timeout=120
    )
    assert died.returncode == -9, died.stderr

    record = compensation_record(
        ref, step="buy_spot", step_index=1, action="tradeops.saga.actions.place_order", params=params
    )
    result = run_action(record, try_number=2)

    fills = PaperVenue("binance", settings()).fills()
    assert len(fills) == 1
    assert result["client_order_id"] == ref.key and result["filled"] == "0.3"
    outcomes = [e.outcome for e in ledger.entries("killed-run")]
    assert outcomes == ["started", "started", "succeeded"]


def test_venue_when_temporary_failures_reach_threshold_then_breaker_fails_fast(
    paper_world: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tradeops.errors import CircuitOpenError, TemporaryVenueError
    from tradeops.venues.factory import open_venue
    from tradeops.venues.paper import PaperVenue

    threshold = settings().saga.breaker_failure_threshold
    PaperVenue("okx", settings()).inject_fault("balances", "temporary", times=threshold + 3)
    venue = open_venue("okx")
    for _ in range(threshold):
        with pytest.raises(TemporaryVenueError) as caught:
            venue.balances()
        assert not isinstance(caught.value, CircuitOpenError)
    with pytest.raises(CircuitOpenError):
        venue.balances()
    # Failing fast means the venue was not called: 3 armed faults are still unused.
    venue.breaker.reset()
    for _ in range(3):
        with pytest.raises(TemporaryVenueError):
            venue.balances()
    assert "USDT" in venue.balances()
