"""The project schema comes from the Alembic migrations, on SQLite and Postgres alike.

- A database built by the migrations matches the table definitions (autogenerate finds nothing).
- A database that ``create_all`` built before the migrations existed (the DDL of that commit is in
  tests/fixtures/legacy_schema/) is recognised, stamped and upgraded, keeping its rows.
- Every revision upgrades from the one before it and downgrades back.
- Code that needs the schema says how to get it (``tradeops init``) instead of running DDL.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, text

from tradeops import risk, schema
from tradeops.db import get_engine, transaction
from tradeops.tables import registered_metadata

LEGACY_DDL = Path(__file__).parent / "fixtures" / "legacy_schema"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def empty_sqlite(tmp_path: Path) -> Engine:
    return get_engine(f"sqlite:///{tmp_path / 'empty.db'}")


@pytest.fixture
def empty_postgres(postgres_url: str) -> Engine:
    """A new, empty database on the session's Postgres server."""
    from sqlalchemy.engine import make_url

    from tests.fixtures import postgres

    port = int(make_url(postgres_url).port or 5432)
    name = f"schema_{next(_numbers)}"
    with postgres._admin_connect(port) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return get_engine(postgres._url(port, name))


_numbers = itertools.count(1)


def _diff(engine: Engine) -> list[object]:
    with transaction(engine) as conn:
        return compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), registered_metadata())


def _tables(engine: Engine) -> set[str]:
    with transaction(engine) as conn:
        return set(inspect(conn).get_table_names())


def _load_legacy(engine: Engine) -> None:
    lines = (LEGACY_DDL / f"{engine.dialect.name}.sql").read_text().splitlines()
    ddl = "\n".join(line for line in lines if not line.startswith("--"))
    statements = [statement.strip() for statement in ddl.split(";") if statement.strip()]
    with transaction(engine) as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)


def _engines(request: pytest.FixtureRequest, backend: str) -> Engine:
    return request.getfixturevalue("empty_sqlite" if backend == "sqlite" else "empty_postgres")


BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_upgrade_when_database_empty_then_schema_matches_the_table_definitions(
    request: pytest.FixtureRequest, backend: str
) -> None:
    engine = _engines(request, backend)

    schema.upgrade(engine)

    assert schema.current_revision(engine) == schema.head_revision()
    assert _diff(engine) == []
    assert set(registered_metadata().tables) <= _tables(engine)


@pytest.mark.parametrize("backend", BACKENDS)
def test_upgrade_when_database_built_before_migrations_then_stamped_upgraded_and_rows_kept(
    request: pytest.FixtureRequest, backend: str
) -> None:
    engine = _engines(request, backend)
    _load_legacy(engine)
    reason = "set before the migrations existed"
    risk.set_state(risk.TradingState.HALTED, reason=reason, changed_by="test", engine=engine)
    assert schema.current_revision(engine) is None

    schema.upgrade(engine)

    assert schema.current_revision(engine) == schema.head_revision()
    assert _diff(engine) == []
    state = risk.get_state(engine)
    assert (state.state, state.reason) == (risk.TradingState.HALTED, reason)


@pytest.mark.parametrize("backend", BACKENDS)
def test_migrations_when_walked_one_revision_at_a_time_then_each_upgrades_and_downgrades(
    request: pytest.FixtureRequest, backend: str
) -> None:
    engine = _engines(request, backend)
    script = ScriptDirectory.from_config(schema.alembic_config())
    revisions = [r.revision for r in reversed(list(script.walk_revisions()))]
    assert revisions[0] == schema.BASELINE_REVISION

    for revision in revisions:
        schema.upgrade(engine, revision)
        assert schema.current_revision(engine) == revision
    assert _diff(engine) == []
    for previous in reversed([None, *revisions[:-1]]):
        schema.downgrade(previous or "base", engine)
        assert schema.current_revision(engine) == previous
    assert _tables(engine) <= {"alembic_version"}
    schema.upgrade(engine)
    assert _diff(engine) == []


def test_migrations_when_listed_then_one_linear_history_and_no_app_imports() -> None:
    script = ScriptDirectory.from_config(schema.alembic_config())

    assert len(script.get_heads()) == 1
    for revision in script.walk_revisions():
        source = Path(revision.path).read_text()
        # A migration is frozen history: it must not change when today's table code changes.
        assert "import tradeops" not in source and "from tradeops" not in source, revision.path


def test_upgrade_when_run_twice_then_nothing_changes(empty_sqlite: Engine) -> None:
    schema.upgrade(empty_sqlite)
    with transaction(empty_sqlite) as conn:
        conn.execute(text("INSERT INTO leases VALUES ('x', 'me', '2026-01-01 00:00:00', '2026-01-02 00:00:00')"))

    schema.upgrade(empty_sqlite)

    with transaction(empty_sqlite) as conn:
        assert conn.execute(text("SELECT holder FROM leases")).scalar_one() == "me"


def test_require_current_when_database_not_migrated_then_error_says_run_tradeops_init(empty_sqlite: Engine) -> None:
    with pytest.raises(schema.SchemaNotCurrentError, match="tradeops init"):
        schema.require_current(empty_sqlite)

    schema.upgrade(empty_sqlite)
    schema.require_current(empty_sqlite)


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "TRADEOPS_DB_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "TRADEOPS_STATE_DIR": str(tmp_path / "state"),
        "TRADEOPS_CONFIG": str(ROOT / "config" / "tradeops.yaml"),
        "PYTHONPATH": str(ROOT),
    }
    return subprocess.run(
        [sys.executable, "-m", "tradeops", *args], capture_output=True, text=True, env=env, timeout=120, cwd=ROOT
    )


def test_cli_when_database_not_migrated_then_commands_name_tradeops_init_and_init_migrates(tmp_path: Path) -> None:
    before = _cli(tmp_path, "state", "show")
    assert before.returncode != 0
    assert "tradeops init" in before.stderr + before.stdout

    init = _cli(tmp_path, "init")
    assert init.returncode == 0, init.stderr
    assert f"schema revision {schema.head_revision()}" in init.stdout

    after = _cli(tmp_path, "state", "show")
    assert after.returncode == 0, after.stderr
    assert "ACTIVE" in after.stdout


def _sources(*folders: str) -> Callable[[], list[Path]]:
    return lambda: [p for folder in folders for p in (ROOT / folder).rglob("*.py")]


def test_db_module_when_read_then_it_imports_no_table_module() -> None:
    import ast

    tree = ast.parse((ROOT / "tradeops" / "db.py").read_text())
    imported = {
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert not {name for name in imported if name and name.startswith("tradeops") and name != "tradeops.config"}


def test_project_code_when_read_then_no_create_all_and_no_migration_inside_tasks() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for path in _sources("tradeops", "operators", "sensors", "dags", "plugins")()
        if "create_all(" in path.read_text()
    ]
    assert offenders == []
    runs_ddl = [
        str(path.relative_to(ROOT))
        for path in _sources("operators", "sensors", "dags", "plugins")()
        if "schema import" in path.read_text() and "upgrade" in path.read_text()
    ]
    assert runs_ddl == []
