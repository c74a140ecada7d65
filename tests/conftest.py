"""Test-session wiring: isolated state directories, a fresh project DB per test, real Airflow.

Airflow reads its configuration when first imported, so its environment is set here, before
any test module imports it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_SESSION_DIR = Path(tempfile.mkdtemp(prefix="tradeops-test-"))

os.environ["TRADEOPS_STATE_DIR"] = str(_SESSION_DIR / "state")
os.environ.setdefault("TRADEOPS_CONFIG", str(ROOT / "config" / "tradeops.yaml"))
os.environ["AIRFLOW_HOME"] = str(_SESSION_DIR / "airflow")
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(ROOT / "plugins")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_SESSION_DIR / 'airflow' / 'airflow.db'}"
os.environ.pop("TRADEOPS_DB_URL", None)
for _name in [n for n in os.environ if n.startswith("TRADEOPS__")]:
    del os.environ[_name]


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Under pytest-xdist, a worker hands its DAG parse times to the controller, which prints them."""
    from tests.fixtures.reporting import PARSE_TIMES

    output = getattr(session.config, "workeroutput", None)
    times = session.config.stash.get(PARSE_TIMES, None)
    if output is not None and times:
        output["parse_times"] = times


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook: only called when it runs the suite
def pytest_testnodedown(node: object, error: object) -> None:
    from tests.fixtures.reporting import PARSE_TIMES

    times = getattr(node, "workeroutput", {}).get("parse_times")
    if times:
        node.config.stash[PARSE_TIMES] = times  # type: ignore[attr-defined]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    """Print each DAG file's parse time (measured by tests/test_dag_integrity.py)."""
    from tests.fixtures.reporting import PARSE_TIMES

    times = config.stash.get(PARSE_TIMES, None)
    if times:
        terminalreporter.section("DAG parse times (first parse in the process / parsed again)")
        for name, (cold, warm) in sorted(times.items()):
            terminalreporter.write_line(f"{name:40s} {cold * 1000:8.1f} ms {warm * 1000:8.1f} ms")


pytest_plugins: list[str] = [
    "tests.fixtures.paper",
    "tests.fixtures.kafka",
    "tests.fixtures.postgres",
    "tests.fixtures.s3",
    "tests.fixtures.models",
]


@pytest.fixture(scope="session")
def migrated_sqlite_template() -> Path:
    """A SQLite project database built once by the migrations (head), copied by ``db_url``."""
    from tradeops.db import get_engine
    from tradeops.schema import upgrade

    path = _SESSION_DIR / "template-tradeops.db"
    engine = upgrade(get_engine(f"sqlite:///{path}"))
    engine.dispose()  # the last connection checkpoints the WAL into the file
    return path


@pytest.fixture
def db_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, migrated_sqlite_template: Path) -> Iterator[str]:
    """A fresh project database at the migrations' head for one test, also seen by code under test."""
    path = tmp_path / "tradeops.db"
    shutil.copyfile(migrated_sqlite_template, path)
    url = f"sqlite:///{path}"
    monkeypatch.setenv("TRADEOPS_DB_URL", url)
    yield url


@pytest.fixture
def paper_world(db_url: str, airflow_db: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A freshly seeded paper world (and Airflow's DB) whose TRC20 transfers settle at once."""
    from tradeops.config import settings
    from tradeops.venues.paper import seed_paper_world

    for venue in ("okx", "binance", "bybit"):
        monkeypatch.setenv(f"TRADEOPS__VENUES__{venue.upper()}__WITHDRAWAL__USDT__TRC20__SETTLE_SECONDS", "0")
    settings.cache_clear()
    seed_paper_world(settings())
    yield
    settings.cache_clear()


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """An initialised Airflow metadata database (SQLite) for ``dag.test()``."""
    home = Path(os.environ["AIRFLOW_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    airflow = Path(sys.executable).parent / "airflow"
    result = subprocess.run(
        [str(airflow), "db", "migrate"], capture_output=True, text=True, env=os.environ.copy(), timeout=600
    )
    if result.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return home
