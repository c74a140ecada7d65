"""Kafka -> Airflow event bridge: assets whose watchers consume Kafka at least once.

``TradeopsEventTrigger`` builds on the provider's ``KafkaSharedStreamTrigger`` (one long-lived
consumer per connection, offsets committed only after the asset events are persisted). For every
message it:

- validates it against the event schemas; a malformed, unknown or misrouted message is produced
  to the dead-letter topic WITH the reason (headers ``reason``/``source_*``), counted once in the
  project database, then rejected so the stream moves on (never a poison pill, never silent);
- fires an asset event (payload: the validated event, the reason it fired, its Kafka position)
  when the watcher's condition holds (thresholds from config); other valid events are skipped.

This module is imported by the triggerer, so it lives in an installed package, not in ``dags/``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Hashable
from dataclasses import dataclass
from typing import Any

from airflow.providers.apache.kafka.triggers.shared_stream import (
    KafkaBrokerPayload,
    KafkaSharedStreamProducer,
    KafkaSharedStreamTrigger,
)
from airflow.sdk import Asset, AssetWatcher
from airflow.triggers.base import TriggerEvent
from airflow.triggers.shared_stream import reject_shared_stream_event
from asgiref.sync import sync_to_async

from tradeops.conditions import condition
from tradeops.config import settings
from tradeops.errors import EventValidationError
from tradeops.event_inbox import record_dead_letter
from tradeops.events import Event, parse_event, to_json, topic_for
from tradeops.watchers import WATCHERS, Watcher

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RawMessage:
    """A Kafka message as the subscribers see it: its value and where it sits in the log."""

    value: Any
    topic: str
    partition: int
    offset: int


class _PositionedProducer(KafkaSharedStreamProducer):
    """The provider's producer, broadcasting each message with its topic/partition/offset."""

    async def open_stream(self) -> AsyncIterator[tuple[Any, KafkaBrokerPayload]]:
        async for value, payload in super().open_stream():
            yield RawMessage(value, payload.topic, payload.partition, payload.offset), payload


def classify_message(raw: RawMessage, watcher: Watcher) -> tuple[Event | None, EventValidationError | None]:
    """The valid event in ``raw``, or why it belongs in the dead-letter topic."""
    try:
        event = parse_event(raw.value if raw.value is not None else b"")
    except EventValidationError as exc:
        return None, exc
    expected = topic_for(event.event_type)
    if expected != raw.topic:
        return None, EventValidationError("event_type", f"'{event.event_type}' belongs on topic '{expected}'")
    return event, None


def dead_letter(raw: RawMessage, error: EventValidationError, watcher: Watcher, bootstrap: str) -> bool:
    """Produce ``raw`` to the dead-letter topic with the reason, once per message (True if this call did)."""
    from tradeops.kafka.producer import publish_dead_letter

    first = record_dead_letter(
        topic=raw.topic,
        partition=raw.partition,
        offset=raw.offset,
        field=error.field,
        reason=str(error),
        watcher=watcher.name,
    )
    if first:
        value = raw.value if isinstance(raw.value, bytes) else str(raw.value or "").encode()
        publish_dead_letter(
            value,
            str(error),
            raw.topic,
            source_partition=raw.partition,
            source_offset=raw.offset,
            key=f"{raw.topic}/{raw.partition}",  # one source partition stays in order in the DLQ
            bootstrap=bootstrap,
        )
    log.warning("Dead-lettered %s[%d]@%d (%s): %s", raw.topic, raw.partition, raw.offset, watcher.name, error)
    return first


class TradeopsEventTrigger(KafkaSharedStreamTrigger):
    """Fire one asset event per valid message that meets the watcher's condition.

    :param watcher: a name in ``tradeops.watchers.WATCHERS`` (topic, condition, consumer group)
    """

    def __init__(self, *, watcher: str, topics: list[str], kafka_config_id: str, poll_timeout: float = 0.05) -> None:
        super().__init__(topics=topics, kafka_config_id=kafka_config_id, poll_timeout=poll_timeout, dlq_topic=None)
        self.watcher = watcher

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{__name__}.TradeopsEventTrigger",
            {
                "watcher": self.watcher,
                "topics": self.topics,
                "kafka_config_id": self.kafka_config_id,
                "poll_timeout": self.poll_timeout,
            },
        )

    def shared_stream_key(self) -> Hashable:
        return "tradeops-kafka", tuple(self.topics), self.kafka_config_id

    @classmethod
    def create_shared_stream_producer(cls, kwargs: dict[str, Any]) -> KafkaSharedStreamProducer:
        return _PositionedProducer(
            topics=kwargs["topics"], kafka_config_id=kwargs["kafka_config_id"], poll_timeout=kwargs["poll_timeout"]
        )

    async def _bootstrap(self) -> str:
        from airflow.providers.apache.kafka.hooks.consume import KafkaConsumerHook

        hook = KafkaConsumerHook(topics=self.topics, kafka_config_id=self.kafka_config_id)
        connection = await hook.aget_connection(self.kafka_config_id)
        return str(connection.extra_dejson["bootstrap.servers"])

    async def filter_shared_stream(self, shared_stream: AsyncIterator[Any]) -> AsyncIterator[TriggerEvent]:
        watcher = WATCHERS[self.watcher]
        check = condition(watcher.condition)
        loaded = settings()
        bootstrap = await self._bootstrap()
        async for raw in shared_stream:
            event, error = classify_message(raw, watcher)
            if error is not None:
                await sync_to_async(dead_letter)(raw, error, watcher, bootstrap)
                reject_shared_stream_event()
                continue
            decision = check(event, loaded)
            if not decision.fire:
                log.debug("%s skips %s: %s", watcher.name, event.event_id, decision.reason)
                continue
            log.info("%s fires for %s: %s", watcher.name, event.event_id, decision.reason)
            yield TriggerEvent(
                {
                    "event": json.loads(to_json(event)),
                    "reason": decision.reason,
                    "watcher": watcher.name,
                    "kafka": {"topic": raw.topic, "partition": raw.partition, "offset": raw.offset},
                }
            )


def event_asset(watcher_name: str) -> Asset:
    """The asset an event-triggered DAG schedules on, watched by ``watcher_name``.

    Reads the topic names from config (a file read at parse time; no connection or DB access).
    """
    watcher = WATCHERS[watcher_name]
    topic = watcher.topic(settings().kafka.topics)
    trigger = TradeopsEventTrigger(watcher=watcher.name, topics=[topic], kafka_config_id=watcher.connection_id)
    return Asset(
        name=f"tradeops_{watcher.name}",
        uri=f"tradeops://kafka/{topic}/{watcher.condition}",
        group="kafka_events",
        watchers=[AssetWatcher(name=f"{watcher.name}_watcher", trigger=trigger)],
        extra={"topic": topic, "condition": watcher.condition},
    )
