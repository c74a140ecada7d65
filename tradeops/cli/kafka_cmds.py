"""``tradeops kafka up|down|status|connections`` (the local broker; ``watchers``, ``dead-letters`` and
``stale`` live in ``watch_cmds``) and ``tradeops publish`` (one event)."""

from __future__ import annotations

import argparse
import json
import sys
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from tradeops.cli.watch_cmds import register_actions
from tradeops.errors import EventValidationError

if TYPE_CHECKING:
    from tradeops.kafka.broker import BrokerStatus

EXIT_INVALID = 2
EXIT_NOT_DELIVERED = 3
_ENVELOPE = ("event_id", "event_type", "schema_version", "occurred_at", "source")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    _register_kafka(subparsers)
    _register_publish(subparsers)


# --------------------------------------------------------------------------- tradeops kafka


def _register_kafka(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    kafka = subparsers.add_parser(
        "kafka",
        help="run the local Kafka broker: up | down | status",
        description=(
            "Run a real single-node Apache Kafka broker (KRaft) for tradeops, bound to 127.0.0.1. "
            "Ports come from the kafka section of the config; data and logs live under "
            "<state dir>/kafka and survive down/up. If KAFKA_BOOTSTRAP_SERVERS is set, that external "
            "broker is used instead and never started or stopped."
        ),
    )
    actions = kafka.add_subparsers(dest="kafka_command", metavar="ACTION", required=True)
    up = actions.add_parser(
        "up",
        help="start the broker (fetching its jars with Maven once) and create the topics",
        description="Start the broker unless it already runs, wait until it answers, create missing topics.",
    )
    up.add_argument(
        "--wait",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how long to wait for the broker to answer (default: 60)",
    )
    up.set_defaults(func=_kafka_up)
    down = actions.add_parser(
        "down",
        help="stop the broker (its data is kept)",
        description="Stop the local broker: SIGTERM, then SIGKILL after --timeout.",
    )
    down.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="seconds to wait for a clean shutdown before killing it (default: 30)",
    )
    down.set_defaults(func=_kafka_down)
    status = actions.add_parser(
        "status",
        help="show whether the broker runs and answers (exit 1 if not ready)",
        description="Show the broker's pid, address and readiness. Exit 0 when ready.",
    )
    status.set_defaults(func=_kafka_status)
    connections = actions.add_parser(
        "connections",
        help="print the Airflow connections of the Kafka watchers",
        description="Print one Airflow connection (type kafka) per watcher: its own consumer group, "
        "enable.auto.commit=false and auto.offset.reset=earliest, as the at-least-once trigger needs. "
        "--format env prints `export AIRFLOW_CONN_...=...` lines for a shell; --format json one object.",
    )
    connections.add_argument("--format", choices=["env", "json"], default="env", help="output form (default env)")
    connections.add_argument("--bootstrap", default=None, help="broker address (default: the configured one)")
    connections.set_defaults(func=_kafka_connections)
    register_actions(actions)


def _kafka_up(args: argparse.Namespace) -> int:
    from tradeops.kafka import broker
    from tradeops.kafka.topics import ensure_topics

    info = broker.up(wait_seconds=args.wait)
    if info.external:
        print(f"using the external Kafka broker at {info.bootstrap} (KAFKA_BOOTSTRAP_SERVERS)")
    elif info.started:
        print(f"started the Kafka broker at {info.bootstrap} (pid {info.pid}, ready in {info.startup_seconds}s)")
    else:
        print(f"the Kafka broker is already running at {info.bootstrap} (pid {info.pid})")
    created = ensure_topics(info.bootstrap)
    print(f"topics created: {', '.join(created)}" if created else "topics: all present")
    _print_status(broker.status())
    return 0


def _kafka_down(args: argparse.Namespace) -> int:
    from tradeops.kafka import broker

    if broker.status().external:
        print("KAFKA_BOOTSTRAP_SERVERS is set: the external broker is left alone")
    elif broker.down(timeout=args.timeout):
        print("stopped the Kafka broker (data kept)")
    else:
        print("the Kafka broker is not running")
    return 0


def _kafka_connections(args: argparse.Namespace) -> int:
    import json
    import shlex

    from tradeops.kafka.broker import bootstrap_servers
    from tradeops.watchers import connection_env

    env = connection_env(args.bootstrap or bootstrap_servers())
    if args.format == "json":
        print(json.dumps({name: json.loads(value) for name, value in env.items()}, indent=2, sort_keys=True))
    else:
        for name, value in env.items():
            print(f"export {name}={shlex.quote(value)}")
    return 0


def _kafka_status(args: argparse.Namespace) -> int:
    from tradeops.kafka import broker

    state = broker.status()
    _print_status(state)
    return 0 if state.ready else 1


def _print_status(state: BrokerStatus) -> None:
    rows = {
        "bootstrap": state.bootstrap,
        "external": "yes" if state.external else "no",
        "running": "yes" if state.running else "no",
        "ready": "yes" if state.ready else "no",
        "pid": state.pid or "-",
        "cluster_id": state.cluster_id or "-",
        "log": state.log_file or "-",
    }
    for name, value in rows.items():
        print(f"{name:<11} {value}")


# --------------------------------------------------------------------------- tradeops publish


def _event_help() -> str:
    from tradeops.events import REGISTRY, cli_name

    lines = ["event types (topic attribute of kafka.topics; fields, ? = optional):"]
    for event_type, spec in REGISTRY.items():
        fields = [
            f"{name}{'' if info.is_required() else '?'}"
            for name, info in spec.model.model_fields.items()
            if name not in _ENVELOPE
        ]
        lines.append(f"  {cli_name(event_type):<24} -> {spec.topic_attr}: {', '.join(fields)}")
    lines += ["", "examples:"]
    for event_type, spec in REGISTRY.items():
        lines.append(f"  tradeops publish {cli_name(event_type)} --json '{json.dumps(spec.example)}'")
    lines += [
        "",
        "Envelope fields (event_id, occurred_at, source) are filled in unless given; schema_version is 1.",
        "Money, rates and percentages are best given as strings (exact decimals).",
        f"exit status: 0 delivered; {EXIT_INVALID} invalid event (nothing sent); "
        f"{EXIT_NOT_DELIVERED} the broker did not confirm the write.",
    ]
    return "\n".join(lines)


def _event_type_arg(value: str) -> str:
    from tradeops.events import REGISTRY, cli_name, event_type_name

    try:
        return event_type_name(value)
    except EventValidationError:
        known = ", ".join(cli_name(name) for name in REGISTRY)
        raise argparse.ArgumentTypeError(f"unknown event type '{value}'; choose from {known}") from None


def _register_publish(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    publish = subparsers.add_parser(
        "publish",
        help="validate one event and publish it to Kafka (waits for the broker's confirmation)",
        description=(
            "Validate an event against its schema and publish it to its Kafka topic (acks=all,\n"
            "idempotent producer), waiting for the broker's confirmation. An invalid event is\n"
            "refused with the offending field named, and nothing is sent."
        ),
        epilog=_event_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    publish.add_argument(
        "event_type",
        metavar="EVENT_TYPE",
        type=_event_type_arg,
        help="one of the event types listed below (e.g. market-shock, critical-alert)",
    )
    publish.add_argument(
        "--json",
        dest="fields",
        required=True,
        metavar="JSON",
        help="the event's fields as a JSON object ('-' reads it from stdin)",
    )
    publish.add_argument(
        "--bootstrap",
        metavar="HOST:PORT",
        help="broker address (default: KAFKA_BOOTSTRAP_SERVERS, else kafka.bootstrap_servers)",
    )
    publish.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="how long to wait for the confirmation (default: kafka.delivery_timeout_seconds)",
    )
    publish.set_defaults(func=_publish)


def _read_fields(text: str) -> dict[str, Any]:
    if text == "-":
        text = sys.stdin.read()
    try:
        fields = json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        raise EventValidationError("<json>", f"not valid JSON: {exc}") from None
    if not isinstance(fields, dict):
        raise EventValidationError("<json>", f"expected a JSON object, got {type(fields).__name__}")
    return fields


def _publish(args: argparse.Namespace) -> int:
    from tradeops.events import build_event, cli_name
    from tradeops.kafka.producer import DeliveryError, publish

    name = cli_name(args.event_type)
    try:
        event = build_event(args.event_type, _read_fields(args.fields))
    except EventValidationError as exc:
        print(
            f"tradeops: invalid {name} event: field '{exc.field}': {exc.reason} (nothing was published)",
            file=sys.stderr,
        )
        return EXIT_INVALID
    try:
        report = publish(event, bootstrap=args.bootstrap, timeout=args.timeout)
    except DeliveryError as exc:
        print(f"tradeops: {name} event {event.event_id} NOT delivered: {exc}", file=sys.stderr)
        return EXIT_NOT_DELIVERED
    print(
        f"delivered {name} event_id={report.event_id} topic={report.topic} "
        f"partition={report.partition} offset={report.offset}"
    )
    return 0
