"""A whole watcher on the real broker through Airflow's shared-stream manager: batches, commits
after the asset event is stored, the kill switch's HALT at read, redelivery."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fixtures.watch import LiveWatcher, committed, fresh_topics, produce_raw
from tradeops import risk
from tradeops.events import build_event, to_json

pytestmark = [pytest.mark.kafka]


@pytest.fixture
def topics(db_url: str, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with fresh_topics(kafka_bootstrap, monkeypatch) as created:
        yield created


def _alert(reason: str = "keys revoked") -> bytes:
    return to_json(build_event("critical-alert", {"reason": reason, "scope": "okx"})).encode()


def test_watcher_when_critical_alert_read_then_halted_before_its_asset_event_and_committed_after(
    topics: Any, kafka_bootstrap: str
) -> None:
    risk.set_state(risk.TradingState.ACTIVE, reason="test", changed_by="test")
    with LiveWatcher("stop_loss_alerts", kafka_bootstrap) as watcher:
        produce_raw(kafka_bootstrap, topics.risk_alerts, [_alert()], partition=0)
        watcher.wait_for(lambda: len(watcher.events()) == 1, what="the alert to fire")
        state = risk.get_state()
        assert state.state is risk.TradingState.HALTED
        assert state.changed_by == "watcher:stop_loss_alerts" and "keys revoked" in state.reason
        watcher.wait_for(lambda: committed(kafka_bootstrap, watcher.group_id, topics.risk_alerts).get(0) == 1)


def test_watcher_when_asset_event_never_stored_then_nothing_committed_and_the_next_watcher_gets_it_again(
    topics: Any, kafka_bootstrap: str
) -> None:
    with LiveWatcher("stop_loss_alerts", kafka_bootstrap, persist=False) as first:
        produce_raw(kafka_bootstrap, topics.risk_alerts, [_alert("first try")], partition=0)
        first.wait_for(lambda: len(first.events()) == 1)
        time.sleep(1.0)
        assert committed(kafka_bootstrap, first.group_id, topics.risk_alerts).get(0, -1001) < 0
    with LiveWatcher("stop_loss_alerts", kafka_bootstrap, group_id=first.group_id) as second:
        second.wait_for(lambda: len(second.events()) == 1, what="the redelivery")
        assert second.events()[0]["event"]["reason"] == "first try"
        second.wait_for(lambda: committed(kafka_bootstrap, second.group_id, topics.risk_alerts).get(0) == 1)
