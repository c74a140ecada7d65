"""Headlines for the trading agents: the ``Headline`` value, the ``NewsSource`` protocol every source
meets, the Kafka source reading the ``market_news`` topic, and ``open_news_source`` (``news.source``).

On the wire a headline is a ``news_headline`` event (``tradeops.events``), keyed by its news symbol,
its Kafka timestamp its ``published_at``. ``KafkaNewsSource`` uses no consumer group: every agent run
reads its window again, from the offsets the broker finds for ``since`` up to the end offsets it had
when the read began. A message it cannot read is skipped with a WARNING and dead-lettered through
``tradeops.kafka.dead_letters``, which records each message position once in the project database,
so a bad message read by every run (two at once included) is copied to the dead-letter topic once.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
import socket
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, cast

from tradeops.errors import ConfigError, EventValidationError, NewsUnavailableError

if TYPE_CHECKING:
    from confluent_kafka import Consumer

    from tradeops.agents.settings import NewsConfig
    from tradeops.config import Settings
    from tradeops.events import NewsHeadline
    from tradeops.kafka.producer import DeliveryReport
    from tradeops.kafka.reading import Message

log = logging.getLogger(__name__)

# event_id = uuid5(NEWS_NAMESPACE, headline id): one headline is one event, however often published.
NEWS_NAMESPACE = uuid.UUID("6f1d3c52-9a57-4d8e-8a43-3f0c2b7e5d19")
# Dead letters of a news reader carry ``agents-news:<host>:<pid>:<random>`` (``dlq.watcher``,
# ``dead_letters.watcher``): one name per reader, so two runs reading the same bad message at once do
# not both take it for their own; the second waits for the first one's copy instead.
READER = "agents-news"
# Producers' clocks may run ahead (``tradeops.events.MAX_CLOCK_SKEW``): the seek starts this much
# before ``since`` so a message stamped before its own ``published_at`` is not missed.
_SEEK_MARGIN = timedelta(minutes=5)


@dataclass(frozen=True, kw_only=True)
class Headline:
    """One headline about ``symbol`` (a news symbol: TSLA, IWM, BTC); ``published_at`` is aware."""

    id: str
    symbol: str
    title: str
    source: str
    published_at: datetime

    def __post_init__(self) -> None:
        if self.published_at.tzinfo is None:
            raise ValueError(f"headline {self.id}: published_at must be timezone-aware")
        object.__setattr__(self, "published_at", self.published_at.astimezone(UTC))

    def to_dict(self) -> dict[str, str]:
        return {
            "id": self.id,
            "symbol": self.symbol,
            "title": self.title,
            "source": self.source,
            "published_at": self.published_at.isoformat(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Headline:
        return cls(
            id=str(data["id"]),
            symbol=str(data["symbol"]),
            title=str(data["title"]),
            source=str(data["source"]),
            published_at=datetime.fromisoformat(str(data["published_at"])),
        )


class NewsSource(Protocol):
    """Where an agent's headlines come from (``news.source``: ``kafka`` or ``module:ClassName``)."""

    def headlines(self, symbol: str, *, since: datetime, until: datetime, limit: int) -> list[Headline]:
        """Headlines about ``symbol`` with ``since <= published_at <= until``, one per id, at most
        ``limit`` (the newest ones), oldest first. Raises ``NewsUnavailableError`` when the source
        does not answer."""
        ...


def select_headlines(
    candidates: Iterable[Headline], symbol: str, *, since: datetime, until: datetime, limit: int
) -> list[Headline]:
    """The ``NewsSource`` contract applied to ``candidates``: the first of each id, ``symbol``
    only, inside the window, the newest ``limit``, oldest first (ties broken by id)."""
    seen: set[str] = set()
    kept = []
    for headline in candidates:
        if headline.id in seen:
            continue
        seen.add(headline.id)
        if headline.symbol == symbol and since <= headline.published_at <= until:
            kept.append(headline)
    kept.sort(key=lambda h: (h.published_at, h.id))
    return kept[-limit:] if limit > 0 else []


def _check_window(since: datetime, until: datetime, limit: int) -> None:
    if since.tzinfo is None or until.tzinfo is None:
        raise ValueError("since and until must be timezone-aware")
    if since > until:
        raise ValueError(f"since ({since.isoformat()}) is after until ({until.isoformat()})")
    if limit <= 0:
        raise ValueError(f"limit must be positive, got {limit}")


# --------------------------------------------------------------------------- events


def headline_event(headline: Headline) -> NewsHeadline:
    """The ``news_headline`` event of ``headline`` (a pure function of it); raises
    ``EventValidationError`` naming the field a bad headline gets wrong."""
    from tradeops.events import MAX_CLOCK_SKEW, build_event

    if headline.published_at > datetime.now(UTC) + MAX_CLOCK_SKEW:  # before the envelope's occurred_at says so
        raise EventValidationError("published_at", f"lies in the future ({headline.published_at.isoformat()})")
    fields = {
        "event_id": str(uuid.uuid5(NEWS_NAMESPACE, headline.id)),
        "occurred_at": headline.published_at.isoformat(),
        "source": headline.source,
        "headline_id": headline.id,
        "symbol": headline.symbol,
        "title": headline.title,
        "published_at": headline.published_at.isoformat(),
    }
    return cast("NewsHeadline", build_event("news_headline", fields))


def headline_of(event: NewsHeadline) -> Headline:
    return Headline(
        id=event.headline_id,
        symbol=event.symbol,
        title=event.title,
        source=event.source,
        published_at=event.published_at,
    )


def publish_headline(headline: Headline, settings: Settings, bootstrap: str | None = None) -> DeliveryReport:
    """Publish ``headline`` to ``market_news`` (Kafka timestamp = ``published_at``), confirmed."""
    from tradeops.kafka.producer import publish

    return publish(
        headline_event(headline),
        bootstrap=bootstrap or _bootstrap(settings),
        topics=settings.kafka.topics,
        timeout=settings.kafka.delivery_timeout_seconds,
        timestamp=headline.published_at,
    )


def _bootstrap(settings: Settings) -> str:
    from tradeops.kafka.broker import EXTERNAL_ENV

    return os.environ.get(EXTERNAL_ENV, "").strip() or settings.kafka.bootstrap_servers


def read_headline(message: Message, settings: Settings) -> Headline | EventValidationError:
    """The headline in ``message``, or why it cannot be one; never raises."""
    from tradeops.events import NewsHeadline
    from tradeops.kafka.reading import parse_message, precheck

    error = precheck(message, settings)
    if error is not None:
        return error
    event, error = parse_message(message)
    if error is not None:
        return error
    if not isinstance(event, NewsHeadline):
        return EventValidationError("event_type", f"'{getattr(event, 'event_type', None)}' is not a news_headline")
    return headline_of(event)


# --------------------------------------------------------------------------- the Kafka source


def _transient(error: Any) -> bool:
    """Whether a broker error on reading offsets goes away by itself (a partition between leaders)."""
    from confluent_kafka import KafkaError

    codes = {
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError._WAIT_COORD,
        KafkaError.REQUEST_TIMED_OUT,
    }
    return bool(getattr(error, "retriable", lambda: False)()) or getattr(error, "code", lambda: None)() in codes


class KafkaNewsSource:
    """Headlines from ``kafka.topics.market_news``; no consumer group, nothing committed.

    ``timeout_seconds`` bounds each broker request and the whole read: past it the read raises
    ``NewsUnavailableError`` rather than returning part of the window.
    """

    def __init__(self, settings: Settings, *, bootstrap: str | None = None, timeout_seconds: float = 10.0) -> None:
        if timeout_seconds <= 0:
            raise ConfigError("news.options.timeout_seconds", f"must be positive, got {timeout_seconds}")
        self.settings = settings
        self.topic = settings.kafka.topics.market_news
        self.bootstrap = bootstrap or _bootstrap(settings)
        self.timeout = float(timeout_seconds)
        self.reader = f"{READER}:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    def headlines(self, symbol: str, *, since: datetime, until: datetime, limit: int) -> list[Headline]:
        _check_window(since, until, limit)
        found: list[Headline] = []
        bad: list[tuple[Message, EventValidationError]] = []
        for message in self._messages(since - _SEEK_MARGIN):
            read = read_headline(message, self.settings)
            if isinstance(read, Headline):
                found.append(read)
            else:
                log.warning("skipped unreadable message %s on %s: %s", message.position, self.topic, read)
                bad.append((message, read))
        if bad:
            self._dead_letter(bad)
        return select_headlines(found, symbol, since=since, until=until, limit=limit)

    def _messages(self, start: datetime) -> list[Message]:
        """Every message from the first one stamped at or after ``start`` up to the end offsets
        the broker reports now, in partition and offset order."""
        from confluent_kafka import KafkaException

        consumer = self._consumer()
        deadline = time.monotonic() + self.timeout
        try:
            while True:
                try:
                    ends, starts = self._bounds(consumer, start)
                    break
                except KafkaException as exc:
                    # A leader moving (or a topic just created) answers NOT_LEADER for a moment;
                    # that is asked again until the read's deadline, anything else is an answer.
                    if not _transient(exc.args[0]) or time.monotonic() + 0.2 > deadline:
                        raise
                    log.info("'%s' at %s: %s; asking again", self.topic, self.bootstrap, exc.args[0])
                    time.sleep(0.2)
            return self._read(consumer, starts, ends)
        except KafkaException as exc:
            raise NewsUnavailableError(
                f"the Kafka broker at {self.bootstrap} did not answer a read of '{self.topic}': {exc.args[0]}"
            ) from None
        finally:
            consumer.close()

    def _consumer(self) -> Consumer:
        from confluent_kafka import Consumer

        from tradeops.kafka.broker import client_config

        return Consumer(
            client_config(
                self.bootstrap,
                **{
                    "client.id": "tradeops-agents-news",
                    # The client refuses to start without one; assign() never joins it and nothing commits.
                    "group.id": f"tradeops-news-reader-{uuid.uuid4().hex}",
                    "enable.auto.commit": False,
                    "enable.auto.offset.store": False,
                    "socket.timeout.ms": max(1000, int(self.timeout * 1000)),
                },
            )
        )

    def _bounds(self, consumer: Consumer, start: datetime) -> tuple[dict[int, int], dict[int, int]]:
        from confluent_kafka import TopicPartition

        metadata = consumer.list_topics(self.topic, timeout=self.timeout).topics.get(self.topic)
        if metadata is None or metadata.error is not None:
            detail = metadata.error.str() if metadata is not None and metadata.error is not None else "not found"
            raise NewsUnavailableError(
                f"topic '{self.topic}' is not readable at {self.bootstrap} ({detail}); `tradeops kafka up` creates it"
            )
        partitions = sorted(metadata.partitions)
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(self.topic, p), timeout=self.timeout, cached=False)[1]
            for p in partitions
        }
        stamp = int(start.timestamp() * 1000)
        found = consumer.offsets_for_times([TopicPartition(self.topic, p, stamp) for p in partitions], self.timeout)
        starts = {tp.partition: tp.offset for tp in found if 0 <= tp.offset < ends[tp.partition]}
        return ends, starts

    def _read(self, consumer: Consumer, starts: dict[int, int], ends: dict[int, int]) -> list[Message]:
        from confluent_kafka import TopicPartition

        from tradeops.kafka.reading import Message

        if not starts:
            return []
        consumer.assign([TopicPartition(self.topic, p, offset) for p, offset in starts.items()])
        pending = dict(starts)
        found: list[Message] = []
        deadline = time.monotonic() + self.timeout
        while pending:
            if time.monotonic() > deadline:
                raise NewsUnavailableError(
                    f"reading '{self.topic}' at {self.bootstrap} did not finish within {self.timeout:g}s "
                    f"(partitions {sorted(pending)} not read to their end)"
                )
            for raw in consumer.consume(num_messages=500, timeout=0.2):
                if raw.error() is None and raw.partition() in pending and raw.offset() < ends[raw.partition()]:
                    found.append(Message.from_kafka(raw))
            positions = consumer.position([TopicPartition(self.topic, p) for p in pending])
            pending = {tp.partition: tp.offset for tp in positions if tp.offset < ends[tp.partition]}
        return sorted(found, key=lambda m: (m.partition, m.offset))

    def _dead_letter(self, bad: list[tuple[Message, EventValidationError]]) -> None:
        """Copy unreadable messages to the dead-letter topic, each once across runs (a message another
        reader is copying is waited for, and taken over if it is not stored within 10 s); a failure
        here is logged and left for the next read (the message is still in its window then)."""
        from sqlalchemy.exc import SQLAlchemyError

        from tradeops.kafka.dead_letters import DeadLetterItem, DeadLetterWriter
        from tradeops.kafka.producer import DeliveryError

        items = [DeadLetterItem(message=message, error=error) for message, error in bad]
        try:
            writer = DeadLetterWriter(watcher=self.reader, bootstrap=self.bootstrap, settings=self.settings)
            writer.write(items)
        except (DeliveryError, SQLAlchemyError) as exc:
            log.error(
                "could not dead-letter %d unreadable message(s) of '%s' (the next read tries again): %s",
                len(items),
                self.topic,
                exc,
            )


# --------------------------------------------------------------------------- news.source


def open_news_source(config: NewsConfig, settings: Settings) -> NewsSource:
    """The configured source: ``KafkaNewsSource`` for ``kafka``, else ``ClassName(settings=settings,
    **options)`` of ``package.module:ClassName``. Raises ``ConfigError`` naming ``news.source``
    when it cannot be imported, ``news.options`` when the options do not fit its constructor."""
    factory: Any
    if config.source == "kafka":
        factory = KafkaNewsSource
    else:
        module_name, _, class_name = config.source.partition(":")
        try:
            factory = getattr(importlib.import_module(module_name), class_name)
        except Exception as exc:  # any failure while importing the module is a bad news.source
            raise ConfigError("news.source", f"cannot import '{config.source}': {type(exc).__name__}: {exc}") from None
    try:
        inspect.signature(factory).bind(settings=settings, **config.options)
    except (TypeError, ValueError) as exc:
        raise ConfigError("news.options", f"{config.source} does not take these options: {exc}") from None
    source = factory(settings=settings, **config.options)
    if not callable(getattr(source, "headlines", None)):
        raise ConfigError("news.source", f"'{config.source}' has no headlines(symbol, since=, until=, limit=) method")
    return cast(NewsSource, source)
