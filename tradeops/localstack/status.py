"""``tradeops stack status``: per component running / restarting / DEAD, plus job heartbeats.

Exit codes, for scripts: 0 every component runs (and heartbeats where Airflow records one),
1 something is DEAD or stuck (or the supervisor itself died), 3 the stack is not running.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from tradeops.localstack import processes
from tradeops.localstack.component import describe_exit
from tradeops.localstack.heartbeats import (
    DEFAULT_THRESHOLD_SECONDS,
    JOB_TYPES,
    Heartbeat,
    HeartbeatUnavailable,
    read_heartbeats,
)
from tradeops.localstack.state import (
    ComponentRecord,
    ComponentState,
    StackPaths,
    StackRecord,
    read_state,
    running_supervisor,
    utcnow,
)

EXIT_OK = 0
EXIT_PROBLEM = 1
EXIT_NOT_RUNNING = 3
START_AGAIN = "run `make run` to start it again"


@dataclass(frozen=True, kw_only=True)
class StackStatus:
    lines: tuple[str, ...]
    exit_code: int


def when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def ago(seconds: float) -> str:
    """A short human duration: 4s, 3m 2s, 2h 5m, 3d 4h."""
    total = int(seconds)
    for unit, size, sub, sub_size in (("d", 86400, "h", 3600), ("h", 3600, "m", 60), ("m", 60, "s", 1)):
        if total >= size:
            return f"{total // size}{unit} {total % size // sub_size}{sub}"
    return f"{total}s"


def _last_exit(record: ComponentRecord) -> str:
    if record.last_exit_at is None:
        return ""
    what = describe_exit(record.last_exit_code) if record.last_exit_code is not None else record.last_error
    return f"last exit {what} at {when(record.last_exit_at)}"


def _heartbeat(record: ComponentRecord, beat: Heartbeat | None, now: datetime) -> tuple[str, bool]:
    """The heartbeat part of a running component's line, and whether it looks stuck.

    Only a job row that heartbeat after this process started counts: a killed predecessor's row
    keeps its last heartbeat forever.
    """
    started = record.started_at or now
    uptime = (now - started).total_seconds()
    if beat is None or beat.latest is None or beat.latest < started:
        threshold = beat.threshold_seconds if beat is not None else DEFAULT_THRESHOLD_SECONDS
        if uptime > threshold:
            return f"NO job heartbeat since it started {ago(uptime)} ago: stuck? see its log", True
        return "no job heartbeat yet (starting)", False
    age = max((now - beat.latest).total_seconds(), 0.0)
    text = f"heartbeat {ago(age)} ago (job {beat.job_id})"
    if age > beat.threshold_seconds:
        return f"{text}, over Airflow's {beat.threshold_seconds:g}s threshold: stuck? see its log", True
    return text, False


def _running_line(
    record: ComponentRecord, beats: dict[str, Heartbeat | None] | None, now: datetime, supervised: bool
) -> tuple[str, str, bool]:
    started = record.started_at or now
    details = f"pid {record.pid}, since {when(started)} ({ago((now - started).total_seconds())}), "
    details += f"restarts {record.restarts}"
    if record.last_exit_at is not None:
        details += f" ({_last_exit(record)})"
    condition, problem = ("running", False) if supervised else ("UNSUPERVISED", True)
    if beats is not None and record.name in JOB_TYPES:
        beat_text, stuck = _heartbeat(record, beats.get(record.name), now)
        details += f"; {beat_text}"
        if stuck:
            condition, problem = "STUCK", True
    return condition, details, problem


def _component_line(
    record: ComponentRecord, beats: dict[str, Heartbeat | None] | None, now: datetime, supervised: bool
) -> tuple[str, str, bool]:
    """(condition, details, problem) for one component."""
    alive = record.pid is not None and processes.ours(record.pid, record.pid_created)
    if record.state is ComponentState.RUNNING and alive:
        return _running_line(record, beats, now, supervised)
    if record.state in (ComponentState.RUNNING, ComponentState.RESTARTING) and supervised:
        details = _last_exit(record) or "exited"
        if record.next_start_at is not None:
            details += f"; starting again in {ago(max((record.next_start_at - now).total_seconds(), 0.0))}"
        return "restarting", f"{details}, restarts so far {record.restarts}", False
    if record.state is ComponentState.STOPPED:
        return "stopped", _last_exit(record) or "not running", False
    reason = record.gave_up or "the supervisor that restarted it is gone"
    details = ", ".join(part for part in (_last_exit(record), reason) if part)
    return "DEAD", f"{details}; log {record.log_file}; {START_AGAIN}", True


def _beats(lines: list[str], paths: StackPaths) -> dict[str, Heartbeat | None] | None:
    try:
        return read_heartbeats(paths.home)
    except HeartbeatUnavailable as exc:
        lines.append(f"  (job heartbeats unavailable: {exc})")
        return None


def stack_status(paths: StackPaths) -> StackStatus:
    now = utcnow()
    supervisor = running_supervisor(paths)
    record = read_state(paths.state_file)
    if record is None:
        return StackStatus(
            lines=(f"Airflow: never started in {paths.home} (`make run` starts it)",), exit_code=EXIT_NOT_RUNNING
        )
    lines = [_header(record, supervisor, paths)]
    stopped = supervisor is None and (record.stopping or _all_stopped(record))
    if stopped:
        return StackStatus(lines=tuple(lines), exit_code=EXIT_NOT_RUNNING)
    beats = _beats(lines, paths)
    problem = supervisor is None
    width = max(len(c.name) for c in record.components)
    for component in record.components:
        condition, details, bad = _component_line(component, beats, now, supervisor is not None)
        problem = problem or bad
        lines.append(f"  {component.name:<{width}}  {condition:<10}  {details}")
    return StackStatus(lines=tuple(lines), exit_code=EXIT_PROBLEM if problem else EXIT_OK)


def _all_stopped(record: StackRecord) -> bool:
    return all(c.state is ComponentState.STOPPED for c in record.components)


def _header(record: StackRecord, supervisor: int | None, paths: StackPaths) -> str:
    if supervisor is not None:
        return (
            f"Airflow supervisor: running (pid {supervisor}) since {when(record.started_at)}; "
            f"logs in {paths.directory}/"
        )
    if record.stopping or _all_stopped(record):
        return f"Airflow: stopped at {when(record.updated_at)} (`make run` starts it)"
    return (
        f"Airflow supervisor: DEAD (pid {record.supervisor_pid} is gone; last update {when(record.updated_at)}): "
        f"nothing restarts the components now; {START_AGAIN} (see {paths.supervisor_log})"
    )
