"""Scheduled faults of the paper exchange, stored in the database so they cross processes.

A fault makes the next ``times`` calls of one public method on one venue raise a tradeops error,
either ``before`` the call does anything or ``after`` its effect was committed (a timeout after
the side effect: the caller sees an error although the order or withdrawal went through).
A fault on ``fill`` scripts how the next taker orders end instead: ``expire``, ``reject`` (after
the venue accepted the order) or ``partial`` (half fills, the rest expires).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, get_args

from sqlalchemy import Connection, delete, insert, select, update

from tradeops.errors import (
    InsufficientFundsError,
    InvalidOrderError,
    OperationalError,
    TemporaryVenueError,
    VenueError,
)
from tradeops.venues.paper_tables import faults_table

FaultError = Literal["temporary", "operational", "insufficient_funds", "invalid_order"]
FaultPhase = Literal["before", "after"]

# ``fill`` is not a method: a fault scheduled on it scripts the outcome of the venue's next
# taker fills (the order is accepted, then expires, is rejected, or only half of it fills).
FILL = "fill"
FILL_OUTCOMES = frozenset({"expire", "reject", "partial"})

ERRORS: dict[str, type[VenueError]] = {
    "temporary": TemporaryVenueError,
    "operational": OperationalError,
    "insufficient_funds": InsufficientFundsError,
    "invalid_order": InvalidOrderError,
}


@dataclass(frozen=True)
class Fault:
    venue: str
    method: str
    error: str
    phase: str

    def exception(self) -> VenueError:
        return ERRORS[self.error](
            f"paper fault injected: {self.venue}.{self.method} raised {self.error} ({self.phase} the call)"
        )


def validate(method: str, error: str, times: int, phase: str, methods: frozenset[str]) -> None:
    if method == FILL:
        if error not in FILL_OUTCOMES:
            raise ValueError(f"unknown fill outcome '{error}'; one of {sorted(FILL_OUTCOMES)}")
    elif method not in methods:
        raise ValueError(f"cannot inject a fault into '{method}'; faultable methods: {sorted(methods | {FILL})}")
    elif error not in ERRORS:
        raise ValueError(f"unknown fault error '{error}'; one of {sorted(ERRORS)}")
    if phase not in get_args(FaultPhase):
        raise ValueError(f"unknown fault phase '{phase}'; one of {list(get_args(FaultPhase))}")
    if times < 1:
        raise ValueError(f"times must be at least 1, got {times}")


def inject(
    conn: Connection, venue: str, method: str, error: str, times: int, phase: str, now: datetime, skip: int = 0
) -> None:
    if skip:
        conn.execute(
            insert(faults_table).values(
                venue=venue, method=method, error=PASS, phase="before", remaining=skip, created_at=now
            )
        )
    conn.execute(
        insert(faults_table).values(
            venue=venue, method=method, error=error, phase=phase, remaining=times, created_at=now
        )
    )


def clear(conn: Connection, venue: str) -> int:
    """Remove every scheduled fault of ``venue``; returns how many schedules were removed."""
    return conn.execute(delete(faults_table).where(faults_table.c.venue == venue)).rowcount


PASS = "pass"  # a schedule entry that lets calls through: how a fault skips the first N calls


def scheduled(conn: Connection, venue: str, method: str) -> bool:
    """Whether any fault waits for ``venue.method`` (a plain read: no lock needed to ask)."""
    row = conn.execute(
        select(faults_table.c.id)
        .where(faults_table.c.venue == venue, faults_table.c.method == method, faults_table.c.remaining > 0)
        .limit(1)
    ).first()
    return row is not None


def pop(conn: Connection, venue: str, method: str) -> Fault | None:
    """Consume one occurrence of the oldest fault scheduled for ``venue.method`` (venue locked).

    None when nothing is scheduled or the call is one a fault lets through first.
    """
    row = conn.execute(
        select(faults_table)
        .where(faults_table.c.venue == venue, faults_table.c.method == method, faults_table.c.remaining > 0)
        .order_by(faults_table.c.id)
        .limit(1)
    ).first()
    if row is None:
        return None
    if row.remaining <= 1:
        conn.execute(delete(faults_table).where(faults_table.c.id == row.id))
    else:
        conn.execute(update(faults_table).where(faults_table.c.id == row.id).values(remaining=row.remaining - 1))
    if row.error == PASS:
        return None
    return Fault(venue=venue, method=method, error=row.error, phase=row.phase)
