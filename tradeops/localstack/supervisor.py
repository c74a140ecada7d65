"""The supervisor: runs each component, restarts one that exits, stops them all on SIGTERM.

One process per stack (it holds ``stack/supervisor.lock`` while it runs). Each component runs in
its own session with its output appended to ``stack/<name>.log``; the supervisor's own account
(starts, exits with their codes, restarts, give-ups) goes to ``stack/supervisor.log``. Signals:
SIGTERM / SIGINT stop everything and exit, SIGUSR1 starts again the components left DEAD.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal
import time
from collections.abc import Iterator, Sequence
from types import FrameType

from tradeops.errors import TradeopsError
from tradeops.localstack import processes
from tradeops.localstack.component import Component, ComponentSpec
from tradeops.localstack.policy import RestartPolicy
from tradeops.localstack.state import StackPaths, StackRecord, read_state, running_supervisor, utcnow, write_state

log = logging.getLogger(__name__)

POLL_SECONDS = 0.25
STOP_GRACE_SECONDS = 30.0

AIRFLOW_COMPONENTS = tuple(
    ComponentSpec(name=name, command=("airflow", name))
    for name in ("scheduler", "dag-processor", "triggerer", "api-server")
)


class AlreadySupervised(TradeopsError):
    """Another supervisor already runs this stack; nothing was started."""


class Supervisor:
    def __init__(
        self,
        specs: Sequence[ComponentSpec],
        paths: StackPaths,
        policy: RestartPolicy,
        *,
        stop_grace_seconds: float = STOP_GRACE_SECONDS,
    ) -> None:
        names = [spec.name for spec in specs]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"components need unique names, got {names}")
        self.paths = paths
        self.stop_grace_seconds = stop_grace_seconds
        self.components = [Component(spec, paths.component_log(spec.name), policy) for spec in specs]
        self._started_at = utcnow()
        self._stopping = False
        self._stop_signal: signal.Signals | None = None
        self._revive_requested = False

    def run(self) -> int:
        """Supervise until SIGTERM / SIGINT, then stop every component. Raises AlreadySupervised."""
        self.paths.directory.mkdir(parents=True, exist_ok=True)
        with self._lock():
            log.info("supervisor (pid %d) starting %s", os.getpid(), ", ".join(c.spec.name for c in self.components))
            self._end_previous_leftovers()
            self._install_signals()
            try:
                now = time.monotonic()
                for component in self.components:
                    component.start(now)
                self._write()
                while self._stop_signal is None:
                    self._step()
                    time.sleep(POLL_SECONDS)
                log.info("received %s", self._stop_signal.name)
            finally:  # an error in here must not leave the components running unsupervised
                self._stop_all()
        log.info("supervisor (pid %d) stopped", os.getpid())
        return 0

    def _step(self) -> None:
        now = time.monotonic()
        changed = False
        if self._revive_requested:
            self._revive_requested = False
            revived = [c.spec.name for c in self.components if c.revive(now)]
            log.info("revive requested: %s", ", ".join(revived) or "nothing is DEAD")
            changed = bool(revived)
        for component in self.components:
            changed = component.poll(now) or changed
        if changed:
            self._write()

    def _stop_all(self) -> None:
        self._stopping = True
        self._write()
        log.info("stopping every component (SIGTERM, SIGKILL after %gs)", self.stop_grace_seconds)
        for component in self.components:
            component.signal_all(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_grace_seconds
        while any(c.has_processes() for c in self.components) and time.monotonic() < deadline:
            time.sleep(0.1)
        for component in self.components:
            if component.has_processes():
                log.warning("%s ignored SIGTERM for %gs: killing it", component.spec.name, self.stop_grace_seconds)
                component.signal_all(signal.SIGKILL)
        for component in self.components:
            component.reap()
        self._write()

    def _write(self) -> None:
        write_state(
            self.paths.state_file,
            StackRecord(
                supervisor_pid=os.getpid(),
                started_at=self._started_at,
                updated_at=utcnow(),
                stopping=self._stopping,
                components=tuple(c.record for c in self.components),
            ),
        )

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        with self.paths.lock_file.open("a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                other = running_supervisor(self.paths)
                pid = f" (pid {other})" if other else ""
                raise AlreadySupervised(f"a supervisor already runs the stack in {self.paths.home}{pid}") from None
            handle.truncate(0)
            handle.write(f"{os.getpid()}\n")
            handle.flush()
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _end_previous_leftovers(self) -> None:
        """Stop what a previous supervisor, killed without its cleanup, left running here."""
        previous = read_state(self.paths.state_file)
        for record in previous.components if previous else ():
            if record.pid is not None and processes.ours(record.pid, record.pid_created):
                log.warning(
                    "%s (group %d) was left running by a previous supervisor: stopping it", record.name, record.pid
                )
                processes.end_group(record.pid, self.stop_grace_seconds)

    def _install_signals(self) -> None:
        def stop(signum: int, frame: FrameType | None) -> None:
            self._stop_signal = signal.Signals(signum)

        def revive(signum: int, frame: FrameType | None) -> None:
            self._revive_requested = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGUSR1, revive)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
