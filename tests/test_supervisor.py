"""The local stack's supervisor on cheap child commands (``sleep``, ``sh``, small Python scripts).

Real processes throughout: ``tradeops stack supervise`` runs as its own process, its components are
killed with real signals, and the checks read its state file, its log and the process table.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.fixtures.stack import (
    alive,
    component,
    process_tree,
    stack_cli,
    start_supervisor,
    state,
    supervisor_log,
    wait_for,
)
from tradeops.localstack.policy import DeathHistory, RestartPolicy
from tradeops.localstack.state import ComponentState

Supervise = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture
def supervise(tmp_path: Path) -> Iterator[Supervise]:
    """Start a supervisor on ``tmp_path/home``; it and its components are stopped afterwards."""
    started: list[subprocess.Popen[bytes]] = []

    def start(components: list[str], *options: str) -> subprocess.Popen[bytes]:
        # A short stop grace by default: some components here ignore SIGTERM on purpose.
        process = start_supervisor(tmp_path / "home", components, "--stop-grace", "2", *options)
        started.append(process)
        names = [c.partition("=")[0] for c in components]

        def all_started() -> bool:
            record = state(tmp_path / "home")
            return (
                record is not None
                and record.supervisor_pid == process.pid
                and all(record.component(n) is not None and record.component(n).started_at for n in names)
            )

        wait_for(lambda: all_started() or process.poll() is not None, 30, "the supervisor to start its components")
        return process

    yield start
    stack_cli(tmp_path / "home", "stop", "--timeout", "20")
    for process in started:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def _script(tmp_path: Path, name: str, body: str) -> str:
    """A Python script file; returns the component command that runs it."""
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(body))
    return f"{sys.executable} {path}"


_IGNORES_TERM = """
    import signal, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(600)
"""


def _forker(tmp_path: Path, *, stubborn: bool = True) -> str:
    """A component that forks a child (one ignoring SIGTERM, or a plain ``sleep``), then sleeps."""
    child = _script(tmp_path, "stubborn_child", _IGNORES_TERM) if stubborn else "sleep 600"
    return _script(
        tmp_path,
        "forker",
        f"""
        import subprocess, time
        subprocess.Popen({child.split()!r})
        time.sleep(600)
        """,
    )


def _running(home: Path, name: str, other_than: int | None = None) -> int | None:
    record = component(home, name)
    if record is None or record.state is not ComponentState.RUNNING or record.pid in (None, other_than):
        return None
    return record.pid


def _state_of(home: Path, name: str) -> ComponentState | None:
    record = component(home, name)
    return record.state if record else None


# --------------------------------------------------------------------------- the restart policy


def test_delay_when_deaths_accumulate_then_doubles_up_to_the_cap_and_gives_up_at_max_deaths() -> None:
    policy = RestartPolicy(max_deaths=5, window_seconds=120, backoff_seconds=1, backoff_max_seconds=5)

    delays = [policy.delay(deaths) for deaths in range(1, 6)]

    assert delays == [1, 2, 4, 5, None]


def test_death_history_when_deaths_age_out_of_the_window_then_they_no_longer_count() -> None:
    history = DeathHistory(window_seconds=120)

    counts = [history.record(now) for now in (0.0, 50.0, 100.0, 171.0, 400.0)]

    assert counts == [1, 2, 3, 2, 1]


# --------------------------------------------------------------------------- restarts


def test_component_when_killed_then_restarted_after_its_backoff_and_the_exit_code_logged(
    supervise: Supervise, home: Path
) -> None:
    supervise(["worker=sleep 600"], "--backoff", "0.5")
    first = wait_for(lambda: _running(home, "worker"), 10, "worker to run")

    os.kill(first, signal.SIGKILL)
    second = wait_for(lambda: _running(home, "worker", other_than=first), 10, "worker to be restarted")

    record = component(home, "worker")
    assert record.restarts == 1
    assert record.last_exit_code == -signal.SIGKILL
    assert (record.started_at - record.last_exit_at).total_seconds() >= 0.5
    assert alive(second) and not alive(first)
    text = supervisor_log(home)
    assert f"worker (pid {first}) exited with code -9 (killed by SIGKILL)" in text
    assert "worker: restarting in 0.5s" in text
    status = stack_cli(home, "status")
    assert status.returncode == 0, status.stdout
    line = next(line for line in status.stdout.splitlines() if "worker" in line)
    assert "running" in line and f"pid {second}" in line and "restarts 1" in line and "SIGKILL" in line


def test_component_when_it_dies_then_children_it_left_are_killed_before_it_starts_again(
    supervise: Supervise, home: Path, tmp_path: Path
) -> None:
    supervise([f"forker={_forker(tmp_path)}"], "--backoff", "0.2")
    first = wait_for(lambda: _running(home, "forker"), 10, "forker to run")
    children = wait_for(lambda: process_tree(first) - {first}, 10, "forker's child")

    os.kill(first, signal.SIGKILL)
    wait_for(lambda: _running(home, "forker", other_than=first), 10, "forker to be restarted")

    assert not any(alive(pid) for pid in children), "the old forker's child (ignoring SIGTERM) survived the restart"
    assert "killing what its exited process left running" in supervisor_log(home)


def test_component_when_it_keeps_dying_then_left_dead_and_status_exits_1_naming_it(
    supervise: Supervise, home: Path
) -> None:
    supervise(["flaky=sh -c 'exit 3'", "steady=sleep 600"], "--backoff", "0.05", "--max-deaths", "5")
    steady = wait_for(lambda: _running(home, "steady"), 10, "steady to run")

    wait_for(lambda: _state_of(home, "flaky") is ComponentState.DEAD, 20, "flaky to be given up")
    time.sleep(1.0)  # a tight loop would start it again meanwhile

    record = component(home, "flaky")
    assert record.state is ComponentState.DEAD
    assert (record.restarts, record.last_exit_code) == (4, 3)
    assert record.gave_up == "died 5 times within 120 s"
    text = supervisor_log(home)
    assert text.count("flaky: started") == 5
    assert "ERROR flaky died 5 times within 120 s: NOT restarting it, it stays DEAD" in text
    assert _running(home, "steady") == steady
    status = stack_cli(home, "status")
    assert status.returncode == 1, status.stdout
    line = next(line for line in status.stdout.splitlines() if "flaky" in line)
    assert "DEAD" in line and "last exit code 3" in line and "run `make run` to start it again" in line


def test_dead_component_when_revived_after_the_cause_is_fixed_then_runs_again(
    supervise: Supervise, home: Path, tmp_path: Path
) -> None:
    flag = tmp_path / "fixed"
    supervise([f"gated=sh -c 'test -f {flag} || exit 3; exec sleep 600'"], "--backoff", "0.05")
    wait_for(lambda: _state_of(home, "gated") is ComponentState.DEAD, 20, "gated to be given up")

    flag.touch()
    revived = stack_cli(home, "revive")

    assert revived.returncode == 0, revived.stderr
    assert "starting again: gated" in revived.stdout
    pid = wait_for(lambda: _running(home, "gated"), 10, "gated to run again")
    time.sleep(0.5)
    assert _running(home, "gated") == pid
    assert stack_cli(home, "status").returncode == 0


def test_revive_when_no_supervisor_runs_then_exits_3(home: Path) -> None:
    result = stack_cli(home, "revive")

    assert result.returncode == 3
    assert "no Airflow supervisor runs" in result.stdout


# --------------------------------------------------------------------------- stopping, crashes


def test_stop_when_a_component_ignores_sigterm_then_it_is_killed_and_no_process_remains(
    supervise: Supervise, home: Path, tmp_path: Path
) -> None:
    stubborn = _script(tmp_path, "stubborn", _IGNORES_TERM)
    supervisor = supervise([f"stubborn={stubborn}", f"forker={_forker(tmp_path)}"], "--stop-grace", "1")
    wait_for(lambda: len(process_tree(supervisor.pid)) >= 4, 10, "the components and the forker's child")
    tree = process_tree(supervisor.pid)

    stopped = stack_cli(home, "stop", "--timeout", "20")

    assert stopped.returncode == 0, stopped.stderr
    wait_for(lambda: not any(alive(pid) for pid in tree), 10, "every process of the stack to be gone")
    assert "stubborn ignored SIGTERM for 1s: killing it" in supervisor_log(home)
    status = stack_cli(home, "status")
    assert status.returncode == 3
    assert "stopped" in status.stdout


def test_supervisor_when_killed_then_status_says_dead_and_stop_still_ends_its_components(
    supervise: Supervise, home: Path, tmp_path: Path
) -> None:
    supervisor = supervise(["worker=sleep 600", f"forker={_forker(tmp_path, stubborn=False)}"])
    wait_for(lambda: len(process_tree(supervisor.pid)) >= 4, 10, "the components and the forker's child")
    tree = process_tree(supervisor.pid) - {supervisor.pid}

    supervisor.kill()
    supervisor.wait()
    status = stack_cli(home, "status")
    stopped = stack_cli(home, "stop", "--timeout", "20")

    assert status.returncode == 1, status.stdout
    assert "Airflow supervisor: DEAD" in status.stdout and "UNSUPERVISED" in status.stdout
    assert stopped.returncode == 0, stopped.stderr
    assert "left running by the supervisor" in stopped.stdout
    assert not any(alive(pid) for pid in tree)
    assert stack_cli(home, "status").returncode == 3


def test_supervise_when_one_already_runs_then_refuses_and_starts_nothing(supervise: Supervise, home: Path) -> None:
    first = supervise(["marker=sleep 607"])
    pid = wait_for(lambda: _running(home, "marker"), 10, "marker to run")

    second = start_supervisor(home, ["marker=sleep 607"])
    second.wait(timeout=30)

    assert second.returncode == 2
    assert b"a supervisor already runs" in second.stderr.read()
    assert state(home).supervisor_pid == first.pid
    assert _running(home, "marker") == pid
    assert process_tree(first.pid) == {first.pid, pid}


def test_supervise_when_also_given_then_that_component_runs_besides_the_others_and_status_shows_it(
    supervise: Supervise, home: Path
) -> None:
    supervise(["main=sleep 611"], "--also", "extra=sleep 613")

    extra = wait_for(lambda: _running(home, "extra"), 10, "the extra component to run")
    status = stack_cli(home, "status")

    assert [c.name for c in state(home).components] == ["main", "extra"]
    assert _running(home, "main") is not None
    line = next(line for line in status.stdout.splitlines() if line.strip().startswith("extra"))
    assert "running" in line and f"pid {extra}," in line


def test_supervise_when_a_killed_supervisor_left_components_running_then_ends_them_before_starting(
    supervise: Supervise, home: Path
) -> None:
    killed = supervise(["marker=sleep 608"])
    orphan = wait_for(lambda: _running(home, "marker"), 10, "marker to run")
    killed.kill()
    killed.wait()
    assert alive(orphan)

    supervise(["marker=sleep 608"])
    fresh = wait_for(lambda: _running(home, "marker", other_than=orphan), 10, "the new marker")

    assert not alive(orphan)
    assert alive(fresh)
    assert f"marker (group {orphan}) was left running by a previous supervisor" in supervisor_log(home)


# --------------------------------------------------------------------------- heartbeats


@pytest.mark.airflow
def test_status_when_a_running_triggerer_stops_heartbeating_then_says_stuck_and_exits_1(
    supervise: Supervise, home: Path, airflow_db: Path
) -> None:
    """A live process whose job row stops heartbeating is reported, from Airflow's own ``job`` table."""
    from airflow.jobs.job import Job
    from airflow.utils.session import create_session

    supervise(["triggerer=sleep 600"])
    wait_for(lambda: _running(home, "triggerer"), 10, "the triggerer stand-in to run")
    job = Job(job_type="TriggererJob")  # the row a triggerer writes when it starts, heartbeat now
    job.prepare_for_execution()
    threshold = "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD"
    try:
        fresh = stack_cli(home, "status", env={**os.environ, threshold: "30"})
        time.sleep(1.5)  # nothing heartbeats: the row is now older than a 1 s threshold
        stale = stack_cli(home, "status", env={**os.environ, threshold: "1"})
    finally:
        with create_session() as session:
            session.query(Job).filter(Job.id == job.id).delete()

    assert fresh.returncode == 0, fresh.stdout
    assert f"ago (job {job.id})" in fresh.stdout
    assert stale.returncode == 1, stale.stdout
    line = next(line for line in stale.stdout.splitlines() if "triggerer" in line)
    assert "STUCK" in line and "over Airflow's 1s threshold" in line and f"(job {job.id})" in line


def test_ours_when_start_time_read_a_boot_second_apart_then_still_ours_and_a_reused_pid_is_not() -> None:
    from tradeops.localstack import processes

    pid = os.getpid()
    started = processes.created(pid)
    assert started is not None

    assert processes.ours(pid, started)
    # /proc/stat's boot time is whole seconds and moves by one between processes when the clock
    # is adjusted: the supervisor's record and a status read may differ by that second
    assert processes.ours(pid, started - 1.0) and processes.ours(pid, started + 1.0)
    assert not processes.ours(pid, started - 30.0)  # another process that had this pid before
    assert not processes.ours(pid, None)
