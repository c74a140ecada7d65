"""Dead letters from a watcher: one long-lived producer, produced and confirmed before counted.

``DeadLetterWriter.write`` takes a batch of unreadable messages and, for each one that no watcher
stored yet:

1. records it ``pending`` in ``dead_letters`` (the first watcher to do so produces it; another
   watcher of the same topic waits for that copy instead of producing a second one, and takes
   over if it is not stored within ``takeover_seconds``);
2. produces a copy to the dead-letter topic with the original key and headers plus ours
   (``dlq.reason``, ``dlq.field``, ``dlq.watcher``, ``dlq.source_topic``, ``dlq.source_partition``,
   ``dlq.source_offset``, ``dlq.source_timestamp``, ``dlq.dead_lettered_at``, ``dlq.original_size``,
   ``dlq.original_sha256``, ``dlq.truncated``). A value the topic cannot hold whole is cut to fit;
   the size and digest of the original stay in the headers;
3. flushes once for the whole batch and marks the rows ``stored`` with where the copies went.

A copy the broker did not confirm raises ``DeliveryError``: the caller retries the batch (its
offsets are not committed until then), so a message is never lost and never counted unstored.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import KafkaError, Producer
from confluent_kafka import Message as KafkaMessage

from tradeops.config import Settings
from tradeops.errors import EventValidationError
from tradeops.event_inbox import (
    DeadLetterClaim,
    StoredCopy,
    claim_dead_letters,
    mark_dead_letters_stored,
    still_pending,
    take_over_dead_letters,
)
from tradeops.kafka.broker import client_config
from tradeops.kafka.producer import DeliveryError
from tradeops.kafka.reading import Message

log = logging.getLogger(__name__)

# Room kept for our own headers and the record's framing inside the size budget.
_OVERHEAD = 4096


@dataclass(frozen=True, kw_only=True)
class DeadLetterItem:
    message: Message
    error: EventValidationError
    event_id: str | None = None

    def claim(self) -> DeadLetterClaim:
        m = self.message
        return DeadLetterClaim(
            topic=m.topic,
            partition=m.partition,
            offset=m.offset,
            field=self.error.field,
            reason=str(self.error),
            event_id=self.event_id,
        )


@dataclass(frozen=True, kw_only=True)
class Copy:
    """The record that goes to the dead-letter topic for one message."""

    value: bytes
    key: bytes | None
    headers: list[tuple[str, bytes]]
    size: int
    sha256: str
    truncated: bool


def _headers_size(headers: Sequence[tuple[str, bytes]]) -> int:
    return sum(len(name) + len(value or b"") for name, value in headers)


def build_copy(item: DeadLetterItem, watcher: str, max_bytes: int) -> Copy:
    """The dead-letter record for ``item``, cut to ``max_bytes`` when the original does not fit."""
    m = item.message
    value = m.value or b""
    digest = hashlib.sha256(value).hexdigest()
    original = list(m.headers)
    budget = max_bytes - _OVERHEAD - len(m.key or b"")
    dropped_headers = 0
    if _headers_size(original) > budget // 2:  # hostile headers must not crowd out the value
        dropped_headers, original = len(original), []
    room = budget - _headers_size(original)
    truncated = len(value) > room
    ours: list[tuple[str, bytes]] = [
        ("dlq.reason", str(item.error).encode()[:2000]),
        ("dlq.field", item.error.field.encode()[:250]),
        ("dlq.watcher", watcher.encode()),
        ("dlq.source_topic", m.topic.encode()),
        ("dlq.source_partition", str(m.partition).encode()),
        ("dlq.source_offset", str(m.offset).encode()),
        ("dlq.dead_lettered_at", datetime.now(UTC).isoformat().encode()),
        ("dlq.original_size", str(len(value)).encode()),
        ("dlq.original_sha256", digest.encode()),
        ("dlq.truncated", b"true" if truncated else b"false"),
    ]
    if m.timestamp_ms is not None:
        ours.append(("dlq.source_timestamp", str(m.timestamp_ms).encode()))
    if dropped_headers:
        ours.append(("dlq.headers_dropped", str(dropped_headers).encode()))
    return Copy(
        value=value[: max(room, 0)] if truncated else value,
        key=m.key,
        headers=original + ours,
        size=len(value),
        sha256=digest,
        truncated=truncated,
    )


class DeadLetterWriter:
    """One watcher's dead-letter producer (idempotent, ``acks=all``), kept for its lifetime."""

    def __init__(
        self,
        *,
        watcher: str,
        bootstrap: str,
        settings: Settings,
        takeover_seconds: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.watcher = watcher
        self.topic = settings.kafka.topics.dead_letter
        self.max_bytes = settings.kafka.watch.dead_letter_max_bytes
        self.timeout = settings.kafka.delivery_timeout_seconds
        self.takeover_seconds = takeover_seconds
        self._sleep = sleep
        self.bootstrap = bootstrap
        self._producer = Producer(
            client_config(
                bootstrap,
                **{
                    "client.id": f"tradeops-dlq-{watcher}",
                    "acks": "all",
                    "enable.idempotence": True,
                    "linger.ms": 2,
                    "message.max.bytes": self.max_bytes + 65_536,
                    "message.timeout.ms": max(1, int(self.timeout * 1000)),
                },
            )
        )

    def write(self, items: Sequence[DeadLetterItem]) -> int:
        """Dead-letter ``items`` (each once across watchers); how many copies this call stored."""
        if not items:
            return 0
        by_position = {(i.message.topic, i.message.partition, i.message.offset): i for i in items}
        mine, others = claim_dead_letters([i.claim() for i in by_position.values()], self.watcher)
        stored = self._store([by_position[(c.topic, c.partition, c.offset)] for c in mine])
        if others:
            stored += self._wait_for_others(others, by_position)
        return stored

    def _wait_for_others(self, others: list[DeadLetterClaim], by_position: dict[Any, DeadLetterItem]) -> int:
        """Another watcher is producing these: wait for its copies, take over the ones it drops."""
        deadline = time.monotonic() + self.takeover_seconds
        pending = others
        while pending and time.monotonic() < deadline:
            self._sleep(0.02)
            pending = still_pending(pending)
        if not pending:
            return 0
        taken = take_over_dead_letters(pending, self.watcher)
        log.warning("%s takes over %d dead letter(s) another watcher left pending", self.watcher, len(taken))
        return self._store([by_position[(c.topic, c.partition, c.offset)] for c in taken])

    def _store(self, items: Sequence[DeadLetterItem]) -> int:
        if not items:
            return 0
        outcomes: dict[int, tuple[KafkaError | None, KafkaMessage | None]] = {}
        copies = [build_copy(item, self.watcher, self.max_bytes) for item in items]
        for index, copy in enumerate(copies):

            def on_delivery(error: KafkaError | None, message: KafkaMessage, index: int = index) -> None:
                outcomes[index] = (error, message)

            def send(copy: Copy = copy, on_delivery: Any = on_delivery) -> None:
                self._producer.produce(
                    self.topic, value=copy.value, key=copy.key, headers=copy.headers, on_delivery=on_delivery
                )

            try:
                try:
                    send()
                except BufferError:  # the local queue is full: drain it once, then send
                    self._producer.flush(self.timeout)
                    send()
            except Exception as exc:  # KafkaException: e.g. the broker refused the size
                outcomes[index] = (exc, None)  # type: ignore[assignment]
        self._producer.flush(self.timeout + 1.0)
        stored = []
        failures = []
        for index, (item, copy) in enumerate(zip(items, copies, strict=True)):
            error, message = outcomes.get(index, (None, None))
            if message is None or error is not None:
                failures.append(f"{item.message.position}: {error if error is not None else 'no delivery report'}")
                continue
            stored.append(
                StoredCopy(
                    topic=item.message.topic,
                    partition=item.message.partition,
                    offset=item.message.offset,
                    size=copy.size,
                    sha256=copy.sha256,
                    truncated=copy.truncated,
                    dlq_partition=int(message.partition() or 0),
                    dlq_offset=int(message.offset() or 0),
                )
            )
        changed = mark_dead_letters_stored(stored) if stored else 0
        reasons = {(i.message.topic, i.message.partition, i.message.offset): i.error for i in items}
        for copy in stored:
            log.warning(
                "Dead-lettered %s[%d]@%d (%s)%s: %s",
                copy.topic,
                copy.partition,
                copy.offset,
                self.watcher,
                f" truncated from {copy.size} bytes" if copy.truncated else "",
                reasons[(copy.topic, copy.partition, copy.offset)],
            )
        if failures:
            raise DeliveryError(
                f"the broker at {self.bootstrap} did not confirm {len(failures)} dead letter(s) to "
                f"'{self.topic}': {'; '.join(failures[:3])}"
            )
        return changed
