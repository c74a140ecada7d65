"""Kafka -> Airflow event bridge: assets whose watchers consume Kafka at least once, in batches.

``TradeopsEventTrigger`` runs in the triggerer through Airflow's shared-stream manager in ack
mode: ``WatcherStream`` owns one consumer per watcher (its own consumer group) and yields one
*poll batch* at a time (up to ``kafka.watch.batch_max_messages`` messages, collected for at most
``batch_max_ms``); the trigger hands the batch to ``tradeops.kafka.bridge.BatchHandler`` (in a
worker thread: halt first, fingerprints, stale events, dead letters) and fires ONE asset event
carrying every firing event of the batch. The offsets of a batch are committed only after that
asset event is stored (or, when nothing fired, after the batch was fully handled), so a crash
anywhere redelivers; the DAGs claim each event id, so a redelivery never acts twice.

No message can break or stall a watcher: reading never raises, database and broker steps retry
with backoff, and librdkafka's errors and statistics feed a ``WatcherMonitor`` whose heartbeat
(lag, broker up/down, counters) is recorded for ``tradeops kafka watchers``.

This module is imported by the triggerer, so it lives in an installed package, not in ``dags/``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple, TypeVar

from airflow.sdk import Asset, AssetWatcher
from airflow.triggers.base import BaseEventTrigger, TriggerEvent
from airflow.triggers.shared_stream import AdvanceItem, SharedStreamProducer

from tradeops.config import Settings, settings
from tradeops.kafka.reading import Message
from tradeops.watchers import WATCHERS, Watcher

log = logging.getLogger(__name__)

T = TypeVar("T")
TopicPartitionKey = tuple[str, int]
# A commit the broker does not take is retried this long before the stream restarts (redelivery).
_COMMIT_RETRY_SECONDS = 15.0
_MONITORS: dict[tuple[str, str], Any] = {}


def watcher_monitor(watcher: Watcher, loaded: Settings) -> Any:
    """The process-wide ``WatcherMonitor`` of ``watcher`` on its configured topic (shared by its
    stream and its trigger; its counters add up over the process's life, restarts included)."""
    from tradeops.kafka.monitor import WatcherMonitor

    topic = watcher.topic(loaded.kafka.topics)
    monitor = _MONITORS.get((watcher.name, topic))
    if monitor is None:
        monitor = WatcherMonitor(
            watcher=watcher.name,
            topic=topic,
            group_id=watcher.group_id,
            outage_alert_seconds=loaded.kafka.watch.broker_outage_alert_seconds,
        )
        _MONITORS[(watcher.name, topic)] = monitor
    return monitor


class BatchPositions(NamedTuple):
    """Where a batch sits in the log: first and last offset per (topic, partition)."""

    first: dict[TopicPartitionKey, int]
    last: dict[TopicPartitionKey, int]


def batch_positions(messages: Sequence[Message]) -> BatchPositions:
    first: dict[TopicPartitionKey, int] = {}
    last: dict[TopicPartitionKey, int] = {}
    for m in messages:
        key = (m.topic, m.partition)
        first[key] = min(first.get(key, m.offset), m.offset)
        last[key] = max(last.get(key, m.offset), m.offset)
    return BatchPositions(first, last)


def commit_plan(
    items: Sequence[tuple[BatchPositions, bool]], floors: dict[TopicPartitionKey, int]
) -> tuple[dict[TopicPartitionKey, int], dict[TopicPartitionKey, int]]:
    """(offsets to commit, offsets to seek back to) for resolved batches in order; ``floors``
    (updated in place) holds, per partition, the first offset that must be read again before
    anything after it may be committed. ``items``: (positions, held) where held means the batch
    was not handled (a failed or absent subscriber) and must be redelivered."""
    commits: dict[TopicPartitionKey, int] = {}
    seeks: dict[TopicPartitionKey, int] = {}
    for positions, held in items:
        if held:
            for key, offset in positions.first.items():
                floors[key] = min(floors.get(key, offset), offset)
                seeks[key] = floors[key]
            continue
        for key, last in positions.last.items():
            floor = floors.get(key)
            if floor is not None and positions.first[key] <= floor <= last:
                del floors[key]  # the held offset was read again and handled
            commits[key] = max(commits.get(key, 0), last + 1)
    for key, floor in floors.items():
        if key in commits:
            commits[key] = min(commits[key], floor)
    return commits, seeks


class WatcherStream(SharedStreamProducer):
    """The broker side of one watcher: its consumer, poll batches, commits, health."""

    def __init__(self, *, watcher: str, topics: Sequence[str], kafka_config_id: str, poll_timeout: float) -> None:
        self.watcher = WATCHERS[watcher]
        self.topics = list(topics)
        self.kafka_config_id = kafka_config_id
        self.poll_timeout = poll_timeout
        self.settings = settings()
        self.monitor = watcher_monitor(self.watcher, self.settings)
        self._consumer: Any = None
        self._executor: ThreadPoolExecutor | None = None
        self._floors: dict[TopicPartitionKey, int] = {}
        self._heartbeat: asyncio.Task[None] | None = None

    async def _run(self, call: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            raise RuntimeError(f"watcher {self.watcher.name}: the stream is not open")
        return await asyncio.get_running_loop().run_in_executor(self._executor, call, *args)

    async def open_stream(self) -> AsyncIterator[tuple[Any, Any]]:
        config = await connection_config(self.kafka_config_id)
        self.monitor.group_id = str(config.get("group.id", self.watcher.group_id))
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"kafka-{self.watcher.name}")
        self._consumer = await self._run(self._open_consumer, config)
        self._heartbeat = asyncio.create_task(self._heartbeats(), name=f"tradeops-heartbeat-{self.watcher.name}")
        log.info("Kafka watcher %s consuming %s as group %s", self.watcher.name, self.topics, config.get("group.id"))
        while True:
            messages = await self._run(self._next_batch)
            if messages:
                yield messages, batch_positions(messages)

    def _open_consumer(self, config: dict[str, Any]) -> Any:
        from confluent_kafka import Consumer

        from tradeops.kafka.broker import client_config

        if str(config.get("enable.auto.commit", True)).strip().lower() != "false":
            raise ValueError(
                f"Kafka connection {self.kafka_config_id!r} must set enable.auto.commit=false: offsets are "
                "committed only after the asset events are stored"
            )
        monitor = self.monitor
        consumer = Consumer(
            client_config(
                str(config["bootstrap.servers"]),
                **{
                    **config,
                    "client.id": f"tradeops-watcher-{self.watcher.name}",
                    "statistics.interval.ms": int(self.settings.kafka.watch.heartbeat_seconds * 1000),
                    "error_cb": lambda error: monitor.on_error(_error_name(error), error.str()),
                    "stats_cb": monitor.on_stats,
                },
            )
        )
        # a completed group join means the broker answers
        consumer.subscribe(self.topics, on_assign=lambda _consumer, _partitions: monitor.on_reached())
        return consumer

    def _next_batch(self) -> list[Message]:
        """Block up to ``poll_timeout`` for a first message, then take what is already arriving,
        up to ``batch_max_messages`` or ``batch_max_ms``."""
        limits = self.settings.kafka.watch
        first = self._consumer.poll(self.poll_timeout)
        if first is None:
            return []
        raw = [first]
        deadline = time.monotonic() + limits.batch_max_ms / 1000
        while len(raw) < limits.batch_max_messages:
            more = self._consumer.consume(num_messages=limits.batch_max_messages - len(raw), timeout=0)
            if not more:
                break
            raw.extend(more)
            if time.monotonic() >= deadline:
                break
        messages = [m for m in (self._message(r) for r in raw) if m is not None]
        if messages:
            self.monitor.on_messages(len(messages))
            if self.watcher.halts:
                from tradeops.kafka.bridge import fast_halt

                fast_halt(messages, self.watcher, self.settings, self.monitor)
        return messages

    def _message(self, raw: Any) -> Message | None:
        error = raw.error()
        if error is not None:
            if error.fatal():
                raise RuntimeError(f"Kafka consumer of watcher {self.watcher.name}: fatal error {error}")
            self.monitor.on_error(_error_name(error), error.str())
            return None
        return Message.from_kafka(raw)

    async def _heartbeats(self) -> None:
        from tradeops.kafka.watch_store import save_health

        every = self.settings.kafka.watch.heartbeat_seconds
        while True:
            try:
                await asyncio.to_thread(save_health, self.monitor.tick())
            except Exception as exc:  # the heartbeat must never stop the watcher
                self.monitor.note_error(f"heartbeat not recorded: {type(exc).__name__}: {exc}", key="heartbeat")
            await asyncio.sleep(every)

    def get_advance_lane(self, broker_payload: Any) -> Hashable:
        return None  # a batch spans partitions: one ordered lane per watcher

    async def advance(self, batch: Sequence[AdvanceItem]) -> None:
        items = [(item.broker_payload, _held(item)) for item in batch]
        commits, seeks = commit_plan(items, self._floors)
        if commits:
            await self._run(self._commit, commits)
        if seeks:
            log.warning("Kafka watcher %s reads %s again (not handled)", self.watcher.name, seeks)
            await self._run(self._seek, seeks)

    def _commit(self, commits: dict[TopicPartitionKey, int]) -> None:
        from confluent_kafka import TopicPartition

        offsets = [TopicPartition(topic, partition, offset) for (topic, partition), offset in commits.items()]
        deadline = time.monotonic() + _COMMIT_RETRY_SECONDS
        while True:
            try:
                self._consumer.commit(offsets=offsets, asynchronous=False)
                self.monitor.on_reached()
                return
            except Exception as exc:
                if time.monotonic() > deadline:
                    raise
                self.monitor.note_error(f"commit not taken, retrying: {exc}", key="commit")
                time.sleep(0.5)

    def _seek(self, seeks: dict[TopicPartitionKey, int]) -> None:
        from confluent_kafka import TopicPartition

        for (topic, partition), offset in seeks.items():
            self._consumer.seek(TopicPartition(topic, partition, offset))

    async def aclose(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        consumer, self._consumer = self._consumer, None
        if consumer is not None and self._executor is not None:
            try:
                await asyncio.get_running_loop().run_in_executor(self._executor, consumer.close)
            except Exception:
                log.warning("Kafka watcher %s: closing the consumer failed", self.watcher.name, exc_info=True)
        if self._executor is not None:
            self._executor.shutdown(wait=False)


def _held(item: AdvanceItem) -> bool:
    outcome = item.outcome
    return outcome.failed > 0 or (outcome.acked == 0 and outcome.rejected == 0)


def _error_name(error: Any) -> str:
    try:
        return str(error.name())
    except Exception:
        return str(error.code())


async def connection_config(conn_id: str) -> dict[str, Any]:
    """The librdkafka settings of Airflow connection ``conn_id`` (its JSON extra)."""
    from airflow.providers.apache.kafka.hooks.consume import KafkaConsumerHook

    connection = await KafkaConsumerHook(topics=[], kafka_config_id=conn_id).aget_connection(conn_id)
    config = dict(connection.extra_dejson)
    if "bootstrap.servers" not in config:
        raise ValueError(f"Kafka connection {conn_id!r} sets no bootstrap.servers")
    return config


class TradeopsEventTrigger(BaseEventTrigger):
    """Fire one asset event per poll batch, carrying every event of it that meets the condition.

    :param watcher: a name in ``tradeops.watchers.WATCHERS`` (topic, condition, consumer group)
    """

    def __init__(self, *, watcher: str, topics: list[str], kafka_config_id: str, poll_timeout: float = 0.05) -> None:
        super().__init__()
        self.watcher = watcher
        self.topics = sorted(topics)
        self.kafka_config_id = kafka_config_id
        self.poll_timeout = poll_timeout

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
        return "tradeops-kafka", self.watcher, tuple(self.topics), self.kafka_config_id

    @classmethod
    def create_shared_stream_producer(cls, kwargs: dict[str, Any]) -> SharedStreamProducer:
        return WatcherStream(
            watcher=kwargs["watcher"],
            topics=kwargs["topics"],
            kafka_config_id=kwargs["kafka_config_id"],
            poll_timeout=kwargs["poll_timeout"],
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        raise NotImplementedError("TradeopsEventTrigger runs only through the triggerer's shared-stream manager")
        yield  # pragma: no cover - marks this as an async generator

    async def filter_shared_stream(self, shared_stream: AsyncIterator[Any]) -> AsyncIterator[TriggerEvent]:
        from tradeops.kafka.bridge import BatchHandler
        from tradeops.kafka.dead_letters import DeadLetterWriter

        watcher = WATCHERS[self.watcher]
        loaded = settings()
        monitor = watcher_monitor(watcher, loaded)
        config = await connection_config(self.kafka_config_id)
        loop = asyncio.get_running_loop()
        executor = ThreadPoolExecutor(1, thread_name_prefix=f"tradeops-{watcher.name}")
        handler: BatchHandler | None = None
        try:
            writer = await loop.run_in_executor(
                executor,
                lambda: DeadLetterWriter(
                    watcher=watcher.name, bootstrap=str(config["bootstrap.servers"]), settings=loaded
                ),
            )
            handler = BatchHandler(watcher=watcher, settings=loaded, writer=writer, monitor=monitor)
            async for messages in shared_stream:
                outcome = await self._handle(loop, executor, handler.handle, messages, monitor)
                if outcome.payload is not None:
                    log.info("%s fires for %d event(s) of a batch of %d", watcher.name, outcome.fired, len(messages))
                    yield TriggerEvent(outcome.payload)
                # still inside the batch's binding window: it is committed only after this too
                await self._handle(loop, executor, handler.dead_letter, outcome, monitor)
        finally:
            if handler is not None:
                handler.close()  # a step still retrying in the thread ends; its batch is read again
            executor.shutdown(wait=False)

    @staticmethod
    async def _handle(
        loop: asyncio.AbstractEventLoop,
        executor: ThreadPoolExecutor,
        step: Callable[[Any], Any],
        argument: Any,
        monitor: Any,
    ) -> Any:
        """Run a step of the batch handler; a bug in it is retried (never skipped: the batch would
        be committed past) until the shared stream's ack timeout redelivers it."""
        delay = 0.5
        while True:
            try:
                return await loop.run_in_executor(executor, step, argument)
            except Exception as exc:
                monitor.note_error(
                    f"batch handling failed, retrying: {type(exc).__name__}: {exc}", key="handle", level=logging.ERROR
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)


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
