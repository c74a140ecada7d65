"""The Kafka watchers that start event-triggered DAGs: what each reads and when it fires.

Each watcher consumes one topic in its own consumer group, through its own Airflow connection
(type ``kafka``; ``enable.auto.commit=false`` and ``auto.offset.reset=earliest`` as the
at-least-once shared-stream trigger requires). ``connection_env`` renders those connections as
``AIRFLOW_CONN_*`` variables for the local stack; Kubernetes gets the same from a Secret.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from tradeops.conditions import CONDITIONS
from tradeops.config import KafkaTopics


@dataclass(frozen=True)
class Watcher:
    name: str
    topic_attr: str  # attribute of KafkaTopics
    condition: str  # key of tradeops.conditions.CONDITIONS
    description: str
    consumer: str  # the DAG that claims this watcher's events (tradeops.event_inbox)
    # The kill switch: set HALTED the moment a firing event (or an unreadable message claiming
    # to be a critical alert) is read, before its asset event is even stored.
    halts: bool = False

    def __post_init__(self) -> None:
        if self.condition not in CONDITIONS:
            raise ValueError(f"watcher {self.name}: unknown condition {self.condition}")
        if self.topic_attr not in KafkaTopics.model_fields:
            raise ValueError(f"watcher {self.name}: unknown topic {self.topic_attr}")

    @property
    def group_id(self) -> str:
        return f"tradeops-{self.name.replace('_', '-')}"

    @property
    def connection_id(self) -> str:
        return f"tradeops_kafka_{self.name}"

    def topic(self, topics: KafkaTopics) -> str:
        return str(getattr(topics, self.topic_attr))


WATCHERS: dict[str, Watcher] = {
    w.name: w
    for w in (
        Watcher(
            "stop_loss_alerts",
            "risk_alerts",
            "critical_alert",
            "critical risk alerts",
            consumer="emergency_stop_loss_saga",
            halts=True,
        ),
        Watcher(
            "stop_loss_shocks",
            "market_events",
            "extreme_shock",
            "extreme market shocks",
            consumer="emergency_stop_loss_saga",
            halts=True,
        ),
        Watcher(
            "rebalance_capital",
            "capital_events",
            "capital_below_floor",
            "capital below its floor",
            consumer="auto_rebalance_saga",
        ),
        Watcher("rebalance_shocks", "market_events", "market_shock", "market shocks", consumer="auto_rebalance_saga"),
        Watcher(
            "funding_deviation",
            "funding_rate_events",
            "funding_deviation",
            "funding-rate deviations",
            consumer="funding_rate_hedge_event",
        ),
    )
}


def connection_extra(watcher: Watcher, bootstrap: str) -> dict[str, str]:
    """librdkafka settings of a watcher's connection: at-least-once, low-latency polling."""
    return {
        "bootstrap.servers": bootstrap,
        "group.id": watcher.group_id,
        "enable.auto.commit": "false",
        "auto.offset.reset": "earliest",
        "fetch.wait.max.ms": "50",
        "session.timeout.ms": "10000",
    }


def connection_env(bootstrap: str) -> dict[str, str]:
    """``AIRFLOW_CONN_<ID>`` variables (Airflow's JSON form) for every watcher."""
    return {
        f"AIRFLOW_CONN_{w.connection_id.upper()}": json.dumps(
            {"conn_type": "kafka", "extra": connection_extra(w, bootstrap)}, sort_keys=True
        )
        for w in WATCHERS.values()
    }
