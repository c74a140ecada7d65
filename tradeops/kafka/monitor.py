"""A watcher's live health: heartbeat, last message, consumer lag, broker state, counters.

The consumer side feeds it librdkafka's error and statistics callbacks; the filter side feeds it
what it did with each batch. ``tick`` (called every few seconds) turns the broker state into at
most two log lines per outage, one ERROR when the broker has been unreachable for longer than
``broker_outage_alert_seconds`` and one WARNING when it is back, and returns the row
``tradeops kafka watchers`` shows (``WatcherHealth``).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from datetime import UTC, datetime
from typing import Any

from tradeops.kafka.watch_store import WatcherHealth

log = logging.getLogger(__name__)

# librdkafka error codes meaning "cannot reach the broker" (confluent_kafka.KafkaError names).
UNREACHABLE_ERRORS = frozenset({"_ALL_BROKERS_DOWN", "_TRANSPORT", "_RESOLVE", "_TIMED_OUT"})
# The same error is logged again at most this often (seconds).
_REPEAT_LOG_SECONDS = 60.0


def _now() -> datetime:
    return datetime.now(UTC)


class WatcherMonitor:
    """Thread-safe: the consumer thread, the filter and the heartbeat task all update it."""

    def __init__(self, *, watcher: str, topic: str, group_id: str, outage_alert_seconds: float) -> None:
        self.watcher = watcher
        self.topic = topic
        self.group_id = group_id
        self.outage_alert_seconds = outage_alert_seconds
        self.started_at = _now()
        self.process = f"{socket.gethostname()}:{os.getpid()}"
        self._lock = threading.Lock()
        self.last_message_at: datetime | None = None
        self.lag: int | None = None
        self.counts = {"messages": 0, "fired": 0, "dead_lettered": 0, "stale": 0, "conflicts": 0}
        self.last_error: str | None = None
        self._reachable: bool | None = None  # None: not known yet
        self._unreachable_since: datetime | None = None
        self._alerted = False
        self._logged: dict[str, float] = {}

    # consumer side -------------------------------------------------------------------------
    def on_error(self, name: str, text: str) -> None:
        """A librdkafka error callback (``name``: the KafkaError code name)."""
        if name in UNREACHABLE_ERRORS:
            self._mark_unreachable()
        self.note_error(f"kafka: {name}: {text}", key=name)

    def on_stats(self, stats_json: str) -> None:
        """librdkafka statistics: broker states and this consumer's lag."""
        try:
            stats = json.loads(stats_json)
        except ValueError:
            return
        brokers = [b for b in (stats.get("brokers") or {}).values() if int(b.get("nodeid", -1)) >= 0]
        if brokers:
            if any(b.get("state") == "UP" for b in brokers):
                self._mark_reachable()
            else:
                self._mark_unreachable()
        lag = _lag(stats, self.topic)
        if lag is not None:
            with self._lock:
                self.lag = lag

    def on_messages(self, count: int) -> None:
        with self._lock:
            self.counts["messages"] += count
            self.last_message_at = _now()
        self._mark_reachable()

    def on_reached(self) -> None:
        """Something came back from the broker (a poll, a commit): it is reachable."""
        self._mark_reachable()

    # filter side ---------------------------------------------------------------------------
    def count(self, **increments: int) -> None:
        with self._lock:
            for name, value in increments.items():
                self.counts[name] += value

    def note_error(self, text: str, *, key: str | None = None, level: int = logging.WARNING) -> None:
        """Record ``text`` as the last error; log it unless the same ``key`` was logged recently."""
        with self._lock:
            self.last_error = text[:2000]
            key = key or text[:80]
            now = time.monotonic()
            if now - self._logged.get(key, -_REPEAT_LOG_SECONDS) < _REPEAT_LOG_SECONDS:
                return
            self._logged[key] = now
        log.log(level, "Kafka watcher %s: %s", self.watcher, text)

    # broker state --------------------------------------------------------------------------
    def _mark_unreachable(self) -> None:
        with self._lock:
            if self._reachable is not False:
                self._reachable = False
                self._unreachable_since = self._unreachable_since or _now()

    def _mark_reachable(self) -> None:
        with self._lock:
            was_alerted, since = self._alerted, self._unreachable_since
            self._reachable = True
            self._unreachable_since = None
            self._alerted = False
        if was_alerted and since is not None:
            seconds = (_now() - since).total_seconds()
            log.warning(
                "Kafka watcher %s: the broker is reachable again after %.0f s; consuming resumes",
                self.watcher,
                seconds,
            )

    def broker_state(self, now: datetime | None = None) -> tuple[str, datetime | None]:
        """(``up`` | ``down`` | ``connecting``, unreachable since)."""
        now = now or _now()
        with self._lock:
            if self._reachable:
                return "up", None
            since = self._unreachable_since
        if since is not None and (now - since).total_seconds() > self.outage_alert_seconds:
            return "down", since
        return "connecting", since

    def tick(self, now: datetime | None = None) -> WatcherHealth:
        """Raise the outage alert once when due; the row to record as the heartbeat."""
        now = now or _now()
        state, since = self.broker_state(now)
        if state == "down":
            with self._lock:
                first = not self._alerted
                self._alerted = True
            if first and since is not None:
                log.error(
                    "Kafka watcher %s: the broker has been unreachable for %.0f s (since %s); no events "
                    "are read from %s until it is back",
                    self.watcher,
                    (now - since).total_seconds(),
                    since.isoformat(timespec="seconds"),
                    self.topic,
                )
        with self._lock:
            return WatcherHealth(
                watcher=self.watcher,
                topic=self.topic,
                group_id=self.group_id,
                started_at=self.started_at,
                heartbeat_at=now,
                last_message_at=self.last_message_at,
                lag=self.lag,
                broker_state=state,
                broker_down_since=since,
                last_error=self.last_error,
                process=self.process,
                **self.counts,
            )


def _lag(stats: dict[str, Any], topic: str) -> int | None:
    """The consumer's total lag on ``topic`` over its assigned partitions (None: not known)."""
    partitions = ((stats.get("topics") or {}).get(topic) or {}).get("partitions") or {}
    lags = [
        int(p["consumer_lag"])
        for key, p in partitions.items()
        if key != "-1" and p.get("fetch_state") not in (None, "none", "stopped") and int(p.get("consumer_lag", -1)) >= 0
    ]
    return sum(lags) if lags else None
