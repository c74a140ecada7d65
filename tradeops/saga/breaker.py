"""A circuit breaker per venue, shared by every task process through the project database.

CLOSED: calls go through; consecutive temporary failures are counted.
OPEN: after ``threshold`` consecutive temporary failures; calls fail fast with
``CircuitOpenError`` until the cool-down has passed.
HALF_OPEN: after the cool-down one caller gets a trial call; success closes the breaker,
failure opens it again. A trial whose process died is superseded after another cool-down.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Column, Connection, Engine, Integer, String, Table, insert, select, update

from tradeops.db import UTCDateTime, get_engine, insert_unless_exists, lock_clause, metadata, transaction, utcnow
from tradeops.errors import CircuitOpenError

circuit_breakers = Table(
    "circuit_breakers",
    metadata,
    Column("venue", String(64), primary_key=True),
    Column("state", String(16), nullable=False),
    Column("consecutive_failures", Integer, nullable=False),
    Column("opened_until", UTCDateTime, nullable=True),
    Column("updated_at", UTCDateTime, nullable=False),
)


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, kw_only=True)
class BreakerStatus:
    venue: str
    state: BreakerState
    consecutive_failures: int
    opened_until: datetime | None


class CircuitBreaker:
    def __init__(
        self,
        venue: str,
        *,
        threshold: int,
        cooldown: timedelta,
        engine: Engine | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        if threshold <= 0:
            raise ValueError("threshold must be positive")
        self.venue = venue
        self.threshold = threshold
        self.cooldown = cooldown
        self._engine = engine
        self._clock = clock

    def _row(self, conn: Connection) -> BreakerStatus:
        query = select(circuit_breakers).where(circuit_breakers.c.venue == self.venue)
        if lock_clause(conn):
            query = query.with_for_update()
        row = conn.execute(query).first()
        if row is None:
            created = insert_unless_exists(
                conn,
                insert(circuit_breakers).values(
                    venue=self.venue,
                    state=BreakerState.CLOSED.value,
                    consecutive_failures=0,
                    opened_until=None,
                    updated_at=self._clock(),
                ),
            )
            if created:
                return BreakerStatus(
                    venue=self.venue, state=BreakerState.CLOSED, consecutive_failures=0, opened_until=None
                )
            row = conn.execute(query).one()  # created concurrently by another process: use (and lock) it
        return BreakerStatus(
            venue=self.venue,
            state=BreakerState(row.state),
            consecutive_failures=row.consecutive_failures,
            opened_until=row.opened_until,
        )

    def _write(self, conn: Connection, state: BreakerState, failures: int, until: datetime | None) -> None:
        conn.execute(
            update(circuit_breakers)
            .where(circuit_breakers.c.venue == self.venue)
            .values(state=state.value, consecutive_failures=failures, opened_until=until, updated_at=self._clock())
        )

    def status(self) -> BreakerStatus:
        with transaction(self._engine or get_engine()) as conn:
            return self._row(conn)

    def before_call(self) -> None:
        """Raise ``CircuitOpenError`` unless a call may go to the venue now."""
        now = self._clock()
        with transaction(self._engine or get_engine()) as conn:
            status = self._row(conn)
            if status.state is BreakerState.CLOSED:
                return
            if status.opened_until is not None and now < status.opened_until:
                raise CircuitOpenError(
                    f"circuit breaker for venue '{self.venue}' is {status.state.value} until "
                    f"{status.opened_until.isoformat()} after {status.consecutive_failures} temporary failures"
                )
            # Cool-down over: this caller makes the trial call; others wait for its outcome.
            self._write(conn, BreakerState.HALF_OPEN, status.consecutive_failures, now + self.cooldown)

    def record_success(self) -> None:
        with transaction(self._engine or get_engine()) as conn:
            status = self._row(conn)
            if status.state is not BreakerState.CLOSED or status.consecutive_failures:
                self._write(conn, BreakerState.CLOSED, 0, None)

    def record_failure(self) -> BreakerStatus:
        """Count one temporary failure; open the breaker at the threshold or after a failed trial."""
        now = self._clock()
        with transaction(self._engine or get_engine()) as conn:
            status = self._row(conn)
            failures = status.consecutive_failures + 1
            if status.state is BreakerState.HALF_OPEN or failures >= self.threshold:
                self._write(conn, BreakerState.OPEN, failures, now + self.cooldown)
                return BreakerStatus(
                    venue=self.venue,
                    state=BreakerState.OPEN,
                    consecutive_failures=failures,
                    opened_until=now + self.cooldown,
                )
            self._write(conn, status.state, failures, status.opened_until)
            return BreakerStatus(
                venue=self.venue,
                state=status.state,
                consecutive_failures=failures,
                opened_until=status.opened_until,
            )

    def reset(self) -> None:
        with transaction(self._engine or get_engine()) as conn:
            self._row(conn)
            self._write(conn, BreakerState.CLOSED, 0, None)


def all_statuses(engine: Engine | None = None) -> list[BreakerStatus]:
    """Every venue's breaker that has ever been used."""
    with transaction(engine or get_engine()) as conn:
        rows = conn.execute(select(circuit_breakers).order_by(circuit_breakers.c.venue)).all()
    return [
        BreakerStatus(
            venue=r.venue,
            state=BreakerState(r.state),
            consecutive_failures=r.consecutive_failures,
            opened_until=r.opened_until,
        )
        for r in rows
    ]
