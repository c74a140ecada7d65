"""A real single-node Apache Kafka 4.x broker (KRaft, no ZooKeeper, no Docker) run by the project.

The jars come from Maven Central through the shipped ``pom.xml`` (``mvn dependency:copy-dependencies``)
into ``TRADEOPS_KAFKA_LIBS`` (default ``state_dir()/kafka/libs``). Everything else lives under
``state_dir()/kafka/``: ``server.properties``, ``cluster-id``, ``broker.pid``, ``broker.out`` (JVM
stdout/stderr), ``logs/server.log`` (log4j) and ``data/`` (the topic logs, kept across down/up).

When ``KAFKA_BOOTSTRAP_SERVERS`` is set the broker is external: ``up()`` only checks that it answers
and ``down()`` leaves it alone.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import psutil
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from tradeops.config import KafkaConfig, settings
from tradeops.db import state_dir
from tradeops.errors import TradeopsError

log = logging.getLogger(__name__)

EXTERNAL_ENV = "KAFKA_BOOTSTRAP_SERVERS"
LIBS_ENV = "TRADEOPS_KAFKA_LIBS"
HEAP = "512m"
_LOCAL_HOSTS = ("127.0.0.1", "localhost")
_COMPLETE_MARKER = ".tradeops-complete"
_MAIN_CLASS = "kafka.Kafka"
# Popen objects of brokers started by this process, kept so they can be reaped (no zombies).
_children: dict[int, subprocess.Popen[bytes]] = {}


class BrokerError(TradeopsError):
    """The local broker cannot be installed, started, reached or stopped. The message says why."""


@dataclass(frozen=True, kw_only=True)
class BrokerInfo:
    """A broker that answers the Admin API. ``started`` is true when this call launched it."""

    bootstrap: str
    cluster_id: str
    external: bool
    pid: int | None = None
    started: bool = False
    startup_seconds: float | None = None
    log_file: Path | None = None


@dataclass(frozen=True, kw_only=True)
class BrokerStatus:
    bootstrap: str
    external: bool
    running: bool
    ready: bool
    pid: int | None = None
    cluster_id: str | None = None
    log_file: Path | None = None


def bootstrap_servers() -> str:
    """``KAFKA_BOOTSTRAP_SERVERS`` when set (external broker), else ``kafka.bootstrap_servers``."""
    return os.environ.get(EXTERNAL_ENV, "").strip() or settings().kafka.bootstrap_servers


class _LibrdkafkaLog:
    """librdkafka's log lines, demoted to DEBUG on ``tradeops.kafka.librdkafka``.

    While a broker is unreachable librdkafka logs every reconnect attempt as an error; our callers
    report the failure once, as an exception, so the raw lines are only useful with ``-v``.
    """

    _target = logging.getLogger("tradeops.kafka.librdkafka")

    def log(self, level: int, message: str, *args: Any) -> None:
        self._target.debug("[%s] " + message, logging.getLevelName(level), *args)


def client_config(bootstrap: str | None = None, **overrides: Any) -> dict[str, Any]:
    """librdkafka settings shared by our clients; its log lines go to Python logging at DEBUG."""
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap or bootstrap_servers(),
        "client.id": "tradeops",
        "logger": _LibrdkafkaLog(),
    }
    config.update(overrides)
    return config


def kafka_dir() -> Path:
    path = state_dir() / "kafka"
    path.mkdir(parents=True, exist_ok=True)
    return path


def libs_dir() -> Path:
    """Where the broker jars live (``TRADEOPS_KAFKA_LIBS`` or ``state_dir()/kafka/libs``)."""
    override = os.environ.get(LIBS_ENV, "").strip()
    return Path(override).expanduser() if override else kafka_dir() / "libs"


def _pid_file() -> Path:
    return kafka_dir() / "broker.pid"


def _properties_file() -> Path:
    return kafka_dir() / "server.properties"


def _log_file() -> Path:
    return kafka_dir() / "logs" / "server.log"


def _out_file() -> Path:
    return kafka_dir() / "broker.out"


def _data_dir() -> Path:
    return kafka_dir() / "data"


# --------------------------------------------------------------------------- installation


def _tool(name: str) -> str:
    """Path of ``java`` / ``mvn`` (``$JAVA_HOME/bin/java`` first), or a clear error."""
    if name == "java" and os.environ.get("JAVA_HOME"):
        candidate = Path(os.environ["JAVA_HOME"]) / "bin" / "java"
        if candidate.exists():
            return str(candidate)
    found = shutil.which(name)
    if not found:
        hint = "install a JDK 17+" if name == "java" else "install Apache Maven 3.6+"
        raise BrokerError(f"'{name}' not found on PATH: {hint} to run the local Kafka broker")
    return found


def _pom_text() -> str:
    return resources.files("tradeops.kafka").joinpath("pom.xml").read_text()


def _pom_digest() -> str:
    return hashlib.sha256(_pom_text().encode()).hexdigest()


def _installed(libs: Path) -> bool:
    marker = libs / _COMPLETE_MARKER
    return marker.is_file() and marker.read_text().strip() == _pom_digest()


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock across processes (no-op where ``fcntl`` is missing)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_installed(timeout: float = 900.0) -> Path:
    """Fetch the broker jars with Maven once; return the libs directory.

    Skips when the directory is complete for the current pom. Downloads into a temporary sibling
    and renames it, so an interrupted download never looks complete.
    """
    libs = libs_dir()
    if _installed(libs):
        return libs
    _tool("java")
    mvn = _tool("mvn")
    libs.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(libs.parent / f".{libs.name}.lock"):
        if _installed(libs):
            return libs
        started = time.monotonic()
        log.warning("downloading the Kafka broker jars into %s (once; about a minute)", libs)
        with tempfile.TemporaryDirectory(prefix=f".{libs.name}-", dir=libs.parent) as tmp:
            build, target = Path(tmp) / "build", Path(tmp) / "libs"
            build.mkdir()
            (build / "pom.xml").write_text(_pom_text())
            command = [
                mvn,
                "-q",
                "-B",
                "-f",
                str(build / "pom.xml"),
                "dependency:copy-dependencies",
                f"-DoutputDirectory={target}",
            ]
            try:
                result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=build)
            except subprocess.TimeoutExpired:
                raise BrokerError(f"mvn did not finish within {timeout:.0f}s fetching the Kafka jars") from None
            if result.returncode != 0 or not any(target.glob("kafka_2.13-*.jar")):
                output = (result.stdout + result.stderr)[-3000:]
                raise BrokerError(f"mvn could not fetch the Kafka jars (exit {result.returncode}):\n{output}")
            (target / _COMPLETE_MARKER).write_text(_pom_digest())
            if libs.exists():
                shutil.rmtree(libs)
            target.rename(libs)
        log.info("Kafka jars ready in %s (%.1fs)", libs, time.monotonic() - started)
    return libs


# --------------------------------------------------------------------------- configuration


def parse_listener(bootstrap: str) -> tuple[str, int]:
    """``host:port`` of a local broker; only loopback addresses are allowed."""
    if "," in bootstrap:
        raise BrokerError(f"kafka.bootstrap_servers '{bootstrap}': the local broker has one address")
    host, _, port_text = bootstrap.strip().rpartition(":")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise BrokerError(f"kafka.bootstrap_servers '{bootstrap}': expected HOST:PORT")
    if host not in _LOCAL_HOSTS:
        raise BrokerError(f"kafka.bootstrap_servers '{bootstrap}': the local broker binds to 127.0.0.1 only")
    return "127.0.0.1", int(port_text)


def render_server_properties(config: KafkaConfig, data_dir: Path) -> str:
    host, port = parse_listener(config.bootstrap_servers)
    cport = config.controller_port
    if cport == port:
        raise BrokerError(f"kafka.controller_port {cport} equals the client port; choose another")
    lines = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.bootstrap.servers": f"{host}:{cport}",
        "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{cport}",
        "advertised.listeners": f"PLAINTEXT://{host}:{port}",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(data_dir),
        "num.partitions": str(config.partitions),
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "10",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "10",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "log.cleaner.threads": "1",
        # Topics are created on purpose (tradeops kafka up); a typo must not create a new one.
        "auto.create.topics.enable": "false",
        "log.cleaner.dedupe.buffer.size": "4194304",
    }
    header = "# Written by tradeops.kafka.broker from the kafka section of the config; edits are overwritten.\n"
    return header + "".join(f"{key}={value}\n" for key, value in lines.items())


def _new_cluster_id() -> str:
    """Kafka's cluster id format: URL-safe base64 of a random UUID, never starting with '-'."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def _cluster_id() -> str:
    path = kafka_dir() / "cluster-id"
    if not path.exists():
        path.write_text(_new_cluster_id() + "\n")
    return path.read_text().strip()


def _java_command(libs: Path, main_class: str, *args: str) -> list[str]:
    log4j = resources.files("tradeops.kafka").joinpath("log4j2.properties")
    return [
        _tool("java"),
        f"-Xmx{HEAP}",
        f"-Xms{HEAP}",
        "-XX:+UseG1GC",
        "-XX:+ExitOnOutOfMemoryError",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={log4j}",
        f"-Dkafka.logs.dir={_log_file().parent}",
        "-cp",
        str(libs / "*"),
        main_class,
        *args,
    ]


def _format_storage(libs: Path) -> str:
    """Format ``data/`` once (KRaft standalone controller); later calls keep the data."""
    cluster_id = _cluster_id()
    if (_data_dir() / "meta.properties").exists():
        return cluster_id
    command = _java_command(
        libs,
        "kafka.tools.StorageTool",
        "format",
        "--standalone",
        "-t",
        cluster_id,
        "-c",
        str(_properties_file()),
    )
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise BrokerError(f"formatting Kafka storage failed:\n{(result.stdout + result.stderr)[-3000:]}")
    return cluster_id


# --------------------------------------------------------------------------- process handling


def _is_our_broker(pid: int) -> bool:
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            _reap(pid)
            return False
        cmdline = process.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
    return _MAIN_CLASS in cmdline and str(_properties_file()) in cmdline


def _reap(pid: int) -> None:
    child = _children.pop(pid, None)
    if child is not None:
        child.poll()
        return
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def running_pid() -> int | None:
    """Pid of our broker, or None. A pid file naming a dead or foreign process is removed."""
    path = _pid_file()
    try:
        pid = int(path.read_text().strip())
    except FileNotFoundError:
        return None
    except ValueError:
        pid = -1
    if pid > 0 and _is_our_broker(pid):
        return pid
    log.info("removing stale Kafka pid file %s (pid %s is not our broker)", path, pid)
    path.unlink(missing_ok=True)
    return None


def _ensure_port_free(host: str, port: int, what: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise BrokerError(
                f"{what} port {host}:{port} is already in use by another process ({exc.strerror}); "
                "stop it or choose another port "
                "(TRADEOPS__KAFKA__BOOTSTRAP_SERVERS / TRADEOPS__KAFKA__CONTROLLER_PORT)"
            ) from None


def _terminate_with_parent() -> None:
    """Ask Linux to SIGTERM this (child) process when its parent dies (prctl PR_SET_PDEATHSIG)."""
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)


def _start_java(libs: Path, stop_with_caller: bool) -> int:
    _log_file().parent.mkdir(parents=True, exist_ok=True)
    command = _java_command(libs, _MAIN_CLASS, str(_properties_file()))
    tie = stop_with_caller and sys.platform.startswith("linux")
    with _out_file().open("ab") as out:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=kafka_dir(),
            start_new_session=True,
            close_fds=True,
            preexec_fn=_terminate_with_parent if tie else None,
        )
    _children[process.pid] = process
    _pid_file().write_text(f"{process.pid}\n")
    return process.pid


def _alive(pid: int) -> bool:
    child = _children.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _wait_exit(pid: int, timeout: float) -> bool:
    child = _children.get(pid)
    try:
        if child is not None:
            child.wait(timeout)
            _children.pop(pid, None)
        else:
            psutil.Process(pid).wait(timeout)
    except (subprocess.TimeoutExpired, psutil.TimeoutExpired):
        return False
    except psutil.NoSuchProcess:
        pass
    return True


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no output)"


# --------------------------------------------------------------------------- readiness


def _port_open(bootstrap: str, timeout: float) -> bool:
    host, _, port = bootstrap.split(",")[0].strip().rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def probe(bootstrap: str, timeout: float = 5.0) -> str | None:
    """The cluster id when the broker answers list_topics and describe_cluster, else None."""
    if not _port_open(bootstrap, min(timeout, 2.0)):
        return None
    admin = AdminClient(client_config(bootstrap))
    try:
        admin.list_topics(timeout=timeout)
        cluster = admin.describe_cluster(request_timeout=timeout).result(timeout=timeout)
    except (KafkaException, TimeoutError, RuntimeError) as exc:
        log.debug("Kafka at %s not ready: %s", bootstrap, exc)
        return None
    return str(cluster.cluster_id)


def _wait_ready(bootstrap: str, pid: int, deadline: float) -> str:
    while True:
        if not _alive(pid):
            _reap(pid)
            _pid_file().unlink(missing_ok=True)
            raise BrokerError(
                f"the Kafka broker exited during start-up; last lines of {_out_file()} and {_log_file()}:\n"
                f"{_tail(_out_file(), 10)}\n{_tail(_log_file())}"
            )
        cluster_id = probe(bootstrap, timeout=2.0)
        if cluster_id:
            return cluster_id
        if time.monotonic() > deadline:
            raise BrokerError(
                f"the Kafka broker (pid {pid}) did not become ready at {bootstrap} in time; it is left "
                f"running for inspection ('tradeops kafka down' stops it); see {_log_file()}"
            )
        time.sleep(0.25)


# --------------------------------------------------------------------------- public API


def _external_up(bootstrap: str, wait_seconds: float) -> BrokerInfo:
    deadline = time.monotonic() + wait_seconds
    while True:
        cluster_id = probe(bootstrap, timeout=3.0)
        if cluster_id:
            return BrokerInfo(bootstrap=bootstrap, cluster_id=cluster_id, external=True)
        if time.monotonic() > deadline:
            raise BrokerError(f"the external Kafka broker at {bootstrap} ({EXTERNAL_ENV}) does not answer")
        time.sleep(0.5)


def up(wait_seconds: float = 60.0, *, stop_with_caller: bool = False) -> BrokerInfo:
    """Start our broker unless it already runs, and wait until it answers the Admin API.

    The broker is detached (own session, output to files) and outlives the caller, unless
    ``stop_with_caller`` (Linux only): then it gets SIGTERM when the calling thread's process dies
    (strictly: when the thread that called ``up`` ends), so a killed test run leaves no broker behind.
    """
    external = os.environ.get(EXTERNAL_ENV, "").strip()
    if external:
        return _external_up(external, wait_seconds)
    config = settings().kafka
    bootstrap = config.bootstrap_servers
    host, port = parse_listener(bootstrap)
    deadline = time.monotonic() + wait_seconds
    with _file_lock(kafka_dir() / ".broker.lock"):
        pid = running_pid()
        if pid is not None:
            cluster_id = _wait_ready(bootstrap, pid, deadline)
            return BrokerInfo(bootstrap=bootstrap, cluster_id=cluster_id, external=False, pid=pid, log_file=_log_file())
        _ensure_port_free(host, port, "Kafka client")
        _ensure_port_free(host, config.controller_port, "Kafka controller")
        libs = ensure_installed()
        _properties_file().write_text(render_server_properties(config, _data_dir()))
        _format_storage(libs)
        started = time.monotonic()
        pid = _start_java(libs, stop_with_caller)
        log.info("started the Kafka broker (pid %d) at %s", pid, bootstrap)
        cluster_id = _wait_ready(bootstrap, pid, max(deadline, started + wait_seconds))
    return BrokerInfo(
        bootstrap=bootstrap,
        cluster_id=cluster_id,
        external=False,
        pid=pid,
        started=True,
        startup_seconds=round(time.monotonic() - started, 2),
        log_file=_log_file(),
    )


def down(timeout: float = 30.0) -> bool:
    """Stop our broker (SIGTERM, then SIGKILL after ``timeout``); True when one was stopped."""
    if os.environ.get(EXTERNAL_ENV, "").strip():
        log.info("%s is set: the external broker is left alone", EXTERNAL_ENV)
        return False
    with _file_lock(kafka_dir() / ".broker.lock"):
        pid = running_pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGTERM)
        if not _wait_exit(pid, timeout):
            log.warning("Kafka broker (pid %d) ignored SIGTERM for %.0fs; killing it", pid, timeout)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            _wait_exit(pid, 10.0)
        _pid_file().unlink(missing_ok=True)
    return True


def status() -> BrokerStatus:
    """Whether the broker runs (our process) and answers (Admin API)."""
    external = os.environ.get(EXTERNAL_ENV, "").strip()
    if external:
        cluster_id = probe(external, timeout=3.0)
        ready = cluster_id is not None
        return BrokerStatus(bootstrap=external, external=True, running=ready, ready=ready, cluster_id=cluster_id)
    bootstrap = settings().kafka.bootstrap_servers
    pid = running_pid()
    cluster_id = probe(bootstrap, timeout=3.0) if pid is not None else None
    return BrokerStatus(
        bootstrap=bootstrap,
        external=False,
        running=pid is not None,
        ready=cluster_id is not None,
        pid=pid,
        cluster_id=cluster_id,
        log_file=_log_file(),
    )
