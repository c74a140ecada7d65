"""Durable bookkeeping for Kafka-triggered work: which events each consumer handled, and which
messages went to the dead-letter topic (counted, once per message).

Kafka delivers at least once and a triggered run may carry several events; a consumer claims
each ``event_id`` before acting on it, so a redelivered event never has a second effect.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Engine,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    func,
    insert,
    select,
    update,
)

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
    # ``pending`` while the copy is being produced; ``stored`` once the broker confirmed it (only
    # stored rows count). Where the copy went, and what it holds of the original.
    Column("status", String(16), nullable=False, server_default="stored"),
    Column("event_id", String(64), nullable=True),
    Column("size", BigInteger, nullable=True),
    Column("sha256", String(64), nullable=True),
    Column("truncated", Boolean, nullable=False, server_default=false()),
    Column("dlq_partition", Integer, nullable=True),
    Column("dlq_offset", BigInteger, nullable=True),
    Column("stored_at", UTCDateTime, nullable=True),
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


@dataclass(frozen=True, kw_only=True)
class DeadLetterClaim:
    """One message to dead-letter: where it sits, and why."""

    topic: str
    partition: int
    offset: int
    field: str
    reason: str
    event_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class StoredCopy:
    """Where the dead-letter copy of a message went, and what it holds of the original."""

    topic: str
    partition: int
    offset: int
    size: int
    sha256: str
    truncated: bool
    dlq_partition: int
    dlq_offset: int


def _message(table: Table, topic: str, partition: int, offset: int) -> Any:
    return (table.c.topic == topic) & (table.c.partition == partition) & (table.c.offset == offset)


def claim_dead_letters(
    letters: Sequence[DeadLetterClaim], watcher: str, engine: Engine | None = None
) -> tuple[list[DeadLetterClaim], list[DeadLetterClaim]]:
    """Record each message as ``pending`` unless it already has a row.

    Returns (to produce: new rows, or pending rows this watcher claimed earlier; being produced by
    another watcher right now: pending rows of others). Messages already ``stored`` are in neither.
    """
    mine: list[DeadLetterClaim] = []
    others: list[DeadLetterClaim] = []
    table = dead_letters
    with transaction(engine or get_engine()) as conn:
        for letter in letters:
            where = _message(table, letter.topic, letter.partition, letter.offset)
            row = conn.execute(select(table.c.status, table.c.watcher).where(where)).first()
            if row is None:
                statement = insert(table).values(
                    topic=letter.topic,
                    partition=letter.partition,
                    offset=letter.offset,
                    field=letter.field[:250],
                    reason=letter.reason,
                    watcher=watcher,
                    at=utcnow(),
                    status="pending",
                    event_id=letter.event_id,
                )
                if insert_unless_exists(conn, statement):
                    mine.append(letter)
                    continue
                row = conn.execute(select(table.c.status, table.c.watcher).where(where)).first()
            if row is not None and row.status == "pending":
                (mine if row.watcher == watcher else others).append(letter)
    return mine, others


def take_over_dead_letters(
    letters: Sequence[DeadLetterClaim], watcher: str, engine: Engine | None = None
) -> list[DeadLetterClaim]:
    """Make this watcher the producer of the still-pending ``letters``; those now ours."""
    taken = []
    table = dead_letters
    with transaction(engine or get_engine()) as conn:
        for letter in letters:
            where = _message(table, letter.topic, letter.partition, letter.offset) & (table.c.status == "pending")
            if conn.execute(update(table).where(where).values(watcher=watcher)).rowcount:
                taken.append(letter)
    return taken


def mark_dead_letters_stored(copies: Sequence[StoredCopy], engine: Engine | None = None) -> int:
    """``pending`` -> ``stored`` once the broker confirmed each copy; how many changed."""
    changed = 0
    table = dead_letters
    with transaction(engine or get_engine()) as conn:
        for copy in copies:
            where = _message(table, copy.topic, copy.partition, copy.offset) & (table.c.status == "pending")
            changed += conn.execute(
                update(table)
                .where(where)
                .values(
                    status="stored",
                    size=copy.size,
                    sha256=copy.sha256,
                    truncated=copy.truncated,
                    dlq_partition=copy.dlq_partition,
                    dlq_offset=copy.dlq_offset,
                    stored_at=utcnow(),
                )
            ).rowcount
    return changed


def still_pending(letters: Sequence[DeadLetterClaim], engine: Engine | None = None) -> list[DeadLetterClaim]:
    table = dead_letters
    with transaction(engine or get_engine()) as conn:
        return [
            letter
            for letter in letters
            if conn.execute(
                select(table.c.id).where(
                    _message(table, letter.topic, letter.partition, letter.offset), table.c.status == "pending"
                )
            ).first()
        ]


@dataclass(frozen=True, kw_only=True)
class DeadLetter:
    topic: str
    partition: int
    offset: int
    field: str
    reason: str
    watcher: str
    at: datetime
    status: str = "stored"
    event_id: str | None = None
    size: int | None = None
    truncated: bool = False
    dlq_partition: int | None = None
    dlq_offset: int | None = None


def dead_letter_counts(engine: Engine | None = None) -> dict[str, int]:
    """Dead-lettered messages per source topic (stored in the dead-letter topic, each once)."""
    table = dead_letters
    with transaction(engine or get_engine()) as conn:
        rows = conn.execute(
            select(table.c.topic, func.count()).where(table.c.status == "stored").group_by(table.c.topic)
        ).all()
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
            status=r.status,
            event_id=r.event_id,
            size=r.size,
            truncated=bool(r.truncated),
            dlq_partition=r.dlq_partition,
            dlq_offset=r.dlq_offset,
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
