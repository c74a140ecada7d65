"""Undos report what the venue confirms; keys never act twice; HALTED keeps funds home.

On the seeded paper world (project database at the migrations' head), calling the saga actions
and their undos directly, as the saga operators do.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from tradeops import risk, wise
from tradeops.config import settings
from tradeops.errors import (
    IdempotencyKeyReusedError,
    OutcomeUnknownError,
    RunEndedError,
    SagaClosedError,
    StillSettlingError,
    TradingHaltedError,
)
from tradeops.model import OrderRequest, Side
from tradeops.saga import actions, ledger, store
from tradeops.saga.core import (
    StepRef,
    UndoOutcome,
    compensate_run,
    compensation_record,
    record_intent,
    run_action,
)
from tradeops.saga.recovery import Verdict, recover
from tradeops.venues.factory import open_venue
from tradeops.venues.paper import PaperVenue

BUY = {"venue": "binance", "symbol": "BTC/USDT", "side": "buy", "amount": "0.2"}


def _btc(venue: str = "binance") -> Decimal:
    return PaperVenue(venue, settings()).balances()["BTC"].total


def _halt() -> None:
    risk.set_state(risk.TradingState.HALTED, reason="test", changed_by="test")


def test_undo_when_spot_fee_taken_in_base_then_sells_what_was_received_and_base_back_exactly(
    paper_world: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRADEOPS__VENUES__BINANCE__SPOT_FEE_ASSET", "received")
    settings.cache_clear()
    before = _btc()

    bought = actions.place_order(BUY, "feekey1")
    result = actions.undo_place_order(BUY, "feekey1")

    assert bought["fee_asset"] == "BTC" and Decimal(bought["fee"]) == Decimal("0.2") * Decimal("0.0005")
    assert result.outcome is UndoOutcome.UNDONE
    assert [r["amount"] for r in result.detail["reverses"]] == [str(Decimal("0.2") - Decimal(bought["fee"]))]
    assert _btc() == before


def test_undo_when_first_reverse_order_rejected_then_next_attempt_trades_back(paper_world: None) -> None:
    before = _btc()
    actions.place_order(BUY, "rejkey1")
    PaperVenue("binance", settings()).inject_fault("fill", "reject", times=1)

    result = actions.undo_place_order(BUY, "rejkey1")

    assert result.outcome is UndoOutcome.UNDONE
    assert [r["status"] for r in result.detail["reverses"]] == ["rejected", "filled"]
    assert _btc() == before
    again = actions.undo_place_order(BUY, "rejkey1")  # idempotent: finds its own reverse orders
    assert again.outcome is UndoOutcome.UNDONE and _btc() == before


def test_undo_when_order_not_found_on_venue_without_client_id_lookup_then_unknown_not_nothing(
    paper_world: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(PaperVenue, "finds_orders_by_client_id", False)

    with pytest.raises(OutcomeUnknownError, match="unknown"):
        actions.undo_place_order(BUY, "neverplaced")


def test_undo_when_order_not_found_on_venue_that_finds_every_order_then_nothing_to_undo(paper_world: None) -> None:
    assert actions.undo_place_order(BUY, "neverplaced").outcome is UndoOutcome.NOTHING_TO_UNDO


def test_place_order_when_same_client_id_with_other_parameters_then_hard_error_not_the_old_order(
    paper_world: None,
) -> None:
    guarded = open_venue("binance")
    first = OrderRequest(venue="binance", symbol="BTC/USDT", side=Side.BUY, amount=Decimal("0.1"), client_order_id="k1")
    guarded.place_order(first)

    for other in (
        OrderRequest(venue="binance", symbol="BTC/USDT", side=Side.BUY, amount=Decimal("0.2"), client_order_id="k1"),
        OrderRequest(venue="binance", symbol="BTC/USDT", side=Side.SELL, amount=Decimal("0.1"), client_order_id="k1"),
        OrderRequest(venue="binance", symbol="ETH/USDT", side=Side.BUY, amount=Decimal("0.1"), client_order_id="k1"),
    ):
        with pytest.raises(IdempotencyKeyReusedError):
            guarded.place_order(other)
        with pytest.raises(IdempotencyKeyReusedError):
            PaperVenue("binance", settings()).place_order(other)
    assert guarded.place_order(first).amount == Decimal("0.1")
    assert len(PaperVenue("binance", settings()).fills()) == 1


def test_withdraw_when_same_transfer_id_with_other_amount_then_hard_error(paper_world: None) -> None:
    move = {"venue": "okx", "asset": "USDT", "amount": "1000", "to_venue": "binance", "network": "TRC20"}
    actions.withdraw(move, "tkey1")

    with pytest.raises(IdempotencyKeyReusedError, match="amount 1000 != 2000"):
        actions.withdraw({**move, "amount": "2000"}, "tkey1")


def test_withdraw_when_halted_then_refused_but_compensating_reverse_transfer_goes(paper_world: None) -> None:
    move = {"venue": "okx", "asset": "USDT", "amount": "1000", "to_venue": "binance", "network": "TRC20"}
    actions.withdraw(move, "tkey2")
    _halt()

    with pytest.raises(TradingHaltedError, match="HALTED"):
        actions.withdraw({**move, "amount": "500"}, "tkey3")
    result = actions.undo_withdraw(move, "tkey2")

    assert result.outcome is UndoOutcome.UNDONE
    assert result.detail["reverse"]["status"] == "settled"


def test_wise_transfer_when_halted_then_refused_unless_compensation(paper_world: None) -> None:
    _halt()

    def send(transfer_id: str, *, compensation: bool) -> object:
        return wise.send_transfer(
            settings(),
            transfer_id=transfer_id,
            from_venue="binance",
            to_venue="alpaca",
            currency="USD",
            amount=Decimal(5000),
            compensation=compensation,
        )

    with pytest.raises(TradingHaltedError, match="Wise transfer"):
        send("wkey1", compensation=False)
    assert send("wkey2", compensation=True).amount == Decimal(5000)


def test_undo_transfer_when_still_on_its_way_then_waits_until_it_is_due(
    paper_world: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRADEOPS__VENUES__OKX__WITHDRAWAL__USDT__ERC20__SETTLE_SECONDS", "300")
    settings.cache_clear()
    move = {"venue": "okx", "asset": "USDT", "amount": "1000", "to_venue": "binance", "network": "ERC20"}
    sent = actions.withdraw(move, "tkey4")

    with pytest.raises(StillSettlingError) as waiting:
        actions.undo_withdraw(move, "tkey4")

    assert waiting.value.until is not None
    assert waiting.value.until.isoformat() == sent["settles_at"]
    assert waiting.value.until - timedelta(seconds=300) <= waiting.value.until


def _record(task_id: str, params: dict[str, str], index: int = 0) -> object:
    ref = StepRef(dag_id="ledger_test", run_id="run1", task_id=task_id)
    return compensation_record(
        ref, step=task_id, step_index=index, action="tradeops.saga.actions.place_order", params=params
    )


def test_intent_when_same_key_recorded_with_other_parameters_then_hard_error(paper_world: None) -> None:
    record_intent(_record("buy", BUY))

    with pytest.raises(IdempotencyKeyReusedError, match="already recorded"):
        record_intent(_record("buy", {**BUY, "amount": "0.3"}))


def test_compensated_saga_when_a_step_asks_to_act_then_refused_with_new_run_hint(paper_world: None) -> None:
    record = _record("buy", BUY)
    record_intent(record)
    actions.place_order(BUY, record.idempotency_key)
    store.set_step_status(record.idempotency_key, store.StepStatus.ACTED)

    report = compensate_run("ledger_test", "run1", by="test", reason="drill")

    assert report.undone == ["buy"]
    assert store.get_run("ledger_test", "run1").status is store.SagaStatus.COMPENSATED
    with pytest.raises(SagaClosedError, match="trigger a new run"):
        record_intent(record)
    assert compensate_run("ledger_test", "run1", by="test", reason="again").already_closed is not None


def test_step_when_its_run_ended_before_acting_then_refused_nothing_placed_and_recovery_finds_nothing(
    paper_world: None,
) -> None:
    record = _record("buy", BUY)
    fills_before = len(PaperVenue("binance", settings()).fills())

    with pytest.raises(RunEndedError, match="not acting, the run is already failed"):
        run_action(record, run_ended=lambda: "the run is already failed")

    assert len(PaperVenue("binance", settings()).fills()) == fills_before
    refused = [e for e in ledger.entries("run1", "ledger_test") if e.kind == "action"]
    assert [(e.outcome, e.detail["error"]) for e in refused] == [("refused", "RunEndedError")]
    assert [step.status for step in store.steps("ledger_test", "run1")] == [store.StepStatus.FAILED]
    # the compensation it recorded first is verified at the venue: no order, nothing to undo
    report = compensate_run("ledger_test", "run1", by="test", reason="run ended")
    assert report.undone == [] and report.nothing_to_undo == ["buy"]
    # in a run still running, the same step acts
    running = compensation_record(
        StepRef(dag_id="ledger_test", run_id="run2", task_id="buy"),
        step="buy",
        step_index=0,
        action="tradeops.saga.actions.place_order",
        params=BUY,
    )
    assert run_action(running, run_ended=lambda: None)["status"] == "filled"
    assert len(PaperVenue("binance", settings()).fills()) == fills_before + 1


def test_recovery_when_run_deleted_then_compensated_and_when_running_then_left_alone(paper_world: None) -> None:
    record = _record("buy", BUY)
    record_intent(record)
    actions.place_order(BUY, record.idempotency_key)
    store.set_step_status(record.idempotency_key, store.StepStatus.ACTED)
    saga = store.get_run("ledger_test", "run1")

    assert recover(saga, "running", by="test").verdict is Verdict.LEFT_RUNNING
    result = recover(saga, None, by="test")

    assert result.verdict is Verdict.COMPENSATED
    closed = store.get_run("ledger_test", "run1")
    assert (closed.status, closed.closed_by) == (store.SagaStatus.COMPENSATED, "test")
    assert "deleted" in closed.close_reason


def test_recovery_when_run_marked_success_with_an_unfinished_step_then_handed_to_a_human(paper_world: None) -> None:
    record = _record("buy", BUY)
    record_intent(record)  # intent written, the step never finished

    result = recover(store.get_run("ledger_test", "run1"), "success", by="test")

    assert result.verdict is Verdict.NEEDS_HUMAN
    assert store.get_run("ledger_test", "run1").status is store.SagaStatus.NEEDS_HUMAN
    assert len(PaperVenue("binance", settings()).fills()) == 0  # nothing was moved
