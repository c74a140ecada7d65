"""SAGA core without Airflow: keys, records, reverse-order compensation, ledger, breaker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests import saga_fixtures
from tradeops import errors
from tradeops.errors import CircuitOpenError
from tradeops.saga import ledger
from tradeops.saga.breaker import BreakerState, CircuitBreaker
from tradeops.saga.core import (
    CompensationRecord,
    ErrorClass,
    StepRef,
    classify,
    compensate,
    compensation_record,
    resolve_action,
)
from tradeops.saga.keys import idempotency_key, undo_key


@pytest.fixture
def journal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "journal.jsonl"
    monkeypatch.setenv("SAGA_FIXTURE_JOURNAL", str(path))
    return path


def _record(index: int, **params: str) -> CompensationRecord:
    ref = StepRef(dag_id="d", run_id="r1", task_id=f"step{index}")
    return compensation_record(
        ref,
        step=f"step{index}",
        step_index=index,
        action="tests.saga_fixtures.record_step",
        params={"name": f"step{index}", **params},
    )


def test_idempotency_key_when_same_task_instance_then_same_key_for_every_try() -> None:
    first = idempotency_key("dag", "run", "task", 3)
    assert first == idempotency_key("dag", "run", "task", 3)
    assert len(first) == 32 and first.isalnum()
    others = {
        idempotency_key("dag2", "run", "task", 3),
        idempotency_key("dag", "run2", "task", 3),
        idempotency_key("dag", "run", "task2", 3),
        idempotency_key("dag", "run", "task", 4),
    }
    assert first not in others and len(others) == 4
    assert undo_key(first) != first and undo_key(first) == undo_key(first) and len(undo_key(first)) == 32


def test_resolve_action_when_function_has_no_undo_then_refused() -> None:
    with pytest.raises(ValueError, match="not a saga step"):
        resolve_action("tests.saga_fixtures.not_a_step")
    _action, undo = resolve_action("tests.saga_fixtures.record_step")
    assert undo == "tests.saga_fixtures.undo_record_step"


def test_compensation_record_when_serialised_then_round_trips() -> None:
    record = _record(2, amount="1.5")
    assert CompensationRecord.from_dict(record.to_dict()) == record
    assert record.idempotency_key == idempotency_key("d", "r1", "step2", -1)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (errors.TemporaryVenueError("x"), ErrorClass.TEMPORARY),
        (errors.CircuitOpenError("x"), ErrorClass.TEMPORARY),
        (errors.InvalidOrderError("x"), ErrorClass.REJECTED),
        (errors.InsufficientFundsError("x"), ErrorClass.REJECTED),
        (errors.TradingHaltedError("x"), ErrorClass.REJECTED),
        (errors.AuthenticationError("x"), ErrorClass.OPERATIONAL),
        (errors.OperationalError("x"), ErrorClass.OPERATIONAL),
        (KeyError("x"), ErrorClass.UNKNOWN),
    ],
)
def test_classify_when_error_type_then_next_action(error: Exception, expected: ErrorClass) -> None:
    assert classify(error) is expected


def test_compensate_when_an_undo_fails_then_carries_on_in_reverse_and_reports(db_url: str, journal: Path) -> None:
    records = [_record(0), _record(1, undo_fails="yes"), _record(2)]

    report = compensate(reversed(records))  # any input order: compensation sorts by step index

    undone = [e["name"] for e in saga_fixtures.journal() if e["call"] == "undo"]
    assert undone == ["step2", "step1", "step0"]
    assert report.undone == ["step2", "step0"]
    assert [label for label, _ in report.failed] == ["step1"]
    assert not report.ok and report.temporary_failures == 0
    outcomes = [(e.step, e.outcome) for e in ledger.entries("r1") if e.kind == "undo"]
    assert outcomes == [("step2", "undone"), ("step1", "undo_failed"), ("step0", "undone")]


def test_compensate_when_undo_hits_temporary_error_then_counted_for_retry(db_url: str, journal: Path) -> None:
    report = compensate([_record(0, undo_fails="temporary")])
    assert report.temporary_failures == 1 and not report.ok


class _Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_breaker_when_threshold_failures_then_opens_fails_fast_and_closes_after_trial(db_url: str) -> None:
    clock = _Clock()
    breaker = CircuitBreaker("binance", threshold=3, cooldown=timedelta(seconds=60), clock=clock)
    for _ in range(2):
        breaker.before_call()
        breaker.record_failure()
    assert breaker.status().state is BreakerState.CLOSED
    breaker.before_call()
    assert breaker.record_failure().state is BreakerState.OPEN

    with pytest.raises(CircuitOpenError, match="binance"):
        breaker.before_call()
    clock.now += timedelta(seconds=61)
    breaker.before_call()  # the trial call
    assert breaker.status().state is BreakerState.HALF_OPEN
    with pytest.raises(CircuitOpenError):
        breaker.before_call()  # others wait for the trial's outcome
    breaker.record_success()
    assert breaker.status().state is BreakerState.CLOSED
    breaker.before_call()


def test_breaker_when_trial_fails_then_reopens_for_another_cooldown(db_url: str) -> None:
    clock = _Clock()
    breaker = CircuitBreaker("okx", threshold=1, cooldown=timedelta(seconds=30), clock=clock)
    breaker.record_failure()
    clock.now += timedelta(seconds=31)
    breaker.before_call()
    status = breaker.record_failure()
    assert status.state is BreakerState.OPEN and status.opened_until == clock.now + timedelta(seconds=30)
    with pytest.raises(CircuitOpenError):
        breaker.before_call()


def test_breaker_when_success_between_failures_then_count_resets(db_url: str) -> None:
    breaker = CircuitBreaker("bybit", threshold=2, cooldown=timedelta(seconds=30))
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    assert breaker.status().state is BreakerState.CLOSED


def test_breaker_when_opened_by_one_process_then_seen_by_another(db_url: str) -> None:
    import subprocess
    import sys

    CircuitBreaker("binance", threshold=1, cooldown=timedelta(minutes=5)).record_failure()
    code = (
        "from datetime import timedelta\n"
        "from tradeops.saga.breaker import CircuitBreaker\n"
        "from tradeops.errors import CircuitOpenError\n"
        "try:\n"
        "    CircuitBreaker('binance', threshold=1, cooldown=timedelta(minutes=5)).before_call()\n"
        "except CircuitOpenError:\n"
        "    raise SystemExit(7)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 7, result.stderr


def test_settlement_deadline_when_transfers_say_when_due_then_latest_due_plus_margin_else_none() -> None:
    from tradeops.saga.core import CompensationReport

    early, late = datetime(2026, 1, 1, 12, tzinfo=UTC), datetime(2026, 1, 1, 13, tzinfo=UTC)
    margin = timedelta(minutes=15)

    assert CompensationReport(waiting=[("a", early), ("b", late), ("c", None)]).settlement_deadline(margin) == (
        late + margin
    )
    # No due time: no deadline to reschedule against, the wait is bounded by retries instead.
    assert CompensationReport(waiting=[("a", None)]).settlement_deadline(margin) is None


def test_recovery_when_no_transfer_says_when_due_then_gives_up_once_passes_used_the_margin(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tradeops.config import settings
    from tradeops.saga.core import CompensationReport
    from tradeops.saga.recovery import _settlement_deadline_passed

    monkeypatch.setenv("TRADEOPS__SAGA__SETTLE_MARGIN_SECONDS", "120")
    settings.cache_clear()
    report = CompensationReport(waiting=[("move", None)])
    try:
        for passes in range(1, 4):
            ledger.record(
                dag_id="d",
                run_id="r",
                task_id="move",
                map_index=-1,
                step="move",
                kind="undo",
                outcome="waiting",
                idempotency_key="k",
            )
            assert _settlement_deadline_passed(report, "d", "r") is (passes * 60 > 120)
    finally:
        settings.cache_clear()
