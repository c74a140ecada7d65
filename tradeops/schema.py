"""The project database schema: upgraded by Alembic migrations, checked before use.

``tradeops init`` (and the Kubernetes bootstrap Job through it) calls ``upgrade``; nothing else
runs DDL, least of all a task: the kill switch must not wait on a schema change. A database that
the tables were created in before the migrations existed (by ``create_all``, with no
``alembic_version`` table) is recognised and stamped as the baseline revision first, then
upgraded like any other.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect

from tradeops.db import get_engine, transaction
from tradeops.errors import TradeopsError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
BASELINE_REVISION = "0001_baseline"
# A table every pre-migration database has: its presence without ``alembic_version`` marks one.
_LEGACY_MARKER_TABLE = "saga_ledger"


class SchemaNotCurrentError(TradeopsError):
    """The project database is not at the schema this code needs: run ``tradeops init``."""


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic configuration for the project migrations (on ``connection`` when given)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise SchemaNotCurrentError("the project has no migrations")
    return head


def current_revision(engine: Engine | None = None) -> str | None:
    """The revision the database is at; None for an empty (or pre-migration) database."""
    with transaction(engine or get_engine()) as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _is_legacy(conn: Connection) -> bool:
    tables = set(inspect(conn).get_table_names())
    return _LEGACY_MARKER_TABLE in tables and "alembic_version" not in tables


def upgrade(engine: Engine | None = None, revision: str = "head") -> Engine:
    """Bring the database to ``revision`` (idempotent); returns the engine."""
    engine = engine or get_engine()
    with transaction(engine) as conn:
        config = alembic_config(conn)
        if _is_legacy(conn):
            command.stamp(config, BASELINE_REVISION)
        command.upgrade(config, revision)
    return engine


def downgrade(revision: str, engine: Engine | None = None) -> None:
    """Take the database back to ``revision`` (for rolling back a release)."""
    with transaction(engine or get_engine()) as conn:
        command.downgrade(alembic_config(conn), revision)


def require_current(engine: Engine | None = None) -> None:
    """Raise ``SchemaNotCurrentError`` unless the database is at the head revision."""
    engine = engine or get_engine()
    current, head = current_revision(engine), head_revision()
    if current != head:
        raise SchemaNotCurrentError(
            f"project database {engine.url.render_as_string(hide_password=True)} is at revision "
            f"{current or 'none'}, this code needs {head}: run `tradeops init`"
        )
