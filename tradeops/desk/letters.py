"""Dead letters (``tradeops.event_inbox.dead_letters``), filtered by source topic and text.

A row is ``pending`` while its copy is being produced to the dead-letter topic and ``stored``
once the broker confirmed it; only stored rows count as dead-lettered (``total``), but pending
ones are listed too, with their status, because a row that stays pending is itself a problem.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, func, or_, select

from tradeops.db import get_engine, transaction
from tradeops.event_inbox import dead_letters
from tradeops.model import to_jsonable

MAX_ITEMS = 500


def snapshot(
    topic: str | None = None, q: str | None = None, limit: int = 50, *, engine: Engine | None = None
) -> dict[str, Any]:
    """Newest first. ``topic``: the source topic exactly; ``q``: a case-insensitive substring of
    the reason or the field. Empty values do not filter."""
    table = dead_letters
    filters = []
    if topic:
        filters.append(table.c.topic == topic)
    if q:
        filters.append(or_(table.c.reason.icontains(q, autoescape=True), table.c.field.icontains(q, autoescape=True)))
    count = select(func.count()).select_from(table)
    items = select(table).where(*filters).order_by(table.c.id.desc()).limit(max(1, min(limit, MAX_ITEMS)))
    with transaction(engine or get_engine()) as conn:
        total = conn.execute(count.where(table.c.status == "stored")).scalar_one()
        matching = conn.execute(count.where(*filters)).scalar_one()
        topics = conn.execute(select(table.c.topic).distinct().order_by(table.c.topic)).scalars().all()
        rows = conn.execute(items).all()
    return {"total": int(total), "matching": int(matching), "topics": list(topics), "items": [_item(r) for r in rows]}


def _item(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "at": to_jsonable(row.at),
        "topic": row.topic,
        "partition": row.partition,
        "offset": row.offset,
        "field": row.field,
        "reason": row.reason,
        "watcher": row.watcher,
        "status": row.status,
        "event_id": row.event_id,
        "dlq_partition": row.dlq_partition,
        "dlq_offset": row.dlq_offset,
        "truncated": bool(row.truncated),
    }
