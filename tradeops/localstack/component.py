"""One supervised component: its process, its recent deaths, and the record the status reads.

The component's process leads its own process group. When it exits, whatever it forked gets
SIGTERM at once and SIGKILL before the next start (or after ``LEFTOVER_GRACE_SECONDS`` when it is
not restarted), so a restart never finds the old one's children still holding its ports.
"""

from __future__ import annotations

import logging
import signal
import subprocess
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from tradeops.localstack import processes
from tradeops.localstack.policy import DeathHistory, RestartPolicy
from tradeops.localstack.state import ComponentRecord, ComponentState, utcnow

log = logging.getLogger(__name__)

LEFTOVER_GRACE_SECONDS = 5.0


@dataclass(frozen=True, kw_only=True)
class ComponentSpec:
    name: str
    command: tuple[str, ...]


def describe_exit(code: int) -> str:
    """``1`` -> "code 1"; ``-9`` -> "code -9 (killed by SIGKILL)"."""
    if code >= 0:
        return f"code {code}"
    try:
        return f"code {code} (killed by {signal.Signals(-code).name})"
    except ValueError:
        return f"code {code} (killed by signal {-code})"


class Component:
    def __init__(self, spec: ComponentSpec, log_file: Path, policy: RestartPolicy) -> None:
        self.spec = spec
        self.log_file = log_file
        self.policy = policy
        self.deaths = DeathHistory(policy.window_seconds)
        self.process: subprocess.Popen[bytes] | None = None
        self.next_start: float | None = None  # monotonic seconds
        self.leftover_group: int | None = None  # the exited process's group, while it may have members
        self.leftover_kill_at: float | None = None
        self.record = ComponentRecord(
            name=spec.name, command=spec.command, state=ComponentState.STOPPED, log_file=str(log_file)
        )

    def _update(self, **changes: Any) -> None:
        self.record = replace(self.record, **changes)

    def _note(self, text: str) -> None:
        """A line in the component's own log, so that log alone tells its story."""
        with self.log_file.open("a") as out:
            out.write(f"----- tradeops supervisor {utcnow().isoformat(timespec='seconds')}: {text}\n")

    # ------------------------------------------------------------------ starting

    def start(self, now: float) -> None:
        self._kill_leftovers(now, force=True)
        restarts = self.record.restarts + (1 if self.record.last_exit_at is not None else 0)
        self.next_start = None
        try:
            with self.log_file.open("ab") as out:
                self.process = subprocess.Popen(
                    self.spec.command,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    close_fds=True,
                )
        except OSError as exc:
            log.error("%s: cannot start `%s`: %s", self.spec.name, " ".join(self.spec.command), exc)
            self._note(f"cannot start `{' '.join(self.spec.command)}`: {exc}")
            self._update(restarts=restarts, last_exit_code=None, last_exit_at=utcnow(), last_error=str(exc))
            self._died(now)
            return
        pid = self.process.pid
        self._update(
            state=ComponentState.RUNNING,
            pid=pid,
            pid_created=processes.created(pid),
            started_at=utcnow(),
            restarts=restarts,
            next_start_at=None,
            gave_up=None,
        )
        log.info("%s: started (pid %d): %s", self.spec.name, pid, " ".join(self.spec.command))
        self._note(f"started {self.spec.name} (pid {pid})")

    def revive(self, now: float) -> bool:
        """Start a DEAD component again with a clean death history; False when it is not DEAD."""
        if self.record.state is not ComponentState.DEAD:
            return False
        self.deaths.clear()
        log.warning("%s: revived (it was DEAD: %s)", self.spec.name, self.record.gave_up)
        self.start(now)
        return True

    # ------------------------------------------------------------------ watching

    def poll(self, now: float) -> bool:
        """Advance one step: notice an exit, or start again once the backoff passed. True on a change."""
        self._kill_leftovers(now, force=False)
        if self.record.state is ComponentState.RUNNING and self.process is not None:
            code = self.process.poll()
            if code is None:
                return False
            self._exited(code, now)
            return True
        if self.record.state is ComponentState.RESTARTING and self.next_start is not None and now >= self.next_start:
            self.start(now)
            return True
        return False

    def _exited(self, code: int, now: float) -> None:
        pid = self.record.pid
        log.warning("%s (pid %s) exited with %s", self.spec.name, pid, describe_exit(code))
        self._note(f"{self.spec.name} (pid {pid}) exited with {describe_exit(code)}")
        self.process = None
        self._update(last_exit_code=code, last_exit_at=utcnow(), last_error=None)
        if pid is not None and processes.group_members(pid):
            processes.signal_group(pid, signal.SIGTERM)
            self.leftover_group = pid
            self.leftover_kill_at = now + LEFTOVER_GRACE_SECONDS
        self._died(now)

    def _died(self, now: float) -> None:
        deaths = self.deaths.record(now)
        delay = self.policy.delay(deaths)
        if delay is None:
            self._give_up(deaths)
            return
        self.next_start = now + delay
        self._update(
            state=ComponentState.RESTARTING,
            pid=None,
            pid_created=None,
            next_start_at=utcnow() + timedelta(seconds=delay),
        )
        log.warning(
            "%s: restarting in %gs (death %d within %g s; at %d it is left DEAD)",
            self.spec.name,
            delay,
            deaths,
            self.policy.window_seconds,
            self.policy.max_deaths,
        )

    def _give_up(self, deaths: int) -> None:
        reason = f"died {deaths} times within {self.policy.window_seconds:g} s"
        self.next_start = None
        self._update(state=ComponentState.DEAD, pid=None, pid_created=None, next_start_at=None, gave_up=reason)
        log.error(
            "%s %s: NOT restarting it, it stays DEAD. See %s, fix the cause, then run `make run` "
            "(or `tradeops stack revive`) to start it again.",
            self.spec.name,
            reason,
            self.log_file,
        )
        self._note(f"{self.spec.name} {reason}: left DEAD; fix the cause, then `make run` starts it again")

    def _kill_leftovers(self, now: float, *, force: bool) -> None:
        """SIGKILL what the exited process left in its group, once the grace is over (or now)."""
        group = self.leftover_group
        if group is None or self.leftover_kill_at is None or (not force and now < self.leftover_kill_at):
            return
        if processes.group_members(group):
            log.warning("%s: killing what its exited process left running (group %d)", self.spec.name, group)
            processes.signal_group(group, signal.SIGKILL)
            processes.wait_group_gone(group, 5.0)
        self.leftover_group = None
        self.leftover_kill_at = None

    # ------------------------------------------------------------------ stopping

    def signal_all(self, sig: signal.Signals) -> None:
        """Signal the running process's group and a dead one's leftovers."""
        for group in self._groups():
            processes.signal_group(group, sig)

    def has_processes(self) -> bool:
        return any(processes.group_members(group) for group in self._groups())

    def reap(self) -> None:
        """After a stop: collect the exit status and record the component STOPPED."""
        if self.process is not None:
            try:
                code: int | None = self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                code = None
            log.info("%s (pid %d) stopped (exit %s)", self.spec.name, self.process.pid, code)
            self.process = None
        self.leftover_group = None
        self.leftover_kill_at = None
        self.next_start = None
        self._update(state=ComponentState.STOPPED, pid=None, pid_created=None, next_start_at=None)

    def _groups(self) -> list[int]:
        groups = [self.process.pid] if self.process is not None else []
        return groups + ([self.leftover_group] if self.leftover_group is not None else [])
