"""Publish events; a write counts only once the broker confirmed it (dead letters:
``tradeops.kafka.dead_letters``).

The producer (one per process, kept) is idempotent with ``acks=all``; every call waits for its delivery report,
so a return value means "stored by the broker" and anything else raises ``DeliveryError``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from tradeops.config import KafkaTopics, settings
from tradeops.errors import TradeopsError
from tradeops.events import EventBase, partition_key, to_json, topic_for
from tradeops.kafka.broker import bootstrap_servers, client_config

log = logging.getLogger(__name__)

Headers = list[tuple[str, bytes]]
# Errors meaning "no answer in time" rather than "the broker said no".
_UNCONFIRMED = (
    KafkaError._PURGE_QUEUE,
    KafkaError._PURGE_INFLIGHT,
    KafkaError._MSG_TIMED_OUT,
    KafkaError._TIMED_OUT,
    KafkaError._TRANSPORT,
    KafkaError._ALL_BROKERS_DOWN,
)


class DeliveryError(TradeopsError):
    """The broker did not confirm a write within the timeout, or refused it.

    What happens next: the message may or may not be stored; publish again (consumers drop
    duplicates by ``event_id``), or stop and check the broker.
    """


@dataclass(frozen=True, kw_only=True)
class DeliveryReport:
    """Where the broker stored a message."""

    topic: str
    partition: int
    offset: int
    key: str | None = None
    event_id: str | None = None


def publish(
    event: EventBase,
    bootstrap: str | None = None,
    topics: KafkaTopics | None = None,
    timeout: float | None = None,
    timestamp: datetime | None = None,
) -> DeliveryReport:
    """Write ``event`` to its topic, keyed for ordering (symbol, else venue, else scope).

    ``timestamp`` sets the message's Kafka timestamp (default: now), for readers that seek by time.
    """
    topic = topic_for(event.event_type, topics)
    key = partition_key(event)
    headers: Headers = [
        ("event_type", event.event_type.encode()),
        ("schema_version", str(event.schema_version).encode()),
        ("event_id", event.event_id.encode()),
    ]
    stamp = None if timestamp is None else int(timestamp.timestamp() * 1000)
    report = _produce(topic, to_json(event).encode(), key, headers, bootstrap, timeout, stamp)
    log.info(
        "published %s %s to %s[%d]@%d",
        event.event_type,
        event.event_id,
        topic,
        report.partition,
        report.offset,
    )
    return DeliveryReport(
        topic=report.topic, partition=report.partition, offset=report.offset, key=key, event_id=event.event_id
    )


def _producer_config(bootstrap: str, timeout: float) -> dict[str, Any]:
    return client_config(
        bootstrap,
        **{
            "acks": "all",
            "enable.idempotence": True,
            "message.timeout.ms": max(1, int(timeout * 1000)),
            "linger.ms": 0,
        },
    )


# One producer per (process, broker, timeout), kept: a new idempotent producer spends up to half a
# second getting its producer id before its first write, which the kill switch cannot afford.
# Keyed by pid because librdkafka handles do not survive a fork.
_PRODUCERS: dict[tuple[int, str, float], Producer] = {}
_PRODUCERS_LOCK = threading.Lock()


def _producer(bootstrap: str, timeout: float) -> Producer:
    key = (os.getpid(), bootstrap, timeout)
    with _PRODUCERS_LOCK:
        producer = _PRODUCERS.get(key)
        if producer is None:
            producer = _PRODUCERS[key] = Producer(_producer_config(bootstrap, timeout))
        return producer


def _discard(bootstrap: str, timeout: float, producer: Producer) -> None:
    """Drop a producer whose write went unconfirmed; the next call starts a fresh one."""
    with _PRODUCERS_LOCK:
        if _PRODUCERS.get((os.getpid(), bootstrap, timeout)) is producer:
            del _PRODUCERS[(os.getpid(), bootstrap, timeout)]
    producer.purge()
    producer.poll(0)


def _produce(
    topic: str,
    value: bytes,
    key: str | None,
    headers: Headers,
    bootstrap: str | None,
    timeout: float | None,
    timestamp_ms: int | None = None,
) -> DeliveryReport:
    bootstrap = bootstrap or bootstrap_servers()
    timeout = timeout or settings().kafka.delivery_timeout_seconds
    producer = _producer(bootstrap, timeout)
    outcome: dict[str, Any] = {}
    delivered = threading.Event()

    def on_delivery(error: KafkaError | None, message: Message) -> None:
        outcome.setdefault("error", error)
        outcome.setdefault("message", message)
        delivered.set()

    deadline = time.monotonic() + timeout + 1.0
    try:
        producer.produce(
            topic,
            value=value,
            key=key.encode() if key else None,
            headers=headers,
            on_delivery=on_delivery,
            timestamp=timestamp_ms or 0,
        )
        while not delivered.is_set() and time.monotonic() < deadline:
            producer.poll(0.05)  # serves this call's delivery report (and any other caller's)
    except (KafkaException, BufferError) as exc:
        _discard(bootstrap, timeout, producer)
        raise DeliveryError(f"cannot produce to '{topic}' at {bootstrap}: {exc}") from None
    if "message" not in outcome:
        _discard(bootstrap, timeout, producer)
    return _report(outcome, topic, key, bootstrap, timeout)


def _report(outcome: dict[str, Any], topic: str, key: str | None, bootstrap: str, timeout: float) -> DeliveryReport:
    message: Message | None = outcome.get("message")
    error: KafkaError | None = outcome.get("error")
    if message is None or (error is not None and error.code() in _UNCONFIRMED):
        detail = f" ({error.str()})" if error is not None else ""
        raise DeliveryError(
            f"the broker at {bootstrap} did not confirm the write to '{topic}' within {timeout:g}s{detail}"
        )
    if error is not None:
        raise DeliveryError(f"the broker at {bootstrap} refused the write to '{topic}': {error.str()}")
    return DeliveryReport(
        topic=str(message.topic()), partition=int(message.partition()), offset=int(message.offset()), key=key
    )
