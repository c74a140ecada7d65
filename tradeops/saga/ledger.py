"""The saga ledger: every step and undo (what, when, outcome), kept in the project database."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Column, Engine, Integer, String, Table, Text, func, insert, select

from tradeops.db import UTCDateTime, get_engine, metadata, transaction, utcnow
from tradeops.model import to_jsonable

saga_ledger = Table(
    "saga_ledger",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("dag_id", String(250), nullable=False, index=True),
    Column("run_id", String(250), nullable=False, index=True),
    Column("task_id", String(250), nullable=False),
    Column("map_index", Integer, nullable=False),
    Column("step", String(250), nullable=False),
    Column("kind", String(16), nullable=False),  # action | undo | saga
    Column("outcome", String(32), nullable=False),
    Column("idempotency_key", String(64), nullable=False),
    Column("try_number", Integer, nullable=False),
    Column("detail", Text, nullable=False),
    Column("at", UTCDateTime, nullable=False),
)


@dataclass(frozen=True, kw_only=True)
class LedgerEntry:
    id: int  # the row's id: the order entries were written in
    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    step: str
    kind: str
    outcome: str
    idempotency_key: str
    try_number: int
    detail: dict[str, Any]
    at: datetime


def record(
    *,
    dag_id: str,
    run_id: str,
    task_id: str,
    map_index: int,
    step: str,
    kind: str,
    outcome: str,
    idempotency_key: str,
    try_number: int = 1,
    detail: dict[str, Any] | None = None,
    engine: Engine | None = None,
) -> None:
    """Append one entry. Entries are never updated or deleted."""
    with transaction(engine or get_engine()) as conn:
        conn.execute(
            insert(saga_ledger).values(
                dag_id=dag_id,
                run_id=run_id,
                task_id=task_id,
                map_index=map_index,
                step=step,
                kind=kind,
                outcome=outcome,
                idempotency_key=idempotency_key,
                try_number=try_number,
                detail=json.dumps(to_jsonable(detail or {}), sort_keys=True),
                at=utcnow(),
            )
        )


def entries(run_id: str, dag_id: str | None = None, engine: Engine | None = None) -> list[LedgerEntry]:
    """Every entry of a run, oldest first."""
    query = select(saga_ledger).where(saga_ledger.c.run_id == run_id)
    if dag_id is not None:
        query = query.where(saga_ledger.c.dag_id == dag_id)
    with transaction(engine or get_engine()) as conn:
        rows = conn.execute(query.order_by(saga_ledger.c.id)).all()
    return [
        LedgerEntry(
            id=r.id,
            dag_id=r.dag_id,
            run_id=r.run_id,
            task_id=r.task_id,
            map_index=r.map_index,
            step=r.step,
            kind=r.kind,
            outcome=r.outcome,
            idempotency_key=r.idempotency_key,
            try_number=r.try_number,
            detail=json.loads(r.detail),
            at=r.at,
        )
        for r in rows
    ]


@dataclass(frozen=True, kw_only=True)
class RunSummary:
    dag_id: str
    run_id: str
    first_at: datetime
    last_at: datetime
    steps_succeeded: int
    steps_failed: int
    undone: int
    undo_failed: int


def recent_runs(limit: int = 20, engine: Engine | None = None) -> list[RunSummary]:
    """The most recent saga runs, newest first, with counts of step and undo outcomes."""
    c = saga_ledger.c
    with transaction(engine or get_engine()) as conn:
        latest = conn.execute(
            select(c.dag_id, c.run_id, func.min(c.at).label("first_at"), func.max(c.at).label("last_at"))
            .group_by(c.dag_id, c.run_id)
            .order_by(func.max(c.id).desc())
            .limit(limit)
        ).all()
        counts = {
            (r.dag_id, r.run_id, r.kind, r.outcome): r.n
            for r in conn.execute(
                select(c.dag_id, c.run_id, c.kind, c.outcome, func.count().label("n"))
                .where(c.run_id.in_([row.run_id for row in latest]))
                .group_by(c.dag_id, c.run_id, c.kind, c.outcome)
            )
        }
    return [
        RunSummary(
            dag_id=row.dag_id,
            run_id=row.run_id,
            first_at=row.first_at,
            last_at=row.last_at,
            steps_succeeded=counts.get((row.dag_id, row.run_id, "action", "succeeded"), 0),
            steps_failed=counts.get((row.dag_id, row.run_id, "action", "failed"), 0),
            undone=counts.get((row.dag_id, row.run_id, "undo", "undone"), 0),
            undo_failed=counts.get((row.dag_id, row.run_id, "undo", "undo_failed"), 0),
        )
        for row in latest
    ]
