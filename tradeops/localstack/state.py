"""Where the supervisor keeps its files, and the state file it writes on every change.

The state file is the only channel from the supervisor to ``tradeops stack status``: it is
rewritten atomically (temporary file + rename), so a reader never sees half of it. Whether the
supervisor still runs is not read from the file but from its lock (see ``running_supervisor``): a
supervisor killed with SIGKILL cannot update the file, but the kernel releases its lock.
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any


class ComponentState(StrEnum):
    RUNNING = "running"
    RESTARTING = "restarting"  # exited; waits for its backoff to pass, then starts again
    DEAD = "dead"  # kept dying: left stopped until revived (``make run``)
    STOPPED = "stopped"  # stopped on purpose (``make stop``)


@dataclass(frozen=True, kw_only=True)
class StackPaths:
    """The files of one supervised stack, all under ``<airflow home>/stack/``."""

    home: Path

    @property
    def directory(self) -> Path:
        return self.home / "stack"

    @property
    def state_file(self) -> Path:
        return self.directory / "state.json"

    @property
    def lock_file(self) -> Path:
        return self.directory / "supervisor.lock"

    @property
    def supervisor_log(self) -> Path:
        return self.directory / "supervisor.log"

    def component_log(self, name: str) -> Path:
        return self.directory / f"{name}.log"


def default_home() -> Path:
    """Airflow's own rule: ``$AIRFLOW_HOME``, else ``~/airflow``."""
    return Path(os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow").expanduser()


@dataclass(frozen=True, kw_only=True)
class ComponentRecord:
    """One component as the supervisor last saw it. ``pid_created`` (the process's start time as
    the kernel reports it) tells a live process of ours from a later one that reused its pid."""

    name: str
    command: tuple[str, ...]
    state: ComponentState
    log_file: str
    pid: int | None = None
    pid_created: float | None = None
    started_at: datetime | None = None
    restarts: int = 0
    last_exit_code: int | None = None
    last_exit_at: datetime | None = None
    last_error: str | None = None
    next_start_at: datetime | None = None
    gave_up: str | None = None


@dataclass(frozen=True, kw_only=True)
class StackRecord:
    supervisor_pid: int
    started_at: datetime
    updated_at: datetime
    stopping: bool = False
    components: tuple[ComponentRecord, ...] = field(default_factory=tuple)

    def component(self, name: str) -> ComponentRecord | None:
        return next((c for c in self.components if c.name == name), None)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    return value


_DATES = ("started_at", "last_exit_at", "next_start_at")


def _component_from(data: dict[str, Any]) -> ComponentRecord:
    values = dict(data)
    for key in _DATES:
        values[key] = datetime.fromisoformat(values[key]) if values.get(key) else None
    values["command"] = tuple(values["command"])
    values["state"] = ComponentState(values["state"])
    return ComponentRecord(**values)


def write_state(path: Path, record: StackRecord) -> None:
    """Replace the state file atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(_encode(asdict(record)), indent=2) + "\n")
    os.replace(tmp, path)


def read_state(path: Path) -> StackRecord | None:
    """The last state the supervisor wrote, or None when it never ran here."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    return StackRecord(
        supervisor_pid=int(data["supervisor_pid"]),
        started_at=datetime.fromisoformat(data["started_at"]),
        updated_at=datetime.fromisoformat(data["updated_at"]),
        stopping=bool(data["stopping"]),
        components=tuple(_component_from(c) for c in data["components"]),
    )


def running_supervisor(paths: StackPaths) -> int | None:
    """The pid of the supervisor holding this stack's lock, or None when none runs.

    The kernel drops the lock when that process dies, however it dies.
    """
    try:
        handle = paths.lock_file.open("r")
    except FileNotFoundError:
        return None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            content = handle.read().strip()
            return int(content) if content.isdigit() else None
        fcntl.flock(handle, fcntl.LOCK_UN)
        return None
