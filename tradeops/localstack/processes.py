"""Process groups: each component runs in its own session, so it and every process it forks
(the scheduler's LocalExecutor workers, the triggerer's trigger runner, their ``serve-logs``) share
one process group whose id is the component's pid. Stopping a component signals that group, and
so does cleaning up after one that died: its children outlive it otherwise (a SIGKILLed triggerer
leaves its ``serve-logs`` holding the log port the next triggerer needs).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

import psutil

CREATED_TOLERANCE_SECONDS = 1.5


def created(pid: int) -> float | None:
    """The process's start time as the kernel reports it, or None when no such process runs."""
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def group_members(pgid: int) -> list[int]:
    """Pids of the live (not zombie) processes in group ``pgid``."""
    members = []
    for process in psutil.process_iter(["status"]):
        try:
            if process.info["status"] != psutil.STATUS_ZOMBIE and os.getpgid(process.pid) == pgid:
                members.append(process.pid)
        except (OSError, psutil.Error):
            continue
    return members


def signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def wait_group_gone(pgid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while group_members(pgid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


def end_group(pgid: int, grace: float) -> bool:
    """SIGTERM the group, SIGKILL what is left after ``grace`` seconds; True when none is left."""
    if not group_members(pgid):
        return True
    signal_group(pgid, signal.SIGTERM)
    if wait_group_gone(pgid, grace):
        return True
    signal_group(pgid, signal.SIGKILL)
    return wait_group_gone(pgid, 5.0)


def ours(pid: int, pid_created: float | None) -> bool:
    """Whether group ``pid`` still holds processes a supervisor started as ``pid`` at ``pid_created``.

    While its leader runs, the leader's start time must match (a reused pid is someone else's).
    Once the leader is gone, a group that still has members is ours: the kernel does not hand out
    a pid that is still some group's id.

    "Match" allows ``CREATED_TOLERANCE_SECONDS``: on Linux the start time is ticks since boot plus
    the boot time, which /proc/stat gives in whole seconds and which moves by one second between
    processes when the clock is adjusted (a status once saw a running feed as exited). A pid is
    handed out again only after the kernel went through every other pid, never within a second.
    """
    leader_created = created(pid)
    if leader_created is not None:
        return pid_created is not None and abs(leader_created - pid_created) < CREATED_TOLERANCE_SECONDS
    return bool(group_members(pid))
