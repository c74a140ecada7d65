"""The SAGA core: steps paired with named undos, compensation records, reverse-order compensation.

A step's action and its undo take the same parameters and the step's idempotency key:

    @saga_step(undo="undo_place_order")
    def place_order(params, key): ...

    def undo_place_order(params, key): ...

``run_action`` writes the step's intent to the saga ledger in the project database
(``tradeops.saga.store``) *before* calling the action, so a step that times out after its side
effect is still compensated, whatever Airflow does to XCom. Compensation reads the ledger
(``compensate_run``), never XCom. Undos must be idempotent and ask the venue what actually
happened: "nothing to undo" is a success only when the venue can tell; an outcome it cannot
establish is "unknown", never "nothing happened".
"""

from __future__ import annotations

import enum
import importlib
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tradeops import risk
from tradeops.errors import (
    IdempotencyKeyReusedError,
    OperationalError,
    OrderRejectedError,
    OutcomeUnknownError,
    RunEndedError,
    SagaClosedError,
    StillSettlingError,
    TemporaryVenueError,
)
from tradeops.saga import ledger, store
from tradeops.saga.keys import idempotency_key

log = logging.getLogger(__name__)

Params = Mapping[str, Any]
Action = Callable[[Params, str], Mapping[str, Any]]
Undo = Callable[[Params, str], "UndoResult"]


class UndoOutcome(enum.StrEnum):
    UNDONE = "undone"
    NOTHING_TO_UNDO = "nothing_to_undo"


@dataclass(frozen=True)
class UndoResult:
    outcome: UndoOutcome
    detail: Mapping[str, Any] = field(default_factory=dict)


class ErrorClass(enum.StrEnum):
    """What happens next after a step failed, decided by the error's type."""

    TEMPORARY = "temporary"  # retry with exponential backoff
    REJECTED = "rejected"  # fail at once, compensate
    OPERATIONAL = "operational"  # compensate and HALT trading
    UNKNOWN = "unknown"  # a bug or an unmapped error: fail at once, compensate


def classify(exc: BaseException) -> ErrorClass:
    if isinstance(exc, TemporaryVenueError):
        return ErrorClass.TEMPORARY
    if isinstance(exc, OrderRejectedError):
        return ErrorClass.REJECTED
    if isinstance(exc, OperationalError):
        return ErrorClass.OPERATIONAL
    return ErrorClass.UNKNOWN


def saga_step(*, undo: str) -> Callable[[Action], Action]:
    """Declare ``undo`` (a function in the same module) as the named undo of the decorated action."""

    def decorate(action: Action) -> Action:
        action.__saga_undo__ = f"{action.__module__}.{undo}"  # type: ignore[attr-defined]
        return action

    return decorate


def _import(path: str) -> Any:
    module_name, _, attr = path.rpartition(".")
    if not module_name:
        raise ValueError(f"'{path}' is not a dotted path")
    return getattr(importlib.import_module(module_name), attr)


def resolve_action(path: str) -> tuple[Action, str]:
    """The action at ``path`` and the dotted path of its undo."""
    action = _import(path)
    undo_path = getattr(action, "__saga_undo__", None)
    if not undo_path:
        raise ValueError(f"'{path}' is not a saga step: decorate it with @saga_step(undo=...)")
    _import(undo_path)  # fail now, not during compensation, if the undo is missing
    return action, undo_path


@dataclass(frozen=True, kw_only=True)
class StepRef:
    """Where a step runs: one Airflow task instance."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int = -1
    try_number: int = 1

    @property
    def key(self) -> str:
        return idempotency_key(self.dag_id, self.run_id, self.task_id, self.map_index)


@dataclass(frozen=True, kw_only=True)
class CompensationRecord:
    """What compensate needs to undo a step. JSON-safe; holds no secrets."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    step_index: int
    step: str
    action: str
    undo: str
    params: dict[str, Any]
    idempotency_key: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CompensationRecord:
        return cls(**{name: data[name] for name in cls.__dataclass_fields__})


def compensation_record(ref: StepRef, *, step: str, step_index: int, action: str, params: Params) -> CompensationRecord:
    _action, undo_path = resolve_action(action)
    return CompensationRecord(
        dag_id=ref.dag_id,
        run_id=ref.run_id,
        task_id=ref.task_id,
        map_index=ref.map_index,
        step_index=step_index,
        step=step,
        action=action,
        undo=undo_path,
        params=dict(params),
        idempotency_key=ref.key,
    )


def _ledger(record: CompensationRecord, kind: str, outcome: str, try_number: int, detail: Mapping[str, Any]) -> None:
    ledger.record(
        dag_id=record.dag_id,
        run_id=record.run_id,
        task_id=record.task_id,
        map_index=record.map_index,
        step=record.step,
        kind=kind,
        outcome=outcome,
        idempotency_key=record.idempotency_key,
        try_number=try_number,
        detail=dict(detail),
    )


def record_intent(record: CompensationRecord, *, try_number: int = 1) -> None:
    """Write the step's intent to the saga ledger before anything acts (see ``store``)."""
    store.record_intent(
        key=record.idempotency_key,
        dag_id=record.dag_id,
        run_id=record.run_id,
        task_id=record.task_id,
        map_index=record.map_index,
        step_index=record.step_index,
        step=record.step,
        action=record.action,
        undo=record.undo,
        params=record.params,
        try_number=try_number,
    )


def run_action(
    record: CompensationRecord, *, try_number: int = 1, run_ended: Callable[[], str | None] | None = None
) -> Mapping[str, Any]:
    """Record the intent, run the step's action, record its outcome.

    A closed saga (compensated, or with a human) or a key recorded with other parameters
    refuses before anything acts. So does a run that ended meanwhile: ``run_ended`` is asked
    right before the action and returns why the run is over, or None while it still runs (an
    attempt already starting when Airflow timed the run out or a person marked it failed must
    not place the order). Operational errors set HALTED before the error propagates.
    """
    action, _undo = resolve_action(record.action)
    try:
        record_intent(record, try_number=try_number)
        ended = run_ended() if run_ended is not None else None
        if ended is not None:
            store.set_step_status(record.idempotency_key, store.StepStatus.FAILED)
            raise RunEndedError(f"{record.dag_id}/{record.run_id}: not acting, {ended}")
    except (SagaClosedError, IdempotencyKeyReusedError, RunEndedError) as exc:
        _ledger(record, "action", "refused", try_number, {"error": type(exc).__name__, "message": str(exc)})
        raise
    _ledger(record, "action", "started", try_number, {"params": record.params})
    try:
        result = action(record.params, record.idempotency_key)
    except Exception as exc:
        error_class = classify(exc)
        store.set_step_status(record.idempotency_key, store.StepStatus.FAILED)
        _ledger(
            record,
            "action",
            "failed",
            try_number,
            {"error": type(exc).__name__, "message": str(exc), "class": error_class.value},
        )
        if error_class is ErrorClass.OPERATIONAL:
            halt_trading(f"{record.dag_id}/{record.task_id}: {type(exc).__name__}: {exc}", by=record.dag_id)
        raise
    store.set_step_status(record.idempotency_key, store.StepStatus.ACTED)
    _ledger(record, "action", "succeeded", try_number, {"result": dict(result)})
    return result


def halt_trading(reason: str, *, by: str) -> None:
    log.critical("Setting trading state to HALTED: %s", reason)
    risk.set_state(risk.TradingState.HALTED, reason=reason[:2000], changed_by=by)


@dataclass(frozen=True)
class CompensationReport:
    """What one compensation pass did. ``waiting``, ``unknown`` and ``temporary`` are not done yet:
    the pass must run again (later); ``failed`` undos need a human."""

    undone: list[str] = field(default_factory=list)
    nothing_to_undo: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    waiting: list[tuple[str, datetime | None]] = field(default_factory=list)
    unknown: list[tuple[str, str]] = field(default_factory=list)
    temporary: list[tuple[str, str]] = field(default_factory=list)
    already_closed: store.SagaRun | None = None

    @property
    def ok(self) -> bool:
        return not (self.failed or self.unknown or self.waiting or self.temporary)

    @property
    def pending(self) -> bool:
        """Some undo has to be tried again: still settling, unknown, or a temporary error."""
        return bool(self.waiting or self.unknown or self.temporary)

    @property
    def temporary_failures(self) -> int:
        return len(self.temporary)

    def due(self) -> datetime | None:
        """When the last transfer being waited for should arrive; None when none says."""
        known = [until for _label, until in self.waiting if until is not None]
        return max(known) if known else None

    def settlement_deadline(self, margin: timedelta) -> datetime | None:
        """How long waiting for the transfers is reasonable: their due time plus ``margin``.
        None when no transfer says when it arrives (then waiting is bounded by retries instead)."""
        due = self.due()
        return None if due is None else due + margin

    def summary(self) -> str:
        parts = [f"undone {self.undone}", f"nothing to undo {self.nothing_to_undo}"]
        if self.waiting:
            parts.append(f"waiting for settlement {[(label, str(until)) for label, until in self.waiting]}")
        if self.temporary:
            parts.append(f"temporary errors {self.temporary}")
        if self.unknown:
            parts.append(f"OUTCOME UNKNOWN {self.unknown}")
        if self.failed:
            parts.append(f"UNDO FAILED {self.failed}")
        return "; ".join(parts)


def _label(record: CompensationRecord) -> str:
    return record.task_id if record.map_index < 0 else f"{record.task_id}[{record.map_index}]"


def compensate(records: Iterable[CompensationRecord], *, try_number: int = 1) -> CompensationReport:
    """Run the undos in reverse step order; carry on past an undo that fails or has to wait.

    Each undo's outcome is written to the ledger and to the step's row; an undo that is still
    waiting (a transfer settling), unknown or temporarily failing is left for the next pass.
    """
    ordered = sorted(records, key=lambda r: (r.step_index, r.map_index), reverse=True)
    report = CompensationReport()
    for record in ordered:
        label = _label(record)
        try:
            result = _import(record.undo)(record.params, record.idempotency_key)
        except StillSettlingError as exc:
            _ledger(record, "undo", "waiting", try_number, {"message": str(exc), "until": exc.until})
            report.waiting.append((label, exc.until))
            continue
        except OutcomeUnknownError as exc:
            log.error("Undo of %s: outcome unknown: %s", label, exc)
            _ledger(record, "undo", "unknown", try_number, {"error": type(exc).__name__, "message": str(exc)})
            report.unknown.append((label, str(exc)))
            continue
        except TemporaryVenueError as exc:
            log.warning("Undo of %s hit a temporary error: %s", label, exc)
            _ledger(record, "undo", "temporary", try_number, {"error": type(exc).__name__, "message": str(exc)})
            report.temporary.append((label, f"{type(exc).__name__}: {exc}"))
            continue
        except Exception as exc:
            log.error("Undo of %s failed: %s: %s", label, type(exc).__name__, exc)
            _ledger(record, "undo", "undo_failed", try_number, {"error": type(exc).__name__, "message": str(exc)})
            store.set_step_status(record.idempotency_key, store.StepStatus.UNDO_FAILED)
            report.failed.append((label, f"{type(exc).__name__}: {exc}"))
            continue
        _ledger(record, "undo", result.outcome.value, try_number, dict(result.detail))
        store.set_step_status(record.idempotency_key, store.StepStatus(result.outcome.value))
        (report.undone if result.outcome is UndoOutcome.UNDONE else report.nothing_to_undo).append(label)
    return report


def _record_of(row: store.StepRow) -> CompensationRecord:
    return CompensationRecord.from_dict(asdict(row))  # a StepRow holds every record field


def recorded_steps(dag_id: str, run_id: str) -> list[CompensationRecord]:
    """The run's steps that may have moved money and are not undone yet, from the ledger."""
    return [_record_of(row) for row in store.steps(dag_id, run_id) if row.status in store.UNSETTLED_STEPS]


def compensate_run(dag_id: str, run_id: str, *, by: str, reason: str, try_number: int = 1) -> CompensationReport:
    """Compensate a run from its ledger: every step that may have acted, in reverse order.

    Closes the saga first (its steps refuse to act from then on). When every undo is done the
    saga ends ``compensated``. While some undo still has to wait or be retried, or one failed,
    it stays ``compensating``: the caller retries, or ``escalate``s it to a human. A saga that is
    already closed is left alone (``already_closed`` says how it ended).
    """
    before = store.begin_compensation(dag_id, run_id, by=by, reason=reason)
    if before.status in store.CLOSED:
        return CompensationReport(already_closed=before)
    report = compensate(recorded_steps(dag_id, run_id), try_number=try_number)
    if report.ok:
        store.finish_compensation(dag_id, run_id, store.SagaStatus.COMPENSATED, by=by, reason=reason)
    return report


def escalate(dag_id: str, run_id: str, report: CompensationReport, *, by: str, why: str) -> str:
    """Give a compensation that cannot finish to a human: HALT trading and close the saga as
    ``needs_human``, naming what is left. Returns the message."""
    message = f"saga {dag_id}/{run_id} needs a human: {why}; {report.summary()}"
    halt_trading(message, by=by)
    store.finish_compensation(dag_id, run_id, store.SagaStatus.NEEDS_HUMAN, by=by, reason=message)
    return message
