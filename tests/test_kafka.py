"""The real local Kafka broker: publish round trips, refusals, dead letters, broker lifecycle."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Message, TopicPartition

from tests.fixtures.kafka import end_offsets, free_port
from tradeops.config import settings
from tradeops.events import REGISTRY, build_event, parse_event
from tradeops.kafka import broker
from tradeops.kafka.producer import DeliveryError, publish
from tradeops.kafka.topics import ensure_topics, topic_names

pytestmark = pytest.mark.kafka

ROOT = Path(__file__).resolve().parent.parent
DELIVERED = re.compile(
    r"event_id=(?P<event_id>\S+) topic=(?P<topic>\S+) partition=(?P<partition>\d+) "
    r"offset=(?P<offset>\d+)"
)


def _cli(*args: str, env: dict[str, str] | None = None, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    """``tradeops ARGS`` as a real subprocess, with the test session's environment."""
    return subprocess.run(
        [sys.executable, "-m", "tradeops", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )


def _consumer(bootstrap: str) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )


def _read_at(bootstrap: str, topic: str, partition: int, offset: int, timeout: float = 20.0) -> Message:
    consumer = _consumer(bootstrap)
    try:
        consumer.assign([TopicPartition(topic, partition, offset)])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                assert message.offset() == offset
                return message
        raise AssertionError(f"nothing at {topic}[{partition}]@{offset} after {timeout}s")
    finally:
        consumer.close()


def _headers(message: Message) -> dict[str, str]:
    return {name: value.decode() for name, value in message.headers() or []}


def _closed_port() -> int:
    return free_port()


@pytest.fixture
def isolated_broker_env(tmp_path: Path) -> Iterator[pytest.MonkeyPatch]:
    """A separate state dir and ports for broker tests that must not touch the session broker."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TRADEOPS_STATE_DIR", str(tmp_path / "state"))
        patch.delenv(broker.EXTERNAL_ENV, raising=False)
        patch.setenv("TRADEOPS__KAFKA__BOOTSTRAP_SERVERS", f"127.0.0.1:{free_port()}")
        patch.setenv("TRADEOPS__KAFKA__CONTROLLER_PORT", str(free_port()))
        settings.cache_clear()
        try:
            yield patch
        finally:
            broker.down()
    settings.cache_clear()


# --------------------------------------------------------------------------- tradeops publish (subprocess)


@pytest.mark.parametrize("event_type", sorted(REGISTRY))
def test_publish_cli_when_event_valid_then_consumed_back_identical(kafka_bootstrap: str, event_type: str) -> None:
    fields = REGISTRY[event_type].example

    result = _cli("publish", event_type.replace("_", "-"), "--json", json.dumps(fields))

    assert result.returncode == 0, result.stderr
    delivered = DELIVERED.search(result.stdout)
    assert delivered, result.stdout
    message = _read_at(kafka_bootstrap, delivered["topic"], int(delivered["partition"]), int(delivered["offset"]))
    event = parse_event(message.value())
    assert event.event_id == delivered["event_id"]
    assert event == build_event(event_type, {**fields, "event_id": event.event_id, "occurred_at": event.occurred_at})
    assert delivered["topic"] == getattr(settings().kafka.topics, REGISTRY[event_type].topic_attr)
    assert _headers(message)["event_type"] == event_type
    assert _headers(message)["schema_version"] == "1"


@pytest.mark.parametrize(
    ("event_type", "fields", "field"),
    [
        ("market-shock", {**REGISTRY["market_shock"].example, "move_pct": "250"}, "move_pct"),
        (
            "funding-rate-deviation",
            {
                **REGISTRY["funding_rate_deviation"].example,
                "rates": [
                    {"venue": "binance", "rate": "0.0001", "interval_hours": 8},
                    {"venue": "bybit", "rate": "0.0004", "interval_hours": 0},
                ],
            },
            "rates.1.interval_hours",
        ),
        ("capital-threshold", {**REGISTRY["capital_threshold"].example, "balance": "-5"}, "balance"),
    ],
)
def test_publish_cli_when_event_invalid_then_field_named_and_nothing_produced(
    kafka_bootstrap: str, event_type: str, fields: dict[str, object], field: str
) -> None:
    topic = getattr(settings().kafka.topics, REGISTRY[event_type.replace("-", "_")].topic_attr)
    before = end_offsets(kafka_bootstrap, topic)

    result = _cli("publish", event_type, "--json", json.dumps(fields))

    assert result.returncode == 2
    assert f"field '{field}'" in result.stderr
    assert "delivered" not in result.stdout
    assert end_offsets(kafka_bootstrap, topic) == before


def test_publish_cli_when_json_malformed_then_json_named_and_exit_2(kafka_bootstrap: str) -> None:
    result = _cli("publish", "critical-alert", "--json", "{reason: nope")

    assert result.returncode == 2
    assert "field '<json>'" in result.stderr


def test_publish_cli_when_broker_unreachable_then_exits_non_zero() -> None:
    fields = REGISTRY["critical_alert"].example

    started = time.monotonic()
    result = _cli(
        "publish",
        "critical-alert",
        "--json",
        json.dumps(fields),
        "--bootstrap",
        f"127.0.0.1:{_closed_port()}",
        "--timeout",
        "2",
    )

    assert result.returncode == 3
    assert "NOT delivered" in result.stderr
    assert "delivered critical-alert" not in result.stdout
    assert time.monotonic() - started < 30


def test_kafka_status_cli_when_broker_ready_then_exit_0_and_ready(kafka_bootstrap: str) -> None:
    result = _cli("kafka", "status")

    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"^ready\s+yes$", result.stdout, re.MULTILINE)
    assert kafka_bootstrap in result.stdout


# --------------------------------------------------------------------------- producer (in process)


def test_publish_when_delivered_then_report_matches_stored_message(kafka_bootstrap: str) -> None:
    event = build_event("market_shock", REGISTRY["market_shock"].example)

    report = publish(event, bootstrap=kafka_bootstrap)

    message = _read_at(kafka_bootstrap, report.topic, report.partition, report.offset)
    assert message.key() == b"BTC/USDT"
    assert parse_event(message.value()) == event
    assert report.event_id == event.event_id
    assert _headers(message)["event_id"] == event.event_id


def test_publish_when_same_symbol_then_same_partition_in_order(kafka_bootstrap: str) -> None:
    events = [
        build_event("market_shock", {**REGISTRY["market_shock"].example, "price": str(60000 + i)}) for i in range(3)
    ]

    reports = [publish(event, bootstrap=kafka_bootstrap) for event in events]

    assert len({report.partition for report in reports}) == 1
    assert [report.offset for report in reports] == sorted(report.offset for report in reports)


def test_publish_when_broker_unreachable_then_delivery_error() -> None:
    event = build_event("critical_alert", {"reason": "test"})

    with pytest.raises(DeliveryError, match="did not confirm"):
        publish(event, bootstrap=f"127.0.0.1:{_closed_port()}", timeout=1.0)


# --------------------------------------------------------------------------- topics and broker lifecycle


def test_ensure_topics_when_all_exist_then_creates_nothing(kafka_bootstrap: str) -> None:
    created = ensure_topics(kafka_bootstrap)

    consumer = _consumer(kafka_bootstrap)
    try:
        existing = set(consumer.list_topics(timeout=10).topics)
    finally:
        consumer.close()
    assert created == []
    assert set(topic_names()) <= existing


def test_up_when_already_running_then_same_broker_returned(kafka_bootstrap: str) -> None:
    first = broker.status()

    again = broker.up(wait_seconds=30)

    assert again.bootstrap == kafka_bootstrap
    assert again.started is False
    assert first.ready and first.running
    assert again.pid == first.pid
    assert broker.status().ready


def test_up_when_external_bootstrap_set_then_nothing_started_and_down_leaves_it(
    kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(broker.EXTERNAL_ENV, kafka_bootstrap)

    info = broker.up(wait_seconds=10)
    stopped = broker.down()

    assert info.external and info.pid is None and not info.started
    assert broker.bootstrap_servers() == kafka_bootstrap
    assert stopped is False
    assert broker.status().ready


def test_up_when_external_bootstrap_unreachable_then_broker_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(broker.EXTERNAL_ENV, f"127.0.0.1:{_closed_port()}")

    with pytest.raises(broker.BrokerError, match="does not answer"):
        broker.up(wait_seconds=1)


def test_status_when_pid_file_stale_then_not_running_and_file_removed(
    isolated_broker_env: pytest.MonkeyPatch,
) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    pid_file = broker.kafka_dir() / "broker.pid"
    pid_file.write_text(f"{dead.pid}\n")

    state = broker.status()

    assert state.running is False and state.ready is False and state.pid is None
    assert not pid_file.exists()


def test_down_when_pid_file_names_foreign_process_then_it_is_not_killed(
    isolated_broker_env: pytest.MonkeyPatch,
) -> None:
    (broker.kafka_dir() / "broker.pid").write_text(f"{os.getpid()}\n")

    stopped = broker.down()

    assert stopped is False
    assert not (broker.kafka_dir() / "broker.pid").exists()


def test_up_when_port_taken_then_clear_error(isolated_broker_env: pytest.MonkeyPatch) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        isolated_broker_env.setenv("TRADEOPS__KAFKA__BOOTSTRAP_SERVERS", f"127.0.0.1:{port}")
        settings.cache_clear()

        with pytest.raises(broker.BrokerError, match=f"port 127.0.0.1:{port} is already in use"):
            broker.up(wait_seconds=5)

    assert broker.running_pid() is None


def test_up_when_bootstrap_not_loopback_then_refused(isolated_broker_env: pytest.MonkeyPatch) -> None:
    isolated_broker_env.setenv("TRADEOPS__KAFKA__BOOTSTRAP_SERVERS", "0.0.0.0:19092")
    settings.cache_clear()

    with pytest.raises(broker.BrokerError, match=r"127\.0\.0\.1 only"):
        broker.up(wait_seconds=5)


@pytest.mark.slow
def test_up_when_restarted_after_down_then_data_kept(
    kafka_bootstrap: str, isolated_broker_env: pytest.MonkeyPatch
) -> None:
    first = broker.up(wait_seconds=120, stop_with_caller=True)
    ensure_topics(first.bootstrap)
    event = build_event("capital_threshold", REGISTRY["capital_threshold"].example)
    report = publish(event, bootstrap=first.bootstrap)

    assert broker.down() is True
    assert broker.status().running is False
    second = broker.up(wait_seconds=120, stop_with_caller=True)

    assert second.started and second.pid != first.pid
    assert second.cluster_id == first.cluster_id
    assert ensure_topics(second.bootstrap) == []
    message = _read_at(second.bootstrap, report.topic, report.partition, report.offset)
    assert parse_event(message.value()) == event


def test_kafka_up_cli_when_already_running_then_reports_it_and_exit_0(kafka_bootstrap: str) -> None:
    result = _cli("kafka", "up", "--wait", "30")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "started the Kafka broker" not in result.stdout
    assert "topics: all present" in result.stdout
    assert re.search(r"^ready\s+yes$", result.stdout, re.MULTILINE)


def test_ensure_installed_when_jars_complete_then_no_tool_needed(
    kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "")
    monkeypatch.delenv("JAVA_HOME", raising=False)

    libs = broker.ensure_installed()

    assert any(libs.glob("kafka_2.13-*.jar"))


def test_ensure_installed_when_java_missing_then_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(broker.LIBS_ENV, str(tmp_path / "libs"))
    monkeypatch.setenv("PATH", "")
    monkeypatch.delenv("JAVA_HOME", raising=False)

    with pytest.raises(broker.BrokerError, match="'java' not found on PATH"):
        broker.ensure_installed()

    assert not (tmp_path / "libs").exists()
