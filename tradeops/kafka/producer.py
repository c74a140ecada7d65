"""Publish events; a write counts only once the broker confirmed it (dead letters:
``tradeops.kafka.dead_letters``).

The producer is idempotent with ``acks=all``; every call flushes and waits for the delivery report,
so a return value means "stored by the broker" and anything else raises ``DeliveryError``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
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
) -> DeliveryReport:
    """Write ``event`` to its topic, keyed for ordering (symbol, else venue, else scope)."""
    topic = topic_for(event.event_type, topics)
    key = partition_key(event)
    headers: Headers = [
        ("event_type", event.event_type.encode()),
        ("schema_version", str(event.schema_version).encode()),
        ("event_id", event.event_id.encode()),
    ]
    report = _produce(topic, to_json(event).encode(), key, headers, bootstrap, timeout)
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


def _produce(
    topic: str, value: bytes, key: str | None, headers: Headers, bootstrap: str | None, timeout: float | None
) -> DeliveryReport:
    bootstrap = bootstrap or bootstrap_servers()
    timeout = timeout or settings().kafka.delivery_timeout_seconds
    producer = Producer(_producer_config(bootstrap, timeout))
    outcome: dict[str, Any] = {}

    def on_delivery(error: KafkaError | None, message: Message) -> None:
        outcome.setdefault("error", error)
        outcome.setdefault("message", message)

    try:
        producer.produce(
            topic, value=value, key=key.encode() if key else None, headers=headers, on_delivery=on_delivery
        )
        producer.flush(timeout + 1.0)
    except (KafkaException, BufferError) as exc:
        raise DeliveryError(f"cannot produce to '{topic}' at {bootstrap}: {exc}") from None
    finally:
        if "message" not in outcome:
            producer.purge()
            producer.poll(0)
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
