"""End to end through ``scripts/local-stack.sh`` (what ``make run`` / ``status`` / ``stop`` run): the
real Airflow components under the supervisor, on their own state directory, Airflow home and ports.

The triggerer, killed with SIGKILL, is started again and a new TriggererJob heartbeats; status says
so; a second ``up`` changes nothing; ``down`` leaves no process of the stack behind.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.fixtures.kafka import free_port
from tests.fixtures.stack import alive, component, process_tree, state, wait_for
from tests.fixtures.watch import read_all
from tradeops.localstack.processes import group_members
from tradeops.localstack.state import ComponentState

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SCRIPT = ROOT / "scripts" / "local-stack.sh"
pytestmark = [pytest.mark.airflow, pytest.mark.kafka, pytest.mark.slow]


def _stack(env: dict[str, str], action: str, timeout: float = 360) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPT), action], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def stack_env(kafka_bootstrap: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment of a local stack of its own; whatever it started is stopped afterwards."""
    state_dir = tmp_path / "state"
    home = state_dir / "airflow"
    env = {
        **os.environ,
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
        "TRADEOPS_STATE_DIR": str(state_dir),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "TRADEOPS_AIRFLOW_PORT": str(free_port()),
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        # Not the default log-server ports another local stack on this machine may hold.
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
    }
    env.pop("TRADEOPS_DB_URL", None)
    try:
        yield env
    finally:
        _stack(env, "down", timeout=180)


def _newest_triggerer_job(home: Path) -> tuple[int, datetime, datetime] | None:
    """(id, start_date, latest_heartbeat) of the newest TriggererJob row."""
    with sqlite3.connect(f"file:{home / 'airflow.db'}?mode=ro", uri=True, timeout=10) as db:
        row = db.execute(
            "SELECT id, start_date, latest_heartbeat FROM job WHERE job_type = 'TriggererJob' ORDER BY id DESC LIMIT 1"
        ).fetchone()
    if row is None:
        return None
    return int(row[0]), *(datetime.fromisoformat(value).replace(tzinfo=UTC) for value in row[1:])


def _heartbeating_since(home: Path, moment: datetime, newer_than: int) -> int | None:
    """The id of a TriggererJob newer than ``newer_than`` that heartbeat after it started and after ``moment``."""
    job = _newest_triggerer_job(home)
    if job is None or job[0] <= newer_than:
        return None
    job_id, started, heartbeat = job
    return job_id if heartbeat > started and heartbeat > moment else None


def _stack_processes(home: Path) -> set[int]:
    """The supervisor, everything it forked, and every member of its components' groups."""
    record = state(home)
    pids = process_tree(record.supervisor_pid)
    for c in record.components:
        if c.pid is not None:
            pids |= set(group_members(c.pid))
    return pids


def test_triggerer_when_killed_with_sigkill_then_restarted_heartbeating_and_reported_and_stop_leaves_nothing(
    stack_env: dict[str, str], kafka_bootstrap: str
) -> None:
    home = Path(stack_env["AIRFLOW_HOME"])
    up = _stack(stack_env, "up")
    assert up.returncode == 0, up.stdout + up.stderr
    assert "Login:       admin / " in up.stdout
    assert f"{home}/stack/<component>.log" in up.stdout
    with sqlite3.connect(home / "airflow.db") as db:
        assert db.execute("SELECT slots FROM slot_pool WHERE pool = 'emergency'").fetchone() == (16,)
    assert component(home, "news-feed").state is ComponentState.RUNNING  # news.source is kafka
    wait_for(lambda: read_all(kafka_bootstrap, "market-news", timeout=5), 60, "the paper feed's headlines")
    first = component(home, "triggerer")
    wait_for(lambda: _heartbeating_since(home, first.started_at, 0), 60, "the first triggerer's job to heartbeat")
    old_job = _newest_triggerer_job(home)[0]

    killed_at = datetime.now(UTC)
    os.kill(first.pid, signal.SIGKILL)

    def restarted() -> bool:
        record = component(home, "triggerer")
        return record.state is ComponentState.RUNNING and record.pid != first.pid

    wait_for(restarted, 30, "the triggerer to be restarted", interval=0.5)
    new_job = wait_for(lambda: _heartbeating_since(home, killed_at, old_job), 90, "a new TriggererJob heartbeat", 1)
    second = component(home, "triggerer")
    assert (second.restarts, second.last_exit_code) == (1, -signal.SIGKILL)

    def healthy() -> subprocess.CompletedProcess[str] | None:
        result = _stack(stack_env, "status", timeout=120)
        watching = [line for line in result.stdout.splitlines() if line.startswith("stop_loss_alerts")]
        return result if result.returncode == 0 and watching and " up " in watching[0] else None

    # the Kafka watchers move to the new triggerer once Airflow sees the old one dead (~30 s)
    status = wait_for(healthy, 180, "status to be healthy again, the watchers included", 5)
    watchers = [line for line in status.stdout.splitlines() if line.startswith("stop_loss_alerts")]
    assert watchers and " ok " in watchers[0] and " up " in watchers[0], status.stdout
    line = next(line for line in status.stdout.splitlines() if line.strip().startswith("triggerer"))
    assert "running" in line and f"pid {second.pid}," in line and "restarts 1" in line and "killed by SIGKILL" in line
    assert f"(job {new_job})" in line
    feed = next(line for line in status.stdout.splitlines() if line.strip().startswith("news-feed"))
    assert "running" in feed and "restarts 0" in feed

    pids = {c.name: c.pid for c in state(home).components}
    again = _stack(stack_env, "up")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "Airflow supervisor already running" in again.stdout
    assert {c.name: c.pid for c in state(home).components} == pids
    assert all(alive(pid) for pid in pids.values())

    everything = _stack_processes(home)
    down = _stack(stack_env, "down", timeout=180)
    assert down.returncode == 0, down.stdout + down.stderr
    wait_for(lambda: not any(alive(pid) for pid in everything), 15, "every process of the stack to be gone")
    assert _stack(stack_env, "status", timeout=120).returncode == 3
