"""``tradeops stack supervise|status|revive|stop|wait``: the local stack's Airflow components."""

from __future__ import annotations

import argparse
import logging
import shlex
import time
from pathlib import Path
from typing import TYPE_CHECKING

from tradeops.localstack.state import StackPaths, default_home

if TYPE_CHECKING:
    from tradeops.localstack.component import ComponentSpec

EXIT_NOT_RUNNING = 3


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    stack = subparsers.add_parser(
        "stack",
        help="keep the local Airflow components alive: supervise | status | revive | stop | wait",
        description=(
            "Run Airflow's scheduler, dag-processor, triggerer and api-server under a supervisor that "
            "restarts one that dies (`make run` uses it instead of `airflow standalone`). Its state, its "
            "log and one log per component live in <airflow home>/stack/."
        ),
    )
    stack.add_argument(
        "--home", type=Path, default=None, help="the Airflow home (default: $AIRFLOW_HOME, else ~/airflow)"
    )
    actions = stack.add_subparsers(dest="stack_command", metavar="ACTION", required=True)
    _register_supervise(actions)
    status = actions.add_parser(
        "status",
        help="per component: running / restarting / DEAD, with job heartbeats",
        description="Show each component's state, pid, uptime and restarts, and the scheduler's, triggerer's "
        "and dag-processor's job heartbeat age from Airflow's metadata database. Exit 0 when all run, "
        "1 when something is DEAD or stuck, 3 when the stack is not running.",
    )
    status.set_defaults(func=_status)
    revive = actions.add_parser(
        "revive",
        help="start again the components the supervisor left DEAD (exit 3: no supervisor runs)",
        description="Signal the running supervisor (SIGUSR1) to start its DEAD components with a clean slate.",
    )
    revive.set_defaults(func=_revive)
    stop = actions.add_parser(
        "stop",
        help="stop the supervisor and every component process",
        description="SIGTERM the supervisor, which stops the components; SIGKILL it after --timeout; then "
        "end any component process group still running.",
    )
    stop.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS", help="default: 60")
    stop.set_defaults(func=_stop)
    wait = actions.add_parser(
        "wait",
        help="wait until a URL answers 200 (fails early if the api-server is DEAD)",
        description="Poll URL until it answers 200; fail as soon as the supervisor is gone or the api-server "
        "was left DEAD, printing the end of its log.",
    )
    wait.add_argument("--url", required=True, help="e.g. http://127.0.0.1:8080/api/v2/monitor/health")
    wait.add_argument("--timeout", type=float, default=300.0, metavar="SECONDS", help="default: 300")
    wait.set_defaults(func=_wait)


def _register_supervise(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    supervise = actions.add_parser(
        "supervise",
        help="run the components and restart one that dies (foreground; SIGTERM stops all)",
        description="Start each component in its own process group and restart one that exits, after a "
        "backoff that doubles per death (--backoff, up to --backoff-max). The --max-deaths-th death within "
        "--window seconds leaves it DEAD. SIGTERM/SIGINT stop everything; SIGUSR1 revives DEAD components.",
    )
    supervise.add_argument(
        "--component",
        action="append",
        default=[],
        metavar="NAME=COMMAND",
        help="a component to run instead of Airflow's four (repeatable); COMMAND is split like a shell would",
    )
    supervise.add_argument(
        "--also",
        action="append",
        default=[],
        metavar="NAME=COMMAND",
        help="a component to run besides the others, e.g. news-feed='tradeops news feed' (repeatable)",
    )
    supervise.add_argument("--max-deaths", type=int, default=5, metavar="N", help="default: 5")
    supervise.add_argument("--window", type=float, default=120.0, metavar="SECONDS", help="default: 120")
    supervise.add_argument("--backoff", type=float, default=1.0, metavar="SECONDS", help="first delay (default: 1)")
    supervise.add_argument("--backoff-max", type=float, default=30.0, metavar="SECONDS", help="default: 30")
    supervise.add_argument(
        "--stop-grace", type=float, default=30.0, metavar="SECONDS", help="SIGTERM to SIGKILL on stop (default: 30)"
    )
    supervise.set_defaults(func=_supervise)


def _paths(args: argparse.Namespace) -> StackPaths:
    return StackPaths(home=(args.home or default_home()).resolve())


def _component(text: str) -> ComponentSpec:
    from tradeops.errors import TradeopsError
    from tradeops.localstack.component import ComponentSpec

    name, sep, command = text.partition("=")
    if not sep or not name.strip() or not shlex.split(command):
        raise TradeopsError(f"--component expects NAME=COMMAND, got {text!r}")
    return ComponentSpec(name=name.strip(), command=tuple(shlex.split(command)))


def _log_to(path: Path) -> None:
    """The supervisor's account goes to its own log file, in UTC."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(message)s", datefmt="%Y-%m-%dT%H:%M:%SZ")
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    logger = logging.getLogger("tradeops.localstack")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def _supervise(args: argparse.Namespace) -> int:
    from tradeops.localstack.policy import RestartPolicy
    from tradeops.localstack.supervisor import AIRFLOW_COMPONENTS, Supervisor

    paths = _paths(args)
    specs = [_component(text) for text in args.component] or list(AIRFLOW_COMPONENTS)
    specs += [_component(text) for text in args.also]
    policy = RestartPolicy(
        max_deaths=args.max_deaths,
        window_seconds=args.window,
        backoff_seconds=args.backoff,
        backoff_max_seconds=args.backoff_max,
    )
    _log_to(paths.supervisor_log)
    return Supervisor(specs, paths, policy, stop_grace_seconds=args.stop_grace).run()


def _status(args: argparse.Namespace) -> int:
    from tradeops.localstack.status import stack_status

    report = stack_status(_paths(args))
    print("\n".join(report.lines))
    return report.exit_code


def _revive(args: argparse.Namespace) -> int:
    from tradeops.localstack.control import revive

    paths = _paths(args)
    dead = revive(paths)
    if dead is None:
        print(f"no Airflow supervisor runs in {paths.home}")
        return EXIT_NOT_RUNNING
    print(
        f"Airflow supervisor already running; starting again: {', '.join(dead)}"
        if dead
        else "Airflow supervisor already running; no component is DEAD"
    )
    return 0


def _stop(args: argparse.Namespace) -> int:
    from tradeops.localstack.control import stop

    done = stop(_paths(args), args.timeout)
    print("\n".join(done) if done else "Airflow is not running")
    return 0


def _wait(args: argparse.Namespace) -> int:
    from tradeops.localstack.control import wait_ready

    wait_ready(_paths(args), args.url, args.timeout)
    return 0
