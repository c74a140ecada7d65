"""Alembic environment: runs on the connection ``tradeops.schema`` hands over, else on the URL."""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import Connection
from sqlalchemy.types import TypeDecorator

from tradeops.db import get_engine
from tradeops.tables import registered_metadata

target_metadata = registered_metadata()


def _render_item(kind: str, obj: Any, _context: Any) -> str | bool:
    """Write our column types as their plain SQL type: a revision must not import tradeops."""
    if kind == "type" and isinstance(obj, TypeDecorator):
        return f"sa.{obj.impl!r}"
    return False


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying
        compare_type=True,
        render_item=_render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    with get_engine(url or None).connect() as connection:
        _run(connection)


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) migrations are not supported: run `tradeops init`")
run_migrations_online()
