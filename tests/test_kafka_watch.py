"""A whole watcher on the real broker through Airflow's shared-stream manager: batches, commits
after the asset event is stored, the kill switch's HALT at read, redelivery."""

from __future__ import annotations

import json
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


def _shock(move: str) -> bytes:
    fields = {"symbol": "ETH/USDT", "move_pct": move, "window_seconds": 60, "price": "1"}
    return to_json(build_event("market-shock", fields)).encode()


def test_watcher_when_burst_then_few_asset_events_carry_every_firing_event_exactly_once_and_bad_ones_dead_lettered(
    topics: Any, kafka_bootstrap: str
) -> None:
    from tradeops.event_inbox import dead_letter_counts

    firing = [_shock("-6") for _ in range(300)]
    quiet = [_shock("1") for _ in range(50)]
    bad = [b"{oops" for _ in range(30)]
    burst = [item for trio in zip(firing[:50], quiet, bad + [b"{oops"] * 20, strict=True) for item in trio]
    burst += firing[50:]
    produce_raw(kafka_bootstrap, topics.market_events, burst)  # before the watcher starts: one backlog
    with LiveWatcher("rebalance_shocks", kafka_bootstrap) as watcher:
        watcher.wait_for(lambda: len(watcher.events()) == 300, timeout=60, what="every firing event")
        watcher.wait_for(lambda: dead_letter_counts().get(topics.market_events) == 50, what="the dead letters")
        watcher.wait_for(
            lambda: sum(committed(kafka_bootstrap, watcher.group_id, topics.market_events).values()) == len(burst),
            what="the commits to the end",
        )
    ids = [e["event"]["event_id"] for e in watcher.events()]
    assert sorted(ids) == sorted(json.loads(m)["event_id"] for m in firing)  # each once, none quiet
    assert len(watcher.fired) <= 10  # batches, not one asset event per message
    assert all(p["batch"]["messages"] >= len(p["events"]) for p in watcher.fired)


def test_watcher_health_when_running_then_heartbeat_counters_and_lag_recorded_and_cli_shows_them(
    topics: Any, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tradeops.cli import main
    from tradeops.config import settings
    from tradeops.kafka.watch_store import watcher_healths

    monkeypatch.setenv("TRADEOPS__KAFKA__WATCH__HEARTBEAT_SECONDS", "0.5")
    settings.cache_clear()
    with LiveWatcher("stop_loss_alerts", kafka_bootstrap) as watcher:
        produce_raw(kafka_bootstrap, topics.risk_alerts, [_alert(), b"garbage", _alert("second")], partition=0)
        watcher.wait_for(lambda: len(watcher.events()) == 2)

        def recorded() -> Any:
            rows = [h for h in watcher_healths() if h.watcher == "stop_loss_alerts"]
            return rows[0] if rows and rows[0].messages == 3 and rows[0].lag == 0 else None

        watcher.wait_for(lambda: recorded() is not None, what="a heartbeat with the counters and lag")
        health = recorded()
        assert (health.fired, health.dead_lettered, health.stale, health.conflicts) == (2, 1, 0, 0)
        assert health.broker_state == "up" and health.last_message_at is not None
        assert health.group_id == watcher.group_id and health.topic == topics.risk_alerts
        capsys.readouterr()
        code = main(["kafka", "watchers"])
    out = capsys.readouterr().out
    line = next(row for row in out.splitlines() if row.startswith("stop_loss_alerts"))
    assert "ok" in line and " up " in line
    assert code == 1  # the other watchers never ran here: reported, exit 1
    assert "funding_deviation: never recorded a heartbeat" in out
