"""The project's Kafka topics: created through the Admin API, idempotently."""

from __future__ import annotations

import logging
import time

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from tradeops.config import KafkaTopics, settings
from tradeops.errors import TradeopsError
from tradeops.kafka.broker import bootstrap_servers, client_config

log = logging.getLogger(__name__)


class TopicError(TradeopsError):
    """A topic could not be created or did not appear in the cluster metadata."""


def topic_names(topics: KafkaTopics | None = None) -> list[str]:
    """Every topic we use: each field of ``KafkaTopics`` (the event topics and the dead-letter topic)."""
    topics = topics or settings().kafka.topics
    return [str(getattr(topics, name)) for name in type(topics).model_fields]


def ensure_topics(
    bootstrap: str | None = None,
    topics: KafkaTopics | None = None,
    partitions: int | None = None,
    timeout: float = 30.0,
) -> list[str]:
    """Create the missing topics (replication factor 1); return the names created by this call."""
    bootstrap = bootstrap or bootstrap_servers()
    partitions = partitions or settings().kafka.partitions
    admin = AdminClient(client_config(bootstrap))
    try:
        existing = set(admin.list_topics(timeout=timeout).topics)
    except KafkaException as exc:
        raise TopicError(f"cannot list topics at {bootstrap}: {exc.args[0]}") from None
    missing = [name for name in topic_names(topics) if name not in existing]
    if not missing:
        return []
    requests = [NewTopic(name, num_partitions=partitions, replication_factor=1) for name in missing]
    created = []
    for name, future in admin.create_topics(requests, request_timeout=timeout).items():
        try:
            future.result(timeout=timeout)
        except KafkaException as exc:
            error = exc.args[0]
            if error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            raise TopicError(f"cannot create topic '{name}' at {bootstrap}: {error.str()}") from None
        created.append(name)
    _wait_for_leaders(admin, created, timeout)
    log.info("created Kafka topics %s (%d partitions)", created, partitions)
    return created


def _wait_for_leaders(admin: AdminClient, names: list[str], timeout: float) -> None:
    """Wait until every partition of the new topics has a leader, so producing works at once."""
    deadline = time.monotonic() + timeout
    pending = set(names)
    while pending:
        metadata = admin.list_topics(timeout=timeout).topics
        pending = {
            name
            for name in pending
            if name not in metadata
            or metadata[name].error is not None
            or any(p.leader < 0 for p in metadata[name].partitions.values())
        }
        if not pending:
            return
        if time.monotonic() > deadline:
            raise TopicError(f"topics {sorted(pending)} have no partition leader after {timeout:.0f}s")
        time.sleep(0.2)
