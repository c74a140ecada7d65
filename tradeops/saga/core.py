"""The SAGA core: steps paired with named undos, compensation records, reverse-order compensation.

A step's action and its undo take the same parameters and the step's idempotency key:

    @saga_step(undo="undo_place_order")
    def place_order(params, key): ...

    def undo_place_order(params, key): ...

The Airflow layer (``operators.saga``) pushes the ``CompensationRecord`` to XCom *before* calling
the action, so a step that times out after its side effect is still compensated. Undos must be
idempotent and ask the venue what actually happened: "nothing to undo" is a success.
"""

from __future__ import annotations

import enum
import importlib
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from tradeops import risk
from tradeops.errors import OperationalError, OrderRejectedError, TemporaryVenueError
from tradeops.saga import ledger
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


def run_action(record: CompensationRecord, *, try_number: int = 1) -> Mapping[str, Any]:
    """Run the step's action, recording start and outcome in the ledger.

    Operational errors set the trading state to HALTED before the error propagates.
    """
    action, _undo = resolve_action(record.action)
    _ledger(record, "action", "started", try_number, {"params": record.params})
    try:
        result = action(record.params, record.idempotency_key)
    except Exception as exc:
        error_class = classify(exc)
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
    _ledger(record, "action", "succeeded", try_number, {"result": dict(result)})
    return result


def halt_trading(reason: str, *, by: str) -> None:
    log.critical("Setting trading state to HALTED: %s", reason)
    risk.set_state(risk.TradingState.HALTED, reason=reason, changed_by=by)


@dataclass(frozen=True)
class CompensationReport:
    undone: list[str]
    nothing_to_undo: list[str]
    failed: list[tuple[str, str]]
    temporary_failures: int

    @property
    def ok(self) -> bool:
        return not self.failed


def compensate(records: Iterable[CompensationRecord], *, try_number: int = 1) -> CompensationReport:
    """Run the undos in reverse step order; carry on past an undo that fails."""
    ordered = sorted(records, key=lambda r: (r.step_index, r.map_index), reverse=True)
    undone: list[str] = []
    nothing: list[str] = []
    failed: list[tuple[str, str]] = []
    temporary = 0
    for record in ordered:
        label = record.task_id if record.map_index < 0 else f"{record.task_id}[{record.map_index}]"
        try:
            result = _import(record.undo)(record.params, record.idempotency_key)
        except Exception as exc:
            temporary += isinstance(exc, TemporaryVenueError)
            log.error("Undo of %s failed: %s: %s", label, type(exc).__name__, exc)
            _ledger(record, "undo", "undo_failed", try_number, {"error": type(exc).__name__, "message": str(exc)})
            failed.append((label, f"{type(exc).__name__}: {exc}"))
            continue
        _ledger(record, "undo", result.outcome.value, try_number, dict(result.detail))
        (undone if result.outcome is UndoOutcome.UNDONE else nothing).append(label)
    return CompensationReport(undone=undone, nothing_to_undo=nothing, failed=failed, temporary_failures=temporary)
