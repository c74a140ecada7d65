"""Every DAG file imports cleanly, fast, and touches nothing outside itself while parsing.

Parsing runs in a fresh interpreter in which the Airflow metadata DB, Airflow connections and
Variables, the project database and the network all raise when touched, as Airflow's own DAG
integrity tests demand.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.reporting import PARSE_TIMES

ROOT = Path(__file__).resolve().parent.parent
DAG_FILES = sorted((ROOT / "dags").glob("*.py"))

_PARSER = r"""
import json, socket, sys, time
from pathlib import Path

class Forbidden(RuntimeError):
    pass

def forbid(what):
    def blocked(*args, **kwargs):
        raise Forbidden(f"{what} at DAG parse time")
    return blocked

socket.socket.connect = forbid("network connection")
socket.create_connection = forbid("network connection")
import sqlalchemy.engine.base
sqlalchemy.engine.base.Engine.connect = forbid("database connection")
import tradeops.db
tradeops.db.get_engine = forbid("project database access")
from airflow.sdk import BaseHook, Variable
BaseHook.get_connection = classmethod(forbid("Airflow connection lookup"))
Variable.get = staticmethod(forbid("Airflow Variable lookup"))
from airflow.dag_processing.dagbag import DagBag

HEAVY = ("pandas", "numpy", "scipy", "sklearn", "pyarrow", "mlflow", "matplotlib", "pandera", "exchange_calendars")
results = {}
for path in sys.argv[1:]:
    started = time.perf_counter()
    bag = DagBag(dag_folder=path)
    cold = time.perf_counter() - started
    started = time.perf_counter()
    DagBag(dag_folder=path)  # again, with the modules it shares with other files already imported
    results[Path(path).name] = {
        "seconds": cold,
        "warm_seconds": time.perf_counter() - started,
        "heavy": sorted(name for name in HEAVY if name in sys.modules),
        "errors": {k: str(v) for k, v in bag.import_errors.items()},
        "dags": {d.dag_id: {"tags": sorted(d.tags), "doc": bool(d.doc_md), "file": Path(d.fileloc).stem}
                 for d in bag.dags.values()},
    }
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def parsed(request: pytest.FixtureRequest) -> dict[str, dict]:
    result = subprocess.run(
        [sys.executable, "-c", _PARSER, *map(str, DAG_FILES)], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-4000:]
    parsed = json.loads(result.stdout.strip().splitlines()[-1])
    # Printed in the terminal summary by conftest.pytest_terminal_summary.
    request.config.stash[PARSE_TIMES] = {name: (info["seconds"], info["warm_seconds"]) for name, info in parsed.items()}
    return parsed


def test_dags_folder_when_listed_then_holds_dag_files() -> None:
    assert DAG_FILES, "dags/ has no DAG files"


def test_dag_files_when_parsed_offline_then_no_import_errors(parsed: dict[str, dict]) -> None:
    errors = {name: info["errors"] for name, info in parsed.items() if info["errors"]}
    assert not errors
    assert all(info["dags"] for info in parsed.values()), "a file in dags/ defines no DAG"


# The one DAG file that makes several DAGs: one per trading agent of config/agents.yaml.
AGENT_FACTORY = "agent_trading.py"


def test_dag_ids_when_parsed_then_equal_file_names_with_tags_and_docs(parsed: dict[str, dict]) -> None:
    for name, info in parsed.items():
        for dag_id, dag in info["dags"].items():
            assert dag["file"] == Path(name).stem
            if name != AGENT_FACTORY:
                assert dag_id == Path(name).stem
            assert dag["tags"], f"{dag_id} has no tags"
            assert dag["doc"], f"{dag_id} has no doc_md"


def test_agent_factory_when_parsed_then_one_dag_per_configured_agent(parsed: dict[str, dict]) -> None:
    from tradeops.agents.settings import dag_id, load_agents

    configured = {dag_id(name) for name in load_agents(ROOT / "config" / "agents.yaml").agents}
    assert set(parsed[AGENT_FACTORY]["dags"]) == configured


def test_dag_tags_when_parsed_then_from_vocabulary_with_exactly_one_trigger_tag(parsed: dict[str, dict]) -> None:
    from operators.tags import TRIGGER_TAGS, VOCABULARY

    for info in parsed.values():
        for dag_id, dag in info["dags"].items():
            assert set(dag["tags"]) <= VOCABULARY, f"{dag_id}: tags outside operators/tags.py: {dag['tags']}"
            assert len(set(dag["tags"]) & TRIGGER_TAGS) == 1, f"{dag_id}: needs exactly one of {sorted(TRIGGER_TAGS)}"


def test_dag_files_when_parsed_then_each_under_two_seconds(parsed: dict[str, dict]) -> None:
    slow = {name: round(info["seconds"], 2) for name, info in parsed.items() if info["seconds"] > 2.0}
    assert not slow


def test_dag_files_when_parsed_again_then_each_under_a_fifth_of_a_second(parsed: dict[str, dict]) -> None:
    """What each file costs itself (the scheduler's DAG processor re-parses every file often)."""
    slow = {name: round(info["warm_seconds"], 3) for name, info in parsed.items() if info["warm_seconds"] > 0.2}
    assert not slow


def test_dag_files_when_parsed_then_no_heavy_library_imported(parsed: dict[str, dict]) -> None:
    """pandas, scipy, scikit-learn, pyarrow, mlflow... are imported inside the tasks that use them."""
    heavy = {name: info["heavy"] for name, info in parsed.items() if info["heavy"]}
    assert not heavy


def test_parse_guard_when_dag_imports_pandas_then_reported(tmp_path: Path) -> None:
    bad = tmp_path / "heavy_dag.py"
    bad.write_text(
        "from datetime import datetime\n"
        "import pandas\n"
        "from airflow.sdk import DAG\n"
        "with DAG('heavy_dag', schedule=None, start_date=datetime(2026, 1, 1), tags=['manual'], doc_md='x'):\n"
        "    pass\n"
    )
    result = subprocess.run([sys.executable, "-c", _PARSER, str(bad)], capture_output=True, text=True, timeout=300)
    assert json.loads(result.stdout.strip().splitlines()[-1])["heavy_dag.py"]["heavy"][:2] == ["numpy", "pandas"]


def test_parse_guard_when_dag_looks_up_a_variable_then_reported(tmp_path: Path) -> None:
    """The guard itself can fail: a DAG that reads a Variable at parse time is caught."""
    bad = tmp_path / "bad_dag.py"
    bad.write_text(
        "from datetime import datetime\n"
        "from airflow.sdk import DAG, Variable\n"
        "threshold = Variable.get('threshold')\n"
        "with DAG('bad_dag', schedule=None, start_date=datetime(2026, 1, 1)):\n"
        "    pass\n"
    )
    result = subprocess.run([sys.executable, "-c", _PARSER, str(bad)], capture_output=True, text=True, timeout=300)
    errors = json.loads(result.stdout.strip().splitlines()[-1])["bad_dag.py"]["errors"]
    assert "Variable lookup at DAG parse time" in next(iter(errors.values()))
