"""The project database: one SQLAlchemy engine per URL and process, shared table metadata.

SQLite (the local default, a file under ``.local/``) runs in WAL mode and starts every
transaction with ``BEGIN IMMEDIATE`` so several task processes serialise their writes instead of
failing; Postgres (any ``TRADEOPS_DB_URL``) uses row locks (``SELECT ... FOR UPDATE``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Insert, MetaData, String, create_engine, event
from sqlalchemy.exc import IntegrityError
from sqlalchemy.types import DateTime, TypeDecorator

from tradeops.config import PROJECT_ROOT

metadata = MetaData()

_engines: dict[tuple[int, str], Engine] = {}
_lock = threading.Lock()


def state_dir() -> Path:
    """Where local state lives (``.local/`` in the checkout unless ``TRADEOPS_STATE_DIR``)."""
    path = Path(os.environ.get("TRADEOPS_STATE_DIR", PROJECT_ROOT / ".local"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def default_db_url() -> str:
    return os.environ.get("TRADEOPS_DB_URL") or f"sqlite:///{state_dir() / 'tradeops.db'}"


def utcnow() -> datetime:
    return datetime.now(UTC)


class DecimalText(TypeDecorator[Decimal]):
    """Exact decimals on every backend (SQLite's NUMERIC would round through float)."""

    impl = String(64)
    cache_ok = True

    def process_bind_param(self, value: Decimal | None, dialect: Any) -> str | None:
        if value is None:
            return None
        if not isinstance(value, Decimal):
            raise TypeError(f"expected Decimal, got {type(value).__name__}")
        return format(value, "f")

    def process_result_value(self, value: str | None, dialect: Any) -> Decimal | None:
        return None if value is None else Decimal(value)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend."""

    impl = DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use an aware UTC datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def get_engine(url: str | None = None) -> Engine:
    """The engine for ``url`` (default: ``TRADEOPS_DB_URL`` or the local SQLite file)."""
    url = url or default_db_url()
    key = (os.getpid(), url)
    with _lock:
        engine = _engines.get(key)
        if engine is None:
            if url.startswith("sqlite"):
                engine = create_engine(url, connect_args={"timeout": 60})
                _configure_sqlite(engine)
            else:
                engine = create_engine(url, pool_pre_ping=True)
            _engines[key] = engine
        return engine


@contextmanager
def transaction(engine: Engine | None = None) -> Iterator[Connection]:
    """One database transaction (commit on success, roll back on error)."""
    with (engine or get_engine()).begin() as connection:
        yield connection


def lock_clause(connection: Connection) -> bool:
    """True when the backend needs explicit row locks (SQLite already holds a write lock)."""
    return connection.dialect.name != "sqlite"


def insert_unless_exists(connection: Connection, statement: Insert) -> bool:
    """Run an INSERT of a row a read just found missing; False when a concurrent writer added it first.

    Row locks cannot lock a row that does not exist yet, so on Postgres another transaction may
    insert the same key in between; the INSERT then waits for it and fails with a unique violation,
    which would abort the whole transaction. It runs in a savepoint instead, so the transaction
    stays usable and the caller can read (or update) the other writer's row. SQLite transactions
    hold the database write lock, so nothing can get in between there: a plain INSERT.
    """
    if not lock_clause(connection):
        connection.execute(statement)
        return True
    try:
        with connection.begin_nested():
            connection.execute(statement)
    except IntegrityError as exc:
        if not _is_unique_violation(exc):
            raise
        return False
    return True


def _is_unique_violation(exc: IntegrityError) -> bool:
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return code == "23505" if code else "unique" in str(exc.orig).lower()
