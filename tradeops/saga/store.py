"""The saga ledger's state: what each saga run intends, did and undid, kept in the project database.

This is the source of truth for compensation. A step writes its intent (idempotency key, action,
parameters, undo) here *before* it acts, so nothing Airflow does to XCom (cleared at the start
of every try) can lose an undo, and a run that Airflow never compensates (a timeout, "Mark run
as failed", a deleted run) can be compensated later from these rows alone.

``saga_runs`` holds one row per run and its status:

- ``open``: steps may act;
- ``completed``: every step succeeded (a cleared step may act again with the same key and
  re-opens it);
- ``compensating``: someone is undoing it (``closed_by`` says who and why); steps refuse to act;
- ``compensated``: every undo succeeded; closed for good: a new run is needed;
- ``needs_human``: an undo failed or its outcome is unknown; closed, a human takes over.

``saga_steps`` holds one row per step instance (idempotency key): status ``intent`` (recorded,
about to act), ``acted``, ``failed`` (raised: it may still have had an effect), and after an
undo ``undone`` / ``nothing_to_undo`` / ``undo_failed``. The append-only journal of every action
and undo is ``tradeops.saga.ledger``.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Column, Connection, Engine, Index, Integer, String, Table, Text, insert, select, update

from tradeops.db import UTCDateTime, get_engine, insert_unless_exists, lock_clause, metadata, transaction, utcnow
from tradeops.errors import IdempotencyKeyReusedError, SagaClosedError
from tradeops.model import to_jsonable
from tradeops.saga import ledger

saga_runs = Table(
    "saga_runs",
    metadata,
    Column("dag_id", String(250), primary_key=True),
    Column("run_id", String(250), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("opened_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("closed_by", String(250), nullable=True),
    Column("close_reason", Text, nullable=True),
    Index("ix_saga_runs_status", "status"),
)

saga_steps = Table(
    "saga_steps",
    metadata,
    Column("idempotency_key", String(64), primary_key=True),
    Column("dag_id", String(250), nullable=False),
    Column("run_id", String(250), nullable=False),
    Column("task_id", String(250), nullable=False),
    Column("map_index", Integer, nullable=False),
    Column("step_index", Integer, nullable=False),
    Column("step", String(250), nullable=False),
    Column("action", String(250), nullable=False),
    Column("undo", String(250), nullable=False),
    Column("params", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("try_number", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_saga_steps_run", "dag_id", "run_id"),
)


class SagaStatus(enum.StrEnum):
    OPEN = "open"
    COMPLETED = "completed"
    COMPENSATING = "compensating"
    COMPENSATED = "compensated"
    NEEDS_HUMAN = "needs_human"


class StepStatus(enum.StrEnum):
    INTENT = "intent"
    ACTED = "acted"
    FAILED = "failed"
    UNDONE = "undone"
    NOTHING_TO_UNDO = "nothing_to_undo"
    UNDO_FAILED = "undo_failed"


ACTS_ALLOWED = frozenset({SagaStatus.OPEN, SagaStatus.COMPLETED})
CLOSED = frozenset({SagaStatus.COMPENSATED, SagaStatus.NEEDS_HUMAN})
# Steps that may have moved money and are not known to be undone.
UNSETTLED_STEPS = frozenset({StepStatus.INTENT, StepStatus.ACTED, StepStatus.FAILED, StepStatus.UNDO_FAILED})


@dataclass(frozen=True, kw_only=True)
class SagaRun:
    dag_id: str
    run_id: str
    status: SagaStatus
    opened_at: datetime
    updated_at: datetime
    closed_by: str | None
    close_reason: str | None


@dataclass(frozen=True, kw_only=True)
class StepRow:
    """One recorded step: everything compensation needs, read back from the database."""

    idempotency_key: str
    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    step_index: int
    step: str
    action: str
    undo: str
    params: dict[str, Any]
    status: StepStatus
    try_number: int


def canonical_params(params: Mapping[str, Any]) -> str:
    """The parameters as canonical JSON: equal parameters give equal text."""
    return json.dumps(to_jsonable(dict(params)), sort_keys=True, separators=(",", ":"))


def _run_row(conn: Connection, dag_id: str, run_id: str, *, lock: bool = False) -> Any:
    query = select(saga_runs).where(saga_runs.c.dag_id == dag_id, saga_runs.c.run_id == run_id)
    if lock and lock_clause(conn):
        query = query.with_for_update()
    return conn.execute(query).first()


def _to_run(row: Any) -> SagaRun:
    return SagaRun(
        dag_id=row.dag_id,
        run_id=row.run_id,
        status=SagaStatus(row.status),
        opened_at=row.opened_at,
        updated_at=row.updated_at,
        closed_by=row.closed_by,
        close_reason=row.close_reason,
    )


def _to_step(row: Any) -> StepRow:
    return StepRow(
        idempotency_key=row.idempotency_key,
        dag_id=row.dag_id,
        run_id=row.run_id,
        task_id=row.task_id,
        map_index=row.map_index,
        step_index=row.step_index,
        step=row.step,
        action=row.action,
        undo=row.undo,
        params=json.loads(row.params),
        status=StepStatus(row.status),
        try_number=row.try_number,
    )


def _closed_message(run: Any) -> str:
    return (
        f"saga {run.dag_id}/{run.run_id} is {run.status} ({run.closed_by}: {run.close_reason}); "
        "its steps do not act again, so a cleared or re-run task moves no money: trigger a new run"
    )


def _lock_run(conn: Connection, dag_id: str, run_id: str) -> Any:
    """The run's row under lock, created ``open`` when it is the run's first step."""
    row = _run_row(conn, dag_id, run_id, lock=True)
    if row is None:
        now = utcnow()
        values = {"dag_id": dag_id, "run_id": run_id, "status": SagaStatus.OPEN.value}
        if insert_unless_exists(conn, insert(saga_runs).values(**values, opened_at=now, updated_at=now)):
            return _run_row(conn, dag_id, run_id)
        row = _run_row(conn, dag_id, run_id, lock=True)
    return row


def record_intent(
    *,
    key: str,
    dag_id: str,
    run_id: str,
    task_id: str,
    map_index: int,
    step_index: int,
    step: str,
    action: str,
    undo: str,
    params: Mapping[str, Any],
    try_number: int,
    engine: Engine | None = None,
) -> StepRow:
    """Write the step's intent before it acts; refuse when the saga is closed or the key is reused.

    Raises ``SagaClosedError`` when the run's saga is being or was compensated, and
    ``IdempotencyKeyReusedError`` when this key was recorded with other parameters or action.
    """
    text = canonical_params(params)
    now = utcnow()
    with transaction(engine or get_engine()) as conn:
        run = _lock_run(conn, dag_id, run_id)
        if SagaStatus(run.status) not in ACTS_ALLOWED:
            raise SagaClosedError(_closed_message(run))
        if run.status == SagaStatus.COMPLETED:
            _set_run(conn, dag_id, run_id, SagaStatus.OPEN, by=None, reason=None)
        existing = conn.execute(select(saga_steps).where(saga_steps.c.idempotency_key == key)).first()
        if existing is None:
            conn.execute(
                insert(saga_steps).values(
                    idempotency_key=key,
                    dag_id=dag_id,
                    run_id=run_id,
                    task_id=task_id,
                    map_index=map_index,
                    step_index=step_index,
                    step=step,
                    action=action,
                    undo=undo,
                    params=text,
                    status=StepStatus.INTENT.value,
                    try_number=try_number,
                    created_at=now,
                    updated_at=now,
                )
            )
            return _to_step(conn.execute(select(saga_steps).where(saga_steps.c.idempotency_key == key)).one())
        if (existing.action, existing.params) != (action, text):
            raise IdempotencyKeyReusedError(
                f"saga step {task_id}[{map_index}] (key {key}) already recorded {existing.action} with "
                f"{existing.params}; this try asks for {action} with {text}. A key never acts with other "
                "parameters: trigger a new run for the new plan"
            )
        conn.execute(
            update(saga_steps).where(saga_steps.c.idempotency_key == key).values(try_number=try_number, updated_at=now)
        )
        return _to_step(existing)


def set_step_status(key: str, status: StepStatus, *, engine: Engine | None = None) -> None:
    with transaction(engine or get_engine()) as conn:
        conn.execute(
            update(saga_steps)
            .where(saga_steps.c.idempotency_key == key)
            .values(status=status.value, updated_at=utcnow())
        )


def steps(dag_id: str, run_id: str, *, engine: Engine | None = None) -> list[StepRow]:
    """Every recorded step of a run, in step order."""
    with transaction(engine or get_engine()) as conn:
        rows = conn.execute(
            select(saga_steps)
            .where(saga_steps.c.dag_id == dag_id, saga_steps.c.run_id == run_id)
            .order_by(saga_steps.c.step_index, saga_steps.c.map_index)
        ).all()
    return [_to_step(row) for row in rows]


def get_run(dag_id: str, run_id: str, *, engine: Engine | None = None) -> SagaRun | None:
    with transaction(engine or get_engine()) as conn:
        row = _run_row(conn, dag_id, run_id)
    return None if row is None else _to_run(row)


def _journal(dag_id: str, run_id: str, status: SagaStatus, by: str | None, reason: str | None) -> None:
    """The saga-level change in the append-only ledger too (who and why), for ``tradeops saga show``."""
    ledger.record(
        dag_id=dag_id,
        run_id=run_id,
        task_id="saga",
        map_index=-1,
        step="saga",
        kind="saga",
        outcome=status.value,
        idempotency_key="-",
        detail={"reason": f"{by}: {reason}", "by": by},
    )


def _set_run(
    conn: Connection, dag_id: str, run_id: str, status: SagaStatus, *, by: str | None, reason: str | None
) -> None:
    conn.execute(
        update(saga_runs)
        .where(saga_runs.c.dag_id == dag_id, saga_runs.c.run_id == run_id)
        .values(status=status.value, updated_at=utcnow(), closed_by=by, close_reason=reason)
    )


def begin_compensation(dag_id: str, run_id: str, *, by: str, reason: str, engine: Engine | None = None) -> SagaRun:
    """Mark the saga as being compensated by ``by`` (steps refuse to act from now on).

    Returns the run as it was before; a closed run (already compensated, or with a human) is
    returned unchanged, and the caller does nothing more.
    """
    with transaction(engine or get_engine()) as conn:
        row = _lock_run(conn, dag_id, run_id)
        before = _to_run(row)
        if before.status not in CLOSED:
            _set_run(conn, dag_id, run_id, SagaStatus.COMPENSATING, by=by, reason=reason[:2000])
    if before.status not in CLOSED and before.status is not SagaStatus.COMPENSATING:
        _journal(dag_id, run_id, SagaStatus.COMPENSATING, by, reason)
    return before


def finish_compensation(
    dag_id: str, run_id: str, status: SagaStatus, *, by: str, reason: str, engine: Engine | None = None
) -> None:
    """Close a compensation: ``compensated`` or ``needs_human``."""
    if status not in CLOSED:
        raise ValueError(f"a compensation ends compensated or needs_human, not {status}")
    with transaction(engine or get_engine()) as conn:
        _lock_run(conn, dag_id, run_id)
        _set_run(conn, dag_id, run_id, status, by=by, reason=reason[:2000])
    _journal(dag_id, run_id, status, by, reason[:2000])


def mark_completed(dag_id: str, run_id: str, *, by: str, engine: Engine | None = None) -> None:
    """Every step succeeded: the saga is complete (unless someone is already compensating it)."""
    with transaction(engine or get_engine()) as conn:
        row = _lock_run(conn, dag_id, run_id)
        if SagaStatus(row.status) is SagaStatus.OPEN:
            _set_run(conn, dag_id, run_id, SagaStatus.COMPLETED, by=by, reason="every step succeeded")


def unfinished_runs(*, engine: Engine | None = None) -> list[SagaRun]:
    """Runs whose saga is open or mid-compensation and has steps that may have moved money."""
    with transaction(engine or get_engine()) as conn:
        rows = conn.execute(
            select(saga_runs)
            .where(saga_runs.c.status.in_([SagaStatus.OPEN.value, SagaStatus.COMPENSATING.value]))
            .where(
                select(saga_steps.c.idempotency_key)
                .where(
                    saga_steps.c.dag_id == saga_runs.c.dag_id,
                    saga_steps.c.run_id == saga_runs.c.run_id,
                    saga_steps.c.status.in_([s.value for s in UNSETTLED_STEPS]),
                )
                .exists()
            )
            .order_by(saga_runs.c.opened_at)
        ).all()
    return [_to_run(row) for row in rows]
