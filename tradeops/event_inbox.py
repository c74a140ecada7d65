"""Durable bookkeeping for Kafka-triggered work: which events each consumer handled, and which
messages went to the dead-letter topic (counted, once per message).

Kafka delivers at least once and a triggered run may carry several events; a consumer claims
each ``event_id`` before acting on it, so a redelivered event never has a second effect.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Column, Engine, Integer, String, Table, Text, UniqueConstraint, func, insert, select

from tradeops.db import UTCDateTime, get_engine, insert_unless_exists, metadata, transaction, utcnow

handled_events = Table(
    "handled_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("consumer", String(250), nullable=False),
    Column("event_id", String(64), nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("run_id", String(250), nullable=False),
    Column("claimed_at", UTCDateTime, nullable=False),
    UniqueConstraint("consumer", "event_id", name="uq_handled_events_consumer_event"),
)

dead_letters = Table(
    "dead_letters",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("topic", String(250), nullable=False),
    Column("partition", Integer, nullable=False),
    Column("offset", Integer, nullable=False),
    Column("field", String(250), nullable=False),
    Column("reason", Text, nullable=False),
    Column("watcher", String(250), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    UniqueConstraint("topic", "partition", "offset", name="uq_dead_letters_message"),
)


@dataclass(frozen=True, kw_only=True)
class Claim:
    event_id: str
    event_type: str
    new: bool
    run_id: str  # the run that claimed it (this one when ``new``)


def claim_events(
    consumer: str, events: Sequence[tuple[str, str]], run_id: str, engine: Engine | None = None
) -> list[Claim]:
    """Claim (event_id, event_type) pairs for ``consumer``; ``new`` is False for ones already handled.

    Duplicates within ``events`` are claimed once.
    """
    claims: list[Claim] = []
    seen: set[str] = set()
    table = handled_events
    with transaction(engine or get_engine()) as conn:
        for event_id, event_type in events:
            if event_id in seen:
                continue
            seen.add(event_id)
            query = select(table.c.run_id).where(table.c.consumer == consumer, table.c.event_id == event_id)
            earlier = conn.execute(query).scalar()
            if earlier is None:
                statement = insert(table).values(
                    consumer=consumer, event_id=event_id, event_type=event_type, run_id=run_id, claimed_at=utcnow()
                )
                if insert_unless_exists(conn, statement):
                    claims.append(Claim(event_id=event_id, event_type=event_type, new=True, run_id=run_id))
                    continue
                earlier = conn.execute(query).scalar()
            claims.append(Claim(event_id=event_id, event_type=event_type, new=False, run_id=str(earlier)))
    return claims


def handled_count(consumer: str, engine: Engine | None = None) -> int:
    with transaction(engine or get_engine()) as conn:
        return int(conn.execute(select(func.count()).where(handled_events.c.consumer == consumer)).scalar() or 0)


def record_dead_letter(
    *, topic: str, partition: int, offset: int, field: str, reason: str, watcher: str, engine: Engine | None = None
) -> bool:
    """Count a dead-lettered message once; False when another watcher already recorded it."""
    statement = insert(dead_letters).values(
        topic=topic, partition=partition, offset=offset, field=field, reason=reason, watcher=watcher, at=utcnow()
    )
    table = dead_letters
    with transaction(engine or get_engine()) as conn:
        exists = conn.execute(
            select(table.c.id).where(table.c.topic == topic, table.c.partition == partition, table.c.offset == offset)
        ).first()
        return exists is None and insert_unless_exists(conn, statement)


@dataclass(frozen=True, kw_only=True)
class DeadLetter:
    topic: str
    partition: int
    offset: int
    field: str
    reason: str
    watcher: str
    at: datetime


def dead_letter_counts(engine: Engine | None = None) -> dict[str, int]:
    """Dead-lettered messages per source topic."""
    with transaction(engine or get_engine()) as conn:
        rows = conn.execute(select(dead_letters.c.topic, func.count()).group_by(dead_letters.c.topic)).all()
    return {topic: int(count) for topic, count in rows}


def recent_dead_letters(
    limit: int = 20, topics: Iterable[str] | None = None, engine: Engine | None = None
) -> list[DeadLetter]:
    query = select(dead_letters).order_by(dead_letters.c.id.desc()).limit(limit)
    if topics is not None:
        query = query.where(dead_letters.c.topic.in_(list(topics)))
    with transaction(engine or get_engine()) as conn:
        rows = conn.execute(query).all()
    return [
        DeadLetter(
            topic=r.topic,
            partition=r.partition,
            offset=r.offset,
            field=r.field,
            reason=r.reason,
            watcher=r.watcher,
            at=r.at,
        )
        for r in rows
    ]


def unhandled(consumer: str, event_ids: Iterable[str], engine: Engine | None = None) -> set[str]:
    """The ids among ``event_ids`` that ``consumer`` has not claimed."""
    wanted = set(event_ids)
    if not wanted:
        return set()
    table = handled_events
    with transaction(engine or get_engine()) as conn:
        done = conn.execute(
            select(table.c.event_id).where(table.c.consumer == consumer, table.c.event_id.in_(sorted(wanted)))
        ).scalars()
        return wanted - set(done)
