"""Saga runs from the saga ledger: recent runs with their status, and one run step by step.

``recent`` lists the newest runs (``tradeops.saga.ledger.recent_runs``: counts of steps and
undos) with a status derived from their entries and the saga tables (``saga_steps``: the rules).
``run`` gives one run's steps, each paired with its latest undo, the amounts and the venue,
what still needs a person in words, and every raw entry: at least what ``tradeops saga show``
prints (the saga's status with who closed it and why, each entry's time, step, map index, kind,
outcome, try, key and detail).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from tradeops.desk.saga_steps import Step, amounts, describe, needs_human, run_status, steps_of, undo_line
from tradeops.model import to_jsonable
from tradeops.saga import ledger, store

MAX_RUNS = 200


def recent(limit: int = 30, *, engine: Engine | None = None) -> dict[str, Any]:
    """``{"runs": [...newest first]}`` with each run's counts and status."""
    runs = []
    for summary in ledger.recent_runs(max(1, min(limit, MAX_RUNS)), engine=engine):
        entries = ledger.entries(summary.run_id, summary.dag_id, engine=engine)
        saga = store.get_run(summary.dag_id, summary.run_id, engine=engine)
        runs.append({**to_jsonable(summary), "status": run_status(steps_of(entries), saga)})
    return {"runs": runs}


def run(dag_id: str, run_id: str, *, engine: Engine | None = None) -> dict[str, Any] | None:
    """One run's body, or None when the ledger has no entry of it (the route answers 404)."""
    entries = ledger.entries(run_id, dag_id, engine=engine)
    if not entries:
        return None
    saga = store.get_run(dag_id, run_id, engine=engine)
    rows = {row.idempotency_key: row for row in store.steps(dag_id, run_id, engine=engine)}
    steps = steps_of(entries)
    return {
        "dag_id": dag_id,
        "run_id": run_id,
        "status": run_status(steps, saga),
        "needs_human": needs_human(steps, rows, saga),
        "first_at": to_jsonable(entries[0].at),
        "last_at": to_jsonable(entries[-1].at),
        "saga": None if saga is None else _saga(saga),
        "steps": [_step(step, rows.get(step.key)) for step in steps],
        "entries": [_entry(entry) for entry in entries],
    }


def _saga(saga: store.SagaRun) -> dict[str, Any]:
    return {
        "status": saga.status.value,
        "opened_at": to_jsonable(saga.opened_at),
        "updated_at": to_jsonable(saga.updated_at),
        "closed_by": saga.closed_by,
        "close_reason": saga.close_reason,
    }


def _step(step: Step, row: store.StepRow | None) -> dict[str, Any]:
    params = step.params(row)
    latest = step.action or step.first
    return {
        "step": step.first.step,
        "task_id": step.first.task_id,
        "map_index": step.first.map_index,
        "venue": params.get("venue"),
        "idempotency_key": step.key,
        "outcome": step.outcome,
        "at": to_jsonable(latest.at),
        "try_number": latest.try_number,
        "what": describe(params),
        "action": None if row is None else row.action,
        "state": None if row is None else row.status.value,
        "params": to_jsonable(params),
        "amounts": amounts(step, params),
        "detail": latest.detail,
        "undo": undo_line(step),
    }


def _entry(entry: ledger.LedgerEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "task_id": entry.task_id,
        "map_index": entry.map_index,
        "step": entry.step,
        "kind": entry.kind,
        "outcome": entry.outcome,
        "try_number": entry.try_number,
        "idempotency_key": entry.idempotency_key,
        "detail": entry.detail,
        "at": to_jsonable(entry.at),
    }
