"""One watcher's handling of one poll batch: what the Airflow trigger runs (blocking code, run in
a worker thread), kept free of Airflow so it can be tested and reused.

``BatchHandler.handle(messages)``, in this order:

1. reads every message (``tradeops.kafka.reading``: never raises);
2. kill switch (``watcher.halts``): sets HALTED at once when a fresh, firing event not yet
   handled by the stop DAG is in the batch, or an unreadable message claims to be a
   ``critical_alert`` (fail safe) - one conditional database write, before anything else;
3. records each valid event's fingerprint: an ``event_id`` seen before with a different body is
   a conflict and goes to the dead-letter topic with the reason;
4. records stale events (older than their type's maximum age): visible, never fired;
5. returns the payload of the one asset event for the batch (every firing event), or None, and
   the batch's dead letters: the unreadable messages and the conflicts, which ``dead_letter``
   stores (one produce + flush for the batch) once the asset event is on its way.

Steps that touch the database or the broker are retried with backoff until they succeed (the
batch's offsets are committed only after ``handle`` returned and its asset event was stored), so
a database or broker hiccup delays a batch but never loses or half-handles it.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from tradeops import risk
from tradeops.config import Settings
from tradeops.errors import EventValidationError
from tradeops.event_inbox import unhandled
from tradeops.events import to_json
from tradeops.kafka.dead_letters import DeadLetterItem, DeadLetterWriter
from tradeops.kafka.monitor import WatcherMonitor
from tradeops.kafka.reading import Message, Reading, read_message
from tradeops.kafka.watch_store import Fingerprint, StaleEvent, first_fingerprints, record_stale
from tradeops.watchers import Watcher

log = logging.getLogger(__name__)

T = TypeVar("T")
Position = tuple[str, int, int]
_BACKOFF_INITIAL = 0.2
_BACKOFF_MAX = 5.0


class WatcherStopped(RuntimeError):
    """The watcher was stopped while a step of its batch was still failing."""


@dataclass(frozen=True, kw_only=True)
class BatchOutcome:
    payload: dict[str, Any] | None  # the asset event's payload; None when nothing fires
    fired: int
    dead_lettered: int
    stale: int
    conflicts: int
    letters: tuple[DeadLetterItem, ...] = ()


class BatchHandler:
    """Handles the batches of one watcher (one instance per running trigger)."""

    def __init__(
        self,
        *,
        watcher: Watcher,
        settings: Settings,
        writer: DeadLetterWriter,
        monitor: WatcherMonitor,
        sleep: Callable[[float], object] | None = None,
    ) -> None:
        self.watcher = watcher
        self.settings = settings
        self.writer = writer
        self.monitor = monitor
        self._closed = threading.Event()
        self._sleep = sleep or self._closed.wait  # a closed handler stops waiting at once

    def close(self) -> None:
        """Stop retrying: a step still failing ends with ``WatcherStopped`` (the batch is not
        committed, so it is read again by the next watcher)."""
        self._closed.set()

    def handle(self, messages: Sequence[Message], now: datetime | None = None) -> BatchOutcome:
        now = now or datetime.now(UTC)
        readings = [read_message(m, self.watcher, self.settings, now) for m in messages]
        if self.watcher.halts:
            kill_switch(readings, self.watcher, self._retry)
        valid = [r for r in readings if r.event is not None and r.digest is not None]
        conflicts = self._retry("record event fingerprints", lambda: self._conflicts(valid))
        stale = [r for r in valid if r.stale and _at(r) not in conflicts]
        if stale:
            self._retry("record stale events", lambda: record_stale([self._stale(r) for r in stale]))
            for r in stale:
                log.warning("%s: stale event %s at %s: %s", self.watcher.name, _id(r), r.message.position, r.reason)
        letters = [DeadLetterItem(message=r.message, error=r.error) for r in readings if r.error is not None]
        letters += [
            DeadLetterItem(message=r.message, error=conflicts[_at(r)], event_id=_id(r))
            for r in valid
            if _at(r) in conflicts
        ]
        firing = [r for r in valid if r.fire and not r.stale and _at(r) not in conflicts]
        self.monitor.count(fired=len(firing), stale=len(stale), conflicts=len(conflicts))
        return BatchOutcome(
            payload=self._payload(firing, messages) if firing else None,
            fired=len(firing),
            dead_lettered=len(letters),
            stale=len(stale),
            conflicts=len(conflicts),
            letters=tuple(letters),
        )

    def dead_letter(self, outcome: BatchOutcome) -> int:
        """Store the batch's dead letters (retried until the broker confirmed them). The trigger
        calls this after it handed over the batch's asset event and before it takes the next batch:
        the good events of a batch do not wait for its bad ones, and the batch is committed only
        once both are done."""
        if not outcome.letters:
            return 0
        stored = self._retry("dead-letter", lambda: self.writer.write(outcome.letters))
        self.monitor.count(dead_lettered=stored)
        return stored

    # steps ---------------------------------------------------------------------------------
    def _conflicts(self, valid: Sequence[Reading]) -> dict[Position, EventValidationError]:
        """The messages (by position) whose event id was first seen with another body."""
        prints = [
            Fingerprint(
                event_id=_id(r),
                event_type=r.event.event_type if r.event else "",
                digest=r.digest or "",
                topic=r.message.topic,
                partition=r.message.partition,
                offset=r.message.offset,
            )
            for r in valid
        ]
        first = first_fingerprints(prints)
        return {
            (fp.topic, fp.partition, fp.offset): _conflict(first[fp.event_id])
            for fp in prints
            if fp.event_id in first and first[fp.event_id].digest != fp.digest
        }

    def _stale(self, reading: Reading) -> StaleEvent:
        event = reading.event
        if event is None:
            raise ValueError(f"{reading.message.position} has no event to record as stale")
        return StaleEvent(
            watcher=self.watcher.name,
            event_id=event.event_id,
            event_type=event.event_type,
            occurred_at=event.occurred_at,
            age_seconds=float(reading.age_seconds or 0.0),
            topic=reading.message.topic,
            partition=reading.message.partition,
            offset=reading.message.offset,
        )

    def _payload(self, firing: Sequence[Reading], messages: Sequence[Message]) -> dict[str, Any]:
        return {
            "watcher": self.watcher.name,
            "events": [
                {
                    "event": json.loads(to_json(r.event)) if r.event is not None else None,
                    "reason": r.reason,
                    "kafka": {"topic": r.message.topic, "partition": r.message.partition, "offset": r.message.offset},
                }
                for r in firing
            ],
            "batch": {"messages": len(messages), "first": messages[0].position, "last": messages[-1].position},
        }

    def _retry(self, what: str, step: Callable[[], T]) -> T:
        """Run ``step`` until it succeeds; each failure is recorded (logged once a minute)."""
        delay = _BACKOFF_INITIAL
        failures = 0
        while True:
            try:
                result = step()
            except Exception as exc:
                if self._closed.is_set():
                    raise WatcherStopped(f"{self.watcher.name} stopped while '{what}' kept failing") from exc
                failures += 1
                self.monitor.note_error(
                    f"{what} failed ({failures}x, retrying in {delay:.1f} s): {type(exc).__name__}: {exc}",
                    key=f"retry:{what}",
                    level=logging.ERROR,
                )
                self._sleep(delay)
                delay = min(delay * 2, _BACKOFF_MAX)
                continue
            if failures:
                log.warning("%s: %s succeeded after %d failure(s)", self.watcher.name, what, failures)
            return result


def _once(what: str, step: Callable[[], T]) -> T:
    return step()


def kill_switch(
    readings: Sequence[Reading], watcher: Watcher, attempt: Callable[[str, Callable[[], Any]], Any] = _once
) -> bool:
    """Set HALTED if ``readings`` hold a fresh firing event the stop DAG has not handled, or an
    unreadable message claiming to be a critical alert; whether they did. ``attempt`` runs each
    database step (the batch handler retries until it succeeds; the consumer's fast lane tries once)."""
    firing = [r for r in readings if r.fire and not r.stale and r.event is not None]
    claimed = [r for r in readings if r.error is not None and r.claims_critical]
    if firing:
        ids = [_id(r) for r in firing]
        new = attempt("check handled events", lambda: unhandled(watcher.consumer, ids))
        firing = [r for r in firing if _id(r) in new]
    if not firing and not claimed:
        return False
    if firing:
        first = firing[0]
        why = f"{first.reason} (event {_id(first)} at {first.message.position})"
    else:
        first = claimed[0]
        why = f"unreadable critical alert at {first.message.position}: {first.error}"
    reason = f"kill switch, watcher {watcher.name}: {why}"[:2000]
    by = f"watcher:{watcher.name}"
    record = attempt("set HALTED", lambda: risk.ensure_halted(reason=reason, changed_by=by))
    if record is not None:
        log.critical("Trading HALTED by the Kafka watcher %s: %s", watcher.name, why)
    return True


def fast_halt(messages: Sequence[Message], watcher: Watcher, settings: Settings, monitor: WatcherMonitor) -> None:
    """The kill switch's fast lane, run by the consumer the moment a batch is polled, before the
    batch waits behind earlier ones (whose dead letters may take a while): one try, never raises;
    the batch handler repeats the check with retries when the batch's turn comes."""
    try:
        kill_switch([read_message(m, watcher, settings) for m in messages], watcher)
    except Exception as exc:
        monitor.note_error(f"fast halt check failed (the batch handler retries): {exc}", key="fast-halt")


def _at(reading: Reading) -> Position:
    return reading.message.topic, reading.message.partition, reading.message.offset


def _id(reading: Reading) -> str:
    return reading.event.event_id if reading.event is not None else ""


def _conflict(first: Fingerprint) -> EventValidationError:
    return EventValidationError(
        "event_id",
        f"event_id {first.event_id} reused with a different body (first seen as {first.event_type} at "
        f"{first.topic}[{first.partition}]@{first.offset}); this copy is not acted on",
    )
