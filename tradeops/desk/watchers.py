"""The Kafka watchers as they last recorded themselves, and whether the broker answers now.

``alive``: the heartbeat is at most ``stale_after_seconds`` old. A watcher records one every
``kafka.watch.heartbeat_seconds``; it counts as silent after ``SILENT_AFTER_HEARTBEATS`` (3) of
those, the rule ``tradeops kafka watchers`` applies (one missed beat is a busy triggerer, three
are a stopped one). ``problems`` says in words what needs a look, as that command does. Every
watcher the suite defines is listed, one that never recorded a heartbeat included (with nulls).

The broker check is a real metadata request to the configured bootstrap servers
(``KAFKA_BOOTSTRAP_SERVERS`` when set, else ``kafka.bootstrap_servers``), bounded by the timeout.
"""

from __future__ import annotations

import math
import os
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from tradeops.cli.watch_cmds import SILENT_AFTER_HEARTBEATS, watcher_problems
from tradeops.config import Settings
from tradeops.db import utcnow
from tradeops.kafka.watch_store import WatcherHealth, watcher_healths
from tradeops.model import to_jsonable
from tradeops.watchers import WATCHERS

_COUNTERS = ("messages", "fired", "dead_lettered", "stale", "conflicts")


def snapshot(settings: Settings, timeout_seconds: float = 3, *, engine: Engine | None = None) -> dict[str, Any]:
    every = settings.kafka.watch.heartbeat_seconds
    recorded = {health.watcher: health for health in watcher_healths(engine)}
    now = utcnow()
    lines = []
    for name in sorted(set(WATCHERS) | set(recorded)):
        health = recorded.get(name)
        line = _recorded(health, now, every) if health is not None else _never_ran(name, settings)
        lines.append({**line, "problems": watcher_problems(health, now, every)})
    return {
        "broker": broker_status(settings, timeout_seconds),
        "stale_after_seconds": stale_after_seconds(settings),
        "watchers": lines,
    }


def stale_after_seconds(settings: Settings) -> int:
    return math.ceil(SILENT_AFTER_HEARTBEATS * settings.kafka.watch.heartbeat_seconds)


def broker_status(settings: Settings, timeout_seconds: float) -> dict[str, Any]:
    """Ask the broker for the cluster's metadata; up when it answers with a broker in it."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    from tradeops.kafka.broker import EXTERNAL_ENV, client_config

    bootstrap = os.environ.get(EXTERNAL_ENV, "").strip() or settings.kafka.bootstrap_servers
    error = None
    try:
        metadata = AdminClient(client_config(bootstrap)).list_topics(timeout=timeout_seconds)
        if not metadata.brokers:
            error = "the cluster's metadata lists no broker"
    except KafkaException as exc:
        error = f"no metadata within {timeout_seconds:g} s: {exc}"[:1000]
    return {"bootstrap": bootstrap, "up": error is None, "error": error, "checked_at": to_jsonable(utcnow())}


def _recorded(health: WatcherHealth, now: datetime, every: float) -> dict[str, Any]:
    alive = (now - health.heartbeat_at).total_seconds() <= SILENT_AFTER_HEARTBEATS * every
    return {
        "watcher": health.watcher,
        "topic": health.topic,
        "group_id": health.group_id,
        "process": health.process,
        "started_at": to_jsonable(health.started_at),
        "heartbeat_at": to_jsonable(health.heartbeat_at),
        "alive": alive,
        "last_message_at": to_jsonable(health.last_message_at),
        "lag": health.lag,
        "broker_state": health.broker_state,
        "broker_down_since": to_jsonable(health.broker_down_since),
        **{name: int(getattr(health, name)) for name in _COUNTERS},
        "last_error": health.last_error,
    }


def _never_ran(name: str, settings: Settings) -> dict[str, Any]:
    watcher = WATCHERS[name]
    return {
        "watcher": name,
        "topic": watcher.topic(settings.kafka.topics),
        "group_id": watcher.group_id,
        "process": None,
        "started_at": None,
        "heartbeat_at": None,
        "alive": False,
        "last_message_at": None,
        "lag": None,
        "broker_state": None,
        "broker_down_since": None,
        **dict.fromkeys(_COUNTERS, 0),
        "last_error": None,
    }
