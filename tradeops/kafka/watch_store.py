"""What the Kafka watchers record in the project database, besides the dead letters themselves:

- ``event_fingerprints``: the SHA-256 of each event id's validated body, first come first kept, so
  an ``event_id`` reused with a different body is a visible conflict (dead-lettered), never a
  silent drop;
- ``stale_events``: events older than their type's maximum age, which never fire;
- ``watcher_health``: one row per watcher: heartbeat, last message, consumer lag, broker state
  (up / down since when), counters and the last error. ``tradeops kafka watchers`` reads it.

Every write is idempotent (a redelivered batch records nothing twice).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Float,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    insert,
    select,
    update,
)

from tradeops.db import UTCDateTime, get_engine, insert_unless_exists, metadata, transaction, utcnow

event_fingerprints = Table(
    "event_fingerprints",
    metadata,
    Column("event_id", String(64), primary_key=True),
    Column("event_type", String(64), nullable=False),
    Column("digest", String(64), nullable=False),
    Column("topic", String(250), nullable=False),
    Column("partition", Integer, nullable=False),
    Column("offset", BigInteger, nullable=False),
    Column("first_seen_at", UTCDateTime, nullable=False),
)

stale_events = Table(
    "stale_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("watcher", String(250), nullable=False),
    Column("event_id", String(64), nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("occurred_at", UTCDateTime, nullable=False),
    Column("age_seconds", Float, nullable=False),
    Column("topic", String(250), nullable=False),
    Column("partition", Integer, nullable=False),
    Column("offset", BigInteger, nullable=False),
    Column("at", UTCDateTime, nullable=False),
    UniqueConstraint("watcher", "topic", "partition", "offset", name="uq_stale_events_message"),
)

watcher_health = Table(
    "watcher_health",
    metadata,
    Column("watcher", String(250), primary_key=True),
    Column("topic", String(250), nullable=False),
    Column("group_id", String(250), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("heartbeat_at", UTCDateTime, nullable=False),
    Column("last_message_at", UTCDateTime, nullable=True),
    Column("lag", BigInteger, nullable=True),
    Column("broker_state", String(16), nullable=False),
    Column("broker_down_since", UTCDateTime, nullable=True),
    Column("messages", BigInteger, nullable=False),
    Column("fired", BigInteger, nullable=False),
    Column("dead_lettered", BigInteger, nullable=False),
    Column("stale", BigInteger, nullable=False),
    Column("conflicts", BigInteger, nullable=False),
    Column("last_error", Text, nullable=True),
    Column("process", String(250), nullable=False),
)


@dataclass(frozen=True, kw_only=True)
class Fingerprint:
    event_id: str
    event_type: str
    digest: str
    topic: str
    partition: int
    offset: int


def first_fingerprints(prints: Sequence[Fingerprint], engine: Engine | None = None) -> dict[str, Fingerprint]:
    """The first body recorded for each event id in ``prints``; ids never seen before are recorded
    now, the earliest of ``prints`` first. A message whose digest differs from its id's first
    fingerprint reuses the id with another body (a conflict)."""
    first: dict[str, Fingerprint] = {}
    table = event_fingerprints
    with transaction(engine or get_engine()) as conn:
        for fp in prints:
            if fp.event_id in first:
                continue
            row = conn.execute(select(table).where(table.c.event_id == fp.event_id)).first()
            if row is None:
                statement = insert(table).values(
                    event_id=fp.event_id,
                    event_type=fp.event_type,
                    digest=fp.digest,
                    topic=fp.topic,
                    partition=fp.partition,
                    offset=fp.offset,
                    first_seen_at=utcnow(),
                )
                if insert_unless_exists(conn, statement):
                    first[fp.event_id] = fp
                    continue
                row = conn.execute(select(table).where(table.c.event_id == fp.event_id)).first()
            if row is not None:
                first[fp.event_id] = Fingerprint(
                    event_id=row.event_id,
                    event_type=row.event_type,
                    digest=row.digest,
                    topic=row.topic,
                    partition=row.partition,
                    offset=row.offset,
                )
    return first


def recorded_digests(event_ids: Iterable[str], engine: Engine | None = None) -> dict[str, str]:
    """The first body digest recorded for each of ``event_ids`` that a watcher has seen."""
    wanted = sorted(set(event_ids))
    if not wanted:
        return {}
    table = event_fingerprints
    with transaction(engine or get_engine()) as conn:
        rows = conn.execute(select(table.c.event_id, table.c.digest).where(table.c.event_id.in_(wanted))).all()
    return {row.event_id: row.digest for row in rows}


@dataclass(frozen=True, kw_only=True)
class StaleEvent:
    watcher: str
    event_id: str
    event_type: str
    occurred_at: datetime
    age_seconds: float
    topic: str
    partition: int
    offset: int
    at: datetime | None = None


def record_stale(events: Iterable[StaleEvent], engine: Engine | None = None) -> int:
    """Record stale events once per (watcher, message); how many were new."""
    new = 0
    with transaction(engine or get_engine()) as conn:
        for event in events:
            statement = insert(stale_events).values(
                watcher=event.watcher,
                event_id=event.event_id,
                event_type=event.event_type,
                occurred_at=event.occurred_at,
                age_seconds=event.age_seconds,
                topic=event.topic,
                partition=event.partition,
                offset=event.offset,
                at=utcnow(),
            )
            new += insert_unless_exists(conn, statement)
    return new


def recent_stale(limit: int = 20, engine: Engine | None = None) -> list[StaleEvent]:
    with transaction(engine or get_engine()) as conn:
        rows = conn.execute(select(stale_events).order_by(stale_events.c.id.desc()).limit(limit)).all()
    return [
        StaleEvent(
            watcher=r.watcher,
            event_id=r.event_id,
            event_type=r.event_type,
            occurred_at=r.occurred_at,
            age_seconds=r.age_seconds,
            topic=r.topic,
            partition=r.partition,
            offset=r.offset,
            at=r.at,
        )
        for r in rows
    ]


@dataclass(frozen=True, kw_only=True)
class WatcherHealth:
    """A watcher's last recorded state. ``broker_state``: ``up``, ``down`` (unreachable longer
    than the alert threshold) or ``connecting`` (not reached yet, or only briefly lost)."""

    watcher: str
    topic: str
    group_id: str
    started_at: datetime
    heartbeat_at: datetime
    last_message_at: datetime | None
    lag: int | None
    broker_state: str
    broker_down_since: datetime | None
    messages: int
    fired: int
    dead_lettered: int
    stale: int
    conflicts: int
    last_error: str | None
    process: str


def save_health(health: WatcherHealth, engine: Engine | None = None) -> None:
    """Write ``health`` as the watcher's current row (insert the first time)."""
    values = {k: v for k, v in health.__dict__.items() if k != "watcher"}
    table = watcher_health
    with transaction(engine or get_engine()) as conn:
        if conn.execute(update(table).where(table.c.watcher == health.watcher).values(**values)).rowcount:
            return
        if not insert_unless_exists(conn, insert(table).values(watcher=health.watcher, **values)):
            conn.execute(update(table).where(table.c.watcher == health.watcher).values(**values))


def watcher_healths(engine: Engine | None = None) -> list[WatcherHealth]:
    with transaction(engine or get_engine()) as conn:
        rows = conn.execute(select(watcher_health).order_by(watcher_health.c.watcher)).all()
    return [WatcherHealth(**row._asdict()) for row in rows]
