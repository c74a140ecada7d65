"""Commands to a running supervisor: revive its DEAD components, stop it, wait for the UI.

``stop`` does not trust the supervisor alone: after it exits (or is killed for not exiting), any
component group it left behind (a supervisor killed with SIGKILL cleans up nothing) is ended too,
so ``make stop`` leaves no Airflow process of this stack running.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path

from tradeops.errors import TradeopsError
from tradeops.localstack import processes
from tradeops.localstack.state import (
    ComponentState,
    StackPaths,
    read_state,
    running_supervisor,
    utcnow,
    write_state,
)

log = logging.getLogger(__name__)


SUPERVISOR_START_SECONDS = 30.0


class StackNotReady(TradeopsError):
    """The stack did not come up; the message says which part failed and where its log is."""


def revive(paths: StackPaths) -> list[str] | None:
    """Ask the running supervisor to start its DEAD components again (SIGUSR1).

    Returns the names that were DEAD, or None when no supervisor runs.
    """
    pid = running_supervisor(paths)
    if pid is None:
        return None
    record = read_state(paths.state_file)
    dead = [c.name for c in record.components if c.state is ComponentState.DEAD] if record else []
    os.kill(pid, signal.SIGUSR1)
    return dead


def stop(paths: StackPaths, timeout: float) -> list[str]:
    """Stop the supervisor (SIGTERM; SIGKILL after ``timeout``) and whatever it leaves running.

    Returns what was done, one line each (empty when nothing ran).
    """
    done = []
    pid = running_supervisor(paths)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        if _wait_unlocked(paths, timeout):
            done.append(f"stopped the Airflow supervisor (pid {pid}) and its components")
        else:
            log.warning("the supervisor (pid %d) did not stop within %gs: killing it", pid, timeout)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            _wait_unlocked(paths, 10.0)
            done.append(f"killed the Airflow supervisor (pid {pid}): it did not stop within {timeout:g}s")
    record = read_state(paths.state_file)
    if record is None or running_supervisor(paths) is not None:
        return done
    for component in record.components:
        if component.pid is not None and processes.ours(component.pid, component.pid_created):
            ended = processes.end_group(component.pid, grace=10.0)
            state = "stopped" if ended else "could NOT stop"
            done.append(f"{state} {component.name} (group {component.pid}), left running by the supervisor")
    if not record.stopping or any(c.state is not ComponentState.STOPPED for c in record.components):
        # The supervisor died without writing its final state: write it, so status says "stopped".
        stopped = tuple(
            replace(c, state=ComponentState.STOPPED, pid=None, pid_created=None, next_start_at=None)
            for c in record.components
        )
        write_state(paths.state_file, replace(record, stopping=True, updated_at=utcnow(), components=stopped))
    return done


def _wait_unlocked(paths: StackPaths, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while running_supervisor(paths) is not None:
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)
    return True


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log yet)"


def wait_ready(paths: StackPaths, url: str, timeout: float, component: str = "api-server") -> None:
    """Return once ``url`` answers 200; raise StackNotReady as soon as it cannot any more.

    A supervisor launched in the background just before needs a moment to take its lock, so its
    absence counts only once it was seen, or after ``SUPERVISOR_START_SECONDS``.
    """
    started = time.monotonic()
    seen = False
    while not _answers(url):
        pid = running_supervisor(paths)
        if pid is not None:
            seen = True
        elif seen or time.monotonic() - started > SUPERVISOR_START_SECONDS:
            raise StackNotReady(
                f"the Airflow supervisor is not running; last lines of {paths.supervisor_log}:\n"
                f"{_tail(paths.supervisor_log)}"
            )
        record = read_state(paths.state_file)
        current = record is not None and record.supervisor_pid == pid  # not a previous run's state
        served = record.component(component) if record and current else None
        if served is not None and served.state is ComponentState.DEAD:
            raise StackNotReady(
                f"{component} is DEAD ({served.gave_up}); last lines of {served.log_file}:\n"
                f"{_tail(Path(served.log_file))}"
            )
        if time.monotonic() - started > timeout:
            raise StackNotReady(f"{url} did not answer within {timeout:g}s; see {paths.directory}/")
        time.sleep(1.0)
