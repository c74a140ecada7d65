"""The emergency stop's reports, kept in the project database (``stop_reports``) for the desk.

Every ``stop_loss_report`` (the ``first`` within seconds, the ``final`` at the end) is stored here
before it is published to ``risk-alerts``, so the desk shows a stop's per-venue figures without
reading task logs or Kafka. One row per event: ``event_id`` is unique and storing an event that
is already there changes nothing (a retried publish of the same event is a no-op). The row keeps
the event's wire JSON whole, plus the columns the desk sorts and filters on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Column, Engine, Index, Integer, String, Table, Text, UniqueConstraint, insert, select

from tradeops.db import UTCDateTime, get_engine, insert_unless_exists, metadata, transaction, utcnow
from tradeops.events import StopLossReport, to_json

stop_reports = Table(
    "stop_reports",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(64), nullable=False),
    Column("dag_id", String(250), nullable=False),  # the event's ``source``: the stop's DAG
    Column("run_id", String(250), nullable=True),
    Column("stage", String(16), nullable=False),
    Column("occurred_at", UTCDateTime, nullable=False),
    Column("all_flat", Boolean, nullable=False),
    Column("trading_state", String(16), nullable=False),
    Column("report", Text, nullable=False),  # the event as published (compact JSON)
    Column("stored_at", UTCDateTime, nullable=False),
    UniqueConstraint("event_id", name="uq_stop_reports_event_id"),
    Index("ix_stop_reports_occurred_at", "occurred_at"),
)


@dataclass(frozen=True, kw_only=True)
class StoredStopReport:
    event_id: str
    dag_id: str
    run_id: str | None
    stage: str
    occurred_at: datetime
    all_flat: bool
    trading_state: str
    report: dict[str, Any]  # the event's wire form, parsed
    stored_at: datetime


def store_report(report: StopLossReport, *, engine: Engine | None = None) -> bool:
    """Keep ``report``; True when stored now, False when its ``event_id`` was already stored."""
    table = stop_reports
    with transaction(engine or get_engine()) as conn:
        if conn.execute(select(table.c.id).where(table.c.event_id == report.event_id)).first() is not None:
            return False
        return insert_unless_exists(
            conn,
            insert(table).values(
                event_id=report.event_id,
                dag_id=report.source,
                run_id=report.run_id,
                stage=report.stage,
                occurred_at=report.occurred_at,
                all_flat=report.all_flat,
                trading_state=report.trading_state,
                report=to_json(report),
                stored_at=utcnow(),
            ),
        )


def recent_reports(limit: int = 5, *, engine: Engine | None = None) -> list[StoredStopReport]:
    """The newest ``limit`` stored reports, newest first."""
    table = stop_reports
    query = select(table).order_by(table.c.occurred_at.desc(), table.c.id.desc()).limit(limit)
    with transaction(engine or get_engine()) as conn:
        rows = conn.execute(query).all()
    return [
        StoredStopReport(
            event_id=r.event_id,
            dag_id=r.dag_id,
            run_id=r.run_id,
            stage=r.stage,
            occurred_at=r.occurred_at,
            all_flat=bool(r.all_flat),
            trading_state=r.trading_state,
            report=json.loads(r.report),
            stored_at=r.stored_at,
        )
        for r in rows
    ]
