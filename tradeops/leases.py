"""Named leases in the project database: one holder at a time, with an expiry.

Used instead of ``max_active_runs=1`` on asset-scheduled DAGs (Airflow issue #56050: with it,
events that arrive while a run is queued can wait for another event). Runs start freely, and the
part that must not overlap (planning and moving funds) waits for the lease. A holder that dies
without releasing loses the lease when it expires.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Column, Engine, String, Table, delete, insert, select, update

from tradeops.db import UTCDateTime, get_engine, insert_unless_exists, lock_clause, metadata, transaction, utcnow

leases = Table(
    "leases",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("holder", String(250), nullable=False),
    Column("acquired_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
)


@dataclass(frozen=True, kw_only=True)
class Lease:
    name: str
    holder: str
    acquired_at: datetime
    expires_at: datetime


def acquire(
    name: str, holder: str, ttl: timedelta, *, engine: Engine | None = None, clock: Callable[[], datetime] = utcnow
) -> Lease | None:
    """Take (or renew) the lease for ``holder``; None while another holder has an unexpired one."""
    now = clock()
    values = {"holder": holder, "acquired_at": now, "expires_at": now + ttl}
    with transaction(engine or get_engine()) as conn:
        query = select(leases).where(leases.c.name == name)
        if lock_clause(conn):
            query = query.with_for_update()
        row = conn.execute(query).first()
        if row is None:
            if not insert_unless_exists(conn, insert(leases).values(name=name, **values)):
                return None
        elif row.holder == holder or row.expires_at <= now:
            conn.execute(update(leases).where(leases.c.name == name).values(**values))
        else:
            return None
    return Lease(name=name, **values)


def release(name: str, holder: str, *, engine: Engine | None = None) -> bool:
    """Give the lease back; False when ``holder`` did not hold it (expired and taken, or never held)."""
    with transaction(engine or get_engine()) as conn:
        return bool(conn.execute(delete(leases).where(leases.c.name == name, leases.c.holder == holder)).rowcount)


def release_held(holder: str, prefix: str, *, engine: Engine | None = None) -> list[str]:
    """Give back every lease named ``prefix...`` that ``holder`` holds; returns their names."""
    held = (leases.c.holder == holder) & leases.c.name.startswith(prefix, autoescape=True)
    with transaction(engine or get_engine()) as conn:
        names = sorted(conn.execute(select(leases.c.name).where(held)).scalars())
        conn.execute(delete(leases).where(held, leases.c.name.in_(names)))
    return names


def current(name: str, *, engine: Engine | None = None) -> Lease | None:
    with transaction(engine or get_engine()) as conn:
        row = conn.execute(select(leases).where(leases.c.name == name)).first()
    return (
        None
        if row is None
        else Lease(name=row.name, holder=row.holder, acquired_at=row.acquired_at, expires_at=row.expires_at)
    )
