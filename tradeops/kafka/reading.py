"""Reading one Kafka message for a watcher: never raises, whatever the bytes.

``read_message`` turns a message into a ``Reading``: a valid event and whether it fires, or why it
belongs in the dead-letter topic, or that it is stale. Size and JSON nesting are capped before
anything is parsed, so a hostile message costs a bounded, small amount of work; any exception from
decoding, parsing, validation or the condition becomes a dead-letter reason instead of escaping.

A message on ``risk-alerts`` that says it is a ``critical_alert`` but cannot be read is flagged
``claims_critical``: the stop-loss watcher halts trading on it (a broken publisher must not be able
to silence the kill switch).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tradeops.conditions import condition
from tradeops.config import Settings
from tradeops.errors import EventValidationError
from tradeops.events import Event, parse_event, to_json, topic_for
from tradeops.watchers import Watcher

CRITICAL_ALERT = "critical_alert"
# A JSON string literal (possessive, so an unterminated quote cannot make the regex backtrack).
_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_CLAIMS_CRITICAL = re.compile(rb'"event_type"\s*:\s*"critical_alert"')

Headers = tuple[tuple[str, bytes], ...]


@dataclass(frozen=True, kw_only=True)
class Message:
    """A Kafka message as a watcher received it."""

    topic: str
    partition: int
    offset: int
    value: bytes | None
    key: bytes | None = None
    headers: Headers = ()
    timestamp_ms: int | None = None

    @property
    def position(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"

    @classmethod
    def from_kafka(cls, raw: Any) -> Message:
        """A confluent-kafka message (one without an error) as the watchers see it."""
        kind, stamp = raw.timestamp()
        return cls(
            topic=str(raw.topic()),
            partition=int(raw.partition()),
            offset=int(raw.offset()),
            value=raw.value(),
            key=raw.key(),
            headers=tuple((name, value or b"") for name, value in (raw.headers() or [])),
            timestamp_ms=stamp if kind else None,
        )

    def header(self, name: str) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None


@dataclass(frozen=True, kw_only=True)
class Reading:
    """What a watcher makes of one message; exactly one of ``event`` / ``error`` is set."""

    message: Message
    event: Event | None = None
    error: EventValidationError | None = None
    fire: bool = False
    reason: str = ""
    stale: bool = False
    age_seconds: float | None = None
    claims_critical: bool = False
    digest: str | None = None  # SHA-256 of the validated event's canonical JSON


def nested_deeper_than(data: bytes, limit: int) -> bool:
    """Whether the JSON in ``data`` nests deeper than ``limit`` (brackets inside strings ignored)."""
    brackets = _STRING.sub(b'""', data).translate(None, _NOT_BRACKETS)
    if len(brackets) <= limit:
        return False  # it cannot nest deeper than it has brackets
    depth = 0
    for byte in brackets:
        depth += 1 if byte in (0x5B, 0x7B) else -1
        if depth > limit:
            return True
    return False


def claims_critical(message: Message, data: Any = None) -> bool:
    """Whether ``message`` says it is a critical alert (header, parsed type, or the raw text)."""
    if message.header("event_type") == CRITICAL_ALERT.encode():
        return True
    if isinstance(data, dict):
        return data.get("event_type") == CRITICAL_ALERT
    return bool(message.value and _CLAIMS_CRITICAL.search(message.value[:65_536]))


def event_digest(event: Event) -> str:
    return hashlib.sha256(to_json(event).encode()).hexdigest()


def precheck(message: Message, settings: Settings) -> EventValidationError | None:
    """Size and nesting, before any parser sees the bytes (also used by the agents' news reader)."""
    limits = settings.kafka.watch
    value = message.value
    if value is None or not value.strip():
        return EventValidationError("<value>", "empty message (no value)")
    if len(value) > limits.max_message_bytes:
        limit = limits.max_message_bytes
        return EventValidationError("<size>", f"{len(value)} bytes exceed kafka.watch.max_message_bytes ({limit})")
    if nested_deeper_than(value, limits.max_nesting_depth):
        return EventValidationError(
            "<json>", f"JSON nested deeper than kafka.watch.max_nesting_depth ({limits.max_nesting_depth})"
        )
    return None


def parse_message(message: Message) -> tuple[Event | None, EventValidationError | None]:
    """The event in ``message``, or why it is unreadable (an event of a type that belongs on another
    topic included); never raises."""
    try:
        event = parse_event(message.value or b"")
    except EventValidationError as exc:
        return None, exc
    except Exception as exc:  # anything a parser can raise on hostile input is a reason, not a crash
        return None, EventValidationError("<json>", f"unreadable: {type(exc).__name__}: {str(exc)[:300]}")
    expected = topic_for(event.event_type)
    if expected != message.topic:
        return None, EventValidationError("event_type", f"'{event.event_type}' belongs on topic '{expected}'")
    return event, None


def _claims_critical_after_error(message: Message, error: EventValidationError) -> bool:
    if error.field in ("<size>", "<json>", "<value>"):
        return claims_critical(message)
    try:
        data = json.loads(message.value or b"")
    except Exception:
        return claims_critical(message)
    return claims_critical(message, data)


def staleness(event_type: str, occurred_at: datetime, settings: Settings, now: datetime) -> str | None:
    """Why an event of ``event_type`` from ``occurred_at`` is too old to act on, or None."""
    max_age = settings.kafka.watch.max_event_age_seconds.get(event_type)
    age = (now - occurred_at).total_seconds()
    if max_age is None or age <= max_age:
        return None
    return f"{age:.0f} s old; {event_type} events older than {max_age} s never fire (kafka.watch.max_event_age_seconds)"


def read_message(message: Message, watcher: Watcher, settings: Settings, now: datetime | None = None) -> Reading:
    """Read ``message`` for ``watcher``; never raises (a failure anywhere is a dead-letter reason)."""
    try:
        return _read(message, watcher, settings, now)
    except Exception as exc:
        error = EventValidationError("<message>", f"unreadable: {type(exc).__name__}: {str(exc)[:300]}")
        on_alerts = message.topic == settings.kafka.topics.risk_alerts
        return Reading(message=message, error=error, claims_critical=on_alerts and claims_critical(message))


def _read(message: Message, watcher: Watcher, settings: Settings, now: datetime | None) -> Reading:
    error = precheck(message, settings)
    event = None
    if error is None:
        event, error = parse_message(message)
    if error is not None or event is None:
        error = error or EventValidationError("<json>", "no event")
        on_alerts = message.topic == settings.kafka.topics.risk_alerts
        return Reading(
            message=message, error=error, claims_critical=on_alerts and _claims_critical_after_error(message, error)
        )
    digest = event_digest(event)
    now = now or datetime.now(UTC)
    age = (now - event.occurred_at).total_seconds()
    too_old = staleness(event.event_type, event.occurred_at, settings, now)
    if too_old is not None:
        return Reading(message=message, event=event, stale=True, age_seconds=age, digest=digest, reason=too_old)
    try:
        decision = condition(watcher.condition)(event, settings)
    except Exception as exc:  # a condition must not kill the watcher: the message is dead-lettered
        return Reading(
            message=message,
            error=EventValidationError("<condition>", f"{watcher.condition} raised {type(exc).__name__}: {exc}"),
            digest=digest,
        )
    return Reading(
        message=message, event=event, fire=decision.fire, reason=decision.reason, age_seconds=age, digest=digest
    )
